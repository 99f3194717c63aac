//! `cargo xtask dist`: the release archive krew installs, its checksum and the krew manifest.
//!
//! For each target it builds `kubectl-mesh` with the release profile and writes
//! `<out>/kubectl-mesh_<version>_<os>_<arch>.tar.gz` (the binary, LICENSE, README.md),
//! `<archive>.sha256` (`sha256sum` format), and `<index>/plugins/mesh.yaml`: a krew
//! `Plugin` manifest with one platform per target, pointing at the GitHub release of the
//! version. The repository root is the default index, so the repository itself is a
//! custom krew index.
//!
//! Archives are reproducible: entries sorted, owner root, fixed modes, modification time
//! `SOURCE_DATE_EPOCH` (else 0), gzip without a name or time — the checksum changes only
//! when the files do. A manifest of the same version already in the index keeps its
//! platforms for targets not built now, so one run per target (say, one CI job per
//! platform) adds up to one manifest.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The plugin's name in krew (`kubectl krew install mesh`, `kubectl mesh`).
pub const PLUGIN: &str = "mesh";
/// The binary krew links onto `PATH`.
pub const BINARY: &str = "kubectl-mesh";
/// The project's home page; releases live under it.
pub const HOMEPAGE: &str = "https://github.com/kubectl-mesh/kubectl-mesh";
/// krew's manifest API version.
pub const KREW_API_VERSION: &str = "krew.googlecontainertools.github.com/v1alpha2";
/// What `kubectl krew search` shows; krew-index asks for at most 50 characters.
pub const SHORT_DESCRIPTION: &str = "Join clusters into one multi-network Istio mesh";

const DESCRIPTION: &str = "\
Joins Kubernetes clusters into one Istio service mesh that spans networks
(shared control plane, multi-network) in one checked, idempotent command:
`kubectl mesh join REMOTE --primary PRIMARY --certs DIR`.

It validates the plugged-in CA bundles and refuses clusters whose roots
differ, then changes only what is missing: cacerts in each cluster, the
network labels, the cross-network Gateway (TLS AUTO_PASSTHROUGH),
meshNetworks, a reader ServiceAccount token and the labelled remote Secret
istiod watches. A second run changes nothing. `kubectl mesh certs
check|generate` checks or creates the CA bundles; `kubectl mesh
remote-secret` prints the remote Secret for GitOps.
";

/// The one step krew cannot do: it links only `bin` onto PATH, and kubectl looks for the
/// completion helper `kubectl_complete-mesh` there.
const CAVEATS: &str = "\
For TAB completion of `kubectl mesh ...` (kubectl 1.26 or later, with
kubectl's own shell completion set up), link the completion helper
next to the plugin once:

  ln -sf kubectl-mesh \"${KREW_ROOT:-$HOME/.krew}/bin/kubectl_complete-mesh\"
";

/// What `cargo xtask dist` does.
#[derive(Debug, Clone)]
pub struct DistOptions {
    /// Where archives and checksums go (default `<workspace>/dist`).
    pub out: PathBuf,
    /// The krew index the manifest goes to, as `plugins/mesh.yaml` (default: the workspace).
    pub index: PathBuf,
    /// Target triples to build (default: the host's).
    pub targets: Vec<String>,
    /// Cargo profile (default `release`, what users get).
    pub profile: String,
}

impl Default for DistOptions {
    fn default() -> Self {
        let root = workspace_root();
        Self {
            out: root.join("dist"),
            index: root,
            targets: Vec::new(),
            profile: "release".to_owned(),
        }
    }
}

/// One built archive.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The target triple it was built for.
    pub target: String,
    /// krew's `os` and `arch` (Go's names) for that target.
    pub os: String,
    /// See `os`.
    pub arch: String,
    /// The `.tar.gz`.
    pub archive: PathBuf,
    /// Hex SHA-256 of the archive.
    pub sha256: String,
    /// The built binary the archive holds.
    pub binary: PathBuf,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Dist {
    /// The archives, one per target.
    pub artifacts: Vec<Artifact>,
    /// `<index>/plugins/mesh.yaml`.
    pub manifest: PathBuf,
}

