//! `join --install`: Istio installed where it is missing, by real `helm`.
//!
//! The releases are the ones Istio's multi-network primary-remote guide installs by hand,
//! with the values it sets:
//!
//! | cluster | release | chart | values set here |
//! |---|---|---|---|
//! | primary | `istio-base` | `base` | `global.externalIstiod` |
//! | primary | `istiod` | `istiod` | `global.meshID`, `global.multiCluster.clusterName`, `global.network`, `global.externalIstiod` |
//! | each | `istio-eastwestgateway` | `gateway` | `name`, `networkGateway` (the east-west ports and the network label) |
//! | multi-primary member | `istio-base`, `istiod` | `base`, `istiod` | `global.meshID`, `global.multiCluster.clusterName`, `global.network` (`member_releases`) |
//! | remote | `istio-base` | `base` | `profile: remote` |
//! | remote | `istiod` | `istiod` | `profile: remote`, cluster name, network, `istiodRemote.injectionPath` `/inject/cluster/<cluster>/net/<network>`, `global.configCluster`, `global.remotePilotAddress` = the primary's east-west gateway address |
//!
//! Every release goes through `helm upgrade --install`, so the releases can be managed
//! with helm afterwards. The user's own values files and `--set`s come after these, so
//! they win. A release already deployed is left alone (nothing is upgraded behind the
//! user's back); a release left `failed` or `pending-install` by an interrupted run is
//! repaired. helm runs without `--wait`: mesh-core waits itself (CRDs Established,
//! Deployments rolled out), with progress and a deadline.
//!
//! ```
//! use mesh_core::install::{Charts, remote_releases};
//!
//! // What a join installs in a remote named cluster2 on network2, whose istiod reaches
//! // the primary's east-west gateway at 203.0.113.7.
//! let charts = Charts { base: "c/base".into(), istiod: "c/istiod".into(), gateway: "c/gateway".into() };
//! let [base, istiod, gateway] = remote_releases(&charts, "cluster2", "network2", "203.0.113.7");
//! assert_eq!(istiod.values["global"]["remotePilotAddress"], "203.0.113.7");
//! assert_eq!((base.name, gateway.name), ("istio-base", "istio-eastwestgateway"));
//! ```
//!
//! # How an install runs
//!
//! This module drives real `helm` (a child process; its output is captured, never printed,
//! and its last lines become `Error::Install`'s reason; the debug log shows its arguments
//! with `--set` values blanked, since a user may pass a credential there). The releases are the guide's, with
//! its values (`primary_releases`, `remote_releases`): on the primary `istio-base`
//! (`global.externalIstiod`), `istiod` (`meshID`, `multiCluster.clusterName`, `network`,
//! `externalIstiod`) and `istio-eastwestgateway` (gateway chart, `networkGateway`); on a
//! remote `istio-base` and `istiod` with `profile: remote`, `configCluster`,
//! `istiodRemote.injectionPath: /inject/cluster/<name>/net/<network>` and
//! `remotePilotAddress` = the primary's east-west gateway address as join found it — so a
//! remote's istiod step waits for the primary's address — then its east-west gateway (after
//! istiod, whose injector completes the gateway pods). Each is `helm upgrade --install`
//! with our values on stdin (`--values -`), then the user's `--values`/`--set` (control
//! plane) or `--gateway-values`/`--gateway-set` (gateway chart, whose schema refuses
//! istiod's keys), which helm applies after ours. A release is installed only when it is
//! missing (no CRDs; no istiod ConfigMap/Deployment; no `istiod` Service on a remote; no
//! east-west gateway Service) or left `failed`/`pending-install` by an interrupted run
//! (helm's states are one enum, `install::ReleaseStatus`, read from `helm list`; which
//! states need repair and which are another operation's are its methods)
//! (`pending-install` is uninstalled first, helm itself refuses to touch it — but only when
//! provably left over: its record is older than one install's wait plus
//! `PENDING_IS_DEAD_AFTER`, or the user passed `--repair-pending`). On SIGINT/SIGTERM
//! (`Interrupt`, raised by the binary) a running helm gets SIGTERM and is waited for
//! (30 s, then killed); no helm starts after it. Deployed
//! releases are never upgraded — with one exception that keeps the mesh converging: when a
//! remote's deployed `istiod` release (ours, remote profile) no longer leads to the
//! primary's gateway address (its `istiod` Service's EndpointSlice or ExternalName, as
//! `cluster::istiod_service` reads it once per remote — the same read decides whether the
//! remote profile is missing), join re-points it with `helm upgrade --reuse-values
//! --set global.remotePilotAddress=…`, and only when the given chart is the installed one
//! (else a warning with that command). helm runs without `--wait`; mesh-core waits itself, with
//! `Waiting` progress (sent only when what is awaited changes) and the join's deadline:
//! Istio's CRDs Established after `istio-base`,
//! the release's Deployments (found by helm's `meta.helm.sh/release-name` annotation) rolled
//! out after `istiod` and the gateway. A loopback primary gateway address is refused before
//! the remote install (Kubernetes refuses it in the istiod EndpointSlice; a remote could not
//! reach it). A dry run renders each release with `helm template` instead and returns its
//! objects as a `v1 List` (the binary prints one YAML document per object, after a
//! `# <cluster>: <change>` comment); a remote's istiod is rendered only when the primary's
//! address is known (`--primary-gateway-address`), else described.
//!
//! Architecture invariant: helm is the only thing that installs Istio's charts; no chart
//! is vendored or re-implemented here. Its output is captured, never printed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Problem, ProblemKind, Result, ValuesFor, kube};

