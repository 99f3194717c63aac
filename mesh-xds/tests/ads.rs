//! The ADS exchange against a local server that answers as istiod does (one stream: CDS,
//! the ACK, EDS for the asked cluster), recording what the client sent. Real istiod is
//! asked in `kubectl-mesh/tests/xds.rs` on the test bed; this pins the protocol steps,
//! the request headers, the deadline and the error variants without one.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_xds::envoy_types::pb::envoy::config::cluster::v3::Cluster;
use mesh_xds::envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use mesh_xds::envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use mesh_xds::envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use mesh_xds::envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use mesh_xds::envoy_types::pb::google::protobuf::Any;
use mesh_xds::{
    CLUSTER_TYPE, ENDPOINTS_TYPE, Error, ProxyIdentity, Transport, XdsServer, fetch,
    outbound_cluster,
};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

/// How the fake istiod behaves.
#[derive(Clone, Copy)]
enum Mode {
    /// CDS, then EDS when asked.
    Answer,
    /// Refuses the stream as istiod refuses a bad token.
    Refuse,
    /// Accepts the stream and never answers.
    Silent,
}

#[derive(Default)]
struct Seen {
    requests: Vec<DiscoveryRequest>,
    cluster_id: Option<String>,
    authorization: Option<String>,
}

struct FakeIstiod {
    mode: Mode,
    seen: Arc<Mutex<Seen>>,
}

fn any<M: Message>(type_url: &str, message: &M) -> Any {
    Any {
        type_url: type_url.into(),
        value: message.encode_to_vec(),
    }
}

fn helloworld() -> String {
    outbound_cluster("helloworld.sample.svc.cluster.local", 5000)
}

fn assignment() -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: helloworld(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![LbEndpoint {
                host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                    address: Some(Address {
                        address: Some(address::Address::SocketAddress(SocketAddress {
                            address: "10.244.0.7".into(),
                            port_specifier: Some(socket_address::PortSpecifier::PortValue(5000)),
                            ..SocketAddress::default()
                        })),
                    }),
                    ..Endpoint::default()
                })),
                ..LbEndpoint::default()
            }],
            ..LocalityLbEndpoints::default()
        }],
        ..ClusterLoadAssignment::default()
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for FakeIstiod {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        {
            let mut seen = self.seen.lock().unwrap();
            seen.cluster_id = request
                .metadata()
                .get("clusterid")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            seen.authorization = request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
        }
        if let Mode::Refuse = self.mode {
            return Err(Status::unauthenticated("authentication failure"));
        }
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(4);
        let (mode, seen) = (self.mode, self.seen.clone());
        tokio::spawn(async move {
            while let Ok(Some(req)) = incoming.message().await {
                seen.lock().unwrap().requests.push(req.clone());
                let Mode::Answer = mode else { continue };
                let response = match (req.type_url.as_str(), req.response_nonce.is_empty()) {
                    (CLUSTER_TYPE, true) => DiscoveryResponse {
                        type_url: CLUSTER_TYPE.into(),
                        version_info: "v1".into(),
                        nonce: "n1".into(),
                        resources: ["BlackHoleCluster".to_owned(), helloworld()]
                            .into_iter()
                            .map(|name| {
                                any(
                                    CLUSTER_TYPE,
                                    &Cluster {
                                        name,
                                        ..Cluster::default()
                                    },
                                )
                            })
                            .collect(),
                        ..DiscoveryResponse::default()
                    },
                    (ENDPOINTS_TYPE, true) => DiscoveryResponse {
                        type_url: ENDPOINTS_TYPE.into(),
                        version_info: "v1".into(),
                        nonce: "n2".into(),
                        resources: vec![any(ENDPOINTS_TYPE, &assignment())],
                        ..DiscoveryResponse::default()
                    },
                    _ => continue, // an ACK
                };
                if tx.send(Ok(response)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn delta_aggregated_resources(
        &self,
        _: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented("delta"))
    }
}

async fn serve(mode: Mode) -> (SocketAddr, Arc<Mutex<Seen>>) {
    serve_with(mode, None).await
}

/// A mesh root (PEM) and istiod's serving certificate and key under it, for `names`.
fn istiod_certificate(names: &[&str]) -> (String, tonic::transport::Identity) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let root_key = KeyPair::generate().unwrap();
    let mut root = CertificateParams::default();
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let root_pem = root.self_signed(&root_key).unwrap().pem();
    let issuer = Issuer::new(root, root_key);
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (
        root_pem,
        tonic::transport::Identity::from_pem(cert.pem(), key.serialize_pem()),
    )
}

async fn serve_with(
    mode: Mode,
    tls: Option<tonic::transport::Identity>,
) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let service = AggregatedDiscoveryServiceServer::new(FakeIstiod {
        mode,
        seen: seen.clone(),
    });
    let mut server = tonic::transport::Server::builder();
    if let Some(identity) = tls {
        server = server
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .unwrap();
    }
    tokio::spawn(server.serve_with_incoming(service, TcpListenerStream::new(listener)));
    (address, seen)
}

fn proxy() -> ProxyIdentity {
    ProxyIdentity {
        ip: "10.244.0.12".into(),
        pod: "sleep-1".into(),
        namespace: "sample".into(),
        service_account: "sleep".into(),
        cluster_id: "cluster1".into(),
        network: Some("network1".into()),
        ..ProxyIdentity::default()
    }
}

fn plaintext(address: SocketAddr) -> XdsServer {
    XdsServer {
        address: address.to_string(),
        transport: Transport::Plaintext,
    }
}

const DEADLINE: Duration = Duration::from_secs(5);

#[tokio::test]
async fn asks_cds_acks_it_then_asks_eds_for_the_one_cluster() {
    let (address, seen) = serve(Mode::Answer).await;
    let view = fetch(&plaintext(address), &proxy(), &helloworld(), DEADLINE)
        .await
        .unwrap();
    assert_eq!(
        view.clusters,
        vec!["BlackHoleCluster".to_owned(), helloworld()]
    );
    let endpoints = view.endpoints.unwrap();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(
        (endpoints[0].address.as_str(), endpoints[0].port),
        ("10.244.0.7", 5000)
    );

    let seen = seen.lock().unwrap();
    assert_eq!(seen.cluster_id.as_deref(), Some("cluster1"));
    assert_eq!(seen.authorization, None, "plaintext sends no token");
    let steps: Vec<_> = seen
        .requests
        .iter()
        .map(|r| {
            (
                r.type_url.as_str(),
                r.response_nonce.as_str(),
                r.resource_names.clone(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            (CLUSTER_TYPE, "", vec![]),
            (CLUSTER_TYPE, "n1", vec![]),
            (ENDPOINTS_TYPE, "", vec![helloworld()]),
        ]
    );
    let node = seen.requests[0]
        .node
        .as_ref()
        .expect("the first request names the node");
    assert_eq!(node.id, proxy().node_id());
    assert_eq!(node.metadata.as_ref(), Some(&proxy().node_metadata()));
}

#[tokio::test]
async fn a_cluster_missing_from_cds_is_none_and_eds_is_not_asked() {
    let (address, seen) = serve(Mode::Answer).await;
    let missing = outbound_cluster("nothing.sample.svc.cluster.local", 80);
    let view = fetch(&plaintext(address), &proxy(), &missing, DEADLINE)
        .await
        .unwrap();
    assert_eq!(view.endpoints, None);
    // Give a stray EDS request time to arrive before checking there was none.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        seen.lock()
            .unwrap()
            .requests
            .iter()
            .all(|r| r.type_url == CLUSTER_TYPE)
    );
}

#[tokio::test]
async fn a_refused_stream_is_the_refused_variant() {
    let (address, _) = serve(Mode::Refuse).await;
    let err = fetch(&plaintext(address), &proxy(), &helloworld(), DEADLINE)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Refused {
                code: tonic::Code::Unauthenticated,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(&address.to_string()), "{err}");
}

#[tokio::test]
async fn a_silent_server_times_out_naming_what_was_awaited() {
    let (address, _) = serve(Mode::Silent).await;
    let started = std::time::Instant::now();
    let err = fetch(
        &plaintext(address),
        &proxy(),
        &helloworld(),
        Duration::from_millis(500),
    )
    .await
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "one deadline for every step"
    );
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let err = fetch(&plaintext(address), &proxy(), &helloworld(), DEADLINE)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains(&address.to_string()), "{err}");
    assert!(err.to_string().to_lowercase().contains("refused"), "{err}");
}

