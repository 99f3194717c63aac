//! The test bed: N real Kubernetes control planes on loopback.
//!
//! Cluster `i` (1-based, named `cluster<i>`) lives on its own loopback address
//! `127.0.<i>.1`: etcd on :2379, kube-apiserver on :6443, kube-controller-manager on
//! :10257. Everything it writes lives under the state directory
//! (`<cache>/testbed`): PKI, etcd data, one log per component, the API server's audit
//! log, the pids, and one kubeconfig with a context per cluster.
//!
//! Only what a cloud and kubelets would do is simulated (see [`crate::simulator`]).

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::{pki, tools};

/// Where the running test bed keeps its state: `$KUBECTL_MESH_TESTBED`, else `<cache>/testbed`.
pub fn state_dir() -> PathBuf {
    std::env::var_os("KUBECTL_MESH_TESTBED")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools::cache_dir().join("testbed"))
}

/// The kubeconfig of the test bed: one context per cluster, named like the cluster.
pub fn kubeconfig_path() -> PathBuf {
    state_dir().join("kubeconfig")
}

/// What `up` recorded: enough for `status`, `down` and the simulator.
#[derive(Debug, Serialize, Deserialize)]
pub struct State {
    pub clusters: Vec<ClusterState>,
    pub simulator_pid: Option<u32>,
    /// Set once `up --with-istio` installed Istio; kept by a plain `up`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio: Option<crate::istio::IstioState>,
}

/// One cluster of the test bed.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClusterState {
    pub name: String,
    pub ip: Ipv4Addr,
    /// The Kubernetes release its kube-apiserver and kube-controller-manager run.
    #[serde(default = "version_before_mixing")]
    pub kubernetes_version: String,
    pub components: Vec<Component>,
}

/// What every cluster ran before the test bed mixed versions (a state file without
/// `kubernetes_version` is one of those).
fn version_before_mixing() -> String {
    "v1.36.3".to_owned()
}

/// A running process of the test bed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Component {
    pub name: String,
    pub pid: u32,
    pub log: PathBuf,
}

impl ClusterState {
    /// The API server URL of this cluster.
    pub fn server(&self) -> String {
        format!("https://{}:6443", self.ip)
    }

    /// The directory holding this cluster's PKI, data and logs.
    pub fn dir(&self) -> PathBuf {
        state_dir().join(&self.name)
    }
}

impl State {
    fn path() -> PathBuf {
        state_dir().join("testbed.json")
    }

    /// Reads the state of the running test bed, if there is one.
    pub fn load() -> Result<Option<State>> {
        match std::fs::read(Self::path()) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is corrupt; run `cargo xtask testbed down`",
                    Self::path().display()
                )
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).context(format!("reading {}", Self::path().display())),
        }
    }

    /// Writes the state of the running test bed.
    pub fn save(&self) -> Result<()> {
        std::fs::write(Self::path(), serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }

    fn pids(&self) -> impl Iterator<Item = (&str, u32)> {
        self.simulator_pid
            .map(|pid| ("simulator", pid))
            .into_iter()
            .chain(self.clusters.iter().flat_map(|c| {
                c.components
                    .iter()
                    .rev()
                    .map(|comp| (comp.name.as_str(), comp.pid))
            }))
    }

    /// Each cluster's Kubernetes release, as one line: `cluster1 v1.37.2, cluster2 v1.34.4`.
    pub fn releases(&self) -> String {
        self.clusters
            .iter()
            .map(|c| format!("{} {}", c.name, c.kubernetes_version))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// True when every recorded process still runs.
    pub fn all_alive(&self) -> bool {
        self.pids().all(|(_, pid)| alive(pid))
    }
}

/// Options of `testbed up`.
pub struct UpOptions {
    /// Clusters `cluster1`…`clusterN`, with Istio when `with_istio`.
    pub clusters: usize,
    /// Install Istio (see [`crate::istio`]) in the first `clusters` if it is not installed yet.
    pub with_istio: bool,
    /// Clusters after those that never get Istio (for `join --install`).
    pub bare: usize,
    /// The Kubernetes release of each cluster.
    pub versions: KubernetesVersions,
}

/// Which Kubernetes release each cluster of the test bed runs: one for all, per cluster,
/// or (by default) a mix — see [`default_version`].
///
/// ```
/// let versions = xtask::testbed::KubernetesVersions::parse(&["cluster2=v1.35".into()]).unwrap();
/// assert_eq!(versions.for_cluster(2), "v1.35.4");
/// assert_eq!(versions.for_cluster(1), xtask::tools::NEWEST_KUBERNETES);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubernetesVersions {
    /// For every cluster not named in `per_cluster`; `None`: the default mix.
    pub all: Option<String>,
    /// By cluster name (`cluster2`).
    pub per_cluster: std::collections::BTreeMap<String, String>,
}

