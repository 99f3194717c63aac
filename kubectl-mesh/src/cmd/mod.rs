//! One module per command; each turns parsed arguments into calls on the libraries.

pub mod certs;
pub mod completion;
pub mod join;
pub mod remote_secret;
pub mod rotate;
pub mod status;
pub mod unjoin;
pub mod verify;
pub mod version;

use std::process::ExitCode;

use crate::cli::{Cli, Command, OutputFormat, PlanArgs};
use crate::progress::Renderer;

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

/// Runs `work` (a join or an unjoin) with its progress on stderr when the output is text,
/// and with SIGINT/SIGTERM raising `interrupt`: no new step starts, a running helm is
/// stopped and waited for, and `work` fails with [`mesh_core::Error::Interrupted`]
/// (which `main` turns into exit code 128 + the signal).
pub fn apply<T>(
    runtime: &tokio::runtime::Runtime,
    plan: &PlanArgs,
    interrupt: &mesh_core::Interrupt,
    work: impl AsyncFnOnce(&Renderer) -> mesh_core::Result<T>,
) -> mesh_core::Result<T> {
    let renderer = Renderer::new(plan.output == OutputFormat::Text);
    let _signals = runtime.spawn(raise_on_signal(interrupt.clone()));
    let result = runtime.block_on(work(&renderer));
    renderer.finish();
    result
}

/// A text table: the header and each row as a line, columns padded to their widest cell
/// and separated by two spaces, trailing space trimmed.
pub fn table_lines<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> Vec<String> {
    let mut widths = header.map(str::len);
    for r in rows {
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
    std::iter::once(line(&header.map(str::to_owned)))
        .chain(rows.iter().map(|r| line(r)))
        .collect()
}

/// Prints `report` on stdout as JSON or YAML; `format` [`OutputFormat::Text`] prints
/// nothing (each command writes its own text).
pub fn print_data<T: serde::Serialize>(report: &T, format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Text => {}
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(report)?),
        OutputFormat::Yaml => print!("{}", serde_saphyr::to_string(report)?),
    }
    Ok(())
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
        Command::Rotate(args) => rotate::run(&cli.global, &args),
        Command::Verify(args) => verify::run(&cli.global, &args),
        Command::Completion(args) => completion::run(&args),
    }
}
