//! `kubectl mesh join` on the test bed: two real control planes with Istio installed by
//! real helm (`cargo xtask test` brings them up; plain `cargo test` leaves these out).
//! Each test asserts what a user would check with kubectl.

mod common;

use std::path::Path;

use assert_cmd::Command;
use common::{
    audit_mark, control_plane_clusters, generate_certs, get, istio_namespace, join, kubectl,
    lb_address, mesh, mesh_lock, mesh_networks, offline_join, offline_kubeconfig, reset_mesh, text,
};

fn secret_file(ctx: &str, key: &str) -> Vec<u8> {
    let jsonpath = format!("jsonpath={{.data.{}}}", key.replace('.', "\\."));
    let b64 = get(ctx, &["secret", "cacerts", "-o", &jsonpath]);
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap()
}

/// What a user would look at after a join, as one comparable text.
fn observable_state() -> String {
    let mut state = String::new();
    for ctx in ["cluster1", "cluster2"] {
        state += &istio_namespace(
            ctx,
            "jsonpath={.metadata.labels.topology\\.istio\\.io/network} {.metadata.annotations.topology\\.istio\\.io/controlPlaneClusters}",
        );
        state += "\n";
        state += &get(
            ctx,
            &[
                "secret",
                "cacerts",
                "-o",
                "jsonpath={.data}",
                "--ignore-not-found",
            ],
        );
        state += "\n";
        state += &get(
            ctx,
            &[
                "gateways.networking.istio.io",
                "-o",
                "jsonpath={.items[*].spec}",
            ],
        );
        state += "\n";
    }
    state += &mesh_networks("cluster1");
    state += &get(
        "cluster1",
        &[
            "secret",
            "-l",
            "istio/multiCluster=true",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.metadata.annotations} {.metadata.labels}{\"\\n\"}{end}",
        ],
    );
    state
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn join_from_scratch_then_again_changes_nothing() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", "cluster2"]);

    let out = join(certs.path(), &["-vv"]);
    assert!(
        out.status.success(),
        "join failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // cacerts in both clusters equal the given files.
    for ctx in ["cluster1", "cluster2"] {
        for file in [
            "ca-cert.pem",
            "ca-key.pem",
            "root-cert.pem",
            "cert-chain.pem",
        ] {
            let given = std::fs::read(certs.path().join(ctx).join(file)).unwrap();
            assert_eq!(secret_file(ctx, file), given, "{ctx} cacerts {file}");
        }
    }
    // Network labels, as the clusters declared them, and the control-plane annotation.
    let labels = |ctx: &str| {
        istio_namespace(
            ctx,
            "jsonpath={.metadata.labels.topology\\.istio\\.io/network}",
        )
    };
    assert_eq!(labels("cluster1"), "network1");
    assert_eq!(labels("cluster2"), "network2");
    let annotation = control_plane_clusters("cluster2");
    assert_eq!(annotation, "cluster1");
    // The cross-network Gateway in both clusters.
    for ctx in ["cluster1", "cluster2"] {
        let gw = get(
            ctx,
            &[
                "gateways.networking.istio.io",
                "cross-network-gateway",
                "-o",
                "jsonpath={.spec.servers[0].tls.mode} {.spec.servers[0].port.number} {.spec.servers[0].hosts[0]} {.spec.selector.istio}",
            ],
        );
        assert_eq!(
            gw, "AUTO_PASSTHROUGH 15443 *.local eastwestgateway",
            "{ctx}"
        );
    }
    // meshNetworks names both networks with the discovered gateway addresses.
    let networks = mesh_networks("cluster1");
    let parsed: serde_json::Value = serde_saphyr::from_str(&networks).unwrap();
    for (net, cluster, ctx) in [
        ("network1", "cluster1", "cluster1"),
        ("network2", "cluster2", "cluster2"),
    ] {
        let n = &parsed["networks"][net];
        assert_eq!(n["endpoints"][0]["fromRegistry"], cluster, "{networks}");
        assert_eq!(
            n["gateways"][0]["address"],
            lb_address(ctx).as_str(),
            "{networks}"
        );
        assert_eq!(n["gateways"][0]["port"], 15443, "{networks}");
    }
    // The remote secret: labelled, annotated, and its kubeconfig authenticates to cluster2.
    let secret = kubectl(&[
        "--context",
        "cluster1",
        "-n",
        "istio-system",
        "get",
        "secret",
        "istio-remote-secret-cluster2",
        "-o",
        "json",
    ]);
    let secret: serde_json::Value = serde_json::from_str(&secret).unwrap();
    assert_eq!(secret["metadata"]["labels"]["istio/multiCluster"], "true");
    assert_eq!(
        secret["metadata"]["annotations"]["networking.istio.io/cluster"],
        "cluster2"
    );
    use base64::Engine;
    let kubeconfig = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["cluster2"].as_str().unwrap())
        .unwrap();
    // The token reached the Secret, and nothing else: not the -vv log, not stdout.
    let token = String::from_utf8_lossy(&kubeconfig)
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("token:")
                .map(|t| t.trim().trim_matches('"').to_owned())
        })
        .expect("a token in the remote kubeconfig");
    assert!(token.len() > 100, "{token:.10}…");
    for stream in [&out.stdout, &out.stderr] {
        assert!(
            !text(stream).contains(&token[token.len() - 24..]),
            "the token leaked"
        );
        assert!(
            !text(stream).contains("PRIVATE KEY"),
            "a private key leaked"
        );
    }
    assert!(
        text(&out.stderr).contains("DEBUG"),
        "-vv showed no debug log:\n{}",
        text(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("remote.kubeconfig");
    std::fs::write(&path, &kubeconfig).unwrap();
    let who = std::process::Command::new("kubectl")
        .args([
            "--kubeconfig",
            path.to_str().unwrap(),
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .output()
        .unwrap();
    assert_eq!(
        text(&who.stdout),
        "system:serviceaccount:istio-system:istio-reader-service-account",
        "{}",
        text(&who.stderr)
    );

    // A second join makes no mutating request and says nothing changed.
    let before = observable_state();
    let marks = [audit_mark("cluster1"), audit_mark("cluster2")];
    let again = join(certs.path(), &[]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    for m in &marks {
        assert_eq!(m.mutations(), Vec::<String>::new(), "a second join wrote");
    }
    assert!(
        text(&again.stdout).contains("nothing changed"),
        "{}",
        text(&again.stdout)
    );
    assert_eq!(observable_state(), before);
    // The plain (non-terminal) progress has no control characters.
    assert!(
        !text(&again.stderr).contains('\x1b'),
        "{}",
        text(&again.stderr)
    );
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn dry_run_makes_no_mutating_request_and_prints_the_objects() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", "cluster2"]);
    let marks = [audit_mark("cluster1"), audit_mark("cluster2")];
    let out = join(certs.path(), &["--dry-run", "-o", "yaml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for m in &marks {
        assert_eq!(m.mutations(), Vec::<String>::new(), "--dry-run wrote");
    }
    let yaml = text(&out.stdout);
    assert!(
        yaml.contains("kind: Gateway") && yaml.contains("AUTO_PASSTHROUGH"),
        "{yaml}"
    );
    assert!(yaml.contains("meshNetworks"), "{yaml}");
    assert!(
        !yaml.contains("PRIVATE KEY"),
        "a dry run printed a private key"
    );
    assert!(!common::kubectl_ok(&[
        "--context",
        "cluster1",
        "-n",
        "istio-system",
        "get",
        "secret",
        "cacerts"
    ]));
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn certificates_with_different_roots_are_refused_before_any_change() {
    let _lock = mesh_lock();
    reset_mesh();
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/istio-sample-certs");
    let marks = [audit_mark("cluster1"), audit_mark("cluster2")];
    let out = mesh(&[
        "join",
        "cluster2",
        "--primary",
        "cluster1",
        "--yes",
        "--primary-certs",
        fixtures.join("seed").to_str().unwrap(),
        "--remote-certs",
        fixtures.join("alt").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("roots differ") && err.contains("nothing was changed"),
        "{err}"
    );
    for m in &marks {
        assert_eq!(m.mutations(), Vec::<String>::new(), "a refused join wrote");
    }
}

/// Istio's `samples/certs`: the four files of one bundle in one directory.
fn istio_sample_certs() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/istio-sample-certs/seed")
}

const BUNDLE_FILES: [&str; 4] = [
    "ca-cert.pem",
    "ca-key.pem",
    "root-cert.pem",
    "cert-chain.pem",
];

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn the_guides_sample_certs_in_one_directory_are_one_bundle_for_every_cluster() {
    let _lock = mesh_lock();
    reset_mesh();
    let seed = istio_sample_certs();
    let out = join(&seed, &[]);
    let err = text(&out.stderr);
    assert!(
        out.status.success(),
        "join failed:\n{}\n{err}",
        text(&out.stdout)
    );
    // The warning says what sharing one intermediate means, and what to do instead.
    let warning = err
        .lines()
        .find(|l| l.starts_with("warning: ") && l.contains("one CA bundle"))
        .unwrap_or_else(|| panic!("no warning about the shared bundle:\n{err}"));
    assert!(
        warning.contains("used for every cluster (cluster1, cluster2)"),
        "{warning}"
    );
    assert!(
        warning.contains(
            "one intermediate CA shared by all clusters is what Istio's multicluster guide does"
        ),
        "{warning}"
    );
    assert!(
        warning.contains("kubectl mesh certs generate")
            && warning.contains("limits what a leaked key exposes"),
        "{warning}"
    );
    // Both clusters' cacerts hold exactly the sample files, all four.
    for ctx in ["cluster1", "cluster2"] {
        let keys = get(
            ctx,
            &[
                "secret",
                "cacerts",
                "-o",
                "go-template={{range $k, $v := .data}}{{$k}} {{end}}",
            ],
        );
        assert_eq!(
            keys, "ca-cert.pem ca-key.pem cert-chain.pem root-cert.pem",
            "{ctx}"
        );
        for file in BUNDLE_FILES {
            let given = std::fs::read(seed.join(file)).unwrap();
            assert!(
                secret_file(ctx, file) == given,
                "{ctx}'s cacerts {file} is not the sample's"
            );
        }
    }
    // The report as data carries the warning too.
    let again = join(&seed, &["-o", "json"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert!(
        report["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("one CA bundle"))),
        "{report:#}"
    );
}

/// A copy of Istio's sample bundle in a temp dir, with `dirs` as per-cluster directories.
fn sample_certs_with_dirs(dirs: &[&str]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for file in BUNDLE_FILES {
        std::fs::copy(istio_sample_certs().join(file), tmp.path().join(file)).unwrap();
    }
    for d in dirs {
        std::fs::create_dir(tmp.path().join(d)).unwrap();
    }
    tmp
}

#[test]
fn a_certs_directory_with_both_layouts_is_refused_naming_both() {
    let kubeconfig = offline_kubeconfig();
    let certs = sample_certs_with_dirs(&["west"]);
    let out = offline_join(
        kubeconfig.path(),
        &["--certs", certs.path().to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("holds both layouts"), "{err}");
    assert!(
        err.contains("ca-cert.pem, ca-key.pem, cert-chain.pem")
            && err.contains(&certs.path().join("west").display().to_string()),
        "{err}"
    );
    // No warning about a layout it did not pick.
    assert!(!err.contains("warning:"), "{err}");
}

#[test]
fn a_certs_directory_with_neither_layout_names_what_it_expects() {
    let kubeconfig = offline_kubeconfig();
    let certs = tempfile::tempdir().unwrap();
    std::fs::create_dir(certs.path().join("east")).unwrap();
    let out = offline_join(
        kubeconfig.path(),
        &["--certs", certs.path().to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "{} is not a directory",
            certs.path().join("west").display()
        )),
        "{err}"
    );
    assert!(
        err.contains("kubectl mesh certs generate --out") && err.contains("ca-cert.pem"),
        "{err}"
    );
}

#[test]
fn join_help_teaches_both_certs_layouts() {
    let out = mesh(&["join", "--help"]);
    // As one line: clap wraps help at the terminal's width.
    let help = text(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(help.contains("DIR/<cluster name>/"), "{help}");
    assert!(help.contains("samples/certs"), "{help}");
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn a_join_killed_halfway_completes_when_run_again() {
    let _lock = mesh_lock();
    // The state an uninterrupted join leaves.
    reset_mesh();
    let certs = generate_certs(&["cluster1", "cluster2"]);
    assert!(join(certs.path(), &[]).status.success());
    let uninterrupted = observable_state();

    // Kill a join as soon as it has changed something.
    reset_mesh();
    let bin = assert_cmd::cargo::cargo_bin("kubectl-mesh");
    let mut child = std::process::Command::new(bin)
        .args([
            "join",
            "cluster2",
            "--primary",
            "cluster1",
            "--yes",
            "--certs",
            certs.path().to_str().unwrap(),
        ])
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    use std::io::BufRead;
    for line in std::io::BufReader::new(stderr).lines() {
        if line.unwrap().contains("changed") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_ne!(
        observable_state(),
        uninterrupted,
        "the join finished before it was killed"
    );

    let out = join(certs.path(), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(observable_state(), uninterrupted);
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn two_remotes_join_in_one_command() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", "cluster2", "cluster3"]);
    let out = mesh(&[
        "join",
        "cluster2",
        "cluster3",
        "--primary",
        "cluster1",
        "--yes",
        "--certs",
        certs.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let parsed: serde_json::Value = serde_saphyr::from_str(&mesh_networks("cluster1")).unwrap();
    for (net, cluster) in [
        ("network1", "cluster1"),
        ("network2", "cluster2"),
        ("network3", "cluster3"),
    ] {
        assert_eq!(
            parsed["networks"][net]["endpoints"][0]["fromRegistry"], cluster,
            "{parsed}"
        );
        assert_eq!(
            parsed["networks"][net]["gateways"][0]["address"],
            lb_address(cluster).as_str()
        );
    }
    for remote in ["cluster2", "cluster3"] {
        let annotation = kubectl(&[
            "--context",
            "cluster1",
            "-n",
            "istio-system",
            "get",
            "secret",
            &format!("istio-remote-secret-{remote}"),
            "-o",
            "jsonpath={.metadata.annotations.networking\\.istio\\.io/cluster}",
        ]);
        assert_eq!(annotation, remote);
        let label = kubectl(&[
            "--context",
            remote,
            "get",
            "namespace",
            "istio-system",
            "-o",
            "jsonpath={.metadata.labels.topology\\.istio\\.io/network}",
        ]);
        assert_eq!(label, format!("network{}", &remote[7..]));
    }
    // Both remotes' cacerts share the primary's root.
    for remote in ["cluster2", "cluster3"] {
        assert_eq!(
            secret_file(remote, "root-cert.pem"),
            secret_file("cluster1", "root-cert.pem")
        );
    }
}

#[test]
fn without_a_terminal_a_missing_remote_names_the_argument_and_the_contexts() {
    let kubeconfig = offline_kubeconfig();
    let out = mesh(&["join", "--kubeconfig", kubeconfig.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("kubectl mesh join REMOTE") && err.contains("west"),
        "{err}"
    );
}

#[test]
fn without_a_terminal_join_asks_for_yes_instead_of_prompting() {
    let kubeconfig = offline_kubeconfig();
    let out = mesh(&[
        "join",
        "west",
        "--kubeconfig",
        kubeconfig.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("--yes") && err.contains("east") && err.contains("west"),
        "{err}"
    );
    assert!(!err.contains("not-a-real-token"), "{err}");
}

#[test]
fn settings_of_one_remote_are_refused_with_several() {
    let kubeconfig = offline_kubeconfig();
    let out = mesh(&[
        "join",
        "west",
        "east",
        "--cluster-name",
        "x",
        "--yes",
        "--kubeconfig",
        kubeconfig.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--cluster-name"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_unreachable_primary_fails_fast_naming_the_context() {
    let kubeconfig = offline_kubeconfig();
    let out = offline_join(kubeconfig.path(), &["--request-timeout", "5s"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("east") && err.contains("west"), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(!err.contains("not-a-real-token"), "{err}");
}

/// A second kubeconfig file, merged after the test bed's through KUBECONFIG, with extra contexts.
fn extra_contexts(yaml: &str) -> (tempfile::NamedTempFile, String) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), yaml).unwrap();
    let merged = format!(
        "{}:{}",
        std::env::var("KUBECONFIG").expect("KUBECONFIG of the test bed"),
        file.path().display()
    );
    (file, merged)
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn preflight_lists_every_problem_before_any_change() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", "viewer", "cluster1-again"]);
    // A user of cluster2 who may only read, and a second name for cluster1 itself.
    let _ = common::kubectl_ok(&[
        "--context",
        "cluster2",
        "-n",
        "default",
        "create",
        "serviceaccount",
        "viewer",
    ]);
    let _ = common::kubectl_ok(&[
        "--context",
        "cluster2",
        "create",
        "clusterrolebinding",
        "viewer-view",
        "--clusterrole=view",
        "--serviceaccount=default:viewer",
    ]);
    let token = kubectl(&[
        "--context",
        "cluster2",
        "-n",
        "default",
        "create",
        "token",
        "viewer",
    ]);
    let server = kubectl(&[
        "config",
        "view",
        "-o",
        "jsonpath={.clusters[?(@.name==\"cluster2\")].cluster.server}",
    ]);
    let (_file, merged) = extra_contexts(&format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: viewer-cluster2\n  cluster: {{server: '{server}', insecure-skip-tls-verify: true}}\nusers:\n- name: viewer\n  user: {{token: '{}'}}\ncontexts:\n- name: viewer\n  context: {{cluster: viewer-cluster2, user: viewer}}\n- name: cluster1-again\n  context: {{cluster: cluster1, user: cluster1-admin}}\n",
        token.trim()
    ));
    let marks = [audit_mark("cluster1"), audit_mark("cluster2")];
    let out = Command::cargo_bin("kubectl-mesh")
        .unwrap()
        .env("KUBECONFIG", &merged)
        .env("NO_COLOR", "1")
        .args([
            "join",
            "viewer",
            "cluster1-again",
            "--primary",
            "cluster1",
            "--yes",
            "--certs",
        ])
        .arg(certs.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    // Both problems, each naming its context and what to do, in one run.
    assert!(err.contains("viewer: your user may not"), "{err}");
    assert!(
        err.contains("create secrets in namespace istio-system"),
        "{err}"
    );
    assert!(err.contains("cluster-admin"), "{err}");
    assert!(
        err.contains("context cluster1-again reaches the same cluster as cluster1"),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(!err.contains(token.trim()), "the viewer's token leaked");
    for m in &marks {
        assert_eq!(m.mutations(), Vec::<String>::new(), "a refused join wrote");
    }
}
