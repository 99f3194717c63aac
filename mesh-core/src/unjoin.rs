//! `unjoin`: take one remote out of the primary's mesh, removing what `join` added for
//! it and nothing else; with `purge`, also the remote's mesh setup.
//!
//! What goes, always (the link):
//! - in the primary, the remote secret(s) for the cluster name: `istio-remote-secret-<name>`,
//!   any `istio/multiCluster=true` Secret annotated `networking.istio.io/cluster=<name>`, and
//!   the data key `<name>` of any other such Secret (only that key when it holds others);
//! - in the primary, the cluster from `meshNetworks` (and its network, when that leaves
//!   it without endpoints);
//! - in the remote, the token Secret join created (`kubernetes.io/service-account-token`,
//!   labelled `app.kubernetes.io/managed-by=kubectl-mesh`, annotated for the reader
//!   ServiceAccount) — unless another remote secret in the primary still uses its token.
//!
//! What also goes with `purge` (the remote's membership), each only when kubectl-mesh made
//! it (its managed-by label, or kubectl-mesh's field manager applied it):
//! - `cacerts`, the cross-network Gateway, and the `topology.istio.io/network` label and
//!   `topology.istio.io/controlPlaneClusters` annotation on the Istio namespace (released
//!   by server-side apply, so a value another manager also set stays);
//! - the reader ServiceAccount, its ClusterRoleBinding and (when nothing else binds it)
//!   the ClusterRole — unless another remote secret's token belongs to that ServiceAccount;
//! - and when no remote secret is left in the primary, the primary's own membership the
//!   same way: its `meshNetworks` entry, network label, cross-network Gateway, `cacerts`,
//!   and the `istiod-gateway`/`istiod-vs` pair `join --install` exposes istiod with.
//!   (Istio itself, installed by `join --install`, stays: its helm releases are the
//!   user's to keep or `helm uninstall`.)
//!
//! An unreachable remote (the cluster is gone) does not stop the primary's side: what
//! could not be cleaned there is reported as warnings.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{DeleteParams, DynamicObject, ObjectMeta, Patch, PatchParams, Preconditions};
use kube::{Api, Client};
use mesh_kubeconfig::{Kubeconfigs, ReaderAccount};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::cluster::{
    self, CACERTS, CONTROL_PLANE_CLUSTERS_ANNOTATION, CROSS_NETWORK_GATEWAY, MESH_CONFIG_MAP,
    NETWORK_LABEL,
};
use crate::error::{Error, Result, kube};
use crate::links::{self, TokenSubject};
use crate::networks::read_mesh_networks;
use crate::plan::{Change, Steps};
use crate::progress::{EventKind, Progress};

const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";
const SA_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";

/// What to unjoin.
#[derive(Debug, Clone)]
pub struct UnjoinOptions {
    /// The Istio namespace (default `istio-system`).
    pub namespace: String,
    /// The primary's context.
    pub primary: String,
    /// The remote's context.
    pub remote: String,
    /// The remote's cluster ID; default: the remote context as a DNS-1123 label.
    pub cluster_name: Option<String>,
    /// Also remove the remote's mesh setup (see the module documentation).
    pub purge: bool,
    /// Make no mutating request; report what would change.
    pub dry_run: bool,
    /// Bound on each API request.
    pub request_timeout: Option<Duration>,
    /// Raised by the caller on SIGINT/SIGTERM: no new step starts, and unjoin fails
    /// with [`Error::Interrupted`].
    pub interrupt: crate::Interrupt,
}

impl UnjoinOptions {
    /// Options for unjoining `remote` from `primary`, defaults elsewhere.
    ///
    /// ```
    /// let opts = mesh_core::UnjoinOptions::new("cluster1", "cluster2");
    /// assert_eq!(opts.cluster_name(), "cluster2");
    /// assert!(!opts.purge);
    /// ```
    pub fn new(primary: &str, remote: &str) -> UnjoinOptions {
        UnjoinOptions {
            namespace: "istio-system".into(),
            primary: primary.into(),
            remote: remote.into(),
            cluster_name: None,
            purge: false,
            dry_run: false,
            request_timeout: None,
            interrupt: crate::Interrupt::default(),
        }
    }

    /// The cluster ID the remote secret is found by.
    pub fn cluster_name(&self) -> String {
        self.cluster_name
            .clone()
            .unwrap_or_else(|| mesh_kubeconfig::dns1123_label(&self.remote))
    }
}

