//! Build system of kubectl-mesh (`cargo xtask …`): test bed, demo, test, dist, bench, tidy.
//!
//! Everything the tests need is built here from the Go module proxy and cached outside
//! the repository (see [`tools::cache_dir`]), so a fresh machine needs only Rust and Go.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use xtask::{bench, demo, dist, istio, krew, simulator, testbed, tidy, tools};

use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Real Kubernetes control planes on loopback, for tests and the demo.
    #[command(subcommand)]
    Testbed(TestbedCmd),
    /// Build, bring a test bed up (or reuse one), run every test, tear down what it started.
    Test {
        /// Extra arguments for `cargo test` (after `--`), e.g. a test name filter.
        #[arg(last = true)]
        cargo_test_args: Vec<String>,
    },
    /// The main job: bring a test bed up and show kubectl mesh working against it.
    Demo,
    /// Build the release archive, its sha256 and the krew manifest plugins/mesh.yaml.
    Dist {
        /// Where the archives and checksums go [default: dist in the workspace].
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
        /// The krew index directory the manifest goes to, as plugins/mesh.yaml
        /// [default: the workspace, which is this project's krew index].
        #[arg(long, value_name = "DIR")]
        index: Option<std::path::PathBuf>,
        /// Target triple to build for (repeatable; default: this machine's).
        #[arg(long, value_name = "TRIPLE")]
        target: Vec<String>,
        /// Cargo profile.
        #[arg(long, default_value = "release")]
        profile: String,
    },
    /// Measure the release binary: size, start-up time (as a ratio against kubectl).
    Bench {
        /// Times each timed command runs.
        #[arg(long, default_value_t = 50)]
        runs: usize,
        /// Only these sections (default: all).
        sections: Vec<String>,
    },
    /// Check that ARCHITECTURE.md names only code that exists (run by `test`).
    Tidy,
}