/// The release of Istio's CRDs and cluster-wide pieces.
pub const BASE_RELEASE: &str = "istio-base";
/// The release of istiod (the remote profile on remotes).
pub const ISTIOD_RELEASE: &str = "istiod";
/// The release of the east-west gateway.
pub const EASTWEST_RELEASE: &str = "istio-eastwestgateway";
/// The mesh ID the guide uses, the default of [`InstallOptions::mesh_id`].
pub const DEFAULT_MESH_ID: &str = "mesh1";

/// How to install Istio where it is missing.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// The helm binary (a name looked up on `PATH`, or a path).
    pub helm: PathBuf,
    /// Istio's chart directory: `base/`, `istiod/` and `gateway/` (as `helm pull` gives
    /// them), or an Istio release's `manifests/charts` (`istio-control/istio-discovery`).
    pub charts: PathBuf,
    /// The kubeconfig files helm reads (as `KUBECONFIG`); empty: helm's own default.
    pub kubeconfig_files: Vec<PathBuf>,
    /// The mesh ID given to the primary's istiod.
    pub mesh_id: String,
    /// Values files for the control-plane releases (`istio-base`, `istiod`), after ours.
    pub values_files: Vec<PathBuf>,
    /// `KEY=VALUE`s for the control-plane releases, last (helm's `--set`).
    pub set: Vec<String>,
    /// Values files for the east-west gateway releases.
    pub gateway_values_files: Vec<PathBuf>,
    /// `KEY=VALUE`s for the east-west gateway releases.
    pub gateway_set: Vec<String>,
    /// Repair (uninstall, then install) a release of ours left `pending-install` even
    /// when its record is recent, i.e. when another helm may still be installing it.
    /// Without it, only a record older than `PENDING_IS_DEAD_AFTER` (a minute) plus the join's
    /// wait is repaired; a younger one is a preflight problem.
    pub repair_pending: bool,
}

/// How much longer than one install's wait (helm's `--timeout`) a `pending-install`
/// record must be to be taken as left by a process that is gone: no helm run of a join
/// with the same wait can still be working on it.
pub const PENDING_IS_DEAD_AFTER: Duration = Duration::from_secs(60);

impl InstallOptions {
    /// Options with `helm` from `PATH`, the guide's mesh ID and no extra values.
    ///
    /// ```
    /// let install = mesh_core::InstallOptions::new("istio/manifests/charts");
    /// assert_eq!(install.mesh_id, "mesh1");
    /// assert_eq!(install.helm, std::path::Path::new("helm"));
    /// ```
    pub fn new(charts: impl Into<PathBuf>) -> InstallOptions {
        InstallOptions {
            helm: "helm".into(),
            charts: charts.into(),
            kubeconfig_files: Vec::new(),
            mesh_id: DEFAULT_MESH_ID.into(),
            values_files: Vec::new(),
            set: Vec::new(),
            gateway_values_files: Vec::new(),
            gateway_set: Vec::new(),
            repair_pending: false,
        }
    }
}

/// Where Istio's three charts are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charts {
    /// The `base` chart (CRDs, reader RBAC).
    pub base: PathBuf,
    /// The `istiod` chart (`istio-discovery` in Istio's source tree).
    pub istiod: PathBuf,
    /// The `gateway` chart.
    pub gateway: PathBuf,
}

impl Charts {
    /// Finds the charts in `dir`, in either layout; the error names what is missing and
    /// how to get it.
    ///
    /// ```no_run
    /// let charts = mesh_core::install::Charts::find("istio-1.28.0/manifests/charts".as_ref())?;
    /// assert!(charts.istiod.ends_with("istio-control/istio-discovery"));
    /// # Ok::<(), mesh_core::Error>(())
    /// ```
    pub fn find(dir: &Path) -> Result<Charts> {
        let pick = |candidates: &[&str]| {
            candidates
                .iter()
                .map(|c| dir.join(c))
                .find(|p| p.join("Chart.yaml").is_file())
        };
        let base = pick(&["base"]);
        let istiod = pick(&["istiod", "istio-control/istio-discovery"]);
        let gateway = pick(&["gateway"]);
        match (base, istiod, gateway) {
            (Some(base), Some(istiod), Some(gateway)) => Ok(Charts {
                base,
                istiod,
                gateway,
            }),
            (base, istiod, gateway) => {
                let missing: Vec<&str> = [
                    ("base/", base.is_none()),
                    (
                        "istiod/ (or istio-control/istio-discovery/)",
                        istiod.is_none(),
                    ),
                    ("gateway/", gateway.is_none()),
                ]
                .into_iter()
                .filter_map(|(name, gone)| gone.then_some(name))
                .collect();
                Err(Error::Install {
                    cluster: "-".into(),
                    what: format!("finding Istio's charts in {}", dir.display()),
                    reason: format!(
                        "no Chart.yaml under {}; give the manifests/charts directory of an Istio release, or a directory holding the charts `helm pull istio/base --untar`, `helm pull istio/istiod --untar` and `helm pull istio/gateway --untar` give",
                        missing.join(", ")
                    ),
                })
            }
        }
    }
}

/// One helm release to install: what `helm upgrade --install` is given.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    /// The release name.
    pub name: &'static str,
    /// The chart directory.
    pub chart: PathBuf,
    /// Our values (the user's values files and `--set`s come after them).
    pub values: Value,
}

