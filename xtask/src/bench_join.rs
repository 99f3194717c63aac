//! The join benchmarks, on the test bed (three clusters with Istio):
//!
//! - two remotes joined in one command against one after the other (the ratio);
//! - one join's wall time and mutating requests against the guide's kubectl command
//!   sequence doing the same work on the same clusters.
//!
//! - four clusters joined as a multi-primary mesh in one command (twelve links: each
//!   primary reads the three others) against one remote joined primary-remote, side by
//!   side in one run: the links are made concurrently when the ratio stays under 2.
//!
//! Every measurement starts from the same state (Istio installed, nothing joined) and
//! holds the test bed's mesh lock, so tests and benchmarks do not disturb each other.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::bench::{Bench, Section};
use crate::mesh_reset::{kubectl, reset_clusters, reset_mesh, run};
use crate::testbed;

const REMOTES: [&str; 2] = ["cluster2", "cluster3"];

/// `join`: concurrency ratio, wall time and requests against the guide.
pub fn join(bench: &Bench) -> Result<Section> {
    // The test bed is async; benchmarks are not: bring it up on a thread of its own.
    let (env, lock) = testbed_locked(0)?;
    let certs = testbed::state_dir().join("bench-certs");
    if !certs.join("cluster3").is_dir() {
        run(
            &bench.binary,
            &env,
            &[
                "certs",
                "generate",
                "--out",
                s(&certs),
                "cluster1",
                "cluster2",
                "cluster3",
            ],
        )?;
    }
    let runs = bench.runs.clamp(1, 5);
    let join_args = |remotes: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = vec!["join".into()];
        a.extend(remotes.iter().map(|r| r.to_string()));
        a.extend(["--primary", "cluster1", "--yes", "--certs", s(&certs)].map(String::from));
        a
    };

    let mut sequential = Vec::new();
    let mut concurrent = Vec::new();
    for _ in 0..runs {
        reset_mesh(&env)?;
        let t = Instant::now();
        for remote in REMOTES {
            run_owned(&bench.binary, &env, &join_args(&[remote]))?;
        }
        sequential.push(t.elapsed());
        reset_mesh(&env)?;
        let t = Instant::now();
        run_owned(&bench.binary, &env, &join_args(&REMOTES))?;
        concurrent.push(t.elapsed());
    }

    let mut single = Vec::new();
    let mut single_requests = 0;
    let mut guide = Vec::new();
    let mut guide_requests = 0;
    let mut guide_commands = 0;
    for _ in 0..runs {
        reset_mesh(&env)?;
        let marks = [AuditMark::new("cluster1"), AuditMark::new("cluster2")];
        let t = Instant::now();
        run_owned(&bench.binary, &env, &join_args(&["cluster2"]))?;
        single.push(t.elapsed());
        single_requests = marks
            .iter()
            .map(|m| m.mutations("kubectl-mesh/"))
            .sum::<Result<usize>>()?;

        reset_mesh(&env)?;
        let marks = [AuditMark::new("cluster1"), AuditMark::new("cluster2")];
        let t = Instant::now();
        guide_commands = guide_sequence(&env, &certs)?;
        guide.push(t.elapsed());
        guide_requests = marks
            .iter()
            .map(|m| m.mutations("kubectl/"))
            .sum::<Result<usize>>()?;
    }
    reset_mesh(&env)?;
    drop(lock);

    let (seq, conc, one, manual) = (
        median(&sequential),
        median(&concurrent),
        median(&single),
        median(&guide),
    );
    Ok(Section {
        title: format!(
            "Join on the test bed (3 clusters, Istio; medians of {runs} runs from the same state)"
        ),
        rows: vec![
            (
                "cluster2 then cluster3, two commands".into(),
                format!("{:.2}s", seq.as_secs_f64()),
            ),
            (
                "cluster2 and cluster3, one command".into(),
                format!("{:.2}s", conc.as_secs_f64()),
            ),
            (
                "one command / two commands".into(),
                format!("{:.2}", conc.as_secs_f64() / seq.as_secs_f64()),
            ),
            (
                "join cluster2 (wall time)".into(),
                format!(
                    "{:.2}s, {single_requests} mutating requests",
                    one.as_secs_f64()
                ),
            ),
            (
                "the guide's kubectl sequence".into(),
                format!(
                    "{:.2}s, {guide_requests} mutating requests, {guide_commands} commands",
                    manual.as_secs_f64()
                ),
            ),
            (
                "join / guide (wall time)".into(),
                format!("{:.2}", one.as_secs_f64() / manual.as_secs_f64()),
            ),
        ],
    })
}

