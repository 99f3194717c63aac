//! What real istiod tells a sidecar, asked with `mesh_xds` the way a sidecar asks: after
//! `kubectl mesh join cluster2 --primary cluster1` with the guide's helloworld (v1 in
//! cluster1, v2 in cluster2), a proxy of cluster1 on network1 must receive v1's pod IP and
//! network2's east-west gateway on 15443 — never v2's pod IP — and a proxy of cluster2 on
//! network2 the mirror image (Istio's split-horizon EDS). The addresses are read with
//! kubectl, not with our code. Over istiod's TLS port, a token of the ServiceAccount the
//! proxy claims gets the same answer and a token of another ServiceAccount is refused.
//! `cargo xtask test` runs them; plain `cargo test` leaves them out.

mod common;

use std::time::{Duration, Instant};

use common::istiod::Istiod;
use common::sample::{SAMPLE, Sample, pod_ip};
use common::{join_cluster2, kubectl, kubectl_ok, lb_address, mesh_lock};
use mesh_xds::{
    DEFAULT_SERVER_NAME, Error, LbEndpoint, ProxyIdentity, SidecarView, Transport, XdsServer,
    fetch, outbound_cluster,
};
use secrecy::SecretString;

/// How long istiod may take to sync the remote and push its endpoints.
const SETTLE: Duration = Duration::from_secs(90);
/// One xDS exchange.
const EXCHANGE: Duration = Duration::from_secs(10);

/// A `sleep` sidecar of `cluster` on `network` (no pod runs it: istiod answers a proxy by
/// what it claims).
fn sleep_proxy(cluster: &str, network: &str, ip: &str) -> ProxyIdentity {
    ProxyIdentity {
        ip: ip.into(),
        pod: "sleep-xds-test".into(),
        namespace: SAMPLE.into(),
        service_account: "sleep".into(),
        cluster_id: cluster.into(),
        network: Some(network.into()),
        labels: [("app".to_owned(), "sleep".to_owned())].into(),
        workload_name: "sleep".into(),
        ..ProxyIdentity::default()
    }
}

fn helloworld() -> String {
    outbound_cluster("helloworld.sample.svc.cluster.local", 5000)
}

/// `(address, port)` of each endpoint, sorted.
fn addresses(endpoints: &[LbEndpoint]) -> Vec<(String, u32)> {
    let mut all: Vec<_> = endpoints
        .iter()
        .map(|e| (e.address.clone(), e.port))
        .collect();
    all.sort();
    all
}