#[derive(Subcommand)]
enum TestbedCmd {
    /// Build the binaries (once) and start the clusters; reuses a running test bed.
    Up {
        /// How many clusters (cluster1, cluster2, …).
        #[arg(long, default_value_t = 2)]
        clusters: usize,
        /// Also install Istio as it is before joining: base, istiod and an east-west
        /// gateway in cluster1; base and an east-west gateway in the others.
        #[arg(long)]
        with_istio: bool,
        /// Also start this many clusters after those, never given Istio (what
        /// `kubectl mesh join --install` starts from).
        #[arg(long, default_value_t = 0)]
        bare: usize,
        /// The Kubernetes release of every cluster (`v1.34.4`, or `v1.34` for the pinned
        /// patch), or of one (`cluster2=v1.34`); repeatable. Default: a mix — cluster1 on
        /// the newest release, cluster2 on the oldest, the others in between.
        #[arg(long = "kubernetes-version", value_name = "[CLUSTER=]VERSION")]
        kubernetes_version: Vec<String>,
    },
    /// Stop every process of the test bed and remove its state.
    Down,
    /// Say what runs.
    Status,
    /// Print shell lines for `eval "$(cargo xtask testbed env)"`.
    Env,
    /// Build the binaries without starting anything.
    Build {
        /// Also build helm, istiod and istioctl and copy Istio's charts.
        #[arg(long)]
        with_istio: bool,
        /// The Kubernetes releases to build (repeatable; `v1.34` for the pinned patch).
        /// Default: every release the test bed mixes.
        #[arg(long = "kubernetes-version", value_name = "VERSION")]
        kubernetes_version: Vec<String>,
    },
    /// (internal) Simulate what a cloud and kubelets would do, until killed.
    #[command(hide = true)]
    Simulate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube_client=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Task::Testbed(cmd) => match cmd {
            TestbedCmd::Up {
                clusters,
                with_istio,
                bare,
                kubernetes_version,
            } => {
                match testbed::up(&testbed::UpOptions {
                    clusters,
                    with_istio,
                    bare,
                    versions: testbed::KubernetesVersions::parse(&kubernetes_version)?,
                })
                .await?
                {
                    testbed::UpOutcome::Started => {}
                    testbed::UpOutcome::Reused => eprintln!("xtask: reusing the running test bed"),
                }
                eprintln!("xtask: point kubectl at it with: eval \"$(cargo xtask testbed env)\"");
            }
            TestbedCmd::Down => testbed::down()?,
            TestbedCmd::Status => {
                if !testbed::status().await? {
                    return Ok(ExitCode::FAILURE);
                }
            }
            TestbedCmd::Env => print!("{}", testbed::env_lines()?),
            TestbedCmd::Build {
                with_istio,
                kubernetes_version,
            } => {
                let versions = if kubernetes_version.is_empty() {
                    tools::KUBERNETES_VERSIONS.map(str::to_owned).to_vec()
                } else {
                    kubernetes_version
                        .iter()
                        .map(|v| tools::resolve_kubernetes_version(v))
                        .collect::<Result<_>>()?
                };
                for version in versions {
                    tools::ensure_kubernetes(&version)?;
                }
                tools::ensure_etcd()?;
                krew::ensure_krew()?;
                if with_istio {
                    istio::ensure_helm()?;
                    istio::ensure_istio()?;
                }
            }
            TestbedCmd::Simulate => simulator::run().await?,
        },
        Task::Test { cargo_test_args } => return test(&cargo_test_args).await,
        Task::Demo => demo().await?,
        Task::Dist {
            out,
            index,
            target,
            profile,
        } => {
            let defaults = dist::DistOptions::default();
            dist::dist(&dist::DistOptions {
                out: out.unwrap_or(defaults.out),
                index: index.unwrap_or(defaults.index),
                targets: target,
                profile,
            })?;
        }
        Task::Bench { runs, sections } => print!("{}", bench::run(&sections, runs)?),
        Task::Tidy => tidy::run(&dist::workspace_root())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `cargo xtask test`: every test of the workspace, the ones that need clusters included.
async fn test(extra: &[String]) -> Result<ExitCode> {
    // The map first: a stale name fails in a second, before any build.
    tidy::run(&dist::workspace_root())?;
    cargo(&["build", "--workspace", "--all-targets"])?;
    krew::ensure_krew()?; // once, before tests that use it run in parallel
    // The API docs (each library's front page has an example) build without a warning.
    let docs = Command::new(cargo_bin())
        .args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .status()
        .context("running cargo doc")?;
    if !docs.success() {
        bail!("`cargo doc --workspace --no-deps` with warnings denied failed ({docs})");
    }
    let outcome = testbed::up(&testbed::UpOptions {
        clusters: 3, // cluster1 primary, cluster2 and cluster3 remotes (joining two at once)
        with_istio: true,
        bare: 2, // cluster4 and cluster5: `join --install` from nothing
        versions: testbed::KubernetesVersions::default(), // the mix: see `default_version`
    })
    .await?;
    if let Some(state) = testbed::State::load()? {
        // In the run's output, so a result always says which releases it ran against.
        println!("xtask: testing against Kubernetes {}", state.releases());
    }
    let mut args = vec!["test", "--workspace", "--", "--include-ignored"];
    args.extend(extra.iter().map(String::as_str));
    let mut child = Command::new(cargo_bin())
        .args(&args)
        .envs(testbed::env_vars())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running cargo test")?;
    // Pass the output through, adding up every test binary's result line.
    let (mut passed, mut failed) = (0u64, 0u64);
    let stdout = child.stdout.take().expect("piped stdout");
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line?;
        println!("{line}");
        if let Some(result) = line.strip_prefix("test result: ") {
            let count = |word: &str| -> u64 {
                result
                    .split([';', '.'])
                    .find_map(|part| part.trim().strip_suffix(word)?.trim().parse().ok())
                    .unwrap_or(0)
            };
            passed += count(" passed");
            failed += count(" failed");
        }
    }
    let status = child.wait()?;
    if outcome == testbed::UpOutcome::Started {
        testbed::down()?;
    } else {
        eprintln!("xtask: leaving the test bed that was already up running");
    }
    // One closing line for the whole workspace, after every binary's own.
    println!("tests: {passed} passed, {failed} failed");
    if !status.success() {
        bail!("tests failed ({status})");
    }
    Ok(ExitCode::SUCCESS)
}

/// `cargo xtask demo`.
async fn demo() -> Result<()> {
    cargo(&["build", "--package", "kubectl-mesh"])?;
    demo::run(&demo::kubectl_mesh_binary()).await
}

fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

fn cargo(args: &[&str]) -> Result<()> {
    let status = Command::new(cargo_bin())
        .args(args)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
