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