/// The workspace root (the directory above xtask's).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// The version every crate of the workspace has (`version.workspace = true`).
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The host's target triple, as `rustc -vV` says.
pub fn host_target() -> Result<String> {
    let out = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .context("running rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .context("rustc -vV names no host")
}

/// krew's (that is, Go's) `os` and `arch` for a Rust target triple.
pub fn krew_platform(target: &str) -> Result<(&'static str, &'static str)> {
    let arch = match target.split('-').next().unwrap_or_default() {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "i686" | "i586" => "386",
        "armv7" | "arm" => "arm",
        "powerpc64le" => "ppc64le",
        "s390x" => "s390x",
        other => bail!("no krew arch for {other} (target {target})"),
    };
    let os = if target.contains("-linux") {
        "linux"
    } else if target.contains("-apple-darwin") {
        "darwin"
    } else if target.contains("-windows") {
        "windows"
    } else {
        bail!("no krew os for target {target}")
    };
    Ok((os, arch))
}

/// The archive's file name for a version and platform.
pub fn archive_name(version: &str, os: &str, arch: &str) -> String {
    format!("{BINARY}_{version}_{os}_{arch}.tar.gz")
}

/// Where the release of `version` publishes an archive.
pub fn release_uri(version: &str, archive: &str) -> String {
    format!("{HOMEPAGE}/releases/download/v{version}/{archive}")
}

/// Builds, packs and writes the manifest.
pub fn dist(opts: &DistOptions) -> Result<Dist> {
    let targets = if opts.targets.is_empty() {
        vec![host_target()?]
    } else {
        opts.targets.clone()
    };
    let host = host_target()?;
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let mut artifacts = Vec::new();
    for target in &targets {
        let (os, arch) = krew_platform(target)?;
        if os == "windows" {
            bail!("windows archives need kubectl-mesh.exe and a zip; not supported yet");
        }
        let binary = build(&opts.profile, target, target != &host)?;
        let name = archive_name(version(), os, arch);
        let archive = opts.out.join(&name);
        pack(&archive, &binary)?;
        let sha256 = hex(&Sha256::digest(std::fs::read(&archive)?));
        std::fs::write(
            opts.out.join(format!("{name}.sha256")),
            format!("{sha256}  {name}\n"),
        )?;
        eprintln!("xtask: wrote {} (sha256 {sha256})", archive.display());
        artifacts.push(Artifact {
            target: target.clone(),
            os: os.to_owned(),
            arch: arch.to_owned(),
            archive,
            sha256,
            binary,
        });
    }
    let manifest = opts.index.join("plugins").join(format!("{PLUGIN}.yaml"));
    let mut platforms: Vec<Platform> = artifacts
        .iter()
        .map(|a| Platform {
            os: a.os.clone(),
            arch: a.arch.clone(),
            uri: release_uri(version(), &archive_name(version(), &a.os, &a.arch)),
            sha256: a.sha256.clone(),
        })
        .collect();
    if let Ok(existing) = std::fs::read_to_string(&manifest)
        && let Ok(existing) = serde_saphyr::from_str::<Manifest>(&existing)
        && existing.spec.version == format!("v{}", version())
    {
        for p in existing.spec.platforms {
            let (os, arch) = (p.selector.match_labels.os, p.selector.match_labels.arch);
            if !platforms.iter().any(|q| q.os == os && q.arch == arch) {
                platforms.push(Platform {
                    os,
                    arch,
                    uri: p.uri,
                    sha256: p.sha256,
                });
            }
        }
    }
    platforms.sort_by(|a, b| (&a.os, &a.arch).cmp(&(&b.os, &b.arch)));
    std::fs::create_dir_all(manifest.parent().expect("has a parent"))?;
    std::fs::write(&manifest, render_manifest(version(), &platforms))
        .with_context(|| format!("writing {}", manifest.display()))?;
    eprintln!("xtask: wrote {}", manifest.display());
    Ok(Dist {
        artifacts,
        manifest,
    })
}

/// Builds kubectl-mesh for the host with `profile`; returns the binary.
pub fn build_binary(profile: &str) -> Result<PathBuf> {
    build(profile, &host_target()?, false)
}

/// `cargo build` of kubectl-mesh; returns the binary cargo reports.
fn build(profile: &str, target: &str, cross: bool) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root()).args([
        "build",
        "--locked",
        "--package",
        "kubectl-mesh",
        "--bin",
        BINARY,
        "--profile",
        profile,
        "--message-format",
        "json-render-diagnostics",
    ]);
    if cross {
        cmd.args(["--target", target]);
    }
    eprintln!("xtask: building {BINARY} ({profile} profile, {target})");
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .context("running cargo build")?;
    let mut executable = None;
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact"
            && msg["target"]["name"] == BINARY
            && let Some(exe) = msg["executable"].as_str()
        {
            executable = Some(PathBuf::from(exe));
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo build of {BINARY} for {target} failed ({status})");
    }
    executable.context("cargo build reported no kubectl-mesh executable")
}