/// Asks istiod until the sidecar's endpoints for helloworld are `expected` (istiod syncs
/// the remote and pushes within seconds); panics with the last answer after [`SETTLE`].
async fn wait_for(
    istiod: &Istiod,
    server: &XdsServer,
    proxy: &ProxyIdentity,
    expected: &[(String, u32)],
) -> SidecarView {
    let deadline = Instant::now() + SETTLE;
    let mut want = expected.to_vec();
    want.sort();
    loop {
        let last = fetch(server, proxy, &helloworld(), EXCHANGE).await;
        if let Ok(view) = &last
            && view.endpoints.as_deref().map(addresses).as_ref() == Some(&want)
        {
            return view.clone();
        }
        if Instant::now() > deadline {
            panic!(
                "a sidecar of {} on {:?} was never told {want:?}; last answer: {last:#?}\n{}",
                proxy.cluster_id,
                proxy.network,
                istiod.log_tail(40)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// v1's pod IP in cluster1 and v2's in cluster2, once both pods have one.
fn pod_ips() -> (String, String) {
    let deadline = Instant::now() + SETTLE;
    loop {
        if let (Some(v1), Some(v2)) = (pod_ip("cluster1", "v1"), pod_ip("cluster2", "v2")) {
            return (v1, v2);
        }
        assert!(Instant::now() < deadline, "helloworld pods got no IP");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the test bed: cargo xtask test"]
async fn a_sidecar_of_each_network_is_told_its_own_pod_and_the_other_networks_gateway() {
    let _lock = mesh_lock();
    let _certs = join_cluster2();
    let dir = tempfile::tempdir().unwrap();
    let _sample = Sample::create(dir.path());
    let istiod = Istiod::start("cluster1");
    let server = XdsServer {
        address: istiod.grpc_address(),
        transport: Transport::Plaintext,
    };
    let (v1, v2) = pod_ips();
    let (gateway1, gateway2) = (lb_address("cluster1"), lb_address("cluster2"));

    for (proxy, expected) in [
        (
            sleep_proxy("cluster1", "network1", "10.250.0.10"),
            [(v1.clone(), 5000), (gateway2.clone(), 15443)],
        ),
        (
            sleep_proxy("cluster2", "network2", "10.250.0.20"),
            [(v2.clone(), 5000), (gateway1.clone(), 15443)],
        ),
    ] {
        let view = wait_for(&istiod, &server, &proxy, &expected).await;
        assert!(view.clusters.contains(&helloworld()), "{view:#?}");
        let endpoints = view.endpoints.unwrap();
        eprintln!(
            "a sidecar of {} is told: {endpoints:#?}",
            proxy.network.as_deref().unwrap()
        );
        for endpoint in &endpoints {
            assert!(endpoint.healthy, "{endpoint:#?}");
            assert!(endpoint.weight >= 1, "{endpoint:#?}");
        }
    }

    // A service that does not exist is not in CDS: EDS is not asked.
    let absent = fetch(
        &server,
        &sleep_proxy("cluster1", "network1", "10.250.0.10"),
        &outbound_cluster("nothing-here.sample.svc.cluster.local", 5000),
        EXCHANGE,
    )
    .await
    .unwrap();
    assert_eq!(absent.endpoints, None);
    assert!(absent.clusters.contains(&helloworld()), "{absent:#?}");
}

/// The mesh root, as istiod publishes it to every namespace (`default` here, as
/// tests/istiod.rs reads it).
fn mesh_root() -> String {
    kubectl(&[
        "--context=cluster1",
        "-n",
        "default",
        "get",
        "configmap",
        "istio-ca-root-cert",
        "-o",
        "jsonpath={.data.root-cert\\.pem}",
        "--ignore-not-found",
    ])
}

/// A TokenRequest token for `account` in the sample namespace of cluster1, for istiod.
fn token(account: &str) -> SecretString {
    if !kubectl_ok(&[
        "--context=cluster1",
        "-n",
        SAMPLE,
        "get",
        "serviceaccount",
        account,
    ]) {
        kubectl(&[
            "--context=cluster1",
            "-n",
            SAMPLE,
            "create",
            "serviceaccount",
            account,
        ]);
    }
    SecretString::from(
        kubectl(&[
            "--context=cluster1",
            "-n",
            SAMPLE,
            "create",
            "token",
            account,
            "--audience",
            "istio-ca",
        ])
        .trim()
        .to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the test bed: cargo xtask test"]
async fn over_tls_istiod_answers_the_sidecars_own_token_and_refuses_another_accounts() {
    let _lock = mesh_lock();
    let certs = join_cluster2();
    let dir = tempfile::tempdir().unwrap();
    let _sample = Sample::create(dir.path());
    let istiod = Istiod::start("cluster1");
    let (v1, _) = pod_ips();
    let gateway2 = lb_address("cluster2");

    // istiod publishes the root join stored in cacerts.
    let root = std::fs::read_to_string(certs.path().join("cluster1/root-cert.pem")).unwrap();
    let deadline = Instant::now() + SETTLE;
    while mesh_root().trim() != root.trim() {
        assert!(
            Instant::now() < deadline,
            "istio-ca-root-cert never carried the mesh root"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let tls = |token: SecretString| XdsServer {
        address: istiod.secure_grpc_address(),
        transport: Transport::Tls {
            root_pem: mesh_root(),
            server_name: DEFAULT_SERVER_NAME.into(),
            token,
        },
    };
    let proxy = sleep_proxy("cluster1", "network1", "10.250.0.10");

    let view = wait_for(
        &istiod,
        &tls(token("sleep")),
        &proxy,
        &[(v1, 5000), (gateway2, 15443)],
    )
    .await;
    eprintln!("over TLS, a sidecar of network1 is told: {view:#?}");

    // A valid token, but of another ServiceAccount than the proxy claims.
    let other = token("not-sleep");
    let err = fetch(&tls(other), &proxy, &helloworld(), EXCHANGE)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Refused { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&istiod.secure_grpc_address()), "{message}");
    eprintln!("another account's token: {message}");

    // A token istiod cannot review.
    let err = fetch(
        &tls(SecretString::from("not-a-token")),
        &proxy,
        &helloworld(),
        EXCHANGE,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Refused { .. }), "{err:?}");
    assert!(!err.to_string().contains("not-a-token"), "{err}");
}