/// What an unjoin did.
#[derive(Debug, Clone, Serialize)]
pub struct UnjoinSummary {
    /// The primary's context.
    pub primary: String,
    /// The remote's context.
    pub remote: String,
    /// The cluster ID.
    pub cluster_name: String,
    /// Whether the remote could be reached (if not, only the primary was cleaned).
    pub remote_reachable: bool,
    /// Everything removed (or, in a dry run, that would be). Empty: it was not joined.
    pub changes: Vec<Change>,
    /// Things the user should know, e.g. what was kept and why.
    pub warnings: Vec<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

type Run<'a> = crate::plan::Run<'a, UnjoinOptions>;

impl Run<'_> {
    /// Deletes `name` unless this is a dry run; the object must still be at
    /// `resource_version` (check-then-act). Gone already counts as deleted.
    async fn delete<K>(&self, api: &Api<K>, ctx: &str, what: &str, meta: &ObjectMeta) -> Result<()>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        if self.opts.dry_run {
            return Ok(());
        }
        let name = meta.name.clone().unwrap_or_default();
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: meta.resource_version.clone(),
                uid: meta.uid.clone(),
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Err(Error::Kube {
                cluster: ctx.to_owned(),
                action: format!("deleting {what}"),
                reason: "it changed while unjoin ran; run unjoin again".into(),
            }),
            Err(e) => Err(kube(ctx, format!("deleting {what}"), e)),
        }
    }
}

