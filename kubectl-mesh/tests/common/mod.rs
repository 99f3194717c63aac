//! Helpers shared by the tests that run on the test bed (`cargo xtask test`).
#![allow(dead_code)]

pub mod bare;
pub mod guide;
pub mod istiod;
pub mod sample;
pub mod tokens;

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Output;

/// The test bed's state directory (set by `cargo xtask testbed env` / `cargo xtask test`).
pub fn testbed_dir() -> PathBuf {
    PathBuf::from(
        std::env::var_os("KUBECTL_MESH_TESTBED")
            .expect("KUBECTL_MESH_TESTBED is unset: run through `cargo xtask test`"),
    )
}

/// Holds the mesh-wide lock: tests that change mesh-level objects (cacerts, namespace
/// labels, meshNetworks, remote secrets) of the shared clusters take it for their
/// whole run, so they do not see each other's changes. Released on drop (or when the
/// process dies: it is an OS file lock).
pub struct MeshLock(#[allow(dead_code)] File);

/// Takes the mesh-wide lock, waiting for other tests to release it.
pub fn mesh_lock() -> MeshLock {
    let path = testbed_dir().join("mesh.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    file.lock().expect("locking mesh.lock");
    MeshLock(file)
}

/// A position in a cluster's audit log; [`AuditMark::mutations`] reads what follows.
pub struct AuditMark {
    path: PathBuf,
    offset: u64,
}

/// Marks the current end of `cluster`'s audit log.
pub fn audit_mark(cluster: &str) -> AuditMark {
    let path = testbed_dir().join(cluster).join("logs/audit.log");
    let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    AuditMark { path, offset }
}

/// Pod subresources that open a stream (a port-forward to istiod, an exec in a sample)
/// and persist nothing.
const STREAMS: &[&str] = &["portforward", "exec", "attach"];

/// Reviews that are `create` requests but persist nothing.
const NON_PERSISTENT: &[&str] = &[
    "selfsubjectaccessreviews",
    "selfsubjectreviews",
    "selfsubjectrulesreviews",
    "subjectaccessreviews",
    "localsubjectaccessreviews",
    "tokenreviews",
];

impl AuditMark {
    /// Mutating requests (create, update, patch, delete) that kubectl-mesh made since the
    /// mark, as `verb resource namespace/name` lines. Reviews that persist nothing
    /// (SelfSubjectAccessReview, TokenReview, …) are left out.
    pub fn mutations(&self) -> Vec<String> {
        self.mutations_by(&["kubectl-mesh/"])
    }

    /// Like [`AuditMark::mutations`], for requests whose user agent starts with one of
    /// `agents` (helm's is `Helm/<version>`).
    pub fn mutations_by(&self, agents: &[&str]) -> Vec<String> {
        // The API server writes an event when the response is complete: give it a moment.
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let mut file = File::open(&self.path).expect("audit log");
        file.seek(SeekFrom::Start(self.offset)).unwrap();
        let mut found = Vec::new();
        for line in BufReader::new(file).lines() {
            let Ok(line) = line else { break };
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let agent = event["userAgent"].as_str().unwrap_or_default();
            let verb = event["verb"].as_str().unwrap_or_default();
            let resource = event["objectRef"]["resource"].as_str().unwrap_or_default();
            if !agents.iter().any(|a| agent.starts_with(a))
                || event["stage"] != "ResponseComplete"
                || !matches!(
                    verb,
                    "create" | "update" | "patch" | "delete" | "deletecollection"
                )
                || NON_PERSISTENT.contains(&resource)
                || STREAMS.contains(
                    &event["objectRef"]["subresource"]
                        .as_str()
                        .unwrap_or_default(),
                )
            {
                continue;
            }
            found.push(format!(
                "{verb} {resource}{} {}/{}",
                event["objectRef"]["subresource"]
                    .as_str()
                    .map(|s| format!("/{s}"))
                    .unwrap_or_default(),
                event["objectRef"]["namespace"].as_str().unwrap_or("-"),
                event["objectRef"]["name"].as_str().unwrap_or("-"),
            ));
        }
        found
    }
}

/// Runs real kubectl (from the test bed's PATH) and returns stdout; panics with stderr on failure.
pub fn kubectl(args: &[&str]) -> String {
    let out = std::process::Command::new("kubectl")
        .args(args)
        .output()
        .expect("kubectl on PATH (cargo xtask testbed env)");
    assert!(
        out.status.success(),
        "kubectl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The LoadBalancer address of the east-west gateway (label `istio=eastwestgateway`) in `ctx`.
pub fn lb_address(ctx: &str) -> String {
    kubectl(&[
        "--context",
        ctx,
        "-n",
        "istio-system",
        "get",
        "svc",
        "-l",
        "istio=eastwestgateway",
        "-o",
        "jsonpath={.items[0].status.loadBalancer.ingress[0].ip}",
    ])
}

/// The `meshNetworks` text of the `istio` ConfigMap in `ctx`.
pub fn mesh_networks(ctx: &str) -> String {
    kubectl(&[
        &format!("--context={ctx}"),
        "-n",
        "istio-system",
        "get",
        "configmap",
        "istio",
        "-o",
        "jsonpath={.data.meshNetworks}",
    ])
}

/// The `topology.istio.io/controlPlaneClusters` annotation of `ctx`'s `istio-system`, as
/// `kubectl get namespace` shows it (empty when missing).
pub fn control_plane_clusters(ctx: &str) -> String {
    istio_namespace(
        ctx,
        "jsonpath={.metadata.annotations.topology\\.istio\\.io/controlPlaneClusters}",
    )
}

/// `kubectl get namespace istio-system -o OUTPUT` in `ctx` (a `jsonpath=…` usually).
pub fn istio_namespace(ctx: &str, output: &str) -> String {
    kubectl(&[
        "--context",
        ctx,
        "get",
        "namespace",
        "istio-system",
        "-o",
        output,
    ])
}

/// Like [`kubectl`], but a failure is returned rather than a panic.
pub fn kubectl_ok(args: &[&str]) -> bool {
    std::process::Command::new("kubectl")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Puts the test-bed clusters back as a user has them before any join: Istio
/// installed, but no cacerts, no network label on the namespaces, no cross-network
/// Gateway, empty meshNetworks, no remote secrets, no reader credentials. The same reset
/// as the join benchmarks': [`xtask::mesh_reset::reset_mesh`].
pub fn reset_mesh() {
    xtask::mesh_reset::reset_mesh(&[]).expect("resetting the test bed's mesh");
}

/// `kubectl mesh join cluster2 --primary cluster1` from a reset mesh, which must succeed;
/// returns the certificates it gave.
pub fn join_cluster2() -> tempfile::TempDir {
    reset_mesh();
    let certs = generate_certs(&["cluster1", "cluster2"]);
    let out = join(certs.path(), &[]);
    assert!(
        out.status.success(),
        "join failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    certs
}

/// `kubectl mesh certs generate --out DIR cluster1 cluster2` into a fresh temp dir.
pub fn generate_certs(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = mesh_command()
        .args(["certs", "generate", "--out"])
        .arg(dir.path())
        .args(names)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "certs generate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// The built `kubectl-mesh`, without colour or a RUST_LOG from the environment; to add
/// arguments to, and to run or spawn.
pub fn mesh_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("kubectl-mesh"));
    cmd.env("NO_COLOR", "1").env_remove("RUST_LOG");
    cmd
}

/// Runs the built `kubectl-mesh` without colour or a RUST_LOG from the environment.
pub fn mesh(args: &[&str]) -> Output {
    mesh_command().args(args).output().unwrap()
}

/// `kubectl mesh join REMOTE --primary cluster1 --certs CERTS --yes EXTRA…`, to run or
/// spawn.
pub fn join_command(remote: &str, certs: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = mesh_command();
    cmd.args(["join", remote, "--primary", "cluster1", "--certs"])
        .arg(certs)
        .arg("--yes")
        .args(extra);
    cmd
}

/// `kubectl mesh join cluster2 --primary cluster1 --certs CERTS --yes EXTRA…`: the test
/// bed's usual join, cluster2 into cluster1's mesh.
pub fn join(certs: &Path, extra: &[&str]) -> Output {
    join_command("cluster2", certs, extra).output().unwrap()
}

/// [`join`], which must succeed.
pub fn joined(certs: &Path, extra: &[&str]) {
    let out = join(certs, extra);
    assert!(out.status.success(), "join: {}", text(&out.stderr));
}

/// `kubectl mesh unjoin REMOTE --primary cluster1 --yes EXTRA…`.
pub fn unjoin(remote: &str, extra: &[&str]) -> Output {
    let mut args = vec!["unjoin", remote, "--primary", "cluster1", "--yes"];
    args.extend(extra);
    mesh(&args)
}

/// `kubectl mesh join west --primary east --yes --kubeconfig KUBECONFIG EXTRA…`, for a
/// kubeconfig such as [`offline_kubeconfig`]'s.
pub fn offline_join(kubeconfig: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "join",
        "west",
        "--primary",
        "east",
        "--yes",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ];
    args.extend(extra);
    mesh(&args)
}

/// `kubectl --context CTX -n istio-system get ARGS…`, trimmed.
pub fn get(ctx: &str, args: &[&str]) -> String {
    let mut all = vec!["--context", ctx, "-n", "istio-system", "get"];
    all.extend(args);
    kubectl(&all).trim().to_owned()
}

/// The token Secrets kubectl-mesh made in `ctx`'s `istio-system`, as `secret/NAME` lines.
pub fn token_secrets(ctx: &str) -> String {
    get(
        ctx,
        &[
            "secret",
            "-l",
            "app.kubernetes.io/managed-by=kubectl-mesh",
            "--field-selector",
            "type=kubernetes.io/service-account-token",
            "-o",
            "name",
        ],
    )
}

/// The ClusterRoleBinding of kubectl-mesh's reader account in `ctx`, as
/// `clusterrolebinding.rbac.authorization.k8s.io/NAME` (empty when missing).
pub fn reader_binding(ctx: &str) -> String {
    kubectl(&[
        "--context",
        ctx,
        "get",
        "clusterrolebinding",
        "--ignore-not-found",
        "-o",
        "name",
        "kubectl-mesh:istio-reader:istio-system:istio-reader-service-account",
    ])
    .trim()
    .to_owned()
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A kubeconfig with two contexts whose servers nobody listens on.
pub fn offline_kubeconfig() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        "apiVersion: v1\nkind: Config\ncurrent-context: east\nclusters:\n- name: east\n  cluster: {server: 'https://127.0.0.1:1'}\n- name: west\n  cluster: {server: 'https://127.0.0.1:2'}\nusers:\n- name: u\n  user: {token: not-a-real-token}\ncontexts:\n- name: east\n  context: {cluster: east, user: u}\n- name: west\n  context: {cluster: west, user: u}\n",
    )
    .unwrap();
    file
}
