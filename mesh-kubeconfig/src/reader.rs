//! The reader ServiceAccount istiod uses to watch a remote cluster, and its RBAC.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, FIELD_MANAGER, MANAGED_BY_LABEL, Result};

/// The ServiceAccount Istio's charts create for remote access.
pub const DEFAULT_READER_SERVICE_ACCOUNT: &str = "istio-reader-service-account";

/// The ClusterRole kubectl-mesh binds reader ServiceAccounts to.
///
/// Its own name (not Istio's `istio-reader-clusterrole-<ns>`), so that installing Istio
/// later with helm does not collide with it.
pub const READER_CLUSTER_ROLE: &str = "kubectl-mesh:istio-reader";

/// A ServiceAccount in a remote cluster whose token istiod uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReaderAccount {
    /// Its namespace (the Istio namespace).
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl ReaderAccount {
    /// A reader account `name` in `namespace`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Istio's default reader account in the Istio namespace.
    pub fn istio_default(namespace: impl Into<String>) -> Self {
        Self::new(namespace, DEFAULT_READER_SERVICE_ACCOUNT)
    }

    /// The user name Kubernetes gives its tokens: `system:serviceaccount:NS:NAME`.
    pub fn username(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }

    /// The account a user name `system:serviceaccount:NS:NAME` names, if it names one
    /// (the inverse of [`ReaderAccount::username`]).
    ///
    /// ```
    /// use mesh_kubeconfig::ReaderAccount;
    /// let account = ReaderAccount::from_username("system:serviceaccount:istio-system:istio-multi");
    /// assert_eq!(account, Some(ReaderAccount::new("istio-system", "istio-multi")));
    /// assert_eq!(ReaderAccount::from_username("kubernetes-admin"), None);
    /// ```
    pub fn from_username(username: &str) -> Option<Self> {
        let (namespace, name) = username
            .strip_prefix("system:serviceaccount:")?
            .split_once(':')?;
        Some(Self::new(namespace, name))
    }

    /// The name of the ClusterRoleBinding that grants it [`READER_CLUSTER_ROLE`].
    pub fn binding_name(&self) -> String {
        format!("{READER_CLUSTER_ROLE}:{}:{}", self.namespace, self.name)
    }
}

impl std::fmt::Display for ReaderAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What happened (or would happen) to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// It did not exist.
    Created,
    /// It existed and differed.
    Updated,
}

/// One object created or updated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Created or updated.
    pub kind: ChangeKind,
    /// `Kind namespace/name` or `Kind name`.
    pub object: String,
    /// The object as it is (or would be) applied, with `apiVersion` and `kind`: what a
    /// dry run shows.
    pub desired: serde_json::Value,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = match self.kind {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
        };
        write!(f, "{verb} {}", self.object)
    }
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |xs: &[&str]| Some(xs.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
    PolicyRule {
        api_groups: strings(groups),
        resources: strings(resources),
        verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
        ..PolicyRule::default()
    }
}

/// The reader ClusterRole: what istiod reads in a remote cluster, read-only, plus
/// `create` on TokenReviews and SubjectAccessReviews (which write nothing). It is
/// equivalent to Istio's `istio-reader-clusterrole`.
pub fn reader_cluster_role() -> ClusterRole {
    const READ: &[&str] = &["get", "list", "watch"];
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(READER_CLUSTER_ROLE.to_owned()),
            labels: Some(managed_labels()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![
            rule(
                &[
                    "config.istio.io",
                    "security.istio.io",
                    "networking.istio.io",
                    "authentication.istio.io",
                    "rbac.istio.io",
                    "telemetry.istio.io",
                    "extensions.istio.io",
                ],
                &["*"],
                READ,
            ),
            rule(
                &[""],
                &[
                    "endpoints",
                    "pods",
                    "services",
                    "nodes",
                    "replicationcontrollers",
                    "namespaces",
                    "secrets",
                    // istiod lists ConfigMaps in every remote cluster; without them the
                    // remote never syncs (`/debug/clusterz` says `timeout`).
                    "configmaps",
                ],
                READ,
            ),
            rule(&["discovery.k8s.io"], &["endpointslices"], READ),
            rule(
                &["apiextensions.k8s.io"],
                &["customresourcedefinitions"],
                READ,
            ),
            rule(&["apps"], &["replicasets"], READ),
            rule(&["multicluster.x-k8s.io"], &["serviceexports"], READ),
            rule(&["gateway.networking.k8s.io"], &["*"], READ),
            rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
            rule(
                &["authorization.k8s.io"],
                &["subjectaccessreviews"],
                &["create"],
            ),
        ]),
        ..ClusterRole::default()
    }
}

