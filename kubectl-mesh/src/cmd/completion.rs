//! `kubectl mesh completion SHELL`: static completion scripts for the `kubectl-mesh` command.
//!
//! `kubectl mesh …` itself is completed by kubectl's own completion script, which asks the
//! `kubectl_complete-mesh` executable (see [`crate::complete`]); these scripts serve
//! shells that call the binary directly as `kubectl-mesh`.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::Cli;

/// Options of `kubectl mesh completion`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  # Complete `kubectl-mesh` in bash (and `kubectl mesh` with kubectl's own script, once
  # kubectl_complete-mesh is on PATH: see the README)
  source <(kubectl mesh completion bash)

  # zsh: write the script into a directory of your $fpath
  kubectl mesh completion zsh > \"${fpath[1]}/_kubectl-mesh\"

  # fish
  kubectl mesh completion fish > ~/.config/fish/completions/kubectl-mesh.fish")]
pub struct CompletionArgs {
    /// The shell to print the completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Prints the completion script for the chosen shell.
pub fn run(args: &CompletionArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = Cli::command().name("kubectl-mesh").bin_name("kubectl-mesh");
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "kubectl-mesh", &mut script);
    match std::io::stdout().lock().write_all(&script) {
        // `kubectl mesh completion bash | head` is not an error.
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}
