//! Meshes built by hand, with kubectl (and real istioctl) only, as a user built them before
//! reaching for `kubectl mesh`: the 2019 guide's procedure ([`guide_mesh`]) and
//! `istioctl create-remote-secret | kubectl apply -f -` ([`istioctl_link`]). Tests of
//! join's adoption (`tests/adopt.rs`) start from these states. Every builder starts with
//! [`reset_mesh`]; the caller holds [`super::mesh_lock`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

use super::{kubectl, reset_mesh, text};

/// The Istio namespace of the test bed.
const NS: &str = "istio-system";

/// The guide's ingress gateway Service, in each cluster.
pub const INGRESS: &str = "istio-ingressgateway";
/// The guide's cross-network Gateway, in each cluster.
pub const CLUSTER_AWARE_GATEWAY: &str = "cluster-aware-gateway";
/// The guide's reader ServiceAccount in cluster2 (and its ClusterRoleBinding's name).
pub const ISTIO_MULTI: &str = "istio-multi";
/// The guide's token Secret for [`ISTIO_MULTI`].
pub const ISTIO_MULTI_TOKEN: &str = "istio-multi-token";
/// The guide's remote secret in cluster1.
pub const N2_SECRET: &str = "n2-k8s-secret";
/// The guide's kubeconfig file name: the remote secret's data key, so cluster2's ID.
pub const N2_CONFIG: &str = "n2-k8s-config";

/// Istio's sample certificates (`samples/certs`): one bundle, which the guide puts in
/// every cluster.
pub fn seed_certs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/istio-sample-certs/seed")
}

