//! `kubectl mesh verify`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use mesh_core::verify::{IstiodRoute, ServiceRef, TrafficState, VerifyOptions, VerifyReport};
use mesh_core::{CheckState, Interrupt};
use mesh_kubeconfig::{KubeconfigSource, Kubeconfigs};

use crate::cli::{GlobalArgs, OutputFormat};
use crate::duration::parse_duration_or_days;
use crate::progress::Renderer;
use crate::style::Style;

/// Options of `kubectl mesh verify`.
#[derive(Debug, Args)]
#[command(after_help = "What it checks, per cluster of the mesh:
  1. the guide's samples run (namespace sample: helloworld v1 in the primary, v2 in every
     other cluster, sleep everywhere); only what is missing is deployed, and what verify
     deployed is removed at the end unless --keep;
  2. what istiod tells sleep's sidecar about the service, asked over xDS exactly as the
     sidecar asks (its node metadata, a token for its ServiceAccount, istiod's TLS port,
     trusting the mesh root): its own network's pods at their pod IPs, every other network
     only as that network's east-west gateway address:15443, weighted by its pods;
  3. the guide's requests from sleep (through the API server's exec): which versions answer.
     Where exec cannot run (no kubelet), traffic is reported as not tested, never passed.
Every wrong endpoint gets a hint naming the cause found (a missing network label, a gateway
without an address, a meshNetworks entry missing, a remote istiod does not read, …).

Exit status: 0 when everything checked passed, 1 when something failed.

Examples:
  # The guide's mesh; istiod is reached by a port-forward to its pod through the API
  kubectl mesh verify --primary cluster1

  # An istiod you already reach (a port-forward of yours, a local process)
  kubectl mesh verify --primary cluster1 --istiod 127.0.0.1:15012

  # Check that cluster2 is in cluster1's mesh, keeping the samples for a look afterwards
  kubectl mesh verify cluster2 --primary cluster1 --istiod 127.0.0.1:15012 --keep

  # An existing service instead of the samples, as JSON for a CI job
  kubectl mesh verify --primary cluster1 --istiod 127.0.0.1:15012 \\
      --service reviews.bookinfo:9080 -o json")]
pub struct VerifyArgs {
    /// Contexts of clusters that must be part of the mesh, besides those the primary
    /// already reads (a cluster named here that no link reads fails verify).
    #[arg(value_name = "CONTEXT")]
    pub clusters: Vec<String>,

    /// The context of the primary cluster (default: --context, then the current context).
    #[arg(long, value_name = "CONTEXT")]
    pub primary: Option<String>,

    /// Where istiod's xDS port is reached, as `[CONTEXT=]HOST:PORT` (its TLS port 15012,
    /// or its plaintext port 15010 with --plaintext); one per primary of a multi-primary
    /// mesh, each named by its context. Default: a port-forward to a running istiod pod
    /// (label app=istiod) through the Kubernetes API.
    #[arg(long, value_name = "[CONTEXT=]HOST:PORT", value_parser = parse_route)]
    pub istiod: Vec<IstiodRoute>,

    /// Speak to istiod's plaintext xDS port: no token, no TLS. Only for a port you pointed
    /// --istiod at yourself (istiod answers it without authentication).
    #[arg(long)]
    pub plaintext: bool,

    /// Check this existing service (NAME.NAMESPACE:PORT) instead of deploying helloworld;
    /// sleep is still deployed where missing.
    #[arg(long, value_name = "NAME.NAMESPACE:PORT")]
    pub service: Option<ServiceRef>,

    /// Keep the samples verify deployed.
    #[arg(long)]
    pub keep: bool,

    /// Requests each sleep sends (0: none).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub requests: u32,

    /// How long the samples may take to roll out, and istiod to answer.
    #[arg(long, value_name = "DURATION", default_value = "3m", value_parser = parse_duration_or_days)]
    pub wait: Duration,

    /// How long a wrong answer from istiod is asked again before it counts (istiod
    /// pushes what changed within seconds, e.g. right after the samples start).
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = parse_duration_or_days)]
    pub settle: Duration,

    /// Output: progress and the matrix, or the report as json or yaml on stdout.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

fn parse_route(s: &str) -> Result<IstiodRoute, String> {
    let (context, address) = match s.split_once('=') {
        Some((ctx, addr)) => (Some(ctx), addr),
        None => (None, s),
    };
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("`{s}` has no port: give HOST:PORT, e.g. 127.0.0.1:15012"))?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!(
            "`{s}` is not [CONTEXT=]HOST:PORT, e.g. cluster1=127.0.0.1:15012"
        ));
    }
    Ok(IstiodRoute::new(context, address))
}

