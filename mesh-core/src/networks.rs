//! `meshNetworks`: Istio's map of networks to the registries (clusters) in them and
//! the gateways that reach them, edited structurally — parse, change, write back —
//! so that networks and fields kubectl-mesh does not manage are kept as they are.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use serde_json::{Map, Value, json};

use crate::address::GatewayAddress;
use crate::cluster::MESH_CONFIG_MAP;
use crate::error::{Error, Result};

/// A parsed `meshNetworks` document (the `meshNetworks` key of the `istio` ConfigMap).
///
/// ```
/// use mesh_core::networks::MeshNetworks;
/// let mut networks = MeshNetworks::parse("networks: {}")?;
/// networks.upsert("network2", "cluster2", Some(&"127.0.2.100:15443".parse()?));
/// let yaml = networks.to_yaml();
/// assert!(yaml.contains("fromRegistry: cluster2"));
/// # Ok::<(), mesh_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MeshNetworks {
    doc: Value,
}

/// No networks.
impl Default for MeshNetworks {
    fn default() -> MeshNetworks {
        MeshNetworks {
            doc: json!({"networks": {}}),
        }
    }
}

impl MeshNetworks {
    /// Parses the document; an empty one is an empty set of networks. One that is not
    /// a mapping whose `networks` is a mapping is [`Error::InvalidMeshNetworks`].
    pub fn parse(yaml: &str) -> Result<MeshNetworks> {
        let invalid = |reason: String| Error::InvalidMeshNetworks { reason };
        let doc = if yaml.trim().is_empty() {
            json!({})
        } else {
            serde_saphyr::from_str::<Value>(yaml).map_err(|e| invalid(e.to_string()))?
        };
        let mut doc = match doc {
            Value::Object(_) => doc,
            Value::Null => json!({}),
            _ => return Err(invalid("it is not a mapping with a `networks` key".into())),
        };
        match doc.get("networks") {
            None | Some(Value::Null) => {
                doc["networks"] = json!({});
            }
            Some(Value::Object(_)) => {}
            Some(_) => return Err(invalid("`networks` is not a mapping".into())),
        }
        Ok(MeshNetworks { doc })
    }

    fn networks(&self) -> &Map<String, Value> {
        self.doc["networks"].as_object().expect("checked in parse")
    }

    fn networks_mut(&mut self) -> &mut Map<String, Value> {
        self.doc["networks"]
            .as_object_mut()
            .expect("checked in parse")
    }

    /// The names of the networks, sorted.
    pub fn names(&self) -> Vec<String> {
        self.networks().keys().cloned().collect()
    }

    /// The network whose endpoints come from `registry` (a cluster ID), if any.
    pub fn network_of(&self, registry: &str) -> Option<String> {
        self.networks().iter().find_map(|(name, net)| {
            registries(net)
                .iter()
                .any(|r| r == registry)
                .then(|| name.clone())
        })
    }

    /// Every registry (cluster ID) the networks take endpoints from, sorted.
    pub fn registries(&self) -> Vec<String> {
        let mut all: Vec<String> = self.networks().values().flat_map(registries).collect();
        all.sort();
        all.dedup();
        all
    }

    /// The address gateways of `network` (one that is no host and port is left out:
    /// Istio could not use it either).
    pub fn gateways(&self, network: &str) -> Vec<GatewayAddress> {
        self.gateway_entries(network, "address")
            .filter_map(|(host, port)| GatewayAddress::new(host, port).ok())
            .collect()
    }

