//! Data from a cluster is untrusted input, and files are read and written defensively.
//!
//! On the test bed (`cargo xtask test`): remote secrets whose kubeconfig would run a
//! program, reach a plain-HTTP server or skip TLS verification, stored in cluster1 and
//! read by `status` and `unjoin`; `remote-secret`/`join` refusing a plain-HTTP server and
//! a CA learned over an unverified connection. Without a cluster: `certs generate` never
//! writing a key through a symlink, bundles and kubeconfigs that are not regular files or
//! are too large refused with the file named.

mod common;

use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use common::{
    generate_certs, get, join, kubectl, kubectl_ok, mesh, mesh_lock, reset_mesh, text, unjoin,
};

/// Puts the clusters back (remote secrets, reader accounts) when dropped, also when a
/// test fails half-way. Declared after the lock, so it runs while the lock is held.
struct Reset;

impl Drop for Reset {
    fn drop(&mut self) {
        reset_mesh();
    }
}

/// A kubeconfig as a remote secret would hold it, for cluster `name` at `server`, with
/// `user` (YAML lines indented for the `user:` map) and extra `cluster` lines.
fn stored_kubeconfig(name: &str, server: &str, cluster: &str, user: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: {name}\nclusters:\n- name: {name}\n  cluster:\n    server: {server}\n{cluster}contexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\nusers:\n- name: {name}\n  user:\n{user}"
    )
}

/// Stores a remote secret `istio-remote-secret-<name>` in cluster1's istio-system, the
/// way anyone who may write Secrets there could.
fn store_remote_secret(dir: &Path, name: &str, kubeconfig: &str) {
    let secret = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": format!("istio-remote-secret-{name}"),
            "namespace": "istio-system",
            "labels": {"istio/multiCluster": "true"},
            "annotations": {"networking.istio.io/cluster": name},
        },
        "stringData": {name: kubeconfig},
    });
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, secret.to_string()).unwrap();
    kubectl(&["--context=cluster1", "apply", "-f", file.to_str().unwrap()]);
}

fn delete_remote_secret(name: &str) {
    kubectl(&[
        "--context=cluster1",
        "-n",
        "istio-system",
        "delete",
        "secret",
        &format!("istio-remote-secret-{name}"),
        "--ignore-not-found",
    ]);
}

