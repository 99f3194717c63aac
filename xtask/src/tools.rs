//! External tools the tests need, built once from Go modules and cached outside the repo.
//!
//! Each tool is a small wrapper module (a `go.mod` that requires the upstream module at a
//! pinned version, and either a `main.go` calling its entry point or a `tool` directive
//! naming the upstream command), built with `-trimpath` and `CGO_ENABLED=0` into
//! `<cache>/tools/<name>-<version>/`. The directory appears
//! atomically (built into a temporary sibling, then renamed), so an interrupted build
//! never leaves a tool that looks complete.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// The Kubernetes releases the test bed runs, oldest first: the newest patch of each
/// minor the Go module proxy serves. Each one's kube-apiserver,
/// kube-controller-manager and kubectl are built from `k8s.io/kubernetes` at that tag
/// and cached side by side (`<cache>/tools/kubernetes-<version>/`).
pub const KUBERNETES_VERSIONS: [&str; 4] = ["v1.34.4", "v1.35.4", "v1.36.3", "v1.37.2"];
/// The newest of [`KUBERNETES_VERSIONS`]: the primary's, and the one kubectl the tests run.
pub const NEWEST_KUBERNETES: &str = KUBERNETES_VERSIONS[KUBERNETES_VERSIONS.len() - 1];
/// The oldest of [`KUBERNETES_VERSIONS`]: the first remote's.
pub const OLDEST_KUBERNETES: &str = KUBERNETES_VERSIONS[0];
/// The pinned etcd release (3.6 line).
pub const ETCD_VERSION: &str = "v3.6.16";

/// What the test bed runs of each Kubernetes release.
const KUBERNETES_BINARIES: [&str; 3] = ["kube-apiserver", "kube-controller-manager", "kubectl"];

/// A Kubernetes release as the test bed takes it: `v1.MINOR.PATCH`, or `v1.MINOR` (or
/// `1.MINOR`) for the pinned patch of that minor in [`KUBERNETES_VERSIONS`].
///
/// Returns the full tag (`v1.34.4`), or an error saying what is accepted.
pub fn resolve_kubernetes_version(given: &str) -> Result<String> {
    let bare = given.trim().trim_start_matches('v');
    let parts: Vec<&str> = bare.split('.').collect();
    let numeric = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    match parts.as_slice() {
        ["1", minor] if numeric(minor) => {
            let prefix = format!("v1.{minor}.");
            KUBERNETES_VERSIONS
                .iter()
                .find(|v| v.starts_with(&prefix))
                .map(|v| (*v).to_owned())
                .with_context(|| {
                    format!(
                        "Kubernetes {given:?}: no pinned release of that minor; give a full version (v1.{minor}.PATCH) or one of {}",
                        KUBERNETES_VERSIONS.join(", ")
                    )
                })
        }
        ["1", minor, patch] if numeric(minor) && numeric(patch) => {
            Ok(format!("v1.{minor}.{patch}"))
        }
        _ => bail!(
            "Kubernetes version {given:?} is not v1.MINOR or v1.MINOR.PATCH (the test bed knows {})",
            KUBERNETES_VERSIONS.join(", ")
        ),
    }
}

/// The staging modules (`k8s.io/api`, `k8s.io/client-go`, …) that `k8s.io/kubernetes` at
/// `version` replaces with its own directories: a wrapper module must replace them with
/// the matching `v0.MINOR.PATCH` tags. Read from that release's own go.mod, since the
/// list changes between releases.
fn kubernetes_staging_modules(version: &str) -> Result<Vec<String>> {
    let dir = cache_dir().join("src");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let module = format!("k8s.io/kubernetes@{version}");
    let json = go_output(&dir, &["mod", "download", "-json", &module]).with_context(|| {
        format!(
            "the Go module proxy does not serve {module}; the pinned releases are {} (`go list -m -versions k8s.io/kubernetes` lists what it serves)",
            KUBERNETES_VERSIONS.join(", ")
        )
    })?;
    #[derive(serde::Deserialize)]
    struct Download {
        #[serde(rename = "GoMod")]
        go_mod: PathBuf,
    }
    let download: Download = serde_json::from_str(&json)
        .with_context(|| format!("reading `go mod download -json {module}`"))?;
    let go_mod = std::fs::read_to_string(&download.go_mod)
        .with_context(|| format!("reading {}", download.go_mod.display()))?;
    let modules: Vec<String> = go_mod
        .lines()
        .filter_map(|line| {
            let line = line.trim().trim_start_matches("replace").trim();
            let (from, to) = line.split_once("=>")?;
            to.trim()
                .starts_with("./staging/")
                .then(|| from.trim().to_owned())
        })
        .collect();
    if modules.is_empty() {
        bail!(
            "{} names no staging module; is it k8s.io/kubernetes's go.mod?",
            download.go_mod.display()
        );
    }
    Ok(modules)
}