/// The bare clusters the multi-primary benchmark installs Istio into (istiod each).
const MEMBERS: [&str; 3] = ["cluster4", "cluster5", "cluster6"];

/// `multi-primary`: cluster1 and the three members joined as one multi-primary mesh in one
/// command (12 links) next to `join cluster2 --primary cluster1` (one link), each from a
/// reset state, medians of the runs, and their ratio.
pub fn multi_primary(bench: &Bench) -> Result<Section> {
    let (env, lock) = testbed_locked(MEMBERS.len())?;
    let all: Vec<&str> = ["cluster1", "cluster2", "cluster3"]
        .into_iter()
        .chain(MEMBERS)
        .collect();
    let certs = testbed::state_dir().join("bench-certs-multi-primary");
    if !certs.join("cluster6").is_dir() {
        let mut args = vec!["certs", "generate", "--out", s(&certs)];
        args.extend(&all);
        run(&bench.binary, &env, &args)?;
    }
    // istiod in each member, once and untimed: a multi-primary join --install, whose
    // links the resets below take away again.
    let installed = MEMBERS.iter().all(|m| {
        kubectl(
            &env,
            &[
                &format!("--context={m}"),
                "-n",
                "istio-system",
                "get",
                "configmap",
                "istio",
            ],
        )
        .is_ok()
    });
    if !installed {
        let values = testbed::state_dir().join("bench-values.yaml");
        std::fs::write(
            &values,
            "defaultRevision: \"\"\nglobal:\n  configValidation: false\n  operatorManageWebhooks: true\n",
        )?;
        let charts = crate::istio::charts_dir();
        run(
            &bench.binary,
            &env,
            &[
                "join",
                MEMBERS[1],
                MEMBERS[2],
                "--primary",
                MEMBERS[0],
                "--model",
                "multi-primary",
                "--install",
                "--istio-charts",
                s(&charts),
                "--values",
                s(&values),
                "--certs",
                s(&certs),
                "--yes",
            ],
        )?;
    }
    let runs = bench.runs.clamp(1, 5);
    let mut single = Vec::new();
    let mut multi = Vec::new();
    let mut links = 0;
    for _ in 0..runs {
        reset_clusters(&env, &all)?;
        let t = Instant::now();
        run(
            &bench.binary,
            &env,
            &crate::testbed::guide_join_args(s(&certs)),
        )?;
        single.push(t.elapsed());
        reset_clusters(&env, &all)?;
        let t = Instant::now();
        let mut args = vec!["join"];
        args.extend(MEMBERS);
        args.extend(["--primary", "cluster1", "--model", "multi-primary"]);
        args.extend(["--certs", s(&certs), "--yes"]);
        run(&bench.binary, &env, &args)?;
        multi.push(t.elapsed());
        links = ["cluster1"]
            .into_iter()
            .chain(MEMBERS)
            .map(|ctx| {
                let names = kubectl(
                    &env,
                    &[
                        &format!("--context={ctx}"),
                        "-n",
                        "istio-system",
                        "get",
                        "secrets",
                        "-l",
                        "istio/multiCluster=true",
                        "-o",
                        "name",
                    ],
                )?;
                Ok(names.lines().count())
            })
            .sum::<Result<usize>>()?;
    }
    reset_clusters(&env, &all)?;
    drop(lock);
    let (one, four) = (median(&single), median(&multi));
    Ok(Section {
        title: format!(
            "Multi-primary join on the test bed (medians of {runs} runs, each from a reset state)"
        ),
        rows: vec![
            (
                "join cluster2 --primary cluster1 (primary-remote, 1 link)".into(),
                format!("{:.2}s", one.as_secs_f64()),
            ),
            (
                format!("4 primaries in one command ({links} links)"),
                format!("{:.2}s", four.as_secs_f64()),
            ),
            (
                "4 primaries / 1 remote (goal: under 2)".into(),
                format!("{:.2}", four.as_secs_f64() / one.as_secs_f64()),
            ),
        ],
    })
}

