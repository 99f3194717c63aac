//! Token paths, RBAC and verification against the test bed's real control planes.
//!
//! Run with `cargo xtask test` (which exports KUBECONFIG with contexts cluster1 and
//! cluster2); plain `cargo test` skips them. Every test works in its own namespace.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use mesh_kubeconfig::{
    Error, KubeconfigSource, Kubeconfigs, ReaderAccount, RemoteSecretRequest, TokenOptions,
    TokenSource, TokenStrategy, ensure_reader_account, generate_remote_secret, obtain_token,
    verify_remote_kubeconfig,
};
use secrecy::ExposeSecret;

const REMOTE: &str = "cluster2";

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

fn kubeconfigs() -> Kubeconfigs {
    Kubeconfigs::load(&KubeconfigSource::Default).expect("KUBECONFIG of the test bed")
}

async fn remote() -> Client {
    kubeconfigs()
        .client(REMOTE, Some(Duration::from_secs(20)))
        .await
        .unwrap()
}

/// A namespace and reader account of this test; removed by `cleanup`.
async fn setup(client: &Client, prefix: &str) -> ReaderAccount {
    let account = ReaderAccount::new(unique(prefix), "reader");
    let changes = ensure_reader_account(client, REMOTE, &account)
        .await
        .unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c.object.starts_with("ServiceAccount")),
        "{changes:?}"
    );
    account
}

async fn cleanup(client: &Client, account: &ReaderAccount) {
    let _ = Api::<ClusterRoleBinding>::all(client.clone())
        .delete(&account.binding_name(), &DeleteParams::default())
        .await;
    let _ = Api::<Namespace>::all(client.clone())
        .delete(&account.namespace, &DeleteParams::default())
        .await;
}

