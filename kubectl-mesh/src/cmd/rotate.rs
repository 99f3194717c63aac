//! `kubectl mesh rotate`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use mesh_core::{LinkOutcome, OldToken, RotateOptions, RotateSummary, TokenInfo};
use mesh_kubeconfig::{KubeconfigSource, Kubeconfigs};

use crate::cli::{GlobalArgs, OutputFormat};
use crate::duration::{parse_duration, parse_duration_or_days};

/// Options of `kubectl mesh rotate`.
#[derive(Debug, Args)]
#[command(after_help = "Order, per link, and never another:
  1. new token      a new token Secret (or, with --token-ttl, a TokenRequest token bound
                    to a Secret made for it, so that deleting that Secret revokes it)
  2. verify token   it authenticates as the reader account, may read what istiod reads,
                    may not write
  3. remote secret  the link's key in its own remote Secret is rewritten (conditionally)
  4. istiod sync    the stored kubeconfig authenticates and istiod reports the cluster
                    synced again in /debug/clusterz (at --istiod, else through a
                    port-forward to a running istiod pod's port 8080); when neither
                    works, a grace period and a warning that istiod's view was not checked
  5. revoke         only then: the old token's Secret is deleted (unless --keep-old),
                    with any token of kubectl-mesh's that no link uses
Rotations of one reader account's tokens take turns (Lease kubectl-mesh-rotate-<account>
in the remote). Interrupted? Run the same command again: it completes, and exactly one
token stays valid.

Exit status: 0 when every selected link was rotated or had nothing to do, 1 when one
failed (its link still holds a working token). Only links kubectl-mesh made are rotated:
for a hand-made one, `kubectl mesh join REMOTE --primary P --replace-links` takes it over.

Examples:
  # Replace cluster2's credentials in cluster1, watching istiod's own view through a
  # port-forward to the istiod pod
  kubectl mesh rotate cluster2 --primary cluster1

  # ... or at an address of istiod's debug port you give
  kubectl mesh rotate cluster2 --primary cluster1 --istiod 127.0.0.1:8080

  # Every link, with tokens that expire after 30 days (and are revocable)
  kubectl mesh rotate --all --primary cluster1 --token-ttl 720h

  # From a scheduled job: only tokens expiring within 7 days; the report as JSON
  kubectl mesh rotate --all --primary cluster1 --token-ttl 720h --if-expiring-within 7d -o json")]
pub struct RotateArgs {
    /// The kubeconfig contexts of the remotes whose links to rotate.
    #[arg(
        value_name = "REMOTE",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub remotes: Vec<String>,

    /// The context of the primary cluster (default: --context, then the current context).
    #[arg(long, value_name = "CONTEXT")]
    pub primary: Option<String>,

    /// Rotate every link of the primary (each reached through the context of your
    /// kubeconfig that names its API server).
    #[arg(long)]
    pub all: bool,

    /// Make the new tokens TokenRequest tokens that expire after this long (e.g. 720h; at
    /// least 10m), bound to a Secret made for them so that they can be revoked. Without
    /// it: a token Secret, which never expires.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub token_ttl: Option<Duration>,

    /// Keep the old token valid (do not delete its Secret); a later rotate without it
    /// revokes it.
    #[arg(long)]
    pub keep_old: bool,

    /// istiod's HTTP debug address (HOST:PORT): rotate waits until /debug/clusterz
    /// there reports the cluster synced again before it revokes the old token. Default:
    /// a port-forward of its own to a running istiod pod's port 8080 in the primary.
    #[arg(long, value_name = "ADDRESS")]
    pub istiod: Option<String>,

    /// Rotate only links whose token expires within this long (e.g. 7d, 48h); a token
    /// that never expires is left alone. For scheduled jobs.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_or_days)]
    pub if_expiring_within: Option<Duration>,

    /// How long to wait for istiod to report the cluster synced (and for a new token to
    /// be filled) before giving up without revoking anything.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    pub wait: Duration,

