//! Ask istiod, over xDS, exactly what one Istio sidecar is told about a service: the
//! clusters it gets (CDS) and the endpoints of one of them (EDS), decoded.
//!
//! What decides whether traffic crosses networks in a multi-network mesh is not what
//! istiod knows but what it *tells each sidecar*: a sidecar in `network1` must receive the
//! pod IPs of its own network and, for every other network, only that network's east-west
//! gateway address and port (Istio's split-horizon EDS). [`fetch`] connects to istiod as a
//! sidecar would — the node ID and node metadata istio-agent sends, described by a
//! [`ProxyIdentity`] — opens one aggregated (ADS, state-of-the-world) stream and asks:
//!
//! 1. CDS (every cluster, as a sidecar's first request does), read until it arrives, ACKed;
//! 2. EDS for the one cluster asked about ([`outbound_cluster`] names a service's), only if
//!    CDS has it, read until it arrives.
//!
//! Everything runs under one deadline. The answer is a [`SidecarView`].
//!
//! # Reaching istiod
//!
//! [`Transport::Tls`] is how a sidecar reaches istiod (port 15012): trusting the mesh root,
//! sending a Kubernetes token of the sidecar's ServiceAccount (audience `istio-ca`) that
//! istiod reviews against the cluster named by [`ProxyIdentity::cluster_id`]; istiod then
//! only answers if the token's ServiceAccount and namespace are the ones the proxy claims.
//! [`Transport::Plaintext`] is istiod's unauthenticated port (15010), for where a user
//! points at it.
//!
//! # Invariants
//!
//! - No printing: results are values, diagnostics go to `tracing`.
//! - The token never appears in `Debug` output, errors or logs (it is a
//!   [`secrecy::SecretString`], exposed only into the sensitive `authorization` header).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use mesh_xds::{ProxyIdentity, Transport, XdsServer, fetch, outbound_cluster};
//!
//! # async fn run() -> Result<(), mesh_xds::Error> {
//! let server = XdsServer { address: "127.0.0.1:15010".into(), transport: Transport::Plaintext };
//! let proxy = ProxyIdentity {
//!     ip: "10.244.0.12".into(),
//!     pod: "sleep-7656cf8794-abcde".into(),
//!     namespace: "sample".into(),
//!     service_account: "sleep".into(),
//!     cluster_id: "cluster1".into(),
//!     network: Some("network1".into()),
//!     ..ProxyIdentity::default()
//! };
//! let cluster = outbound_cluster("helloworld.sample.svc.cluster.local", 5000);
//! let view = fetch(&server, &proxy, &cluster, Duration::from_secs(10)).await?;
//! for endpoint in view.endpoints.unwrap_or_default() {
//!     tracing::info!(address = %endpoint.address, port = endpoint.port, weight = endpoint.weight);
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs, clippy::print_stdout, clippy::print_stderr)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The Envoy API types this crate speaks ([`lb_endpoints`] takes one), re-exported so a
/// caller uses the same version.
///
/// ```
/// let assignment = mesh_xds::envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment::default();
/// assert!(mesh_xds::lb_endpoints(&assignment).is_empty());
/// ```
pub use envoy_types;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{Locality, Metadata, Node, address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};
use envoy_types::pb::envoy::service::discovery::v3::{
    DiscoveryRequest, DiscoveryResponse,
    aggregated_discovery_service_client::AggregatedDiscoveryServiceClient,
};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use prost::Message;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::Streaming;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tracing::Instrument;

/// The type URL of an Envoy cluster (what CDS answers with).
///
/// ```
/// assert!(mesh_xds::CLUSTER_TYPE.ends_with("envoy.config.cluster.v3.Cluster"));
/// ```
pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

/// The type URL of an Envoy cluster's endpoints (what EDS answers with).
///
/// ```
/// assert!(mesh_xds::ENDPOINTS_TYPE.ends_with("ClusterLoadAssignment"));
/// ```
pub const ENDPOINTS_TYPE: &str =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

/// The name istiod's serving certificate carries, as a sidecar expects it.
///
/// ```
/// assert_eq!(mesh_xds::DEFAULT_SERVER_NAME, "istiod.istio-system.svc");
/// ```
pub const DEFAULT_SERVER_NAME: &str = "istiod.istio-system.svc";