/// Takes the remote out of the primary's mesh: the primary's side first (so istiod
/// stops using the link), then the remote's. See the module documentation for exactly
/// what goes.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use mesh_core::{NoProgress, UnjoinOptions, unjoin};
/// use mesh_kubeconfig::{KubeconfigSource, Kubeconfigs};
///
/// let kubeconfigs = Kubeconfigs::load(&KubeconfigSource::Default)?;
/// let summary = unjoin(&kubeconfigs, &UnjoinOptions::new("cluster1", "cluster2"), &NoProgress).await?;
/// if summary.changes.is_empty() {
///     eprintln!("cluster2 was not joined");
/// }
/// # Ok(()) }
/// ```
pub async fn unjoin(
    kubeconfigs: &Kubeconfigs,
    opts: &UnjoinOptions,
    progress: &dyn Progress,
) -> Result<UnjoinSummary> {
    let run = Run {
        opts,
        steps: Steps::new(opts.dry_run, progress).interruptible(&opts.interrupt),
    };
    let ns = opts.namespace.as_str();
    let pctx = opts.primary.as_str();
    let rctx = opts.remote.as_str();
    let name = opts.cluster_name();
    if pctx == rctx {
        return Err(Error::Preflight {
            problems: vec![crate::Problem {
                cluster: rctx.to_owned(),
                message: "the remote is the primary; name the remote cluster's context".into(),
            }],
        });
    }

    // Read: the primary must answer; the remote may be gone.
    let started = Instant::now();
    run.emit(pctx, "preflight", EventKind::Started, started);
    let primary = kubeconfigs.client(pctx, opts.request_timeout).await?;
    let secrets = links::remote_secrets(&primary, pctx, ns).await?;
    run.emit(pctx, "preflight", EventKind::Unchanged, started);
    run.emit(rctx, "preflight", EventKind::Started, started);
    let remote = match reach(kubeconfigs, rctx, ns, opts.request_timeout).await {
        Ok(client) => {
            run.emit(rctx, "preflight", EventKind::Unchanged, started);
            Some(client)
        }
        Err(err) => {
            run.warn(
                rctx,
                "preflight",
                format!(
                    "cannot reach it ({err}); removing the primary's side only — its token Secret{} stay{}",
                    if opts.purge { ", cacerts, labels, Gateway and reader account" } else { "" },
                    if opts.purge { "" } else { "s" },
                ),
            );
            None
        }
    };

    // Which secrets are ours, and which tokens other links keep using.
    let ours = matching_secrets(&secrets, &name);
    let mut our_tokens = Vec::new();
    let mut other_tokens: Vec<(String, SecretString)> = Vec::new();
    for link in links::links(&secrets) {
        let token = links::kubeconfig_token(&link.kubeconfig);
        let is_ours = ours.iter().any(|(s, key_only)| {
            s.metadata.name.as_deref() == Some(link.secret.as_str())
                && (!key_only || link.key == name)
        });
        match (token, is_ours) {
            (Some(t), true) => our_tokens.push(t),
            (Some(t), false) => other_tokens.push((format!("{}/{}", link.secret, link.key), t)),
            (None, _) => {}
        }
    }
    let our_subject = our_tokens.iter().find_map(links::token_subject);
    let last_link = secrets.iter().all(|s| {
        ours.iter().any(|(o, key_only)| {
            o.metadata.name == s.metadata.name
                && (!key_only || s.data.as_ref().is_some_and(|d| d.len() == 1))
        })
    });

    // The remote secret(s) in the primary.
    run.step_listing(pctx, "remote secret", async {
        let api: Api<Secret> = Api::namespaced(primary.clone(), ns);
        let mut done = Vec::new();
        for (secret, key_only) in &ours {
            let sname = secret.metadata.name.clone().unwrap_or_default();
            if *key_only {
                if !opts.dry_run {
                    // A merge patch carrying the resourceVersion read is conditional:
                    // the server refuses it (409) if the Secret changed since.
                    let patch = serde_json::json!({
                        "metadata": {"resourceVersion": secret.metadata.resource_version},
                        "data": {name.as_str(): null},
                    });
                    api.patch(&sname, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .map_err(|e| {
                            kube(
                                pctx,
                                format!("removing key {name} from Secret {ns}/{sname}"),
                                e,
                            )
                        })?;
                }
                done.push(format!(
                    "removed key {name} from remote Secret {ns}/{sname} in {pctx}"
                ));
            } else {
                run.delete(
                    &api,
                    pctx,
                    &format!("Secret {ns}/{sname}"),
                    &secret.metadata,
                )
                .await?;
                done.push(format!("deleted remote Secret {ns}/{sname} in {pctx}"));
            }
        }
        Ok(done)
    })
    .await?;

    // meshNetworks in the primary (and, when purging the last remote, the primary's entry).
    let primary_cluster = if opts.purge {
        Some(primary_cluster_id(&primary, pctx, ns).await?)
    } else {
        None
    };
    let primary_id = primary_cluster.clone().filter(|_| last_link);
    run.step_listing(pctx, "meshNetworks", async {
        remove_from_mesh_networks(&run, &primary, &name, primary_id.as_deref()).await
    })
    .await?;

    // The remote's side.
    if let Some(remote) = &remote {
        let account = match &our_subject {
            Some(s) if s.namespace == ns => ReaderAccount::new(ns, s.name.clone()),
            _ => ReaderAccount::istio_default(ns),
        };
        let sa_uid = read_sa_uid(remote, rctx, &account).await?;
        let same_cluster = match (&our_subject, &sa_uid) {
            (Some(TokenSubject { uid: Some(a), .. }), Some(b)) => a == b,
            _ => true,
        };
        if !same_cluster {
            run.warn(
                rctx,
                "token secret",
                format!(
                    "the removed remote secret's token belongs to another cluster than context {rctx}; nothing was removed there — run unjoin with the remote's own context to clean it"
                ),
            );
        } else {
            let others_use_sa: Vec<String> = other_tokens
                .iter()
                .filter(|(_, t)| {
                    links::token_subject(t).is_some_and(|s| s.uid.is_some() && s.uid == sa_uid)
                })
                .map(|(where_, _)| where_.clone())
                .collect();
            run.step_listing(rctx, "token secret", async {
                remove_token_secrets(&run, remote, &account, &other_tokens).await
            })
            .await?;
            if opts.purge {
                run.step_listing(rctx, "reader account", async {
                    remove_reader_account(&run, remote, &account, &others_use_sa).await
                })
                .await?;
                purge_membership(&run, remote, rctx, primary_cluster.as_deref()).await?;
            }
        }
    }
    if opts.purge && last_link {
        purge_membership(&run, &primary, pctx, None).await?;
    } else if opts.purge {
        tracing::info!("other remotes remain in {pctx}: its own mesh setup stays");
    }

    let (changes, warnings) = run.steps.finish();
    Ok(UnjoinSummary {
        primary: pctx.to_owned(),
        remote: rctx.to_owned(),
        cluster_name: name,
        remote_reachable: remote.is_some(),
        changes,
        warnings,
        dry_run: opts.dry_run,
    })
}

/// A client for `context` that has answered one request.
async fn reach(
    kubeconfigs: &Kubeconfigs,
    context: &str,
    ns: &str,
    timeout: Option<Duration>,
) -> Result<Client> {
    let client = kubeconfigs
        .client(context, timeout.or(Some(Duration::from_secs(10))))
        .await?;
    Api::<Namespace>::all(client.clone())
        .get_opt(ns)
        .await
        .map_err(|e| kube(context, "reaching the API server", e))?;
    Ok(client)
}

/// The remote secrets for `name`, each with whether only its key `name` goes (the
/// Secret holds other clusters too) rather than the whole Secret.
fn matching_secrets(secrets: &[Secret], name: &str) -> Vec<(Secret, bool)> {
    let wanted = mesh_kubeconfig::remote_secret_name(name);
    secrets
        .iter()
        .filter_map(|s| {
            let by_name = s.metadata.name.as_deref() == Some(wanted.as_str());
            let by_annotation = s
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(mesh_kubeconfig::CLUSTER_ANNOTATION))
                .is_some_and(|v| v == name);
            let keys: Vec<&String> = s.data.iter().flat_map(|d| d.keys()).collect();
            let has_key = keys.iter().any(|k| *k == name);
            let others = keys.iter().any(|k| *k != name);
            if has_key && others {
                Some((s.clone(), true))
            } else if by_name || by_annotation || has_key {
                Some((s.clone(), false))
            } else {
                None
            }
        })
        .collect()
}

