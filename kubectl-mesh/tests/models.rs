//! Istio's multicluster models other than the guide's (primary-remote on different
//! networks, which `join.rs`, `install.rs` and `istiod.rs` prove): multi-primary on
//! different networks, multi-primary on one network, and primary-remote on one network.
//! Each test starts from the bare cluster4 and cluster5 (Istio wiped out), runs `join
//! --install` with the model, reads what each cluster holds back with kubectl and helm —
//! what Istio's documentation of that model has each cluster hold — and runs one real
//! istiod (`pilot-discovery`) per primary, asking it what it reads
//! (`/debug/clusterz`), which endpoints it holds (`/debug/endpointShardz`, the guide's
//! helloworld v1 in cluster4 and v2 in cluster5) and which gateways (`/debug/networkz`).
//! In multi-primary, `verify` asks each member's own istiod, and `rotate` replaces both
//! readers' tokens of one cluster at once.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::bare::{RELEASES, TESTBED_VALUES, releases, wipe_istio};
use common::istiod::{Istiod, NAMESPACE};
use common::sample::{Sample, pod_ip, shard};
use common::tokens::{REVOCATION, authenticates, link_token, rejected};
use common::{audit_mark, generate_certs, istio_namespace, kubectl, lb_address, mesh, text};
use serde_json::Value;

const C4: &str = "cluster4";
const C5: &str = "cluster5";
/// How long istiod may take to reach a conclusion (sync a cluster, see an endpoint).
const SETTLE: Duration = Duration::from_secs(90);

/// The tests of this file share cluster4 and cluster5.
static BARE_CLUSTERS: Mutex<()> = Mutex::new(());

struct Setup {
    certs: tempfile::TempDir,
    values: tempfile::NamedTempFile,
}

fn setup() -> Setup {
    setup_with(&[C4, C5])
}

/// cluster4 and cluster5 wiped, and CA bundles of one root for `clusters`.
fn setup_with(clusters: &[&str]) -> Setup {
    wipe_istio(C4);
    wipe_istio(C5);
    let values = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(values.path(), TESTBED_VALUES).unwrap();
    Setup {
        certs: generate_certs(clusters),
        values,
    }
}

/// `kubectl mesh join cluster5 --primary cluster4 --certs … --install --values … --yes EXTRA…`.
fn join(s: &Setup, extra: &[&str]) -> std::process::Output {
    common::mesh_command()
        .args(["join", C5, "--primary", C4, "--certs"])
        .arg(s.certs.path())
        .args(["--install", "--values"])
        .arg(s.values.path())
        .arg("--yes")
        .args(extra)
        .output()
        .unwrap()
}

