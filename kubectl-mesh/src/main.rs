//! `kubectl mesh`: join Kubernetes clusters into one multi-network Istio mesh.
//!
//! This binary is glue: it parses arguments, renders progress and output, and maps
//! errors to exit codes. The work happens in the `mesh-*` library crates.

// Doc comments on the clap types are the --help text, where `<name>` is a placeholder
// for the user, not an HTML tag.
#![allow(rustdoc::invalid_html_tags)]

mod cli;
mod cmd;
mod complete;
mod duration;
mod hints;
mod progress;
mod style;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // kubectl's plugin-completion protocol, before clap sees the words being completed.
    if let Some(words) = complete::requested() {
        return complete::run(&words);
    }
    let cli = cli::Cli::parse();
    init_tracing(cli.global.verbose);
    match cmd::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", hints::error(&err));
            exit_code(&err)
        }
    }
}

/// The exit code of a failed command: 128 + the signal for a plan a signal stopped (130,
/// 143, as shells report it), else 1.
fn exit_code(err: &anyhow::Error) -> ExitCode {
    match err.downcast_ref::<mesh_core::Error>() {
        Some(mesh_core::Error::Interrupted { signal, .. }) => {
            ExitCode::from(u8::try_from(128 + signal).unwrap_or(1))
        }
        _ => ExitCode::FAILURE,
    }
}

/// Diagnostics go to stderr; `-v` shows info, `-vv` debug, `-vvv` trace for kubectl-mesh's
/// own crates (and debug for the Kubernetes client). Transport crates (TLS, HTTP) stay at
/// warnings: their traces would dump request bytes. `RUST_LOG` overrides all of this.
fn init_tracing(verbose: u8) {
    let ours = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let client = if verbose >= 2 { "debug" } else { ours };
    let level = format!(
        "warn,kubectl_mesh={ours},mesh_core={ours},mesh_kubeconfig={ours},mesh_certs={ours},kube_client={client},kube={client}"
    );
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(style::color_enabled())
        .with_target(false)
        .init();
}
