//! What a cluster already is, read once before anything changes: [`ClusterFacts`]
//! (preflight for join, the primary for status and unjoin), and the single readers of
//! the Gateway CRD's served version, the east-west gateway Service and the `istiod` Service.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;

use super::names::{CACERTS, MESH_CONFIG_MAP, NETWORK_LABEL, Role};
use crate::error::{Error, Problem, Result, kube};

/// The east-west gateway of a cluster, as found in the Istio namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayService {
    /// The Service's name.
    pub name: String,
    /// The Service's pod selector (what the Gateway object selects).
    pub selector: BTreeMap<String, String>,
    /// The TLS port (`tls`, or the guide's `https`): port and node port.
    pub port: u16,
    /// The node port of that port, if any.
    pub node_port: Option<u16>,
    /// The Service's own network label.
    pub network_label: Option<String>,
}

/// Facts about one cluster, read before any change.
#[derive(Debug, Clone)]
pub struct ClusterFacts {
    /// The context.
    pub context: String,
    /// UID of `kube-system`: two contexts with the same UID reach one cluster.
    pub kube_system_uid: Option<String>,
    /// The Istio namespace, if it exists.
    pub istio_namespace: Option<Namespace>,
    /// The served version of `gateways.networking.istio.io`, if the CRD is there.
    pub gateway_crd_version: Option<String>,
    /// The east-west gateway Service, if any.
    pub gateway: Option<GatewayService>,
    /// The stored `cacerts` Secret, if any.
    pub cacerts: Option<Secret>,
    /// istiod's cluster ID (its `CLUSTER_ID`), if istiod is installed.
    pub istiod_cluster_id: Option<String>,
    /// istiod's `global.network`, if istiod is installed and sets one.
    pub istiod_network: Option<String>,
    /// Whether the `istio` mesh-config ConfigMap exists (`mesh_config.is_some()`).
    pub has_mesh_config: bool,
    /// The `istio` mesh-config ConfigMap (istiod's mesh config and `meshNetworks`), if
    /// it exists and could be read.
    pub mesh_config: Option<ConfigMap>,
    /// Requests this user may not make (verb resource): reads refused while reading
    /// these facts and, with [`Permissions::Join`], the writes join would make that
    /// SelfSubjectAccessReviews deny.
    pub denied: Vec<String>,
}

impl ClusterFacts {
    /// The network the cluster declares: the namespace label, else the gateway
    /// Service's label, else istiod's `global.network`.
    pub fn declared_network(&self) -> Option<(String, &'static str)> {
        let ns_label = self
            .istio_namespace
            .as_ref()
            .and_then(|ns| ns.metadata.labels.as_ref()?.get(NETWORK_LABEL).cloned());
        ns_label
            .map(|n| (n, "the Istio namespace's label"))
            .or_else(|| {
                self.gateway
                    .as_ref()?
                    .network_label
                    .clone()
                    .map(|n| (n, "the east-west gateway Service's label"))
            })
            .or_else(|| {
                self.istiod_network
                    .clone()
                    .map(|n| (n, "istiod's global.network"))
            })
    }

    /// Fails with [`Error::Preflight`] when the user was denied a read
    /// ([`ClusterFacts::denied`]): for a caller that reads only, the facts would then
    /// say "missing" where the truth is "not shown".
    pub fn require_readable(&self) -> Result<()> {
        if self.denied.is_empty() {
            return Ok(());
        }
        Err(Error::Preflight {
            problems: vec![Problem {
                cluster: self.context.clone(),
                kind: crate::error::ProblemKind::AccessDenied,
                message: format!(
                    "your user may not {}; use a context that may",
                    self.denied.join(", ")
                ),
            }],
        })
    }

    /// The root fingerprints in the stored `cacerts`, if it has a readable `root-cert.pem`.
    pub fn stored_roots(&self) -> Option<mesh_certs::RootSet> {
        let data = self.cacerts.as_ref()?.data.as_ref()?;
        mesh_certs::RootSet::from_pem(&data.get("root-cert.pem")?.0).ok()
    }
}

/// What the caller of [`read_facts`] will do with the cluster, and so which permissions
/// are asked about besides the reads themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permissions {
    /// Only read (status, unjoin's look at the primary): no SelfSubjectAccessReview.
    ReadOnly,
    /// Join it in this role: one SelfSubjectAccessReview per kind of write join makes
    /// there, each denial listed in [`ClusterFacts::denied`].
    Join(Role),
}