impl KubernetesVersions {
    /// Reads `--kubernetes-version` values: `VERSION` for every cluster, or
    /// `CLUSTER=VERSION` for one (`cluster2=v1.34.4`); a version may be `v1.MINOR` for the
    /// pinned patch of that minor.
    pub fn parse(values: &[String]) -> Result<KubernetesVersions> {
        let mut versions = KubernetesVersions::default();
        for value in values {
            match value.split_once('=') {
                Some((cluster, version)) => {
                    let index = cluster
                        .strip_prefix("cluster")
                        .and_then(|i| i.parse::<usize>().ok())
                        .filter(|i| (1..=9).contains(i));
                    if index.is_none() {
                        bail!(
                            "--kubernetes-version {value:?}: {cluster:?} is not a test-bed cluster (cluster1 … cluster9)"
                        );
                    }
                    let version = tools::resolve_kubernetes_version(version)
                        .with_context(|| format!("--kubernetes-version {value:?}"))?;
                    versions.per_cluster.insert(cluster.to_owned(), version);
                }
                None => {
                    let version = tools::resolve_kubernetes_version(value)
                        .with_context(|| format!("--kubernetes-version {value:?}"))?;
                    if let Some(before) = versions.all.replace(version) {
                        bail!(
                            "--kubernetes-version is given twice for all clusters ({before} and {value}); name a cluster (cluster2=VERSION) for one of them"
                        );
                    }
                }
            }
        }
        Ok(versions)
    }

    /// The release cluster `index` (1-based) runs.
    pub fn for_cluster(&self, index: usize) -> String {
        let name = format!("cluster{index}");
        self.per_cluster
            .get(&name)
            .or(self.all.as_ref())
            .cloned()
            .unwrap_or_else(|| default_version(index).to_owned())
    }
}

/// The default mix, as platform engineers run clusters: cluster1 (the primary) on the
/// newest release, cluster2 (the first remote) on the oldest, the next ones on the
/// releases in between, then round again — so `cargo xtask test`'s five clusters run
/// v1.37, v1.34, v1.35, v1.36 and v1.37, and its bare pair for `join --install`
/// (cluster4, cluster5) differ from each other too.
///
/// ```
/// use xtask::testbed::default_version;
/// assert_eq!(default_version(1), xtask::tools::NEWEST_KUBERNETES);
/// assert_eq!(default_version(2), xtask::tools::OLDEST_KUBERNETES);
/// assert_ne!(default_version(4), default_version(5));
/// ```
pub fn default_version(index: usize) -> &'static str {
    let versions = &tools::KUBERNETES_VERSIONS;
    match (index.max(1) - 1) % versions.len() {
        0 => tools::NEWEST_KUBERNETES,
        i => versions[i - 1],
    }
}

/// What `up` did.
#[derive(Debug, PartialEq, Eq)]
pub enum UpOutcome {
    Started,
    Reused,
}