/// The checks of `cluster` in `status -o json`.
fn checks_of<'a>(report: &'a serde_json::Value, cluster: &str) -> Vec<&'a serde_json::Value> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["cluster"] == cluster)
        .collect()
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn stored_kubeconfigs_never_run_a_program_and_unsafe_links_are_reported() {
    let _lock = mesh_lock();
    reset_mesh();
    let _reset = Reset;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("exec-ran");
    // Nothing listens on port 9 and no user context has this server, so status would
    // read the remote with the link's own credentials — running the plugin.
    let exec_user = format!(
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n      args:\n      - -c\n      - 'touch {}; echo {{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"t\"}}}}'\n      interactiveMode: Never\n",
        marker.display()
    );
    store_remote_secret(
        dir.path(),
        "evil-exec",
        &stored_kubeconfig("evil-exec", "https://127.0.0.1:9", "", &exec_user),
    );
    store_remote_secret(
        dir.path(),
        "plain-http",
        &stored_kubeconfig(
            "plain-http",
            "http://127.0.0.1:9",
            "",
            "    token: not-a-real-token\n",
        ),
    );
    store_remote_secret(
        dir.path(),
        "no-verify",
        &stored_kubeconfig(
            "no-verify",
            "https://127.0.0.1:9",
            "    insecure-skip-tls-verify: true\n",
            "    token: not-a-real-token\n",
        ),
    );

    let out = mesh(&[
        "status",
        "--primary",
        "cluster1",
        "-o",
        "json",
        "--request-timeout",
        "5s",
    ]);
    let stderr = text(&out.stderr);
    assert!(!marker.exists(), "status ran the stored exec plugin");
    assert!(!out.status.success(), "status passed: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect(&stderr);

    let exec = checks_of(&report, "evil-exec");
    assert!(
        exec.iter().any(|c| c["check"] == "credentials"
            && c["state"] == "fail"
            && c["message"].as_str().unwrap().contains("exec plugin")),
        "{exec:#?}"
    );
    let http = checks_of(&report, "plain-http");
    assert!(
        http.iter()
            .any(|c| c["state"] == "fail"
                && c["message"].as_str().unwrap().contains("plain http://")),
        "{http:#?}"
    );
    let no_verify = checks_of(&report, "no-verify");
    assert!(
        no_verify.iter().any(|c| c["check"] == "tls"
            && c["state"] == "warn"
            && c["message"]
                .as_str()
                .unwrap()
                .contains("skips TLS verification")),
        "{no_verify:#?}"
    );

    // unjoin reads every link too (whose token is whose); it removes the link it was
    // asked about and runs nothing.
    let out = unjoin(
        "cluster3",
        &["--cluster-name", "evil-exec", "--request-timeout", "5s"],
    );
    assert!(out.status.success(), "unjoin: {}", text(&out.stderr));
    assert!(!marker.exists(), "unjoin ran the stored exec plugin");
    assert!(!kubectl_ok(&[
        "--context=cluster1",
        "-n",
        "istio-system",
        "get",
        "secret",
        "istio-remote-secret-evil-exec",
    ]));

    for name in ["evil-exec", "plain-http", "no-verify"] {
        delete_remote_secret(name);
    }
}

/// cluster2's context alone, with its credentials inline, from the test bed's kubeconfig.
fn cluster2_kubeconfig() -> serde_json::Value {
    let json = kubectl(&[
        "config",
        "view",
        "--raw",
        "--minify",
        "--flatten",
        "--context",
        "cluster2",
        "-o",
        "json",
    ]);
    serde_json::from_str(&json).unwrap()
}

/// cluster2's server URL and CA (PEM) from the test bed's kubeconfig.
fn cluster2_server_and_ca() -> (String, Vec<u8>) {
    let v = cluster2_kubeconfig();
    let cluster = &v["clusters"][0]["cluster"];
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD
        .decode(cluster["certificate-authority-data"].as_str().unwrap())
        .unwrap();
    (cluster["server"].as_str().unwrap().to_owned(), ca)
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn plain_http_servers_are_refused_before_anything_changes() {
    let _lock = mesh_lock();
    reset_mesh();
    let _reset = Reset;
    let (server, _) = cluster2_server_and_ca();
    let http = server.replacen("https://", "http://", 1);

    let out = mesh(&["remote-secret", "cluster2", "--server", &http]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("plain http://") && stderr.contains("--allow-plain-http"),
        "{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "printed a Secret: {}",
        text(&out.stdout)
    );

    let certs = generate_certs(&["cluster1", "cluster2"]);
    let out = join(certs.path(), &["--server", &http]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("plain http://"), "{stderr}");
    // A preflight problem: nothing was written in either cluster.
    for ctx in ["--context=cluster1", "--context=cluster2"] {
        assert!(
            !kubectl_ok(&[ctx, "-n", "istio-system", "get", "secret", "cacerts"]),
            "join wrote cacerts in {ctx}"
        );
    }
    assert!(
        get(
            "cluster1",
            &["secret", "-l", "istio/multiCluster=true", "-o", "name"]
        )
        .is_empty()
    );
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn a_context_that_skips_tls_verification_needs_a_ca_from_the_user() {
    let _lock = mesh_lock();
    reset_mesh();
    let _reset = Reset;
    let (server, ca) = cluster2_server_and_ca();
    let dir = tempfile::tempdir().unwrap();
    // cluster2's context, but skipping verification and without a CA of its own.
    let mut v = cluster2_kubeconfig();
    let cluster = v["clusters"][0]["cluster"].as_object_mut().unwrap();
    cluster.remove("certificate-authority-data");
    cluster.insert("insecure-skip-tls-verify".into(), true.into());
    let insecure = dir.path().join("insecure.json");
    std::fs::write(&insecure, v.to_string()).unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();

    let run = |extra: &[&str]| {
        Command::cargo_bin("kubectl-mesh")
            .unwrap()
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .arg("--kubeconfig")
            .arg(&insecure)
            .args(["remote-secret", "cluster2", "-o", "json"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("insecure-skip-tls-verify") && stderr.contains("--certificate-authority"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    // Refused before any change: no reader account was made in cluster2.
    assert!(!kubectl_ok(&[
        "--context=cluster2",
        "-n",
        "istio-system",
        "get",
        "serviceaccount",
        "istio-reader-service-account",
    ]));

    let out = run(&["--certificate-authority", ca_file.to_str().unwrap()]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("skips TLS verification"), "{stderr}");
    let secret: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kubeconfig = secret["stringData"]["cluster2"].as_str().unwrap();
    use base64::Engine as _;
    let ca_b64 = base64::engine::general_purpose::STANDARD.encode(&ca);
    assert!(
        kubeconfig.contains(&ca_b64),
        "the kubeconfig carries the CA the user gave"
    );
    assert!(kubeconfig.contains(&server));
    assert!(!kubeconfig.contains("insecure-skip-tls-verify"));
}

// ---- Files: no cluster needed. ----

fn certs_generate(out: &Path, extra: &[&str]) -> std::process::Output {
    Command::cargo_bin("kubectl-mesh")
        .unwrap()
        .args(["certs", "generate", "--out"])
        .arg(out)
        .arg("cluster1")
        .args(extra)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap()
}

#[cfg(unix)]
#[test]
fn certs_generate_never_writes_a_key_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    std::fs::create_dir_all(out.join("cluster1")).unwrap();
    // A dangling symlink where the key goes: following it would create the attacker's file.
    let planted = dir.path().join("planted-key");
    std::os::unix::fs::symlink(&planted, out.join("cluster1/ca-key.pem")).unwrap();
    let o = certs_generate(&out, &[]);
    assert!(!o.status.success(), "{}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains("ca-key.pem"),
        "{}",
        text(&o.stderr)
    );
    assert!(!planted.exists(), "the key was written through the symlink");

    // With --force the symlink itself is replaced; its target keeps its content.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::fs::remove_file(out.join("cluster1/ca-key.pem")).unwrap();
    std::os::unix::fs::symlink(&victim, out.join("cluster1/ca-key.pem")).unwrap();
    let o = certs_generate(&out, &["--force"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let key = out.join("cluster1/ca-key.pem");
    assert!(!std::fs::symlink_metadata(&key).unwrap().is_symlink());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .contains("PRIVATE KEY")
    );
    // Nothing but the layout is left in the directory (no temporary files).
    let mut names: Vec<String> = std::fs::read_dir(out.join("cluster1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ca-cert.pem",
            "ca-key.pem",
            "cert-chain.pem",
            "root-cert.pem"
        ]
    );
}

/// `kubectl mesh certs check DIR`, which must end within 30 s whatever DIR holds.
fn certs_check(dir: &Path) -> std::process::Output {
    Command::cargo_bin("kubectl-mesh")
        .unwrap()
        .args(["certs", "check"])
        .arg(dir)
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap()
}

#[cfg(unix)]
#[test]
fn bundles_and_kubeconfigs_that_are_not_small_regular_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = generate_certs(&["cluster1"]);
    let b = bundle.path().join("cluster1");
    // A device: reading it would never end.
    std::fs::remove_file(b.join("cert-chain.pem")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", b.join("cert-chain.pem")).unwrap();
    let o = certs_check(&b);
    let stderr = text(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(
        stderr.contains("cert-chain.pem") && stderr.contains("not a regular file"),
        "{stderr}"
    );
    // Too large.
    std::fs::remove_file(b.join("cert-chain.pem")).unwrap();
    std::fs::write(b.join("cert-chain.pem"), vec![b'A'; 2 * 1024 * 1024]).unwrap();
    let o = certs_check(&b);
    let stderr = text(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(
        stderr.contains("cert-chain.pem") && stderr.contains("larger than"),
        "{stderr}"
    );

    // A kubeconfig that is a device, or too large.
    let big = dir.path().join("big-kubeconfig");
    std::fs::write(&big, vec![b'#'; 2 * 1024 * 1024]).unwrap();
    for (path, why) in [
        (Path::new("/dev/zero"), "not a regular file"),
        (big.as_path(), "more than"),
    ] {
        let o = Command::cargo_bin("kubectl-mesh")
            .unwrap()
            .arg("--kubeconfig")
            .arg(path)
            .args(["remote-secret", "cluster2"])
            .timeout(Duration::from_secs(30))
            .output()
            .unwrap();
        let stderr = text(&o.stderr);
        assert!(!o.status.success(), "{stderr}");
        assert!(
            stderr.contains(&path.display().to_string()) && stderr.contains(why),
            "{stderr}"
        );
    }
}
