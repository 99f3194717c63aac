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
    // The guide's starting point, whatever earlier demos or tests left: Istio installed,
    // no mesh (no cacerts of another root, no links, no network labels).
    crate::mesh_reset::reset_clusters(&env, &["cluster1", "cluster2"])?;

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
    mesh(kubectl_mesh, &env, &testbed::guide_join_args(path(&certs)))
        .context("the join failed; its output above names the cluster and the object")?;

    step("3. Again: a second join changes nothing");
    mesh(kubectl_mesh, &env, &testbed::guide_join_args(path(&certs)))?;

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

    step(
        "5. kubectl mesh verify: what a real istiod (pilot-discovery, reading cluster1) tells each sidecar",
    );
    istiod_verify(kubectl_mesh, &env)?;

    step("Try it yourself");
    print!("{}", testbed::env_lines()?);
    println!(
        "export PATH=\"{}:$PATH\"",
        kubectl_mesh.parent().unwrap_or(Path::new(".")).display()
    );
    println!("kubectl mesh status --context cluster1");
    println!(
        "kubectl mesh verify --primary cluster1 --istiod 127.0.0.1:15012   # with istiod's port forwarded"
    );
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
/// runs `kubectl mesh verify` against its TLS xDS port, and stops it.
fn istiod_verify(kubectl_mesh: &Path, env: &[(String, String)]) -> Result<()> {
    let mut istiod = crate::local_istiod::LocalIstiod::start("cluster1", "demo-istiod", env)?;
    println!(
        "$ pilot-discovery discovery --kubeconfig <cluster1 admin> --clusterID cluster1 … (log: {})",
        istiod.log.display()
    );
    istiod.wait_synced("cluster2")?;
    // The test bed has no kubelet, so verify reports traffic as not tested; what it proves
    // is what istiod tells each sidecar.
    mesh(
        kubectl_mesh,
        env,
        &[
            "verify",
            "--primary",
            "cluster1",
            "--istiod",
            &istiod.secure_grpc,
            "--requests",
            "3",
        ],
    )
}
