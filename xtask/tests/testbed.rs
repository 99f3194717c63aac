//! The test bed behaves like the real clusters it stands in for.
//!
//! These tests need a running test bed (`cargo xtask test` brings one up and runs them;
//! plain `cargo test` leaves them out). They reach it through `KUBECONFIG`.

mod common;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenReview};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use common::client;

/// Creates a namespace with a name unique to this test run.
async fn namespace(client: &Client, prefix: &str) -> String {
    let name = format!(
        "{prefix}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros()
            % 1_000_000_000
    );
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    name
}

/// Creates Deployment `name` (pods labelled `app=NAME`): `replicas` pods of one
/// container `container` running `image`.
async fn create_deployment(
    deployments: &Api<Deployment>,
    name: &str,
    replicas: i32,
    container: &str,
    image: &str,
) {
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": container, "image": image}]}}},
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &deploy)
        .await
        .unwrap();
}

/// Polls `check` until it returns `Some`, or panics naming `what` after `timeout`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
#[ignore = "needs the test bed: cargo xtask test"]
async fn every_api_server_reports_the_release_the_test_bed_started_it_with() {
    let state = xtask::testbed::State::load()
        .unwrap()
        .expect("the test bed records its clusters");
    for cluster in &state.clusters {
        let version = client(&cluster.name)
            .await
            .apiserver_version()
            .await
            .unwrap();
        assert_eq!(
            version.git_version, cluster.kubernetes_version,
            "{}",
            cluster.name
        );
        assert_eq!(version.major, "1");
    }
}

/// The skew every other test runs across: the primary and the first remote on different
/// minor releases, as each API server reports it in `/version`.
#[tokio::test]
#[ignore = "needs the test bed: cargo xtask test"]
async fn the_primary_and_the_first_remote_run_different_minor_releases() {
    let mut minors = Vec::new();
    for context in ["cluster1", "cluster2"] {
        let version = client(context).await.apiserver_version().await.unwrap();
        minors.push((context, version.minor, version.git_version));
    }
    assert_ne!(
        minors[0].1, minors[1].1,
        "cluster1 and cluster2 run the same minor release: {minors:?}"
    );
}

#[tokio::test]
#[ignore = "needs the test bed: cargo xtask test"]
async fn controller_manager_fills_legacy_token_secrets() {
    let client = client("cluster2").await;
    let ns = namespace(&client, "legacy-token").await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "reader"}})).unwrap();
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "reader-token",
                     "annotations": {"kubernetes.io/service-account.name": "reader"}},
        "type": "kubernetes.io/service-account-token",
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let data = eventually(
        "the token controller to fill reader-token",
        Duration::from_secs(30),
        || async {
            let s = secrets.get("reader-token").await.ok()?;
            let data = s.data?;
            (data.contains_key("token") && data.contains_key("ca.crt")).then_some(data)
        },
    )
    .await;
    let token = String::from_utf8(data["token"].0.clone()).unwrap();
    assert_eq!(token.split('.').count(), 3, "the token is a JWT");
    assert!(String::from_utf8_lossy(&data["ca.crt"].0).contains("BEGIN CERTIFICATE"));
    // The token authenticates as the ServiceAccount.
    let user = review(&client, &token).await;
    assert_eq!(user, format!("system:serviceaccount:{ns}:reader"));
    Api::<Namespace>::all(client)
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs the test bed: cargo xtask test"]
async fn token_request_returns_a_token_of_the_service_account() {
    let client = client("cluster1").await;
    let ns = namespace(&client, "token-request").await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "istiod-reader"}})).unwrap();
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))
            .unwrap();
    let response: TokenRequest = sas
        .create_subresource("token", "istiod-reader", &PostParams::default(), &request)
        .await
        .unwrap();
    let token = response.status.expect("status").token.expect("a token");
    assert_eq!(
        review(&client, &token).await,
        format!("system:serviceaccount:{ns}:istiod-reader")
    );
    Api::<Namespace>::all(client)
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
}

/// Who the API server says `token` is (TokenReview).
async fn review(client: &Client, token: &str) -> String {
    let review: TokenReview = serde_json::from_value(json!({"spec": {"token": token}})).unwrap();
    let result = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    let status = result.status.expect("status");
    assert_eq!(status.authenticated, Some(true), "{:?}", status.error);
    status.user.expect("user").username.expect("username")
}

#[tokio::test]
#[ignore = "needs the test bed: cargo xtask test"]
async fn load_balancer_services_get_an_address_and_deployments_roll_out() {
    let client = client("cluster2").await;
    let ns = namespace(&client, "lb").await;
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "eastwest"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "gw"},
                 "ports": [{"name": "tls", "port": 15443}]},
    }))
    .unwrap();
    services.create(&PostParams::default(), &svc).await.unwrap();
    let ip = eventually(
        "a LoadBalancer address",
        Duration::from_secs(20),
        || async {
            let svc = services.get("eastwest").await.ok()?;
            svc.status?.load_balancer?.ingress?.first()?.ip.clone()
        },
    )
    .await;
    let ip: std::net::Ipv4Addr = ip.parse().unwrap();
    // Like a cloud's: not loopback (Kubernetes refuses those in EndpointSlices), from
    // the range set aside for network tests.
    assert!(!ip.is_loopback(), "{ip}");
    assert_eq!(ip.octets()[..2], [198, 18], "{ip}");

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    create_deployment(&deployments, "gw", 2, "proxy", "proxyv2").await;
    eventually("gw to roll out", Duration::from_secs(30), || async {
        let status = deployments.get("gw").await.ok()?.status?;
        (status.available_replicas == Some(2)).then_some(())
    })
    .await;
    Api::<Namespace>::all(client)
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs the test bed: cargo xtask test"]
async fn deleting_a_namespace_completes() {
    let client = client("cluster1").await;
    let ns = namespace(&client, "doomed").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "x"}, "data": {"a": "b"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    // A running pod must go too (a kubelet would confirm its deletion).
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    create_deployment(&deployments, "app", 1, "app", "app").await;
    eventually("app to roll out", Duration::from_secs(30), || async {
        let status = deployments.get("app").await.ok()?.status?;
        (status.ready_replicas == Some(1)).then_some(())
    })
    .await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "the namespace to be gone",
        Duration::from_secs(60),
        || async { matches!(namespaces.get_opt(&ns).await, Ok(None)).then_some(()) },
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the test bed: cargo xtask test"]
async fn clusters_are_independent() {
    let one = client("cluster1").await;
    let two = client("cluster2").await;
    let ns = namespace(&one, "only-in-one").await;
    let in_two = Api::<Namespace>::all(two.clone())
        .get_opt(&ns)
        .await
        .unwrap();
    assert!(
        in_two.is_none(),
        "namespace {ns} created in cluster1 shows in cluster2"
    );
    let uid = |c: Client| async move {
        Api::<Namespace>::all(c)
            .get("kube-system")
            .await
            .unwrap()
            .metadata
            .uid
            .unwrap()
    };
    assert_ne!(
        uid(one.clone()).await,
        uid(two).await,
        "both contexts reach one cluster"
    );
    Api::<Namespace>::all(one)
        .delete(&ns, &DeleteParams::default())
        .await
        .unwrap();
}
