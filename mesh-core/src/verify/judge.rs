//! The judgement of what istiod told one sidecar about one service: a pure function of
//! what the clusters hold (the service's ready pods, each network's gateway) and the
//! endpoints the sidecar received, so that every rule is a row of a table test.
//!
//! The rules are Istio's split-horizon EDS, as a sidecar in network N needs it:
//!
//! - every ready pod of the service in N is an endpoint, at its pod IP and port;
//! - every other network with ready pods appears only as its gateway address and port,
//!   weighted by how many ready pods are behind it (relative to one pod of N);
//! - no pod IP of another network, and no address that is neither, is an endpoint.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::status::CheckState;

/// A ready pod of the service, as the cluster holding it says.
///
/// ```
/// let b = mesh_core::verify::Backend::new("cluster2", Some("network2"), "10.2.0.7", 5000);
/// assert_eq!(b.endpoint(), "10.2.0.7:5000");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backend {
    /// The cluster ID holding it.
    pub cluster: String,
    /// Its network (`None`: the cluster declares none).
    pub network: Option<String>,
    /// Its `version` label, if any (helloworld's `v1`, `v2`).
    pub version: Option<String>,
    /// Its pod IP.
    pub address: String,
    /// The port the service's port leads to.
    pub port: u32,
    /// Whether it has a sidecar (label `security.istio.io/tlsMode=istio`, as Istio's
    /// injector sets it): istiod sends a pod to other networks only then, through its
    /// network's gateway with mutual TLS.
    pub sidecar: bool,
}

impl Backend {
    /// A backend with a sidecar and without a version label.
    ///
    /// ```
    /// let b = mesh_core::verify::Backend::new("cluster1", None, "10.1.0.5", 5000);
    /// assert!(b.version.is_none() && b.network.is_none() && b.sidecar);
    /// ```
    pub fn new(cluster: &str, network: Option<&str>, address: &str, port: u32) -> Backend {
        Backend {
            cluster: cluster.to_owned(),
            network: network.map(str::to_owned),
            version: None,
            address: address.to_owned(),
            port,
            sidecar: true,
        }
    }

    /// `ADDRESS:PORT`.
    ///
    /// ```
    /// let b = mesh_core::verify::Backend::new("c", None, "10.1.0.5", 80);
    /// assert_eq!(b.endpoint(), "10.1.0.5:80");
    /// ```
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }

    /// What the matrix calls it: `v2 in cluster2`, or `a pod in cluster2`.
    fn label(&self) -> String {
        match &self.version {
            Some(v) => format!("{v} in {}", self.cluster),
            None => format!("a pod in {}", self.cluster),
        }
    }
}

/// A network's east-west gateway, as the mesh's configuration gives it (`meshNetworks`).
///
/// ```
/// let g = mesh_core::verify::NetworkGateway::new("network2", "172.18.0.9", 15443);
/// assert_eq!(g.endpoint(), "172.18.0.9:15443");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkGateway {
    /// The network it leads into.
    pub network: String,
    /// Its address.
    pub address: String,
    /// Its TLS (`AUTO_PASSTHROUGH`) port.
    pub port: u32,
}

impl NetworkGateway {
    /// A gateway of `network`.
    ///
    /// ```
    /// let g = mesh_core::verify::NetworkGateway::new("n", "1.2.3.4", 15443);
    /// assert_eq!(g.network, "n");
    /// ```
    pub fn new(network: &str, address: &str, port: u32) -> NetworkGateway {
        NetworkGateway {
            network: network.to_owned(),
            address: address.to_owned(),
            port,
        }
    }

    /// `ADDRESS:PORT`.
    ///
    /// ```
    /// assert_eq!(mesh_core::verify::NetworkGateway::new("n", "h", 1).endpoint(), "h:1");
    /// ```
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }
}

/// One endpoint a sidecar received (EDS), decoded.
///
/// ```
/// let e = mesh_core::verify::ReceivedEndpoint::new("10.1.0.5", 5000, 1);
/// assert_eq!(e.endpoint(), "10.1.0.5:5000");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceivedEndpoint {
    /// Its address.
    pub address: String,
    /// Its port.
    pub port: u32,
    /// Its load-balancing weight (Envoy's default, 1, when unset).
    pub weight: u32,
}

impl ReceivedEndpoint {
    /// An endpoint at `address:port` with `weight`.
    ///
    /// ```
    /// assert_eq!(mesh_core::verify::ReceivedEndpoint::new("a", 1, 3).weight, 3);
    /// ```
    pub fn new(address: &str, port: u32, weight: u32) -> ReceivedEndpoint {
        ReceivedEndpoint {
            address: address.to_owned(),
            port,
            weight,
        }
    }