/// The primary's releases, in install order: base, istiod, east-west gateway.
///
/// ```
/// let charts = mesh_core::install::Charts {
///     base: "c/base".into(), istiod: "c/istiod".into(), gateway: "c/gateway".into(),
/// };
/// let releases = mesh_core::install::primary_releases(&charts, "mesh1", "cluster1", "network1");
/// assert_eq!(releases[1].values["global"]["multiCluster"]["clusterName"], "cluster1");
/// assert_eq!(releases[2].values["networkGateway"], "network1");
/// ```
pub fn primary_releases(
    charts: &Charts,
    mesh_id: &str,
    cluster: &str,
    network: &str,
) -> [Release; 3] {
    [
        Release {
            name: BASE_RELEASE,
            chart: charts.base.clone(),
            values: json!({"global": {"externalIstiod": true}}),
        },
        istiod_release(charts, mesh_id, cluster, network, true),
        eastwest_release(charts, network),
    ]
}

/// istiod with the mesh ID, cluster name and network; `serves_remotes` sets
/// `externalIstiod` (a primary-remote primary's).
fn istiod_release(
    charts: &Charts,
    mesh_id: &str,
    cluster: &str,
    network: &str,
    serves_remotes: bool,
) -> Release {
    let mut global = json!({
        "meshID": mesh_id,
        "multiCluster": {"clusterName": cluster},
        "network": network,
    });
    if serves_remotes {
        global["externalIstiod"] = json!(true);
    }
    Release {
        name: ISTIOD_RELEASE,
        chart: charts.istiod.clone(),
        values: json!({ "global": global }),
    }
}

/// A multi-primary member's releases, in install order: Istio's multi-primary install —
/// `istio-base`, `istiod` with the mesh ID, cluster name and network (no
/// `externalIstiod`: it serves no remote), then its east-west gateway.
///
/// ```
/// # let charts = mesh_core::install::Charts {
/// #     base: "charts/base".into(), istiod: "charts/istiod".into(), gateway: "charts/gateway".into(),
/// # };
/// let releases = mesh_core::install::member_releases(&charts, "mesh1", "cluster2", "network2");
/// assert_eq!(releases[1].values["global"]["multiCluster"]["clusterName"], "cluster2");
/// assert!(releases[1].values["global"].get("externalIstiod").is_none());
/// ```
pub fn member_releases(
    charts: &Charts,
    mesh_id: &str,
    cluster: &str,
    network: &str,
) -> [Release; 3] {
    [
        Release {
            name: BASE_RELEASE,
            chart: charts.base.clone(),
            values: json!({}),
        },
        istiod_release(charts, mesh_id, cluster, network, false),
        eastwest_release(charts, network),
    ]
}

/// A remote's releases, in install order: base and istiod with the remote profile
/// (istiod's address: `pilot_address`, the primary's east-west gateway), then its
/// east-west gateway — after istiod, whose injector fills in the gateway's proxy.
///
/// ```
/// let charts = mesh_core::install::Charts {
///     base: "c/base".into(), istiod: "c/istiod".into(), gateway: "c/gateway".into(),
/// };
/// let releases = mesh_core::install::remote_releases(&charts, "cluster2", "network2", "192.0.2.10");
/// let istiod = &releases[1].values;
/// assert_eq!(istiod["profile"], "remote");
/// assert_eq!(istiod["istiodRemote"]["injectionPath"], "/inject/cluster/cluster2/net/network2");
/// assert_eq!(istiod["global"]["remotePilotAddress"], "192.0.2.10");
/// ```
pub fn remote_releases(
    charts: &Charts,
    cluster: &str,
    network: &str,
    pilot_address: &str,
) -> [Release; 3] {
    [
        Release {
            name: BASE_RELEASE,
            chart: charts.base.clone(),
            values: json!({"profile": "remote"}),
        },
        Release {
            name: ISTIOD_RELEASE,
            chart: charts.istiod.clone(),
            values: json!({
                "profile": "remote",
                "global": {
                    "multiCluster": {"clusterName": cluster},
                    "network": network,
                    "configCluster": true,
                    "remotePilotAddress": pilot_address,
                },
                "istiodRemote": {"injectionPath": injection_path(cluster, network)},
            }),
        },
        eastwest_release(charts, network),
    ]
}

/// The sidecar injection path that names a remote's cluster and network to istiod.
///
/// ```
/// assert_eq!(mesh_core::install::injection_path("c2", "n2"), "/inject/cluster/c2/net/n2");
/// ```
pub fn injection_path(cluster: &str, network: &str) -> String {
    format!("/inject/cluster/{cluster}/net/{network}")
}

fn eastwest_release(charts: &Charts, network: &str) -> Release {
    Release {
        name: EASTWEST_RELEASE,
        chart: charts.gateway.clone(),
        values: json!({"name": EASTWEST_RELEASE, "networkGateway": network}),
    }
}

/// One release as `helm list --output json` shows it.
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct Listed {
    pub(crate) name: String,
    /// Where its last operation left it.
    pub(crate) status: ReleaseStatus,
    /// `<chart name>-<chart version>`.
    pub(crate) chart: String,
    /// When the record was last written, as helm prints it
    /// (`2025-01-02 15:04:05.999999999 +0000 UTC`).
    #[serde(default)]
    pub(crate) updated: String,
}

/// A helm release's state, as `helm list` names it (helm's `release.Status`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(from = "String")]
pub(crate) enum ReleaseStatus {
    /// Installed or upgraded.
    Deployed,
    /// Replaced by a later revision.
    Superseded,
    /// Its last operation failed.
    Failed,
    /// An install started and has not ended (or was interrupted).
    PendingInstall,
    /// An upgrade started and has not ended.
    PendingUpgrade,
    /// A rollback started and has not ended.
    PendingRollback,
    /// Being uninstalled.
    Uninstalling,
    /// Uninstalled with its history kept.
    Uninstalled,
    /// Anything else helm may print (`unknown`, or a state of a later helm).
    Other(String),
}

