//! `cargo xtask demo`: the main job, end to end, on the local test bed — two real
//! control planes with Istio as a user has it, generated certificates, then
//! `kubectl mesh join cluster2` with its progress, and `kubectl mesh status`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::testbed;

/// Runs the demo; `kubectl_mesh` is the built binary.
pub async fn run(kubectl_mesh: &Path) -> Result<()> {
    testbed::up(&testbed::UpOptions {
        clusters: 2,
        with_istio: true,
        bare: 0,
        // The skew users have: the primary on the newest release, the remote on the oldest.
        versions: testbed::KubernetesVersions::default(),
    })
    .await?;
    let env = testbed::env_vars();
    let certs = testbed::state_dir().join("demo-certs");

    step(
        "The test bed: real Kubernetes control planes on loopback (each on its own release), Istio installed by helm",
    );
    testbed::status().await?;

    step("1. One root, one intermediate CA per cluster (kubectl mesh certs generate)");
    if certs.join("cluster1").is_dir() && certs.join("cluster2").is_dir() {
        println!("reusing {}", certs.display());
    } else {
        mesh(
            kubectl_mesh,
            &env,
            &[
                "certs",
                "generate",
                "--out",
                path(&certs),
                "cluster1",
                "cluster2",
            ],
        )?;
    }
    mesh(
        kubectl_mesh,
        &env,
        &[
            "certs",
            "check",
            path(&certs.join("cluster1")),
            path(&certs.join("cluster2")),
        ],
    )?;

    step("2. kubectl mesh join cluster2 --primary cluster1 --certs …");
    mesh(kubectl_mesh, &env, &["join", "cluster2", "--primary", "cluster1", "--certs", path(&certs), "--yes"])
        .context("the join failed; if the test bed holds cacerts from another root (left by tests), run `cargo xtask testbed down` and the demo again")?;

    step("3. Again: a second join changes nothing");
    mesh(
        kubectl_mesh,
        &env,
        &[
            "join",
            "cluster2",
            "--primary",
            "cluster1",
            "--certs",
            path(&certs),
            "--yes",
        ],
    )?;

    if subcommand_exists(kubectl_mesh, "status") {
        step("4. kubectl mesh status --context cluster1: every link checked");
        mesh(kubectl_mesh, &env, &["status", "--context", "cluster1"])?;
    }

    step("What istiod reads: meshNetworks and the remote secret in cluster1");
    let kubectl = |args: &[&str]| -> Result<()> {
        let status = Command::new("kubectl")
            .args(args)
            .envs(env.iter().cloned())
            .status()?;
        if !status.success() {
            bail!("kubectl {} failed", args.join(" "));
        }
        Ok(())
    };
    kubectl(&[
        "--context",
        "cluster1",
        "-n",
        "istio-system",
        "get",
        "configmap",
        "istio",
        "-o",
        "jsonpath={.data.meshNetworks}",
    ])?;
    println!();
    kubectl(&[
        "--context",
        "cluster1",
        "-n",
        "istio-system",
        "get",
        "secrets",
        "-l",
        "istio/multiCluster=true",
        "-L",
        "networking.istio.io/cluster",
    ])?;

    step("What istiod concludes: a real istiod (pilot-discovery) reads cluster1");
    istiod_view(&env)?;

    step("Try it yourself");
    print!("{}", testbed::env_lines()?);
    println!(
        "export PATH=\"{}:$PATH\"",
        kubectl_mesh.parent().unwrap_or(Path::new(".")).display()
    );
    println!("kubectl mesh status --context cluster1");
    println!(
        "\nThis was Istio's primary-remote model on different networks. The other three (README, \"Istio's four multicluster models\"):"
    );
    println!(
        "  kubectl mesh join cluster2 --primary cluster1 --one-network                    # primary-remote, one network"
    );
    println!(
        "  kubectl mesh join cluster2 --primary cluster1 --model multi-primary             # multi-primary, different networks"
    );
    println!("  kubectl mesh join cluster2 --primary cluster1 --model multi-primary --one-network");
    println!("\nStop the test bed with: cargo xtask testbed down");
    Ok(())
}

fn step(title: &str) {
    println!("\n=== {title}\n");
}

