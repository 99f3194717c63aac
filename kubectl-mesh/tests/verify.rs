//! `kubectl mesh verify` against the real thing: the guide's mesh joined on the test bed,
//! real istiod (`pilot-discovery`, `common::istiod`) serving xDS on its TLS port with the
//! mesh's `cacerts`, and verify asking it what each cluster's `sleep` sidecar is told —
//! with a TokenRequest token for sleep's ServiceAccount, which istiod reviews against the
//! cluster the sidecar runs in (cluster2's through the remote secret join wrote).
//!
//! The expected addresses are read with kubectl (pod IPs, the gateways' LoadBalancer
//! addresses), never with kubectl-mesh's code. The test bed has no kubelet, so the traffic
//! step cannot exec into sleep: the tests assert that verify says "traffic not tested"
//! and still passes on the endpoints alone. Then each fault of the issue is made, with
//! istiod running, and verify must fail naming its cause.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::istiod::Istiod;
use common::sample::{SAMPLE, pod_ip};
use common::{join, join_cluster2, kubectl, kubectl_ok, lb_address, mesh, mesh_lock, text};
use serde_json::Value;

/// `kubectl mesh verify --primary cluster1 --istiod ADDR -o json EXTRA…`.
fn verify(istiod: &Istiod, extra: &[&str]) -> (Output, Value) {
    let address = istiod.secure_grpc_address();
    let mut args = vec![
        "verify",
        "--primary",
        "cluster1",
        "--istiod",
        &address,
        "-o",
        "json",
        "--requests",
        "2",
        // verify_until asks again; each run need not wait long for istiod.
        "--settle",
        "5s",
    ];
    args.extend(extra);
    let out = mesh(&args);
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, report)
}

/// Runs verify until `done` accepts its answer (istiod needs a few seconds to sync what
/// changed); the last answer when it never does.
fn verify_until(
    istiod: &Istiod,
    extra: &[&str],
    what: &str,
    done: impl Fn(&Output, &Value) -> bool,
) -> (Output, Value) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (out, report) = verify(istiod, extra);
        if done(&out, &report) {
            return (out, report);
        }
        assert!(
            Instant::now() < deadline,
            "verify never showed {what}:\n{}\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr),
            istiod.log_tail(40)
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn rows<'a>(report: &'a Value, client: &str) -> Vec<&'a Value> {
    report["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["client"] == client)
        .collect()
}