/// Brings the test bed up, or reuses the one that runs.
pub async fn up(opts: &UpOptions) -> Result<UpOutcome> {
    let total = opts.clusters + opts.bare;
    if opts.clusters == 0 || total > 9 {
        bail!("--clusters must be at least 1, and --clusters plus --bare at most 9");
    }
    if opts.with_istio {
        // Build first, so clusters do not sit idle (or come up at all) when a build fails.
        crate::istio::ensure_helm()?;
        crate::istio::ensure_istio()?;
    }
    let names: Vec<String> = (1..=total).map(|i| format!("cluster{i}")).collect();
    if let Some(extra) = opts
        .versions
        .per_cluster
        .keys()
        .find(|c| !names.contains(c))
    {
        bail!(
            "--kubernetes-version names {extra}, but the test bed has {total} clusters (cluster1 … cluster{total})"
        );
    }
    let wanted: Vec<String> = (1..=total).map(|i| opts.versions.for_cluster(i)).collect();
    // Every release first (a cold one takes minutes), so clusters never sit half up.
    let mut kube_dirs = std::collections::BTreeMap::new();
    for version in &wanted {
        if !kube_dirs.contains_key(version) {
            kube_dirs.insert(version.clone(), tools::ensure_kubernetes(version)?);
        }
    }
    tools::ensure_kubectl()?;
    let etcd_dir = tools::ensure_etcd()?;
    let mut previous = None;
    if let Some(mut state) = State::load()? {
        let differ: Vec<String> = state
            .clusters
            .iter()
            .zip(&wanted)
            .filter(|(c, want)| c.kubernetes_version != **want)
            .map(|(c, want)| format!("{} runs {}, not {want}", c.name, c.kubernetes_version))
            .collect();
        if !differ.is_empty() && state.all_alive() {
            bail!(
                "the running test bed has other Kubernetes releases than asked for ({}); stop it with `cargo xtask testbed down`, or ask for the releases it runs",
                differ.join("; ")
            );
        }
        let ready = state.all_alive()
            && wait_all_ready(&state, Duration::from_secs(20))
                .await
                .is_ok();
        if ready && state.clusters.len() >= total {
            if opts.with_istio {
                install_istio(&mut state, opts.clusters)?;
            }
            return Ok(UpOutcome::Reused);
        }
        if ready {
            // Grow the running test bed: keep its clusters, add the missing ones.
            previous = Some(state);
        } else {
            eprintln!("xtask: the previous test bed is partly down; cleaning it up");
            down()?;
        }
    }
    let started = Instant::now();
    let dir = state_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut state = previous.unwrap_or(State {
        clusters: Vec::new(),
        simulator_pid: None,
        istio: None,
    });
    let first = state.clusters.len();
    for i in first + 1..=total {
        let name = format!("cluster{i}");
        let ip = Ipv4Addr::new(127, 0, i as u8, 1);
        let cluster_dir = dir.join(&name);
        std::fs::create_dir_all(cluster_dir.join("logs"))?;
        let pki = pki::write_cluster_pki(&cluster_dir.join("pki"), &name, IpAddr::V4(ip))?;
        write_audit_policy(&cluster_dir)?;
        let admin_kubeconfig =
            single_kubeconfig(&name, ip, &pki.ca_cert, &pki.admin_cert, &pki.admin_key);
        pki::write(&cluster_dir, "admin.kubeconfig", &admin_kubeconfig, true)?;
        pki::write(
            &cluster_dir,
            "simulator.kubeconfig",
            &single_kubeconfig(
                &name,
                ip,
                &pki.ca_cert,
                &pki.simulator_cert,
                &pki.simulator_key,
            ),
            true,
        )?;
        pki::write(&cluster_dir, "admin.crt", &pki.admin_cert, false)?;
        pki::write(&cluster_dir, "admin.key", &pki.admin_key, true)?;
        state.clusters.push(ClusterState {
            name,
            ip,
            kubernetes_version: wanted[i - 1].clone(),
            components: Vec::new(),
        });
    }
    // One kubeconfig with every cluster, the first one current.
    let mut kubeconfig = KubeconfigFile::default();
    for cluster in &state.clusters {
        let c = cluster.dir();
        let read = |f: &str| std::fs::read_to_string(c.join(f));
        let (cert, key) = match (read("admin.crt"), read("admin.key")) {
            (Ok(cert), Ok(key)) => (cert, key),
            // A test bed started before the admin credentials were kept as files.
            _ => admin_credentials_from(&c.join("admin.kubeconfig"))?,
        };
        kubeconfig.add(&cluster.name, cluster.ip, &read("pki/ca.crt")?, &cert, &key);
    }
    pki::write(&dir, "kubeconfig", &kubeconfig.render(), true)?;
    state.save()?;

    let result = start_components(&mut state, first, &kube_dirs, &etcd_dir).await;
    state.save()?;
    if let Err(err) = result {
        if first == 0 {
            let _ = down();
        }
        return Err(err);
    }
    eprintln!(
        "xtask: test bed with {} clusters up in {:.1}s: {}",
        total,
        started.elapsed().as_secs_f64(),
        state.releases()
    );
    if opts.with_istio {
        // A failed install leaves the clusters up, to look at; the error says where.
        install_istio(&mut state, opts.clusters)?;
    }
    Ok(UpOutcome::Started)
}