/// A token Secret created by hand, as an old cluster's token controller would have,
/// filled by the test bed's kube-controller-manager.
async fn token_secret(client: &Client, account: &ReaderAccount, name: &str) -> Secret {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &account.namespace);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            annotations: Some(BTreeMap::from([(
                "kubernetes.io/service-account.name".to_owned(),
                account.name.clone(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/service-account-token".to_owned()),
        ..Secret::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = secrets.get(name).await.unwrap();
        if s.data.as_ref().is_some_and(|d| d.contains_key("token")) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "token controller did not fill {name}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn options(strategy: TokenStrategy) -> TokenOptions {
    TokenOptions {
        strategy,
        ..TokenOptions::default()
    }
}

#[tokio::test]
#[ignore = "needs the test bed: cargo xtask test"]
async fn ensure_reader_account_is_idempotent() {
    let client = remote().await;
    let account = setup(&client, "mk-idem").await;
    let again = ensure_reader_account(&client, REMOTE, &account)
        .await
        .unwrap();
    assert!(again.is_empty(), "second call changed {again:?}");
    let check = mesh_kubeconfig::check_reader_account(&client, REMOTE, &account)
        .await
        .unwrap();
    assert!(check.is_empty());
    cleanup(&client, &account).await;
}

#[tokio::test]
#[ignore = "needs the test bed: cargo xtask test"]
async fn path_a_legacy_secrets_reference() {
    let client = remote().await;
    let account = setup(&client, "mk-a").await;
    token_secret(&client, &account, "legacy-token").await;
    // Kubernetes < 1.24 listed the token Secret in the ServiceAccount's secrets[].
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &account.namespace);
    let mut sa = accounts.get(&account.name).await.unwrap();
    sa.secrets = Some(vec![ObjectReference {
        name: Some("legacy-token".into()),
        ..ObjectReference::default()
    }]);
    sa.metadata.managed_fields = None;
    accounts
        .replace(&account.name, &PostParams::default(), &sa)
        .await
        .unwrap();
    // A second, unreferenced token Secret must not make (a) ambiguous.
    token_secret(&client, &account, "other-token").await;

    for strategy in [TokenStrategy::LegacySecretsRef, TokenStrategy::Auto] {
        let t = obtain_token(&client, REMOTE, &account, &options(strategy))
            .await
            .unwrap();
        assert_eq!(t.source, TokenSource::LegacySecretsRef);
        assert_eq!(t.secret_name.as_deref(), Some("legacy-token"));
        assert!(!t.created);
        assert!(t.ca_crt.is_some());
        assert!(!t.token.expose_secret().is_empty());
        assert_eq!(t.expires_at, None, "legacy tokens do not expire");
    }
    cleanup(&client, &account).await;
}

#[tokio::test]
#[ignore = "needs the test bed: cargo xtask test"]
async fn path_b_existing_secret_and_ambiguity() {
    let client = remote().await;
    let account = setup(&client, "mk-b").await;
    // (a) finds nothing on 1.36.
    let err = obtain_token(
        &client,
        REMOTE,
        &account,
        &options(TokenStrategy::LegacySecretsRef),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NoLegacyTokenSecret { .. }), "{err}");

    token_secret(&client, &account, "first-token").await;
    let t = obtain_token(&client, REMOTE, &account, &options(TokenStrategy::Auto))
        .await
        .unwrap();
    assert_eq!(t.source, TokenSource::ExistingSecret);
    assert_eq!(t.secret_name.as_deref(), Some("first-token"));
    assert!(!t.created);

    token_secret(&client, &account, "second-token").await;
    let err = obtain_token(&client, REMOTE, &account, &options(TokenStrategy::Auto))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("first-token, second-token") && err.contains("choose one by name"),
        "{err}"
    );
    let chosen = TokenOptions {
        secret_name: Some("second-token".into()),
        ..options(TokenStrategy::ExistingSecret)
    };
    let t = obtain_token(&client, REMOTE, &account, &chosen)
        .await
        .unwrap();
    assert_eq!(t.secret_name.as_deref(), Some("second-token"));
    cleanup(&client, &account).await;
}

#[tokio::test]
#[ignore = "needs the test bed: cargo xtask test"]
async fn path_c_creates_a_token_secret_once() {
    let client = remote().await;
    let account = setup(&client, "mk-c").await;
    let t = obtain_token(&client, REMOTE, &account, &options(TokenStrategy::Auto))
        .await
        .unwrap();
    assert_eq!(t.source, TokenSource::CreatedSecret);
    assert!(t.created);
    assert_eq!(t.secret_name.as_deref(), Some("reader-token"));
    assert!(t.ca_crt.is_some());
    // Check-then-act: the second run reuses the Secret.
    for strategy in [TokenStrategy::CreateSecret, TokenStrategy::Auto] {
        let again = obtain_token(&client, REMOTE, &account, &options(strategy))
            .await
            .unwrap();
        assert!(!again.created);
        assert_eq!(again.secret_name.as_deref(), Some("reader-token"));
        assert_eq!(again.token.expose_secret(), t.token.expose_secret());
    }
    cleanup(&client, &account).await;
}

#[tokio::test]
#[ignore = "needs the test bed: cargo xtask test"]
async fn path_d_token_request_with_ttl() {
    let client = remote().await;
    let account = setup(&client, "mk-d").await;
    let ttl = Duration::from_secs(3600);
    let t = obtain_token(
        &client,
        REMOTE,
        &account,
        &options(TokenStrategy::TokenRequest { ttl }),
    )
    .await
    .unwrap();
    assert_eq!(t.source, TokenSource::TokenRequest);
    // The token is bound to a Secret made for it, labelled and annotated as ours.
    let bound = t
        .secret_name
        .clone()
        .expect("the Secret the token is bound to");
    assert!(bound.starts_with("reader-bound-token-"), "{bound}");
    assert!(t.created);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &account.namespace);
    let object = secrets.get(&bound).await.unwrap();
    assert_eq!(object.metadata.uid, t.bound_to.as_ref().unwrap().uid);
    assert_eq!(
        object.metadata.annotations.unwrap_or_default()
            [mesh_kubeconfig::BOUND_TOKEN_FOR_ANNOTATION],
        "reader"
    );
    assert_eq!(
        object.metadata.labels.unwrap_or_default()[mesh_kubeconfig::MANAGED_BY_LABEL.0],
        mesh_kubeconfig::MANAGED_BY_LABEL.1
    );
    let expires = t.expires_at.expect("bound tokens expire").as_second();
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    assert!(
        (now + 3500..=now + 3700).contains(&expires),
        "expires {expires}, now {now}"
    );
    assert_eq!(
        mesh_kubeconfig::jwt_expiry(&t.token).unwrap().as_second(),
        expires
    );

    let err = obtain_token(
        &client,
        REMOTE,
        &account,
        &options(TokenStrategy::TokenRequest {
            ttl: Duration::from_secs(60),
        }),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::TokenTtlTooShort { .. }), "{err}");
    let left = secrets.list(&Default::default()).await.unwrap();
    assert_eq!(
        left.items
            .iter()
            .filter(|s| s
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(mesh_kubeconfig::BOUND_TOKEN_FOR_ANNOTATION)))
            .count(),
        1,
        "a refused lifetime made no Secret"
    );

    // Deleting the Secret revokes the token (the API server caches an authentication
    // for 10 s).
    assert!(
        token_review(&client, &t.token).await,
        "the new token authenticates"
    );
    secrets
        .delete(&bound, &DeleteParams::default())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while token_review(&client, &t.token).await {
        assert!(
            Instant::now() < deadline,
            "the token still authenticates 30 s after its Secret was deleted"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    cleanup(&client, &account).await;
}

/// Whether the cluster authenticates `token` (a TokenReview).
async fn token_review(client: &Client, token: &secrecy::SecretString) -> bool {
    let review = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token.expose_secret()},
    });
    let request = http::Request::post("/apis/authentication.k8s.io/v1/tokenreviews")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&review).unwrap())
        .unwrap();
    let answer: serde_json::Value = client.request(request).await.unwrap();
    answer["status"]["authenticated"] == true
}

