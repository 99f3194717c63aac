//! `kubectl mesh`: join Kubernetes clusters into one multi-network Istio mesh.
//!
//! This binary is glue: it parses arguments, renders progress and output, and maps
//! errors to exit codes. The work happens in the `mesh-*` library crates.

mod cli;
mod cmd;
mod progress;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.global.verbose);
    match cmd::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Diagnostics go to stderr; `-v` shows info, `-vv` debug, `-vvv` trace.
/// `RUST_LOG` overrides the level when set.
fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(cli::color_enabled())
        .with_target(false)
        .init();
}