/// istiod's cluster ID in the primary (its `CLUSTER_ID`), else Istio's default.
async fn primary_cluster_id(client: &Client, ctx: &str, ns: &str) -> Result<String> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let istiod = api
        .get_opt("istiod")
        .await
        .map_err(|e| kube(ctx, format!("reading Deployment {ns}/istiod"), e))?;
    Ok(istiod
        .and_then(|d| {
            d.spec
                .template
                .spec?
                .containers
                .into_iter()
                .flat_map(|c| c.env.unwrap_or_default())
                .find(|e| e.name == "CLUSTER_ID")?
                .value
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| mesh_kubeconfig::dns1123_label(ctx)))
}

async fn remove_from_mesh_networks(
    run: &Run<'_>,
    primary: &Client,
    name: &str,
    primary_id: Option<&str>,
) -> Result<Vec<String>> {
    let ctx = run.opts.primary.as_str();
    let ns = run.opts.namespace.as_str();
    let api: Api<ConfigMap> = Api::namespaced(primary.clone(), ns);
    // Joins and unjoins of other remotes edit the same document: conditional, re-applied
    // on conflict (see `cluster::update`).
    let object = format!("ConfigMap {ns}/{MESH_CONFIG_MAP}");
    let written = cluster::update(&api, ctx, &object, MESH_CONFIG_MAP, run.opts.dry_run, |cm: Option<&ConfigMap>| {
        let Some(cm) = cm else {
            return Ok(None);
        };
        let mut networks = read_mesh_networks(cm, ctx, ns, "unjoin")?;
        let mut done = Vec::new();
        for id in std::iter::once(name).chain(primary_id) {
            let network = networks.network_of(id);
            if networks.remove_registry(id) {
                done.push(format!(
                    "removed cluster {id} (network {}) from meshNetworks in ConfigMap {ns}/{MESH_CONFIG_MAP}",
                    network.unwrap_or_default()
                ));
            }
        }
        Ok((!done.is_empty()).then(|| (networks.to_config_map(ns), done)))
    })
    .await?;
    Ok(written.map(|(_, done)| done).unwrap_or_default())
}

async fn read_sa_uid(
    client: &Client,
    ctx: &str,
    account: &ReaderAccount,
) -> Result<Option<String>> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &account.namespace);
    Ok(api
        .get_opt(&account.name)
        .await
        .map_err(|e| kube(ctx, format!("reading ServiceAccount {account}"), e))?
        .and_then(|sa| sa.metadata.uid))
}