    /// The `(name, port)` of each gateway of `network` named by `key` (`address` or
    /// `registryServiceName`); one without a valid port is left out.
    fn gateway_entries<'a>(
        &'a self,
        network: &str,
        key: &'a str,
    ) -> impl Iterator<Item = (&'a str, u16)> + 'a {
        self.networks()
            .get(network)
            .and_then(|n| n.get("gateways"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(move |g| {
                let name = g.get(key)?.as_str()?;
                let port = u16::try_from(g.get("port")?.as_u64()?).ok()?;
                Some((name, port))
            })
    }

    /// The `registryServiceName` gateways of `network`, with their ports: gateways named
    /// by their Service's host name (`NAME.NAMESPACE.svc.<domain>`), which Istio resolves.
    ///
    /// ```
    /// use mesh_core::networks::MeshNetworks;
    /// let networks = MeshNetworks::parse(
    ///     "networks:\n  network1:\n    endpoints:\n    - fromRegistry: cluster1\n    gateways:\n    - registryServiceName: istio-ingressgateway.istio-system.svc.cluster.local\n      port: 443\n",
    /// )?;
    /// assert_eq!(
    ///     networks.service_gateways("network1"),
    ///     [("istio-ingressgateway.istio-system.svc.cluster.local".to_owned(), 443)]
    /// );
    /// # Ok::<(), mesh_core::Error>(())
    /// ```
    pub fn service_gateways(&self, network: &str) -> Vec<(String, u16)> {
        self.gateway_entries(network, "registryServiceName")
            .map(|(name, port)| (name.to_owned(), port))
            .collect()
    }

    /// Makes `network` list `registry` among its endpoints and, when given, use
    /// `gateway` as its address-based gateway (replacing other address gateways,
    /// keeping `registryServiceName` ones). Returns whether anything changed; see
    /// [`MeshNetworks::reconcile`] for what changed.
    pub fn upsert(
        &mut self,
        network: &str,
        registry: &str,
        gateway: Option<&GatewayAddress>,
    ) -> bool {
        !self.reconcile(network, registry, gateway, None).is_empty()
    }

    /// Like [`MeshNetworks::upsert`], and says what it changed, one sentence per change
    /// (empty: nothing). `service` is the gateway's Service as `NAME.NAMESPACE`: a
    /// `registryServiceName` gateway naming it (`NAME.NAMESPACE.svc.<domain>`) on
    /// `gateway`'s port already reaches the network, as the guide writes it, and is kept
    /// without an address gateway beside it.
    ///
    /// ```
    /// use mesh_core::networks::MeshNetworks;
    /// let mut networks = MeshNetworks::parse(
    ///     "networks:\n  network2:\n    endpoints:\n    - fromRegistry: n2-k8s-config\n    gateways:\n    - address: 192.0.2.1\n      port: 443\n",
    /// )?;
    /// let moved = networks.reconcile("network2", "n2-k8s-config", Some(&"198.18.2.100:443".parse()?), None);
    /// assert_eq!(moved, ["network2: gateway 192.0.2.1:443 is now 198.18.2.100:443"]);
    /// assert!(networks.reconcile("network2", "n2-k8s-config", Some(&"198.18.2.100:443".parse()?), None).is_empty());
    /// # Ok::<(), mesh_core::Error>(())
    /// ```
    pub fn reconcile(
        &mut self,
        network: &str,
        registry: &str,
        gateway: Option<&GatewayAddress>,
        service: Option<&str>,
    ) -> Vec<String> {
        let by_service = service.is_some_and(|service| {
            let prefix = format!("{service}.svc.");
            self.service_gateways(network).iter().any(|(name, port)| {
                name.starts_with(&prefix) && *port == gateway.map_or(0, GatewayAddress::port)
            })
        });
        let mut said = Vec::new();
        if !self.networks().contains_key(network) {
            said.push(format!("added network {network}"));
        }
        let net = self
            .networks_mut()
            .entry(network.to_owned())
            .or_insert_with(|| json!({}));
        if !net.is_object() {
            *net = json!({});
        }
        let endpoints = net
            .as_object_mut()
            .expect("object")
            .entry("endpoints")
            .or_insert_with(|| json!([]));
        if !endpoints.is_array() {
            *endpoints = json!([]);
        }
        let endpoints = endpoints.as_array_mut().expect("array");
        if !endpoints
            .iter()
            .any(|e| e.get("fromRegistry").and_then(Value::as_str) == Some(registry))
        {
            endpoints.push(json!({ "fromRegistry": registry }));
            said.push(format!("{network}: added registry {registry}"));
        }
        let Some(gateway) = gateway else {
            return said;
        };
        let gateways = net
            .as_object_mut()
            .expect("object")
            .entry("gateways")
            .or_insert_with(|| json!([]));
        if !gateways.is_array() {
            *gateways = json!([]);
        }
        let gateways = gateways.as_array_mut().expect("array");
        if by_service {
            return said;
        }
        let wanted = json!({ "address": gateway.host(), "port": gateway.port() });
        let has_only_wanted = gateways
            .iter()
            .filter(|g| g.get("address").is_some())
            .eq(std::iter::once(&wanted));
        if !has_only_wanted {
            let old: Vec<String> = gateways
                .iter()
                .filter_map(|g| {
                    let host = g.get("address")?.as_str().unwrap_or("?");
                    match g.get("port").and_then(Value::as_u64) {
                        Some(port) => Some(format!("{host}:{port}")),
                        None => Some(host.to_owned()),
                    }
                })
                .collect();
            gateways.retain(|g| g.get("address").is_none());
            gateways.push(wanted);
            said.push(if old.is_empty() {
                format!("{network}: added gateway {gateway}")
            } else {
                format!("{network}: gateway {} is now {gateway}", old.join(", "))
            });
        }
        said
    }

    /// Removes `registry` from the endpoints of every network, and a network left
    /// with no endpoints. Returns whether anything changed.
    pub fn remove_registry(&mut self, registry: &str) -> bool {
        let before = self.doc.clone();
        let mut emptied = Vec::new();
        for (name, net) in self.networks_mut().iter_mut() {
            let Some(endpoints) = net.get_mut("endpoints").and_then(Value::as_array_mut) else {
                continue;
            };
            let had = endpoints.len();
            endpoints.retain(|e| e.get("fromRegistry").and_then(Value::as_str) != Some(registry));
            if had > 0 && endpoints.is_empty() {
                emptied.push(name.clone());
            }
        }
        for name in emptied {
            self.networks_mut().remove(&name);
        }
        self.doc != before
    }

    /// The document as YAML, for the ConfigMap.
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(&self.doc).expect("a JSON value serialises to YAML")
    }

    /// The `meshNetworks` key of istiod's `istio` ConfigMap; absent means no networks.
    pub fn from_config_map(cm: &ConfigMap) -> Result<MeshNetworks> {
        let yaml = cm.data.as_ref().and_then(|d| d.get(MESH_NETWORKS_KEY));
        MeshNetworks::parse(yaml.map(String::as_str).unwrap_or_default())
    }

    /// The `istio` ConfigMap in `namespace` holding only this document, for server-side apply.
    pub fn to_config_map(&self, namespace: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(MESH_CONFIG_MAP.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                MESH_NETWORKS_KEY.to_owned(),
                self.to_yaml(),
            )])),
            ..Default::default()
        }
    }
}

