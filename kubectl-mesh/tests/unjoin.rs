//! `kubectl mesh unjoin` on the test bed: it removes what join added for the remote and
//! nothing else; with --purge both clusters are back as before the join, as a user
//! checks them with kubectl; a second unjoin, and a dry run, change nothing (audit log);
//! a remote that does not answer still gets its primary side removed.
//! Run with `cargo xtask test`; plain `cargo test` skips these.

mod common;

use std::process::Output;

use std::collections::BTreeMap;

use common::{
    audit_mark, generate_certs, get, istio_namespace, joined, kubectl, kubectl_ok, mesh_command,
    mesh_lock, reset_mesh, text, token_secrets,
};

const NAME: &str = "unjoin-test";

/// `kubectl mesh unjoin cluster2 --primary cluster1 --cluster-name NAME EXTRA…` (no
/// `--yes` unless in `extra`).
fn unjoin_command(extra: &[&str]) -> std::process::Command {
    let mut cmd = mesh_command();
    cmd.args([
        "unjoin",
        "cluster2",
        "--primary",
        "cluster1",
        "--cluster-name",
        NAME,
    ])
    .args(extra);
    cmd
}

fn unjoin(extra: &[&str]) -> Output {
    unjoin_command(extra).output().unwrap()
}

/// What a user checks with kubectl in `ctx`: remote secrets, meshNetworks, the Istio
/// namespace's topology labels and annotations, cacerts, the cross-network Gateway,
/// and kubectl-mesh's reader account and token Secrets.
fn snapshot(ctx: &str) -> BTreeMap<&'static str, String> {
    let mut s = BTreeMap::new();
    s.insert(
        "remote secrets",
        get(
            ctx,
            &["secret", "-l", "istio/multiCluster=true", "-o", "name"],
        ),
    );
    let networks = if kubectl_ok(&["--context", ctx, "-n", "istio-system", "get", "cm", "istio"]) {
        let yaml = get(ctx, &["cm", "istio", "-o", "jsonpath={.data.meshNetworks}"]);
        let doc: serde_json::Value =
            serde_saphyr::from_str(&yaml).unwrap_or(serde_json::Value::Null);
        let nets = doc
            .get("networks")
            .cloned()
            .unwrap_or(serde_json::json!({}));
        if nets.is_null() {
            "{}".to_owned()
        } else {
            nets.to_string()
        }
    } else {
        "no ConfigMap".into()
    };
    s.insert("meshNetworks", networks);
    let ns: serde_json::Value = serde_json::from_str(&istio_namespace(ctx, "json")).unwrap();
    let topology = |field: &str| {
        ns["metadata"][field]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.starts_with("topology.istio.io/"))
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    s.insert("namespace labels", topology("labels"));
    s.insert("namespace annotations", topology("annotations"));
    s.insert(
        "cacerts",
        get(
            ctx,
            &[
                "secret",
                "--field-selector",
                "metadata.name=cacerts",
                "-o",
                "name",
            ],
        ),
    );
    s.insert(
        "cross-network gateway",
        get(
            ctx,
            &[
                "gateways.networking.istio.io",
                "--field-selector",
                "metadata.name=cross-network-gateway",
                "-o",
                "name",
            ],
        ),
    );
    s.insert("kubectl-mesh token secrets", token_secrets(ctx));
    s.insert(
        "reader account",
        get(
            ctx,
            &[
                "serviceaccount",
                "--field-selector",
                "metadata.name=istio-reader-service-account",
                "-o",
                "name",
            ],
        ),
    );
    s.insert(
        "reader binding",
        kubectl(&[
            "--context",
            ctx,
            "get",
            "clusterrolebinding",
            "--field-selector",
            "metadata.name=kubectl-mesh:istio-reader:istio-system:istio-reader-service-account",
            "-o",
            "name",
        ])
        .trim()
        .to_owned(),
    );
    s
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn unjoin_removes_what_join_added_and_purge_restores_both_clusters() {
    let _lock = mesh_lock();
    reset_mesh();
    let before = [snapshot("cluster1"), snapshot("cluster2")];
    let certs = generate_certs(&["cluster1", NAME]);
    joined(certs.path(), &["--cluster-name", NAME]);
    let joined = [snapshot("cluster1"), snapshot("cluster2")];
    assert_ne!(joined[0]["remote secrets"], before[0]["remote secrets"]);
    assert!(joined[0]["meshNetworks"].contains(NAME), "{:?}", joined[0]);
    assert!(
        !joined[1]["kubectl-mesh token secrets"].is_empty(),
        "{:?}",
        joined[1]
    );

    // Without a terminal and without --yes it refuses, naming the flag.
    let out = unjoin(&[]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--yes"), "{}", text(&out.stderr));

    // A dry run lists every removal, naming cluster and object, and changes nothing.
    let marks = [audit_mark("cluster1"), audit_mark("cluster2")];
    let out = unjoin(&["--dry-run", "--purge"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    for expected in [
        format!(
            "cluster1: would have deleted remote Secret istio-system/istio-remote-secret-{NAME} in cluster1"
        ),
        format!("removed cluster {NAME}"),
        "cluster2: would have deleted token Secret istio-system/".to_owned(),
        "deleted Secret istio-system/cacerts".to_owned(),
    ] {
        assert!(plan.contains(&expected), "no {expected:?} in:\n{plan}");
    }
    for m in &marks {
        assert!(
            m.mutations().is_empty(),
            "the dry run changed: {:?}",
            m.mutations()
        );
    }
    assert_eq!([snapshot("cluster1"), snapshot("cluster2")], joined);

    // unjoin: the link goes — remote secret, meshNetworks entry, token Secret — nothing else.
    let out = unjoin(&["--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (c1, c2) = (snapshot("cluster1"), snapshot("cluster2"));
    assert_eq!(c1["remote secrets"], before[0]["remote secrets"]);
    assert!(!c1["meshNetworks"].contains(NAME), "{}", c1["meshNetworks"]);
    assert_eq!(
        c2["kubectl-mesh token secrets"], "",
        "the token Secret stays: {c2:?}"
    );
    for key in [
        "namespace labels",
        "namespace annotations",
        "cacerts",
        "cross-network gateway",
        "reader account",
        "reader binding",
    ] {
        assert_eq!(
            c2[key], joined[1][key],
            "plain unjoin changed {key} in cluster2"
        );
        assert_eq!(
            c1[key], joined[0][key],
            "plain unjoin changed {key} in cluster1"
        );
    }

    // --purge: both clusters are as before the join.
    let out = unjoin(&["--purge", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        snapshot("cluster1"),
        before[0],
        "cluster1 differs from before the join"
    );
    assert_eq!(
        snapshot("cluster2"),
        before[1],
        "cluster2 differs from before the join"
    );

    // Again: nothing to do, it says so, and makes no mutating request.
    let marks = [audit_mark("cluster1"), audit_mark("cluster2")];
    let out = unjoin(&["--purge", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Nothing to remove"),
        "{}",
        text(&out.stdout)
    );
    for m in &marks {
        assert!(
            m.mutations().is_empty(),
            "a second unjoin changed: {:?}",
            m.mutations()
        );
    }
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn unjoin_of_an_unreachable_remote_cleans_the_primary_and_warns() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", NAME]);
    joined(certs.path(), &["--cluster-name", NAME]);

    // A kubeconfig in which cluster2's server no longer answers (the cluster is gone).
    let real = std::env::var("KUBECONFIG").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("kubeconfig");
    let server = kubectl(&[
        "config",
        "view",
        "--raw",
        "-o",
        "jsonpath={.clusters[?(@.name==\"cluster2\")].cluster.server}",
    ]);
    let yaml = std::fs::read_to_string(real.split(':').next().unwrap()).unwrap();
    assert!(
        yaml.contains(server.trim()),
        "cluster2's server {server} in {real}"
    );
    std::fs::write(&gone, yaml.replace(server.trim(), "https://127.0.0.1:9")).unwrap();

    let out = unjoin_command(&["--yes", "--request-timeout", "5s"])
        .env("KUBECONFIG", &gone)
        .output()
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot reach") && stderr.contains("cluster2"),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!(
            "deleted remote Secret istio-system/istio-remote-secret-{NAME} in cluster1"
        )),
        "{stdout}"
    );
    let c1 = snapshot("cluster1");
    assert_eq!(c1["remote secrets"], "");
    assert!(!c1["meshNetworks"].contains(NAME), "{}", c1["meshNetworks"]);
    // What it could not clean is still there; with the cluster back, unjoin finishes it.
    assert!(!snapshot("cluster2")["kubectl-mesh token secrets"].is_empty());
    let out = unjoin(&["--purge", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(snapshot("cluster2")["kubectl-mesh token secrets"], "");
    reset_mesh();
}
