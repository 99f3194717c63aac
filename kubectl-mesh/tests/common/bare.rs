//! The bare clusters of the test bed (cluster4, cluster5: no Istio when it starts), which
//! `install.rs` and `models.rs` install Istio into with `join --install` and wipe again.

use serde_json::Value;

use super::{kubectl, text};
use crate::common::istiod::NAMESPACE;

/// Istio's helm releases as join installs them.
pub const RELEASES: [&str; 3] = ["istio-base", "istiod", "istio-eastwestgateway"];

/// The values every test-bed install passes: no admission webhooks (nothing would answer).
pub const TESTBED_VALUES: &str = "\
# No admission webhooks: nothing in the test bed would answer them.
defaultRevision: \"\"
global:
  configValidation: false
  operatorManageWebhooks: true
";

/// Runs helm and returns its stdout; fails the test when helm does.
pub fn helm(args: &[&str]) -> String {
    let out = std::process::Command::new("helm")
        .args(args)
        .output()
        .expect("helm on PATH (cargo xtask testbed env)");
    assert!(
        out.status.success(),
        "helm {} failed: {}",
        args.join(" "),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `helm list` in the Istio namespace: release → status.
pub fn releases(ctx: &str) -> Vec<(String, String)> {
    let listed: Value = serde_json::from_str(&helm(&[
        "list",
        "--all",
        "--kube-context",
        ctx,
        "-n",
        NAMESPACE,
        "-o",
        "json",
    ]))
    .unwrap();
    let mut out: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Takes Istio out of `ctx` entirely: its helm releases (CRDs included), the namespace,
/// and the reader RBAC a join adds.
pub fn wipe_istio(ctx: &str) {
    let mut args = vec!["uninstall"];
    args.extend(RELEASES.iter().rev());
    args.extend([
        "--kube-context",
        ctx,
        "-n",
        NAMESPACE,
        "--ignore-not-found",
        "--wait",
    ]);
    helm(&args);
    let c = format!("--context={ctx}");
    kubectl(&[
        &c,
        "delete",
        "namespace",
        NAMESPACE,
        "--ignore-not-found",
        "--timeout=120s",
    ]);
    for crd in kubectl(&[&c, "get", "crd", "-o", "name"]).lines() {
        if crd.ends_with("istio.io") {
            kubectl(&[&c, "delete", crd]);
        }
    }
    kubectl(&[
        &c,
        "delete",
        "clusterrolebinding,clusterrole",
        "-l",
        "app.kubernetes.io/managed-by=kubectl-mesh",
        "--ignore-not-found",
    ]);
    assert!(releases(ctx).is_empty(), "{ctx} still has helm releases");
}
