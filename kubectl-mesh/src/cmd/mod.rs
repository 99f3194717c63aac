//! One module per command; each turns parsed arguments into calls on the libraries.

pub mod certs;
pub mod completion;
pub mod join;
pub mod remote_secret;
pub mod status;
pub mod unjoin;
pub mod version;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

/// The async runtime of the commands that talk to several clusters at once.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Raises `interrupt` on the first SIGINT or SIGTERM, so that the running plan stops
/// at its next step (exit code 128 + the signal: 130, 143).
pub async fn raise_on_signal(interrupt: mesh_core::Interrupt) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    let number = tokio::select! {
        _ = int.recv() => 2,
        _ = term.recv() => 15,
    };
    tracing::info!(signal = number, "stopping: no new step starts");
    interrupt.raise(number);
}

/// The exit code of a command stopped by `signal`: 128 + its number, as shells report it.
pub fn interrupted_exit(signal: i32) -> ExitCode {
    ExitCode::from(u8::try_from(128 + signal).unwrap_or(1))
}

/// Shows a dry run's plan (which cluster gets which change) on stderr and asks
/// `prompt`; true when the user confirms.
pub fn confirm_plan(
    changes: &[mesh_core::Change],
    warnings: &[String],
    prompt: &str,
) -> anyhow::Result<bool> {
    use anyhow::Context;
    eprintln!("The plan:");
    for c in changes {
        eprintln!(
            "  {}: {}",
            c.cluster,
            c.description.trim_start_matches("would have ")
        );
    }
    for w in warnings {
        eprintln!("  warning: {w}");
    }
    let go = dialoguer::Confirm::new()
        .with_prompt(prompt)
        .default(false)
        .interact()
        .context("reading the confirmation")?;
    if !go {
        eprintln!("Nothing was changed.");
    }
    Ok(go)
}

/// Runs the chosen command and returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Version(args) => version::run(&args),
        Command::RemoteSecret(args) => remote_secret::run(&cli.global, &args),
        Command::Certs(args) => certs::run(&args),
        Command::Join(args) => join::run(&cli.global, &args),
        Command::Unjoin(args) => unjoin::run(&cli.global, &args),
        Command::Status(args) => status::run(&cli.global, &args),
        Command::Completion(args) => completion::run(&args),
    }
}