#[tokio::test]
#[ignore = "needs the test bed: cargo xtask test"]
async fn generated_kubeconfig_reads_but_cannot_write() {
    let client = remote().await;
    let namespace = unique("mk-gen");
    let mut request = RemoteSecretRequest::new(REMOTE);
    request.namespace = namespace.clone();
    request.service_account = "istio-multi".into();
    request.cluster_name = Some("n2-k8s-config".into());
    request.secret_name = Some("n2-k8s-secret".into());
    request.token.strategy = TokenStrategy::TokenRequest {
        ttl: Duration::from_secs(7200),
    };
    let out = generate_remote_secret(&kubeconfigs(), &request)
        .await
        .unwrap();
    assert_eq!(out.secret.metadata.name.as_deref(), Some("n2-k8s-secret"));
    assert!(
        out.secret
            .data
            .as_ref()
            .unwrap()
            .contains_key("n2-k8s-config")
    );
    assert!(
        out.warnings
            .iter()
            .any(|w| matches!(w, mesh_kubeconfig::Warning::LoopbackServer { .. })),
        "{:?}",
        out.warnings
    );
    assert!(
        out.ca_validated,
        "the chosen CA validates the test bed's server"
    );
    let v = out.verification.clone().unwrap();
    assert_eq!(
        v.user,
        format!("system:serviceaccount:{namespace}:istio-multi")
    );
    assert!(v.is_ok(), "{:?}", v.problems());
    assert!(v.expires_at.is_some());

    // Independently of generate_remote_secret: verify the kubeconfig again.
    let again = verify_remote_kubeconfig(&out.kubeconfig, None, None)
        .await
        .unwrap();
    for want in [
        "list services",
        "list endpointslices.discovery.k8s.io",
        "watch pods",
        "list namespaces",
        "list secrets",
    ] {
        assert!(
            again.allowed_reads.iter().any(|a| a.to_string() == want),
            "{want}"
        );
    }
    for want in [
        "create services",
        "delete pods",
        "create namespaces",
        "delete secrets",
    ] {
        assert!(
            again.denied_writes.iter().any(|a| a.to_string() == want),
            "{want}"
        );
    }
    cleanup(&client, &ReaderAccount::new(namespace, "istio-multi")).await;
}

#[tokio::test]
#[ignore = "needs the test bed: cargo xtask test"]
async fn wrong_context_lists_the_real_ones() {
    let Err(err) = kubeconfigs().client("no-such-cluster", None).await else {
        panic!("a client for a context that does not exist");
    };
    let err = err.to_string();
    assert!(
        err.contains("no-such-cluster") && err.contains("cluster1") && err.contains("cluster2"),
        "{err}"
    );
}

#[tokio::test]
#[ignore = "needs the test bed: cargo xtask test"]
async fn unreachable_server_fails_fast() {
    // A context like the test bed's cluster2, but on a port nothing listens on.
    let dead = Kubeconfigs::from_yaml(
        "clusters:\n- name: cluster2\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\ncontexts:\n- name: cluster2\n  context:\n    cluster: cluster2\n",
    )
    .unwrap();
    let client = dead.client(REMOTE, None).await.unwrap();
    let start = Instant::now();
    let err = ensure_reader_account(
        &client,
        REMOTE,
        &ReaderAccount::istio_default("istio-system"),
    )
    .await
    .unwrap_err()
    .with_server("https://127.0.0.1:1");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    let msg = err.to_string();
    assert!(matches!(err, Error::Unreachable { .. }), "{msg}");
    assert!(
        msg.contains("cluster2") && msg.contains("https://127.0.0.1:1"),
        "{msg}"
    );
}