impl From<String> for ReleaseStatus {
    fn from(text: String) -> ReleaseStatus {
        match text.as_str() {
            "deployed" => ReleaseStatus::Deployed,
            "superseded" => ReleaseStatus::Superseded,
            "failed" => ReleaseStatus::Failed,
            "pending-install" => ReleaseStatus::PendingInstall,
            "pending-upgrade" => ReleaseStatus::PendingUpgrade,
            "pending-rollback" => ReleaseStatus::PendingRollback,
            "uninstalling" => ReleaseStatus::Uninstalling,
            "uninstalled" => ReleaseStatus::Uninstalled,
            _ => ReleaseStatus::Other(text),
        }
    }
}

impl ReleaseStatus {
    /// Left by an interrupted or failed install of ours: join repairs it (a pending
    /// install only when provably left over, see `PENDING_IS_DEAD_AFTER`).
    pub(crate) fn needs_repair(&self) -> bool {
        matches!(self, ReleaseStatus::Failed | ReleaseStatus::PendingInstall)
    }

    /// In another helm operation join must not touch (an upgrade, a rollback, an
    /// uninstall, or a state join does not know): the user finishes or undoes it.
    pub(crate) fn is_stuck(&self) -> bool {
        !matches!(
            self,
            ReleaseStatus::Deployed
                | ReleaseStatus::Superseded
                | ReleaseStatus::Failed
                | ReleaseStatus::PendingInstall
        )
    }
}

impl std::fmt::Display for ReleaseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReleaseStatus::Deployed => "deployed",
            ReleaseStatus::Superseded => "superseded",
            ReleaseStatus::Failed => "failed",
            ReleaseStatus::PendingInstall => "pending-install",
            ReleaseStatus::PendingUpgrade => "pending-upgrade",
            ReleaseStatus::PendingRollback => "pending-rollback",
            ReleaseStatus::Uninstalling => "uninstalling",
            ReleaseStatus::Uninstalled => "uninstalled",
            ReleaseStatus::Other(text) => text,
        })
    }
}

impl Listed {
    /// How long before `now` the record was last written; `None` when helm's time is
    /// unreadable.
    pub(crate) fn age_at(&self, now: std::time::SystemTime) -> Option<Duration> {
        let updated = unix_seconds(&self.updated)?;
        let now = now.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
        Some(Duration::from_secs(
            now.saturating_sub(u64::try_from(updated).ok()?),
        ))
    }
}