/// What a join needs to be allowed to do in a cluster of `role`, as
/// (verb, group, resource, namespaced).
fn needed_access(role: Role) -> Vec<(&'static str, &'static str, &'static str, bool)> {
    let mut needs = vec![
        ("get", "", "secrets", true),
        ("create", "", "secrets", true),
        ("patch", "", "secrets", true),
        ("patch", "", "namespaces", false),
        ("get", "", "services", true),
        ("create", "networking.istio.io", "gateways", true),
        ("patch", "networking.istio.io", "gateways", true),
    ];
    if role == Role::Remote {
        needs.extend([
            ("create", "", "serviceaccounts", true),
            ("create", "rbac.authorization.k8s.io", "clusterroles", false),
            (
                "create",
                "rbac.authorization.k8s.io",
                "clusterrolebindings",
                false,
            ),
        ]);
    } else {
        needs.push(("patch", "", "configmaps", true));
    }
    needs
}

/// The UID of `kube-system`, what tells one cluster from another (Istio itself uses it):
/// two contexts, or two links, that see one UID reach one cluster. Usually the first
/// request to a cluster, so its error says the API server was not reached.
pub(crate) async fn kube_system_uid(client: &Client, context: &str) -> Result<Option<String>> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    Ok(namespaces
        .get_opt("kube-system")
        .await
        .map_err(|e| kube(context, "reaching the API server", e))?
        .and_then(|ns| ns.metadata.uid))
}

/// Reads the facts of a cluster in one pass, each fact by one request: `kube-system`'s
/// UID, the Istio `namespace`, the Gateway CRD's served version, the east-west gateway
/// Service, `cacerts`, istiod's `CLUSTER_ID` and `global.network`, and the mesh-config
/// ConfigMap; with [`Permissions::Join`] also whether the user may make join's writes.
/// A read the user may not make is listed in [`ClusterFacts::denied`]; the call fails
/// only when the cluster cannot be reached or answers with another error.
///
/// ```no_run
/// # async fn f(client: kube::Client) -> mesh_core::Result<()> {
/// use mesh_core::Role;
/// use mesh_core::cluster::{Permissions, default_cluster_id, read_facts};
///
/// let facts = read_facts(&client, "cluster1", "istio-system", Permissions::ReadOnly).await?;
/// let id = default_cluster_id(Role::Primary, "cluster1", facts.istiod_cluster_id.as_deref());
/// assert!(!id.is_empty());
/// # Ok(()) }
/// ```
pub async fn read_facts(
    client: &Client,
    context: &str,
    namespace: &str,
    permissions: Permissions,
) -> Result<ClusterFacts> {
    let kube_system_uid = kube_system_uid(client, context).await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let istio_namespace = namespaces
        .get_opt(namespace)
        .await
        .map_err(|e| kube(context, format!("reading namespace {namespace}"), e))?;
    let gateway_crd_version = gateway_crd_version(client, context).await?;
    let mut facts = ClusterFacts {
        context: context.to_owned(),
        kube_system_uid,
        istio_namespace,
        gateway_crd_version,
        gateway: None,
        cacerts: None,
        istiod_cluster_id: None,
        istiod_network: None,
        has_mesh_config: false,
        mesh_config: None,
        denied: Vec::new(),
    };
    if facts.istio_namespace.is_some() {
        let mut reads = Reads {
            client,
            context,
            namespace,
            denied: Vec::new(),
        };
        let gateway = find_gateway(client, context, namespace).await;
        facts.gateway = reads.allowed(format!("Services in namespace {namespace}"), gateway)?;
        facts.cacerts = reads.get::<Secret>(CACERTS).await?;
        if let Some(istiod) = reads.get::<Deployment>("istiod").await? {
            facts.istiod_cluster_id = istiod_env(&istiod, "CLUSTER_ID");
        }
        facts.mesh_config = reads.get::<ConfigMap>(MESH_CONFIG_MAP).await?;
        facts.has_mesh_config = facts.mesh_config.is_some();
        let injector = reads.get::<ConfigMap>("istio-sidecar-injector").await?;
        facts.denied = reads.denied;
        if let Some(injector) = injector {
            facts.istiod_network = injector
                .data
                .as_ref()
                .and_then(|d| d.get("values"))
                .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
                .and_then(|v| v["global"]["network"].as_str().map(str::to_owned))
                .filter(|n| !n.is_empty());
        }
    }
    // One SelfSubjectAccessReview per write join makes, all at once.
    let Permissions::Join(role) = permissions else {
        return Ok(facts);
    };
    let needs = needed_access(role);
    let answers =
        futures::future::join_all(needs.iter().map(|(verb, group, resource, namespaced)| {
            allowed(
                client,
                context,
                verb,
                group,
                resource,
                namespaced.then_some(namespace),
            )
        }))
        .await;
    for ((verb, group, resource, namespaced), answer) in needs.into_iter().zip(answers) {
        if !answer? {
            let scope = if namespaced {
                format!(" in namespace {namespace}")
            } else {
                String::new()
            };
            let resource = if group.is_empty() {
                resource.to_owned()
            } else {
                format!("{resource}.{group}")
            };
            facts.denied.push(format!("{verb} {resource}{scope}"));
        }
    }
    Ok(facts)
}

