//! The release archive and the krew manifest, as krew and kubectl use them.
//!
//! The manifest test is plain; the install test builds the real release archive and
//! installs it with real krew, offline, into a temporary KREW_ROOT (`cargo xtask test`
//! runs it: it needs the kubectl and krew the test bed builds).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use xtask::dist::{self, Manifest};

fn parse(path: &Path) -> Manifest {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What krew's validation and krew-index's review require of a manifest.
fn assert_valid(manifest: &Manifest) {
    assert_eq!(manifest.api_version, dist::KREW_API_VERSION);
    assert_eq!(manifest.kind, "Plugin");
    assert_eq!(manifest.metadata.name, "mesh");
    let spec = &manifest.spec;
    assert_eq!(spec.version, format!("v{}", dist::version()));
    assert!(spec.homepage.starts_with("https://"), "{}", spec.homepage);
    assert!(!spec.short_description.is_empty());
    assert!(
        spec.short_description.chars().count() <= 50,
        "shortDescription longer than 50: {}",
        spec.short_description
    );
    assert!(!spec.short_description.contains(['\r', '\n']));
    assert!(spec.description.lines().count() > 1);
    let caveats = spec.caveats.as_deref().unwrap_or_default();
    assert!(caveats.contains("kubectl_complete-mesh"), "{caveats}");
    assert!(!spec.platforms.is_empty());
    for p in &spec.platforms {
        let (os, arch) = (&p.selector.match_labels.os, &p.selector.match_labels.arch);
        assert!(
            ["linux", "darwin", "windows"].contains(&os.as_str()),
            "{os}"
        );
        assert!(!arch.is_empty());
        let archive = dist::archive_name(dist::version(), os, arch);
        assert_eq!(p.uri, dist::release_uri(dist::version(), &archive));
        assert!(
            p.sha256.len() == 64
                && p.sha256
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{}",
            p.sha256
        );
        assert_eq!(p.bin, "kubectl-mesh");
        assert!(
            p.files
                .iter()
                .any(|f| f.from == "kubectl-mesh" && f.to == ".")
        );
    }
}

#[test]
fn committed_manifest_is_a_valid_krew_plugin() {
    assert_valid(&parse(&dist::workspace_root().join("plugins/mesh.yaml")));
}

#[test]
fn platforms_use_krew_names() {
    assert_eq!(
        dist::krew_platform("x86_64-unknown-linux-gnu").unwrap(),
        ("linux", "amd64")
    );
    assert_eq!(
        dist::krew_platform("aarch64-apple-darwin").unwrap(),
        ("darwin", "arm64")
    );
    assert_eq!(
        dist::krew_platform("x86_64-unknown-linux-musl").unwrap(),
        ("linux", "amd64")
    );
    assert!(dist::krew_platform("wasm32-unknown-unknown").is_err());
}

fn path_of(dirs: &[&Path]) -> std::ffi::OsString {
    std::env::join_paths(dirs).unwrap()
}

/// Runs `program` in a sealed environment: PATH as given, HOME and KREW_ROOT in the
/// temporary directory, and a proxy that refuses every connection (the install is offline).
fn sealed(program: &str, tmp: &Path, path: &std::ffi::OsStr) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", path)
        .env("HOME", tmp.join("home"))
        .env("KREW_ROOT", tmp.join("krew"))
        .env("KUBECONFIG", tmp.join("home/no-kubeconfig"))
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

fn output(mut cmd: Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{text}",
        out.status
    );
    text
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn krew_installs_the_release_archive_offline_and_kubectl_runs_it() {
    let kubernetes = xtask::tools::ensure_kubectl().unwrap();
    let kubernetes = kubernetes.parent().expect("kubectl is in a directory");
    let krew = xtask::krew::ensure_krew().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    std::fs::create_dir_all(tmp.join("home")).unwrap();

    // What `cargo xtask dist` writes, into a directory of this test's own.
    let built = dist::dist(&dist::DistOptions {
        out: tmp.join("dist"),
        index: tmp.join("index"),
        targets: Vec::new(),
        profile: "release".into(),
    })
    .unwrap();
    let manifest = parse(&built.manifest);
    assert_valid(&manifest);
    let [artifact] = built.artifacts.as_slice() else {
        panic!("one target, one archive: {:?}", built.artifacts)
    };
    let archive = &artifact.archive;
    let name = archive.file_name().unwrap().to_str().unwrap();
    assert_eq!(
        name,
        format!(
            "kubectl-mesh_{}_{}_{}.tar.gz",
            dist::version(),
            artifact.os,
            artifact.arch
        )
    );
    let platform = &manifest.spec.platforms[0];
    assert_eq!(platform.sha256, artifact.sha256);
    assert_eq!(
        std::fs::read_to_string(archive.with_file_name(format!("{name}.sha256"))).unwrap(),
        format!("{}  {name}\n", artifact.sha256)
    );
    let mut entries = Vec::new();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(archive).unwrap(),
    ));
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let mode = entry.header().mode().unwrap();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        entries.push((path, mode, data.len()));
    }
    let names: Vec<&str> = entries.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(names, ["kubectl-mesh", "LICENSE", "README.md"]);
    assert_eq!(entries[0].1, 0o755);

    // The same build packs to the same bytes: the checksum means something.
    let again = tmp.join("again.tar.gz");
    dist::pack(&again, &artifact.binary).unwrap();
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(archive).unwrap()
    );

    // `kubectl krew install --manifest --archive`, as the README says, offline.
    let path = path_of(&[&krew, kubernetes]);
    let mut install = sealed("kubectl", tmp, &path);
    install
        .arg("krew")
        .arg("install")
        .arg(format!("--manifest={}", built.manifest.display()))
        .arg(format!("--archive={}", archive.display()));
    let said = output(install);
    assert!(said.contains("Installed plugin: mesh"), "{said}");
    assert!(
        said.contains("kubectl_complete-mesh"),
        "the caveat is shown: {said}"
    );
    let bin: PathBuf = tmp.join("krew/bin");
    assert!(
        bin.join("kubectl-mesh").exists(),
        "krew links the plugin into {}",
        bin.display()
    );

    // The caveat's one extra step, run as the user would paste it.
    let caveats = manifest.spec.caveats.as_deref().unwrap();
    let step = caveats
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("ln "))
        .expect("a command in the caveats");
    let mut shell = sealed(
        "sh",
        tmp,
        &path_of(&[Path::new("/usr/bin"), Path::new("/bin")]),
    );
    shell.arg("-c").arg(step);
    output(shell);

    // kubectl finds the plugin on PATH (krew's bin directory) and runs it.
    let path = path_of(&[&bin, kubernetes]);
    let mut version = sealed("kubectl", tmp, &path);
    version.args(["mesh", "version"]);
    let said = output(version);
    assert!(
        said.starts_with(&format!("kubectl-mesh {} (commit ", dist::version())),
        "{said}"
    );
    assert!(said.contains(&artifact.target), "{said}");

    let mut json = sealed("kubectl", tmp, &path);
    json.args(["mesh", "version", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_str(&output(json)).unwrap();
    assert_eq!(json["version"], dist::version());

    // The repository layout works as a custom krew index: `plugins/mesh.yaml` in a git
    // repository (here a local one holding the manifest just written).
    let repo = tmp.join("repo");
    std::fs::create_dir_all(repo.join("plugins")).unwrap();
    std::fs::copy(&built.manifest, repo.join("plugins/mesh.yaml")).unwrap();
    let tools = path_of(&[
        &bin,
        kubernetes,
        &krew,
        Path::new("/usr/bin"),
        Path::new("/bin"),
    ]);
    for args in [
        &["init", "-q"][..],
        &["add", "plugins"],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-qm",
            "index",
        ],
    ] {
        let mut git = sealed("git", tmp, &tools);
        git.current_dir(&repo).args(args);
        output(git);
    }
    let mut add = sealed("kubectl", tmp, &tools);
    add.args(["krew", "index", "add", "kubectl-mesh"])
        .arg(&repo);
    output(add);
    let mut info = sealed("kubectl", tmp, &tools);
    info.args(["krew", "info", "kubectl-mesh/mesh"]);
    let said = output(info);
    assert!(
        said.contains(&format!("VERSION: v{}", dist::version())),
        "{said}"
    );
    assert!(
        said.contains(&format!("SHA256: {}", artifact.sha256)),
        "{said}"
    );
    let mut list = sealed("kubectl", tmp, &tools);
    list.args(["krew", "list"]);
    let said = output(list);
    assert!(said.lines().any(|l| l.trim().ends_with("mesh")), "{said}");

    // And kubectl completes `kubectl mesh …` through the linked helper.
    let mut complete = sealed("kubectl", tmp, &path);
    complete.args(["__complete", "mesh", "ver"]);
    let said = output(complete);
    assert!(said.starts_with("version\t"), "{said}");
}