    /// Change nothing; say which links would be rotated.
    #[arg(long)]
    pub dry_run: bool,

    /// Output: text progress, or the report as yaml or json on stdout.
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Runs `kubectl mesh rotate`.
pub fn run(global: &GlobalArgs, args: &RotateArgs) -> anyhow::Result<ExitCode> {
    let kubeconfigs = Kubeconfigs::load(&KubeconfigSource::from_flag(global.kubeconfig.clone()))?;
    let primary =
        kubeconfigs.context_or_current(args.primary.as_deref().or(global.context.as_deref()))?;
    if args.remotes.contains(&primary) {
        bail!("{primary} is the primary; name the remotes whose links to rotate");
    }
    let remotes: Vec<&str> = args.remotes.iter().map(String::as_str).collect();
    let mut opts = RotateOptions::new(&primary, &remotes);
    opts.namespace = global.namespace.clone();
    opts.all = args.all;
    opts.token_ttl = args.token_ttl;
    opts.keep_old = args.keep_old;
    opts.istiod = args.istiod.clone();
    opts.if_expiring_within = args.if_expiring_within;
    opts.dry_run = args.dry_run;
    opts.request_timeout = global.request_timeout();
    opts.wait = args.wait;
    let runtime = super::runtime()?;
    let plan = crate::cli::PlanArgs {
        dry_run: args.dry_run,
        output: args.output,
        yes: true,
    };
    let summary = super::apply(&runtime, &plan, &opts.interrupt, async |progress| {
        mesh_core::rotate(&kubeconfigs, &opts, progress).await
    })
    .map_err(|e| crate::hints::explain(e, &primary))?;
    match args.output {
        OutputFormat::Text => print_summary(&summary),
        data => super::print_data(&summary, data)?,
    }
    Ok(if summary.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn expiry(t: &TokenInfo) -> String {
    match &t.expires_at {
        Some(at) => format!("expires {at}"),
        None => "never expires".into(),
    }
}

fn print_summary(summary: &RotateSummary) {
    let rotated: Vec<&str> = summary
        .links
        .iter()
        .filter(|l| matches!(l.outcome, LinkOutcome::Rotated | LinkOutcome::Resumed))
        .map(|l| l.cluster_name.as_str())
        .collect();
    for l in &summary.links {
        let head = format!(
            "{} (cluster {}, Secret {})",
            l.cluster, l.cluster_name, l.secret
        );
        match l.outcome {
            LinkOutcome::Rotated | LinkOutcome::Resumed => {
                let new = l.new_token.as_ref().map(expiry).unwrap_or_default();
                let old = match &l.old_token_state {
                    OldToken::Revoked => "revoked".to_owned(),
                    OldToken::Kept => "kept valid (--keep-old)".to_owned(),
                    OldToken::NotRevoked(why) => format!("not revoked: {why}"),
                    OldToken::Untouched => "untouched".to_owned(),
                };
                let verb = if l.outcome == LinkOutcome::Resumed {
                    "completed an interrupted rotation"
                } else {
                    "rotated"
                };
                println!(
                    "{head}: {verb}; new token {new}; old token ({}) {old}{}",
                    expiry(&l.old_token),
                    if l.istiod_checked {
                        ""
                    } else {
                        "; istiod's view was not checked"
                    }
                );
            }
            LinkOutcome::NotExpiring => println!(
                "{head}: not rotated, its token {} (outside the window)",
                expiry(&l.old_token)
            ),
            LinkOutcome::WouldRotate => println!(
                "{head}: would be rotated (its token {})",
                expiry(&l.old_token)
            ),
            LinkOutcome::Failed => println!(
                "{head}: FAILED: {} (the link still holds a working token)",
                l.error.as_deref().unwrap_or("unknown error")
            ),
        }
    }
    if !summary.dry_run {
        if rotated.is_empty() {
            println!("Rotated: none.");
        } else {
            println!("Rotated: {}.", rotated.join(", "));
        }
    }
    for w in &summary.warnings {
        eprintln!("warning: {w}");
    }
}