/// The token Secrets kubectl-mesh created for `account`, unless another link uses them.
async fn remove_token_secrets(
    run: &Run<'_>,
    remote: &Client,
    account: &ReaderAccount,
    other_tokens: &[(String, SecretString)],
) -> Result<Vec<String>> {
    let ctx = run.opts.remote.as_str();
    let ns = account.namespace.as_str();
    let api: Api<Secret> = Api::namespaced(remote.clone(), ns);
    let (k, v) = mesh_kubeconfig::MANAGED_BY_LABEL;
    let list = api
        .list(&kube::api::ListParams::default().labels(&format!("{k}={v}")))
        .await
        .map_err(|e| kube(ctx, format!("listing Secrets in {ns}"), e))?;
    let mut done = Vec::new();
    for s in list {
        let sname = s.metadata.name.clone().unwrap_or_default();
        let for_account = s.type_.as_deref() == Some(TOKEN_SECRET_TYPE)
            && s.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(SA_NAME_ANNOTATION))
                == Some(&account.name);
        if !for_account {
            continue;
        }
        let token = s
            .data
            .as_ref()
            .and_then(|d| d.get("token"))
            .map(|t| String::from_utf8_lossy(&t.0).into_owned());
        let users: Vec<&str> = other_tokens
            .iter()
            .filter(|(_, t)| {
                token
                    .as_deref()
                    .is_some_and(|mine| t.expose_secret() == mine)
            })
            .map(|(w, _)| w.as_str())
            .collect();
        if !users.is_empty() {
            run.warn(
                ctx,
                "token secret",
                format!(
                    "kept token Secret {ns}/{sname}: remote Secret {} in {} still uses it",
                    users.join(", "),
                    run.opts.primary
                ),
            );
            continue;
        }
        run.delete(&api, ctx, &format!("Secret {ns}/{sname}"), &s.metadata)
            .await?;
        done.push(format!("deleted token Secret {ns}/{sname} in {ctx}"));
    }
    Ok(done)
}

