//! `kubectl mesh version`.

use std::process::ExitCode;

use clap::Args;

/// Options of `kubectl mesh version`.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = VersionFormat::Text)]
    pub output: VersionFormat,
}

/// Formats `kubectl mesh version` can print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VersionFormat {
    /// One line of text.
    Text,
    /// A JSON object with `version`, `gitCommit` and `target`.
    Json,
}

/// `kubectl mesh version -o json`.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionInfo {
    /// The crate version, e.g. `0.1.0`.
    version: &'static str,
    /// The git commit it was built from.
    git_commit: &'static str,
    /// The target triple it was built for.
    target: &'static str,
}

/// Prints the version, git commit and build target.
pub fn run(args: &VersionArgs) -> anyhow::Result<ExitCode> {
    let version = env!("CARGO_PKG_VERSION");
    let commit = env!("KUBECTL_MESH_GIT_COMMIT");
    let target = env!("KUBECTL_MESH_TARGET");
    match args.output {
        VersionFormat::Text => {
            println!("kubectl-mesh {version} (commit {commit}, {target})");
        }
        VersionFormat::Json => {
            let info = VersionInfo {
                version,
                git_commit: commit,
                target,
            };
            println!("{}", serde_json::to_string_pretty(&info)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