/// Seconds since the epoch of a time as Go prints it (`2006-01-02 15:04:05.999 -0700 MST`).
fn unix_seconds(text: &str) -> Option<i64> {
    let mut parts = text.split_whitespace();
    let (date, time, offset) = (parts.next()?, parts.next()?, parts.next()?);
    let mut ymd = date.splitn(3, '-').map(|n| n.parse::<i64>().ok());
    let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let time = time.split('.').next()?;
    let mut hms = time.splitn(3, ':').map(|n| n.parse::<i64>().ok());
    let (h, min, sec) = (hms.next()??, hms.next()??, hms.next()??);
    let (sign, digits) = match offset.as_bytes().first()? {
        b'+' => (1, &offset[1..]),
        b'-' => (-1, &offset[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let off =
        sign * (digits[..2].parse::<i64>().ok()? * 3600 + digits[2..].parse::<i64>().ok()? * 60);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(days * 86_400 + h * 3600 + min * 60 + sec - off)
}

/// `<name>-<version>` of the chart in `dir`, as `helm list` names it.
pub(crate) fn chart_id(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("Chart.yaml")).ok()?;
    let chart: Value = serde_saphyr::from_str(&text).ok()?;
    Some(format!(
        "{}-{}",
        chart["name"].as_str()?,
        chart["version"].as_str()?
    ))
}

/// How long a helm sent SIGTERM may take to end before it is killed.
const HELM_STOP_GRACE: Duration = Duration::from_secs(30);

/// Runs helm for one join: one Istio namespace, the user's extra values.
pub(crate) struct Helm<'a> {
    pub(crate) opts: &'a InstallOptions,
    pub(crate) namespace: &'a str,
    pub(crate) timeout: Duration,
    /// On a signal, a running helm gets SIGTERM and is waited for; none starts after.
    pub(crate) interrupt: crate::Interrupt,
}

/// What helm printed, and whether it succeeded.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Helm<'_> {
    async fn run(&self, cluster: &str, args: &[String], stdin: Option<&[u8]>) -> Result<Ran> {
        let helm = &self.opts.helm;
        if let Some(signal) = self.interrupt.raised() {
            return Err(Error::Interrupted {
                signal,
                completed: Vec::new(),
            });
        }
        // Counted from before it starts until it is reaped: a step running helm is let
        // go only after helm ended.
        let _running = self.interrupt.child();
        let mut cmd = tokio::process::Command::new(helm);
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if !self.opts.kubeconfig_files.is_empty()
            && let Ok(joined) = std::env::join_paths(&self.opts.kubeconfig_files)
        {
            cmd.env("KUBECONFIG", joined);
        }
        // `--set` values stay out of the log: a user may pass a credential there.
        let shown: Vec<String> = args
            .iter()
            .enumerate()
            .map(
                |(i, a)| match (i > 0 && args[i - 1] == "--set", a.split_once('=')) {
                    (true, Some((key, _))) => format!("{key}=…"),
                    _ => a.clone(),
                },
            )
            .collect();
        tracing::debug!(cluster, helm = %helm.display(), args = ?shown, "running helm");
        let mut child = cmd.spawn().map_err(|e| Error::Install {
            cluster: cluster.to_owned(),
            what: format!("running {}", helm.display()),
            reason: if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "{} was not found; install helm 3 (see helm's installation guide) or give the path of a helm binary",
                    helm.display()
                )
            } else {
                e.to_string()
            },
        })?;
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A helm that exits early closes the pipe; its own error says why.
            let _ = pipe.write_all(bytes).await;
        }
        let pid = child.id();
        let output = child.wait_with_output();
        let mut output = std::pin::pin!(output);
        let out = tokio::select! {
            out = &mut output => out,
            () = self.interrupt.wait() => {
                // helm ends the way it ends on a signal (it marks the release failed);
                // it is waited for, never left behind.
                if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                    tracing::info!(cluster, pid, "stopping helm with SIGTERM");
                    // SAFETY: kill(2) with a pid we spawned and have not reaped yet.
                    unsafe {
                        libc::kill(pid, libc::SIGTERM);
                    }
                }
                match tokio::time::timeout(HELM_STOP_GRACE, &mut output).await {
                    Ok(out) => out,
                    // Dropped: kill_on_drop ends it with SIGKILL.
                    Err(_) => Err(std::io::Error::other(format!(
                        "helm did not end within {}s of SIGTERM; killed",
                        HELM_STOP_GRACE.as_secs()
                    ))),
                }
            }
        };
        let out = out.map_err(|e| Error::Install {
            cluster: cluster.to_owned(),
            what: format!("running {}", helm.display()),
            reason: e.to_string(),
        })?;
        Ok(Ran {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// `helm version --short`: proves helm runs before anything changes.
    pub(crate) async fn version(&self) -> Result<String> {
        let ran = self
            .run("-", &["version".into(), "--short".into()], None)
            .await?;
        if !ran.ok {
            return Err(self.failed("-", "running `helm version`", &ran));
        }
        Ok(ran.stdout.trim().to_owned())
    }

    /// The releases in the Istio namespace of `context`, by name.
    pub(crate) async fn releases(&self, context: &str) -> Result<BTreeMap<String, Listed>> {
        let mut args = self.target(context);
        args.splice(0..0, ["list".into(), "--all".into()]);
        args.extend(["--output".into(), "json".into()]);
        let ran = self.run(context, &args, None).await?;
        if !ran.ok {
            return Err(self.failed(context, "listing helm releases", &ran));
        }
        let listed: Vec<Listed> =
            serde_json::from_str(ran.stdout.trim()).map_err(|e| Error::Install {
                cluster: context.to_owned(),
                what: "reading `helm list --output json`".into(),
                reason: e.to_string(),
            })?;
        Ok(listed.into_iter().map(|l| (l.name.clone(), l)).collect())
    }

    /// `helm upgrade --reuse-values` of a deployed release with `sets` on top: changes
    /// those values and nothing else the release was installed with.
    pub(crate) async fn set_values(
        &self,
        context: &str,
        release: &str,
        chart: &Path,
        sets: &[String],
    ) -> Result<()> {
        let mut args: Vec<String> = vec![
            "upgrade".into(),
            release.into(),
            chart.display().to_string(),
            "--reuse-values".into(),
        ];
        args.extend(self.target(context));
        for s in sets {
            args.extend(["--set".into(), s.clone()]);
        }
        let ran = self.run(context, &args, None).await?;
        if !ran.ok {
            return Err(self.failed(context, &format!("updating release {release}"), &ran));
        }
        Ok(())
    }

    /// `helm uninstall`: clears a release an interrupted install left pending.
    pub(crate) async fn uninstall(&self, context: &str, release: &str) -> Result<()> {
        let mut args = self.target(context);
        args.splice(0..0, ["uninstall".into(), release.into()]);
        let ran = self.run(context, &args, None).await?;
        if !ran.ok {
            return Err(self.failed(context, &format!("uninstalling release {release}"), &ran));
        }
        Ok(())
    }

    /// `helm upgrade --install` of one release, our values first, the user's after.
    pub(crate) async fn upgrade_install(&self, context: &str, release: &Release) -> Result<()> {
        let mut args: Vec<String> = vec![
            "upgrade".into(),
            "--install".into(),
            release.name.into(),
            release.chart.display().to_string(),
            "--create-namespace".into(),
            "--timeout".into(),
            format!("{}s", self.timeout.as_secs().max(1)),
        ];
        args.extend(self.target(context));
        let ran = self.run_with_values(context, args, release).await?;
        if !ran.ok {
            return Err(self.failed(
                context,
                &format!(
                    "installing release {} (chart {})",
                    release.name,
                    release.chart.display()
                ),
                &ran,
            ));
        }
        Ok(())
    }

    /// `helm template` of one release: the objects it would install, in order.
    pub(crate) async fn template(&self, context: &str, release: &Release) -> Result<Vec<Value>> {
        let args: Vec<String> = vec![
            "template".into(),
            release.name.into(),
            release.chart.display().to_string(),
            "--namespace".into(),
            self.namespace.into(),
        ];
        let ran = self.run_with_values(context, args, release).await?;
        if !ran.ok {
            return Err(self.failed(
                context,
                &format!("rendering release {} (helm template)", release.name),
                &ran,
            ));
        }
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&ran.stdout).map_err(|e| Error::Install {
                cluster: context.to_owned(),
                what: format!("reading what `helm template {}` rendered", release.name),
                reason: e.to_string(),
            })?;
        Ok(docs.into_iter().filter(|d| d.is_object()).collect())
    }

    fn target(&self, context: &str) -> Vec<String> {
        vec![
            "--kube-context".into(),
            context.into(),
            "--namespace".into(),
            self.namespace.into(),
        ]
    }

    /// Runs helm with the release's values: ours on stdin (`--values -`), then the
    /// user's files and `--set`s, which helm applies after ours.
    async fn run_with_values(
        &self,
        context: &str,
        mut args: Vec<String>,
        release: &Release,
    ) -> Result<Ran> {
        args.extend(self.values_args(release));
        let values = serde_json::to_vec(&release.values).expect("values serialise");
        self.run(context, &args, Some(&values)).await
    }

    fn values_args(&self, release: &Release) -> Vec<String> {
        // The gateway chart gets the user's gateway values; the others, the control plane's.
        let (files, sets) = if release.name == EASTWEST_RELEASE {
            (&self.opts.gateway_values_files, &self.opts.gateway_set)
        } else {
            (&self.opts.values_files, &self.opts.set)
        };
        let mut args = vec!["--values".to_owned(), "-".to_owned()];
        for f in files {
            args.extend(["--values".into(), f.display().to_string()]);
        }
        for s in sets {
            args.extend(["--set".into(), s.clone()]);
        }
        args
    }

    fn failed(&self, cluster: &str, what: &str, ran: &Ran) -> Error {
        let text = format!("{}\n{}", ran.stderr.trim(), ran.stdout.trim());
        let lines: Vec<&str> = text.trim().lines().collect();
        Error::Install {
            cluster: cluster.to_owned(),
            what: what.to_owned(),
            reason: format!(
                "helm said: {}",
                lines[lines.len().saturating_sub(12)..].join("\n")
            ),
        }
    }
}