fn joined(s: &Setup, extra: &[&str]) -> String {
    let out = join(s, extra);
    assert!(
        out.status.success(),
        "join {extra:?} failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The names of the `resource` objects (with `-l selector`, if any) in `ctx`'s Istio
/// namespace.
fn names(ctx: &str, resource: &str, selector: Option<&str>) -> Vec<String> {
    let mut args = vec!["--context", ctx, "-n", NAMESPACE, "get", resource];
    args.extend(selector.map(|s| ["-l", s]).into_iter().flatten());
    args.extend(["-o", "jsonpath={.items[*].metadata.name}"]);
    kubectl(&args)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The names of the remote secrets (label `istio/multiCluster=true`) in `ctx`.
fn remote_secrets(ctx: &str) -> Vec<String> {
    names(ctx, "secrets", Some("istio/multiCluster=true"))
}

/// The Istio Gateways in `ctx`'s Istio namespace, by name.
fn gateways(ctx: &str) -> Vec<String> {
    names(ctx, "gateways.networking.istio.io", None)
}

fn network_label(ctx: &str) -> String {
    istio_namespace(
        ctx,
        "jsonpath={.metadata.labels.topology\\.istio\\.io/network}",
    )
}

fn annotation(ctx: &str, key: &str) -> String {
    let key = key.replace('.', "\\.");
    istio_namespace(ctx, &format!("jsonpath={{.metadata.annotations.{key}}}"))
}

/// `meshNetworks` of `ctx`, parsed (empty document: `Null`).
fn mesh_networks(ctx: &str) -> Value {
    serde_saphyr::from_str(&common::mesh_networks(ctx)).unwrap_or(Value::Null)
}

/// Whether a `meshNetworks` document names no network (missing, or `networks: {}`).
fn no_networks(mesh_networks: &Value) -> bool {
    mesh_networks["networks"]
        .as_object()
        .is_none_or(serde_json::Map::is_empty)
}

/// The groups of a `--dry-run -o yaml` plan: each `# ` header line (without the `# `)
/// and the objects below it.
fn plan_groups(plan: &str) -> Vec<String> {
    format!("\n{plan}")
        .split("\n# ")
        .skip(1)
        .map(str::to_owned)
        .collect()
}

/// The group of a plan whose header starts with `header`.
fn plan_group(plan: &str, header: &str) -> Option<String> {
    plan_groups(plan)
        .into_iter()
        .find(|g| g.starts_with(header))
}

/// The header lines of a plan, one per step that would write.
fn plan_headers(plan: &str) -> Vec<String> {
    plan_groups(plan)
        .iter()
        .map(|g| g.lines().next().unwrap_or_default().to_owned())
        .collect()
}

/// A dry run of `join … EXTRA` writes nothing in either cluster; its plan.
fn dry_run(s: &Setup, extra: &[&str]) -> String {
    let marks = [audit_mark(C4), audit_mark(C5)];
    let mut args = extra.to_vec();
    args.extend(["--dry-run", "-o", "yaml"]);
    let plan = joined(s, &args);
    for mark in &marks {
        assert!(
            mark.mutations_by(&["kubectl-mesh/", "Helm/"]).is_empty(),
            "a dry run wrote"
        );
    }
    plan
}

/// Waits until `istiod` reads `cluster` and reports it synced.
fn wait_synced(istiod: &mut Istiod, cluster: &str) {
    istiod.wait_until(
        &format!("{cluster} synced in /debug/clusterz"),
        SETTLE,
        |i| {
            i.clusters()?
                .iter()
                .any(|(id, state)| id == cluster && state == "synced")
                .then_some(())
        },
    );
}

/// Waits until `istiod` holds helloworld `version` of `ctx` at its pod IP, and returns
/// the endpoint.
fn wait_endpoint(istiod: &mut Istiod, ctx: &str, version: &str) -> Value {
    istiod.wait_until(
        &format!("endpointShardz: helloworld {version} under {ctx} at its pod IP"),
        SETTLE,
        |i| {
            let ip = pod_ip(ctx, version)?;
            let all = i.json("/debug/endpointShardz")?;
            shard(&all, &format!("Kubernetes/{ctx}"))
                .into_iter()
                .find(|e| e["Addresses"][0] == ip.as_str())
        },
    )
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn multi_primary_on_different_networks_every_istiod_reads_every_cluster() {
    let _lock = BARE_CLUSTERS.lock().unwrap_or_else(|e| e.into_inner());
    let s = setup();

    // The dry run prints every object of both clusters, and writes nothing.
    let plan = dry_run(&s, &["--model", "multi-primary"]);
    for ctx in [C4, C5] {
        let group = |what: &str| {
            plan_group(&plan, &format!("{ctx}: {what}"))
                .unwrap_or_else(|| panic!("no {ctx}: {what} in the plan:\n{plan}"))
        };
        assert!(
            group("would have created namespace istio-system")
                .contains("kubectl-mesh/model: multi-primary")
        );
        assert!(
            group("would have created Gateway istio-system/cross-network-gateway")
                .contains("AUTO_PASSTHROUGH")
        );
        assert!(group("would have installed release istiod").contains("kind: Deployment"));
    }

    let stdout = joined(&s, &["--model", "multi-primary"]);
    assert!(
        stdout.contains("istio-remote-secret-cluster5")
            && stdout.contains("istio-remote-secret-cluster4"),
        "{stdout}"
    );

    // What Istio's multi-primary, multi-network install has each cluster hold: its own
    // istiod and east-west gateway, its network, a cross-network Gateway, and a remote
    // secret for the other cluster; no control-plane annotation (neither is a remote).
    for (ctx, other) in [(C4, C5), (C5, C4)] {
        let mut all: Vec<(String, String)> = RELEASES
            .iter()
            .map(|r| ((*r).to_owned(), "deployed".to_owned()))
            .collect();
        all.sort();
        assert_eq!(releases(ctx), all, "{ctx}");
        assert_eq!(network_label(ctx), format!("network-{ctx}"));
        assert_eq!(annotation(ctx, "kubectl-mesh/model"), "multi-primary");
        assert_eq!(
            annotation(ctx, "topology.istio.io/controlPlaneClusters"),
            "",
            "{ctx} is no remote"
        );
        assert_eq!(gateways(ctx), ["cross-network-gateway"], "{ctx}");
        assert_eq!(
            remote_secrets(ctx),
            [format!("istio-remote-secret-{other}")],
            "{ctx}"
        );
        // Each primary's meshNetworks routes the other network to its gateway.
        let networks = mesh_networks(ctx);
        assert_eq!(
            networks["networks"][format!("network-{other}")]["gateways"][0]["address"],
            lb_address(other).as_str(),
            "{ctx}: {networks:#}"
        );
    }

    // Real istiod per cluster: each reads the other, holds both versions on their
    // networks, and knows the other network's gateway.
    let dir = tempfile::tempdir().unwrap();
    let _sample = Sample::create_in(dir.path(), &[(C4, "v1"), (C5, "v2")]);
    for (ctx, other) in [(C4, C5), (C5, C4)] {
        let mut istiod = Istiod::start(ctx);
        wait_synced(&mut istiod, other);
        for (at, version) in [(C4, "v1"), (C5, "v2")] {
            let endpoint = wait_endpoint(&mut istiod, at, version);
            assert_eq!(
                endpoint["Network"],
                format!("network-{at}"),
                "{ctx}: {endpoint:#}"
            );
            assert_eq!(endpoint["Locality"]["ClusterID"], at, "{ctx}: {endpoint:#}");
        }
        let address = lb_address(other);
        istiod.wait_until(
            &format!("{ctx}: networkz lists network-{other}'s gateway {address}:15443"),
            SETTLE,
            |i| {
                i.json("/debug/networkz")?
                    .as_array()?
                    .iter()
                    .any(|g| {
                        g["Network"] == format!("network-{other}").as_str()
                            && g["Addr"] == address.as_str()
                            && g["Port"] == 15443
                    })
                    .then_some(())
            },
        );
    }

    // verify asks each member's own istiod what that member's sidecars are told: its
    // version's pod, and the other network's gateway.
    let (mut at4, mut at5) = (Istiod::start(C4), Istiod::start(C5));
    wait_synced(&mut at4, C5);
    wait_synced(&mut at5, C4);
    let routes = [
        format!("{C4}={}", at4.secure_grpc_address()),
        format!("{C5}={}", at5.secure_grpc_address()),
    ];
    let deadline = std::time::Instant::now() + SETTLE;
    let (out, report) = loop {
        let out = mesh(&[
            "verify",
            "--primary",
            C4,
            "--istiod",
            &routes[0],
            "--istiod",
            &routes[1],
            "-o",
            "json",
            "--requests",
            "0",
            "--settle",
            "5s",
            "--keep",
        ]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if out.status.success() || std::time::Instant::now() > deadline {
            break (out, report);
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    assert!(
        out.status.success(),
        "verify of the multi-primary mesh:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    for (client, version, other) in [(C4, "v1", C5), (C5, "v2", C4)] {
        let mut received: Vec<String> = report["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["client"] == client)
            .flat_map(|r| r["received"].as_array().cloned().unwrap_or_default())
            .filter_map(|v| Some(v.as_str()?.split(' ').next()?.to_owned()))
            .collect();
        received.sort();
        let pod = pod_ip(client, version).expect("the local version runs");
        let mut expected = vec![
            format!("{pod}:5000"),
            format!("{}:15443", lb_address(other)),
        ];
        expected.sort();
        assert_eq!(received, expected, "{client}: {report:#}");
    }
    // Each member's sidecar asked that member's own istiod (its log names the sidecar's
    // node), not the other's. --keep kept the sleep pods to name them.
    let sleep = |ctx: &str| {
        kubectl(&[
            "--context",
            ctx,
            "-n",
            "sample",
            "get",
            "pods",
            "-l",
            "app=sleep",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ])
        .trim()
        .to_owned()
    };
    let (sleep4, sleep5) = (sleep(C4), sleep(C5));
    assert!(!sleep4.is_empty() && !sleep5.is_empty());
    let connected = |istiod: &Istiod, pod: &str| {
        istiod
            .log_text()
            .contains(&format!("new connection for node:{pod}."))
    };
    assert!(
        connected(&at4, &sleep4) && !connected(&at4, &sleep5),
        "{}",
        at4.log_tail(20)
    );
    assert!(
        connected(&at5, &sleep5) && !connected(&at5, &sleep4),
        "{}",
        at5.log_tail(20)
    );
    drop((at4, at5));

    // A second run, with no model given (the mesh records it): no write at all.
    let marks = [audit_mark(C4), audit_mark(C5)];
    let stdout = joined(&s, &[]);
    assert!(stdout.contains("nothing changed"), "{stdout}");
    for mark in &marks {
        let writes = mark.mutations_by(&["kubectl-mesh/", "Helm/"]);
        assert!(writes.is_empty(), "a second run wrote: {writes:#?}");
    }

    // status proves every link in both directions and shows the model.
    let out = mesh(&["status", "--primary", C4, "-o", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{report:#}\n{}", text(&out.stderr));
    assert_eq!(
        report["model"]["control_planes"], "multi-primary",
        "{report:#}"
    );
    for row in report["clusters"].as_array().unwrap() {
        assert_eq!(row["role"], "primary", "{report:#}");
    }
    let credentials: Vec<(String, String)> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == "credentials" && c["state"] == "pass")
        .map(|c| {
            (
                c["read_by"].as_str().unwrap_or(C4).to_owned(),
                c["cluster"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for link in [(C4, C5), (C5, C4)] {
        assert!(
            credentials.contains(&(link.0.to_owned(), link.1.to_owned())),
            "no passing credentials check of {link:?}: {report:#}"
        );
    }

    // A join that would mix the models is refused before anything is written.
    let marks = [audit_mark(C4), audit_mark(C5)];
    let out = join(&s, &["--model", "primary-remote"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("model-contradicts") || stderr.contains("multi-primary mesh"),
        "{stderr}"
    );
    for mark in &marks {
        assert!(mark.mutations().is_empty(), "a refused join wrote");
    }

    // unjoin takes cluster5 out in both directions: no remote secret is left in either
    // cluster, no reader token of ours, and (the mesh is down to one cluster) no record
    // of the model; a second unjoin changes nothing.
    let out = mesh(&["unjoin", C5, "--primary", C4, "--yes"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    for ctx in [C4, C5] {
        assert!(
            remote_secrets(ctx).is_empty(),
            "{ctx} still reads a cluster"
        );
        assert_eq!(annotation(ctx, "kubectl-mesh/model"), "", "{ctx}");
        assert_eq!(
            common::token_secrets(ctx),
            "",
            "{ctx}: a reader token is left"
        );
        let networks = mesh_networks(ctx);
        let other = if ctx == C4 { C5 } else { C4 };
        assert!(
            networks["networks"][format!("network-{other}")].is_null(),
            "{ctx} still lists {other}: {networks:#}"
        );
    }
    let marks = [audit_mark(C4), audit_mark(C5)];
    let out = mesh(&["unjoin", C5, "--primary", C4, "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for mark in &marks {
        assert!(mark.mutations().is_empty(), "a second unjoin wrote");
    }
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn multi_primary_on_one_network_has_no_gateway_and_pods_reach_each_other() {
    let _lock = BARE_CLUSTERS.lock().unwrap_or_else(|e| e.into_inner());
    let s = setup();

    // Bundles of two different roots are refused before anything is written.
    let other_root = generate_certs(&[C5]);
    let mixed = tempfile::tempdir().unwrap();
    for (ctx, from) in [(C4, s.certs.path()), (C5, other_root.path())] {
        std::fs::create_dir(mixed.path().join(ctx)).unwrap();
        for file in [
            "ca-cert.pem",
            "ca-key.pem",
            "root-cert.pem",
            "cert-chain.pem",
        ] {
            std::fs::copy(from.join(ctx).join(file), mixed.path().join(ctx).join(file)).unwrap();
        }
    }
    let marks = [audit_mark(C4), audit_mark(C5)];
    let out = common::mesh_command()
        .args([
            "join",
            C5,
            "--primary",
            C4,
            "--model",
            "multi-primary",
            "--one-network",
        ])
        .arg("--certs")
        .arg(mixed.path())
        .args(["--install", "--values"])
        .arg(s.values.path())
        .arg("--yes")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("root"), "{stderr}");
    for mark in &marks {
        assert!(
            mark.mutations_by(&["kubectl-mesh/", "Helm/"]).is_empty(),
            "a refused join wrote"
        );
    }

    // The dry run prints each cluster's istiod and its link, and nothing for
    // cross-network traffic.
    let plan = dry_run(&s, &["--model", "multi-primary", "--one-network"]);
    let headers = plan_headers(&plan);
    for ctx in [C4, C5] {
        assert!(
            plan_group(
                &plan,
                &format!("{ctx}: would have installed release istiod")
            )
            .is_some_and(|g| g.contains("kind: Deployment")),
            "{headers:#?}"
        );
        assert!(
            headers
                .iter()
                .any(|h| h.starts_with(&format!("{ctx}: ")) && h.contains("istio-remote-secret-")),
            "no link in {ctx}: {headers:#?}"
        );
    }
    assert!(
        !headers
            .iter()
            .any(|h| h.contains("Gateway ") || h.contains("eastwestgateway")),
        "one network needs no gateway: {headers:#?}"
    );

    // Tokens with a lifetime, bound to a Secret of ours: one for each cluster, given to
    // the primary that reads it.
    joined(
        &s,
        &[
            "--model",
            "multi-primary",
            "--one-network",
            "--token-ttl",
            "1h",
        ],
    );

    // Istio's multi-primary install on one network: istiod in each cluster, a remote
    // secret for the other, and nothing for cross-network traffic.
    for (ctx, other) in [(C4, C5), (C5, C4)] {
        let installed: Vec<String> = releases(ctx).into_iter().map(|(r, _)| r).collect();
        assert_eq!(
            installed,
            ["istio-base", "istiod"],
            "{ctx}: no east-west gateway"
        );
        assert_eq!(network_label(ctx), "", "{ctx}: no network label");
        assert!(gateways(ctx).is_empty(), "{ctx}: no cross-network Gateway");
        let networks = mesh_networks(ctx);
        assert!(no_networks(&networks), "{ctx}: {networks:#}");
        assert_eq!(
            remote_secrets(ctx),
            [format!("istio-remote-secret-{other}")]
        );
        assert_eq!(annotation(ctx, "kubectl-mesh/model"), "multi-primary");
    }

    let dir = tempfile::tempdir().unwrap();
    let _sample = Sample::create_in(dir.path(), &[(C4, "v1"), (C5, "v2")]);
    for (ctx, other) in [(C4, C5), (C5, C4)] {
        let mut istiod = Istiod::start(ctx);
        wait_synced(&mut istiod, other);
        for (at, version) in [(C4, "v1"), (C5, "v2")] {
            let endpoint = wait_endpoint(&mut istiod, at, version);
            assert_eq!(endpoint["Locality"]["ClusterID"], at, "{ctx}: {endpoint:#}");
        }
        let gateways = istiod.json("/debug/networkz").unwrap_or(Value::Null);
        assert!(
            gateways.as_array().is_none_or(Vec::is_empty),
            "{ctx}: one network has no gateways: {gateways:#}"
        );
    }

    // A second run, with no model given, infers it from the mesh. An hour is inside
    // status's 7-day warning window, so it renews each primary's token as rotate does
    // (the old one revoked once no link holds it), and writes nothing else.
    let before = [link_token(C4, C5), link_token(C5, C4)];
    let marks = [audit_mark(C4), audit_mark(C5)];
    let stdout = joined(&s, &["--token-ttl", "1h"]);
    for (primary, remote) in [(C4, C5), (C5, C4)] {
        assert!(
            stdout.contains(&format!(
                "renewed the token of remote Secret istio-remote-secret-{remote} in {primary}"
            )),
            "{stdout}"
        );
    }
    for mark in &marks {
        let others: Vec<String> = mark
            .mutations()
            .into_iter()
            .filter(|w| {
                ![" secrets ", " leases ", " serviceaccounts/token "]
                    .iter()
                    .any(|r| w.contains(r))
            })
            .collect();
        assert!(others.is_empty(), "a renewal wrote more: {others:#?}");
    }
    let after = [link_token(C4, C5), link_token(C5, C4)];
    for ((old, new), remote) in before.iter().zip(&after).zip([C5, C4]) {
        assert!(old != new, "the link to {remote} holds its old token");
        assert!(authenticates(remote, new), "the renewed token for {remote}");
        assert!(
            rejected(remote, old),
            "{remote}'s old token still authenticates after the renewal"
        );
    }
    let out = mesh(&["status", "--primary", C4]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("model: multi-primary on one network"),
        "{stdout}"
    );
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn primary_remote_on_one_network_exposes_istiod_and_adds_no_cross_network_gateway() {
    let _lock = BARE_CLUSTERS.lock().unwrap_or_else(|e| e.into_inner());
    let s = setup();
    // The dry run prints the primary's istiod and the gateway that exposes it, the
    // remote's istiod pointed at it, the link; no cross-network Gateway.
    let plan = dry_run(&s, &["--one-network"]);
    let headers = plan_headers(&plan);
    for header in [
        format!("{C4}: would have installed release istiod"),
        format!("{C4}: would have installed release istio-eastwestgateway"),
        format!("{C4}: would have created Gateway istio-system/istiod-gateway"),
        format!("{C5}: would have installed release istiod"),
    ] {
        assert!(
            plan_group(&plan, &header).is_some(),
            "no {header}: {headers:#?}"
        );
    }
    assert!(
        !headers.iter().any(|h| h.contains("cross-network-gateway")),
        "{headers:#?}"
    );
    // The link: the reader account in the remote, and the remote secret in the primary
    // with a stand-in for the token only a real run makes.
    let link = plan_groups(&plan)
        .into_iter()
        .find(|g| {
            g.lines().next().is_some_and(|header| {
                header.starts_with(&format!("{C5}: "))
                    && header.contains("remote Secret istio-system/istio-remote-secret-cluster5")
            })
        })
        .unwrap_or_else(|| panic!("no link in the plan: {headers:#?}"));
    for object in [
        "kind: ServiceAccount",
        "kind: ClusterRoleBinding",
        "name: istio-remote-secret-cluster5",
        "token: <made by a real run>",
    ] {
        assert!(link.contains(object), "no {object} in:\n{link}");
    }
    assert!(
        !headers
            .iter()
            .any(|h| h.starts_with(&format!("{C5}: ")) && h.contains("eastwestgateway")),
        "the remote needs no gateway: {headers:#?}"
    );
    joined(&s, &["--one-network"]);

    // Istio's primary-remote install on one network: the primary's east-west gateway
    // exposes istiod to the remote, the remote names its control plane; no network
    // label, no cross-network Gateway, no meshNetworks gateways.
    assert_eq!(annotation(C5, "topology.istio.io/controlPlaneClusters"), C4);
    assert_eq!(network_label(C4), "");
    assert_eq!(network_label(C5), "");
    assert_eq!(gateways(C4), ["istiod-gateway"], "only istiod is exposed");
    assert!(gateways(C5).is_empty());
    let networks = mesh_networks(C4);
    assert!(no_networks(&networks), "{networks:#}");
    assert_eq!(remote_secrets(C4), ["istio-remote-secret-cluster5"]);
    assert!(remote_secrets(C5).is_empty(), "a remote reads no cluster");
    let remote_releases: Vec<String> = releases(C5).into_iter().map(|(r, _)| r).collect();
    assert_eq!(
        remote_releases,
        ["istio-base", "istiod"],
        "no gateway in the remote"
    );

    let dir = tempfile::tempdir().unwrap();
    let _sample = Sample::create_in(dir.path(), &[(C4, "v1"), (C5, "v2")]);
    let mut istiod = Istiod::start(C4);
    wait_synced(&mut istiod, C5);
    for (at, version) in [(C4, "v1"), (C5, "v2")] {
        let endpoint = wait_endpoint(&mut istiod, at, version);
        assert_eq!(endpoint["Locality"]["ClusterID"], at, "{endpoint:#}");
    }

    let out = mesh(&["status", "--primary", C4]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("model: primary-remote on one network"),
        "{stdout}"
    );

    // A multi-primary join into this primary-remote mesh is refused, writing nothing.
    let marks = [audit_mark(C4), audit_mark(C5)];
    let out = join(&s, &["--model", "multi-primary"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("primary-remote mesh"), "{stderr}");
    for mark in &marks {
        assert!(mark.mutations().is_empty(), "a refused join wrote");
    }

    // unjoin --purge takes the remote out: no link, no control-plane entry.
    let out = mesh(&["unjoin", C5, "--primary", C4, "--purge", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(remote_secrets(C4).is_empty());
    assert_eq!(annotation(C5, "topology.istio.io/controlPlaneClusters"), "");
}

/// The remote secrets kubectl-mesh wrote (created or applied) since `mark` in `ctx`, as
/// `ctx: name`.
fn links_written(mark: &common::AuditMark, ctx: &str) -> Vec<String> {
    mark.mutations()
        .iter()
        .filter(|w| {
            (w.starts_with("create ") || w.starts_with("patch "))
                && w.contains(" secrets istio-system/istio-remote-secret-")
        })
        .map(|w| format!("{ctx}: {}", w.rsplit('/').next().unwrap_or_default()))
        .collect()
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn a_third_primary_is_linked_with_every_member_and_leaves_the_others_linked() {
    let _lock = BARE_CLUSTERS.lock().unwrap_or_else(|e| e.into_inner());
    let _mesh = common::mesh_lock();
    common::reset_mesh();
    let s = setup_with(&[C4, C5, "cluster1"]);
    joined(&s, &["--model", "multi-primary"]);

    // cluster1 (Istio installed, network1) joins cluster4's mesh: no model given, no
    // other member named — both are read from the mesh.
    let contexts = ["cluster1", C4, C5];
    let marks = contexts.map(audit_mark);
    let out = common::mesh_command()
        .args(["join", "cluster1", "--primary", C4, "--certs"])
        .arg(s.certs.path())
        .arg("--yes")
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", text(&out.stdout));
    assert!(
        stderr.contains("cluster5: a member of cluster4's multi-primary mesh"),
        "{stderr}"
    );
    let mut written: Vec<String> = marks
        .iter()
        .zip(contexts)
        .flat_map(|(m, ctx)| links_written(m, ctx))
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            "cluster1: istio-remote-secret-cluster4",
            "cluster1: istio-remote-secret-cluster5",
            "cluster4: istio-remote-secret-cluster1",
            "cluster5: istio-remote-secret-cluster1",
        ],
        "exactly the four new links"
    );
    assert_eq!(
        annotation("cluster1", "kubectl-mesh/model"),
        "multi-primary"
    );

    // Every istiod reads both others.
    for ctx in contexts {
        let mut istiod = Istiod::start(ctx);
        for other in contexts.iter().filter(|c| **c != ctx) {
            wait_synced(&mut istiod, other);
        }
    }

    // A second run writes nothing anywhere.
    let marks = contexts.map(audit_mark);
    let out = common::mesh_command()
        .args(["join", "cluster1", "--primary", C4, "--certs"])
        .arg(s.certs.path())
        .arg("--yes")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    for (mark, ctx) in marks.iter().zip(contexts) {
        let writes = mark.mutations();
        assert!(writes.is_empty(), "{ctx}: a second run wrote {writes:#?}");
    }

    // rotate in a multi-primary mesh, both of cluster1's readers at once. cluster1's
    // credentials were made once for both primaries, and rotations of one account's
    // tokens take turns (a Lease in cluster1), so neither deletes the other's new token:
    // the first keeps the old token (the other primary's link holds it), the second
    // revokes it.
    let shared = link_token(C4, "cluster1");
    assert!(
        link_token(C5, "cluster1") == shared,
        "cluster4 and cluster5 read cluster1 with different tokens"
    );
    let rotations = [C4, C5].map(|primary| {
        common::mesh_command()
            .args(["rotate", "cluster1", "--primary", primary, "-o", "json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    });
    let mut states: Vec<String> = rotations
        .into_iter()
        .map(|rotation| {
            let out = rotation.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "rotate: {}\n{}",
                text(&out.stdout),
                text(&out.stderr)
            );
            let report: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(report["links"][0]["outcome"], "rotated", "{report:#}");
            report["links"][0]["old_token_state"]["state"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    states.sort();
    assert_eq!(states, ["not-revoked", "revoked"]);
    let (in_c4, in_c5) = (link_token(C4, "cluster1"), link_token(C5, "cluster1"));
    assert!(
        in_c4 != in_c5 && in_c4 != shared && in_c5 != shared,
        "each link holds a new token of its own"
    );
    assert!(authenticates("cluster1", &in_c4), "cluster4's new token");
    assert!(authenticates("cluster1", &in_c5), "cluster5's new token");
    assert!(
        rejected("cluster1", &shared),
        "the token no link uses any more still authenticates {REVOCATION:?} after both rotations"
    );
    assert!(
        !names("cluster1", "lease", None)
            .iter()
            .any(|l| l.starts_with("kubectl-mesh-rotate-")),
        "the rotation's Lease is left"
    );
    // Both istiods, started afresh, read cluster1 with their new tokens.
    for ctx in [C4, C5] {
        wait_synced(&mut Istiod::start(ctx), "cluster1");
    }

    // cluster1 leaves: its links go in both directions; cluster4 and cluster5 still read
    // each other with the reader tokens they share with no one else now.
    let out = mesh(&["unjoin", "cluster1", "--primary", C4, "--yes"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(remote_secrets("cluster1").is_empty());
    assert_eq!(annotation("cluster1", "kubectl-mesh/model"), "");
    assert_eq!(remote_secrets(C4), ["istio-remote-secret-cluster5"]);
    assert_eq!(remote_secrets(C5), ["istio-remote-secret-cluster4"]);
    for ctx in [C4, C5] {
        assert_ne!(
            common::token_secrets(ctx),
            "",
            "{ctx}'s reader token is still used"
        );
        assert_eq!(annotation(ctx, "kubectl-mesh/model"), "multi-primary");
    }
    let out = mesh(&["status", "--primary", C4]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    common::reset_mesh();
}
