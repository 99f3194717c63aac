//! `kubectl mesh remote-secret` against the test bed: the printed Secret, applied to
//! cluster1 with kubectl, carries a kubeconfig that reads cluster2 and cannot write it.
//!
//! Run with `cargo xtask test` (KUBECONFIG with contexts cluster1 and cluster2,
//! kubectl on PATH); plain `cargo test` skips them.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt as _;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

fn mesh() -> Command {
    let mut cmd = Command::cargo_bin("kubectl-mesh").unwrap();
    cmd.env_remove("RUST_LOG").env("NO_COLOR", "1");
    cmd
}

fn kubectl(args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new("kubectl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl on PATH (eval \"$(cargo xtask testbed env)\")");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

async fn admin(context: &str) -> Client {
    let kc =
        mesh_kubeconfig::Kubeconfigs::load(&mesh_kubeconfig::KubeconfigSource::Default).unwrap();
    kc.client(context, Some(Duration::from_secs(20)))
        .await
        .unwrap()
}

/// The Istio namespace in the primary, created if missing (shared: never deleted).
async fn istio_namespace(client: &Client) {
    let ns = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some("istio-system".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.is_already_exists() => {}
        Err(e) => panic!("{e}"),
    }
}

/// Creates an empty object named `name` through `api`: a write probe.
async fn create_named<K>(api: Api<K>, name: &str) -> Result<K, kube::Error>
where
    K: kube::Resource + Default + Clone + std::fmt::Debug + serde::Serialize,
    K: serde::de::DeserializeOwned,
{
    let mut object = K::default();
    object.meta_mut().name = Some(name.to_owned());
    api.create(&PostParams::default(), &object).await
}

fn is_forbidden<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> bool {
    matches!(r, Err(kube::Error::Api(s)) if s.code == 403)
}

#[tokio::test]
#[ignore = "needs the test bed: cargo xtask test"]
async fn printed_secret_applied_to_cluster1_reads_cluster2_and_cannot_write() {
    let account = unique("rs-reader");
    let name = unique("c2");
    let out = mesh()
        .args([
            "remote-secret",
            "cluster2",
            "--name",
            &name,
            "--service-account",
            &account,
            "-vv",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: server https://127.") && stderr.contains("loopback"),
        "{stderr}"
    );

    // Apply it to the primary the way the help says.
    let primary = admin("cluster1").await;
    istio_namespace(&primary).await;
    let applied = kubectl(
        &["apply", "-f", "-", "--context", "cluster1"],
        Some(&stdout),
    );
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    let secret_name = format!("istio-remote-secret-{name}");
    let secrets: Api<Secret> = Api::namespaced(primary.clone(), "istio-system");
    let secret = secrets.get(&secret_name).await.unwrap();
    assert_eq!(
        secret.metadata.labels.as_ref().unwrap()["istio/multiCluster"],
        "true"
    );
    assert_eq!(
        secret.metadata.annotations.as_ref().unwrap()["networking.istio.io/cluster"],
        name
    );
    let data = secret.data.clone().unwrap();
    assert_eq!(data.len(), 1);
    let kubeconfig = String::from_utf8(data[&name].0.clone()).unwrap();

    // The token appears on stdout only: not in -vv diagnostics.
    let remote_kc = mesh_kubeconfig::Kubeconfigs::from_yaml(&kubeconfig).unwrap();
    let token = remote_kc.raw().auth_infos[0]
        .auth_info
        .as_ref()
        .unwrap()
        .token
        .clone()
        .unwrap();
    use secrecy::ExposeSecret as _;
    let token = token.expose_secret();
    assert!(token.len() > 20 && stdout.contains(token));
    assert!(!stderr.contains(token), "the token leaked to stderr");
    assert!(
        !stderr.contains(&token[token.len() - 16..]),
        "part of the token leaked to stderr"
    );

    // The kubeconfig authenticates to cluster2 as the reader ServiceAccount ...
    let reader = remote_kc
        .client(&name, Some(Duration::from_secs(20)))
        .await
        .unwrap();
    let who: k8s_openapi::api::authentication::v1::SelfSubjectReview = Api::all(reader.clone())
        .create(&PostParams::default(), &Default::default())
        .await
        .unwrap();
    assert_eq!(
        who.status.unwrap().user_info.unwrap().username.unwrap(),
        format!("system:serviceaccount:istio-system:{account}")
    );
    // ... may list what istiod reads across namespaces ...
    let lp = ListParams::default().limit(1);
    Api::<Service>::all(reader.clone()).list(&lp).await.unwrap();
    Api::<EndpointSlice>::all(reader.clone())
        .list(&lp)
        .await
        .unwrap();
    Api::<Pod>::all(reader.clone()).list(&lp).await.unwrap();
    Api::<Namespace>::all(reader.clone())
        .list(&lp)
        .await
        .unwrap();
    Api::<Secret>::all(reader.clone()).list(&lp).await.unwrap();
    // ... and may not create or delete them.
    let probe = unique("rs-probe");
    assert!(is_forbidden(
        create_named(Api::<Namespace>::all(reader.clone()), &probe).await
    ));
    assert!(is_forbidden(
        create_named(
            Api::<Service>::namespaced(reader.clone(), "default"),
            &probe
        )
        .await
    ));
    assert!(is_forbidden(
        create_named(
            Api::<Secret>::namespaced(reader.clone(), "istio-system"),
            &probe
        )
        .await
    ));
    let dp = DeleteParams::default();
    assert!(is_forbidden(
        Api::<Namespace>::all(reader.clone())
            .delete("default", &dp)
            .await
    ));
    assert!(is_forbidden(
        Api::<Secret>::namespaced(reader.clone(), "istio-system")
            .delete(&format!("{account}-token"), &dp)
            .await
    ));
    assert!(is_forbidden(
        Api::<Pod>::namespaced(reader.clone(), "default")
            .delete("anything", &dp)
            .await
    ));
    assert!(is_forbidden(
        Api::<EndpointSlice>::namespaced(reader.clone(), "default")
            .delete("anything", &dp)
            .await
    ));

    // Running again changes nothing in cluster2 and prints the same token.
    let again = mesh()
        .args([
            "remote-secret",
            "cluster2",
            "--name",
            &name,
            "--service-account",
            &account,
        ])
        .output()
        .unwrap();
    let again_err = String::from_utf8(again.stderr).unwrap();
    assert!(again.status.success(), "{again_err}");
    assert!(!again_err.contains("created"), "{again_err}");
    assert!(String::from_utf8(again.stdout).unwrap().contains(token));

    // Clean up what is this test's own.
    let _ = secrets.delete(&secret_name, &dp).await;
    let remote = admin("cluster2").await;
    let _ = Api::<Secret>::namespaced(remote.clone(), "istio-system")
        .delete(&format!("{account}-token"), &dp)
        .await;
    let _ = Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(
        remote.clone(),
        "istio-system",
    )
    .delete(&account, &dp)
    .await;
    let _ = Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(remote)
        .delete(
            &format!("kubectl-mesh:istio-reader:istio-system:{account}"),
            &dp,
        )
        .await;
}

#[tokio::test]
#[ignore = "needs the test bed: cargo xtask test"]
async fn token_ttl_prints_json_with_an_expiring_token() {
    let account = unique("rs-ttl");
    let out = mesh()
        .args([
            "remote-secret",
            "cluster2",
            "--service-account",
            &account,
            "--token-ttl",
            "2h",
            "-o",
            "json",
            "--remote-secret-name",
            "n2-k8s-secret",
            "--name",
            "n2-k8s-config",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["metadata"]["name"], "n2-k8s-secret");
    let kubeconfig = v["stringData"]["n2-k8s-config"].as_str().unwrap();
    let kc = mesh_kubeconfig::Kubeconfigs::from_yaml(kubeconfig).unwrap();
    let token = kc.raw().auth_infos[0]
        .auth_info
        .as_ref()
        .unwrap()
        .token
        .clone()
        .unwrap();
    let exp = mesh_kubeconfig::jwt_expiry(&token)
        .expect("a TokenRequest token expires")
        .as_second();
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    assert!((now + 7000..=now + 7300).contains(&exp), "{exp} vs {now}");
    assert!(
        !stderr.contains("token Secret"),
        "no token Secret on path (d): {stderr}"
    );
    // The token is bound to a Secret made for it, which the note names.
    let bound = stderr
        .split_once("Secret istio-system/")
        .and_then(|(_, rest)| rest.split_once(" created; the token of ServiceAccount"))
        .map(|(name, _)| name.to_owned())
        .unwrap_or_else(|| panic!("no note naming the bound Secret: {stderr}"));
    assert!(
        bound.starts_with(&format!("{account}-bound-token-")),
        "{bound}"
    );

    let dp = DeleteParams::default();
    let remote = admin("cluster2").await;
    let _ = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(remote.clone(), "istio-system")
        .delete(&bound, &dp)
        .await;
    let _ = Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(
        remote.clone(),
        "istio-system",
    )
    .delete(&account, &dp)
    .await;
    let _ = Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(remote)
        .delete(
            &format!("kubectl-mesh:istio-reader:istio-system:{account}"),
            &dp,
        )
        .await;
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn wrong_context_fails_fast_and_lists_the_real_ones() {
    let start = Instant::now();
    let out = mesh()
        .args(["remote-secret", "no-such-cluster"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success());
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(
        stderr.contains("\"no-such-cluster\" not found")
            && stderr.contains("cluster1")
            && stderr.contains("cluster2"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn unreachable_server_fails_fast_with_a_clear_error() {
    let dir = tempfile_dir();
    let path = dir.join("dead.yaml");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\ncurrent-context: dead\nclusters:\n- name: dead\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\ncontexts:\n- name: dead\n  context:\n    cluster: dead\n    user: dead\nusers:\n- name: dead\n  user:\n    token: not-a-real-token-value\n",
    )
    .unwrap();
    // A context that skips TLS verification needs a CA from the user (never one read
    // through it); this one is never used, as the server does not answer.
    let ca = dir.join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let start = Instant::now();
    let out = mesh()
        .args(["remote-secret", "dead", "--kubeconfig"])
        .arg(&path)
        .arg("--certificate-authority")
        .arg(&ca)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success());
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        stderr.contains("cannot reach the API server of \"dead\" at https://127.0.0.1:1"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-a-real-token-value"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(unique("kubectl-mesh-test"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
