//! Joins a remote to a primary, both given as kubeconfig contexts, and reacts to a
//! typed preflight problem: when the clusters' roots differ, it says how to make one
//! root — by matching the problem's kind, never its message.
//!
//! ```text
//! cargo run -p mesh-core --example join_two -- PRIMARY REMOTE [CERTS_DIR]
//! ```
//!
//! With `CERTS_DIR` (from `kubectl mesh certs generate --out CERTS_DIR PRIMARY REMOTE`),
//! each cluster's `cacerts` is made from `CERTS_DIR/<context>`. Nothing is changed
//! unless `--apply` is the last argument: it is a dry run by default.

// An example is a program, not library code: it prints.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use mesh_certs::CaBundle;
use mesh_core::{Error, EventKind, JoinOptions, ProblemKind, Remote, join};
use mesh_kubeconfig::{KubeconfigSource, Kubeconfigs};

#[tokio::main]
async fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let apply = args.last().is_some_and(|a| a == "--apply");
    if apply {
        args.pop();
    }
    let (primary, remote, certs) = match args.as_slice() {
        [p, r] => (p, r, None),
        [p, r, dir] => (p, r, Some(std::path::PathBuf::from(dir))),
        _ => {
            eprintln!("usage: join_two PRIMARY REMOTE [CERTS_DIR] [--apply]");
            return ExitCode::from(2);
        }
    };
    match run(primary, remote, certs.as_deref(), !apply).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    primary: &str,
    remote: &str,
    certs: Option<&std::path::Path>,
    dry_run: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let kubeconfigs = Kubeconfigs::load(&KubeconfigSource::Default)?;
    let mut options = JoinOptions::new(primary, &[]);
    options.dry_run = dry_run;
    let mut joining = Remote::new(remote);
    if let Some(dir) = certs {
        options.primary.certs = Some(CaBundle::load_dir(&dir.join(primary))?);
        joining = joining.with_certs(CaBundle::load_dir(&dir.join(remote))?);
    }
    options.remotes.push(joining);

    let progress = |e: mesh_core::Event| {
        if let EventKind::Changed(what) = &e.kind {
            println!("{}: {what}", e.cluster);
        }
    };
    match join(&kubeconfigs, &options, &progress).await {
        Ok(summary) => {
            let verb = if summary.dry_run {
                "would change"
            } else {
                "changed"
            };
            println!("{} object(s) {verb}", summary.changes.len());
            Ok(())
        }
        Err(Error::Preflight { problems }) => {
            for p in &problems {
                // The kind says what to do; the message is only shown.
                match p.kind {
                    ProblemKind::RootsDiffer | ProblemKind::StoredRootDiffers => eprintln!(
                        "{} [{}]: the clusters must share one root CA; generate both \
                         bundles from one root (kubectl mesh certs generate --out DIR {primary} {remote}) \
                         and pass DIR",
                        p.cluster,
                        p.kind.id()
                    ),
                    _ => eprintln!("{} [{}]: {}", p.cluster, p.kind.id(), p.message),
                }
            }
            Err(format!("preflight found {} problem(s)", problems.len()).into())
        }
        Err(other) => Err(other.into()),
    }
}
