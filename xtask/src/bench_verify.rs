//! `cargo xtask bench verify`: what `kubectl mesh verify` costs on a two-cluster mesh
//! with the samples already deployed, split into the sample checks (status, rollout,
//! EndpointSlices) and each cluster's xDS exchange, next to one plain round trip to the
//! same istiod (an HTTP GET of its `/ready`) measured in the same run.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::{Bench, Section};
use crate::bench_join::{median, testbed_locked};
use crate::local_istiod::LocalIstiod;
use crate::mesh_reset::{kubectl, reset_mesh, run};
use crate::testbed;

/// The `verify` section.
pub fn verify(bench: &Bench) -> Result<Section> {
    let (env, lock) = testbed_locked(0)?;
    let certs = testbed::state_dir().join("bench-verify-certs");
    let certs = certs.to_str().context("cache paths are UTF-8")?.to_owned();
    if !std::path::Path::new(&certs).join("cluster2").is_dir() {
        run(
            &bench.binary,
            &env,
            &["certs", "generate", "--out", &certs, "cluster1", "cluster2"],
        )?;
    }
    reset_mesh(&env)?;
    run(
        &bench.binary,
        &env,
        &crate::testbed::guide_join_args(&certs),
    )?;
    let mut istiod = LocalIstiod::start("cluster1", "bench-istiod", &env)?;
    istiod.wait_synced("cluster2")?;
    let args = [
        "verify",
        "--primary",
        "cluster1",
        "--istiod",
        &istiod.secure_grpc,
        "--keep",
        "--requests",
        "0",
        "-o",
        "json",
    ];
    // Deploy the samples and let istiod settle: the first pass is not measured.
    let deadline = Instant::now() + Duration::from_secs(120);
    while verify_once(&bench.binary, &env, &args).is_err() {
        if Instant::now() > deadline {
            bail!(
                "verify never passed on the bench's mesh; see {}",
                istiod.log.display()
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }

    let runs = bench.runs.clamp(3, 20);
    let (mut wall, mut samples, mut xds1, mut xds2, mut plain) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        let report = verify_once(&bench.binary, &env, &args)?;
        wall.push(t.elapsed());
        samples.push(millis(report["sample_millis"].as_u64()));
        for (client, times) in [("cluster1", &mut xds1), ("cluster2", &mut xds2)] {
            let exchange = report["xds"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|x| x["client"] == client)
                .and_then(|x| x["millis"].as_u64());
            times.push(millis(exchange));
        }
        let t = Instant::now();
        istiod.get("/ready").context("istiod's /ready")?;
        plain.push(t.elapsed());
    }
    kubectl(
        &env,
        &[
            "--context",
            "cluster1",
            "delete",
            "ns",
            "sample",
            "--ignore-not-found",
        ],
    )?;
    kubectl(
        &env,
        &[
            "--context",
            "cluster2",
            "delete",
            "ns",
            "sample",
            "--ignore-not-found",
        ],
    )?;
    drop(istiod);
    reset_mesh(&env)?;
    drop(lock);

    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    let (wall, samples, xds1, xds2, plain) = (
        median(&wall),
        median(&samples),
        median(&xds1),
        median(&xds2),
        median(&plain),
    );
    let ratio = |d: Duration| format!("{:.1}", d.as_secs_f64() / plain.as_secs_f64().max(1e-6));
    Ok(Section {
        title: format!(
            "Verify of a two-cluster mesh, samples deployed (real istiod over TLS; medians of {runs} runs)"
        ),
        rows: vec![
            ("verify, whole command (wall time)".into(), ms(wall)),
            (
                "sample checks (status, rollout, EndpointSlices)".into(),
                ms(samples),
            ),
            ("xDS exchange, cluster1's sidecar".into(), ms(xds1)),
            ("xDS exchange, cluster2's sidecar".into(), ms(xds2)),
            (
                "one plain round trip to istiod (GET /ready)".into(),
                ms(plain),
            ),
            ("xDS cluster1 / plain round trip".into(), ratio(xds1)),
            ("xDS cluster2 / plain round trip".into(), ratio(xds2)),
        ],
    })
}

fn millis(value: Option<u64>) -> Duration {
    Duration::from_millis(value.unwrap_or(0))
}

/// One `verify -o json`; its report, or an error when it did not pass.
fn verify_once(
    bin: &std::path::Path,
    env: &[(String, String)],
    args: &[&str],
) -> Result<serde_json::Value> {
    let out = std::process::Command::new(bin)
        .args(args)
        .envs(env.iter().cloned())
        .output()
        .context("running kubectl-mesh verify")?;
    if !out.status.success() {
        bail!(
            "verify failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}