/// Where istiod's xDS server is and how to reach it.
///
/// ```
/// let server = mesh_xds::XdsServer {
///     address: "127.0.0.1:15010".into(),
///     transport: mesh_xds::Transport::Plaintext,
/// };
/// assert_eq!(server.address, "127.0.0.1:15010");
/// ```
#[derive(Debug, Clone)]
pub struct XdsServer {
    /// `host:port` of istiod's gRPC port (15010 plaintext, 15012 TLS).
    pub address: String,
    /// Plaintext or TLS with a sidecar's credentials.
    pub transport: Transport,
}

/// How to reach istiod's xDS server. `Debug` never shows the token.
///
/// ```
/// use secrecy::SecretString;
/// let tls = mesh_xds::Transport::Tls {
///     root_pem: "-----BEGIN CERTIFICATE-----\n…".into(),
///     server_name: mesh_xds::DEFAULT_SERVER_NAME.into(),
///     token: SecretString::from("eyJhbGciOi…"),
/// };
/// assert!(!format!("{tls:?}").contains("eyJhbGciOi"));
/// ```
#[derive(Debug, Clone)]
pub enum Transport {
    /// istiod's plaintext port (15010): no authentication, only where the user points at it.
    Plaintext,
    /// istiod's TLS port (15012) as a sidecar reaches it: trust `root_pem` (the mesh root),
    /// expect `server_name` (usually [`DEFAULT_SERVER_NAME`]), send `token` as
    /// `authorization: Bearer …` (a TokenRequest token for the sidecar's ServiceAccount,
    /// audience `istio-ca`).
    Tls {
        /// The mesh's root certificate(s), PEM.
        root_pem: String,
        /// The name istiod's certificate must carry (TLS server name).
        server_name: String,
        /// A token of the ServiceAccount the proxy claims.
        token: SecretString,
    },
}

/// Who the proxy says it is: what istio-agent puts in the node ID and node metadata.
///
/// ```
/// let proxy = mesh_xds::ProxyIdentity {
///     ip: "10.244.0.12".into(),
///     pod: "sleep-1".into(),
///     namespace: "sample".into(),
///     service_account: "sleep".into(),
///     cluster_id: "cluster1".into(),
///     ..Default::default()
/// };
/// assert_eq!(proxy.node_id(), "sidecar~10.244.0.12~sleep-1.sample~sample.svc.cluster.local");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyIdentity {
    /// The pod's IP (node ID and `INSTANCE_IPS`).
    pub ip: String,
    /// The pod's name (`NAME`).
    pub pod: String,
    /// The pod's namespace (`NAMESPACE`).
    pub namespace: String,
    /// The pod's ServiceAccount (`SERVICE_ACCOUNT`); over TLS the token must be of it.
    pub service_account: String,
    /// The cluster ID the pod's cluster has in the mesh (`CLUSTER_ID`, and the `clusterid`
    /// request header istiod reviews the token against).
    pub cluster_id: String,
    /// The pod's network (`NETWORK`); `None` sends none (a single-network mesh).
    pub network: Option<String>,
    /// The pod's labels (`LABELS`).
    pub labels: BTreeMap<String, String>,
    /// The mesh ID (`MESH_ID`), when the mesh has one.
    pub mesh_id: Option<String>,
    /// The proxy's Istio version (`ISTIO_VERSION`); `None` sends none.
    pub istio_version: Option<String>,
    /// The workload (`WORKLOAD_NAME`: the Deployment's name); empty sends the `app` label,
    /// or else the pod's name.
    pub workload_name: String,
}

impl ProxyIdentity {
    /// The Envoy node ID a sidecar of this pod sends:
    /// `sidecar~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local`.
    ///
    /// ```
    /// let proxy = mesh_xds::ProxyIdentity {
    ///     ip: "10.0.0.1".into(), pod: "p".into(), namespace: "ns".into(), ..Default::default()
    /// };
    /// assert_eq!(proxy.node_id(), "sidecar~10.0.0.1~p.ns~ns.svc.cluster.local");
    /// ```
    pub fn node_id(&self) -> String {
        format!(
            "sidecar~{}~{}.{}~{}.svc.cluster.local",
            self.ip, self.pod, self.namespace, self.namespace
        )
    }

