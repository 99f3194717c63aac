//! Real krew, for the test that installs the built archive as a user would.
//!
//! krew is built from `sigs.k8s.io/krew` like the other tools (see [`crate::tools`]); the
//! test runs it as the kubectl plugin `kubectl-krew`, fully offline: `install --manifest
//! --archive` needs neither the network nor an index.

use std::path::PathBuf;

use anyhow::Result;

use crate::tools::{self, WrapperModule};

/// The pinned krew release.
pub const KREW_VERSION: &str = "v0.4.3";

/// Makes sure krew is built (as `krew` and as the kubectl plugin `kubectl-krew`);
/// returns its directory.
pub fn ensure_krew() -> Result<PathBuf> {
    let v = "sigs.k8s.io/krew/internal/version";
    tools::ensure(&WrapperModule {
        name: "krew",
        version: KREW_VERSION.to_owned(),
        go_mod: format!(
            "module kubectl-mesh.local/testbed/krew\n\ngo 1.26.0\n\nrequire sigs.k8s.io/krew {KREW_VERSION}\n\ntool sigs.k8s.io/krew/cmd/krew\n"
        ),
        files: vec![],
        packages: vec!["sigs.k8s.io/krew/cmd/krew".into()],
        ldflags: format!("-s -w -X {v}.gitTag={KREW_VERSION} -X {v}.gitCommit={KREW_VERSION}"),
        binaries: vec!["krew"],
        also: vec!["kubectl-krew"],
        finish: Some(|_src, dir| {
            std::fs::copy(dir.join("krew"), dir.join("kubectl-krew"))?;
            Ok(())
        }),
    })
}