/// Root of everything kubectl-mesh caches: `$KUBECTL_MESH_CACHE`, else
/// `$XDG_CACHE_HOME/kubectl-mesh`, else `~/.cache/kubectl-mesh`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KUBECTL_MESH_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("kubectl-mesh")
}

/// Directory holding one built tool set, e.g. `<cache>/tools/kubernetes-v1.36.3`.
pub fn tool_dir(name: &str, version: &str) -> PathBuf {
    cache_dir().join("tools").join(format!("{name}-{version}"))
}

/// A Go wrapper module: what to write and which binaries it yields.
pub struct WrapperModule {
    pub name: &'static str,
    pub version: String,
    pub go_mod: String,
    /// `(relative path, contents)` of the Go sources (none when `go_mod` names a `tool`).
    pub files: Vec<(String, String)>,
    /// Packages to build (relative to the module root, or upstream import paths).
    pub packages: Vec<String>,
    pub ldflags: String,
    pub binaries: Vec<&'static str>,
    /// Files besides the binaries that a complete tool directory holds.
    pub also: Vec<&'static str>,
    /// Runs after the build, in the wrapper module's directory, with the directory that
    /// becomes the tool directory: copies what the tool needs besides its binaries.
    pub finish: Option<fn(&Path, &Path) -> Result<()>>,
}

impl WrapperModule {
    fn complete(&self, dir: &Path) -> bool {
        self.binaries.iter().all(|b| dir.join(b).is_file())
            && self.also.iter().all(|f| dir.join(f).exists())
    }
}

/// Makes sure kube-apiserver, kube-controller-manager and kubectl of Kubernetes
/// `version` (a full `v1.MINOR.PATCH` tag) are built; returns their directory.
pub fn ensure_kubernetes(version: &str) -> Result<PathBuf> {
    let dir = tool_dir("kubernetes", version);
    if KUBERNETES_BINARIES.iter().all(|b| dir.join(b).is_file()) {
        return Ok(dir); // no need to ask the proxy for its go.mod
    }
    let zero = format!("v0.{}", version.trim_start_matches("v1."));
    let minor = version.split('.').nth(1).unwrap_or_default();
    let mut go_mod = format!(
        "module kubectl-mesh.local/testbed/kubernetes\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes {version}\n\nreplace (\n"
    );
    for module in kubernetes_staging_modules(version)? {
        go_mod.push_str(&format!("\t{module} => {module} {zero}\n"));
    }
    go_mod.push_str(")\n");
    let main = |import: &str, call: &str| {
        format!(
            "package main\n\nimport (\n\t\"os\"\n\n\t\"k8s.io/component-base/cli\"\n\t\"{import}\"\n)\n\nfunc main() {{\n\tos.Exit(cli.Run(app.{call}()))\n}}\n"
        )
    };
    let kubectl_main = "package main\n\nimport (\n\t\"k8s.io/component-base/cli\"\n\t\"k8s.io/kubectl/pkg/cmd\"\n\t\"k8s.io/kubectl/pkg/cmd/util\"\n)\n\nfunc main() {\n\tcommand := cmd.NewDefaultKubectlCommand()\n\tif err := cli.RunNoErrOutput(command); err != nil {\n\t\tutil.CheckErr(err)\n\t}\n}\n";
    let ver = "k8s.io/component-base/version";
    ensure(&WrapperModule {
        name: "kubernetes",
        version: version.to_owned(),
        go_mod,
        files: vec![
            (
                "cmd/kube-apiserver/main.go".into(),
                main(
                    "k8s.io/kubernetes/cmd/kube-apiserver/app",
                    "NewAPIServerCommand",
                ),
            ),
            (
                "cmd/kube-controller-manager/main.go".into(),
                main(
                    "k8s.io/kubernetes/cmd/kube-controller-manager/app",
                    "NewControllerManagerCommand",
                ),
            ),
            ("cmd/kubectl/main.go".into(), kubectl_main.into()),
        ],
        packages: vec!["./cmd/...".into()],
        ldflags: format!(
            "-s -w -X {ver}.gitVersion={version} -X {ver}.gitMajor=1 -X {ver}.gitMinor={minor} -X {ver}.gitTreeState=clean"
        ),
        binaries: KUBERNETES_BINARIES.to_vec(),
        also: vec![],
        finish: None,
    })
}