fn path(p: &Path) -> &str {
    p.to_str().expect("the cache path is UTF-8")
}

fn mesh(bin: &Path, env: &[(String, String)], args: &[&str]) -> Result<()> {
    println!("$ kubectl mesh {}", args.join(" "));
    let status = Command::new(bin)
        .args(args)
        .envs(env.iter().cloned())
        .status()
        .with_context(|| format!("running {}", bin.display()))?;
    if !status.success() {
        bail!("kubectl mesh {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn subcommand_exists(bin: &Path, name: &str) -> bool {
    Command::new(bin)
        .args([name, "--help"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The debug binary cargo builds for the workspace.
pub fn kubectl_mesh_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug/kubectl-mesh")
}

/// Runs istiod (`pilot-discovery` from the pinned Istio commit) as a local process against
/// cluster1, as the conformance tests do, waits until it has synced cluster2 (deadline),
/// prints `/debug/clusterz` and `/debug/networkz`, and stops it.
fn istiod_view(env: &[(String, String)]) -> Result<()> {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    let bin = crate::tools::tool_dir("istio", crate::istio::ISTIO_VERSION).join("pilot-discovery");
    let work = testbed::state_dir().join("demo-istiod");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let log = work.join("istiod.log");
    let ports: Vec<std::net::TcpListener> = (0..6)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()?;
    let port = |i: usize| -> Result<u16> { Ok(ports[i].local_addr()?.port()) };
    let addr = |i: usize| -> Result<String> { Ok(format!("127.0.0.1:{}", port(i)?)) };
    let http: std::net::SocketAddr = addr(0)?.parse()?;
    let out = std::fs::File::create(&log)?;
    let mut cmd = Command::new(&bin);
    cmd.arg("discovery")
        .arg("--kubeconfig")
        .arg(testbed::state_dir().join("cluster1/admin.kubeconfig"))
        .args(["--clusterID", "cluster1", "--namespace", "istio-system"])
        .args(["--httpAddr", &addr(0)?, "--grpcAddr", &addr(1)?])
        .args(["--secureGRPCAddr", &addr(2)?, "--monitoringAddr", &addr(3)?])
        .args(["--httpsAddr", &addr(4)?, "--ctrlz_address", "127.0.0.1"])
        .args([
            "--ctrlz_port",
            &port(5)?.to_string(),
            "--shutdownDuration",
            "1s",
        ])
        .envs(env.iter().cloned())
        .env_remove("KUBECONFIG")
        .env("POD_NAMESPACE", "istio-system")
        .env("REVISION", "default")
        .env("USE_REMOTE_CERTS", "true")
        .env("ROOT_CA_DIR", work.join("cacerts"))
        .current_dir(&work)
        .stdout(out.try_clone()?)
        .stderr(out);
    drop(ports);
    println!(
        "$ pilot-discovery discovery --kubeconfig <cluster1 admin> --clusterID cluster1 … (log: {})",
        log.display()
    );
    let mut child = cmd
        .spawn()
        .with_context(|| format!("running {}", bin.display()))?;
    let get = |path: &str| -> Option<String> {
        let mut s = std::net::TcpStream::connect_timeout(&http, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: {http}\r\n\r\n").ok()?;
        let mut response = String::new();
        s.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        (head.split_whitespace().nth(1) == Some("200")).then(|| body.to_owned())
    };
    let pretty = |body: &str| {
        serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| body.to_owned())
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let result = loop {
        if let Some(body) = get("/debug/clusterz")
            && body.contains("\"cluster2\"")
            && !body.contains("\"syncing\"")
        {
            break Ok(body);
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(anyhow::anyhow!(
                "istiod exited ({status}); see {}",
                log.display()
            ));
        }
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!(
                "istiod did not list cluster2 in /debug/clusterz within 90s; see {}",
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    if let Ok(clusterz) = &result {
        println!("$ curl {http}/debug/clusterz   # the clusters istiod reads");
        println!("{}", pretty(clusterz));
        println!("$ curl {http}/debug/networkz   # the cross-network gateways");
        println!("{}", pretty(&get("/debug/networkz").unwrap_or_default()));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let stop = Instant::now() + Duration::from_secs(10);
    while Instant::now() < stop && matches!(child.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    result.map(|_| ())
}
