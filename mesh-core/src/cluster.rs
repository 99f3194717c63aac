//! What a cluster already is, read once before anything changes (the preflight facts),
//! and the small read/compare/apply helpers every step uses.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::error::{Error, Result, kube};

/// The label Istio reads a cluster's network from (on the Istio namespace, or on a gateway Service).
pub const NETWORK_LABEL: &str = "topology.istio.io/network";
/// The annotation that tells a remote which clusters run its control plane.
pub const CONTROL_PLANE_CLUSTERS_ANNOTATION: &str = "topology.istio.io/controlPlaneClusters";
/// The Secret istiod loads its plugged-in CA from.
pub const CACERTS: &str = "cacerts";
/// The name of the Gateway that exposes a network's services to the others.
pub const CROSS_NETWORK_GATEWAY: &str = "cross-network-gateway";
/// The ConfigMap holding istiod's mesh config and `meshNetworks`.
pub const MESH_CONFIG_MAP: &str = "istio";
/// The field manager of every server-side apply.
pub use mesh_kubeconfig::FIELD_MANAGER;

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
    /// Whether the `istio` mesh-config ConfigMap exists.
    pub has_mesh_config: bool,
    /// Requests this user may not make (verb resource), from SelfSubjectAccessReviews.
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

    /// The root fingerprints in the stored `cacerts`, if it has a readable `root-cert.pem`.
    pub fn stored_roots(&self) -> Option<mesh_certs::RootSet> {
        let data = self.cacerts.as_ref()?.data.as_ref()?;
        mesh_certs::RootSet::from_pem(&data.get("root-cert.pem")?.0).ok()
    }
}

/// The `ApiResource` of Istio's Gateway at `version`.
pub fn gateway_resource(version: &str) -> ApiResource {
    ApiResource {
        group: "networking.istio.io".into(),
        version: version.into(),
        api_version: format!("networking.istio.io/{version}"),
        kind: "Gateway".into(),
        plural: "gateways".into(),
    }
}