/// Runs `kubectl mesh verify`.
pub fn run(global: &GlobalArgs, args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let kubeconfigs = Kubeconfigs::load(&KubeconfigSource::from_flag(global.kubeconfig.clone()))?;
    let primary =
        kubeconfigs.context_or_current(args.primary.as_deref().or(global.context.as_deref()))?;
    let interrupt = Interrupt::default();
    let opts = VerifyOptions {
        namespace: global.namespace.clone(),
        clusters: args.clusters.clone(),
        service: args.service.clone(),
        keep: args.keep,
        istiod: args.istiod.clone(),
        plaintext: args.plaintext,
        requests: args.requests,
        request_timeout: global.request_timeout(),
        wait: args.wait,
        settle: args.settle,
        interrupt: interrupt.clone(),
        ..VerifyOptions::new(&primary)
    };
    let runtime = super::runtime()?;
    let renderer = Renderer::new(args.output == OutputFormat::Text);
    let _signals = runtime.spawn(super::raise_on_signal(interrupt));
    let result = runtime.block_on(mesh_core::verify::verify(&kubeconfigs, &opts, &renderer));
    renderer.finish();
    let report = result?;
    match args.output {
        OutputFormat::Text => print_text(&report),
        data => super::print_data(&report, data)?,
    }
    Ok(if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_text(report: &VerifyReport) {
    let style = Style::stdout();
    println!("model: {}", report.model);
    println!("service: {}", report.service);
    println!();
    let header = ["CLIENT", "TARGET", "EXPECTED", "RECEIVED"];
    let rows: Vec<[String; 4]> = report
        .endpoints
        .iter()
        .map(|r| {
            [
                r.client.clone(),
                r.target.clone(),
                r.expected.clone(),
                if r.received.is_empty() {
                    "-".into()
                } else {
                    r.received.join(", ")
                },
            ]
        })
        .collect();
    let lines = super::table_lines(header, &rows);
    println!("  {}", lines[0]);
    for (row, line) in report.endpoints.iter().zip(&lines[1..]) {
        let mark = match row.state {
            CheckState::Fail => style.failed(),
            _ => style.ok(),
        };
        println!("{mark} {line}");
        if let Some(hint) = &row.hint {
            println!("  → {hint}");
        }
    }
    if !report.traffic.is_empty() {
        println!();
        for t in &report.traffic {
            let versions = t
                .versions
                .iter()
                .map(|(v, n)| format!("{v}×{n}"))
                .collect::<Vec<_>>()
                .join(" ");
            match t.state {
                TrafficState::Passed => println!(
                    "{} traffic from {}: {}/{} answered ({versions})",
                    style.ok(),
                    t.client,
                    t.answered,
                    t.requests
                ),
                TrafficState::Failed => println!(
                    "{} traffic from {}: {}/{} answered ({versions}): {}",
                    style.failed(),
                    t.client,
                    t.answered,
                    t.requests,
                    t.message.as_deref().unwrap_or("")
                ),
                TrafficState::NotTested => println!(
                    "{} {}: {}",
                    style.warning(),
                    t.client,
                    t.message.as_deref().unwrap_or("traffic not tested")
                ),
            }
        }
    }
    let failed_checks: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.state == CheckState::Fail)
        .collect();
    if !failed_checks.is_empty() {
        println!();
        println!("The mesh's own checks (kubectl mesh status) that fail:");
        for c in &failed_checks {
            println!(
                "{} {}  {}  {}",
                style.failed(),
                c.cluster,
                c.kind.name(),
                c.message
            );
        }
    }
    let wrong = report
        .endpoints
        .iter()
        .filter(|r| r.state == CheckState::Fail)
        .count();
    println!();
    if report.failed() {
        println!(
            "Verify failed: {wrong} of {} endpoint row(s) wrong, {} status check(s) failed, {} traffic row(s) failed.",
            report.endpoints.len(),
            failed_checks.len(),
            report
                .traffic
                .iter()
                .filter(|t| t.state == TrafficState::Failed)
                .count()
        );
    } else {
        let untested = report
            .traffic
            .iter()
            .any(|t| t.state == TrafficState::NotTested);
        println!(
            "Verified: every sidecar is told what reaches every version ({} rows){}.",
            report.endpoints.len(),
            if untested { "; traffic not tested" } else { "" }
        );
    }
}