/// The test bed up (three clusters with Istio and `bare` without), its environment, and
/// its mesh lock held: tests and benchmarks do not disturb each other.
pub(crate) fn testbed_locked(bare: usize) -> Result<(Vec<(String, String)>, File)> {
    // The test bed is async; benchmarks are not: bring it up on a thread of its own.
    std::thread::spawn(move || {
        tokio::runtime::Runtime::new()?.block_on(testbed::up(&testbed::UpOptions {
            clusters: 3,
            with_istio: true,
            bare,
            versions: testbed::KubernetesVersions::default(),
        }))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("bringing the test bed up panicked"))??;
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(testbed::state_dir().join("mesh.lock"))?;
    lock.lock()?;
    Ok((testbed::env_vars(), lock))
}

pub(crate) fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn s(p: &Path) -> &str {
    p.to_str().expect("cache paths are UTF-8")
}

fn run_owned(bin: &Path, env: &[(String, String)], args: &[String]) -> Result<String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(bin, env, &args)
}

/// The guide's commands for joining cluster2 to cluster1 (cacerts, labels, Gateway,
/// gateway addresses, meshNetworks, reader account and token, hand-written kubeconfig,
/// labelled secret), as a platform engineer types them. Returns how many it ran.
fn guide_sequence(env: &[(String, String)], certs: &Path) -> Result<usize> {
    let mut count = 0;
    let mut k = |args: &[&str]| -> Result<String> {
        count += 1;
        kubectl(env, args)
    };
    for ctx in ["cluster1", "cluster2"] {
        let dir = certs.join(ctx);
        let from = |f: &str| format!("--from-file={}", dir.join(f).display());
        k(&[
            "--context",
            ctx,
            "create",
            "secret",
            "generic",
            "cacerts",
            "-n",
            "istio-system",
            &from("ca-cert.pem"),
            &from("ca-key.pem"),
            &from("root-cert.pem"),
            &from("cert-chain.pem"),
        ])?;
    }
    k(&[
        "--context",
        "cluster1",
        "label",
        "namespace",
        "istio-system",
        "topology.istio.io/network=network1",
    ])?;
    k(&[
        "--context",
        "cluster2",
        "label",
        "namespace",
        "istio-system",
        "topology.istio.io/network=network2",
    ])?;
    let gateway = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: cross-network-gateway\n  namespace: istio-system\nspec:\n  selector:\n    istio: eastwestgateway\n  servers:\n  - port: {number: 15443, name: tls, protocol: TLS}\n    tls: {mode: AUTO_PASSTHROUGH}\n    hosts: ['*.local']\n";
    let file = testbed::state_dir().join("bench-gateway.yaml");
    std::fs::write(&file, gateway)?;
    let mut addresses = Vec::new();
    for ctx in ["cluster1", "cluster2"] {
        k(&["--context", ctx, "apply", "-f", s(&file)])?;
        addresses.push(k(&[
            "--context",
            ctx,
            "-n",
            "istio-system",
            "get",
            "svc",
            "istio-eastwestgateway",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ])?);
    }
    let networks = format!(
        "networks:\n  network1:\n    endpoints:\n    - fromRegistry: cluster1\n    gateways:\n    - address: {}\n      port: 15443\n  network2:\n    endpoints:\n    - fromRegistry: cluster2\n    gateways:\n    - address: {}\n      port: 15443\n",
        addresses[0], addresses[1]
    );
    let patch = serde_json::json!({"data": {"meshNetworks": networks}}).to_string();
    k(&[
        "--context",
        "cluster1",
        "-n",
        "istio-system",
        "patch",
        "configmap",
        "istio",
        "--type=merge",
        "-p",
        &patch,
    ])?;
    k(&[
        "--context",
        "cluster2",
        "-n",
        "istio-system",
        "create",
        "serviceaccount",
        "istio-multi",
    ])?;
    k(&[
        "--context",
        "cluster2",
        "create",
        "clusterrolebinding",
        "istio-multi",
        "--clusterrole=kubectl-mesh:istio-reader",
        "--serviceaccount=istio-system:istio-multi",
    ])?;
    let token_secret = testbed::state_dir().join("bench-token.yaml");
    std::fs::write(
        &token_secret,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: istio-multi-token\n  namespace: istio-system\n  annotations:\n    kubernetes.io/service-account.name: istio-multi\ntype: kubernetes.io/service-account-token\n",
    )?;
    k(&["--context", "cluster2", "apply", "-f", s(&token_secret)])?;
    let mut token_secret_field = |jsonpath: &str| {
        k(&[
            "--context",
            "cluster2",
            "-n",
            "istio-system",
            "get",
            "secret",
            "istio-multi-token",
            "-o",
            jsonpath,
        ])
    };
    let mut token = String::new();
    for _ in 0..50 {
        token = token_secret_field("jsonpath={.data.token}")?;
        if !token.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let ca = token_secret_field("jsonpath={.data.ca\\.crt}")?;
    let server = k(&[
        "config",
        "view",
        "-o",
        "jsonpath={.clusters[?(@.name==\"cluster2\")].cluster.server}",
    ])?;
    use base64::Engine;
    let token = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(token.trim())?)?;
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: cluster2\n  cluster:\n    certificate-authority-data: {ca}\n    server: {server}\ncontexts:\n- name: cluster2\n  context: {{cluster: cluster2, user: cluster2}}\ncurrent-context: cluster2\nusers:\n- name: cluster2\n  user:\n    token: {token}\n"
    );
    let dir = testbed::state_dir().join("bench-guide");
    std::fs::create_dir_all(&dir)?;
    let path: PathBuf = dir.join("cluster2");
    crate::pki::write(&dir, "cluster2", &kubeconfig, true)?;
    k(&[
        "--context",
        "cluster1",
        "-n",
        "istio-system",
        "create",
        "secret",
        "generic",
        "n2-k8s-secret",
        &format!("--from-file={}", path.display()),
    ])?;
    k(&[
        "--context",
        "cluster1",
        "-n",
        "istio-system",
        "label",
        "secret",
        "n2-k8s-secret",
        "istio/multiCluster=true",
    ])?;
    std::fs::remove_dir_all(&dir)?;
    Ok(count)
}

/// A position in a cluster's audit log.
struct AuditMark {
    path: PathBuf,
    offset: u64,
}

impl AuditMark {
    fn new(cluster: &str) -> AuditMark {
        let path = testbed::state_dir().join(cluster).join("logs/audit.log");
        let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        AuditMark { path, offset }
    }

    /// Persisting requests (not reviews) by clients whose user agent starts with `agent`.
    fn mutations(&self, agent: &str) -> Result<usize> {
        std::thread::sleep(Duration::from_millis(1000));
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(self.offset))?;
        let mut n = 0;
        for line in BufReader::new(file).lines() {
            let event: serde_json::Value = serde_json::from_str(&line?).unwrap_or_default();
            let verb = event["verb"].as_str().unwrap_or_default();
            let resource = event["objectRef"]["resource"].as_str().unwrap_or_default();
            if event["userAgent"]
                .as_str()
                .unwrap_or_default()
                .starts_with(agent)
                && event["stage"] == "ResponseComplete"
                && matches!(verb, "create" | "update" | "patch" | "delete")
                && !resource.ends_with("reviews")
            {
                n += 1;
            }
        }
        Ok(n)
    }
}