/// Checks the user's values files and `KEY=VALUE` settings before anything runs. Each
/// problem's message begins with what it is about, as [`values_input`] names it.
pub(crate) fn check_inputs(opts: &InstallOptions) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (of, files) in [
        (ValuesFor::ControlPlane, &opts.values_files),
        (ValuesFor::Gateway, &opts.gateway_values_files),
    ] {
        for f in files {
            if !f.is_file() {
                problems.push(Problem::new(
                    "-",
                    ProblemKind::ValuesFileMissing(of),
                    format!("{} {}: no such file", values_input(of, false), f.display()),
                ));
            }
        }
    }
    for (of, sets) in [
        (ValuesFor::ControlPlane, &opts.set),
        (ValuesFor::Gateway, &opts.gateway_set),
    ] {
        for (i, s) in sets.iter().enumerate() {
            // The text itself is never quoted: a user may pass a credential there.
            if let Err(why) = check_helm_set(s) {
                problems.push(Problem::new(
                    "-",
                    ProblemKind::SetInvalid(of),
                    format!(
                        "{} number {} of {} is not KEY=VALUE[,KEY=VALUE…] as helm reads it: {why} (its text is not shown: it may hold a secret)",
                        values_input(of, true),
                        i + 1,
                        sets.len()
                    ),
                ));
            }
        }
    }
    problems
}

/// How a problem of the user's values names them: `control-plane values file`,
/// `gateway setting`, …
pub(crate) fn values_input(of: ValuesFor, setting: bool) -> &'static str {
    match (of, setting) {
        (ValuesFor::ControlPlane, false) => "control-plane values file",
        (ValuesFor::Gateway, false) => "gateway values file",
        (ValuesFor::ControlPlane, true) => "control-plane setting",
        (ValuesFor::Gateway, true) => "gateway setting",
    }
}

/// Checks one `--set` argument the way helm's parser reads it: comma-separated
/// `KEY=VALUE` pairs, where a backslash escapes the next character (`a=x\,y` is one
/// value) and a value in braces is a list (`a={x,y}`). The error says where it breaks
/// without quoting the text.
fn check_helm_set(text: &str) -> std::result::Result<(), String> {
    let mut chars = text.chars();
    let mut pair = 0;
    'pairs: loop {
        pair += 1;
        // The key, up to its '='.
        let mut key_len = 0;
        loop {
            match chars.next() {
                None if key_len == 0 && pair > 1 => return Ok(()), // a trailing comma
                None | Some(',') => return Err(format!("pair {pair} has no '='")),
                Some('=') if key_len == 0 => return Err(format!("pair {pair} has no key")),
                Some('=') => break,
                Some('\\') => {
                    chars
                        .next()
                        .ok_or(format!("pair {pair} ends with a lone backslash"))?;
                    key_len += 1;
                }
                Some(_) => key_len += 1,
            }
        }
        // The value: a list in braces, or up to the next unescaped ','.
        let mut rest = chars.clone();
        if rest.next() == Some('{') {
            chars = rest;
            loop {
                match chars.next() {
                    None => return Err(format!("pair {pair} opens a list '{{' without its '}}'")),
                    Some('}') => break,
                    Some('\\') => {
                        chars
                            .next()
                            .ok_or(format!("pair {pair} ends with a lone backslash"))?;
                    }
                    Some(_) => {}
                }
            }
            match chars.next() {
                None => return Ok(()),
                Some(',') => continue 'pairs,
                Some(_) => return Err(format!("pair {pair} has text after its list's '}}'")),
            }
        }
        loop {
            match chars.next() {
                None => return Ok(()),
                Some(',') => continue 'pairs,
                Some('\\') => {
                    chars
                        .next()
                        .ok_or(format!("pair {pair} ends with a lone backslash"))?;
                }
                Some(_) => {}
            }
        }
    }
}

