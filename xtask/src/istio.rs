//! Istio as a platform engineer has it before joining clusters: Istio's own charts,
//! rendered by real `helm`, in every cluster of the test bed.
//!
//! - `cluster1`, the primary: `istio-base` (CRDs), `istiod` and `istio-eastwestgateway`.
//! - every other cluster, a remote: `istio-base` and `istio-eastwestgateway`; no istiod,
//!   and no network label on the namespace (that is what `kubectl mesh join` adds).
//!
//! helm is built from `helm.sh/helm/v3`; istiod (`pilot-discovery`), `istioctl` and the
//! charts come from one pinned `istio.io/istio` commit, so the CRDs, the charts and the
//! binaries always agree. All of it is cached like the other tools (see [`crate::tools`]).
//!
//! Architecture invariant: nothing in the test bed serves an admission webhook (no istiod
//! process runs; the simulator only marks its pod Ready), so the charts are rendered
//! without any: a webhook the API server had to call would make every create of an Istio
//! resource, or of a gateway pod, wait for a timeout or fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::testbed::{self, ClusterState};
use crate::tools::{self, WrapperModule};

/// The pinned helm release.
pub const HELM_VERSION: &str = "v3.22.0";
/// The pinned `istio.io/istio` commit (a Go pseudo-version): istiod, istioctl and the charts.
pub const ISTIO_VERSION: &str = "v0.0.0-20260827124520-eed52ebb66ad";
/// What Istio's own build calls that commit: its `VERSION` file plus `-dev`.
pub const ISTIO_BUILD_VERSION: &str = "1.31-dev";
/// The namespace Istio is installed in.
pub const NAMESPACE: &str = "istio-system";
/// The mesh ID every cluster is configured with.
pub const MESH_ID: &str = "mesh1";
/// The release of the east-west gateway, in every cluster.
pub const EASTWEST_RELEASE: &str = "istio-eastwestgateway";

/// Charts copied out of the Istio module: `(name in the cache, path in the module)`.
const CHARTS: &[(&str, &str)] = &[
    ("base", "manifests/charts/base"),
    ("istiod", "manifests/charts/istio-control/istio-discovery"),
    ("gateway", "manifests/charts/gateway"),
];

/// Directory of Istio's charts as copied out of the module: `base`, `istiod`, `gateway`.
pub fn charts_dir() -> PathBuf {
    tools::tool_dir("istio", ISTIO_VERSION).join("charts")
}

/// Directories of the Istio-side tools that are built, for `PATH`.
pub fn tool_dirs() -> Vec<PathBuf> {
    [
        tools::tool_dir("helm", HELM_VERSION),
        tools::tool_dir("istio", ISTIO_VERSION),
    ]
    .into_iter()
    .filter(|d| d.is_dir())
    .collect()
}

/// The network of the `index`-th cluster (1-based): `network<index>`.
pub fn network(index: usize) -> String {
    format!("network{index}")
}

/// Makes sure helm is built; returns its directory.
pub fn ensure_helm() -> Result<PathBuf> {
    let v = "helm.sh/helm/v3/internal/version";
    let caps = "helm.sh/helm/v3/pkg/chartutil";
    tools::ensure(&WrapperModule {
        name: "helm",
        version: HELM_VERSION.to_owned(),
        go_mod: format!(
            "module kubectl-mesh.local/testbed/helm\n\ngo 1.26.0\n\nrequire helm.sh/helm/v3 {HELM_VERSION}\n\ntool helm.sh/helm/v3/cmd/helm\n"
        ),
        files: vec![],
        packages: vec!["helm.sh/helm/v3/cmd/helm".into()],
        // As helm's Makefile does; 1.37 is the Kubernetes version its client-go speaks.
        ldflags: format!(
            "-s -w -X {v}.version={HELM_VERSION} -X {v}.gitTreeState=clean -X {caps}.k8sVersionMajor=1 -X {caps}.k8sVersionMinor=37"
        ),
        binaries: vec!["helm"],
        also: vec![],
        finish: None,
    })
}

