//! The objects kubectl-mesh writes into a cluster, built without any request: `cacerts`,
//! the cross-network Gateway and the pair that exposes istiod — each carrying the
//! ownership label — and the check that a Gateway somebody else made does the same job.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{ApiResource, DynamicObject};
use serde_json::json;

use super::facts::GatewayService;
use super::names::{
    CACERTS, CROSS_NETWORK_GATEWAY, ISTIOD_GATEWAY, ISTIOD_VIRTUAL_SERVICE, owned_labels,
};

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

/// What exposes istiod to the remotes through the primary's east-west gateway (as
/// Istio's `expose-istiod.yaml` sample does): a Gateway passing TLS through on 15012
/// (xDS and certificates) and 15017 (injection webhook), and a VirtualService routing
/// both to the `istiod` Service.
///
/// ```
/// let objects = mesh_core::cluster::expose_istiod("istio-system", "v1");
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