fn tls(address: SocketAddr, root_pem: &str, server_name: &str) -> XdsServer {
    XdsServer {
        address: address.to_string(),
        transport: Transport::Tls {
            root_pem: root_pem.into(),
            server_name: server_name.into(),
            token: secrecy::SecretString::from("t0ken-of-sleep"),
        },
    }
}

#[tokio::test]
async fn over_tls_the_server_name_and_root_are_checked_and_the_token_is_sent() {
    let (root, identity) = istiod_certificate(&[mesh_xds::DEFAULT_SERVER_NAME]);
    let (address, seen) = serve_with(Mode::Answer, Some(identity)).await;
    let server = tls(address, &root, mesh_xds::DEFAULT_SERVER_NAME);
    let view = fetch(&server, &proxy(), &helloworld(), DEADLINE)
        .await
        .unwrap();
    assert!(view.endpoints.is_some());
    assert_eq!(
        seen.lock().unwrap().authorization.as_deref(),
        Some("Bearer t0ken-of-sleep")
    );

    // A name the certificate does not carry, and another root: no connection, and the
    // error does not carry the token.
    let (other_root, _) = istiod_certificate(&["other"]);
    for server in [
        tls(address, &root, "istiod.elsewhere.svc"),
        tls(address, &other_root, mesh_xds::DEFAULT_SERVER_NAME),
    ] {
        let err = fetch(&server, &proxy(), &helloworld(), DEADLINE)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Connect { .. }), "{err:?}");
        let message = format!("{err} {err:?}");
        assert!(!message.contains("t0ken-of-sleep"), "{message}");
        // The cause, not only tonic's "transport error".
        assert!(
            err.to_string().to_lowercase().contains("certificate"),
            "{err}"
        );
    }
}