/// Istio in the first `count` clusters (the others are left bare).
fn install_istio(state: &mut State, count: usize) -> Result<()> {
    let count = count.min(state.clusters.len());
    let istio = crate::istio::install(&state.clusters[..count], state.istio.as_ref())?;
    state.istio = Some(istio);
    state.save()
}

async fn start_components(
    state: &mut State,
    first: usize,
    kube_dirs: &std::collections::BTreeMap<String, PathBuf>,
    etcd_dir: &Path,
) -> Result<()> {
    let kube_dir = |cluster: &ClusterState| kube_dirs[&cluster.kubernetes_version].clone();
    for cluster in &mut state.clusters[first..] {
        let c = cluster.dir();
        let ip = cluster.ip;
        let etcd = spawn(
            &c,
            "etcd",
            &etcd_dir.join("etcd"),
            &[
                "--name=default".into(),
                format!("--data-dir={}", c.join("etcd-data").display()),
                format!("--listen-client-urls=http://{ip}:2379"),
                format!("--advertise-client-urls=http://{ip}:2379"),
                format!("--listen-peer-urls=http://{ip}:2380"),
                format!("--initial-advertise-peer-urls=http://{ip}:2380"),
                format!("--initial-cluster=default=http://{ip}:2380"),
                "--unsafe-no-fsync=true".into(),
                "--log-level=warn".into(),
            ],
        )?;
        cluster.components.push(etcd);
    }
    for cluster in &state.clusters[first..] {
        wait_tcp(cluster, "etcd", SocketAddr::from((cluster.ip, 2379))).await?;
    }
    for cluster in &mut state.clusters[first..] {
        let c = cluster.dir();
        let p = c.join("pki");
        let ip = cluster.ip;
        let binary = kube_dir(cluster).join("kube-apiserver");
        let apiserver = spawn(
            &c,
            "kube-apiserver",
            &binary,
            &[
                format!("--advertise-address={ip}"),
                format!("--bind-address={ip}"),
                "--secure-port=6443".into(),
                format!("--etcd-servers=http://{ip}:2379"),
                format!("--cert-dir={}", c.join("apiserver-certs").display()),
                format!("--tls-cert-file={}", p.join("apiserver.crt").display()),
                format!(
                    "--tls-private-key-file={}",
                    p.join("apiserver.key").display()
                ),
                format!("--client-ca-file={}", p.join("ca.crt").display()),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                format!("--service-account-key-file={}", p.join("sa.pub").display()),
                format!(
                    "--service-account-signing-key-file={}",
                    p.join("sa.key").display()
                ),
                "--service-cluster-ip-range=10.96.0.0/16".into(),
                // Kubernetes ≥ 1.37 refuses a loopback advertise address for the
                // `kubernetes` Service's endpoints; nothing here runs pods that use them.
                "--endpoint-reconciler-type=none".into(),
                "--authorization-mode=RBAC".into(),
                "--allow-privileged=true".into(),
                format!(
                    "--audit-policy-file={}",
                    c.join("audit-policy.yaml").display()
                ),
                format!("--audit-log-path={}", c.join("logs/audit.log").display()),
                "--audit-log-format=json".into(),
                "--audit-log-maxsize=200".into(),
                "--profiling=false".into(),
            ],
        )?;
        cluster.components.push(apiserver);
    }
    wait_all_ready(state, Duration::from_secs(90)).await?;
    for cluster in &mut state.clusters[first..] {
        let c = cluster.dir();
        let p = c.join("pki");
        let binary = kube_dir(cluster).join("kube-controller-manager");
        let kcm = spawn(
            &c,
            "kube-controller-manager",
            &binary,
            &[
                format!("--kubeconfig={}", c.join("admin.kubeconfig").display()),
                format!("--bind-address={}", cluster.ip),
                "--secure-port=10257".into(),
                format!("--cert-dir={}", c.join("kcm-certs").display()),
                format!(
                    "--service-account-private-key-file={}",
                    p.join("sa.key").display()
                ),
                format!("--root-ca-file={}", p.join("ca.crt").display()),
                "--leader-elect=false".into(),
                "--use-service-account-credentials=false".into(),
                // No kubelets heartbeat here: the simulated node must not be evicted.
                "--controllers=*,-node-lifecycle-controller".into(),
                "--profiling=false".into(),
            ],
        )?;
        cluster.components.push(kcm);
    }
    // The controller-manager is up once the ServiceAccount controller has made `default/default`.
    for cluster in &state.clusters[first..] {
        wait_default_service_account(cluster, Duration::from_secs(60)).await?;
    }
    // The simulator reads the cluster list when it starts: (re)start it.
    if let Some(old) = state.simulator_pid.take() {
        signal(old, "TERM");
    }
    let sim_log = state_dir().join("simulator.log");
    // A private copy of this very binary: `cargo xtask test` rebuilds xtask (with
    // test features) before it gets here, which unlinks the file this process runs
    // from; /proc/self/exe still reads it, and a rebuild never touches the copy.
    let exe = state_dir().join("simulator");
    let _ = std::fs::remove_file(&exe);
    std::fs::copy("/proc/self/exe", &exe).context("copying the xtask binary for the simulator")?;
    let simulator = spawn_logged(
        &sim_log,
        &exe,
        &["testbed".into(), "simulate".into()],
        &state_dir(),
    )?;
    state.simulator_pid = Some(simulator);
    // Give the simulator a moment to fail loudly (bad kubeconfig, say) rather than silently.
    tokio::time::sleep(Duration::from_millis(300)).await;
    if !alive(simulator) {
        bail!(component_failed("simulator", &sim_log));
    }
    Ok(())
}

