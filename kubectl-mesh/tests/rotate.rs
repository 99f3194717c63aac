//! `kubectl mesh rotate` on the test bed, with the real `pilot-discovery` reading the
//! mesh: istiod never stops reading the remote, the new token authenticates and the old
//! one is rejected (TokenReview in the remote), TTL tokens are revocable, a scheduled run
//! touches only what expires, and a rotation killed after any step completes when run
//! again, leaving exactly one valid token.
//!
//! Tokens never reach an assertion message: they are compared, and named by the Secret
//! they came from.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use common::istiod::Istiod;
use common::tokens::{self, REVOCATION, authenticates, rejected};
use common::{
    audit_mark, generate_certs, join_command, joined, kubectl, mesh, mesh_command, mesh_lock,
    reset_mesh, text,
};
use serde_json::Value;

/// How long istiod may take to sync a remote.
const SETTLE: Duration = Duration::from_secs(90);

/// The token in link `key`'s kubeconfig in cluster1.
fn link_token(key: &str) -> String {
    tokens::link_token("cluster1", key)
}

/// kubectl-mesh's token Secrets (and bound-token Secrets) in `ctx`'s istio-system:
/// `(name, type, token if it holds one)`.
fn our_token_objects(ctx: &str) -> Vec<(String, String, Option<String>)> {
    let list: Value = serde_json::from_str(&kubectl(&[
        "--context",
        ctx,
        "-n",
        "istio-system",
        "get",
        "secret",
        "-l",
        "app.kubernetes.io/managed-by=kubectl-mesh",
        "-o",
        "json",
    ]))
    .unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["metadata"]["name"] != "cacerts")
        .map(|s| {
            let token = s["data"]["token"].as_str().map(|t| {
                String::from_utf8(base64::engine::general_purpose::STANDARD.decode(t).unwrap())
                    .unwrap()
            });
            (
                s["metadata"]["name"].as_str().unwrap().to_owned(),
                s["type"].as_str().unwrap_or_default().to_owned(),
                token,
            )
        })
        .collect()
}

/// Of kubectl-mesh's token objects in `ctx`, exactly one is left: a Secret a bound token
/// is bound to (`why` says whose).
fn assert_one_bound_secret(ctx: &str, why: &str) {
    let objects = our_token_objects(ctx);
    assert_eq!(
        objects.iter().map(|o| o.1.as_str()).collect::<Vec<_>>(),
        ["Opaque"],
        "{why}: {:?}",
        objects.iter().map(|o| &o.0).collect::<Vec<_>>()
    );
}

fn rotate(args: &[&str]) -> std::process::Output {
    let mut all = vec!["rotate"];
    all.extend(args);
    mesh(&all)
}