/// What a wait is waiting for, passed on (as "for …") only when it changes: one progress
/// line per change on a plain terminal, not one per poll. The last one names a timeout.
struct WaitReport<'a> {
    on_wait: &'a (dyn Fn(String) + Sync),
    last: std::sync::Mutex<String>,
}

impl<'a> WaitReport<'a> {
    fn new(on_wait: &'a (dyn Fn(String) + Sync)) -> WaitReport<'a> {
        WaitReport {
            on_wait,
            last: std::sync::Mutex::new(String::new()),
        }
    }

    fn say(&self, what: String) {
        let mut last = self.last.lock().unwrap();
        if *last != what {
            (self.on_wait)(format!("for {what}"));
            *last = what;
        }
    }

    /// The wait's outcome: what `poll` found, else [`Error::Timeout`] naming what was
    /// last waited for and `hint`.
    fn outcome<T>(
        &self,
        found: Option<T>,
        cluster: &str,
        timeout: Duration,
        hint: impl FnOnce() -> String,
    ) -> Result<T> {
        found.ok_or_else(|| Error::Timeout {
            cluster: cluster.to_owned(),
            what: self.last.lock().unwrap().clone(),
            seconds: timeout.as_secs(),
            hint: hint(),
        })
    }
}

/// Waits until every Istio CRD (group `*.istio.io`) is Established, with at least the
/// Gateway CRD present.
pub(crate) async fn wait_crds_established(
    client: &Client,
    context: &str,
    timeout: Duration,
    on_wait: &(dyn Fn(String) + Sync),
) -> Result<usize> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let report = WaitReport::new(on_wait);
    let found = crate::cluster::poll(timeout, || async {
        let list = api
            .list(&Default::default())
            .await
            .map_err(|e| kube(context, "listing CustomResourceDefinitions", e))?;
        let istio: Vec<&CustomResourceDefinition> = list
            .items
            .iter()
            .filter(|c| c.spec.group.ends_with("istio.io"))
            .collect();
        let pending: Vec<String> = istio
            .iter()
            .filter(|c| {
                !c.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    })
            })
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        let has_gateway = istio
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some("gateways.networking.istio.io"));
        if pending.is_empty() && has_gateway {
            return Ok(Some(istio.len()));
        }
        report.say(format!(
            "{} Istio CRD(s) to be Established",
            pending.len().max(1)
        ));
        Ok(None)
    })
    .await?;
    report.outcome(found, context, timeout, || {
        "look at `kubectl get crd | grep istio.io` and the API server's log".into()
    })
}