pub(crate) fn managed_labels() -> BTreeMap<String, String> {
    BTreeMap::from([(MANAGED_BY_LABEL.0.to_owned(), MANAGED_BY_LABEL.1.to_owned())])
}

fn binding(account: &ReaderAccount) -> ClusterRoleBinding {
    // Built from JSON: the optionality of RoleRef's fields differs between the
    // Kubernetes versions k8s-openapi can be built for.
    serde_json::from_value(serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": account.binding_name(),
            "labels": managed_labels(),
        },
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": READER_CLUSTER_ROLE,
        },
        "subjects": [{
            "kind": "ServiceAccount",
            "name": account.name,
            "namespace": account.namespace,
        }],
    }))
    .expect("a ClusterRoleBinding literal deserialises")
}

/// One rule as sorted (groups, resources, verbs, resource names).
type NormalRule = (Vec<String>, Vec<String>, Vec<String>, Vec<String>);

/// Rules compared as sets of (group, resource, verb, resourceName) grants.
fn normalised(rules: &[PolicyRule]) -> Vec<NormalRule> {
    let sorted = |v: &Option<Vec<String>>| {
        let mut v = v.clone().unwrap_or_default();
        v.sort();
        v
    };
    let mut out: Vec<_> = rules
        .iter()
        .map(|r| {
            let mut verbs = r.verbs.clone();
            verbs.sort();
            (
                sorted(&r.api_groups),
                sorted(&r.resources),
                verbs,
                sorted(&r.resource_names),
            )
        })
        .collect();
    out.sort();
    out
}

fn has_managed_label(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL.0))
        .is_some_and(|v| v == MANAGED_BY_LABEL.1)
}

/// Makes sure `account` exists in the cluster behind `client` (creating its namespace
/// if missing) and is bound to [`reader_cluster_role`].
///
/// Check-then-act: every object is read first and only applied (server-side, field
/// manager `kubectl-mesh`) when missing or different, so a second call changes nothing
/// and returns no changes. An existing ServiceAccount is never modified. `cluster` names
/// the cluster in errors.
///
/// ```no_run
/// # async fn f(client: kube::Client) -> mesh_kubeconfig::Result<()> {
/// use mesh_kubeconfig::{ReaderAccount, ensure_reader_account};
/// let changes = ensure_reader_account(&client, "cluster2", &ReaderAccount::istio_default("istio-system")).await?;
/// for c in &changes { println!("{c}"); }
/// # Ok(()) }
/// ```
pub async fn ensure_reader_account(
    client: &Client,
    cluster: &str,
    account: &ReaderAccount,
) -> Result<Vec<Change>> {
    reconcile(client, cluster, account, true).await
}

/// What [`ensure_reader_account`] would change, without changing anything.
pub async fn check_reader_account(
    client: &Client,
    cluster: &str,
    account: &ReaderAccount,
) -> Result<Vec<Change>> {
    reconcile(client, cluster, account, false).await
}

