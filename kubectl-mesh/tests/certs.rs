//! `kubectl mesh certs check|generate` as a user runs them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/istio-sample-certs")
}

/// Copies a sample bundle into a temp dir (the originals are never touched).
fn copy_sample(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(samples().join(name)).unwrap() {
        let entry = entry.unwrap();
        let dest = tmp.path().join(entry.file_name());
        std::fs::write(&dest, std::fs::read(entry.path()).unwrap()).unwrap();
    }
    tmp
}

fn mesh() -> Command {
    let mut cmd = Command::cargo_bin("kubectl-mesh").unwrap();
    cmd.env_remove("RUST_LOG").env("NO_COLOR", "1");
    cmd
}

#[test]
fn check_passes_istio_seed_sample() {
    let seed = copy_sample("seed");
    mesh()
        .args(["certs", "check"])
        .arg(seed.path())
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "✓ ca-key.pem is the key of ca-cert.pem",
        ))
        .stdout(predicate::str::contains("\x1b[").not());
}

#[test]
fn check_refuses_bundles_without_a_common_root() {
    let seed = copy_sample("seed");
    let alt = copy_sample("alt");
    mesh()
        .args(["certs", "check"])
        .arg(seed.path())
        .arg(alt.path())
        .assert()
        .code(1)
        .stdout(predicate::str::contains("do not share a root"))
        .stdout(predicate::str::contains(format!(
            "{} (disagrees)",
            alt.path().display()
        )));
}

#[test]
fn check_names_the_broken_file_and_exits_1() {
    let seed = copy_sample("seed");
    // A certificate where the key should be.
    std::fs::copy(
        seed.path().join("ca-cert.pem"),
        seed.path().join("ca-key.pem"),
    )
    .unwrap();
    let key_path = seed.path().join("ca-key.pem");
    mesh()
        .args(["certs", "check"])
        .arg(seed.path())
        .assert()
        .code(1)
        .stdout(predicate::str::contains(format!(
            "✗ {}: ca-key.pem holds a certificate, not a private key",
            key_path.display()
        )))
        .stdout(predicate::str::contains("fix: "));
}

#[test]
fn check_missing_file_is_a_finding() {
    let seed = copy_sample("seed");
    std::fs::remove_file(seed.path().join("cert-chain.pem")).unwrap();
    mesh()
        .args(["certs", "check"])
        .arg(seed.path())
        .assert()
        .code(1)
        .stdout(predicate::str::contains("cert-chain.pem is missing"));
}

#[test]
fn check_usage_errors_exit_2() {
    mesh()
        .args(["certs", "check", "/no/such/bundle"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "/no/such/bundle: no such directory",
        ));
    mesh().args(["certs", "check"]).assert().code(2);
}

#[test]
fn check_warnings_alone_exit_0() {
    let seed = copy_sample("seed");
    // seed's ca-cert.pem expires in 2117: a huge window turns that into a warning.
    mesh()
        .args(["certs", "check", "--expiry-warning-days", "100000"])
        .arg(seed.path())
        .assert()
        .code(0)
        .stdout(predicate::str::contains("! "))
        .stdout(predicate::str::contains(
            "ca-cert.pem expires on 2117-12-31",
        ));
}