fn assert_ok(what: &str, out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn istiod_keeps_reading_the_remote_while_its_token_is_rotated_and_the_old_one_is_rejected() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", "cluster2"]);
    joined(certs.path(), &[]);
    let mut istiod = Istiod::start("cluster1");
    istiod.wait_until("clusterz: cluster2 synced", SETTLE, |i| {
        (common::istiod::status_of(&i.clusters()?, "cluster2")? == "synced").then_some(())
    });
    let old = link_token("cluster2");
    assert!(authenticates("cluster2", &old));

    // istiod's view, every 100 ms, for the whole rotation.
    let seen: Mutex<Vec<(Duration, Option<String>)>> = Mutex::new(Vec::new());
    let done = AtomicBool::new(false);
    let started = Instant::now();
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let status = istiod
                    .clusters()
                    .map(|c| common::istiod::status_of(&c, "cluster2"))
                    .unwrap_or(Some("clusterz did not answer".into()));
                seen.lock().unwrap().push((started.elapsed(), status));
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let out = rotate(&[
            "cluster2",
            "--primary",
            "cluster1",
            "--istiod",
            &istiod.http_address(),
        ]);
        // A little of what follows the command, too.
        std::thread::sleep(Duration::from_secs(2));
        done.store(true, Ordering::SeqCst);
        out
    });
    assert_ok("rotate", &out);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("cluster2 (cluster cluster2") && stdout.contains("rotated"),
        "{stdout}"
    );
    assert!(stdout.contains("Rotated: cluster2."), "{stdout}");
    assert!(
        !stdout.contains("istiod's view was not checked"),
        "{stdout}"
    );
    let seen = seen.into_inner().unwrap();
    assert!(seen.len() > 10, "polled istiod {} times", seen.len());
    // clusterz lists the cluster object istiod built last: for a changed kubeconfig
    // under the same Secret and cluster ID, the new one reads `syncing` until its
    // informers synced — while the registry istiod serves stays the previous cluster's,
    // replaced only then (its log says so below). Never absent, never anything else.
    let unexpected: Vec<_> = seen
        .iter()
        .filter(|(_, s)| !matches!(s.as_deref(), Some("synced" | "syncing")))
        .collect();
    assert!(
        unexpected.is_empty(),
        "clusterz did not list cluster2 as synced or syncing at {} of {} polls: {unexpected:?}\n{}",
        unexpected.len(),
        seen.len(),
        istiod.log_tail(40)
    );
    let syncing = seen
        .iter()
        .filter(|(_, s)| s.as_deref() == Some("syncing"))
        .count();
    eprintln!(
        "clusterz polled {} times during rotate: cluster2 synced at {}, syncing (the new client, before the swap) at {syncing}",
        seen.len(),
        seen.len() - syncing
    );
    assert_eq!(seen.last().unwrap().1.as_deref(), Some("synced"));
    let log = istiod.log_text();
    assert!(
        log.contains("Update cluster\tcluster=cluster2"),
        "istiod read the change as an update of cluster2\n{}",
        istiod.log_tail(40)
    );
    assert!(
        log.contains("stopping previous cluster cluster2 after new cluster synced"),
        "istiod swapped to the new client only once it synced\n{}",
        istiod.log_tail(40)
    );
    assert!(
        !log.contains("Deleting cluster_id=cluster2") && !log.contains("Unauthorized"),
        "istiod never dropped cluster2 nor met a rejected token\n{}",
        istiod.log_tail(40)
    );

    // The link holds a new token that authenticates; the old one is rejected.
    let new = link_token("cluster2");
    assert_ne!(new, old, "the link's token changed");
    assert!(
        authenticates("cluster2", &new),
        "the new token authenticates"
    );
    assert!(
        rejected("cluster2", &old),
        "the old token is still accepted {REVOCATION:?} after rotate returned"
    );
    // istiod still reads cluster2, with the new token.
    assert_eq!(
        common::istiod::status_of(&istiod.clusters().unwrap(), "cluster2").as_deref(),
        Some("synced")
    );
    let objects = our_token_objects("cluster2");
    assert_eq!(
        objects.len(),
        1,
        "one token Secret of ours: {:?}",
        objects.iter().map(|o| &o.0).collect::<Vec<_>>()
    );
    assert_eq!(objects[0].2.as_deref(), Some(new.as_str()));

    // A join run again keeps the rotated credential (the one token Secret of the account).
    joined(certs.path(), &[]);
    assert_eq!(link_token("cluster2"), new, "join kept the rotated token");
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn a_dry_run_says_what_would_be_rotated_and_writes_nothing() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", "cluster2"]);
    joined(certs.path(), &[]);
    let token = link_token("cluster2");
    let (primary, remote) = (audit_mark("cluster1"), audit_mark("cluster2"));
    let out = rotate(&[
        "cluster2",
        "--primary",
        "cluster1",
        "--dry-run",
        "-o",
        "json",
    ]);
    assert_ok("rotate --dry-run", &out);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["dry_run"], true, "{report:#}");
    assert_eq!(report["links"][0]["outcome"], "would-rotate", "{report:#}");
    assert_eq!(primary.mutations(), Vec::<String>::new());
    assert_eq!(remote.mutations(), Vec::<String>::new());
    assert_eq!(link_token("cluster2"), token);
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn a_bound_ttl_token_is_revoked_by_the_next_rotation() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", "cluster2"]);
    joined(certs.path(), &[]);
    let first = link_token("cluster2");

    let out = rotate(&[
        "cluster2",
        "--primary",
        "cluster1",
        "--token-ttl",
        "1h",
        "-o",
        "json",
    ]);
    assert_ok("rotate --token-ttl", &out);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let link = &report["links"][0];
    assert_eq!(link["outcome"], "rotated", "{report:#}");
    assert_eq!(link["new_token"]["kind"], "bound", "{report:#}");
    assert!(link["new_token"]["expires_at"].is_string(), "{report:#}");
    assert_eq!(link["old_token"]["kind"], "token-secret", "{report:#}");
    assert_eq!(link["old_token_state"]["state"], "revoked", "{report:#}");
    assert_eq!(link["istiod_checked"], false, "{report:#}");
    // Without --istiod, rotate tries istiod's pod through a port-forward (the test bed
    // has no kubelet to forward to) and says why istiod's view was not checked.
    let warnings = report["warnings"].to_string();
    assert!(
        warnings.contains("istiod's view was not checked (no --istiod, and")
            && warnings.contains("port 8080"),
        "{report:#}"
    );
    let bound = link_token("cluster2");
    assert!(authenticates("cluster2", &bound));
    assert!(
        rejected("cluster2", &first),
        "the token Secret's token is revoked"
    );

    let out = rotate(&[
        "cluster2",
        "--primary",
        "cluster1",
        "--token-ttl",
        "1h",
        "-o",
        "json",
    ]);
    assert_ok("second rotate --token-ttl", &out);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["links"][0]["old_token"]["kind"], "bound",
        "{report:#}"
    );
    assert_eq!(
        report["links"][0]["old_token_state"]["state"], "revoked",
        "{report:#}"
    );
    let second = link_token("cluster2");
    assert_ne!(second, bound);
    assert!(authenticates("cluster2", &second));
    assert!(
        rejected("cluster2", &bound),
        "the old bound TTL token is still accepted {REVOCATION:?} after its Secret was deleted"
    );
    assert_one_bound_secret("cluster2", "only the new token's bound Secret is left");
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn if_expiring_within_rotates_only_the_link_inside_the_window() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", "cluster2", "cluster3"]);
    // cluster2: a token that expires in an hour; cluster3: a token Secret (never).
    joined(certs.path(), &["--token-ttl", "1h"]);
    let out = join_command("cluster3", certs.path(), &[])
        .output()
        .unwrap();
    assert_ok("join cluster3", &out);
    let cluster3_token = link_token("cluster3");

    let primary = audit_mark("cluster1");
    let remote3 = audit_mark("cluster3");
    let out = rotate(&[
        "--all",
        "--primary",
        "cluster1",
        "--if-expiring-within",
        "24h",
        "-o",
        "json",
    ]);
    assert_ok("rotate --all --if-expiring-within 24h", &out);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let outcome = |key: &str| {
        report["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["cluster_name"] == key)
            .map(|l| l["outcome"].clone())
    };
    assert_eq!(outcome("cluster2"), Some("rotated".into()), "{report:#}");
    assert_eq!(
        outcome("cluster3"),
        Some("not-expiring".into()),
        "{report:#}"
    );
    // The TTL token join made is bound to a Secret of ours: revoked with it.
    assert_eq!(
        report["links"][0]["old_token_state"]["state"], "revoked",
        "{report:#}"
    );

    // cluster3 and its link: not one mutating request.
    assert_eq!(remote3.mutations(), Vec::<String>::new());
    let in_primary = primary.mutations();
    assert!(
        in_primary
            .iter()
            .all(|m| m.contains("istio-remote-secret-cluster2")),
        "{in_primary:?}"
    );
    assert!(!in_primary.is_empty());
    assert_eq!(link_token("cluster3"), cluster3_token);

    // Nothing due: exit 0, nothing rotated, nothing written.
    let primary = audit_mark("cluster1");
    let out = rotate(&[
        "--all",
        "--primary",
        "cluster1",
        "--if-expiring-within",
        "10m",
    ]);
    assert_ok("rotate with nothing due", &out);
    assert!(
        text(&out.stdout).contains("Rotated: none."),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(primary.mutations(), Vec::<String>::new());
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn a_hand_made_link_is_refused_naming_it() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", "cluster2"]);
    joined(certs.path(), &[]);
    // Take kubectl-mesh's mark off the link: now it reads as made by hand.
    kubectl(&[
        "--context=cluster1",
        "-n",
        "istio-system",
        "label",
        "secret",
        "istio-remote-secret-cluster2",
        "app.kubernetes.io/managed-by-",
    ]);
    let mark = audit_mark("cluster2");
    let out = rotate(&["cluster2", "--primary", "cluster1"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("istio-system/istio-remote-secret-cluster2")
            && err.contains("made by hand")
            && err.contains("--replace-links"),
        "{err}"
    );
    assert_eq!(mark.mutations(), Vec::<String>::new());
}

/// Runs rotate for cluster2 and SIGKILLs it when its progress line for `step` appears.
/// Returns whether it was killed (false: it ended first).
fn rotate_killed_after(step: &str) -> bool {
    let mut child = mesh_command()
        .args(["rotate", "cluster2", "--primary", "cluster1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut killed = false;
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        let outcome = [" changed", " found", " unchanged"]
            .iter()
            .any(|w| line.contains(w));
        if line.contains(step) && outcome {
            child.kill().unwrap();
            killed = true;
            break;
        }
    }
    child.wait().unwrap();
    killed
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn a_rotation_killed_after_any_step_completes_when_run_again() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", "cluster2"]);
    joined(certs.path(), &[]);
    for step in ["new token", "verify token", "remote secret", "istiod sync"] {
        let before = link_token("cluster2");
        assert!(rotate_killed_after(step), "rotate ended before {step}");
        // Every token that exists now: the link's and any the killed run made.
        let mut tokens: Vec<(String, String)> = our_token_objects("cluster2")
            .into_iter()
            .filter_map(|(name, _, t)| t.map(|t| (name, t)))
            .collect();
        tokens.push(("the link's token before".into(), before));
        // The link works at every moment, killed or not.
        assert!(
            authenticates("cluster2", &link_token("cluster2")),
            "after a kill at {step}, the link's token is rejected"
        );

        let out = rotate(&["cluster2", "--primary", "cluster1"]);
        assert_ok(&format!("rotate again after a kill at {step}"), &out);
        let now = link_token("cluster2");
        assert!(
            authenticates("cluster2", &now),
            "after {step}: the link works"
        );
        for (name, token) in &tokens {
            if *token != now {
                assert!(
                    rejected("cluster2", token),
                    "after a kill at {step} and a re-run, {name}'s token is still valid"
                );
            }
        }
        let objects = our_token_objects("cluster2");
        assert_eq!(
            objects.len(),
            1,
            "after a kill at {step} and a re-run: exactly one token of ours, {:?}",
            objects.iter().map(|o| &o.0).collect::<Vec<_>>()
        );
        assert_eq!(objects[0].2.as_deref(), Some(now.as_str()));
    }
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn two_rotations_of_one_link_at_once_take_turns_and_both_complete() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", "cluster2"]);
    joined(certs.path(), &[]);
    let first = link_token("cluster2");
    // Two people rotate the same link at once: the second waits for the account's
    // Lease, finds the link rotated, and rotates it again from there.
    let runs = [0, 1].map(|_| {
        mesh_command()
            .args(["rotate", "cluster2", "--primary", "cluster1", "-o", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    });
    for run in runs {
        let out = run.wait_with_output().unwrap();
        assert_ok("a concurrent rotate", &out);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["links"][0]["outcome"], "rotated", "{report:#}");
        assert_eq!(
            report["links"][0]["old_token_state"]["state"], "revoked",
            "{report:#}"
        );
    }
    let last = link_token("cluster2");
    assert!(authenticates("cluster2", &last));
    assert!(
        rejected("cluster2", &first),
        "the join's token is still valid"
    );
    let objects = our_token_objects("cluster2");
    assert_eq!(
        objects.iter().map(|o| o.2.as_deref()).collect::<Vec<_>>(),
        [Some(last.as_str())],
        "exactly one token of ours is left, the link's: {:?}",
        objects.iter().map(|o| &o.0).collect::<Vec<_>>()
    );
    let leases = kubectl(&[
        "--context=cluster2",
        "-n",
        "istio-system",
        "get",
        "lease",
        "-o",
        "name",
    ]);
    assert!(
        !leases.contains("/kubectl-mesh-rotate-"),
        "a rotation's Lease is left: {leases}"
    );
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn unjoin_revokes_the_bound_token_a_rotation_made() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", "cluster2"]);
    joined(certs.path(), &[]);
    assert_ok(
        "rotate --token-ttl",
        &rotate(&["cluster2", "--primary", "cluster1", "--token-ttl", "1h"]),
    );
    let bound = link_token("cluster2");
    assert!(authenticates("cluster2", &bound));
    let out = common::unjoin("cluster2", &[]);
    assert_ok("unjoin", &out);
    assert_eq!(
        our_token_objects("cluster2")
            .iter()
            .map(|o| &o.0)
            .collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "unjoin leaves no token object of ours"
    );
    assert!(
        rejected("cluster2", &bound),
        "the link's bound token is still accepted after unjoin"
    );
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn a_join_after_a_rotation_that_kept_the_old_token_uses_the_token_the_link_holds() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", "cluster2"]);
    joined(certs.path(), &[]);
    let out = rotate(&["cluster2", "--primary", "cluster1", "--keep-old"]);
    assert_ok("rotate --keep-old", &out);
    let rotated = link_token("cluster2");
    // Two token Secrets of the reader account now: join keeps the one the link uses
    // instead of stopping at the choice, and writes nothing.
    let (primary, remote) = (audit_mark("cluster1"), audit_mark("cluster2"));
    joined(certs.path(), &[]);
    assert_eq!(
        link_token("cluster2"),
        rotated,
        "join kept the link's token"
    );
    assert_eq!(primary.mutations(), Vec::<String>::new());
    assert_eq!(remote.mutations(), Vec::<String>::new());
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn join_renews_a_ttl_token_inside_the_warning_window_and_says_so() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", "cluster2"]);
    joined(certs.path(), &["--token-ttl", "1h"]);
    let first = link_token("cluster2");
    // An hour is inside status's 7-day warning window: the next join renews the token
    // the way rotate does, and says so.
    let out = join_command("cluster2", certs.path(), &["--token-ttl", "1h"])
        .output()
        .unwrap();
    assert_ok("join again", &out);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("renewed the token of remote Secret"),
        "{stdout}"
    );
    let second = link_token("cluster2");
    assert_ne!(second, first, "the link holds a new token");
    assert!(authenticates("cluster2", &second));
    // The token the first join made is bound to a Secret of ours too, so the renewal
    // revoked it, and only the new token's Secret is left.
    assert!(
        rejected("cluster2", &first),
        "the token the first join made still authenticates after the renewal"
    );
    assert_one_bound_secret("cluster2", "one bound-token Secret");
    // A join that asks for no kind of token renews it too, with the lifetime it had.
    let out = join_command("cluster2", certs.path(), &[])
        .output()
        .unwrap();
    assert_ok("join without --token-ttl", &out);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("renewed the token of remote Secret"),
        "{stdout}"
    );
    let third = link_token("cluster2");
    assert!(third != second, "the link holds the same token");
    assert!(authenticates("cluster2", &third));
    assert_one_bound_secret("cluster2", "the renewal kept the bound kind");
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn a_ttl_token_join_makes_is_bound_and_rotate_revokes_it() {
    let _lock = mesh_lock();
    reset_mesh();
    let certs = generate_certs(&["cluster1", "cluster2"]);
    // 200 h: outside status's 7-day warning window.
    let out = common::join(certs.path(), &["--token-ttl", "200h"]);
    assert_ok("join --token-ttl", &out);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("TokenRequest token bound to it"),
        "join says what the token is bound to: {stdout}"
    );
    let joined_token = link_token("cluster2");
    assert_one_bound_secret(
        "cluster2",
        "join made one Secret to bind the token to, and no token Secret",
    );

    // A join that asks for no kind of token keeps the bound token it finds, and writes
    // nothing.
    let (primary, remote) = (audit_mark("cluster1"), audit_mark("cluster2"));
    let out = common::join(certs.path(), &[]);
    assert_ok("join without --token-ttl", &out);
    let progress = text(&out.stderr);
    assert!(
        progress.contains("found: kept the link's bound token"),
        "{progress}"
    );
    assert!(
        link_token("cluster2") == joined_token,
        "join replaced the token"
    );
    assert_eq!(primary.mutations(), Vec::<String>::new());
    assert_eq!(remote.mutations(), Vec::<String>::new());

    // status reads the token as bound, with its lifetime.
    let out = mesh(&["status", "--primary", "cluster1", "-o", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = report["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cluster_id"] == "cluster2")
        .unwrap_or_else(|| panic!("no cluster2 row: {report:#}"));
    assert_eq!(row["token_kind"], "bound", "{report:#}");
    assert!(
        row["token_remaining_seconds"].as_u64() > Some(47 * 3600),
        "{report:#}"
    );

    let out = rotate(&[
        "cluster2",
        "--primary",
        "cluster1",
        "--token-ttl",
        "48h",
        "-o",
        "json",
    ]);
    assert_ok("rotate --token-ttl", &out);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let link = &report["links"][0];
    assert_eq!(link["old_token"]["kind"], "bound", "{report:#}");
    assert_eq!(link["old_token_state"]["state"], "revoked", "{report:#}");
    let rotated = link_token("cluster2");
    assert!(authenticates("cluster2", &rotated));
    assert!(
        rejected("cluster2", &joined_token),
        "the TTL token join made is still accepted {REVOCATION:?} after rotate revoked it"
    );
}