async fn reconcile(
    client: &Client,
    cluster: &str,
    account: &ReaderAccount,
    apply: bool,
) -> Result<Vec<Change>> {
    let mut changes = Vec::new();
    let ns = &account.namespace;

    // Namespace: created if missing, never modified.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let existing = get_opt(&namespaces, ns, cluster, "Namespace").await?;
    if existing.is_none() {
        let obj = Namespace {
            metadata: ObjectMeta {
                name: Some(ns.clone()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        if apply {
            apply_obj(&namespaces, ns, &obj, cluster, "Namespace").await?;
        }
        changes.push(created(format!("Namespace {ns}"), &obj));
    }

    // ServiceAccount: created if missing, never modified.
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let label = format!("ServiceAccount {account}");
    if get_opt(&accounts, &account.name, cluster, &label)
        .await?
        .is_none()
    {
        let obj = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(account.name.clone()),
                namespace: Some(ns.clone()),
                labels: Some(managed_labels()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        if apply {
            apply_obj(&accounts, &account.name, &obj, cluster, &label).await?;
        }
        changes.push(created(label, &obj));
    }

    // ClusterRole: applied when missing or its rules differ.
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let want = reader_cluster_role();
    let label = format!("ClusterRole {READER_CLUSTER_ROLE}");
    let kind = match get_opt(&roles, READER_CLUSTER_ROLE, cluster, &label).await? {
        None => Some(ChangeKind::Created),
        Some(have)
            if normalised(have.rules.as_deref().unwrap_or_default())
                != normalised(want.rules.as_deref().unwrap_or_default())
                || !has_managed_label(&have.metadata) =>
        {
            Some(ChangeKind::Updated)
        }
        Some(_) => None,
    };
    if let Some(kind) = kind {
        if apply {
            apply_obj(&roles, READER_CLUSTER_ROLE, &want, cluster, &label).await?;
        }
        changes.push(Change {
            kind,
            object: label,
            desired: manifest(&want),
        });
    }

    // ClusterRoleBinding: applied when missing or its subjects differ.
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let want = binding(account);
    let name = account.binding_name();
    let label = format!("ClusterRoleBinding {name}");
    let kind = match get_opt(&bindings, &name, cluster, &label).await? {
        None => Some(ChangeKind::Created),
        Some(have) if have.subjects != want.subjects || !has_managed_label(&have.metadata) => {
            Some(ChangeKind::Updated)
        }
        Some(_) => None,
    };
    if let Some(kind) = kind {
        if apply {
            apply_obj(&bindings, &name, &want, cluster, &label).await?;
        }
        changes.push(Change {
            kind,
            object: label,
            desired: manifest(&want),
        });
    }

    for c in &changes {
        if apply {
            tracing::info!(cluster, "{c}");
        } else {
            tracing::info!(cluster, "would be {c}");
        }
    }
    Ok(changes)
}

fn created<K: serde::Serialize>(object: String, desired: &K) -> Change {
    Change {
        kind: ChangeKind::Created,
        object,
        desired: manifest(desired),
    }
}

/// An object as JSON (k8s-openapi's types serialize their `apiVersion` and `kind`).
fn manifest<K: serde::Serialize>(object: &K) -> serde_json::Value {
    serde_json::to_value(object).unwrap_or_default()
}

pub(crate) async fn get_opt<K>(
    api: &Api<K>,
    name: &str,
    cluster: &str,
    what: &str,
) -> Result<Option<K>>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name)
        .await
        .map_err(|e| Error::from_kube(e, cluster, format!("read {what}")))
}

async fn apply_obj<K>(api: &Api<K>, name: &str, obj: &K, cluster: &str, what: &str) -> Result<K>
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(|e| Error::from_kube(e, cluster, format!("apply {what}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_role_reads_what_istiod_reads_and_writes_nothing() {
        let role = reader_cluster_role();
        let rules = role.rules.unwrap();
        let grants = |group: &str, resource: &str, verb: &str| {
            rules.iter().any(|r| {
                r.api_groups.as_ref().unwrap().iter().any(|g| g == group)
                    && r.resources
                        .as_ref()
                        .unwrap()
                        .iter()
                        .any(|x| x == resource || x == "*")
                    && r.verbs.iter().any(|v| v == verb)
            })
        };
        for (g, r) in [
            ("", "services"),
            ("", "pods"),
            ("", "namespaces"),
            ("", "secrets"),
            ("", "configmaps"),
            ("", "nodes"),
            ("", "endpoints"),
            ("discovery.k8s.io", "endpointslices"),
            ("networking.istio.io", "serviceentries"),
        ] {
            for v in ["get", "list", "watch"] {
                assert!(grants(g, r, v), "{v} {g}/{r}");
            }
        }
        assert!(grants("authentication.k8s.io", "tokenreviews", "create"));
        assert!(grants(
            "authorization.k8s.io",
            "subjectaccessreviews",
            "create"
        ));
        let writes = [
            "create",
            "update",
            "patch",
            "delete",
            "deletecollection",
            "*",
        ];
        for r in &rules {
            let review = r
                .resources
                .as_ref()
                .unwrap()
                .iter()
                .all(|x| x.ends_with("reviews"));
            for v in &r.verbs {
                assert!(
                    review || !writes.contains(&v.as_str()),
                    "write verb {v} in {r:?}"
                );
            }
        }
    }

    #[test]
    fn rule_comparison_ignores_order() {
        let a = vec![rule(&["", "apps"], &["pods", "x"], &["get", "list"])];
        let b = vec![rule(&["apps", ""], &["x", "pods"], &["list", "get"])];
        assert_eq!(normalised(&a), normalised(&b));
        let c = vec![rule(&["apps", ""], &["x", "pods"], &["list"])];
        assert_ne!(normalised(&a), normalised(&c));
    }

    #[test]
    fn names() {
        let a = ReaderAccount::new("istio-system", "istio-multi");
        assert_eq!(
            a.username(),
            "system:serviceaccount:istio-system:istio-multi"
        );
        assert_eq!(
            a.binding_name(),
            "kubectl-mesh:istio-reader:istio-system:istio-multi"
        );
    }
}