/// What this join needs to be allowed to do, as (verb, group, resource, namespaced).
fn needed_access(remote: bool) -> Vec<(&'static str, &'static str, &'static str, bool)> {
    let mut needs = vec![
        ("get", "", "secrets", true),
        ("create", "", "secrets", true),
        ("patch", "", "secrets", true),
        ("patch", "", "namespaces", false),
        ("get", "", "services", true),
        ("create", "networking.istio.io", "gateways", true),
        ("patch", "networking.istio.io", "gateways", true),
    ];
    if remote {
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

/// Reads the facts of a cluster. Fails only when the cluster cannot be reached at all.
pub async fn read_facts(
    client: &Client,
    context: &str,
    namespace: &str,
    remote: bool,
) -> Result<ClusterFacts> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let kube_system = namespaces
        .get_opt("kube-system")
        .await
        .map_err(|e| kube(context, "reaching the API server", e))?;
    let istio_namespace = namespaces
        .get_opt(namespace)
        .await
        .map_err(|e| kube(context, format!("reading namespace {namespace}"), e))?;
    let gateway_crd_version = gateway_crd_version(client, context).await?;
    let mut facts = ClusterFacts {
        context: context.to_owned(),
        kube_system_uid: kube_system.and_then(|ns| ns.metadata.uid),
        istio_namespace,
        gateway_crd_version,
        gateway: None,
        cacerts: None,
        istiod_cluster_id: None,
        istiod_network: None,
        has_mesh_config: false,
        denied: Vec::new(),
    };
    if facts.istio_namespace.is_some() {
        // A read the user may not make is a problem to list, not a reason to stop looking.
        let mut denied = Vec::new();
        fn readable<T>(
            denied: &mut Vec<String>,
            what: String,
            result: Result<Option<T>>,
        ) -> Result<Option<T>> {
            match result {
                Err(crate::Error::Kube {
                    status: Some(403), ..
                }) => {
                    denied.push(format!("read {what}"));
                    Ok(None)
                }
                other => other,
            }
        }
        facts.gateway = readable(
            &mut denied,
            format!("Services in namespace {namespace}"),
            find_gateway(client, context, namespace).await,
        )?;
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let what = format!("Secret {namespace}/{CACERTS}");
        let result = secrets.get_opt(CACERTS).await;
        facts.cacerts = readable(
            &mut denied,
            what.clone(),
            result.map_err(|e| kube(context, format!("reading {what}"), e)),
        )?;
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
        let what = format!("Deployment {namespace}/istiod");
        let result = deployments.get_opt("istiod").await;
        if let Some(istiod) = readable(
            &mut denied,
            what.clone(),
            result.map_err(|e| kube(context, format!("reading {what}"), e)),
        )? {
            facts.istiod_cluster_id = istiod_env(&istiod, "CLUSTER_ID");
        }
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let what = format!("ConfigMap {namespace}/{MESH_CONFIG_MAP}");
        let result = config_maps.get_opt(MESH_CONFIG_MAP).await;
        facts.has_mesh_config = readable(
            &mut denied,
            what.clone(),
            result.map_err(|e| kube(context, format!("reading {what}"), e)),
        )?
        .is_some();
        let what = format!("ConfigMap {namespace}/istio-sidecar-injector");
        let result = config_maps.get_opt("istio-sidecar-injector").await;
        let injector = readable(
            &mut denied,
            what.clone(),
            result.map_err(|e| kube(context, format!("reading {what}"), e)),
        )?;
        facts.denied = denied;
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
    let needs = needed_access(remote);
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

/// The name of the Gateway that exposes istiod on the primary's east-west gateway.
pub const ISTIOD_GATEWAY: &str = "istiod-gateway";
/// The name of the VirtualService that routes that Gateway to istiod.
pub const ISTIOD_VIRTUAL_SERVICE: &str = "istiod-vs";

/// What exposes istiod to the remotes through the primary's east-west gateway (as
/// Istio's `expose-istiod.yaml` sample does): a Gateway passing TLS through on 15012
/// (xDS and certificates) and 15017 (injection webhook), and a VirtualService routing
/// both to the `istiod` Service.
///
/// ```
/// let objects = mesh_core::expose_istiod("istio-system", "v1");
/// assert_eq!(objects[0].0.metadata.name.as_deref(), Some("istiod-gateway"));
/// assert_eq!(objects[1].1.kind, "VirtualService");
/// ```
pub fn expose_istiod(namespace: &str, crd_version: &str) -> [(DynamicObject, ApiResource); 2] {
    let gateway_resource = gateway_resource(crd_version);
    let vs_resource = ApiResource {
        kind: "VirtualService".into(),
        plural: "virtualservices".into(),
        ..gateway_resource.clone()
    };
    let server = |name: &str, number: u16| {
        json!({
            "port": {"name": name, "number": number, "protocol": "TLS"},
            "tls": {"mode": "PASSTHROUGH"},
            "hosts": ["*"],
        })
    };
    let mut gateway = DynamicObject::new(ISTIOD_GATEWAY, &gateway_resource).within(namespace);
    gateway.metadata.labels = Some(owned_labels());
    gateway.data = json!({"spec": {
        "selector": {"istio": "eastwestgateway"},
        "servers": [server("tls-istiod", 15012), server("tls-istiodwebhook", 15017)],
    }});
    let istiod = format!("istiod.{namespace}.svc.cluster.local");
    let route = |port: u16, to: u16| {
        json!({
            "match": [{"port": port, "sniHosts": ["*"]}],
            "route": [{"destination": {"host": istiod, "port": {"number": to}}}],
        })
    };
    let mut vs = DynamicObject::new(ISTIOD_VIRTUAL_SERVICE, &vs_resource).within(namespace);
    vs.metadata.labels = Some(owned_labels());
    vs.data = json!({"spec": {
        "hosts": ["*"],
        "gateways": [ISTIOD_GATEWAY],
        "tls": [route(15012, 15012), route(15017, 443)],
    }});
    [(gateway, gateway_resource), (vs, vs_resource)]
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
    // As JSON: the EndpointSlice's Rust shape differs between Kubernetes versions.
    let resource = ApiResource {
        group: "discovery.k8s.io".into(),
        version: "v1".into(),
        api_version: "discovery.k8s.io/v1".into(),
        kind: "EndpointSlice".into(),
        plural: "endpointslices".into(),
    };
    let slices: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
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
    let spec = svc.spec.as_ref()?;
    let ports = spec.ports.as_ref()?;
    let port = ["tls", "https"]
        .iter()
        .find_map(|n| ports.iter().find(|p| p.name.as_deref() == Some(n)))
        .or_else(|| ports.iter().find(|p| p.port == 15443))?;
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

/// The cross-network Gateway: TLS `AUTO_PASSTHROUGH` for `*.local` on the gateway's TLS port.
pub fn cross_network_gateway(
    namespace: &str,
    gateway: &GatewayService,
    crd_version: &str,
) -> DynamicObject {
    let mut obj =
        DynamicObject::new(CROSS_NETWORK_GATEWAY, &gateway_resource(crd_version)).within(namespace);
    obj.metadata.labels = Some(owned_labels());
    obj.data = json!({"spec": {
        "selector": gateway.selector,
        "servers": [{
            "port": {"number": gateway.port, "name": "tls", "protocol": "TLS"},
            "tls": {"mode": "AUTO_PASSTHROUGH"},
            "hosts": ["*.local"],
        }],
    }});
    obj
}

/// The ownership label join sets on everything it creates
/// (`app.kubernetes.io/managed-by=kubectl-mesh`): unjoin deletes only objects carrying it.
pub(crate) fn owned_labels() -> BTreeMap<String, String> {
    let (key, value) = mesh_kubeconfig::MANAGED_BY_LABEL;
    BTreeMap::from([(key.to_owned(), value.to_owned())])
}

/// Whether an existing cross-network Gateway join did not create already does its job
/// for `gateway`: it selects the gateway's pods (its selector is part of the Service's)
/// and has a server on the TLS port with `AUTO_PASSTHROUGH` for `*.local` (or `*`).
/// Istio's own sample `cross-network-gateway` does.
pub(crate) fn gateway_does_the_job(existing: &DynamicObject, gateway: &GatewayService) -> bool {
    let spec = &existing.data["spec"];
    let selector = spec["selector"].as_object();
    let selects = selector.is_some_and(|sel| {
        !sel.is_empty()
            && sel
                .iter()
                .all(|(k, v)| gateway.selector.get(k).map(String::as_str) == v.as_str())
    });
    let serves = spec["servers"].as_array().into_iter().flatten().any(|s| {
        s["port"]["number"].as_u64() == Some(u64::from(gateway.port))
            && s["tls"]["mode"].as_str() == Some("AUTO_PASSTHROUGH")
            && s["hosts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|h| h == "*.local" || h == "*")
    });
    selects && serves
}

/// The `cacerts` Secret holding `bundle`.
pub fn cacerts_secret(namespace: &str, bundle: &mesh_certs::CaBundle) -> Secret {
    use secrecy::ExposeSecret;
    let files = bundle.files();
    let mut data = BTreeMap::new();
    let mut put = |key: &str, bytes: Option<&[u8]>| {
        if let Some(b) = bytes {
            data.insert(key.to_owned(), k8s_openapi::ByteString(b.to_vec()));
        }
    };
    put("ca-cert.pem", files.ca_cert.as_deref());
    put(
        "ca-key.pem",
        files.ca_key.as_ref().map(|k| k.expose_secret()),
    );
    put("root-cert.pem", files.root_cert.as_deref());
    put("cert-chain.pem", files.cert_chain.as_deref());
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(CACERTS.into()),
            namespace: Some(namespace.into()),
            labels: Some(owned_labels()),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Default::default()
    }
}

/// Server-side apply of `object` (field manager `kubectl-mesh`, forced).
pub async fn apply<K>(api: &Api<K>, context: &str, name: &str, object: &K) -> Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|e| kube(context, format!("applying {name}"), e))?;
    Ok(())
}

/// How many times [`update`] writes before a run of conflicts becomes an error.
pub(crate) const UPDATE_ATTEMPTS: u32 = 5;

/// Read-modify-write of one object with optimistic concurrency — the one way every
/// write of shared state (`meshNetworks`, the `controlPlaneClusters` list, the namespace
/// labels) is made, so that two commands at once both keep their change.
///
/// `change` gets the object as it is now (`None`: missing) and returns the object to
/// server-side apply together with what the caller wants back, or `None` when nothing
/// needs to change. The apply carries the `resourceVersion` that was read, which makes
/// it conditional: the server refuses it with 409 Conflict when anyone wrote the object
/// in between. Then the object is read again and `change` runs again on what is there
/// now, up to [`UPDATE_ATTEMPTS`] writes; after that, [`Error::Conflict`] names the
/// cluster and the object. A missing object is created by the apply (nothing to lose).
/// A dry run reads and runs `change` but writes nothing.
pub(crate) async fn update<K, T, F>(
    api: &Api<K>,
    context: &str,
    object: &str,
    name: &str,
    dry_run: bool,
    mut change: F,
) -> Result<Option<(K, T)>>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
    F: FnMut(Option<&K>) -> Result<Option<(K, T)>>,
{
    for attempt in 1..=UPDATE_ATTEMPTS {
        let current = api
            .get_opt(name)
            .await
            .map_err(|e| kube(context, format!("reading {object}"), e))?;
        let Some((mut desired, extra)) = change(current.as_ref())? else {
            return Ok(None);
        };
        if dry_run {
            return Ok(Some((desired, extra)));
        }
        desired.meta_mut().resource_version =
            current.and_then(|c| c.meta().resource_version.clone());
        let written = api
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&desired),
            )
            .await;
        match written {
            Ok(_) => {
                // What the caller shows or returns is the change, not the precondition.
                desired.meta_mut().resource_version = None;
                return Ok(Some((desired, extra)));
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                tracing::info!(
                    context,
                    object,
                    attempt,
                    "changed since read; reading it again"
                );
                // A little spread, so that two writers do not meet again at once.
                let jitter = u64::from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default()
                        .subsec_millis()
                        % 100,
                );
                tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt) + jitter)).await;
            }
            Err(e) => return Err(kube(context, format!("writing {object}"), e)),
        }
    }
    Err(Error::Conflict {
        cluster: context.to_owned(),
        object: object.to_owned(),
        attempts: UPDATE_ATTEMPTS,
    })
}