    /// `ADDRESS:PORT`.
    ///
    /// ```
    /// assert_eq!(mesh_core::verify::ReceivedEndpoint::new("a", 1, 1).endpoint(), "a:1");
    /// ```
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }
}

/// What a sidecar in one cluster should be told: the truth the clusters hold.
///
/// ```
/// use mesh_core::verify::{Backend, Expected};
/// let e = Expected {
///     client_cluster: "cluster1".into(),
///     client_network: Some("network1".into()),
///     backends: vec![Backend::new("cluster1", Some("network1"), "10.1.0.5", 5000)],
///     gateways: vec![],
/// };
/// assert_eq!(e.backends.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The sidecar's cluster ID.
    pub client_cluster: String,
    /// The sidecar's network.
    pub client_network: Option<String>,
    /// Every ready pod of the service, in every cluster of the mesh.
    pub backends: Vec<Backend>,
    /// Every network's gateways.
    pub gateways: Vec<NetworkGateway>,
}

/// What went wrong with one row; serialized as a kebab-case id, stable for callers.
///
/// ```
/// use mesh_core::verify::EndpointProblem;
/// assert_eq!(serde_json::to_value(EndpointProblem::PodOfOtherNetwork).unwrap(), "pod-of-other-network");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum EndpointProblem {
    /// The sidecar has no cluster (CDS) for the service at all.
    ServiceUnknown,
    /// A ready pod of the sidecar's own network is not an endpoint.
    PodMissing,
    /// A network's ready pods have no sidecar: istiod sends them to no other network.
    NoSidecar,
    /// A network with ready pods has no gateway in the mesh's configuration.
    NoGateway,
    /// A network's gateway is not an endpoint: its pods are unreachable.
    GatewayMissing,
    /// A network's gateway is an endpoint with a weight other than its pod count.
    GatewayWeight,
    /// A pod IP of another network was sent: unroutable from the sidecar's network.
    PodOfOtherNetwork,
    /// An address that is neither a pod of the service nor a gateway.
    UnknownAddress,
    /// The cluster holding the pods is not part of the mesh (no link reads it).
    NotInMesh,
}

/// One cell of the matrix: what one sidecar was told about one target.
///
/// ```
/// use mesh_core::verify::{judge, Backend, Expected, ReceivedEndpoint};
/// let rows = judge(
///     &Expected {
///         client_cluster: "cluster1".into(),
///         client_network: Some("network1".into()),
///         backends: vec![Backend::new("cluster1", Some("network1"), "10.1.0.5", 5000)],
///         gateways: vec![],
///     },
///     Some(&[ReceivedEndpoint::new("10.1.0.5", 5000, 1)]),
/// );
/// assert_eq!(rows[0].state, mesh_core::CheckState::Pass);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointRow {
    /// The sidecar's cluster ID.
    pub client: String,
    /// What it should reach: `v1 in cluster1`, `network2 (v2 in cluster2)`.
    pub target: String,
    /// The cluster holding the target, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_cluster: Option<String>,
    /// The target's network, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_network: Option<String>,
    /// What the sidecar should have received (`ADDR:PORT`, with `×N` for a gateway).
    pub expected: String,
    /// What it received for the target (`ADDR:PORT ×WEIGHT`), empty if nothing.
    pub received: Vec<String>,
    /// Pass or fail.
    pub state: CheckState,
    /// What is wrong, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<EndpointProblem>,
    /// The cause found in the clusters, one line, when it failed (filled by the caller
    /// that read them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// Judges the endpoints one sidecar received for the service (`None`: its cluster is not