    /// The workload name sent as `WORKLOAD_NAME`: [`ProxyIdentity::workload_name`], else
    /// the `app` label, else the pod's name.
    ///
    /// ```
    /// let mut proxy = mesh_xds::ProxyIdentity { pod: "sleep-1".into(), ..Default::default() };
    /// assert_eq!(proxy.workload(), "sleep-1");
    /// proxy.labels.insert("app".into(), "sleep".into());
    /// assert_eq!(proxy.workload(), "sleep");
    /// ```
    pub fn workload(&self) -> &str {
        if !self.workload_name.is_empty() {
            &self.workload_name
        } else if let Some(app) = self.labels.get("app") {
            app
        } else {
            &self.pod
        }
    }

    /// The node metadata istio-agent sends (`google.protobuf.Struct`): `CLUSTER_ID`,
    /// `NETWORK` (when known), `NAMESPACE`, `SERVICE_ACCOUNT`, `NAME`, `LABELS`,
    /// `INSTANCE_IPS`, `INTERCEPTION_MODE=REDIRECT`, `MESH_ID` and `ISTIO_VERSION` (when
    /// known), `WORKLOAD_NAME`.
    ///
    /// ```
    /// let proxy = mesh_xds::ProxyIdentity { cluster_id: "cluster1".into(), ..Default::default() };
    /// let metadata = proxy.node_metadata();
    /// assert!(metadata.fields.contains_key("CLUSTER_ID"));
    /// assert!(!metadata.fields.contains_key("NETWORK"));
    /// ```
    pub fn node_metadata(&self) -> Struct {
        let mut fields = HashMap::new();
        let mut put = |key: &str, value: Value| {
            fields.insert(key.to_owned(), value);
        };
        put("CLUSTER_ID", string(&self.cluster_id));
        if let Some(network) = &self.network {
            put("NETWORK", string(network));
        }
        put("NAMESPACE", string(&self.namespace));
        put("SERVICE_ACCOUNT", string(&self.service_account));
        put("NAME", string(&self.pod));
        put(
            "LABELS",
            Value {
                kind: Some(Kind::StructValue(Struct {
                    fields: self
                        .labels
                        .iter()
                        .map(|(k, v)| (k.clone(), string(v)))
                        .collect(),
                })),
            },
        );
        put("INSTANCE_IPS", string(&self.ip));
        put("INTERCEPTION_MODE", string("REDIRECT"));
        if let Some(mesh_id) = &self.mesh_id {
            put("MESH_ID", string(mesh_id));
        }
        if let Some(version) = &self.istio_version {
            put("ISTIO_VERSION", string(version));
        }
        put("WORKLOAD_NAME", string(self.workload()));
        Struct { fields }
    }

    /// The Envoy node this proxy sends in its first request.
    fn node(&self) -> Node {
        Node {
            id: self.node_id(),
            cluster: format!("{}.{}", self.workload(), self.namespace),
            metadata: Some(self.node_metadata()),
            ..Node::default()
        }
    }
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

/// The name istiod gives the outbound cluster of a service port, as a sidecar sees it.
///
/// ```
/// assert_eq!(
///     mesh_xds::outbound_cluster("helloworld.sample.svc.cluster.local", 5000),
///     "outbound|5000||helloworld.sample.svc.cluster.local",
/// );
/// ```
pub fn outbound_cluster(host: &str, port: u16) -> String {
    format!("outbound|{port}||{host}")
}

/// What istiod told the sidecar.
///
/// ```
/// let view = mesh_xds::SidecarView { clusters: vec!["BlackHoleCluster".into()], endpoints: None };
/// assert!(view.endpoints.is_none(), "the asked cluster is not in CDS");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarView {
    /// Every cluster name CDS gave, sorted.
    pub clusters: Vec<String>,
    /// The asked cluster's endpoints from EDS; `None`: the cluster is not in CDS (EDS was
    /// not asked).
    pub endpoints: Option<Vec<LbEndpoint>>,
}

/// One endpoint of a cluster, as the sidecar would load-balance to it: a pod of its own
/// network, or another network's gateway.
///
/// ```
/// let endpoint = mesh_xds::LbEndpoint {
///     address: "172.18.0.5".into(), port: 15443, weight: 1, healthy: true,
///     network: None, cluster_id: Some("cluster2".into()), locality: None,
/// };
/// assert_eq!(endpoint.port, 15443);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbEndpoint {
    /// The socket address's host (an IP, or a gateway's host name).
    pub address: String,
    /// The socket address's port.
    pub port: u32,
    /// The endpoint's load-balancing weight (1 when istiod sets none, Envoy's default).
    pub weight: u32,
    /// Health status `UNKNOWN` or `HEALTHY` (what Envoy sends traffic to).
    pub healthy: bool,
    /// From filter metadata `istio`: the network istiod attached, if any.
    pub network: Option<String>,
    /// From filter metadata `istio`: the cluster ID istiod attached (its `cluster` field or
    /// the last field of `workload`), if any.
    pub cluster_id: Option<String>,
    /// `region/zone/subzone` of the endpoint's locality, if it has one.
    pub locality: Option<String>,
}

