//! `cargo xtask tidy`: keeps ARCHITECTURE.md true to the code.
//!
//! The map names code in backticks: modules (`cmd/join.rs`), types (`MeshNetworks`),
//! functions (`cluster::read_facts`), constants. When the code moves and the map does
//! not, the map lies. This check reads every backticked span of ARCHITECTURE.md, keeps
//! those that look like code names (a path with a source extension, a `a::b` path, a
//! snake_case or CamelCase identifier) and fails when one names nothing in the
//! workspace: no file at that path, no word of that name in any `.rs` file.
//!
//! Spans that are prose, commands, flags, Kubernetes object names or values (anything
//! with a space, a leading `-`, a `:`/`=`/`"` outside a `::` path, a hyphenated word)
//! are not code names and are not checked: the check errs on the side of silence, so a
//! failure always points at a real stale name.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Extensions of files a backticked path may name.
const FILE_EXTENSIONS: &[&str] = &["rs", "md", "toml", "yaml", "json", "sh"];

/// One name the map uses, as it should be found in the workspace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum CodeName {
    /// A file or directory path (`mesh-core/src/join.rs`, `cmd/mod.rs`, `tests/common`).
    Path(String),
    /// Identifiers that must each occur as a word in some `.rs` file (`cluster`,
    /// `read_facts` for `cluster::read_facts`).
    Words(Vec<String>),
}

/// Classifies one backticked span; `None` when it is not a code name.
///
/// ```
/// use xtask::tidy::{CodeName, code_name};
/// assert_eq!(code_name("cluster::read_facts"),
///     Some(CodeName::Words(vec!["cluster".into(), "read_facts".into()])));
/// assert_eq!(code_name("kubectl mesh join"), None);
/// ```
pub fn code_name(span: &str) -> Option<CodeName> {
    let span = span.trim();
    if span.is_empty() || span.chars().any(char::is_whitespace) || span.starts_with('-') {
        return None;
    }
    // A path: has a slash and ends in a source extension, or is a crate-relative dir.
    if span.contains('/') {
        let last = span
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default();
        let is_file = last
            .rsplit_once('.')
            .is_some_and(|(stem, ext)| !stem.is_empty() && FILE_EXTENSIONS.contains(&ext));
        let is_glob = span.contains('*') || span.contains('<');
        return (is_file && !is_glob && !span.contains(':')).then(|| CodeName::Path(span.into()));
    }
    if let Some((_, ext)) = span.rsplit_once('.')
        && FILE_EXTENSIONS.contains(&ext)
        && !span.contains("::")
    {
        return Some(CodeName::Path(span.into()));
    }
    // A Rust path or identifier, possibly called: `a::b::c`, `f()`, `Type::method`.
    let bare = span.strip_suffix("()").unwrap_or(span);
    let segments: Vec<&str> = bare.split("::").collect();
    if segments.iter().any(|s| !is_identifier(s)) {
        return None;
    }
    if segments.len() == 1 && !looks_like_code(segments[0]) {
        return None;
    }
    Some(CodeName::Words(
        segments.into_iter().map(str::to_owned).collect(),
    ))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A lone identifier is a code name when it cannot be an English or Kubernetes word:
/// it has an underscore between lowercase letters (`read_facts`), or is CamelCase with
/// a lowercase letter after an inner capital (`MeshNetworks`, not `AUTO` or `Istio`).
fn looks_like_code(s: &str) -> bool {
    let snake = s.contains('_') && s.chars().any(|c| c.is_ascii_lowercase());
    let camel = s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars().skip(1).any(|c| c.is_ascii_uppercase())
        && s.chars().any(|c| c.is_ascii_lowercase())
        && !s.contains('_');
    snake || camel
}

/// Every backticked span of a Markdown text, outside fenced code blocks.
pub fn backticked(markdown: &str) -> Vec<String> {
    let mut spans = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut parts = line.split('`');
        parts.next();
        while let (Some(inside), Some(_)) = (parts.next(), parts.next()) {
            spans.push(inside.to_owned());
        }
    }
    spans
}

/// What the workspace holds: its files (relative paths) and the words of its Rust code.
pub struct Workspace {
    files: Vec<PathBuf>,
    words: BTreeSet<String>,
    /// Every `.rs` file's text, for file names the code makes at run time.
    code: String,
}