fn spawn(cluster_dir: &Path, name: &str, binary: &Path, args: &[String]) -> Result<Component> {
    let log = cluster_dir.join("logs").join(format!("{name}.log"));
    let pid = spawn_logged(&log, binary, args, cluster_dir)?;
    Ok(Component {
        name: name.to_owned(),
        pid,
        log,
    })
}

/// Starts a detached process (its own process group, so it outlives `xtask`) logging to `log`.
fn spawn_logged(log: &Path, binary: &Path, args: &[String], cwd: &Path) -> Result<u32> {
    let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let child = Command::new(binary)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    Ok(child.id())
}

fn component_failed(name: &str, log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(25).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    format!(
        "{name} failed to start; the last lines of {}:\n{}",
        log.display(),
        tail.join("\n")
    )
}

fn component<'a>(cluster: &'a ClusterState, name: &str) -> &'a Component {
    cluster
        .components
        .iter()
        .find(|c| c.name == name)
        .expect("component was started")
}

async fn wait_tcp(cluster: &ClusterState, name: &str, addr: SocketAddr) -> Result<()> {
    let comp = component(cluster, name);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if !alive(comp.pid) || Instant::now() > deadline {
            bail!(component_failed(
                &format!("{name} of {}", cluster.name),
                &comp.log
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client of one cluster, as the admin.
pub async fn admin_client(cluster: &ClusterState) -> Result<kube::Client> {
    client_from(&cluster.dir().join("admin.kubeconfig")).await
}

/// A client from a single-context kubeconfig file.
pub async fn client_from(path: &Path) -> Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

async fn wait_all_ready(state: &State, timeout: Duration) -> Result<()> {
    let waits = state.clusters.iter().map(|c| wait_ready(c, timeout));
    for result in futures::future::join_all(waits).await {
        result?;
    }
    Ok(())
}

async fn wait_ready(cluster: &ClusterState, timeout: Duration) -> Result<()> {
    let comp = component(cluster, "kube-apiserver");
    let client = admin_client(cluster).await?;
    let deadline = Instant::now() + timeout;
    loop {
        let req = http::Request::get("/readyz").body(Vec::new())?;
        match client.request_text(req).await {
            Ok(body) if body.trim() == "ok" => return Ok(()),
            _ if !alive(comp.pid) => bail!(component_failed(
                &format!("kube-apiserver of {}", cluster.name),
                &comp.log
            )),
            _ if Instant::now() > deadline => bail!(
                "kube-apiserver of {} at {} was not ready after {:?}; see {}",
                cluster.name,
                cluster.server(),
                timeout,
                comp.log.display()
            ),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

async fn wait_default_service_account(cluster: &ClusterState, timeout: Duration) -> Result<()> {
    use k8s_openapi::api::core::v1::ServiceAccount;
    let comp = component(cluster, "kube-controller-manager");
    let client = admin_client(cluster).await?;
    let api: kube::Api<ServiceAccount> = kube::Api::namespaced(client, "default");
    let deadline = Instant::now() + timeout;
    loop {
        if api.get_opt("default").await?.is_some() {
            return Ok(());
        }
        if !alive(comp.pid) {
            bail!(component_failed(
                &format!("kube-controller-manager of {}", cluster.name),
                &comp.log
            ));
        }
        if Instant::now() > deadline {
            bail!(
                "kube-controller-manager of {} did not create the default ServiceAccount within {:?}; see {}",
                cluster.name,
                timeout,
                comp.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stops every process the test bed started and removes its state.
pub fn down() -> Result<()> {
    let Some(state) = State::load()? else {
        let dir = state_dir();
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        return Ok(());
    };
    // Stop from the top down: an API server whose etcd is already gone hangs in its
    // graceful shutdown until it is killed.
    let pids: Vec<(String, u32)> = state.pids().map(|(n, p)| (n.to_owned(), p)).collect();
    let stages: [&[&str]; 3] = [
        &["simulator", "kube-controller-manager"],
        &["kube-apiserver"],
        &["etcd"],
    ];
    for stage in stages {
        let group: Vec<&(String, u32)> = pids
            .iter()
            .filter(|(name, _)| stage.contains(&name.as_str()))
            .collect();
        for (_, pid) in &group {
            signal(*pid, "TERM");
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while group.iter().any(|(_, pid)| alive(*pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        for (name, pid) in &group {
            if alive(*pid) {
                eprintln!("xtask: {name} (pid {pid}) ignored SIGTERM; killing it");
                signal(*pid, "KILL");
            }
        }
    }
    std::fs::remove_dir_all(state_dir())
        .with_context(|| format!("removing {}", state_dir().display()))?;
    Ok(())
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// True when the process runs (a zombie does not count).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.trim().chars().next());
            !matches!(state, Some('Z' | 'X') | None)
        }
        Err(_) => false,
    }
}

/// Shell lines that point kubectl (and the tests) at the test bed.
pub fn env_lines() -> Result<String> {
    // One kubectl for every cluster, the newest (what a test that needs another says).
    let mut path = vec![tools::tool_dir("kubernetes", tools::NEWEST_KUBERNETES)];
    path.extend(crate::istio::tool_dirs());
    let path: Vec<String> = path.iter().map(|p| p.display().to_string()).collect();
    let mut lines = format!(
        "export KUBECONFIG='{}'\nexport KUBECTL_MESH_TESTBED='{}'\nexport PATH='{}':\"$PATH\"\n",
        kubeconfig_path().display(),
        state_dir().display(),
        path.join(":")
    );
    let charts = crate::istio::charts_dir();
    if charts.is_dir() {
        lines.push_str(&format!("export ISTIO_CHARTS='{}'\n", charts.display()));
    }
    Ok(lines)
}

/// `kubectl mesh` arguments of the guide's join on the test bed: cluster2 into
/// cluster1's mesh with the CA bundles in `certs`, unprompted (demo and benchmarks).
pub fn guide_join_args(certs: &str) -> [&str; 7] {
    [
        "join",
        "cluster2",
        "--primary",
        "cluster1",
        "--certs",
        certs,
        "--yes",
    ]
}

/// The environment variables of [`env_lines`], for child processes.
pub fn env_vars() -> Vec<(String, String)> {
    let mut path: Vec<PathBuf> = vec![tools::tool_dir("kubernetes", tools::NEWEST_KUBERNETES)];
    path.extend(crate::istio::tool_dirs());
    let old = std::env::var_os("PATH").unwrap_or_default();
    path.extend(std::env::split_paths(&old));
    let charts = crate::istio::charts_dir();
    let charts = charts
        .is_dir()
        .then(|| ("ISTIO_CHARTS".to_owned(), charts.display().to_string()));
    let mut vars = vec![
        ("KUBECONFIG".into(), kubeconfig_path().display().to_string()),
        (
            "KUBECTL_MESH_TESTBED".into(),
            state_dir().display().to_string(),
        ),
        (
            "PATH".into(),
            std::env::join_paths(path)
                .expect("paths hold no colon")
                .to_string_lossy()
                .into_owned(),
        ),
    ];
    vars.extend(charts);
    vars
}

/// Prints what runs.
pub async fn status() -> Result<bool> {
    let Some(state) = State::load()? else {
        println!(
            "no test bed is up (state directory {})",
            state_dir().display()
        );
        return Ok(false);
    };
    let mut healthy = true;
    let mut total_kib = 0;
    for cluster in &state.clusters {
        println!(
            "{} at {} (Kubernetes {})",
            cluster.name,
            cluster.server(),
            cluster.kubernetes_version
        );
        for comp in &cluster.components {
            let up = alive(comp.pid);
            healthy &= up;
            let kib = resident_kib(comp.pid).unwrap_or(0);
            total_kib += kib;
            println!(
                "  {} {:<24} pid {:<8} {:>5} MiB  log {}",
                if up { "✓" } else { "✗" },
                comp.name,
                comp.pid,
                kib / 1024,
                comp.log.display()
            );
        }
        let ready = wait_ready(cluster, Duration::from_secs(2)).await.is_ok();
        healthy &= ready;
        println!("  {} /readyz", if ready { "✓" } else { "✗" });
        // What the API server itself says, with the same 2 s deadline as /readyz.
        let served = match admin_client(cluster).await {
            Ok(client) => {
                match tokio::time::timeout(Duration::from_secs(2), client.apiserver_version()).await
                {
                    Ok(Ok(v)) => Ok(v.git_version),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("no answer within 2s".to_owned()),
                }
            }
            Err(e) => Err(e.to_string()),
        };
        let matches = served.as_deref() == Ok(cluster.kubernetes_version.as_str());
        healthy &= matches;
        println!(
            "  {} /version {}",
            if matches { "✓" } else { "✗" },
            served.unwrap_or_else(|e| format!("unreadable: {e}"))
        );
    }
    if let Some(pid) = state.simulator_pid {
        let up = alive(pid);
        healthy &= up;
        total_kib += resident_kib(pid).unwrap_or(0);
        println!(
            "{} simulator (LoadBalancer addresses, pod readiness) pid {pid}",
            if up { "✓" } else { "✗" }
        );
    }
    println!(
        "memory: {} MiB resident in the test bed's processes",
        total_kib / 1024
    );
    if let Some(istio) = &state.istio {
        println!(
            "Istio {} ({}), charts in {}",
            crate::istio::ISTIO_BUILD_VERSION,
            istio.version,
            crate::istio::charts_dir().display()
        );
        for cluster in &state.clusters {
            let listed = crate::istio::list(&cluster.name);
            for r in istio.releases.iter().filter(|r| r.cluster == cluster.name) {
                let found = listed
                    .as_ref()
                    .ok()
                    .and_then(|l| l.iter().find(|l| l.name == r.release));
                let status = found.map_or("missing", |l| l.status.as_str());
                let ok = status == "deployed";
                healthy &= ok;
                println!(
                    "  {} {:<9} helm release {:<22} chart {:<8} {status}",
                    if ok { "✓" } else { "✗" },
                    cluster.name,
                    r.release,
                    r.chart
                );
            }
            if let Err(err) = listed {
                println!("  ✗ {}: {err:#}", cluster.name);
            }
        }
    }
    println!("kubeconfig: {}", kubeconfig_path().display());
    Ok(healthy)
}

/// The resident memory of a process, in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn write_audit_policy(cluster_dir: &Path) -> Result<()> {
    // Metadata is enough to count mutating requests; request bodies (secrets!) stay out.
    let policy = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [\"RequestReceived\"]\nrules:\n- level: Metadata\n";
    std::fs::write(cluster_dir.join("audit-policy.yaml"), policy)?;
    Ok(())
}

/// The admin client certificate and key (PEM) inside a test-bed kubeconfig.
fn admin_credentials_from(path: &Path) -> Result<(String, String)> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
    let user = kubeconfig
        .auth_infos
        .first()
        .and_then(|a| a.auth_info.as_ref())
        .context("no user in the admin kubeconfig")?;
    let decode = |data: Option<&String>| -> Result<String> {
        let data = data.context("no client certificate data in the admin kubeconfig")?;
        Ok(String::from_utf8(
            base64::engine::general_purpose::STANDARD.decode(data)?,
        )?)
    };
    use secrecy::ExposeSecret;
    let key = user
        .client_key_data
        .as_ref()
        .map(|k| k.expose_secret().to_owned());
    Ok((
        decode(user.client_certificate_data.as_ref())?,
        decode(key.as_ref())?,
    ))
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn single_kubeconfig(name: &str, ip: Ipv4Addr, ca: &str, cert: &str, key: &str) -> String {
    let mut file = KubeconfigFile::default();
    file.add(name, ip, ca, cert, key);
    file.render()
}

/// A kubeconfig with one context per cluster; the first is current.
#[derive(Default)]
struct KubeconfigFile {
    entries: Vec<(String, String, String, String, String)>,
}

impl KubeconfigFile {
    fn add(&mut self, name: &str, ip: Ipv4Addr, ca: &str, cert: &str, key: &str) {
        self.entries.push((
            name.to_owned(),
            format!("https://{ip}:6443"),
            b64(ca),
            b64(cert),
            b64(key),
        ));
    }

    fn render(&self) -> String {
        let mut clusters = String::new();
        let mut users = String::new();
        let mut contexts = String::new();
        for (name, server, ca, cert, key) in &self.entries {
            clusters.push_str(&format!(
                "- name: {name}\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n"
            ));
            users.push_str(&format!(
                "- name: {name}-admin\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n"
            ));
            contexts.push_str(&format!(
                "- name: {name}\n  context:\n    cluster: {name}\n    user: {name}-admin\n"
            ));
        }
        let current = self.entries.first().map(|e| e.0.as_str()).unwrap_or("");
        format!(
            "apiVersion: v1\nkind: Config\npreferences: {{}}\ncurrent-context: {current}\nclusters:\n{clusters}users:\n{users}contexts:\n{contexts}"
        )
    }
}