/// The reads of [`read_facts`] in the Istio namespace: a read the user may not make is a
/// problem to list (`denied`), not a reason to stop looking.
struct Reads<'a> {
    client: &'a Client,
    context: &'a str,
    namespace: &'a str,
    denied: Vec<String>,
}

impl Reads<'_> {
    /// `result` of reading `what`, with 403 Forbidden listed as denied and read as nothing.
    fn allowed<T>(&mut self, what: String, result: Result<Option<T>>) -> Result<Option<T>> {
        match result {
            Err(e) if e.is_forbidden() => {
                self.denied.push(format!("read {what}"));
                Ok(None)
            }
            other => other,
        }
    }

    /// The object `name` of kind `K` in the Istio namespace, if it exists and may be read.
    async fn get<K>(&mut self, name: &str) -> Result<Option<K>>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let what = format!("{} {}/{name}", K::kind(&()), self.namespace);
        let result = Api::<K>::namespaced(self.client.clone(), self.namespace)
            .get_opt(name)
            .await
            .map_err(|e| kube(self.context, format!("reading {what}"), e));
        self.allowed(what, result)
    }
}

fn istiod_env(deploy: &Deployment, name: &str) -> Option<String> {
    deploy
        .spec
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|c| c.env.iter().flatten())
        .find(|e| e.name == name)?
        .value
        .clone()
        .filter(|v| !v.is_empty())
}

async fn allowed(
    client: &Client,
    context: &str,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> Result<bool> {
    let review: SelfSubjectAccessReview = serde_json::from_value(json!({
        "spec": {"resourceAttributes": {
            "verb": verb, "group": group, "resource": resource, "namespace": namespace,
        }}
    }))
    .expect("a valid SelfSubjectAccessReview");
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| kube(context, "checking permissions (SelfSubjectAccessReview)", e))?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// The served version of Istio's Gateway CRD (`v1`, else `v1beta1`, else `v1alpha3`), or
/// `None` when the CRD is missing. When reading CRDs is forbidden this says `v1`: the
/// gateway step then reports the real problem itself.
pub(crate) async fn gateway_crd_version(client: &Client, context: &str) -> Result<Option<String>> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    match crds.get_opt("gateways.networking.istio.io").await {
        Ok(crd) => Ok(crd.and_then(|crd| {
            let served: Vec<String> = crd
                .spec
                .versions
                .iter()
                .filter(|v| v.served)
                .map(|v| v.name.clone())
                .collect();
            ["v1", "v1beta1", "v1alpha3"]
                .iter()
                .find(|v| served.iter().any(|s| s == *v))
                .map(|v| (*v).to_owned())
        })),
        Err(kube::Error::Api(s)) if s.code == 403 => Ok(Some("v1".into())),
        Err(e) => Err(kube(context, "reading Istio's CRDs", e)),
    }
}

/// What a cluster's `istiod` Service is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IstiodService {
    /// There is none: no istiod, local or remote.
    Missing,
    /// It selects a local istiod.
    Local,
    /// istiod runs elsewhere (Istio's remote profile: a Service without selector, backed
    /// by an EndpointSlice holding `remotePilotAddress`, or an ExternalName); where it
    /// sends the cluster's proxies.
    Remote(Vec<String>),
}

/// Reads the `istiod` Service of `namespace` (and, for a remote one, where it leads).
pub(crate) async fn istiod_service(
    client: &Client,
    context: &str,
    namespace: &str,
) -> Result<IstiodService> {
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let Some(svc) = services
        .get_opt("istiod")
        .await
        .map_err(|e| kube(context, format!("reading Service {namespace}/istiod"), e))?
    else {
        return Ok(IstiodService::Missing);
    };
    let spec = svc.spec.unwrap_or_default();
    if spec.selector.as_ref().is_some_and(|s| !s.is_empty()) {
        return Ok(IstiodService::Local);
    }
    if spec.type_.as_deref() == Some("ExternalName") {
        return Ok(IstiodService::Remote(
            spec.external_name.into_iter().collect(),
        ));
    }
    let slices = super::api::endpoint_slices(client, namespace);
    let list = slices
        .list(&kube::api::ListParams::default().labels("kubernetes.io/service-name=istiod"))
        .await
        .map_err(|e| {
            kube(
                context,
                format!("listing EndpointSlices of Service {namespace}/istiod"),
                e,
            )
        })?;
    let mut addresses = Vec::new();
    for slice in &list.items {
        for endpoint in slice.data["endpoints"].as_array().into_iter().flatten() {
            for address in endpoint["addresses"].as_array().into_iter().flatten() {
                addresses.extend(address.as_str().map(str::to_owned));
            }
        }
    }
    Ok(IstiodService::Remote(addresses))
}