/// Waits until every Deployment helm made for `release` has rolled out: observed,
/// updated and available replicas all as asked. Returns their names.
pub(crate) async fn wait_rollout(
    client: &Client,
    context: &str,
    namespace: &str,
    release: &str,
    timeout: Duration,
    on_wait: &(dyn Fn(String) + Sync),
) -> Result<Vec<String>> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let report = WaitReport::new(on_wait);
    let found = crate::cluster::poll(timeout, || async {
        let list = api
            .list(&Default::default())
            .await
            .map_err(|e| kube(context, format!("listing Deployments in {namespace}"), e))?;
        let mine: Vec<&Deployment> = list
            .items
            .iter()
            .filter(|d| {
                d.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("meta.helm.sh/release-name"))
                    .is_some_and(|r| r == release)
            })
            .collect();
        let mut pending = Vec::new();
        for d in &mine {
            let want = d.spec.replicas.unwrap_or(1);
            let status = d.status.clone().unwrap_or_default();
            let observed = status.observed_generation >= d.metadata.generation;
            let ready = status.updated_replicas.unwrap_or(0) >= want
                && status.available_replicas.unwrap_or(0) >= want
                && status.replicas.unwrap_or(0) <= want;
            if !(observed && ready) {
                pending.push(format!(
                    "Deployment {namespace}/{} ({}/{want} available)",
                    d.metadata.name.clone().unwrap_or_default(),
                    status.available_replicas.unwrap_or(0)
                ));
            }
        }
        if pending.is_empty() {
            return Ok(Some(
                mine.iter()
                    .filter_map(|d| d.metadata.name.clone())
                    .collect::<Vec<_>>(),
            ));
        }
        report.say(format!("{} to roll out", pending.join(", ")));
        Ok(None)
    })
    .await?;
    report.outcome(found, context, timeout, || {
        format!(
            "look at `kubectl --context {context} -n {namespace} get pods` (images pulled? nodes with room?), then run join again"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helm_times_read_as_unix_seconds() {
        assert_eq!(unix_seconds("1970-01-01 00:00:00 +0000 UTC"), Some(0));
        assert_eq!(
            unix_seconds("2024-02-29 12:34:56.123456789 +0000 UTC"),
            Some(1_709_210_096)
        );
        assert_eq!(
            unix_seconds("2024-02-29 14:34:56.5 +0200 CEST"),
            Some(1_709_210_096)
        );
        assert_eq!(unix_seconds("yesterday"), None);
        assert_eq!(unix_seconds(""), None);
    }

    fn charts() -> Charts {
        Charts {
            base: "c/base".into(),
            istiod: "c/istiod".into(),
            gateway: "c/gateway".into(),
        }
    }

    #[test]
    fn the_guide_values_are_set_for_primary_and_remote() {
        let p = primary_releases(&charts(), "mesh1", "cluster1", "network1");
        let names: Vec<&str> = p.iter().map(|r| r.name).collect();
        assert_eq!(names, ["istio-base", "istiod", "istio-eastwestgateway"]);
        assert_eq!(p[1].values["global"]["meshID"], "mesh1");
        assert_eq!(p[1].values["global"]["network"], "network1");
        assert_eq!(p[1].values["global"]["externalIstiod"], true);
        let r = remote_releases(&charts(), "cluster2", "network2", "gw.example.com");
        assert_eq!(r[0].values["profile"], "remote");
        assert_eq!(r[1].values["global"]["configCluster"], true);
        assert_eq!(r[1].values["global"]["network"], "network2");
        assert_eq!(r[2].values["networkGateway"], "network2");
    }

    #[test]
    fn the_user_values_go_to_their_own_releases_after_ours() {
        let mut opts = InstallOptions::new("charts");
        opts.set = vec!["pilot.x=1".into()];
        opts.gateway_set = vec!["service.y=2".into()];
        let helm = Helm {
            opts: &opts,
            namespace: "istio-system",
            timeout: Duration::from_secs(1),
            interrupt: crate::Interrupt::default(),
        };
        let p = primary_releases(&charts(), "mesh1", "cluster1", "network1");
        let istiod = helm.values_args(&p[1]);
        let gateway = helm.values_args(&p[2]);
        assert_eq!(istiod, ["--values", "-", "--set", "pilot.x=1"]);
        assert_eq!(gateway, ["--values", "-", "--set", "service.y=2"]);
    }

    #[test]
    fn charts_are_found_in_both_layouts_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        for c in ["base", "istio-control/istio-discovery", "gateway"] {
            std::fs::create_dir_all(dir.path().join(c)).unwrap();
            std::fs::write(dir.path().join(c).join("Chart.yaml"), "name: x\n").unwrap();
        }
        let found = Charts::find(dir.path()).unwrap();
        assert_eq!(
            found.istiod,
            dir.path().join("istio-control/istio-discovery")
        );
        std::fs::remove_file(dir.path().join("gateway/Chart.yaml")).unwrap();
        let err = Charts::find(dir.path()).unwrap_err().to_string();
        assert!(err.contains("gateway/"), "{err}");
        assert!(!err.contains("base/"), "{err}");
        assert!(err.contains("manifests/charts"), "{err}");
    }

    #[test]
    fn bad_values_inputs_are_named() {
        let mut opts = InstallOptions::new("charts");
        opts.set = vec!["a.b=1,c=2".into(), "nokey".into()];
        opts.gateway_values_files = vec!["/no/such/values.yaml".into()];
        let problems = check_inputs(&opts);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(
            problems[0].kind,
            ProblemKind::ValuesFileMissing(ValuesFor::Gateway)
        );
        assert!(problems[0].message.contains("/no/such/values.yaml"));
        assert_eq!(
            problems[1].kind,
            ProblemKind::SetInvalid(ValuesFor::ControlPlane)
        );
        assert!(
            problems[1]
                .message
                .starts_with("control-plane setting number 2 of 2"),
            "{problems:?}"
        );
        assert!(
            !problems[1].message.contains("nokey"),
            "the text is echoed: {problems:?}"
        );
    }

    #[test]
    fn release_states_read_as_helm_prints_them() {
        let listed: Vec<Listed> = serde_json::from_str(
            r#"[{"name":"a","status":"pending-install","chart":"base-1"},
                {"name":"b","status":"pending-upgrade","chart":"istiod-1"},
                {"name":"c","status":"deployed","chart":"gateway-1"},
                {"name":"d","status":"something-new","chart":"x-1"}]"#,
        )
        .unwrap();
        let states: Vec<_> = listed.iter().map(|l| l.status.clone()).collect();
        assert_eq!(
            states,
            [
                ReleaseStatus::PendingInstall,
                ReleaseStatus::PendingUpgrade,
                ReleaseStatus::Deployed,
                ReleaseStatus::Other("something-new".into())
            ]
        );
        assert!(states[0].needs_repair() && !states[0].is_stuck());
        assert!(states[1].is_stuck() && !states[1].needs_repair());
        assert!(!states[2].is_stuck() && !states[2].needs_repair());
        assert!(
            states[3].is_stuck(),
            "an unknown state is not ours to touch"
        );
        // Messages show helm's own words.
        assert_eq!(states[1].to_string(), "pending-upgrade");
        assert_eq!(states[3].to_string(), "something-new");
    }

    #[test]
    fn sets_are_read_as_helm_reads_them() {
        for good in [
            "a=1",
            "a.b=1,c=2",
            "a={x,y}",
            "a={x,y},b=2",
            "a=x\\,y",
            "a\\.b=1",
            "a[0].b=x",
            "a=",
            "a=1,",
            "a==b",
            "a={}",
        ] {
            assert_eq!(check_helm_set(good), Ok(()), "{good:?}");
        }
        for (bad, why) in [
            ("nokey", "pair 1 has no '='"),
            ("a=1,b", "pair 2 has no '='"),
            ("a=1,,b=2", "pair 2 has no '='"),
            ("=1", "pair 1 has no key"),
            ("a={x,y", "pair 1 opens a list"),
            ("a={x}y", "pair 1 has text after"),
            ("a=x\\", "lone backslash"),
            ("", "pair 1 has no '='"),
        ] {
            let e = check_helm_set(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_malformed_set_is_refused_without_its_secret() {
        let mut opts = InstallOptions::new("charts");
        opts.set = vec!["global.password=hunter2,oops".into()];
        let problems = check_inputs(&opts);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].message.contains("pair 2 has no '='"),
            "{problems:?}"
        );
        assert!(!problems[0].message.contains("hunter2"), "{problems:?}");
    }
}
