//! `kubectl mesh status`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use mesh_core::{
    Check, CheckKind, CheckState, ClusterRow, MeshStatus, RejoinCerts, Remedy, Role, StatusOptions,
};
use mesh_kubeconfig::{KubeconfigSource, Kubeconfigs};
use serde::Serialize;

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
        data => super::print_data(&Report::new(&mesh), data)?,
    }
    Ok(if mesh.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A token's remaining lifetime as people read it: `2d3h`, `5h12m`, `42m`, `30s`.
fn remaining(seconds: u64) -> String {
    let (d, h, m) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

fn print_text(mesh: &MeshStatus) {
    let style = Style::stdout();
    println!("model: {}", mesh.model);
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let rows: Vec<[String; 7]> = mesh
        .clusters
        .iter()
        .map(|c| {
            let expires = match (&c.token_expiry, c.token_remaining_seconds) {
                (Some(at), Some(left)) => format!("{at} ({} left)", remaining(left)),
                (at, _) => dash(at),
            };
            [
                c.cluster_id.clone(),
                c.role.to_string(),
                dash(&c.network),
                dash(&c.gateway),
                dash(&c.server),
                dash(&c.token_kind.map(|k| k.to_string())),
                expires,
            ]
        })
        .collect();
    let header = [
        "CLUSTER",
        "ROLE",
        "NETWORK",
        "GATEWAY",
        "API SERVER",
        "TOKEN",
        "TOKEN EXPIRES",
    ];
    for line in super::table_lines(header, &rows) {
        println!("{line}");
    }
    println!();
    // A link another primary of a multi-primary mesh holds: `reader→cluster`.
    let subject = |c: &Check| match &c.read_by {
        Some(reader) => format!("{reader}→{}", c.cluster),
        None => c.cluster.clone(),
    };
    let id_width = mesh
        .checks
        .iter()
        .map(|c| subject(c).chars().count())
        .max()
        .unwrap_or(0);
    let kind_width = CheckKind::ALL
        .iter()
        .map(|k| k.name().len())
        .max()
        .unwrap_or(0);
    for c in &mesh.checks {
        let mark = match c.state {
            CheckState::Pass => style.ok(),
            CheckState::Warn => style.warning(),
            CheckState::Fail => style.failed(),
        };
        println!(
            "{mark} {:<id_width$}  {:<kind_width$} {}",
            subject(c),
            c.kind.name(),
            c.message
        );
        if let Some(hint) = c.remedy.as_ref().map(render)
            && c.state != CheckState::Pass
        {
            println!("  {:<id_width$}  {:<kind_width$} → {hint}", "", "");
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

/// The status report as `-o json` and `-o yaml` print it: mesh-core's, with each remedy
/// rendered as the command to run (`hint`).
#[derive(Serialize)]
struct Report<'a> {
    model: mesh_core::cluster::Model,
    primary_context: &'a str,
    clusters: &'a [ClusterRow],
    checks: Vec<ReportCheck<'a>>,
}

/// One check of the [`Report`].
#[derive(Serialize)]
struct ReportCheck<'a> {
    cluster: &'a str,
    role: Role,
    check: CheckKind,
    state: CheckState,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    read_by: Option<&'a str>,
}

impl<'a> Report<'a> {
    fn new(mesh: &'a MeshStatus) -> Report<'a> {
        let check = |c: &'a Check| ReportCheck {
            cluster: &c.cluster,
            role: c.role,
            check: c.kind,
            state: c.state,
            message: &c.message,
            hint: c.remedy.as_ref().map(render),
            read_by: c.read_by.as_deref(),
        };
        Report {
            model: mesh.model,
            primary_context: &mesh.primary_context,
            clusters: &mesh.clusters,
            checks: mesh.checks.iter().map(check).collect(),
        }
    }
}

/// A remedy as the `kubectl mesh` command (or words) that does it.
fn render(remedy: &Remedy) -> String {
    match remedy {
        Remedy::Rejoin(join) => {
            let mut cmd = format!(
                "kubectl mesh join {} --primary {}",
                join.remote.as_deref().unwrap_or("REMOTE"),
                join.primary
            );
            if let Some(name) = &join.cluster_name {
                cmd += &format!(" --cluster-name {name}");
            }
            cmd += match join.certs {
                RejoinCerts::Bundle => " --certs DIR",
                RejoinCerts::Generate => " --certs DIR (see kubectl mesh certs generate)",
                _ => "",
            };
            if join.install {
                cmd += " --install (re-points remotePilotAddress)";
            }
            if let Some(other) = &join.or_else {
                cmd += &format!(", or {other}");
            }
            match &join.lead {
                Some(lead) => format!("{lead}: {cmd}"),
                None => cmd,
            }
        }
        Remedy::CheckCaBundle { both_clusters } => if *both_clusters {
            "kubectl mesh certs check DIR on both clusters' bundles; every cluster needs cacerts under one root"
        } else {
            "kubectl mesh certs check DIR on the bundle you plugged in"
        }
        .to_owned(),
        Remedy::GatewayAddress => {
            "check the cloud's load balancer, then re-run join (or pass --gateway-address)".into()
        }
        Remedy::Text(text) => text.clone(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_core::Rejoin;

    #[test]
    fn remaining_lifetimes_read_as_people_say_them() {
        assert_eq!(remaining(0), "0s");
        assert_eq!(remaining(59), "59s");
        assert_eq!(remaining(3599), "59m");
        assert_eq!(remaining(3600 + 12 * 60), "1h12m");
        assert_eq!(remaining(2 * 86_400 + 3 * 3600 + 59), "2d3h");
    }

    #[test]
    fn each_remedy_renders_as_its_command() {
        let mut join = Rejoin::new("cluster1");
        assert_eq!(
            render(&Remedy::Rejoin(join.clone())),
            "kubectl mesh join REMOTE --primary cluster1"
        );
        join.certs = RejoinCerts::Generate;
        assert_eq!(
            render(&Remedy::Rejoin(join.clone())),
            "kubectl mesh join REMOTE --primary cluster1 --certs DIR (see kubectl mesh certs generate)"
        );
        join.remote = Some("cluster2".into());
        join.cluster_name = Some("c2".into());
        join.certs = RejoinCerts::Bundle;
        assert_eq!(
            render(&Remedy::Rejoin(join.clone())),
            "kubectl mesh join cluster2 --primary cluster1 --cluster-name c2 --certs DIR"
        );
        join.certs = RejoinCerts::Keep;
        join.lead = Some("renew it before then".into());
        assert_eq!(
            render(&Remedy::Rejoin(join.clone())),
            "renew it before then: kubectl mesh join cluster2 --primary cluster1 --cluster-name c2"
        );
        join.lead = None;
        join.install = true;
        join.or_else = Some("helm upgrade istiod".into());
        assert_eq!(
            render(&Remedy::Rejoin(join)),
            "kubectl mesh join cluster2 --primary cluster1 --cluster-name c2 --install (re-points remotePilotAddress), or helm upgrade istiod"
        );
        assert!(
            render(&Remedy::CheckCaBundle {
                both_clusters: true
            })
            .starts_with("kubectl mesh certs check DIR on both clusters' bundles")
        );
        assert_eq!(
            render(&Remedy::CheckCaBundle {
                both_clusters: false
            }),
            "kubectl mesh certs check DIR on the bundle you plugged in"
        );
        assert!(render(&Remedy::GatewayAddress).ends_with("(or pass --gateway-address)"));
        assert_eq!(
            render(&Remedy::Text("kubectl get ns".into())),
            "kubectl get ns"
        );
    }
}
