//! Puts the test bed's clusters back to "Istio installed, nothing joined", with kubectl:
//! the one reset the join benchmarks (`bench_join`) and kubectl-mesh's integration tests
//! (`tests/common`, a dev-dependency) share, so that both start from the same state.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The clusters that get Istio on the test bed (`cluster4` and later stay bare).
pub const MESH_CLUSTERS: [&str; 3] = ["cluster1", "cluster2", "cluster3"];

/// Removes from [`MESH_CLUSTERS`] everything a join makes — by kubectl-mesh or by the
/// guide's kubectl commands — so that a user's view is Istio installed and nothing else:
/// no `cacerts`, no remote secrets, no reader credentials (kubectl-mesh's
/// `istio-reader-service-account` or the guide's `istio-multi`), no cross-network
/// Gateway (join's `cross-network-gateway`, the guide's `cluster-aware-gateway`), no
/// guide's `istio-ingressgateway` Service, no network label, `controlPlaneClusters` or `kubectl-mesh/model` annotation on `istio-system`, and
/// an empty `meshNetworks` where an `istio` ConfigMap exists.
///
/// `env` is added to kubectl's environment (the test bed's `KUBECONFIG` and `PATH`, see
/// [`crate::testbed::env_vars`]); tests run with them set already and pass `&[]`.
pub fn reset_mesh(env: &[(String, String)]) -> Result<()> {
    reset_clusters(env, &MESH_CLUSTERS)
}

/// [`reset_mesh`] of `clusters` (any of the test bed's, once Istio is in them).
pub fn reset_clusters(env: &[(String, String)], clusters: &[&str]) -> Result<()> {
    let k = |args: &[&str]| kubectl(env, args);
    let ns = "--namespace=istio-system";
    for ctx in clusters {
        let c = &format!("--context={ctx}");
        k(&[c, ns, "delete", "secret", "cacerts", "--ignore-not-found"])?;
        for selector in [
            "istio/multiCluster=true",
            "app.kubernetes.io/managed-by=kubectl-mesh",
        ] {
            k(&[
                c,
                ns,
                "delete",
                "secret",
                "-l",
                selector,
                "--ignore-not-found",
            ])?;
        }
        // The guide's token Secret, made without kubectl-mesh's label, and the one
        // `istioctl create-remote-secret` makes for its reader account.
        k(&[
            c,
            ns,
            "delete",
            "secret",
            "istio-multi-token",
            "istio-reader-service-account-istio-remote-secret-token",
            "--ignore-not-found",
        ])?;
        k(&[
            c,
            ns,
            "delete",
            "serviceaccount",
            "istio-reader-service-account",
            "istio-multi",
            "--ignore-not-found",
        ])?;
        // The reader accounts' RBAC is cluster-scoped: deleting a ServiceAccount leaves it.
        k(&[
            c,
            "delete",
            "clusterrolebinding",
            "kubectl-mesh:istio-reader:istio-system:istio-reader-service-account",
            "istio-multi",
            "--ignore-not-found",
        ])?;
        k(&[
            c,
            ns,
            "delete",
            "gateways.networking.istio.io",
            "cross-network-gateway",
            "cluster-aware-gateway",
            "--ignore-not-found",
        ])?;
        // The guide's ingress gateway Service (the test bed installs only the east-west
        // gateway; a hand-built mesh in the tests adds this one) and its remote secret,
        // should its label have been taken off.
        k(&[
            c,
            ns,
            "delete",
            "service",
            "istio-ingressgateway",
            "--ignore-not-found",
        ])?;
        k(&[
            c,
            ns,
            "delete",
            "secret",
            "n2-k8s-secret",
            "--ignore-not-found",
        ])?;
        k(&[
            c,
            "label",
            "namespace",
            "istio-system",
            "topology.istio.io/network-",
        ])?;
        k(&[
            c,
            "annotate",
            "namespace",
            "istio-system",
            "topology.istio.io/controlPlaneClusters-",
            "kubectl-mesh/model-",
        ])?;
    }
    for ctx in clusters {
        let c = &format!("--context={ctx}");
        if k(&[c, ns, "get", "configmap", "istio"]).is_ok() {
            k(&[
                c,
                ns,
                "patch",
                "configmap",
                "istio",
                "--type=merge",
                "-p",
                r#"{"data":{"meshNetworks":"networks: {}\n"}}"#,
            ])?;
        }
    }
    Ok(())
}

/// Runs kubectl with `env` added; its stdout, or an error with its stderr.
pub fn kubectl(env: &[(String, String)], args: &[&str]) -> Result<String> {
    run(Path::new("kubectl"), env, args)
}

/// Runs `bin` with `env` added; its stdout, or an error naming the command with its stderr.
pub fn run(bin: &Path, env: &[(String, String)], args: &[&str]) -> Result<String> {
    let out = Command::new(bin)
        .args(args)
        .envs(env.iter().cloned())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed: {}",
            bin.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