/// Writes the reproducible `.tar.gz`: the binary, LICENSE and README.md at its root.
pub fn pack(archive: &Path, binary: &Path) -> Result<()> {
    let mtime = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    let root = workspace_root();
    let entries = [
        (BINARY, binary.to_owned(), 0o755),
        ("LICENSE", root.join("LICENSE"), 0o644),
        ("README.md", root.join("README.md"), 0o644),
    ];
    let partial = archive.with_extension("partial");
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(file, flate2::Compression::best());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    for (name, path, mode) in entries {
        let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(mtime);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, data.as_slice())?;
    }
    let mut gz = tar.into_inner()?;
    gz.flush()?;
    gz.finish()?.sync_all()?;
    std::fs::rename(&partial, archive)?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A platform entry as written.
struct Platform {
    os: String,
    arch: String,
    uri: String,
    sha256: String,
}

/// The krew manifest, written by hand so it reads like the ones in krew-index.
fn render_manifest(version: &str, platforms: &[Platform]) -> String {
    let indent = |text: &str| {
        text.lines()
            .map(|l| {
                if l.is_empty() {
                    String::new()
                } else {
                    format!("    {l}")
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut out = format!(
        "# Written by `cargo xtask dist`; the release process regenerates it per version.\n\
         apiVersion: {KREW_API_VERSION}\n\
         kind: Plugin\n\
         metadata:\n  name: {PLUGIN}\n\
         spec:\n  version: v{version}\n  homepage: {HOMEPAGE}\n\
         \x20 shortDescription: {SHORT_DESCRIPTION}\n\
         \x20 description: |\n{}\n\
         \x20 caveats: |\n{}\n\
         \x20 platforms:\n",
        indent(DESCRIPTION),
        indent(CAVEATS),
    );
    for p in platforms {
        out.push_str(&format!(
            "  - selector:\n      matchLabels:\n        os: {}\n        arch: {}\n    uri: {}\n    sha256: {}\n    files:\n    - from: {BINARY}\n      to: .\n    - from: LICENSE\n      to: .\n    - from: README.md\n      to: .\n    bin: {BINARY}\n",
            p.os, p.arch, p.uri, p.sha256
        ));
    }
    out
}

/// The parts of a krew manifest that tests and the merge read back.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// `krew.googlecontainertools.github.com/v1alpha2`.
    pub api_version: String,
    /// `Plugin`.
    pub kind: String,
    /// Holds the plugin's name.
    pub metadata: ManifestMetadata,
    /// Everything else.
    pub spec: ManifestSpec,
}

/// `metadata` of a krew manifest.
#[derive(Debug, Deserialize)]
pub struct ManifestMetadata {
    /// The plugin's name.
    pub name: String,
}

/// `spec` of a krew manifest.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestSpec {
    /// `v`-prefixed semver.
    pub version: String,
    /// The project's page.
    pub homepage: String,
    /// One line for `kubectl krew search`.
    pub short_description: String,
    /// Several lines for `kubectl krew info`.
    pub description: String,
    /// Shown after install.
    #[serde(default)]
    pub caveats: Option<String>,
    /// One per os/arch.
    pub platforms: Vec<ManifestPlatform>,
}

/// One `spec.platforms` entry.
#[derive(Debug, Deserialize)]
pub struct ManifestPlatform {
    /// Which os/arch it is for.
    pub selector: Selector,
    /// Where the archive is downloaded from.
    pub uri: String,
    /// The archive's hex SHA-256.
    pub sha256: String,
    /// What krew links onto PATH.
    pub bin: String,
    /// What krew copies out of the archive.
    #[serde(default)]
    pub files: Vec<FileOperation>,
}

/// A platform selector (krew accepts only `os` and `arch`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    /// `os` and `arch`.
    pub match_labels: MatchLabels,
}

/// `matchLabels` of a selector.
#[derive(Debug, Deserialize)]
pub struct MatchLabels {
    /// Go's GOOS name.
    pub os: String,
    /// Go's GOARCH name.
    pub arch: String,
}

/// One `files` entry.
#[derive(Debug, Deserialize)]
pub struct FileOperation {
    /// A path (or glob) in the archive.
    pub from: String,
    /// Where it goes in the install directory.
    pub to: String,
}