/// Makes sure pilot-discovery (istiod) and istioctl are built and Istio's charts are
/// copied next to them; returns their directory.
pub fn ensure_istio() -> Result<PathBuf> {
    let v = "istio.io/istio/pkg/version";
    let commit = ISTIO_VERSION.rsplit('-').next().unwrap_or_default();
    tools::ensure(&WrapperModule {
        name: "istio",
        version: ISTIO_VERSION.to_owned(),
        go_mod: format!(
            "module kubectl-mesh.local/testbed/istio\n\ngo 1.26.0\n\nrequire istio.io/istio {ISTIO_VERSION}\n\ntool (\n\tistio.io/istio/istioctl/cmd/istioctl\n\tistio.io/istio/pilot/cmd/pilot-discovery\n)\n"
        ),
        files: vec![],
        packages: vec![
            "istio.io/istio/pilot/cmd/pilot-discovery".into(),
            "istio.io/istio/istioctl/cmd/istioctl".into(),
        ],
        ldflags: format!(
            "-s -w -X {v}.buildVersion={ISTIO_BUILD_VERSION} -X {v}.buildGitRevision={commit} -X {v}.buildStatus=Clean -X {v}.buildTag={ISTIO_VERSION}"
        ),
        binaries: vec!["pilot-discovery", "istioctl"],
        also: vec![
            "charts/base/Chart.yaml",
            "charts/istiod/Chart.yaml",
            "charts/gateway/Chart.yaml",
        ],
        finish: Some(copy_charts),
    })
}

/// Copies the charts out of the module cache (read-only there, and gone after
/// `go clean -modcache`) into `<tool dir>/charts`.
fn copy_charts(src: &Path, tool_dir: &Path) -> Result<()> {
    let json = tools::go_output(
        src,
        &[
            "mod",
            "download",
            "-json",
            &format!("istio.io/istio@{ISTIO_VERSION}"),
        ],
    )?;
    let info: Value = serde_json::from_str(&json).context("parsing `go mod download -json`")?;
    let module = info["Dir"]
        .as_str()
        .context("`go mod download -json` named no Dir for istio.io/istio")?;
    for (name, path) in CHARTS {
        let from = Path::new(module).join(path);
        copy_tree(&from, &tool_dir.join("charts").join(name))
            .with_context(|| format!("copying Istio's {name} chart from {}", from.display()))?;
    }
    Ok(())
}

/// Copies a directory tree, giving the copies ordinary (writable) permissions.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::write(&target, std::fs::read(entry.path())?)?;
        }
    }
    Ok(())
}

/// What `up --with-istio` recorded in the test bed state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IstioState {
    /// The `istio.io/istio` version the charts came from.
    pub version: String,
    pub releases: Vec<InstalledRelease>,
}

/// One helm release in one cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstalledRelease {
    pub cluster: String,
    pub release: String,
    pub chart: String,
}

/// One helm release to install: which chart, where, with which values.
#[derive(Debug, Clone)]
pub struct Release {
    pub cluster: String,
    pub release: &'static str,
    pub chart: &'static str,
    pub values: Value,
}

/// The releases of every cluster, in install order; the first cluster is the primary.
pub fn plan(clusters: &[ClusterState]) -> Vec<Release> {
    let mut releases = Vec::new();
    for (i, cluster) in clusters.iter().enumerate() {
        let network = network(i + 1);
        let release = |release, chart, values| Release {
            cluster: cluster.name.clone(),
            release,
            chart,
            values,
        };
        // No default revision: it would add `istiod-default-validator`, a webhook the API
        // server calls for every Istio resource (and `Fail` once helm upgrades it).
        releases.push(release(
            "istio-base",
            "base",
            json!({"defaultRevision": ""}),
        ));
        if i == 0 {
            releases.push(release(
                "istiod",
                "istiod",
                json!({
                    "global": {
                        "meshID": MESH_ID,
                        "multiCluster": {"clusterName": cluster.name},
                        "network": network,
                        // No `istio-validator` webhook: no istiod serves it.
                        "configValidation": false,
                        // No sidecar injector webhook (failurePolicy Fail): gateway pods
                        // ask for injection and could not be created without an istiod.
                        "operatorManageWebhooks": true,
                    },
                    // No metrics API in the test bed, so no HorizontalPodAutoscaler.
                    "autoscaleEnabled": false,
                }),
            ));
        }
        // The shape of Istio's samples/multicluster/gen-eastwest-gateway.sh, via the
        // gateway chart's `networkGateway`: ports status-port 15021, tls 15443,
        // tls-istiod 15012, tls-webhook 15017, the network label on the Service and pods,
        // ISTIO_META_REQUESTED_NETWORK_VIEW on the proxy.
        releases.push(release(
            EASTWEST_RELEASE,
            "gateway",
            json!({
                "networkGateway": network,
                // `networkGateway` adds topology.istio.io/network to the Service and pods.
                "labels": {"app": EASTWEST_RELEASE, "istio": "eastwestgateway"},
                "service": {"type": "LoadBalancer"},
                "autoscaling": {"enabled": false},
            }),
        ));
    }
    releases
}