/// Creates namespace `name` with nothing else in it, unless it exists: what
/// [`update`] then writes into it stays conditional (a namespace applied into
/// existence by two commands at once would keep only the last one's metadata).
pub(crate) async fn create_namespace(client: &Client, context: &str, name: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let bare = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &bare).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(kube(context, format!("creating namespace {name}"), e)),
    }
}

/// Polls `check` every 500 ms until it yields a value or `timeout` passes.
pub async fn poll<T, F, Fut>(timeout: Duration, mut check: F) -> Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await? {
            return Ok(Some(v));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response, StatusCode};
    use kube::client::Body;

    fn json(status: StatusCode, value: serde_json::Value) -> Response<Body> {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&value).unwrap()))
            .unwrap()
    }

    fn config_map(rv: &str, networks: &str) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "istio", "namespace": "istio-system", "resourceVersion": rv},
            "data": {"meshNetworks": networks}})
    }

    fn conflict() -> Response<Body> {
        json(
            StatusCode::CONFLICT,
            json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "reason": "Conflict",
                "code": 409, "message": "the object has been modified"}),
        )
    }

    /// A mock API server: the ConfigMap changes (another writer) after every read, as
    /// often as `interleaved` says; a write with a stale resourceVersion gets 409.
    fn server(interleaved: usize) -> (Client, tokio::task::JoinHandle<Vec<serde_json::Value>>) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let task = tokio::spawn(async move {
            let mut version = 1;
            let mut doc = "networks: {}".to_owned();
            let mut writes = Vec::new();
            while let Some((request, send)) = handle.next_request().await {
                match request.method().as_str() {
                    "GET" => {
                        send.send_response(json(
                            StatusCode::OK,
                            config_map(&version.to_string(), &doc),
                        ));
                        if version <= interleaved {
                            // Someone else writes between our read and our write.
                            version += 1;
                            doc = format!(
                                "networks: {{other{version}: {{endpoints: [{{fromRegistry: c{version}}}]}}}}"
                            );
                        }
                    }
                    "PATCH" => {
                        let body = request.into_body().collect_bytes().await.unwrap();
                        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        writes.push(body.clone());
                        if body["metadata"]["resourceVersion"].as_str()
                            != Some(version.to_string().as_str())
                        {
                            send.send_response(conflict());
                        } else {
                            version += 1;
                            doc = body["data"]["meshNetworks"].as_str().unwrap().to_owned();
                            send.send_response(json(
                                StatusCode::OK,
                                config_map(&version.to_string(), &doc),
                            ));
                        }
                    }
                    other => panic!("unexpected {other}"),
                }
            }
            writes
        });
        (Client::new(service, "istio-system"), task)
    }

    async fn add_cluster9(client: Client) -> (Result<Option<(ConfigMap, ())>>, usize) {
        let api: Api<ConfigMap> = Api::namespaced(client, "istio-system");
        let mut calls = 0;
        let result = update(
            &api,
            "cluster1",
            "ConfigMap istio-system/istio",
            "istio",
            false,
            |cm| {
                calls += 1;
                let mut networks = crate::MeshNetworks::from_config_map(cm.unwrap()).unwrap();
                networks.upsert("network9", "cluster9", None);
                Ok(Some((networks.to_config_map("istio-system"), ())))
            },
        )
        .await;
        (result, calls)
    }

    #[tokio::test]
    async fn a_conflicting_write_is_reapplied_on_what_the_other_writer_left() {
        let (client, task) = server(2);
        let (result, calls) = add_cluster9(client).await;
        let (written, ()) = result.unwrap().unwrap();
        assert_eq!(calls, 3, "read and changed again after each conflict");
        let writes = task.await.unwrap();
        assert_eq!(writes.len(), 3);
        let last = writes.last().unwrap();
        assert_eq!(
            last["metadata"]["resourceVersion"], "3",
            "the version it read"
        );
        let doc = last["data"]["meshNetworks"].as_str().unwrap();
        assert!(
            doc.contains("cluster9") && doc.contains("c3"),
            "both changes: {doc}"
        );
        assert!(written.metadata.resource_version.is_none());
    }

    #[tokio::test]
    async fn conflicts_without_end_are_an_error_naming_cluster_and_object() {
        let (client, _task) = server(usize::MAX);
        let (result, calls) = add_cluster9(client).await;
        let err = result.unwrap_err();
        assert_eq!(calls as u32, UPDATE_ATTEMPTS);
        assert!(matches!(err, Error::Conflict { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.starts_with("cluster1: ConfigMap istio-system/istio changed")
                && msg.contains("run this command again"),
            "{msg}"
        );
    }
}
