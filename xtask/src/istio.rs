//! Istio pieces of the test bed: helm, Istio's charts and istiod, built from Go modules.

use std::path::PathBuf;

/// The pinned helm release.
pub const HELM_VERSION: &str = "v3.22.0";

/// Directories of the Istio-side tools that are built, for `PATH`.
pub fn tool_dirs() -> Vec<PathBuf> {
    [crate::tools::tool_dir("helm", HELM_VERSION)]
        .into_iter()
        .filter(|d| d.is_dir())
        .collect()
}