/// Finds the east-west gateway Service: label `istio=eastwestgateway`, else the
/// guide's `istio=ingressgateway`; its TLS port is the one named `tls`, else `https`.
pub async fn find_gateway(
    client: &Client,
    context: &str,
    namespace: &str,
) -> Result<Option<GatewayService>> {
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    for selector in ["istio=eastwestgateway", "istio=ingressgateway"] {
        let list = services
            .list(&kube::api::ListParams::default().labels(selector))
            .await
            .map_err(|e| kube(context, format!("listing Services {selector}"), e))?;
        for svc in list {
            if let Some(gw) = gateway_service(&svc) {
                return Ok(Some(gw));
            }
        }
    }
    Ok(None)
}

fn gateway_service(svc: &Service) -> Option<GatewayService> {
    let ports = svc.spec.as_ref()?.ports.as_ref()?;
    let port = ["tls", "https"]
        .iter()
        .find_map(|n| ports.iter().find(|p| p.name.as_deref() == Some(n)))
        .or_else(|| ports.iter().find(|p| p.port == 15443))?;
    gateway_service_on(svc, u16::try_from(port.port).ok()?)
}

/// The gateway Service `svc` serving on `port`, if that is one of its ports.
pub(crate) fn gateway_service_on(svc: &Service, port: u16) -> Option<GatewayService> {
    let spec = svc.spec.as_ref()?;
    let port = spec
        .ports
        .as_ref()?
        .iter()
        .find(|p| p.port == i32::from(port))?;
    Some(GatewayService {
        name: svc.metadata.name.clone()?,
        selector: spec.selector.clone().unwrap_or_default(),
        port: u16::try_from(port.port).ok()?,
        node_port: port.node_port.and_then(|p| u16::try_from(p).ok()),
        network_label: svc
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(NETWORK_LABEL).cloned()),
    })
}

#[cfg(test)]
mod tests {
    use http::{Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::json;

    use super::*;
    use crate::cluster::mock;

    /// The requests `read_facts` makes with `permissions` of a cluster without Istio, as
    /// `METHOD path`; every SelfSubjectAccessReview is allowed.
    async fn requests(permissions: Permissions) -> Vec<String> {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some((request, send)) = handle.next_request().await {
                let path = request.uri().path().to_owned();
                seen.push(format!("{} {path}", request.method()));
                send.send_response(if path.ends_with("/namespaces/kube-system") {
                    let ns = json!({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": "kube-system", "uid": "u1"}});
                    mock::json(StatusCode::OK, ns)
                } else if path.ends_with("/selfsubjectaccessreviews") {
                    let review = json!({"apiVersion": "authorization.k8s.io/v1",
                        "kind": "SelfSubjectAccessReview", "spec": {},
                        "status": {"allowed": true}});
                    mock::json(StatusCode::CREATED, review)
                } else {
                    mock::status(404, "NotFound")
                });
            }
            seen
        });
        let client = Client::new(service, "default");
        let facts = read_facts(&client, "c1", "istio-system", permissions)
            .await
            .unwrap();
        assert_eq!(facts.kube_system_uid.as_deref(), Some("u1"));
        assert!(facts.istio_namespace.is_none() && facts.denied.is_empty());
        drop(client);
        server.await.unwrap()
    }

    #[tokio::test]
    async fn only_join_asks_for_write_permissions() {
        let reviews = |seen: &[String]| {
            seen.iter()
                .filter(|r| r.ends_with("/selfsubjectaccessreviews"))
                .count()
        };
        let read_only = requests(Permissions::ReadOnly).await;
        assert!(
            read_only.iter().all(|r| r.starts_with("GET ")),
            "{read_only:?}"
        );
        assert_eq!(
            read_only.len(),
            3,
            "kube-system, the Istio namespace, the CRD"
        );
        let primary = requests(Permissions::Join(Role::Primary)).await;
        assert_eq!(reviews(&primary), needed_access(Role::Primary).len());
        let remote = requests(Permissions::Join(Role::Remote)).await;
        assert_eq!(reviews(&remote), needed_access(Role::Remote).len());
    }
}