/// Why asking istiod failed. Every message names istiod's address and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// istiod could not be reached (or the address is not `host:port`).
    #[error(
        "cannot connect to istiod's xDS server at {address}: {} — check the address, that istiod listens there and, over TLS, the root and server name",
        chain(source)
    )]
    Connect {
        /// istiod's address.
        address: String,
        /// What failed.
        #[source]
        source: tonic::transport::Error,
    },
    /// The root certificate given to trust istiod is not usable.
    #[error(
        "cannot trust istiod at {address}: {reason} — give the mesh's root certificate (PEM, the istio-ca-root-cert ConfigMap's root-cert.pem)"
    )]
    Tls {
        /// istiod's address.
        address: String,
        /// What is wrong with the root PEM.
        reason: String,
    },
    /// A value of the proxy's identity cannot be sent as a gRPC header.
    #[error("cannot ask istiod at {address}: {reason}")]
    Request {
        /// istiod's address.
        address: String,
        /// What is wrong.
        reason: String,
    },
    /// istiod refused the proxy's token or identity.
    #[error(
        "istiod at {address} refused the proxy ({code:?}): {message} — the token must be a valid token of the ServiceAccount and namespace the proxy claims (audience istio-ca), from the cluster the proxy's cluster ID names"
    )]
    Refused {
        /// `Unauthenticated` or `PermissionDenied`.
        code: tonic::Code,
        /// istiod's message.
        message: String,
        /// istiod's address.
        address: String,
    },
    /// istiod answered with another gRPC error.
    #[error("istiod at {address} answered {code:?}: {message} — see istiod's log")]
    Status {
        /// The gRPC status code.
        code: tonic::Code,
        /// istiod's message.
        message: String,
        /// istiod's address.
        address: String,
    },
    /// The deadline passed.
    #[error(
        "istiod at {address} did not answer in {after:?} while waiting for {waited_for} — is it ready, and does it read the proxy's cluster?"
    )]
    Timeout {
        /// What was awaited.
        waited_for: &'static str,
        /// The whole deadline.
        after: Duration,
        /// istiod's address.
        address: String,
    },
    /// A resource in istiod's answer is not what its type URL says.
    #[error(
        "cannot decode {type_url} from istiod at {address}: {source} — istiod and this client disagree on Envoy's API"
    )]
    Decode {
        /// The resource's type URL.
        type_url: String,
        /// istiod's address.
        address: String,
        /// The protobuf error.
        #[source]
        source: prost::DecodeError,
    },
    /// istiod ended the stream before answering.
    #[error(
        "istiod at {address} closed the xDS stream while waiting for {waited_for} — see istiod's log"
    )]
    Closed {
        /// What was awaited.
        waited_for: &'static str,
        /// istiod's address.
        address: String,
    },
}

/// `error: its source: its source…` — tonic's transport error alone says only "transport
/// error"; the cause (refused, unknown issuer, name mismatch) is in its sources.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Connects to istiod as `proxy`, asks CDS and then EDS for `cluster`, and decodes the
/// answer; every step shares the one `timeout`.
///
/// ```no_run
/// # async fn run() -> Result<(), mesh_xds::Error> {
/// use secrecy::SecretString;
/// let server = mesh_xds::XdsServer {
///     address: "127.0.0.1:15012".into(),
///     transport: mesh_xds::Transport::Tls {
///         root_pem: std::fs::read_to_string("root-cert.pem").unwrap(),
///         server_name: mesh_xds::DEFAULT_SERVER_NAME.into(),
///         token: SecretString::from(std::env::var("TOKEN").unwrap()),
///     },
/// };
/// let proxy = mesh_xds::ProxyIdentity {
///     ip: "10.244.0.12".into(), pod: "sleep-1".into(), namespace: "sample".into(),
///     service_account: "sleep".into(), cluster_id: "cluster1".into(),
///     network: Some("network1".into()), ..Default::default()
/// };
/// let cluster = mesh_xds::outbound_cluster("helloworld.sample.svc.cluster.local", 5000);
/// let view = mesh_xds::fetch(&server, &proxy, &cluster, std::time::Duration::from_secs(10)).await?;
/// assert!(view.clusters.contains(&cluster));
/// # Ok(()) }
/// ```
pub async fn fetch(
    server: &XdsServer,
    proxy: &ProxyIdentity,
    cluster: &str,
    timeout: Duration,
) -> Result<SidecarView, Error> {
    let span =
        tracing::debug_span!("xds", address = %server.address, node = %proxy.node_id(), %cluster);
    ask(server, proxy, cluster, timeout).instrument(span).await
}