/// The reader ServiceAccount, its ClusterRoleBinding and (if unused) the ClusterRole,
/// each only if kubectl-mesh made it, and none while another link uses the account.
async fn remove_reader_account(
    run: &Run<'_>,
    remote: &Client,
    account: &ReaderAccount,
    others_use_it: &[String],
) -> Result<Vec<String>> {
    let ctx = run.opts.remote.as_str();
    if !others_use_it.is_empty() {
        run.warn(
            ctx,
            "reader account",
            format!(
                "kept ServiceAccount {account} and its RBAC: remote Secret {} in {} uses its tokens",
                others_use_it.join(", "),
                run.opts.primary
            ),
        );
        return Ok(Vec::new());
    }
    let mut done = Vec::new();
    let bindings: Api<ClusterRoleBinding> = Api::all(remote.clone());
    let binding_name = account.binding_name();
    let binding = bindings
        .get_opt(&binding_name)
        .await
        .map_err(|e| kube(ctx, format!("reading ClusterRoleBinding {binding_name}"), e))?;
    if let Some(b) = binding.filter(|b| links::managed_by_us(&b.metadata)) {
        run.delete(
            &bindings,
            ctx,
            &format!("ClusterRoleBinding {binding_name}"),
            &b.metadata,
        )
        .await?;
        done.push(format!(
            "deleted ClusterRoleBinding {binding_name} in {ctx}"
        ));
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(remote.clone(), &account.namespace);
    let sa = accounts
        .get_opt(&account.name)
        .await
        .map_err(|e| kube(ctx, format!("reading ServiceAccount {account}"), e))?;
    match sa {
        Some(sa) if links::managed_by_us(&sa.metadata) => {
            run.delete(
                &accounts,
                ctx,
                &format!("ServiceAccount {account}"),
                &sa.metadata,
            )
            .await?;
            done.push(format!("deleted ServiceAccount {account} in {ctx}"));
        }
        Some(_) => run.warn(
            ctx,
            "reader account",
            format!("kept ServiceAccount {account}: kubectl-mesh did not create it"),
        ),
        None => {}
    }
    // The ClusterRole, when no binding is left that grants it.
    let role_name = mesh_kubeconfig::READER_CLUSTER_ROLE;
    let roles: Api<ClusterRole> = Api::all(remote.clone());
    if let Some(role) = roles
        .get_opt(role_name)
        .await
        .map_err(|e| kube(ctx, format!("reading ClusterRole {role_name}"), e))?
        .filter(|r| links::managed_by_us(&r.metadata))
    {
        let all = bindings
            .list(&Default::default())
            .await
            .map_err(|e| kube(ctx, "listing ClusterRoleBindings", e))?;
        let still_bound = all.iter().any(|b| {
            b.role_ref.kind == "ClusterRole"
                && b.role_ref.name == role_name
                && b.metadata.name.as_deref() != Some(binding_name.as_str())
        });
        if !still_bound {
            run.delete(
                &roles,
                ctx,
                &format!("ClusterRole {role_name}"),
                &role.metadata,
            )
            .await?;
            done.push(format!("deleted ClusterRole {role_name} in {ctx}"));
        }
    }
    Ok(done)
}

/// A cluster's mesh membership that kubectl-mesh made: the network label and
/// control-plane annotation it owns on the Istio namespace, the cross-network Gateway,
/// and `cacerts`. `primary` is the primary's cluster ID when `client` is a remote: only
/// that ID leaves the remote's `controlPlaneClusters` list, and while other primaries
/// remain in it the network label stays.
async fn purge_membership(
    run: &Run<'_>,
    client: &Client,
    ctx: &str,
    primary: Option<&str>,
) -> Result<()> {
    let ns = run.opts.namespace.as_str();
    run.step_listing(ctx, "network label", async {
        let api: Api<Namespace> = Api::all(client.clone());
        let object = format!("namespace {ns}");
        // Conditional, like every write of a shared list (see `cluster::update`).
        let written = cluster::update(&api, ctx, &object, ns, run.opts.dry_run, |current: Option<&Namespace>| {
            let Some(current) = current else {
                return Ok(None);
            };
            // Only the keys join sets: the server attributes labels it adds itself (such
            // as kubernetes.io/metadata.name) to whoever applied last.
            let ours = |section: &str, key: &str| {
                links::owned_metadata_keys(&current.metadata, section)
                    .into_iter()
                    .filter(|k| k == key)
                    .collect::<Vec<_>>()
            };
            let labels = ours("labels", NETWORK_LABEL);
            let annotations = ours("annotations", CONTROL_PLANE_CLUSTERS_ANNOTATION);
            if labels.is_empty() && annotations.is_empty() {
                return Ok(None);
            }
            let planes = crate::join::control_plane_clusters(Some(&current.metadata));
            let others: Vec<String> = planes
                .iter()
                .filter(|c| Some(c.as_str()) != primary)
                .cloned()
                .collect();
            let mut desired = Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.to_owned()),
                    ..Default::default()
                },
                ..Default::default()
            };
            if primary.is_some() && !others.is_empty() {
                // Other primaries still run this cluster's control plane: only our ID
                // goes, and the cluster stays on its network.
                if others.len() == planes.len() {
                    return Ok(None);
                }
                let label = current
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(NETWORK_LABEL));
                if let Some(network) = label.filter(|_| !labels.is_empty()) {
                    desired.metadata.labels =
                        Some([(NETWORK_LABEL.to_owned(), network.clone())].into());
                }
                desired.metadata.annotations = Some(
                    [(CONTROL_PLANE_CLUSTERS_ANNOTATION.to_owned(), others.join(","))].into(),
                );
                let what = format!(
                    "removed {} from annotation {CONTROL_PLANE_CLUSTERS_ANNOTATION} of namespace {ns} (kept {})",
                    primary.unwrap_or_default(),
                    others.join(",")
                );
                return Ok(Some((desired, what)));
            }
            // Applying nothing releases every field kubectl-mesh owns on the namespace:
            // the server removes those no other manager also set.
            let mut what: Vec<String> = labels.iter().map(|k| format!("label {k}")).collect();
            what.extend(annotations.iter().map(|k| format!("annotation {k}")));
            let what = format!("removed {} from namespace {ns}", what.join(" and "));
            Ok(Some((desired, what)))
        })
        .await?;
        Ok(written.map(|(_, what)| what).into_iter().collect())
    })
    .await?;

    // Istio's CRDs, read once for the Gateway and the istiod exposure (none: nothing to do).
    let crd_version = cluster::gateway_crd_version(client, ctx).await?;
    run.step_listing(ctx, "cross-network gateway", async {
        let Some(version) = &crd_version else {
            return Ok(Vec::new());
        };
        let gateway = cluster::gateway_resource(version);
        delete_istio_object(
            run,
            client,
            ctx,
            "cross-network gateway",
            &gateway,
            CROSS_NETWORK_GATEWAY,
        )
        .await
    })
    .await?;

    if primary.is_none() {
        // What `join --install` added so remotes reach istiod through the gateway.
        run.step_listing(ctx, "expose istiod", async {
            let Some(version) = &crd_version else {
                return Ok(Vec::new());
            };
            let mut done = Vec::new();
            for (object, resource) in cluster::expose_istiod(ns, version) {
                let name = object.metadata.name.unwrap_or_default();
                done.extend(
                    delete_istio_object(run, client, ctx, "expose istiod", &resource, &name)
                        .await?,
                );
            }
            Ok(done)
        })
        .await?;
    }

    run.step_listing(ctx, "cacerts", async {
        let api: Api<Secret> = Api::namespaced(client.clone(), ns);
        let current = api
            .get_opt(CACERTS)
            .await
            .map_err(|e| kube(ctx, format!("reading Secret {ns}/{CACERTS}"), e))?;
        match current {
            Some(s) if links::managed_by_us(&s.metadata) => {
                let what = format!("Secret {ns}/{CACERTS}");
                run.delete(&api, ctx, &what, &s.metadata).await?;
                if primary.is_none() {
                    run.warn(ctx, "cacerts", format!("istiod keeps the plugged-in CA until it restarts: kubectl rollout restart deployment/istiod -n {ns}"));
                }
                Ok(vec![format!("deleted {what}")])
            }
            Some(_) => {
                run.warn(ctx, "cacerts", format!("kept Secret {ns}/{CACERTS}: kubectl-mesh did not create it"));
                Ok(Vec::new())
            }
            None => Ok(Vec::new()),
        }
    })
    .await
}