/// A release as `helm list -o json` shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct Listed {
    pub name: String,
    pub status: String,
    pub chart: String,
    #[serde(default)]
    pub revision: String,
}

fn helm(args: &[&str]) -> Result<std::process::Output> {
    let bin = tools::tool_dir("helm", HELM_VERSION).join("helm");
    Command::new(&bin)
        .args(args)
        .args([
            "--kubeconfig",
            &testbed::kubeconfig_path().display().to_string(),
        ])
        .output()
        .with_context(|| format!("running {}", bin.display()))
}

fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The releases in the Istio namespace of `cluster`, as helm lists them.
pub fn list(cluster: &str) -> Result<Vec<Listed>> {
    let out = helm(&[
        "list",
        "--all",
        "--kube-context",
        cluster,
        "--namespace",
        NAMESPACE,
        "--output",
        "json",
    ])?;
    if !out.status.success() {
        bail!(
            "`helm list` in {cluster} failed ({}):\n{}",
            out.status,
            tail(&out.stderr, 20)
        );
    }
    serde_json::from_slice(&out.stdout).context("parsing `helm list --output json`")
}

/// Installs what is missing of [`plan`] with `helm upgrade --install`; releases already
/// deployed from the same Istio version are left alone, so whatever `kubectl mesh join`
/// changed in them (meshNetworks, say) stays. Returns what is installed.
pub fn install(clusters: &[ClusterState], previous: Option<&IstioState>) -> Result<IstioState> {
    ensure_helm()?;
    let istio_dir = ensure_istio()?;
    let same_version = previous.is_some_and(|p| p.version == ISTIO_VERSION);
    let plan = plan(clusters);
    let started = Instant::now();
    let installed = std::thread::scope(|scope| {
        let workers: Vec<_> = clusters
            .iter()
            .map(|cluster| {
                let releases: Vec<&Release> =
                    plan.iter().filter(|r| r.cluster == cluster.name).collect();
                let charts = istio_dir.join("charts");
                scope.spawn(move || -> Result<usize> {
                    let deployed: Vec<String> = if same_version {
                        list(&cluster.name)?
                            .into_iter()
                            .filter(|l| l.status == "deployed")
                            .map(|l| l.name)
                            .collect()
                    } else {
                        Vec::new()
                    };
                    let mut count = 0;
                    for release in releases {
                        if !deployed.iter().any(|d| d == release.release) {
                            upgrade_install(release, &charts)?;
                            count += 1;
                        }
                    }
                    Ok(count)
                })
            })
            .collect();
        let mut count = 0;
        for worker in workers {
            count += worker.join().expect("helm worker panicked")?;
        }
        anyhow::Ok(count)
    })?;
    if installed == 0 {
        eprintln!("xtask: Istio {ISTIO_BUILD_VERSION} ({ISTIO_VERSION}) is installed already");
    } else {
        eprintln!(
            "xtask: Istio {ISTIO_BUILD_VERSION} installed ({installed} helm releases) in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(IstioState {
        version: ISTIO_VERSION.to_owned(),
        releases: plan
            .iter()
            .map(|r| InstalledRelease {
                cluster: r.cluster.clone(),
                release: r.release.to_owned(),
                chart: r.chart.to_owned(),
            })
            .collect(),
    })
}

fn upgrade_install(release: &Release, charts: &Path) -> Result<()> {
    let values_dir = testbed::state_dir().join("istio");
    std::fs::create_dir_all(&values_dir)?;
    let values = values_dir.join(format!(
        "{}-{}.values.json",
        release.cluster, release.release
    ));
    std::fs::write(&values, serde_json::to_vec_pretty(&release.values)?)?;
    let started = Instant::now();
    let out = helm(&[
        "upgrade",
        "--install",
        release.release,
        &charts.join(release.chart).display().to_string(),
        "--kube-context",
        &release.cluster,
        "--namespace",
        NAMESPACE,
        "--create-namespace",
        // Tests may have created, say, istio-reader-service-account before Istio came.
        "--take-ownership",
        "--values",
        &values.display().to_string(),
        "--wait",
        "--timeout",
        "2m",
    ])?;
    if !out.status.success() {
        bail!(
            "helm could not install release {} (chart {}) in {} ({}); values in {}; helm said:\n{}{}",
            release.release,
            release.chart,
            release.cluster,
            out.status,
            values.display(),
            tail(&out.stdout, 20),
            tail(&out.stderr, 40)
        );
    }
    eprintln!(
        "xtask: {}: helm installed {} in {:.1}s",
        release.cluster,
        release.release,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
