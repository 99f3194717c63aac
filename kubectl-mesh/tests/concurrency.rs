//! Commands at once, and servers that stop answering, on the test bed: nothing a
//! concurrent command wrote is lost, and nothing hangs (`cargo xtask test`).

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{
    control_plane_clusters, generate_certs, join, join_command, kubectl, kubectl_ok, mesh_lock,
    mesh_networks, reset_mesh, testbed_dir, text, unjoin,
};

fn remote_secret_exists(name: &str) -> bool {
    kubectl_ok(&[
        "--context",
        "cluster1",
        "-n",
        "istio-system",
        "get",
        "secret",
        &format!("istio-remote-secret-{name}"),
    ])
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn two_joins_at_once_both_keep_their_network_and_remote_secret() {
    let _lock = mesh_lock();
    let certs = generate_certs(&["cluster1", "cluster2", "cluster3"]);
    for run in 1..=4 {
        reset_mesh();
        let start = |remote: &str| {
            join_command(remote, certs.path(), &[])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let two = [start("cluster2"), start("cluster3")];
        let outputs: Vec<Output> = two
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        let networks = mesh_networks("cluster1");
        for (remote, out) in ["cluster2", "cluster3"].iter().zip(&outputs) {
            assert!(
                out.status.success(),
                "run {run}: join {remote} failed:\n{}\n{}",
                text(&out.stdout),
                text(&out.stderr)
            );
        }
        // Both succeeded: both networks (and the primary's) and both links are there.
        for registry in ["cluster1", "cluster2", "cluster3"] {
            assert!(
                networks.contains(&format!("fromRegistry: {registry}")),
                "run {run}: meshNetworks lost {registry}:\n{networks}\njoin cluster2:\n{}\njoin cluster3:\n{}",
                text(&outputs[0].stderr),
                text(&outputs[1].stderr)
            );
        }
        for remote in ["cluster2", "cluster3"] {
            assert!(
                remote_secret_exists(remote),
                "run {run}: no remote secret for {remote}"
            );
        }
    }
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn join_adds_its_primary_to_the_control_plane_list_and_purge_takes_only_it_away() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", "cluster2"]);
    // Another primary already runs cluster2's control plane too.
    kubectl(&[
        "--context",
        "cluster2",
        "annotate",
        "namespace",
        "istio-system",
        "--overwrite",
        "topology.istio.io/controlPlaneClusters=other-primary",
    ]);
    let out = join(certs.path(), &[]);
    assert!(out.status.success(), "join failed:\n{}", text(&out.stderr));
    assert_eq!(control_plane_clusters("cluster2"), "other-primary,cluster1");

    let again = join(certs.path(), &[]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(control_plane_clusters("cluster2"), "other-primary,cluster1");

    let out = unjoin("cluster2", &["--purge"]);
    assert!(
        out.status.success(),
        "unjoin failed:\n{}",
        text(&out.stderr)
    );
    assert_eq!(
        control_plane_clusters("cluster2"),
        "other-primary",
        "unjoin --purge removes its own primary only"
    );
    reset_mesh();
}

/// The pid of `component` (e.g. `kube-apiserver`) of `cluster`, from the test bed's state.
fn component_pid(cluster: &str, component: &str) -> i32 {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(testbed_dir().join("testbed.json")).unwrap())
            .unwrap();
    let pid = state["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == cluster)
        .and_then(|c| {
            c["components"]
                .as_array()?
                .iter()
                .find(|p| p["name"] == component)
        })
        .and_then(|p| p["pid"].as_i64())
        .unwrap_or_else(|| panic!("no {component} of {cluster} in testbed.json"));
    i32::try_from(pid).unwrap()
}

fn signal(pid: i32, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{sig} {pid}");
}

/// Freezes a process (SIGSTOP) for as long as it lives; SIGCONT on drop, also when the
/// test fails.
struct Frozen(i32);

impl Frozen {
    fn new(pid: i32) -> Frozen {
        signal(pid, "STOP");
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn a_frozen_remote_api_server_fails_the_join_at_the_deadline_naming_it() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", "cluster2"]);
    let apiserver = component_pid("cluster2", "kube-apiserver");

    let mut child = join_command("cluster2", certs.path(), &["--request-timeout", "5s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Freeze the remote once join has connected to it (its preflight is done).
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            if line.contains("cluster2") && line.contains("preflight") {
                let _ = tx.send(());
            }
            all += &line;
            all += "\n";
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("join reached cluster2's preflight");
    let frozen = Frozen::new(apiserver);
    let frozen_at = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if frozen_at.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            drop(frozen);
            panic!("join still runs 90s after cluster2's API server froze");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let took = frozen_at.elapsed();
    drop(frozen);
    let stderr = reader.join().unwrap();
    assert!(
        !status.success(),
        "join succeeded against a frozen server:\n{stderr}"
    );
    assert!(
        took < Duration::from_secs(45),
        "join took {took:?} to give up:\n{stderr}"
    );
    assert!(
        stderr.contains("cluster2 did not answer") && stderr.contains("within 5s"),
        "the error names the cluster, the request and the deadline:\n{stderr}"
    );
    assert!(
        stderr.contains("waiting: for cluster2 to answer"),
        "the step says what it waits on:\n{stderr}"
    );

    // Thawed, the same command completes.
    let out = join(certs.path(), &[]);
    assert!(
        out.status.success(),
        "re-run failed:\n{}",
        text(&out.stderr)
    );
    assert!(mesh_networks("cluster1").contains("fromRegistry: cluster2"));
    assert!(remote_secret_exists("cluster2"));
}