/// Polls `check` every 100 ms until it returns `Some`; panics after `timeout` naming `what`.
pub fn poll<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {timeout:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `kubectl apply -f -` with `yaml` on stdin, in `ctx`.
pub fn apply(ctx: &str, yaml: &str) -> String {
    pipe(&["--context", ctx, "apply", "-f", "-"], yaml.as_bytes())
}

/// Runs kubectl with `input` on stdin; stdout, panicking with stderr on failure.
fn pipe(args: &[&str], input: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl on PATH");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl {} failed: {}",
        args.join(" "),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The guide's step 2 in `ctx`: `kubectl create secret generic cacerts -n istio-system
/// --from-file=…` with the four files of `dir`.
pub fn create_cacerts(ctx: &str, dir: &Path) {
    let files: Vec<String> = [
        "ca-cert.pem",
        "ca-key.pem",
        "root-cert.pem",
        "cert-chain.pem",
    ]
    .iter()
    .map(|f| format!("--from-file={}", dir.join(f).display()))
    .collect();
    let mut args = vec![
        "--context",
        ctx,
        "create",
        "secret",
        "generic",
        "cacerts",
        "-n",
        NS,
    ];
    args.extend(files.iter().map(String::as_str));
    kubectl(&args);
}

/// The guide's ingress gateway Service in `ctx` (the test bed installs only the east-west
/// gateway; the guide's Istio 1.1 chart made this one): `istio=ingressgateway`,
/// LoadBalancer, port `https` 443 → 8443. The simulator gives it an address.
pub fn create_ingress_gateway(ctx: &str) {
    apply(
        ctx,
        &format!(
            "apiVersion: v1
kind: Service
metadata:
  name: {INGRESS}
  namespace: {NS}
  labels: {{istio: ingressgateway, app: istio-ingressgateway}}
spec:
  type: LoadBalancer
  selector: {{istio: ingressgateway}}
  ports:
  - {{name: https, port: 443, targetPort: 8443}}
"
        ),
    );
}

/// The LoadBalancer IP of the guide's ingress gateway in `ctx`, once it has one.
pub fn ingress_address(ctx: &str) -> String {
    poll(
        &format!("{ctx}: an address for Service {INGRESS}"),
        Duration::from_secs(60),
        || {
            let ip = kubectl(&[
                "--context",
                ctx,
                "-n",
                NS,
                "get",
                "svc",
                INGRESS,
                "-o",
                "jsonpath={.status.loadBalancer.ingress[0].ip}",
            ]);
            (!ip.trim().is_empty()).then(|| ip.trim().to_owned())
        },
    )
}

/// The version of `gateways.networking.istio.io` the CRD serves and stores in `ctx`
/// (`v1` on the test bed's Istio), as `kubectl get crd` shows it.
pub fn gateway_api_version(ctx: &str) -> String {
    let versions = kubectl(&[
        "--context",
        ctx,
        "get",
        "crd",
        "gateways.networking.istio.io",
        "-o",
        "jsonpath={range .spec.versions[?(@.served==true)]}{.name} {end}",
    ]);
    let served: Vec<&str> = versions.split_whitespace().collect();
    let version = ["v1", "v1beta1", "v1alpha3"]
        .into_iter()
        .find(|v| served.contains(v))
        .unwrap_or_else(|| {
            panic!("{ctx}: the Gateway CRD serves none of v1, v1beta1, v1alpha3: {versions}")
        });
    format!("networking.istio.io/{version}")
}

/// The guide's step 4 in `ctx`: Gateway `cluster-aware-gateway` on the ingress gateway,
/// port 443, TLS `AUTO_PASSTHROUGH`, hosts `*.local`.
pub fn create_cluster_aware_gateway(ctx: &str) {
    apply(
        ctx,
        &format!(
            "apiVersion: {}
kind: Gateway
metadata:
  name: {CLUSTER_AWARE_GATEWAY}
  namespace: {NS}
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 443
      name: tls
      protocol: TLS
    tls:
      mode: AUTO_PASSTHROUGH
    hosts:
    - \"*.local\"
",
            gateway_api_version(ctx)
        ),
    );
}

/// The guide's `meshNetworks` with network2's gateway at `network2_gateway` (port 443).
pub fn guide_mesh_networks(network2_gateway: &str) -> String {
    format!(
        "networks:
  network1:
    endpoints:
    - fromRegistry: cluster1
    gateways:
    - registryServiceName: istio-ingressgateway.istio-system.svc.cluster.local
      port: 443
  network2:
    endpoints:
    - fromRegistry: {N2_CONFIG}
    gateways:
    - address: {network2_gateway}
      port: 443
"
    )
}

/// The guide's step 6: `meshNetworks` in cluster1's `istio` ConfigMap (a merge patch of
/// that key only, so `mesh` stays).
pub fn patch_mesh_networks(networks: &str) {
    let patch = serde_json::json!({"data": {"meshNetworks": networks}}).to_string();
    kubectl(&[
        "--context",
        "cluster1",
        "-n",
        NS,
        "patch",
        "configmap",
        "istio",
        "--type=merge",
        "-p",
        &patch,
    ]);
}

/// The guide's step 8 in cluster2: ServiceAccount `istio-multi`, ClusterRoleBinding
/// `istio-multi` to the ClusterRole `view`, and the token Secret `istio-multi-token`
/// (Kubernetes ≥ 1.24 makes none by itself), waited for until the token controller filled
/// it. Returns (token, ca.crt as base64).
pub fn create_istio_multi() -> (String, String) {
    let c = "--context=cluster2";
    kubectl(&[c, "-n", NS, "create", "serviceaccount", ISTIO_MULTI]);
    kubectl(&[
        c,
        "create",
        "clusterrolebinding",
        ISTIO_MULTI,
        "--clusterrole=view",
        &format!("--serviceaccount={NS}:{ISTIO_MULTI}"),
    ]);
    apply(
        "cluster2",
        &format!(
            "apiVersion: v1
kind: Secret
metadata:
  name: {ISTIO_MULTI_TOKEN}
  namespace: {NS}
  annotations:
    kubernetes.io/service-account.name: {ISTIO_MULTI}
type: kubernetes.io/service-account-token
"
        ),
    );
    let field = |path: &str| {
        kubectl(&[
            c,
            "-n",
            NS,
            "get",
            "secret",
            ISTIO_MULTI_TOKEN,
            "-o",
            &format!("jsonpath={{.data.{path}}}"),
        ])
        .trim()
        .to_owned()
    };
    let token = poll(
        "the token controller to fill istio-multi-token",
        Duration::from_secs(60),
        || {
            let t = field("token");
            let ca = field("ca\\.crt");
            (!t.is_empty() && !ca.is_empty()).then_some(t)
        },
    );
    let token = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(token)
            .expect("the token is base64"),
    )
    .unwrap();
    (token, field("ca\\.crt"))
}

/// cluster2's API server URL as the test bed's kubeconfig names it (the guide: `kubectl
/// config view --minify -o jsonpath='{.clusters[].cluster.server}'`).
pub fn server(ctx: &str) -> String {
    kubectl(&[
        "config",
        "view",
        "--minify",
        "--context",
        ctx,
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ])
    .trim()
    .to_owned()
}

/// The guide's steps 9 and 10: the kubeconfig file `n2-k8s-config` (cluster2's server,
/// the token Secret's CA inline, the token), then in cluster1 `kubectl create secret
/// generic n2-k8s-secret --from-file n2-k8s-config` and `kubectl label secret
/// n2-k8s-secret istio/multiCluster=true`.
pub fn create_n2_k8s_secret(token: &str, ca_data: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(N2_CONFIG);
    std::fs::write(
        &file,
        format!(
            "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {ca_data}
    server: {server}
  name: {N2_CONFIG}
contexts:
- context:
    cluster: {N2_CONFIG}
    user: {N2_CONFIG}
  name: {N2_CONFIG}
current-context: {N2_CONFIG}
kind: Config
preferences: {{}}
users:
- name: {N2_CONFIG}
  user:
    token: {token}
",
            server = server("cluster2"),
        ),
    )
    .unwrap();
    let c = "--context=cluster1";
    kubectl(&[
        c,
        "create",
        "secret",
        "generic",
        N2_SECRET,
        "--from-file",
        file.to_str().unwrap(),
        "-n",
        NS,
    ]);
    kubectl(&[
        c,
        "label",
        "secret",
        N2_SECRET,
        "istio/multiCluster=true",
        "-n",
        NS,
    ]);
}

/// The guide's whole procedure on cluster1 (primary) and cluster2 (remote), from a reset
/// mesh: cacerts from Istio's sample certificates in both, the ingress gateway Service
/// and `cluster-aware-gateway` in both, `meshNetworks` (network2's gateway at cluster2's
/// ingress address, port 443), the `istio-multi` reader with `view` in cluster2 and the
/// `n2-k8s-secret` in cluster1.
pub fn guide_mesh() {
    guide_mesh_with_network2_gateway(None);
}

/// [`guide_mesh`] with network2's gateway address in `meshNetworks` set to `address`
/// instead of cluster2's ingress address (a gateway that moved since the guide was
/// followed).
pub fn guide_mesh_with_network2_gateway(address: Option<&str>) {
    reset_mesh();
    for ctx in ["cluster1", "cluster2"] {
        create_cacerts(ctx, &seed_certs());
        create_ingress_gateway(ctx);
        create_cluster_aware_gateway(ctx);
    }
    let found = ingress_address("cluster2");
    patch_mesh_networks(&guide_mesh_networks(address.unwrap_or(&found)));
    let (token, ca) = create_istio_multi();
    create_n2_k8s_secret(&token, &ca);
}

/// `istioctl create-remote-secret --context cluster2 --name cluster2 | kubectl --context
/// cluster1 apply -f -` from a reset mesh with the sample cacerts in both clusters.
/// Returns what istioctl printed (without its Secret's data), for reports.
pub fn istioctl_link() -> String {
    reset_mesh();
    for ctx in ["cluster1", "cluster2"] {
        create_cacerts(ctx, &seed_certs());
    }
    let out = Command::new("istioctl")
        .args([
            "create-remote-secret",
            "--context",
            "cluster2",
            "--name",
            "cluster2",
        ])
        .output()
        .expect("istioctl on PATH (source the test bed's env)");
    assert!(
        out.status.success(),
        "istioctl create-remote-secret: {}",
        text(&out.stderr)
    );
    pipe(&["--context", "cluster1", "apply", "-f", "-"], &out.stdout);
    text(&out.stderr)
}