async fn ask(
    server: &XdsServer,
    proxy: &ProxyIdentity,
    cluster: &str,
    timeout: Duration,
) -> Result<SidecarView, Error> {
    let deadline = Instant::now() + timeout;
    let address = server.address.as_str();
    let within = |waited_for: &'static str| {
        move |_| Error::Timeout {
            waited_for,
            after: timeout,
            address: address.to_owned(),
        }
    };
    let endpoint = endpoint(server)?;
    let channel: Channel = tokio::time::timeout_at(deadline, endpoint.connect())
        .await
        .map_err(within("a connection"))?
        .map_err(|source| Error::Connect {
            address: address.to_owned(),
            source,
        })?;
    tracing::debug!("connected");

    let (requests, outgoing) = mpsc::channel::<DiscoveryRequest>(4);
    let send = |request: DiscoveryRequest| {
        // The receiver lives in the call until the stream ends; a send failing means
        // istiod ended the stream, which reading the next response reports.
        let _ = requests.try_send(request);
    };
    send(DiscoveryRequest {
        node: Some(proxy.node()),
        type_url: CLUSTER_TYPE.to_owned(),
        ..DiscoveryRequest::default()
    });
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(outgoing));
    let headers = request.metadata_mut();
    headers.insert(
        "clusterid",
        header(address, "cluster ID", &proxy.cluster_id)?,
    );
    if let Transport::Tls { token, .. } = &server.transport {
        let mut bearer: AsciiMetadataValue =
            MetadataValue::try_from(format!("Bearer {}", token.expose_secret())).map_err(|_| {
                Error::Request {
                    address: address.to_owned(),
                    reason: "the token is not printable ASCII".into(),
                }
            })?;
        bearer.set_sensitive(true);
        headers.insert("authorization", bearer);
    }

    let mut client =
        AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let mut responses =
        tokio::time::timeout_at(deadline, client.stream_aggregated_resources(request))
            .await
            .map_err(within("the stream to open"))?
            .map_err(|status| status_error(address, status))?
            .into_inner();

    let cds = tokio::time::timeout_at(deadline, next_of(&mut responses, CLUSTER_TYPE, address))
        .await
        .map_err(within("the clusters (CDS)"))??;
    let mut clusters = cds
        .resources
        .iter()
        .filter(|any| any.type_url == CLUSTER_TYPE)
        .map(|any| {
            Cluster::decode(any.value.as_slice())
                .map(|c| c.name)
                .map_err(|source| Error::Decode {
                    type_url: CLUSTER_TYPE.to_owned(),
                    address: address.to_owned(),
                    source,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    clusters.sort();
    tracing::debug!(clusters = clusters.len(), version = %cds.version_info, "CDS");
    if !clusters.iter().any(|c| c == cluster) {
        return Ok(SidecarView {
            clusters,
            endpoints: None,
        });
    }

    send(DiscoveryRequest {
        version_info: cds.version_info.clone(),
        response_nonce: cds.nonce.clone(),
        type_url: CLUSTER_TYPE.to_owned(),
        ..DiscoveryRequest::default()
    });
    send(DiscoveryRequest {
        type_url: ENDPOINTS_TYPE.to_owned(),
        resource_names: vec![cluster.to_owned()],
        ..DiscoveryRequest::default()
    });
    let eds = tokio::time::timeout_at(deadline, next_of(&mut responses, ENDPOINTS_TYPE, address))
        .await
        .map_err(within("the endpoints (EDS)"))??;
    let mut endpoints = Vec::new();
    for any in eds
        .resources
        .iter()
        .filter(|a| a.type_url == ENDPOINTS_TYPE)
    {
        let assignment = ClusterLoadAssignment::decode(any.value.as_slice()).map_err(|source| {
            Error::Decode {
                type_url: ENDPOINTS_TYPE.to_owned(),
                address: address.to_owned(),
                source,
            }
        })?;
        if assignment.cluster_name == cluster {
            endpoints.extend(lb_endpoints(&assignment));
        }
    }
    tracing::debug!(endpoints = endpoints.len(), version = %eds.version_info, "EDS");
    Ok(SidecarView {
        clusters,
        endpoints: Some(endpoints),
    })
}

/// The gRPC endpoint for `server`, with TLS configured for [`Transport::Tls`].
fn endpoint(server: &XdsServer) -> Result<Endpoint, Error> {
    let address = server.address.as_str();
    let scheme = match server.transport {
        Transport::Plaintext => "http",
        Transport::Tls { .. } => "https",
    };
    let endpoint = Endpoint::from_shared(format!("{scheme}://{address}")).map_err(|source| {
        Error::Connect {
            address: address.to_owned(),
            source,
        }
    })?;
    let Transport::Tls {
        root_pem,
        server_name,
        ..
    } = &server.transport
    else {
        return Ok(endpoint);
    };
    check_root(root_pem).map_err(|reason| Error::Tls {
        address: address.to_owned(),
        reason,
    })?;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(root_pem))
        .domain_name(server_name.clone());
    endpoint.tls_config(tls).map_err(|e| Error::Tls {
        address: address.to_owned(),
        reason: e.to_string(),
    })
}

/// Checks that `pem` holds at least one certificate usable as a trust anchor (tonic
/// silently skips what it cannot parse, which would fail later as an unknown issuer).
fn check_root(pem: &str) -> Result<(), String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the root PEM does not parse ({e})"))?;
    if certificates.is_empty() {
        return Err("the root PEM holds no certificate".into());
    }
    let mut roots = rustls::RootCertStore::empty();
    let (_, invalid) = roots.add_parsable_certificates(certificates);
    if invalid > 0 {
        return Err(format!(
            "{invalid} certificate(s) of the root PEM are not valid X.509"
        ));
    }
    Ok(())
}

fn header(address: &str, what: &str, value: &str) -> Result<AsciiMetadataValue, Error> {
    MetadataValue::try_from(value).map_err(|_| Error::Request {
        address: address.to_owned(),
        reason: format!("the {what} {value:?} is not printable ASCII"),
    })
}

fn status_error(address: &str, status: tonic::Status) -> Error {
    let code = status.code();
    let message = status.message().to_owned();
    let address = address.to_owned();
    match code {
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => Error::Refused {
            code,
            message,
            address,
        },
        _ => Error::Status {
            code,
            message,
            address,
        },
    }
}

/// Reads responses until one of `type_url` arrives (istiod may push others first).
async fn next_of(
    responses: &mut Streaming<DiscoveryResponse>,
    type_url: &'static str,
    address: &str,
) -> Result<DiscoveryResponse, Error> {
    let waited_for = if type_url == CLUSTER_TYPE {
        "the clusters (CDS)"
    } else {
        "the endpoints (EDS)"
    };
    loop {
        match responses.message().await {
            Ok(Some(response)) if response.type_url == type_url => return Ok(response),
            Ok(Some(other)) => tracing::debug!(type_url = %other.type_url, "skipped a response"),
            Ok(None) => {
                return Err(Error::Closed {
                    waited_for,
                    address: address.to_owned(),
                });
            }
            Err(status) => return Err(status_error(address, status)),
        }
    }
}

/// The endpoints of one `ClusterLoadAssignment`, in istiod's order.
///
/// ```
/// use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
/// let assignment = ClusterLoadAssignment { cluster_name: "c".into(), ..Default::default() };
/// assert!(mesh_xds::lb_endpoints(&assignment).is_empty());
/// ```
pub fn lb_endpoints(assignment: &ClusterLoadAssignment) -> Vec<LbEndpoint> {
    let mut out = Vec::new();
    for group in &assignment.endpoints {
        let locality = group.locality.as_ref().and_then(locality);
        for lb in &group.lb_endpoints {
            let Some(lb_endpoint::HostIdentifier::Endpoint(endpoint)) = &lb.host_identifier else {
                continue;
            };
            let Some(address::Address::SocketAddress(socket)) =
                endpoint.address.as_ref().and_then(|a| a.address.as_ref())
            else {
                continue;
            };
            let port = match socket.port_specifier {
                Some(socket_address::PortSpecifier::PortValue(port)) => port,
                _ => 0,
            };
            let (network, cluster_id) = istio_metadata(lb.metadata.as_ref());
            out.push(LbEndpoint {
                address: socket.address.clone(),
                port,
                weight: lb.load_balancing_weight.as_ref().map_or(1, |w| w.value),
                // UNKNOWN (0) and HEALTHY (1): what Envoy routes to.
                healthy: matches!(lb.health_status, 0 | 1),
                network,
                cluster_id,
                locality: locality.clone(),
            });
        }
    }
    out
}

fn locality(l: &Locality) -> Option<String> {
    if l.region.is_empty() && l.zone.is_empty() && l.sub_zone.is_empty() {
        None
    } else {
        Some(format!("{}/{}/{}", l.region, l.zone, l.sub_zone))
    }
}

/// `(network, cluster ID)` from filter metadata `istio`: its `network` and `cluster`
/// fields, or the cluster ID that ends the telemetry field
/// `workload` (`name;namespace;service;revision;cluster`).
fn istio_metadata(metadata: Option<&Metadata>) -> (Option<String>, Option<String>) {
    let Some(istio) = metadata.and_then(|m| m.filter_metadata.get("istio")) else {
        return (None, None);
    };
    let text = |key: &str| match istio.fields.get(key).and_then(|v| v.kind.as_ref()) {
        Some(Kind::StringValue(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let cluster = text("cluster").or_else(|| {
        text("workload")
            .and_then(|w| w.rsplit(';').next().map(str::to_owned))
            .filter(|c| !c.is_empty())
    });
    (text("network"), cluster)
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
    use envoy_types::pb::envoy::config::endpoint::v3::{
        Endpoint as EnvoyEndpoint, LbEndpoint as EnvoyLbEndpoint, LocalityLbEndpoints,
    };
    use envoy_types::pb::google::protobuf::UInt32Value;

    fn sleep() -> ProxyIdentity {
        ProxyIdentity {
            ip: "10.244.0.12".into(),
            pod: "sleep-7656cf8794-abcde".into(),
            namespace: "sample".into(),
            service_account: "sleep".into(),
            cluster_id: "cluster1".into(),
            network: Some("network1".into()),
            labels: BTreeMap::from([("app".into(), "sleep".into())]),
            mesh_id: Some("mesh1".into()),
            istio_version: None,
            workload_name: String::new(),
        }
    }

    fn text(s: &Struct, key: &str) -> Option<String> {
        match s.fields.get(key)?.kind.as_ref()? {
            Kind::StringValue(v) => Some(v.clone()),
            _ => None,
        }
    }

    #[test]
    fn node_id_is_istio_agents() {
        assert_eq!(
            sleep().node_id(),
            "sidecar~10.244.0.12~sleep-7656cf8794-abcde.sample~sample.svc.cluster.local"
        );
    }

    #[test]
    fn outbound_cluster_is_istiods_name() {
        assert_eq!(
            outbound_cluster("helloworld.sample.svc.cluster.local", 5000),
            "outbound|5000||helloworld.sample.svc.cluster.local"
        );
    }

    #[test]
    fn node_metadata_is_what_istio_agent_sends() {
        let m = sleep().node_metadata();
        for (key, value) in [
            ("CLUSTER_ID", "cluster1"),
            ("NETWORK", "network1"),
            ("NAMESPACE", "sample"),
            ("SERVICE_ACCOUNT", "sleep"),
            ("NAME", "sleep-7656cf8794-abcde"),
            ("INSTANCE_IPS", "10.244.0.12"),
            ("INTERCEPTION_MODE", "REDIRECT"),
            ("MESH_ID", "mesh1"),
            ("WORKLOAD_NAME", "sleep"),
        ] {
            assert_eq!(text(&m, key).as_deref(), Some(value), "{key}");
        }
        assert!(!m.fields.contains_key("ISTIO_VERSION"), "omitted when None");
        let Some(Kind::StructValue(labels)) = m.fields["LABELS"].kind.as_ref() else {
            panic!("LABELS is a struct: {m:?}");
        };
        assert_eq!(text(labels, "app").as_deref(), Some("sleep"));

        let single = ProxyIdentity {
            network: None,
            istio_version: Some("1.28.0".into()),
            ..sleep()
        }
        .node_metadata();
        assert!(!single.fields.contains_key("NETWORK"), "omitted when None");
        assert_eq!(text(&single, "ISTIO_VERSION").as_deref(), Some("1.28.0"));
    }

    #[test]
    fn the_token_is_never_in_debug_output() {
        let server = XdsServer {
            address: "127.0.0.1:15012".into(),
            transport: Transport::Tls {
                root_pem: String::new(),
                server_name: DEFAULT_SERVER_NAME.into(),
                token: SecretString::from("s3cr3t-token"),
            },
        };
        assert!(!format!("{server:?}").contains("s3cr3t-token"));
    }

    #[test]
    fn a_root_without_certificates_is_a_tls_error() {
        let server = XdsServer {
            address: "127.0.0.1:15012".into(),
            transport: Transport::Tls {
                root_pem: "not a certificate".into(),
                server_name: DEFAULT_SERVER_NAME.into(),
                token: SecretString::from("s3cr3t-token"),
            },
        };
        let err = endpoint(&server).unwrap_err();
        assert!(matches!(err, Error::Tls { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains("127.0.0.1:15012"), "{message}");
        assert!(!message.contains("s3cr3t-token"), "{message}");
    }

    fn lb(ip: &str, port: u32, weight: Option<u32>, istio: &[(&str, &str)]) -> EnvoyLbEndpoint {
        let metadata = (!istio.is_empty()).then(|| Metadata {
            filter_metadata: HashMap::from([(
                "istio".to_owned(),
                Struct {
                    fields: istio
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), string(v)))
                        .collect(),
                },
            )]),
            ..Metadata::default()
        });
        EnvoyLbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(EnvoyEndpoint {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: ip.into(),
                        port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
                        ..SocketAddress::default()
                    })),
                }),
                ..EnvoyEndpoint::default()
            })),
            load_balancing_weight: weight.map(|value| UInt32Value { value }),
            metadata,
            ..EnvoyLbEndpoint::default()
        }
    }

    #[test]
    fn a_cluster_load_assignment_decodes_to_endpoints() {
        let name = outbound_cluster("helloworld.sample.svc.cluster.local", 5000);
        let assignment = ClusterLoadAssignment {
            cluster_name: name.clone(),
            endpoints: vec![
                LocalityLbEndpoints {
                    locality: Some(Locality {
                        region: "eu".into(),
                        zone: "a".into(),
                        ..Locality::default()
                    }),
                    lb_endpoints: vec![lb(
                        "10.244.0.7",
                        5000,
                        None,
                        &[("workload", "helloworld-v1;sample;helloworld;v1;cluster1")],
                    )],
                    ..LocalityLbEndpoints::default()
                },
                LocalityLbEndpoints {
                    lb_endpoints: vec![{
                        let mut gw = lb(
                            "172.18.0.200",
                            15443,
                            Some(2),
                            &[("network", "network2"), ("cluster", "cluster2")],
                        );
                        gw.health_status = 2; // UNHEALTHY
                        gw
                    }],
                    ..LocalityLbEndpoints::default()
                },
            ],
            ..ClusterLoadAssignment::default()
        };
        // Through the wire format, as istiod sends it.
        let bytes = assignment.encode_to_vec();
        let decoded = ClusterLoadAssignment::decode(bytes.as_slice()).unwrap();
        assert_eq!(
            lb_endpoints(&decoded),
            vec![
                LbEndpoint {
                    address: "10.244.0.7".into(),
                    port: 5000,
                    weight: 1,
                    healthy: true,
                    network: None,
                    cluster_id: Some("cluster1".into()),
                    locality: Some("eu/a/".into()),
                },
                LbEndpoint {
                    address: "172.18.0.200".into(),
                    port: 15443,
                    weight: 2,
                    healthy: false,
                    network: Some("network2".into()),
                    cluster_id: Some("cluster2".into()),
                    locality: None,
                },
            ]
        );
    }

    #[test]
    fn status_codes_of_refusal_have_their_own_variant() {
        for code in [tonic::Code::Unauthenticated, tonic::Code::PermissionDenied] {
            let err = status_error("a:1", tonic::Status::new(code, "no"));
            assert!(matches!(err, Error::Refused { .. }), "{err:?}");
        }
        let err = status_error("a:1", tonic::Status::internal("boom"));
        assert!(matches!(err, Error::Status { .. }), "{err:?}");
    }
}