/// The key of the `istio` ConfigMap that holds `meshNetworks`.
pub const MESH_NETWORKS_KEY: &str = "meshNetworks";

/// Reads `meshNetworks` from the primary's ConfigMap, naming it when it is malformed and
/// telling the user to fix it and run `command` again.
pub(crate) fn read_mesh_networks(
    cm: &ConfigMap,
    cluster: &str,
    namespace: &str,
    command: &str,
) -> Result<MeshNetworks> {
    MeshNetworks::from_config_map(cm).map_err(|e| {
        let reason = match e {
            Error::InvalidMeshNetworks { reason } => reason,
            other => other.to_string(),
        };
        Error::Malformed {
            cluster: cluster.to_owned(),
            object: format!("ConfigMap {namespace}/{MESH_CONFIG_MAP} key {MESH_NETWORKS_KEY}"),
            reason: format!("{reason}; fix it with kubectl edit, then run {command} again"),
        }
    })
}

fn registries(net: &Value) -> Vec<String> {
    net.get("endpoints")
        .and_then(Value::as_array)
        .map(|eps| {
            eps.iter()
                .filter_map(|e| e.get("fromRegistry")?.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gw(text: &str) -> GatewayAddress {
        text.parse().unwrap()
    }

    fn shown(gateways: Vec<GatewayAddress>) -> Vec<String> {
        gateways.iter().map(ToString::to_string).collect()
    }

    const GUIDE: &str = r#"
networks:
  network1:
    endpoints:
    - fromRegistry: Kubernetes
    gateways:
    - address: 0.0.0.0
      port: 443
  elsewhere:
    endpoints:
    - fromCidr: 192.168.0.0/16
    gateways:
    - registryServiceName: istio-ingressgateway.istio-system.svc.cluster.local
      port: 443
"#;

    #[test]
    fn empty_documents_mean_no_networks() {
        for doc in ["", "networks: {}", "networks:", "{}"] {
            assert!(
                MeshNetworks::parse(doc).unwrap().names().is_empty(),
                "{doc:?}"
            );
        }
    }

    #[test]
    fn malformed_documents_are_refused() {
        assert!(MeshNetworks::parse("networks: [1, 2]").is_err());
        assert!(MeshNetworks::parse("- a\n- b").is_err());
        assert!(MeshNetworks::parse("networks: {a: [").is_err());
    }

    #[test]
    fn upsert_adds_a_network_and_keeps_the_others() {
        let mut n = MeshNetworks::parse(GUIDE).unwrap();
        assert!(n.upsert("network2", "cluster2", Some(&gw("127.0.2.100:15443"))));
        assert_eq!(n.names(), ["elsewhere", "network1", "network2"]);
        assert_eq!(n.network_of("cluster2").as_deref(), Some("network2"));
        assert_eq!(shown(n.gateways("network2")), ["127.0.2.100:15443"]);
        // What was there stays, field for field.
        let reparsed = MeshNetworks::parse(&n.to_yaml()).unwrap();
        assert_eq!(
            reparsed.doc["networks"]["elsewhere"],
            n.doc["networks"]["elsewhere"]
        );
        assert_eq!(shown(reparsed.gateways("network1")), ["0.0.0.0:443"]);
    }

    #[test]
    fn upsert_is_idempotent() {
        let mut n = MeshNetworks::parse(GUIDE).unwrap();
        assert!(n.upsert("network1", "cluster1", Some(&gw("127.0.1.100:15443"))));
        let once = n.clone();
        assert!(!n.upsert("network1", "cluster1", Some(&gw("127.0.1.100:15443"))));
        assert_eq!(n, once);
        let mut again = MeshNetworks::parse(&n.to_yaml()).unwrap();
        assert!(!again.upsert("network1", "cluster1", Some(&gw("127.0.1.100:15443"))));
    }

    #[test]
    fn upsert_replaces_a_changed_gateway_address_but_not_service_gateways() {
        let mut n = MeshNetworks::parse(GUIDE).unwrap();
        n.upsert("network1", "Kubernetes", Some(&gw("10.0.0.1:15443")));
        assert_eq!(shown(n.gateways("network1")), ["10.0.0.1:15443"]);
        n.upsert("elsewhere", "cluster9", Some(&gw("10.9.9.9:15443")));
        let gws = n.doc["networks"]["elsewhere"]["gateways"]
            .as_array()
            .unwrap();
        assert_eq!(
            gws.len(),
            2,
            "the registryServiceName gateway is kept: {gws:?}"
        );
    }

    #[test]
    fn a_gateway_named_by_its_service_is_kept_and_changes_are_said() {
        let mut n = MeshNetworks::parse(GUIDE).unwrap();
        let before = n.clone();
        // The guide's registryServiceName gateway on the Service's port reaches the network.
        let service = Some("istio-ingressgateway.istio-system");
        assert!(
            n.reconcile(
                "elsewhere",
                "cluster9",
                Some(&gw("198.18.1.100:443")),
                service
            ) == ["elsewhere: added registry cluster9"]
        );
        assert_eq!(n.gateways("elsewhere"), Vec::<GatewayAddress>::new());
        // On another port it does not: an address gateway is added beside it.
        let mut m = before.clone();
        assert_eq!(
            m.reconcile(
                "elsewhere",
                "cluster9",
                Some(&gw("198.18.1.100:15443")),
                service
            ),
            [
                "elsewhere: added registry cluster9",
                "elsewhere: added gateway 198.18.1.100:15443"
            ]
        );
        // A moved address is said, old and new.
        let mut m = before;
        assert_eq!(
            m.reconcile(
                "network1",
                "Kubernetes",
                Some(&gw("198.18.1.100:443")),
                None
            ),
            ["network1: gateway 0.0.0.0:443 is now 198.18.1.100:443"]
        );
        assert_eq!(
            m.reconcile("network3", "cluster3", None, None),
            [
                "added network network3",
                "network3: added registry cluster3"
            ]
        );
    }

    #[test]
    fn remove_registry_drops_emptied_networks_only() {
        let mut n = MeshNetworks::parse(GUIDE).unwrap();
        n.upsert("network1", "cluster1", None);
        n.upsert("network2", "cluster2", Some(&gw("127.0.2.100:15443")));
        assert!(n.remove_registry("cluster2"));
        assert_eq!(n.names(), ["elsewhere", "network1"]);
        assert!(n.remove_registry("cluster1"));
        assert_eq!(n.network_of("Kubernetes").as_deref(), Some("network1"));
        assert!(!n.remove_registry("cluster2"));
    }
}