#[test]
fn check_json_output() {
    let seed = copy_sample("seed");
    let alt = copy_sample("alt");
    let out = mesh()
        .args(["certs", "check", "-o", "json"])
        .arg(seed.path())
        .arg(alt.path())
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["bundles"][0]["valid"], true);
    assert_eq!(json["bundles"][0]["checks"][0]["check"], "pem-format");
    assert_eq!(json["bundles"][0]["checks"][0]["status"], "passed");
    assert_eq!(json["roots"]["agreed"], false);
    assert_eq!(
        json["roots"]["disagreeing"][0],
        alt.path().display().to_string()
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn generate_then_check_round_trip_and_reuse_the_root() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("certs");
    mesh()
        .args(["certs", "generate", "--out"])
        .arg(&dir)
        .args(["cluster1", "cluster2"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("Created root CA"));
    assert_eq!(mode(&dir.join("root-key.pem")), 0o600);
    for name in ["cluster1", "cluster2"] {
        assert_eq!(mode(&dir.join(name).join("ca-key.pem")), 0o600);
        for file in ["ca-cert.pem", "root-cert.pem", "cert-chain.pem"] {
            assert!(dir.join(name).join(file).is_file());
        }
    }
    mesh()
        .args(["certs", "check"])
        .arg(dir.join("cluster1"))
        .arg(dir.join("cluster2"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("✓ the bundles share a root"));

    // A third cluster later: the root is reused, not replaced.
    let root_before = std::fs::read(dir.join("root-cert.pem")).unwrap();
    mesh()
        .args(["certs", "generate", "--out"])
        .arg(&dir)
        .arg("cluster3")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("Reused root CA"));
    assert_eq!(
        std::fs::read(dir.join("root-cert.pem")).unwrap(),
        root_before
    );
    mesh()
        .args(["certs", "check"])
        .arg(dir.join("cluster1"))
        .arg(dir.join("cluster3"))
        .assert()
        .code(0);

    // OpenSSL agrees.
    let status = std::process::Command::new("openssl")
        .args([
            "verify",
            "-CAfile",
            "root-cert.pem",
            "-untrusted",
            "cert-chain.pem",
            "ca-cert.pem",
        ])
        .current_dir(dir.join("cluster3"))
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn generate_refuses_to_overwrite() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path();
    mesh()
        .args(["certs", "generate", "--out"])
        .arg(dir)
        .arg("c1")
        .assert()
        .code(0);
    let root_before = std::fs::read(dir.join("root-cert.pem")).unwrap();

    // A new root over an existing one needs --force.
    mesh()
        .args(["certs", "generate", "--new-root", "--out"])
        .arg(dir)
        .arg("c2")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("refusing to overwrite"));
    assert_eq!(
        std::fs::read(dir.join("root-cert.pem")).unwrap(),
        root_before
    );
    assert!(!dir.join("c2").exists());

    // An existing cluster bundle needs --force too.
    mesh()
        .args(["certs", "generate", "--out"])
        .arg(dir)
        .arg("c1")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("c1/ca-cert.pem already exists"));

    // With --force, both are replaced.
    mesh()
        .args(["certs", "generate", "--new-root", "--force", "--out"])
        .arg(dir)
        .arg("c1")
        .assert()
        .code(0);
    assert_ne!(
        std::fs::read(dir.join("root-cert.pem")).unwrap(),
        root_before
    );
    mesh()
        .args(["certs", "check"])
        .arg(dir.join("c1"))
        .assert()
        .code(0);
}

#[test]
fn generate_rsa_on_request() {
    let out = tempfile::tempdir().unwrap();
    mesh()
        .args([
            "certs",
            "generate",
            "--key-type",
            "rsa",
            "--rsa-bits",
            "2048",
            "--out",
        ])
        .arg(out.path())
        .arg("c1")
        .assert()
        .code(0);
    let key = std::fs::read_to_string(out.path().join("c1/ca-key.pem")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
    mesh()
        .args(["certs", "check"])
        .arg(out.path().join("c1"))
        .assert()
        .code(0);
}

#[test]
fn generate_rejects_bad_names_as_usage_errors() {
    let out = tempfile::tempdir().unwrap();
    mesh()
        .args(["certs", "generate", "--out"])
        .arg(out.path())
        .arg("../escape")
        .assert()
        .code(2);
    mesh()
        .args(["certs", "generate", "--out"])
        .arg(out.path())
        .assert()
        .code(2);
}

#[test]
fn help_explains_the_files() {
    mesh()
        .args(["certs", "check", "--help"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("cert-chain.pem"))
        .stdout(predicate::str::contains(
            "kubectl mesh certs check certs/cluster1",
        ));
    mesh()
        .args(["certs", "generate", "--help"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("istiod.istio-system.svc"));
}