/// Deletes an Istio object (Gateway, VirtualService) in the Istio namespace when
/// kubectl-mesh made it; one it did not make is kept, with a warning.
async fn delete_istio_object(
    run: &Run<'_>,
    client: &Client,
    ctx: &str,
    step: &str,
    resource: &kube::api::ApiResource,
    name: &str,
) -> Result<Vec<String>> {
    let ns = run.opts.namespace.as_str();
    let kind = &resource.kind;
    let what = format!("{kind} {ns}/{name}");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, resource);
    let current = api
        .get_opt(name)
        .await
        .map_err(|e| kube(ctx, format!("reading {what}"), e))?;
    match current {
        Some(object) if links::managed_by_us(&object.metadata) => {
            run.delete(&api, ctx, &what, &object.metadata).await?;
            Ok(vec![format!("deleted {what}")])
        }
        Some(_) => {
            run.warn(
                ctx,
                step,
                format!("kept {what}: kubectl-mesh did not create it"),
            );
            Ok(Vec::new())
        }
        None => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str, annotation: Option<&str>, keys: &[&str]) -> Secret {
        let mut s: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "data": keys.iter().map(|k| (k.to_string(), "eA==")).collect::<std::collections::BTreeMap<_, _>>(),
        }))
        .unwrap();
        if let Some(a) = annotation {
            s.metadata.annotations =
                Some([(mesh_kubeconfig::CLUSTER_ANNOTATION.to_owned(), a.to_owned())].into());
        }
        s
    }

    #[test]
    fn remote_secrets_match_by_name_annotation_or_key() {
        let all = [
            secret("istio-remote-secret-c2", None, &["c2"]),
            secret("n2-k8s-secret", Some("c2"), &["n2-k8s-config"]),
            secret("shared", None, &["c2", "c3"]),
            secret("istio-remote-secret-c3", Some("c3"), &["c3"]),
            secret("by-key", None, &["c2"]),
        ];
        let found: Vec<(String, bool)> = matching_secrets(&all, "c2")
            .into_iter()
            .map(|(s, key_only)| (s.metadata.name.unwrap(), key_only))
            .collect();
        assert_eq!(
            found,
            [
                ("istio-remote-secret-c2".to_owned(), false),
                ("n2-k8s-secret".to_owned(), false),
                ("shared".to_owned(), true),
                ("by-key".to_owned(), false),
            ]
        );
        assert!(matching_secrets(&all, "c9").is_empty());
    }

    #[test]
    fn the_default_cluster_name_is_the_context_as_a_label() {
        let mut o = UnjoinOptions::new("p", "Kind_Cluster2");
        assert_eq!(
            o.cluster_name(),
            mesh_kubeconfig::dns1123_label("Kind_Cluster2")
        );
        o.cluster_name = Some("x".into());
        assert_eq!(o.cluster_name(), "x");
    }
}