impl Workspace {
    /// Reads the files git tracks (and untracked ones it does not ignore) under `root`.
    pub fn read(root: &Path) -> Result<Workspace> {
        let out = std::process::Command::new("git")
            .args(["ls-files", "--cached", "--others", "--exclude-standard"])
            .current_dir(root)
            .output()
            .context("running git ls-files")?;
        if !out.status.success() {
            bail!("git ls-files failed in {}", root.display());
        }
        let mut files = Vec::new();
        let mut words = BTreeSet::new();
        let mut code = String::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let path = PathBuf::from(line);
            if path.extension().is_some_and(|e| e == "rs")
                && let Ok(text) = std::fs::read_to_string(root.join(&path))
            {
                words.extend(
                    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .filter(|w| !w.is_empty())
                        .map(str::to_owned),
                );
                code.push_str(&text);
            }
            files.push(path);
        }
        Ok(Workspace { files, words, code })
    }

    /// Whether `name` names something here. A relative path matches a file or directory
    /// whose path ends with it (the map says `cmd/join.rs` inside the kubectl-mesh section);
    /// a bare file name also matches a file the code names (`testbed.json`, written at
    /// run time).
    pub fn has(&self, name: &CodeName) -> bool {
        match name {
            CodeName::Path(p) => {
                let wanted = Path::new(p.trim_end_matches('/'));
                self.files
                    .iter()
                    .any(|f| f.ancestors().any(|a| a.ends_with(wanted)))
                    || (!p.contains('/') && self.code.contains(&format!("\"{p}\"")))
            }
            CodeName::Words(ws) => ws.iter().all(|w| self.words.contains(w)),
        }
    }
}

/// The backticked code names of `ARCHITECTURE.md` under `root` that name nothing.
pub fn stale_names(root: &Path) -> Result<Vec<String>> {
    let path = root.join("ARCHITECTURE.md");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let workspace = Workspace::read(root)?;
    let mut stale: Vec<String> = backticked(&text)
        .into_iter()
        .filter(|span| code_name(span).is_some_and(|name| !workspace.has(&name)))
        .collect();
    stale.sort();
    stale.dedup();
    Ok(stale)
}

/// `cargo xtask tidy`: fails listing every stale name of ARCHITECTURE.md.
pub fn run(root: &Path) -> Result<()> {
    let stale = stale_names(root)?;
    if !stale.is_empty() {
        bail!(
            "ARCHITECTURE.md names {} thing(s) the workspace does not have (rename them in \
             the map, or in the code): {}",
            stale.len(),
            stale
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_are_told_from_prose_and_values() {
        let words = |ws: &[&str]| Some(CodeName::Words(ws.iter().map(|w| w.to_string()).collect()));
        let cases: &[(&str, Option<CodeName>)] = &[
            ("cluster::read_facts", words(&["cluster", "read_facts"])),
            (
                "MeshNetworks::from_config_map",
                words(&["MeshNetworks", "from_config_map"]),
            ),
            ("read_facts()", words(&["read_facts"])),
            ("MeshNetworks", words(&["MeshNetworks"])),
            ("cmd/mod.rs", Some(CodeName::Path("cmd/mod.rs".into()))),
            ("install.rs", Some(CodeName::Path("install.rs".into()))),
            (
                "kubectl-mesh/tests/install.rs",
                Some(CodeName::Path("kubectl-mesh/tests/install.rs".into())),
            ),
            // not code names
            ("kubectl mesh join", None),
            ("--install", None),
            ("istio/multiCluster: \"true\"", None),
            ("istio-remote-secret-<name>", None),
            ("<cache>/tools/<name>-<version>/", None),
            ("cacerts", None),
            ("Istio", None),
            ("AUTO_PASSTHROUGH", None),
            ("CLUSTER_ID", None),
            ("global.network", None),
            ("meta.helm.sh/release-name", None),
            ("value<TAB>help", None),
        ];
        for (span, want) in cases {
            assert_eq!(&code_name(span), want, "{span}");
        }
    }

    #[test]
    fn backticks_inside_fences_are_ignored() {
        let md = "a `x_y` b `Z`\n```\n`not_this`\n```\nc `last_one`";
        assert_eq!(backticked(md), ["x_y", "Z", "last_one"]);
    }

    #[test]
    fn a_renamed_function_is_reported_and_an_existing_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let git = |args: &[&str]| {
            assert!(
                std::process::Command::new("git")
                    .args(args)
                    .current_dir(root)
                    .status()
                    .unwrap()
                    .success()
            )
        };
        git(&["init", "-q"]);
        std::fs::create_dir_all(root.join("core/src")).unwrap();
        std::fs::write(
            root.join("core/src/lib.rs"),
            "pub fn read_facts() { let _ = \"state.json\"; }\n",
        )
        .unwrap();
        std::fs::write(
            root.join("ARCHITECTURE.md"),
            "`core/src/lib.rs` has `read_facts` and `gone_away`, in `core/src/old.rs`; \
             it writes `state.json`, not `other.json`.\n",
        )
        .unwrap();
        assert_eq!(
            stale_names(root).unwrap(),
            ["core/src/old.rs", "gone_away", "other.json"]
        );
        let err = run(root).unwrap_err().to_string();
        assert!(err.contains("`gone_away`"), "{err}");
    }

    #[test]
    fn the_real_map_names_only_what_exists() {
        let root = crate::dist::workspace_root();
        assert_eq!(stale_names(&root).unwrap(), Vec::<String>::new());
    }
}