/// in the sidecar's CDS). Returns a row per pod of its own network, a row per other
/// network with ready pods, and a row per address that is neither; pure.
///
/// ```
/// use mesh_core::verify::*;
/// use mesh_core::CheckState;
/// let expected = Expected {
///     client_cluster: "cluster1".into(),
///     client_network: Some("network1".into()),
///     backends: vec![
///         Backend::new("cluster1", Some("network1"), "10.1.0.5", 5000),
///         Backend::new("cluster2", Some("network2"), "10.2.0.7", 5000),
///     ],
///     gateways: vec![NetworkGateway::new("network2", "172.18.0.9", 15443)],
/// };
/// // Split horizon broken: network2's pod IP instead of its gateway.
/// let rows = judge(&expected, Some(&[
///     ReceivedEndpoint::new("10.1.0.5", 5000, 1),
///     ReceivedEndpoint::new("10.2.0.7", 5000, 1),
/// ]));
/// assert_eq!(rows[1].state, CheckState::Fail);
/// assert_eq!(rows[1].problem, Some(EndpointProblem::PodOfOtherNetwork));
/// ```
pub fn judge(expected: &Expected, received: Option<&[ReceivedEndpoint]>) -> Vec<EndpointRow> {
    let client = expected.client_cluster.clone();
    let Some(received) = received else {
        return vec![EndpointRow {
            client,
            target: "the service".into(),
            target_cluster: None,
            target_network: None,
            expected: "a cluster (CDS) for the service".into(),
            received: Vec::new(),
            state: CheckState::Fail,
            problem: Some(EndpointProblem::ServiceUnknown),
            hint: None,
        }];
    };
    let shown = |e: &ReceivedEndpoint| format!("{} ×{}", e.endpoint(), e.weight);
    let mut accounted = vec![false; received.len()];
    let mut rows = Vec::new();

    // The sidecar's own network: each ready pod at its IP. The weight of one of them is
    // the unit a gateway's weight is counted in.
    let mut unit = None;
    for backend in expected
        .backends
        .iter()
        .filter(|b| b.network == expected.client_network)
    {
        let found: Vec<usize> = (0..received.len())
            .filter(|&i| received[i].address == backend.address && received[i].port == backend.port)
            .collect();
        for &i in &found {
            accounted[i] = true;
            unit.get_or_insert(received[i].weight.max(1));
        }
        rows.push(EndpointRow {
            client: client.clone(),
            target: backend.label(),
            target_cluster: Some(backend.cluster.clone()),
            target_network: backend.network.clone(),
            expected: backend.endpoint(),
            received: found.iter().map(|&i| shown(&received[i])).collect(),
            state: if found.is_empty() {
                CheckState::Fail
            } else {
                CheckState::Pass
            },
            problem: found.is_empty().then_some(EndpointProblem::PodMissing),
            hint: None,
        });
    }
    let unit = unit.unwrap_or(1);

    // Every other network with ready pods: only through its gateways, weighted by its pods.
    let mut others: BTreeMap<Option<&str>, Vec<&Backend>> = BTreeMap::new();
    for backend in &expected.backends {
        if backend.network != expected.client_network {
            others
                .entry(backend.network.as_deref())
                .or_default()
                .push(backend);
        }
    }
    for (network, backends) in others {
        // Only pods with a sidecar are reachable through a gateway (mutual TLS).
        let pods = backends.iter().filter(|b| b.sidecar).count() as u32;
        let names = backends
            .iter()
            .map(|b| b.label())
            .collect::<Vec<_>>()
            .join(", ");
        let clusters: std::collections::BTreeSet<&str> =
            backends.iter().map(|b| b.cluster.as_str()).collect();
        let target = format!("{} ({names})", network.unwrap_or("no network"));
        let gateways: Vec<&NetworkGateway> = expected
            .gateways
            .iter()
            .filter(|g| Some(g.network.as_str()) == network)
            .collect();
        // Pod IPs of that network sent as they are: unroutable from here.
        let leaked: Vec<usize> = (0..received.len())
            .filter(|&i| {
                backends
                    .iter()
                    .any(|b| received[i].address == b.address && received[i].port == b.port)
            })
            .collect();
        let through: Vec<usize> = (0..received.len())
            .filter(|&i| {
                gateways
                    .iter()
                    .any(|g| received[i].address == g.address && received[i].port == g.port)
            })
            .collect();
        for &i in leaked.iter().chain(&through) {
            accounted[i] = true;
        }
        let weight: u32 = through.iter().map(|&i| received[i].weight).sum();
        let problem = if !leaked.is_empty() {
            Some(EndpointProblem::PodOfOtherNetwork)
        } else if pods == 0 {
            Some(EndpointProblem::NoSidecar)
        } else if gateways.is_empty() {
            Some(EndpointProblem::NoGateway)
        } else if through.is_empty() {
            Some(EndpointProblem::GatewayMissing)
        } else if weight != pods * unit {
            Some(EndpointProblem::GatewayWeight)
        } else {
            None
        };
        let expected_text = if gateways.is_empty() {
            format!("a gateway of {} ×{pods}", network.unwrap_or("its network"))
        } else {
            gateways
                .iter()
                .map(|g| format!("{} ×{}", g.endpoint(), pods * unit))
                .collect::<Vec<_>>()
                .join(" or ")
        };
        rows.push(EndpointRow {
            client: client.clone(),
            target,
            target_cluster: clusters
                .first()
                .filter(|_| clusters.len() == 1)
                .map(|c| (*c).to_owned()),
            target_network: network.map(str::to_owned),
            expected: expected_text,
            received: leaked
                .iter()
                .chain(&through)
                .map(|&i| shown(&received[i]))
                .collect(),
            state: if problem.is_some() {
                CheckState::Fail
            } else {
                CheckState::Pass
            },
            problem,
            hint: None,
        });
    }

    // Anything else is an address no sidecar of this mesh can use.
    for (i, endpoint) in received.iter().enumerate() {
        if !accounted[i] {
            rows.push(EndpointRow {
                client: client.clone(),
                target: "no pod or gateway".into(),
                target_cluster: None,
                target_network: None,
                expected: "nothing".into(),
                received: vec![shown(endpoint)],
                state: CheckState::Fail,
                problem: Some(EndpointProblem::UnknownAddress),
                hint: None,
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(version: &str, cluster: &str, network: &str, ip: &str) -> Backend {
        Backend {
            version: Some(version.into()),
            ..Backend::new(cluster, Some(network), ip, 5000)
        }
    }

    fn guide(client: &str, network: &str) -> Expected {
        Expected {
            client_cluster: client.into(),
            client_network: Some(network.into()),
            backends: vec![
                v("v1", "cluster1", "network1", "10.1.0.5"),
                v("v2", "cluster2", "network2", "10.2.0.7"),
            ],
            gateways: vec![
                NetworkGateway::new("network1", "172.18.0.8", 15443),
                NetworkGateway::new("network2", "172.18.0.9", 15443),
            ],
        }
    }

    fn ep(address: &str, port: u32, weight: u32) -> ReceivedEndpoint {
        ReceivedEndpoint::new(address, port, weight)
    }

    /// (case, expected, received, per row: (target prefix, problem)).
    #[allow(clippy::type_complexity)]
    fn table() -> Vec<(
        &'static str,
        Expected,
        Option<Vec<ReceivedEndpoint>>,
        Vec<(&'static str, Option<EndpointProblem>)>,
    )> {
        use EndpointProblem::*;
        let three_in_network2 = {
            let mut e = guide("cluster1", "network1");
            e.backends.push(v("v2", "cluster2", "network2", "10.2.0.8"));
            e.backends.push(v("v3", "cluster3", "network2", "10.3.0.4"));
            e
        };
        vec![
            (
                "the guide, seen from network1",
                guide("cluster1", "network1"),
                Some(vec![ep("10.1.0.5", 5000, 1), ep("172.18.0.9", 15443, 1)]),
                vec![("v1 in cluster1", None), ("network2", None)],
            ),
            (
                "the guide, seen from network2",
                guide("cluster2", "network2"),
                Some(vec![ep("10.2.0.7", 5000, 1), ep("172.18.0.8", 15443, 1)]),
                vec![("v2 in cluster2", None), ("network1", None)],
            ),
            (
                "no cluster for the service",
                guide("cluster1", "network1"),
                None,
                vec![("the service", Some(ServiceUnknown))],
            ),
            (
                "its own pod missing",
                guide("cluster1", "network1"),
                Some(vec![ep("172.18.0.9", 15443, 1)]),
                vec![("v1 in cluster1", Some(PodMissing)), ("network2", None)],
            ),
            (
                "the other network's pod IP instead of its gateway",
                guide("cluster1", "network1"),
                Some(vec![ep("10.1.0.5", 5000, 1), ep("10.2.0.7", 5000, 1)]),
                vec![
                    ("v1 in cluster1", None),
                    ("network2", Some(PodOfOtherNetwork)),
                ],
            ),
            (
                "the other network missing",
                guide("cluster1", "network1"),
                Some(vec![ep("10.1.0.5", 5000, 1)]),
                vec![("v1 in cluster1", None), ("network2", Some(GatewayMissing))],
            ),
            (
                "no gateway configured for the other network",
                Expected {
                    gateways: vec![],
                    ..guide("cluster1", "network1")
                },
                Some(vec![ep("10.1.0.5", 5000, 1)]),
                vec![("v1 in cluster1", None), ("network2", Some(NoGateway))],
            ),
            (
                "a gateway at another port",
                guide("cluster1", "network1"),
                Some(vec![ep("10.1.0.5", 5000, 1), ep("172.18.0.9", 443, 1)]),
                vec![
                    ("v1 in cluster1", None),
                    ("network2", Some(GatewayMissing)),
                    ("no pod or gateway", Some(UnknownAddress)),
                ],
            ),
            (
                "three pods behind one gateway weigh three",
                three_in_network2.clone(),
                Some(vec![ep("10.1.0.5", 5000, 1), ep("172.18.0.9", 15443, 3)]),
                vec![("v1 in cluster1", None), ("network2", None)],
            ),
            (
                "three pods behind one gateway weighing one",
                three_in_network2,
                Some(vec![ep("10.1.0.5", 5000, 1), ep("172.18.0.9", 15443, 1)]),
                vec![("v1 in cluster1", None), ("network2", Some(GatewayWeight))],
            ),
            (
                "weights scaled alike pass",
                guide("cluster1", "network1"),
                Some(vec![ep("10.1.0.5", 5000, 2), ep("172.18.0.9", 15443, 2)]),
                vec![("v1 in cluster1", None), ("network2", None)],
            ),
            (
                "one network: every pod direct, no gateway needed",
                Expected {
                    client_cluster: "cluster4".into(),
                    client_network: None,
                    backends: vec![
                        Backend::new("cluster4", None, "10.4.0.2", 5000),
                        Backend::new("cluster5", None, "10.5.0.2", 5000),
                    ],
                    gateways: vec![],
                },
                Some(vec![ep("10.4.0.2", 5000, 1), ep("10.5.0.2", 5000, 1)]),
                vec![("a pod in cluster4", None), ("a pod in cluster5", None)],
            ),
            (
                "the other network's pods without a sidecar",
                Expected {
                    backends: vec![
                        v("v1", "cluster1", "network1", "10.1.0.5"),
                        Backend {
                            sidecar: false,
                            ..v("v2", "cluster2", "network2", "10.2.0.7")
                        },
                    ],
                    ..guide("cluster1", "network1")
                },
                Some(vec![ep("10.1.0.5", 5000, 1)]),
                vec![("v1 in cluster1", None), ("network2", Some(NoSidecar))],
            ),
            (
                "its own pod without a sidecar is still sent",
                Expected {
                    backends: vec![
                        Backend {
                            sidecar: false,
                            ..v("v1", "cluster1", "network1", "10.1.0.5")
                        },
                        v("v2", "cluster2", "network2", "10.2.0.7"),
                    ],
                    ..guide("cluster1", "network1")
                },
                Some(vec![ep("10.1.0.5", 5000, 1), ep("172.18.0.9", 15443, 1)]),
                vec![("v1 in cluster1", None), ("network2", None)],
            ),
            (
                "a stale address",
                guide("cluster1", "network1"),
                Some(vec![
                    ep("10.1.0.5", 5000, 1),
                    ep("172.18.0.9", 15443, 1),
                    ep("10.1.0.99", 5000, 1),
                ]),
                vec![
                    ("v1 in cluster1", None),
                    ("network2", None),
                    ("no pod or gateway", Some(UnknownAddress)),
                ],
            ),
        ]
    }

    #[test]
    fn every_case_of_the_table() {
        for (case, expected, received, want) in table() {
            let rows = judge(&expected, received.as_deref());
            let got: Vec<(String, Option<EndpointProblem>)> =
                rows.iter().map(|r| (r.target.clone(), r.problem)).collect();
            assert_eq!(rows.len(), want.len(), "{case}: {got:?}");
            for (row, (target, problem)) in rows.iter().zip(&want) {
                assert!(row.target.starts_with(target), "{case}: {got:?}");
                assert_eq!(row.problem, *problem, "{case}: {got:?}");
                let state = if problem.is_some() {
                    CheckState::Fail
                } else {
                    CheckState::Pass
                };
                assert_eq!(row.state, state, "{case}");
                assert_eq!(row.client, expected.client_cluster, "{case}");
            }
        }
    }

    #[test]
    fn a_gateway_row_shows_what_was_expected_and_received() {
        let rows = judge(
            &guide("cluster1", "network1"),
            Some(&[ep("10.1.0.5", 5000, 1), ep("172.18.0.9", 15443, 1)]),
        );
        assert_eq!(rows[1].target, "network2 (v2 in cluster2)");
        assert_eq!(rows[1].expected, "172.18.0.9:15443 ×1");
        assert_eq!(rows[1].received, ["172.18.0.9:15443 ×1"]);
        assert_eq!(rows[1].target_cluster.as_deref(), Some("cluster2"));
        assert_eq!(rows[0].expected, "10.1.0.5:5000");
    }
}
