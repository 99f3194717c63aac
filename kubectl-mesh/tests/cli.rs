//! `kubectl mesh version`, `completion` and the plugin-completion protocol, as users and
//! kubectl run them.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;
use predicates::prelude::*;

fn mesh() -> Command {
    let mut cmd = Command::cargo_bin("kubectl-mesh").unwrap();
    cmd.env_remove("RUST_LOG").env("NO_COLOR", "1");
    cmd
}

const KUBECONFIG: &str = "apiVersion: v1
kind: Config
current-context: east
clusters:
- name: c
  cluster: {server: 'https://127.0.0.1:1'}
users:
- name: u
  user: {}
contexts:
- name: east
  context: {cluster: c, user: u}
- name: west
  context: {cluster: c, user: u}
";

#[test]
fn version_names_version_commit_and_target() {
    let out = mesh().arg("version").assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        text.starts_with(&format!(
            "kubectl-mesh {} (commit ",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    let out = mesh().args(["version", "-o", "json"]).assert().success();
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert!(json["gitCommit"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(
        json["target"]
            .as_str()
            .is_some_and(|t| t.contains(std::env::consts::ARCH)),
        "{json}"
    );
}

#[test]
fn completion_scripts_for_each_shell() {
    mesh()
        .args(["completion", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::is_match("(?m)^ *complete -F .* kubectl-mesh$").unwrap());
    mesh()
        .args(["completion", "zsh"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("#compdef kubectl-mesh"));
    mesh()
        .args(["completion", "fish"])
        .assert()
        .success()
        .stdout(predicate::str::contains("complete -c kubectl-mesh"));
    mesh().args(["completion", "tcsh"]).assert().code(2);
}

#[test]
fn bash_accepts_the_bash_script() {
    let out = mesh().args(["completion", "bash"]).assert().success();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("kubectl-mesh.bash");
    std::fs::write(&script, &out.get_output().stdout).unwrap();
    let Ok(status) = StdCommand::new("bash").arg("-n").arg(&script).status() else {
        return; // no bash on this machine
    };
    assert!(status.success(), "bash -n rejects the script");
}

#[test]
fn complete_is_hidden_from_help() {
    mesh()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("completion"))
        .stdout(predicate::str::contains("__complete").not());
}

#[test]
fn dunder_complete_answers_in_cobra_format() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    std::fs::write(&kubeconfig, KUBECONFIG).unwrap();
    mesh()
        .env("KUBECONFIG", &kubeconfig)
        .args(["__complete", "join", "--primary", ""])
        .assert()
        .success()
        .stdout("east\tcurrent context\nwest\tkubeconfig context\n:4\n");
}

/// Puts `kubectl-mesh` and the `kubectl_complete-mesh` symlink the README describes into a
/// fresh directory, for PATH.
fn plugin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_kubectl-mesh"));
    std::os::unix::fs::symlink(&bin, dir.path().join("kubectl-mesh")).unwrap();
    std::os::unix::fs::symlink("kubectl-mesh", dir.path().join("kubectl_complete-mesh")).unwrap();
    dir
}

fn kubectl(path_front: &Path, kubeconfig: &Path, args: &[&str]) -> (String, String) {
    let mut path = vec![path_front.to_owned()];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let out = StdCommand::new("kubectl")
        .args(args)
        .env("PATH", std::env::join_paths(path).unwrap())
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("kubectl on PATH (cargo xtask test puts the test bed's there)");
    assert!(out.status.success(), "kubectl {args:?} failed: {out:?}");
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn kubectl_completes_the_plugin_through_kubectl_complete_mesh() {
    let plugins = plugin_dir();
    let kubeconfig = plugins.path().join("config");
    std::fs::write(&kubeconfig, KUBECONFIG).unwrap();

    // kubectl's own `__complete` (what its shell scripts call) finds the plugin on PATH,
    // runs kubectl_complete-mesh with the plugin's words, and relays the answer.
    let (out, err) = kubectl(plugins.path(), &kubeconfig, &["__complete", "mesh", ""]);
    assert!(err.contains("kubectl_complete-mesh"), "not asked: {err}");
    for sub in ["join", "certs", "version", "completion", "remote-secret"] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{sub}\t"))),
            "{sub}: {out}"
        );
    }
    assert!(out.ends_with(":4\n"), "{out}");

    let (out, _) = kubectl(
        plugins.path(),
        &kubeconfig,
        &["__complete", "mesh", "join", "--prim"],
    );
    assert!(out.lines().any(|l| l.starts_with("--primary\t")), "{out}");
    assert!(!out.contains("--kubeconfig"), "{out}");

    let (out, _) = kubectl(
        plugins.path(),
        &kubeconfig,
        &["__complete", "mesh", "join", ""],
    );
    let values: Vec<&str> = out.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(values, ["east", "west", ":4"]);

    let (out, _) = kubectl(
        plugins.path(),
        &kubeconfig,
        &["__completeNoDesc", "mesh", "--context", "w"],
    );
    assert_eq!(out, "west\n:4\n");

    // The plugin itself runs through kubectl's plugin lookup.
    let (out, _) = kubectl(plugins.path(), &kubeconfig, &["mesh", "version"]);
    assert!(out.starts_with("kubectl-mesh "), "{out}");
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn kubectl_finds_the_plugin_and_its_help_reads_kubectl_mesh() {
    let plugins = plugin_dir();
    let kubeconfig = plugins.path().join("config");
    std::fs::write(&kubeconfig, KUBECONFIG).unwrap();
    let (direct, _) = kubectl(plugins.path(), &kubeconfig, &["plugin", "list"]);
    assert!(direct.contains("kubectl-mesh"), "{direct}");
    let (help, _) = kubectl(plugins.path(), &kubeconfig, &["mesh", "--help"]);
    assert!(help.contains("Usage: kubectl mesh"), "{help}");
    for command in [
        "join",
        "unjoin",
        "status",
        "rotate",
        "certs",
        "remote-secret",
        "completion",
        "version",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(command)),
            "`kubectl mesh --help` does not list {command}:\n{help}"
        );
    }
    let own = mesh().arg("--help").output().unwrap();
    assert_eq!(
        String::from_utf8(own.stdout).unwrap(),
        help,
        "the binary and the plugin differ"
    );
}