/// The `ADDRESS:PORT`s a client's sidecar received, sorted, without their weights.
fn received(report: &Value, client: &str) -> Vec<String> {
    let mut all: Vec<String> = rows(report, client)
        .iter()
        .flat_map(|r| r["received"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| Some(v.as_str()?.split(' ').next()?.to_owned()))
        .collect();
    all.sort();
    all
}

/// The weights a client's sidecar received, in the order of [`received`]'s rows.
fn weights(report: &Value, client: &str) -> Vec<u32> {
    rows(report, client)
        .iter()
        .flat_map(|r| r["received"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str()?.split('×').nth(1)?.parse().ok())
        .collect()
}

fn failed_hints(report: &Value) -> Vec<String> {
    report["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["state"] == "fail")
        .map(|r| format!("{} → {}: {}", r["client"], r["target"], r["hint"]))
        .collect()
}

fn sample_objects(ctx: &str) -> String {
    kubectl(&[
        "--context",
        ctx,
        "get",
        "deploy,svc,sa",
        "-n",
        SAMPLE,
        "-l",
        "kubectl-mesh.io/verify-sample=true",
        "-o",
        "name",
        "--ignore-not-found",
    ])
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn verify_passes_and_each_sidecar_is_told_its_pod_ip_and_the_other_networks_gateway() {
    let _lock = mesh_lock();
    let _certs = join_cluster2();
    let istiod = Istiod::start("cluster1");

    let (out, report) = verify_until(&istiod, &["--keep"], "a pass", |o, _| o.status.success());
    assert!(out.status.success());
    // The addresses, as kubectl reads them.
    let v1 = pod_ip("cluster1", "v1").expect("helloworld-v1 runs in cluster1");
    let v2 = pod_ip("cluster2", "v2").expect("helloworld-v2 runs in cluster2");
    let (gw1, gw2) = (lb_address("cluster1"), lb_address("cluster2"));
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        received(&report, "cluster1"),
        sorted(vec![format!("{v1}:5000"), format!("{gw2}:15443")]),
        "{report:#}"
    );
    assert_eq!(
        received(&report, "cluster2"),
        sorted(vec![format!("{v2}:5000"), format!("{gw1}:15443")]),
        "{report:#}"
    );
    // One pod behind the gateway weighs what the one local pod weighs.
    for client in ["cluster1", "cluster2"] {
        let w = weights(&report, client);
        assert!(w.len() == 2 && w[0] == w[1], "{client}: {w:?}\n{report:#}");
    }
    // The test bed has no kubelet: exec cannot run, and verify says so.
    for client in ["cluster1", "cluster2"] {
        let row = report["traffic"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["client"] == client)
            .unwrap_or_else(|| panic!("no traffic row for {client}: {report:#}"));
        assert_eq!(row["state"], "not-tested", "{row:#}");
        assert!(
            row["message"]
                .as_str()
                .unwrap()
                .starts_with("traffic not tested"),
            "{row:#}"
        );
    }
    // The text form says it too, and shows the matrix.
    let out = mesh(&[
        "verify",
        "--primary",
        "cluster1",
        "--istiod",
        &istiod.secure_grpc_address(),
        "--requests",
        "1",
        "--keep",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("traffic not tested"), "{stdout}");
    assert!(stdout.contains(&format!("{gw2}:15443")), "{stdout}");
    assert!(stdout.contains("network2 (v2 in cluster2)"), "{stdout}");

    // Without --istiod, verify port-forwards to istiod's pod through the API server, which
    // needs a kubelet: on the test bed it fails, naming the pod, and removes its samples.
    let out = mesh(&[
        "verify",
        "--primary",
        "cluster1",
        "--requests",
        "0",
        "--keep",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("port-forwarding to pod istio-system/istiod-")
            && stderr.contains("port 15012"),
        "{stderr}"
    );

    // --keep kept them; without it, verify removes what it deployed, in both clusters.
    assert!(sample_objects("cluster1").contains("deployment.apps/helloworld-v1"));
    assert!(sample_objects("cluster2").contains("deployment.apps/helloworld-v2"));
    let (out, report) = verify(&istiod, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        report["removed"].as_array().unwrap().len() >= 2,
        "{report:#}"
    );
    for ctx in ["cluster1", "cluster2"] {
        common::guide::poll(
            &format!("namespace {SAMPLE} gone from {ctx}"),
            Duration::from_secs(60),
            || (!kubectl_ok(&["--context", ctx, "get", "ns", SAMPLE])).then_some(()),
        );
    }
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn verify_names_the_cause_of_each_fault_and_fails_after_unjoin() {
    let _lock = mesh_lock();
    let certs = join_cluster2();
    let istiod = Istiod::start("cluster1");
    verify_until(&istiod, &["--keep"], "a pass", |o, _| o.status.success());
    let ns = ["-n", "istio-system"];

    // 1. The remote's network label removed.
    kubectl(&[
        "--context",
        "cluster2",
        "label",
        "ns",
        "istio-system",
        "topology.istio.io/network-",
    ]);
    let (out, report) = verify(&istiod, &["--keep"]);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let hints = failed_hints(&report);
    assert!(
        hints
            .iter()
            .any(|h| h.contains("cluster2: its Istio namespace has no network label")),
        "{hints:#?}\n{report:#}"
    );
    let rejoin = join(certs.path(), &[]);
    assert!(rejoin.status.success(), "{}", text(&rejoin.stderr));
    verify_until(
        &istiod,
        &["--keep"],
        "a pass after the label is back",
        |o, _| o.status.success(),
    );

    // 2. The remote's gateway Service without an address (no longer a LoadBalancer).
    let gateway = kubectl(&[
        "--context",
        "cluster2",
        ns[0],
        ns[1],
        "get",
        "svc",
        "-l",
        "istio=eastwestgateway",
        "-o",
        "name",
    ]);
    let gateway = gateway.trim();
    kubectl(&[
        "--context",
        "cluster2",
        ns[0],
        ns[1],
        "patch",
        gateway,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"type":"ClusterIP","externalTrafficPolicy":null}}"#,
    ]);
    let (out, report) = verify(&istiod, &["--keep"]);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let hints = failed_hints(&report);
    assert!(
        hints.iter().any(|h| h.contains("cluster2: gateway")),
        "{hints:#?}\n{report:#}"
    );
    kubectl(&[
        "--context",
        "cluster2",
        ns[0],
        ns[1],
        "patch",
        gateway,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"type":"LoadBalancer"}}"#,
    ]);
    let rejoin = join(certs.path(), &[]);
    assert!(rejoin.status.success(), "{}", text(&rejoin.stderr));
    verify_until(
        &istiod,
        &["--keep"],
        "a pass with the gateway back",
        |o, _| o.status.success(),
    );

    // 3. The meshNetworks entry of network2 removed. istiod still finds network2's
    // gateway by the east-west gateway Service's network label, so sidecars are still told
    // the right endpoints: verify fails on the mesh's own check, which names the entry.
    let networks = common::mesh_networks("cluster1");
    let mut parsed: Value = serde_saphyr::from_str(&networks).unwrap();
    parsed["networks"]
        .as_object_mut()
        .unwrap()
        .remove("network2");
    let patch =
        serde_json::json!({"data": {"meshNetworks": serde_json::to_string(&parsed).unwrap()}});
    kubectl(&[
        "--context",
        "cluster1",
        ns[0],
        ns[1],
        "patch",
        "configmap",
        "istio",
        "--type",
        "merge",
        "-p",
        &patch.to_string(),
    ]);
    let (out, report) = verify(&istiod, &["--keep"]);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let failed: Vec<String> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["state"] == "fail")
        .map(|c| format!("{}: {}: {}", c["cluster"], c["check"], c["message"]))
        .collect();
    assert!(
        failed
            .iter()
            .any(|c| c.contains("cluster2") && c.contains("meshNetworks does not list")),
        "{failed:#?}\n{report:#}"
    );
    let text_out = mesh(&[
        "verify",
        "--primary",
        "cluster1",
        "--istiod",
        &istiod.secure_grpc_address(),
        "--requests",
        "0",
        "--keep",
    ]);
    let stdout = text(&text_out.stdout);
    assert!(
        stdout.contains("The mesh's own checks (kubectl mesh status) that fail:")
            && stdout.contains("meshNetworks does not list cluster cluster2"),
        "{stdout}"
    );
    let rejoin = join(certs.path(), &[]);
    assert!(rejoin.status.success(), "{}", text(&rejoin.stderr));
    verify_until(
        &istiod,
        &["--keep"],
        "a pass with meshNetworks back",
        |o, _| o.status.success(),
    );

    // 4. The remote secret deleted: istiod no longer reads cluster2.
    kubectl(&[
        "--context",
        "cluster1",
        ns[0],
        ns[1],
        "delete",
        "secret",
        "-l",
        "istio/multiCluster=true",
    ]);
    let (out, report) = verify_until(
        &istiod,
        &["cluster2", "--keep"],
        "cluster2 outside the mesh",
        |o, _| o.status.code() == Some(1),
    );
    let hints = failed_hints(&report);
    assert!(
        hints
            .iter()
            .any(|h| h.contains("cluster2 is not part of the mesh")),
        "{hints:#?}\n{}",
        text(&out.stdout)
    );
    let rejoin = join(certs.path(), &[]);
    assert!(rejoin.status.success(), "{}", text(&rejoin.stderr));
    verify_until(&istiod, &["--keep"], "a pass after the rejoin", |o, _| {
        o.status.success()
    });

    // 5. After unjoin, verify of cluster2 fails and says it is not part of the mesh.
    let out = common::unjoin("cluster2", &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (out, report) = verify(&istiod, &["cluster2"]);
    assert_eq!(out.status.code(), Some(1), "{report:#}");
    let hints = failed_hints(&report);
    assert!(
        hints
            .iter()
            .any(|h| h.contains("cluster2 is not part of the mesh")),
        "{hints:#?}"
    );
    // Without --keep, the samples are gone again.
    for ctx in ["cluster1", "cluster2"] {
        common::guide::poll(
            &format!("namespace {SAMPLE} gone from {ctx}"),
            Duration::from_secs(60),
            || (!kubectl_ok(&["--context", ctx, "get", "ns", SAMPLE])).then_some(()),
        );
    }
}
