//! `kubectl mesh unjoin`.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use mesh_core::{UnjoinOptions, UnjoinSummary};
use mesh_kubeconfig::{KubeconfigSource, Kubeconfigs};

use crate::cli::{GlobalArgs, OutputFormat, PlanArgs};

/// Options of `kubectl mesh unjoin`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  # See what would go, then take cluster2 out of cluster1's mesh
  kubectl mesh unjoin cluster2 --primary cluster1 --dry-run
  kubectl mesh unjoin cluster2 --primary cluster1

  # Also remove cluster2's cacerts, network label, cross-network Gateway and reader account
  kubectl mesh unjoin cluster2 --primary cluster1 --purge --yes

  # A cluster that is gone: its context no longer answers; the primary is cleaned anyway
  kubectl mesh unjoin old-cluster --primary cluster1 --cluster-name old-cluster --yes")]
pub struct UnjoinArgs {
    /// The kubeconfig context of the remote cluster to take out of the mesh.
    #[arg(value_name = "REMOTE")]
    pub remote: String,

    /// The context of the primary cluster (default: --context, then the current context).
    #[arg(long, value_name = "CONTEXT")]
    pub primary: Option<String>,

    /// The remote's cluster ID, as join named it (default: REMOTE as a DNS-1123 label).
    #[arg(long, value_name = "NAME")]
    pub cluster_name: Option<String>,

    /// Also remove what join set up in the remote: cacerts, the network label and
    /// control-plane annotation, the cross-network Gateway, the reader ServiceAccount and
    /// its RBAC (each only if kubectl-mesh made it) — and, when no remote is left, the
    /// primary's own cacerts, label, Gateway, meshNetworks entry and the istiod-gateway /
    /// istiod-vs that `join --install` exposes istiod with. Istio installed by
    /// `join --install` stays: its helm releases are yours to `helm uninstall`.
    /// Only what is provably this remote's goes: with no remote secret for its cluster
    /// name and no mark of its join (meshNetworks entry, the remote's control-plane
    /// annotation), --purge refuses and lists what you may remove by hand; what another
    /// primary still uses (or may: one it cannot read) stays, with a warning.
    #[arg(long)]
    pub purge: bool,

    /// Dry run, output and confirmation, as for every command that changes clusters.
    #[command(flatten)]
    pub plan: PlanArgs,
}

/// Runs `kubectl mesh unjoin`.
pub fn run(global: &GlobalArgs, args: &UnjoinArgs) -> anyhow::Result<ExitCode> {
    let kubeconfigs = Kubeconfigs::load(&KubeconfigSource::from_flag(global.kubeconfig.clone()))?;
    let primary =
        kubeconfigs.context_or_current(args.primary.as_deref().or(global.context.as_deref()))?;
    let request_timeout = global.request_timeout();
    let mut opts = UnjoinOptions::new(&primary, &args.remote);
    opts.namespace = global.namespace.clone();
    opts.cluster_name = args.cluster_name.clone();
    opts.purge = args.purge;
    opts.dry_run = args.plan.dry_run;
    opts.request_timeout = request_timeout;
    let runtime = super::runtime()?;

    // On a terminal, show what goes and ask before removing anything.
    if !args.plan.dry_run && !args.plan.yes {
        let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        if !interactive {
            bail!(
                "unjoin changes {primary} and {}; pass --yes to confirm without a terminal (or --dry-run to see the plan)",
                args.remote
            );
        }
        let mut preview = opts.clone();
        preview.dry_run = true;
        let plan = runtime
            .block_on(mesh_core::unjoin(
                &kubeconfigs,
                &preview,
                &mesh_core::NoProgress,
            ))
            .map_err(|e| crate::hints::explain(e, &primary))?;
        if plan.changes.is_empty() {
            print_summary(&plan);
            return Ok(ExitCode::SUCCESS);
        }
        let prompt = format!("Remove these from {primary} and {}?", args.remote);
        if !super::confirm_plan(&plan.changes, &plan.warnings, &prompt)? {
            return Ok(ExitCode::FAILURE);
        }
    }

    let summary = super::apply(&runtime, &args.plan, &opts.interrupt, async |progress| {
        mesh_core::unjoin(&kubeconfigs, &opts, progress).await
    })
    .map_err(|e| crate::hints::explain(e, &primary))?;
    match args.plan.output {
        OutputFormat::Text => print_summary(&summary),
        data => super::print_data(&summary, data)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(summary: &UnjoinSummary) {
    let verb = if summary.dry_run {
        "would be removed"
    } else {
        "removed"
    };
    if summary.changes.is_empty() {
        println!(
            "Nothing to remove: cluster {} ({}) is not joined to {}{}.",
            summary.cluster_name,
            summary.remote,
            summary.primary,
            if summary.remote_reachable {
                ""
            } else {
                " (the remote was not reachable)"
            }
        );
    } else {
        println!("{} change(s) {verb}:", summary.changes.len());
        for c in &summary.changes {
            println!("  {}: {}", c.cluster, c.description);
        }
    }
    for w in &summary.warnings {
        eprintln!("warning: {w}");
    }
}
