//! `kubectl mesh status`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use mesh_core::{CheckState, MeshStatus, StatusOptions};
use mesh_kubeconfig::{KubeconfigSource, Kubeconfigs};

use crate::cli::{GlobalArgs, OutputFormat};
use crate::duration::parse_duration_or_days;
use crate::style::Style;

/// Options of `kubectl mesh status`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 when every check passes (warnings allowed), 1 when one fails.

Examples:
  # The mesh of cluster1's istiod, and whether every link works
  kubectl mesh status --primary cluster1

  # One remote only, for scripts
  kubectl mesh status --primary cluster1 --cluster-name cluster2 -o json"
)]
pub struct StatusArgs {
    /// The context of the primary cluster (default: --context, then the current context).
    #[arg(long, value_name = "CONTEXT")]
    pub primary: Option<String>,

    /// Check only this remote (its cluster ID); repeatable (default: every remote).
    #[arg(long, value_name = "NAME")]
    pub cluster_name: Vec<String>,

    /// Warn when a link's token expires within this long.
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_duration_or_days)]
    pub expiry_warning: Duration,

    /// Check links whose stored kubeconfig uses a plain http:// server instead of
    /// reporting them failed without contacting them (their token travels in clear text).
    #[arg(long)]
    pub allow_plain_http: bool,

    /// Output: a table and a check list, or the report as json or yaml on stdout.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Runs `kubectl mesh status`.
pub fn run(global: &GlobalArgs, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let kubeconfigs = Kubeconfigs::load(&KubeconfigSource::from_flag(global.kubeconfig.clone()))?;
    let primary =
        kubeconfigs.context_or_current(args.primary.as_deref().or(global.context.as_deref()))?;
    let mut opts = StatusOptions::new(&primary);
    opts.namespace = global.namespace.clone();
    opts.clusters = args.cluster_name.clone();
    opts.expiry_warning = args.expiry_warning;
    opts.request_timeout = global.request_timeout();
    opts.allow_plain_http = args.allow_plain_http;
    let runtime = super::runtime()?;
    let mesh = runtime.block_on(mesh_core::status(&kubeconfigs, &opts))?;
    match args.output {
        OutputFormat::Text => print_text(&mesh),
        data => super::print_data(&mesh, data)?,
    }
    Ok(if mesh.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_text(mesh: &MeshStatus) {
    let style = Style::stdout();
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let rows: Vec<[String; 6]> = mesh
        .clusters
        .iter()
        .map(|c| {
            [
                c.cluster_id.clone(),
                c.role.to_string(),
                dash(&c.network),
                dash(&c.gateway),
                dash(&c.server),
                dash(&c.token_expiry),
            ]
        })
        .collect();
    let header = [
        "CLUSTER",
        "ROLE",
        "NETWORK",
        "GATEWAY",
        "API SERVER",
        "TOKEN EXPIRES",
    ];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    println!("{}", line(&header.map(str::to_owned)));
    for r in &rows {
        println!("{}", line(r));
    }
    println!();
    let id_width = mesh
        .checks
        .iter()
        .map(|c| c.cluster.len())
        .max()
        .unwrap_or(0);
    for c in &mesh.checks {
        let mark = match c.state {
            CheckState::Pass => style.ok(),
            CheckState::Warn => style.warning(),
            CheckState::Fail => style.failed(),
        };
        println!(
            "{mark} {:<id_width$}  {:<13} {}",
            c.cluster,
            c.kind.name(),
            c.message
        );
        if let Some(hint) = &c.hint
            && c.state != CheckState::Pass
        {
            println!("  {:<id_width$}  {:<13} → {hint}", "", "");
        }
    }
    let failed = mesh
        .checks
        .iter()
        .filter(|c| c.state == CheckState::Fail)
        .count();
    let warned = mesh
        .checks
        .iter()
        .filter(|c| c.state == CheckState::Warn)
        .count();
    println!();
    if failed == 0 {
        println!(
            "All {} checks passed{}.",
            mesh.checks.len(),
            if warned > 0 {
                format!(" ({warned} warning(s))")
            } else {
                String::new()
            }
        );
    } else {
        println!("{failed} of {} checks failed.", mesh.checks.len());
    }
}