/// The kubectl the tests and the demo run: the newest release's.
pub fn ensure_kubectl() -> Result<PathBuf> {
    Ok(ensure_kubernetes(NEWEST_KUBERNETES)?.join("kubectl"))
}

/// Makes sure etcd is built; returns its directory.
pub fn ensure_etcd() -> Result<PathBuf> {
    let version = ETCD_VERSION;
    ensure(&WrapperModule {
        name: "etcd",
        version: version.to_owned(),
        go_mod: format!(
            "module kubectl-mesh.local/testbed/etcd\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 {version}\n"
        ),
        files: vec![(
            "cmd/etcd/main.go".into(),
            "package main\n\nimport (\n\t\"os\"\n\n\t\"go.etcd.io/etcd/server/v3/etcdmain\"\n)\n\nfunc main() {\n\tetcdmain.Main(os.Args)\n}\n".into(),
        )],
        packages: vec!["./cmd/...".into()],
        ldflags: "-s -w".into(),
        binaries: vec!["etcd"],
        also: vec![],
        finish: None,
    })
}

/// Builds `module` into its tool directory unless it is there already; returns the directory.
pub fn ensure(module: &WrapperModule) -> Result<PathBuf> {
    let dir = tool_dir(module.name, &module.version);
    if module.complete(&dir) {
        return Ok(dir);
    }
    let src = cache_dir()
        .join("src")
        .join(format!("{}-{}", module.name, module.version));
    std::fs::create_dir_all(&src).with_context(|| format!("creating {}", src.display()))?;
    std::fs::write(src.join("go.mod"), &module.go_mod)?;
    for (path, contents) in &module.files {
        let path = src.join(path);
        std::fs::create_dir_all(path.parent().expect("file has a parent"))?;
        std::fs::write(&path, contents)?;
    }
    eprintln!(
        "xtask: building {} {} from its Go module (first time only; cached in {})",
        module.name,
        module.version,
        dir.display()
    );
    let started = Instant::now();
    go(&src, &["mod", "tidy"])?;
    let staging = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)?;
    let out = format!("{}/", staging.display());
    let mut args = vec![
        "build",
        "-p",
        "2",
        "-trimpath",
        "-ldflags",
        &module.ldflags,
        "-o",
        &out,
    ];
    args.extend(module.packages.iter().map(String::as_str));
    go(&src, &args)?;
    for binary in &module.binaries {
        if !staging.join(binary).is_file() {
            bail!(
                "go build of {} {} did not produce {binary} in {}",
                module.name,
                module.version,
                staging.display()
            );
        }
    }
    if let Some(finish) = module.finish {
        finish(&src, &staging)?;
    }
    if !module.complete(&staging) {
        bail!(
            "the build of {} {} left {} incomplete",
            module.name,
            module.version,
            staging.display()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&staging, &dir)?;
    eprintln!(
        "xtask: built {} {} in {:.0?}",
        module.name,
        module.version,
        started.elapsed()
    );
    Ok(dir)
}

fn go_command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("go");
    cmd.args(args)
        .current_dir(dir)
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "-buildvcs=false")
        .env("GOTOOLCHAIN", "local");
    cmd
}

const NO_GO: &str = "running `go`: is Go installed and on PATH? (https://go.dev/doc/install)";

/// Runs `go` in `dir` with the environment the builds need.
pub fn go(dir: &Path, args: &[&str]) -> Result<()> {
    let status = go_command(dir, args).status().context(NO_GO)?;
    if !status.success() {
        bail!(
            "`go {}` failed in {} ({status}); its output is above",
            args.join(" "),
            dir.display()
        );
    }
    Ok(())
}

/// Runs `go` in `dir` like [`go`], returning its standard output.
pub fn go_output(dir: &Path, args: &[&str]) -> Result<String> {
    let out = go_command(dir, args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .context(NO_GO)?;
    if !out.status.success() {
        bail!(
            "`go {}` failed in {} ({}); its output is above",
            args.join(" "),
            dir.display(),
            out.status
        );
    }
    String::from_utf8(out.stdout).context("`go` printed something that is not UTF-8")
}
