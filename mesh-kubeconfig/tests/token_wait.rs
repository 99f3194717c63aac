//! The one error path the test bed cannot produce on demand: a token controller that never
//! fills the Secret. A tower-test mock API server answers instead.

use std::time::{Duration, Instant};

use http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use mesh_kubeconfig::{Error, ReaderAccount, TokenOptions, TokenStrategy, obtain_token};

fn json(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&value).unwrap()))
        .unwrap()
}

#[tokio::test]
async fn waiting_for_the_token_controller_has_a_deadline_and_says_what_it_waited_for() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(async move {
        let mut created = false;
        while let Some((request, send)) = handle.next_request().await {
            let path = request.uri().path().to_owned();
            let response = match (request.method().as_str(), path.as_str()) {
                ("GET", "/api/v1/namespaces/istio-system/serviceaccounts/reader") => json(
                    StatusCode::OK,
                    serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount",
                        "metadata": {"name": "reader", "namespace": "istio-system", "uid": "u1"}}),
                ),
                ("GET", "/api/v1/namespaces/istio-system/secrets/reader-token") if !created => {
                    json(
                        StatusCode::NOT_FOUND,
                        serde_json::json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
                        "reason": "NotFound", "code": 404, "message": "secrets \"reader-token\" not found"}),
                    )
                }
                ("POST", "/api/v1/namespaces/istio-system/secrets") => {
                    created = true;
                    json(StatusCode::CREATED, unfilled())
                }
                // The token controller never comes: the Secret stays empty.
                ("GET", "/api/v1/namespaces/istio-system/secrets/reader-token") => {
                    json(StatusCode::OK, unfilled())
                }
                other => panic!("unexpected request {other:?}"),
            };
            send.send_response(response);
        }
    });
    let client = Client::new(service, "default");
    let options = TokenOptions {
        strategy: TokenStrategy::CreateSecret,
        secret_name: None,
        wait: Duration::from_millis(700),
    };
    let start = Instant::now();
    let err = obtain_token(
        &client,
        "cluster2",
        &ReaderAccount::new("istio-system", "reader"),
        &options,
    )
    .await
    .unwrap_err();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("Secret istio-system/reader-token")
            && msg.contains("cluster2")
            && msg.contains("kube-controller-manager")
            && msg.contains("TokenRequest token with a lifetime")
            && msg.contains("gave up after 700ms"),
        "{msg}"
    );
    server.abort();
}

fn unfilled() -> serde_json::Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": {"name": "reader-token", "namespace": "istio-system",
            "annotations": {"kubernetes.io/service-account.name": "reader"}}})
}
