//! `cargo xtask bench`: numbers worth watching, as a list of sections.
//!
//! Each section measures one thing and returns rows of (what, value). Timings are
//! reported as medians and as ratios against a reference measured side by side in the
//! same run (interleaved, so a busy machine slows both alike); nothing here asserts on
//! a time. To add a benchmark, write a `fn(&Bench) -> Result<Section>` and list it in
//! [`SECTIONS`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{dist, tools};

/// What every section may use.
#[derive(Debug, Clone)]
pub struct Bench {
    /// The release build of kubectl-mesh (what users get: stripped, LTO).
    pub binary: PathBuf,
    /// How many times each timed command runs.
    pub runs: usize,
}

/// One section of the report.
#[derive(Debug, Clone)]
pub struct Section {
    /// Its heading.
    pub title: String,
    /// `(what, value)` rows.
    pub rows: Vec<(String, String)>,
}

/// A benchmark: measures and returns its section.
pub type BenchFn = fn(&Bench) -> Result<Section>;

/// Every benchmark, by name (`cargo xtask bench NAME…` runs some of them), in report order.
pub const SECTIONS: &[(&str, BenchFn)] = &[
    ("size", binary_size),
    ("startup", startup),
    ("join", crate::bench_join::join),
    ("multi-primary", crate::bench_join::multi_primary),
    ("verify", crate::bench_verify::verify),
];

/// Builds the release binary, runs the chosen sections (all when `only` is empty) and
/// returns the report.
pub fn run(only: &[String], runs: usize) -> Result<String> {
    for name in only {
        if !SECTIONS.iter().any(|(n, _)| n == name) {
            let names: Vec<&str> = SECTIONS.iter().map(|(n, _)| *n).collect();
            bail!("no benchmark {name}; there are: {}", names.join(", "));
        }
    }
    let bench = Bench {
        binary: dist::build_binary("release")?,
        runs,
    };
    let mut report = String::new();
    for (name, section) in SECTIONS {
        if !only.is_empty() && !only.iter().any(|n| n == name) {
            continue;
        }
        let section = section(&bench).with_context(|| format!("benchmark {name}"))?;
        report.push_str(&format!("{}\n", section.title));
        let width = section.rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (what, value) in &section.rows {
            report.push_str(&format!("  {what:<width$}  {value}\n"));
        }
        report.push('\n');
    }
    Ok(report)
}

/// Size of the stripped release binary (the release profile strips symbols) and of the
/// archive users download.
fn binary_size(bench: &Bench) -> Result<Section> {
    let size = std::fs::metadata(&bench.binary)?.len();
    let dir = tempfile_dir("bench-size")?;
    let archive = dir.join("kubectl-mesh.tar.gz");
    dist::pack(&archive, &bench.binary)?;
    let packed = std::fs::metadata(&archive)?.len();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Section {
        title: "Binary size (release profile: LTO, stripped)".into(),
        rows: vec![
            (
                "kubectl-mesh".into(),
                format!("{} ({size} bytes)", mib(size)),
            ),
            (
                "release archive (.tar.gz)".into(),
                format!("{} ({packed} bytes)", mib(packed)),
            ),
        ],
    })
}

/// Median wall time of `kubectl-mesh version`, of `kubectl mesh version` (through
/// kubectl's plugin lookup) and of `kubectl version --client`, interleaved.
fn startup(bench: &Bench) -> Result<Section> {
    let kubectl = tools::ensure_kubectl()?;
    let plugins = tempfile_dir("bench-startup")?;
    std::os::unix::fs::symlink(&bench.binary, plugins.join("kubectl-mesh"))?;
    let path = std::env::join_paths(std::iter::once(plugins.clone()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))?;
    let no_kubeconfig = plugins.join("no-kubeconfig");
    let command = |program: &Path, args: &[&str]| {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env("PATH", &path)
            .env("KUBECONFIG", &no_kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    let mut cases = [
        ("kubectl-mesh version", command(&bench.binary, &["version"])),
        (
            "kubectl mesh version",
            command(&kubectl, &["mesh", "version"]),
        ),
        (
            "kubectl version --client",
            command(&kubectl, &["version", "--client"]),
        ),
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    for round in 0..bench.runs + 3 {
        for (i, (what, cmd)) in cases.iter_mut().enumerate() {
            let started = Instant::now();
            let status = cmd.status().with_context(|| format!("running {what}"))?;
            let elapsed = started.elapsed();
            if !status.success() {
                bail!("{what} failed ({status})");
            }
            if round >= 3 {
                times[i].push(elapsed); // the first rounds warm the page cache
            }
        }
    }
    let _ = std::fs::remove_dir_all(&plugins);
    let medians: Vec<Duration> = times.iter_mut().map(|t| median(t)).collect();
    let reference = medians[2];
    let rows = cases
        .iter()
        .zip(&medians)
        .map(|((what, _), median)| {
            (
                (*what).to_owned(),
                format!(
                    "median {:>7.2} ms  ({:.2}× kubectl version --client)",
                    median.as_secs_f64() * 1e3,
                    median.as_secs_f64() / reference.as_secs_f64()
                ),
            )
        })
        .collect();
    Ok(Section {
        title: format!(
            "Start-up time ({} runs each, interleaved, after 3 warm-up rounds)",
            bench.runs
        ),
        rows,
    })
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    let n = times.len();
    if n == 0 {
        Duration::ZERO
    } else if n % 2 == 1 {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn tempfile_dir(prefix: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("kubectl-mesh-{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
