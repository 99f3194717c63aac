//! `join`: the guide's whole procedure as a plan of checked, idempotent steps.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Secret, Service};
use kube::api::{DynamicObject, ObjectMeta};
use kube::{Api, Client};
use mesh_certs::{CaBundle, RootSet, ValidationOptions};
use mesh_kubeconfig::{Kubeconfigs, RemoteSecretRequest};
use serde::Serialize;

use crate::cluster::{
    self, CACERTS, CONTROL_PLANE_CLUSTERS_ANNOTATION, ClusterFacts, GatewayService, IstiodService,
    MESH_CONFIG_MAP, NETWORK_LABEL,
};
use crate::error::{Error, Problem, Result, kube};
use crate::install::{self, Charts, EASTWEST_RELEASE, Helm, InstallOptions, Release};
use crate::links;
use crate::networks::{MeshNetworks, read_mesh_networks};
pub use crate::plan::Change;
use crate::plan::{Outcome, Steps};
use crate::progress::{EventKind, Progress};

/// One cluster of a join, as the user named it.
#[derive(Debug, Default)]
pub struct ClusterSpec {
    /// The kubeconfig context.
    pub context: String,
    /// The cluster ID (DNS-1123 label); default: istiod's `CLUSTER_ID` for the primary,
    /// else the context name made a DNS-1123 label.
    pub cluster_name: Option<String>,
    /// The network; default: what the cluster declares, else `network-<cluster name>`.
    pub network: Option<String>,
    /// The east-west gateway address (`ADDR` or `ADDR:PORT`) instead of the discovered one.
    pub gateway_address: Option<String>,
    /// The CA bundle for its `cacerts`; `None` keeps what the cluster has.
    pub certs: Option<CaBundle>,
}

/// What to join.
#[derive(Debug)]
pub struct JoinOptions {
    /// The Istio namespace (default `istio-system`).
    pub namespace: String,
    /// The cluster running istiod.
    pub primary: ClusterSpec,
    /// The clusters to join to it, each with how to make its reader credentials
    /// (`RemoteSecretRequest::context` must equal the spec's context).
    pub remotes: Vec<(ClusterSpec, RemoteSecretRequest)>,
    /// Make no mutating request; report what would change.
    pub dry_run: bool,
    /// How long each wait (gateway addresses) may take.
    pub wait: Duration,
    /// Bound on each API request.
    pub request_timeout: Option<Duration>,
    /// Install Istio where it is missing (`--install`), with helm; `None`: Istio must
    /// be installed already.
    pub install: Option<InstallOptions>,
    /// Overwrite a stored `cacerts` whose root cannot be read (no readable
    /// `root-cert.pem`) with the given bundle (`--replace-cacerts`); without it, that is
    /// a preflight problem, since nothing proves the given root is the one it had.
    pub replace_cacerts: bool,
    /// Raised by the caller on SIGINT/SIGTERM: no new step starts, a running helm gets
    /// SIGTERM, and join fails with [`Error::Interrupted`].
    pub interrupt: crate::Interrupt,
}

impl JoinOptions {
    /// Options for joining `remotes` to `primary` with defaults everywhere else.
    ///
    /// ```
    /// let opts = mesh_core::JoinOptions::new("cluster1", &["cluster2"]);
    /// assert_eq!(opts.namespace, "istio-system");
    /// ```
    pub fn new(primary: &str, remotes: &[&str]) -> JoinOptions {
        JoinOptions {
            namespace: "istio-system".into(),
            primary: ClusterSpec {
                context: primary.into(),
                ..Default::default()
            },
            remotes: remotes
                .iter()
                .map(|r| {
                    (
                        ClusterSpec {
                            context: (*r).into(),
                            ..Default::default()
                        },
                        RemoteSecretRequest::new(*r),
                    )
                })
                .collect(),
            dry_run: false,
            wait: Duration::from_secs(120),
            request_timeout: None,
            install: None,
            replace_cacerts: false,
            interrupt: crate::Interrupt::default(),
        }
    }
}

/// A cluster after preflight: its names and where its gateway is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JoinedCluster {
    /// The context.
    pub context: String,
    /// The cluster ID.
    pub cluster_name: String,
    /// The network.
    pub network: String,
    /// The east-west gateway's address and port, if the cluster has a gateway.
    pub gateway: Option<(String, u16)>,
}

/// What a join did.
#[derive(Debug, Clone, Serialize)]
pub struct JoinSummary {
    /// The primary.
    pub primary: JoinedCluster,
    /// The remotes.
    pub remotes: Vec<JoinedCluster>,
    /// Everything that changed (or would, in a dry run).
    pub changes: Vec<Change>,
    /// Things the user should know.
    pub warnings: Vec<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

type Run<'a> = crate::plan::Run<'a, JoinOptions>;

/// A cluster with its client and facts.
struct Target<'a> {
    spec: &'a ClusterSpec,
    client: Client,
    facts: ClusterFacts,
    name: String,
    network: String,
    /// The helm releases in the Istio namespace (with `--install`).
    releases: BTreeMap<String, install::Listed>,
}

/// helm and the charts, for `--install`.
struct Installer<'a> {
    helm: Helm<'a>,
    charts: Charts,
}

/// The primary's east-west gateway address, as the remotes' istiod installs wait for it.
type PrimaryAddress =
    futures::future::Shared<futures::channel::oneshot::Receiver<Option<(String, u16)>>>;

/// Joins the remotes to the primary: preflight (every problem, before any change),
/// then the steps, concurrently where they do not depend on each other.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use mesh_core::{Event, JoinOptions, join};
/// use mesh_kubeconfig::{KubeconfigSource, Kubeconfigs};
///
/// let kubeconfigs = Kubeconfigs::load(&KubeconfigSource::Default)?;
/// let mut options = JoinOptions::new("cluster1", &["cluster2"]);
/// options.primary.certs = Some(mesh_certs::CaBundle::load_dir("certs/cluster1".as_ref())?);
/// options.remotes[0].0.certs = Some(mesh_certs::CaBundle::load_dir("certs/cluster2".as_ref())?);
/// let progress = |e: Event| eprintln!("{} {}: {:?}", e.cluster, e.step, e.kind);
/// let summary = join(&kubeconfigs, &options, &progress).await?;
/// eprintln!("{} change(s)", summary.changes.len());
/// # Ok(()) }
/// ```
pub async fn join(
    kubeconfigs: &Kubeconfigs,
    opts: &JoinOptions,
    progress: &dyn Progress,
) -> Result<JoinSummary> {
    let run = Run {
        opts,
        steps: Steps::new(opts.dry_run, progress).interruptible(&opts.interrupt),
    };
    match join_plan(kubeconfigs, &run).await {
        // However a step ended after a signal, the signal is the reason.
        Err(_) if opts.interrupt.raised().is_some() => Err(run.interrupted().expect("raised")),
        other => other,
    }
}

async fn join_plan(kubeconfigs: &Kubeconfigs, run: &Run<'_>) -> Result<JoinSummary> {
    let opts = run.opts;
    let ns = opts.namespace.as_str();

    // Preflight: read everything, concurrently, then judge it all at once.
    let started = Instant::now();
    let mut specs: Vec<(&ClusterSpec, bool)> = vec![(&opts.primary, false)];
    specs.extend(opts.remotes.iter().map(|(s, _)| (s, true)));
    for (spec, _) in &specs {
        run.emit(&spec.context, "preflight", EventKind::Started, started);
    }
    let mut problems = Vec::new();
    let installer = match &opts.install {
        Some(install) => {
            let (installer, found) = installer(install, opts).await;
            problems.extend(found.into_iter().map(|message| Problem {
                cluster: "-".into(),
                message,
            }));
            installer
        }
        None => None,
    };
    let installer = installer.as_ref();
    let reads = specs.iter().map(|(spec, remote)| async move {
        let client = kubeconfigs
            .client(&spec.context, opts.request_timeout)
            .await?;
        let facts = cluster::read_facts(&client, &spec.context, ns, *remote).await?;
        let releases = match installer {
            Some(i) => i.helm.releases(&spec.context).await?,
            None => BTreeMap::new(),
        };
        Ok::<_, Error>((client, facts, releases))
    });
    let read = futures::future::join_all(reads).await;
    let mut targets = Vec::new();
    for ((spec, _), result) in specs.iter().zip(read) {
        match result {
            Ok((client, facts, releases)) => targets.push(Target {
                spec,
                client,
                facts,
                name: String::new(),
                network: String::new(),
                releases,
            }),
            Err(err) => problems.push(Problem {
                cluster: spec.context.clone(),
                message: err.to_string(),
            }),
        }
    }
    if problems.is_empty() {
        problems = judge(&mut targets, opts).await;
    }
    // The remote secret's own inputs (https server, a CA the user gave when a context
    // skips TLS verification), before anything is written.
    for (spec, request) in &opts.remotes {
        if !targets.iter().any(|t| t.spec.context == spec.context) {
            continue; // unreadable: already a problem
        }
        let mut request = request.clone();
        request.cluster_name = None;
        if let Err(e) = request.check(kubeconfigs) {
            problems.push(Problem {
                cluster: spec.context.clone(),
                message: e.to_string(),
            });
        }
    }
    for t in &targets {
        let mine: Vec<&Problem> = problems
            .iter()
            .filter(|p| p.cluster == t.spec.context)
            .collect();
        let kind = if mine.is_empty() {
            EventKind::Unchanged
        } else {
            EventKind::Failed(format!("{} problem(s)", mine.len()))
        };
        run.emit(&t.spec.context, "preflight", kind, started);
    }
    if !problems.is_empty() {
        return Err(Error::Preflight { problems });
    }
    let primary_name = targets[0].name.clone();

    // Per cluster: the namespace's network label (and, on remotes, the control-plane
    // annotation), cacerts, (--install) Istio's releases, the cross-network Gateway and
    // the gateway address. Clusters run concurrently; a remote's istiod install waits
    // for the primary's gateway address.
    let (address_tx, address_rx) = futures::channel::oneshot::channel();
    let primary_address: PrimaryAddress = futures::FutureExt::shared(address_rx);
    let mut address_tx = Some(address_tx);
    let per_cluster = targets.iter().enumerate().map(|(i, t)| {
        cluster_steps(
            run,
            t,
            &primary_name,
            installer,
            if i == 0 {
                Link::Primary(address_tx.take())
            } else {
                Link::Remote(primary_address.clone())
            },
        )
    });
    let addresses: Vec<Result<Option<(String, u16)>>> =
        futures::future::join_all(per_cluster).await;
    let mut gateways = Vec::new();
    for a in addresses {
        gateways.push(a?);
    }

    // meshNetworks in the primary, once, with every cluster of this join.
    let primary = &targets[0];
    run.step(&primary.spec.context, "meshNetworks", async {
        mesh_networks_step(run, primary, &targets, &gateways).await
    })
    .await?;

    // Reader credentials in each remote and the remote secret in the primary.
    let secrets = opts
        .remotes
        .iter()
        .zip(&targets[1..])
        .map(|((_, request), remote)| {
            let run = &run;
            async move {
                let mut request = request.clone();
                request.cluster_name = Some(remote.name.clone());
                request.namespace = ns.to_owned();
                request.timeout = request.timeout.or(opts.request_timeout);
                run.step(&remote.spec.context, "remote secret", async {
                    remote_secret_step(run, kubeconfigs, primary, remote, &request).await
                })
                .await
            }
        });
    for result in futures::future::join_all(secrets).await {
        result?;
    }

    let joined = |t: &Target, gw: &Option<(String, u16)>| JoinedCluster {
        context: t.spec.context.clone(),
        cluster_name: t.name.clone(),
        network: t.network.clone(),
        gateway: gw.clone(),
    };
    let (changes, warnings) = run.steps.finish();
    Ok(JoinSummary {
        primary: joined(&targets[0], &gateways[0]),
        remotes: targets[1..]
            .iter()
            .zip(&gateways[1..])
            .map(|(t, g)| joined(t, g))
            .collect(),
        changes,
        warnings,
        dry_run: opts.dry_run,
    })
}

/// Judges the facts: names, networks, certificates, permissions. Fills in each
/// target's name and network. Returns every problem found.
async fn judge(targets: &mut [Target<'_>], opts: &JoinOptions) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut problem = |cluster: &str, message: String| {
        problems.push(Problem {
            cluster: cluster.to_owned(),
            message,
        })
    };
    let ns = &opts.namespace;
    let installing = opts.install.is_some();

    for (i, t) in targets.iter_mut().enumerate() {
        let ctx = t.spec.context.clone();
        let f = &t.facts;
        if f.istio_namespace.is_none() && !installing {
            problem(
                &ctx,
                format!(
                    "namespace {ns} does not exist; install Istio first, or pass --install (or -n with Istio's namespace)"
                ),
            );
        }
        if f.gateway_crd_version.is_none() && !installing {
            problem(&ctx, "Istio's CRDs are missing (gateways.networking.istio.io); install Istio's base chart first, or pass --install".into());
        }
        if i == 0 && f.istio_namespace.is_some() && !f.has_mesh_config && !installing {
            problem(
                &ctx,
                format!(
                    "ConfigMap {ns}/{MESH_CONFIG_MAP} is missing: istiod is not installed in the primary; install istiod there first, or pass --install"
                ),
            );
        }
        for (release, listed) in &t.releases {
            let status = &listed.status;
            let ours = [
                install::BASE_RELEASE,
                install::ISTIOD_RELEASE,
                EASTWEST_RELEASE,
            ];
            let stuck = status.is_stuck();
            // A pending install may be another helm's (a second join) running right now:
            // repaired only when provably left over, or when the user says so.
            let busy = *status == install::ReleaseStatus::PendingInstall
                && !opts.install.as_ref().is_some_and(|i| i.repair_pending)
                && listed
                    .age()
                    .is_none_or(|age| age <= opts.wait + install::PENDING_IS_DEAD_AFTER);
            if ours.contains(&release.as_str()) && busy {
                let since = listed
                    .age()
                    .map(|a| format!(" since {}s", a.as_secs()))
                    .unwrap_or_default();
                problem(
                    &ctx,
                    format!(
                        "helm release {ns}/{release} is pending-install{since}: a helm install (another join?) may be running on it now; wait for it to end and run join again — or, if no helm is running on it, pass --repair-pending to uninstall and reinstall it"
                    ),
                );
            }
            if ours.contains(&release.as_str()) && stuck {
                problem(
                    &ctx,
                    format!(
                        "helm release {ns}/{release} is {status}; finish or undo that helm operation first (`helm history {release} -n {ns} --kube-context {ctx}`, then `helm rollback`)"
                    ),
                );
            }
        }
        if !f.denied.is_empty() {
            problem(
                &ctx,
                format!(
                    "your user may not {}; use a context with cluster-admin rights",
                    f.denied.join(", ")
                ),
            );
        }
        // The cluster name.
        let default_name = if i == 0 {
            f.istiod_cluster_id
                .clone()
                .unwrap_or_else(|| mesh_kubeconfig::dns1123_label(&ctx))
        } else {
            mesh_kubeconfig::dns1123_label(&ctx)
        };
        t.name = match &t.spec.cluster_name {
            Some(n) if !mesh_kubeconfig::is_dns1123_label(n) => {
                problem(
                    &ctx,
                    format!(
                        "cluster name {n:?} is not a DNS-1123 label (lowercase letters, digits and '-', at most 63); pass another --cluster-name"
                    ),
                );
                n.clone()
            }
            Some(n) => {
                if i == 0
                    && let Some(id) = &f.istiod_cluster_id
                    && id != n
                {
                    problem(
                        &ctx,
                        format!(
                            "istiod runs with cluster ID {id:?}, not {n:?}; drop the primary's cluster name flag or reinstall istiod with that name"
                        ),
                    );
                }
                n.clone()
            }
            None => default_name,
        };
        // The network.
        let network_flag = if i == 0 {
            "--network"
        } else {
            "--remote-network"
        };
        if let Some(flag) = &t.spec.network
            && !is_label_value(flag)
        {
            problem(
                &ctx,
                format!(
                    "{network_flag} {flag:?} is not a valid label value (at most 63 letters, digits, '-', '_' or '.', beginning and ending with a letter or digit); pass another {network_flag}"
                ),
            );
        }
        let declared = f.declared_network();
        t.network = match (&t.spec.network, declared) {
            (Some(flag), Some((declared, source))) if *flag != declared => {
                problem(
                    &ctx,
                    format!(
                        "the network flag says {flag:?} but {source} says {declared:?}; drop the flag or relabel the cluster yourself"
                    ),
                );
                flag.clone()
            }
            (Some(flag), _) => flag.clone(),
            (None, Some((declared, _))) => declared,
            (None, None) => format!("network-{}", t.name),
        };
        if let Some(addr) = &t.spec.gateway_address
            && let Err(e) = parse_address(addr, 15443)
        {
            let address_flag = if i == 0 {
                "--primary-gateway-address"
            } else {
                "--gateway-address"
            };
            problem(
                &ctx,
                format!("{address_flag} {addr:?} {e}; pass HOST or HOST:PORT"),
            );
        }
    }

    // Names and networks across clusters.
    let primary = &targets[0];
    for remote in &targets[1..] {
        if remote.name == primary.name {
            problem(
                &remote.spec.context,
                format!(
                    "cluster name {:?} is the primary's own cluster ID, which istiod ignores; pass --cluster-name",
                    remote.name
                ),
            );
        }
        if remote.network == primary.network {
            problem(
                &remote.spec.context,
                format!(
                    "it is on network {:?} like the primary; kubectl mesh joins clusters on different networks (pass --remote-network)",
                    remote.network
                ),
            );
        }
        if remote.facts.kube_system_uid.is_some()
            && remote.facts.kube_system_uid == primary.facts.kube_system_uid
        {
            problem(
                &remote.spec.context,
                format!(
                    "context {} reaches the same cluster as {}; name two different clusters",
                    remote.spec.context, primary.spec.context
                ),
            );
        }
    }
    let mut seen = BTreeMap::new();
    for t in targets.iter() {
        if let Some(other) = seen.insert(t.name.clone(), t.spec.context.clone()) {
            problem(
                &t.spec.context,
                format!(
                    "cluster name {:?} is also given to {other}; pass --cluster-name",
                    t.name
                ),
            );
        }
    }

    // The cluster name must not belong to another remote secret in the primary.
    let secrets: Api<Secret> = Api::namespaced(primary.client.clone(), ns);
    let listed = secrets
        .list(
            &kube::api::ListParams::default()
                .labels(&format!("{}=true", mesh_kubeconfig::MULTICLUSTER_LABEL)),
        )
        .await;
    match listed {
        Ok(list) => {
            for (remote, (_, request)) in targets[1..].iter().zip(&opts.remotes) {
                let ours = request
                    .secret_name
                    .clone()
                    .unwrap_or_else(|| mesh_kubeconfig::remote_secret_name(&remote.name));
                for s in &list {
                    let name = s.metadata.name.clone().unwrap_or_default();
                    let has_key = s
                        .data
                        .as_ref()
                        .is_some_and(|d| d.contains_key(&remote.name));
                    if name != ours && has_key {
                        problem(
                            &primary.spec.context,
                            format!(
                                "cluster name {:?} is already used by remote secret {ns}/{name}; pass --cluster-name for {}",
                                remote.name, remote.spec.context
                            ),
                        );
                    }
                }
            }
        }
        Err(e) => problem(
            &primary.spec.context,
            format!("cannot list remote secrets in {ns}: {e}"),
        ),
    }

    // Istio objects join would create that somebody else made: used only if they do the job.
    for (i, t) in targets.iter().enumerate() {
        for message in foreign_objects(t, opts, i == 0).await {
            problem(&t.spec.context, message);
        }
    }

    // Certificates: valid, and one root across the given bundles and the stored ones.
    let mut root_sets: Vec<(String, RootSet)> = Vec::new();
    for t in targets.iter() {
        let ctx = &t.spec.context;
        match &t.spec.certs {
            Some(bundle) => {
                let where_ = bundle
                    .source()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "the bundle".into());
                let report = bundle.validate(&ValidationOptions::default());
                for f in report.errors() {
                    problem(
                        ctx,
                        format!("{where_}/{}: {} — {}", f.file, f.message, f.fix),
                    );
                }
                root_sets.push((
                    format!("the certificates for {ctx} ({where_})"),
                    bundle.root_set(),
                ));
                if t.facts.cacerts.is_some()
                    && t.facts.stored_roots().is_none()
                    && !opts.replace_cacerts
                {
                    problem(
                        ctx,
                        format!(
                            "its stored Secret {ns}/{CACERTS} has no readable root-cert.pem, so nothing shows that {where_} keeps its root; move it aside first (kubectl --context {ctx} -n {ns} get secret {CACERTS} -o yaml > {CACERTS}-{ctx}.yaml && kubectl --context {ctx} -n {ns} delete secret {CACERTS}), or pass --replace-cacerts to overwrite it"
                        ),
                    );
                }
                if let Some(stored) = t.facts.stored_roots()
                    && !stored.shares_root_with(&bundle.root_set())
                {
                    problem(
                        ctx,
                        format!(
                            "its stored Secret {ns}/{CACERTS} has another root than {where_}; istiod would sign with a root the other clusters do not trust — delete that Secret first if you mean to replace the root"
                        ),
                    );
                }
            }
            None => match t.facts.stored_roots() {
                Some(stored) => root_sets.push((format!("{ctx}'s stored {CACERTS}"), stored)),
                None => problem(
                    ctx,
                    format!(
                        "it has no Secret {ns}/{CACERTS} and no certificates were given; pass --certs DIR (see `kubectl mesh certs generate`)"
                    ),
                ),
            },
        }
    }
    if root_sets.len() > 1 {
        let named: Vec<(&str, RootSet)> = root_sets
            .iter()
            .map(|(n, s)| (n.as_str(), s.clone()))
            .collect();
        let agreement = mesh_certs::common_root_of_sets(&named);
        if !agreement.is_agreed() {
            problem(
                "-",
                format!(
                    "the roots differ: {} do not trust the root of {}; every cluster of a mesh needs the same root (see `kubectl mesh certs check`)",
                    agreement.disagreeing.join(", "),
                    agreement.agreeing.join(", ")
                ),
            );
        }
    }
    problems
}

/// How a cluster's steps link to the primary's gateway address.
enum Link {
    /// The primary: sends its gateway address (once known) to the remotes.
    Primary(Option<futures::channel::oneshot::Sender<Option<(String, u16)>>>),
    /// A remote: its istiod install waits for the primary's address.
    Remote(PrimaryAddress),
}

/// helm and the charts, checked: every problem found (missing helm, charts, files).
async fn installer<'a>(
    install: &'a InstallOptions,
    opts: &'a JoinOptions,
) -> (Option<Installer<'a>>, Vec<String>) {
    let mut problems = install::check_inputs(install);
    let charts = Charts::find(&install.charts)
        .map_err(|e| problems.push(e.to_string()))
        .ok();
    let helm = Helm {
        opts: install,
        namespace: &opts.namespace,
        timeout: opts.wait,
        interrupt: opts.interrupt.clone(),
    };
    match helm.version().await {
        Ok(version) => tracing::debug!(%version, "helm runs"),
        Err(e) => problems.push(e.to_string()),
    }
    match charts {
        Some(charts) if problems.is_empty() => (Some(Installer { helm, charts }), problems),
        _ => (None, problems),
    }
}

/// The steps on one cluster; returns its gateway address.
async fn cluster_steps(
    run: &Run<'_>,
    t: &Target<'_>,
    primary_name: &str,
    installer: Option<&Installer<'_>>,
    link: Link,
) -> Result<Option<(String, u16)>> {
    let remote = matches!(link, Link::Remote(_));
    let ctx = t.spec.context.as_str();
    let ns = run.opts.namespace.as_str();

    // The namespace first: cacerts lives in it, and istiod must find cacerts at start.
    run.step(ctx, "network label", async {
        let existed = t.facts.istio_namespace.is_some();
        if !existed && !run.opts.dry_run {
            cluster::create_namespace(&t.client, ctx, ns).await?;
        }
        let api: Api<Namespace> = Api::all(t.client.clone());
        // The control-plane list is shared with other primaries: ours is added to it.
        let written = cluster::update(&api, ctx, &format!("namespace {ns}"), ns, run.opts.dry_run, |current: Option<&Namespace>| {
            let meta = current.map(|n| &n.metadata);
            let has_label = meta
                .and_then(|m| m.labels.as_ref())
                .and_then(|l| l.get(NETWORK_LABEL))
                == Some(&t.network);
            let mut planes = control_plane_clusters(meta);
            let listed = planes.iter().any(|c| c == primary_name);
            if has_label && (listed || !remote) {
                return Ok(None);
            }
            let mut desired = Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.to_owned()),
                    labels: Some(BTreeMap::from([(NETWORK_LABEL.to_owned(), t.network.clone())])),
                    ..Default::default()
                },
                ..Default::default()
            };
            if remote {
                if !listed {
                    planes.push(primary_name.to_owned());
                }
                desired.metadata.annotations = Some(BTreeMap::from([(
                    CONTROL_PLANE_CLUSTERS_ANNOTATION.to_owned(),
                    planes.join(","),
                )]));
            }
            Ok(Some((desired, ())))
        })
        .await?;
        let Some((desired, ())) = written else {
            return Ok(Outcome::Unchanged);
        };
        let verb = if existed { "labelled" } else { "created" };
        let what = if remote {
            format!("{verb} namespace {ns} {NETWORK_LABEL}={} and annotated {CONTROL_PLANE_CLUSTERS_ANNOTATION} with {primary_name}", t.network)
        } else {
            format!("{verb} namespace {ns} {NETWORK_LABEL}={}", t.network)
        };
        Ok(Outcome::Changed(what, serde_json::to_value(&desired).ok()))
    })
    .await?;

    if let Some(bundle) = &t.spec.certs {
        run.step(ctx, "cacerts", async {
            let mut desired = cluster::cacerts_secret(ns, bundle);
            let current = t.facts.cacerts.as_ref();
            if current.is_some_and(|c| !links::managed_by_us(&c.metadata)) {
                // Updating a cacerts somebody else made does not make it ours: without
                // our label, unjoin --purge leaves it.
                desired.metadata.labels = None;
            }
            if current.and_then(|s| s.data.as_ref()) == desired.data.as_ref() {
                return Ok(Outcome::Unchanged);
            }
            if !run.opts.dry_run {
                let api: Api<Secret> = Api::namespaced(t.client.clone(), ns);
                cluster::apply(&api, ctx, CACERTS, &desired).await?;
            }
            if t.facts.istiod_cluster_id.is_some() {
                run.warn(ctx, "cacerts", "istiod already runs and keeps its old CA until it restarts: kubectl rollout restart deployment/istiod -n ".to_owned() + ns);
            }
            let verb = if current.is_some() { "updated" } else { "created" };
            Ok(Outcome::Changed(format!("{verb} Secret {ns}/{CACERTS}"), None))
        })
        .await?;
    }

    // --install: Istio's releases where they are missing, in the guide's order.
    let mut crd_version = t.facts.gateway_crd_version.clone();
    let mut gateway = t.facts.gateway.clone();
    let mut gateway_pending = false;
    if let Some(inst) = installer {
        let releases = if remote {
            None
        } else {
            Some(install::primary_releases(
                &inst.charts,
                &inst.helm.opts.mesh_id,
                &t.name,
                &t.network,
            ))
        };
        let charts = &inst.charts;
        let [base, istiod, eastwest] = match releases {
            Some(r) => r,
            // The remote's istiod is rebuilt below, once the primary's address is known.
            None => install::remote_releases(charts, &t.name, &t.network, ""),
        };
        let base_needed = crd_version.is_none() || needs_repair(t, base.name);
        if base_needed {
            run.step(ctx, "istio-base", async {
                release_step(run, t, inst, "istio-base", &base, Await::Crds).await
            })
            .await?;
            crd_version = Some(if run.opts.dry_run {
                "v1".to_owned()
            } else {
                cluster::gateway_crd_version(&t.client, ctx)
                    .await?
                    .unwrap_or_else(|| "v1".into())
            });
        }
        match &link {
            Link::Primary(..) => {
                if !t.facts.has_mesh_config && t.facts.istiod_cluster_id.is_none()
                    || needs_repair(t, istiod.name)
                {
                    run.step(ctx, "istiod", async {
                        release_step(run, t, inst, "istiod", &istiod, Await::Rollout).await
                    })
                    .await?;
                }
            }
            Link::Remote(primary_address) => {
                // The remote profile is needed when neither a release of it, nor a local
                // istiod, nor any `istiod` Service is there (or ours did not deploy).
                let istiod = cluster::istiod_service(&t.client, ctx, ns).await?;
                let release = t.releases.get(install::ISTIOD_RELEASE);
                let install = needs_repair(t, install::ISTIOD_RELEASE)
                    || (release.is_none()
                        && t.facts.istiod_cluster_id.is_none()
                        && istiod == IstiodService::Missing);
                let deployed =
                    release.is_some_and(|r| r.status == install::ReleaseStatus::Deployed);
                if install || deployed {
                    run.step(
                        ctx,
                        "istiod (remote)",
                        remote_istiod_step(run, t, inst, primary_address.clone(), install, istiod),
                    )
                    .await?;
                }
            }
        }
        if gateway.is_none() || needs_repair(t, eastwest.name) {
            run.step(ctx, "east-west gateway", async {
                release_step(run, t, inst, "east-west gateway", &eastwest, Await::Rollout).await
            })
            .await?;
            gateway = if run.opts.dry_run {
                gateway_pending = true;
                Some(planned_gateway(&t.network))
            } else {
                cluster::find_gateway(&t.client, ctx, ns).await?
            };
        }
    }

    let Some(gateway) = &gateway else {
        if t.spec.gateway_address.is_none() {
            run.warn(ctx, "gateway", format!("no east-west gateway Service (label istio=eastwestgateway) in {ns}: traffic from other networks cannot reach this cluster; install one, or pass its address"));
        }
        let address = t
            .spec
            .gateway_address
            .as_deref()
            .map(|a| parse_address(a, 15443).expect("checked in preflight"));
        if let Link::Primary(Some(tx)) = link {
            let _ = tx.send(address.clone());
        }
        return Ok(address);
    };
    let version = crd_version.as_deref().unwrap_or("v1");
    run.step(ctx, "cross-network gateway", async {
        let desired = cluster::cross_network_gateway(ns, gateway, version);
        apply_if_changed(
            run,
            t,
            desired,
            &cluster::gateway_resource(version),
            format!("TLS AUTO_PASSTHROUGH on port {}", gateway.port),
            &|existing| cluster::gateway_does_the_job(existing, gateway),
        )
        .await
    })
    .await?;
    // With --install and remotes, the primary exposes istiod to them on its gateway.
    if matches!(link, Link::Primary(_)) && installer.is_some() && !run.opts.remotes.is_empty() {
        run.step(ctx, "expose istiod", async {
            let (mut done, mut objects) = (Vec::new(), Vec::new());
            for (object, resource) in cluster::expose_istiod(ns, version) {
                let spec = object.data["spec"].clone();
                if let Outcome::Changed(what, object) = apply_if_changed(
                    run,
                    t,
                    object,
                    &resource,
                    "istiod's ports 15012 and 15017, TLS passthrough".into(),
                    &|existing| existing.data["spec"] == spec,
                )
                .await?
                {
                    done.push(what);
                    objects.extend(object);
                }
            }
            if done.is_empty() {
                return Ok(Outcome::Unchanged);
            }
            // Both objects, as one List (the binary prints a document per item).
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
            Ok(Outcome::Changed(done.join("; "), Some(list)))
        })
        .await?;
    }

    let found = if let Some(addr) = &t.spec.gateway_address {
        Some(parse_address(addr, gateway.port).expect("checked in preflight"))
    } else if gateway_pending {
        run.step(ctx, "gateway address", async {
            Ok(Outcome::Found(
                "known once the east-west gateway is installed".into(),
            ))
        })
        .await?;
        None
    } else {
        let mut found = None;
        let found_ref = &mut found;
        run.step(ctx, "gateway address", async move {
            let address = gateway_address(run, t, gateway).await?;
            let shown = format!("{}:{}", address.0, address.1);
            *found_ref = Some(address);
            Ok(Outcome::Found(shown))
        })
        .await?;
        found
    };
    if let Link::Primary(Some(tx)) = link {
        let _ = tx.send(found.clone());
    }
    Ok(found)
}

/// The cluster IDs of a namespace's `topology.istio.io/controlPlaneClusters` list.
pub(crate) fn control_plane_clusters(meta: Option<&ObjectMeta>) -> Vec<String> {
    meta.and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(CONTROL_PLANE_CLUSTERS_ANNOTATION))
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Applies an Istio object (Gateway, VirtualService) unless its spec already is as wanted.
/// One that kubectl-mesh did not create (no ownership label) is never applied over: it is
/// used as it is when `does_the_job` says so, else the step fails naming it (preflight
/// found it fine, so it changed since).
async fn apply_if_changed(
    run: &Run<'_>,
    t: &Target<'_>,
    desired: DynamicObject,
    resource: &kube::api::ApiResource,
    detail: String,
    does_the_job: &dyn Fn(&DynamicObject) -> bool,
) -> Result<Outcome> {
    let ctx = t.spec.context.as_str();
    let ns = run.opts.namespace.as_str();
    let name = desired.metadata.name.clone().unwrap_or_default();
    let kind = &resource.kind;
    let api: Api<DynamicObject> = Api::namespaced_with(t.client.clone(), ns, resource);
    // Before --install has made the CRD, a dry run has nothing to read.
    let current = match api.get_opt(&name).await {
        Ok(current) => current,
        Err(kube::Error::Api(s)) if s.code == 404 && run.opts.dry_run => None,
        Err(e) => return Err(kube(ctx, format!("reading {kind} {ns}/{name}"), e)),
    };
    if let Some(existing) = &current
        && !links::managed_by_us(&existing.metadata)
    {
        if does_the_job(existing) {
            return Ok(Outcome::Found(format!(
                "{kind} {ns}/{name} (not made by kubectl-mesh) already does it: used as it is"
            )));
        }
        return Err(Error::Preflight {
            problems: vec![Problem {
                cluster: ctx.to_owned(),
                message: foreign_object_problem(ctx, ns, resource, &name),
            }],
        });
    }
    if current.as_ref().map(|c| &c.data["spec"]) == Some(&desired.data["spec"]) {
        return Ok(Outcome::Unchanged);
    }
    if !run.opts.dry_run {
        cluster::apply(&api, ctx, &name, &desired).await?;
    }
    let verb = if current.is_some() {
        "updated"
    } else {
        "created"
    };
    Ok(Outcome::Changed(
        format!("{verb} {kind} {ns}/{name} ({detail})"),
        serde_json::to_value(&desired).ok(),
    ))
}

/// The problem of an Istio object with join's name that kubectl-mesh did not create and
/// that does not do what join's would.
fn foreign_object_problem(
    ctx: &str,
    ns: &str,
    resource: &kube::api::ApiResource,
    name: &str,
) -> String {
    let (kind, plural) = (&resource.kind, &resource.plural);
    let job = if resource.kind == "Gateway" && name == cluster::CROSS_NETWORK_GATEWAY {
        "select the east-west gateway's pods with a TLS AUTO_PASSTHROUGH server for *.local on its TLS port"
    } else {
        "have the spec of Istio's expose-istiod sample"
    };
    format!(
        "{kind} {ns}/{name} exists but kubectl-mesh did not create it (no label {}={}) and it does not {job}; kubectl-mesh never takes over an object it did not make: delete or rename it (kubectl --context {ctx} -n {ns} delete {plural}.networking.istio.io {name}), or make it {job} and join uses it as it is",
        mesh_kubeconfig::MANAGED_BY_LABEL.0,
        mesh_kubeconfig::MANAGED_BY_LABEL.1,
    )
}

/// Preflight: the Istio objects join would create on `t` that exist without kubectl-mesh's
/// label and do not do the job — each a problem naming it.
async fn foreign_objects(t: &Target<'_>, opts: &JoinOptions, primary: bool) -> Vec<String> {
    let ctx = t.spec.context.as_str();
    let ns = opts.namespace.as_str();
    // Without the CRD there is no such object yet (--install will create the CRD).
    let Some(version) = &t.facts.gateway_crd_version else {
        return Vec::new();
    };
    let gateway = match (&t.facts.gateway, opts.install.is_some()) {
        (Some(gw), _) => Some(gw.clone()),
        (None, true) => Some(planned_gateway(&t.network)),
        (None, false) => None,
    };
    let mut wanted: Vec<(DynamicObject, kube::api::ApiResource)> = Vec::new();
    if let Some(gw) = &gateway {
        wanted.push((
            cluster::cross_network_gateway(ns, gw, version),
            cluster::gateway_resource(version),
        ));
    }
    if primary && opts.install.is_some() && !opts.remotes.is_empty() {
        wanted.extend(cluster::expose_istiod(ns, version));
    }
    let mut problems = Vec::new();
    for (desired, resource) in wanted {
        let name = desired.metadata.name.clone().unwrap_or_default();
        let api: Api<DynamicObject> = Api::namespaced_with(t.client.clone(), ns, &resource);
        let existing = match api.get_opt(&name).await {
            Ok(Some(e)) => e,
            Ok(None) => continue,
            Err(e) => {
                problems.push(
                    kube(ctx, format!("reading {} {ns}/{name}", resource.kind), e).to_string(),
                );
                continue;
            }
        };
        if links::managed_by_us(&existing.metadata) {
            continue;
        }
        let fine = match &gateway {
            Some(gw) if name == cluster::CROSS_NETWORK_GATEWAY && resource.kind == "Gateway" => {
                cluster::gateway_does_the_job(&existing, gw)
            }
            _ => existing.data["spec"] == desired.data["spec"],
        };
        if !fine {
            problems.push(foreign_object_problem(ctx, ns, &resource, &name));
        }
    }
    problems
}

/// Whether a release of ours exists but did not deploy (an interrupted or failed run).
fn needs_repair(t: &Target<'_>, release: &str) -> bool {
    t.releases
        .get(release)
        .is_some_and(|r| r.status.needs_repair())
}

/// A remote's istiod with the remote profile: installed when missing, pointed at the
/// primary's east-west gateway (`remotePilotAddress`) — where its proxies reach istiod —
/// and, when a release of ours points elsewhere (the primary's gateway moved), re-pointed
/// by `helm upgrade --reuse-values`, which changes that value only.
async fn remote_istiod_step(
    run: &Run<'_>,
    t: &Target<'_>,
    inst: &Installer<'_>,
    primary_address: PrimaryAddress,
    install: bool,
    istiod: IstiodService,
) -> Result<Outcome> {
    let ctx = t.spec.context.as_str();
    let ns = run.opts.namespace.as_str();
    let what = if install {
        "installing istiod with the remote profile"
    } else {
        "pointing the remote's istiod at the primary's east-west gateway"
    };
    let failed = |reason: String| Error::Install {
        cluster: ctx.to_owned(),
        what: what.into(),
        reason,
    };
    let address = primary_address.await.map_err(|_| {
        failed("the primary's steps failed before its east-west gateway had an address (see the primary's error)".into())
    })?;
    let addr = match address {
        Some((addr, _))
            if addr
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback()) =>
        {
            return Err(failed(format!(
                "the primary's east-west gateway address {addr} is a loopback address: this cluster's proxies could not reach istiod there (and Kubernetes refuses it in the istiod EndpointSlice); pass --primary-gateway-address with an address the remote reaches"
            )));
        }
        Some((addr, _)) => addr,
        None if run.opts.dry_run && install => {
            return Ok(Outcome::Changed(
                format!(
                    "installed release istiod (remote profile, injection path {}) with remotePilotAddress set to the primary's east-west gateway address, known once that gateway is installed",
                    install::injection_path(&t.name, &t.network)
                ),
                None,
            ));
        }
        None => {
            return Err(failed(
                "the primary's east-west gateway has no address; pass --primary-gateway-address"
                    .into(),
            ));
        }
    };
    if install {
        let [_, istiod, _] = install::remote_releases(&inst.charts, &t.name, &t.network, &addr);
        return release_step(run, t, inst, "istiod (remote)", &istiod, Await::Nothing).await;
    }
    // A deployed release of ours: does its istiod Service still lead to the primary?
    let IstiodService::Remote(current) = istiod else {
        return Ok(Outcome::Unchanged);
    };
    if current.contains(&addr) {
        return Ok(Outcome::Unchanged);
    }
    let installed = &t.releases[install::ISTIOD_RELEASE].chart;
    let given = install::chart_id(&inst.charts.istiod).unwrap_or_default();
    let set = format!("global.remotePilotAddress={addr}");
    if *installed != given {
        // Upgrading with another chart would upgrade Istio too: that is the user's call.
        run.warn(ctx, "istiod (remote)", format!(
            "release {ns}/istiod sends this cluster's proxies to {} but the primary's east-west gateway is at {addr}; it is chart {installed} and --istio-charts holds {given}, so update it yourself: helm upgrade istiod <chart {installed}> -n {ns} --kube-context {ctx} --reuse-values --set {set}",
            current.join(", ")
        ));
        return Ok(Outcome::Unchanged);
    }
    if !run.opts.dry_run {
        inst.helm
            .set_values(ctx, install::ISTIOD_RELEASE, &inst.charts.istiod, &[set])
            .await?;
    }
    Ok(Outcome::Changed(
        format!(
            "pointed release {ns}/istiod at the primary's east-west gateway: remotePilotAddress {} → {addr}",
            current.join(", ")
        ),
        None,
    ))
}

/// What to wait for after a release is installed.
enum Await {
    /// Istio's CRDs Established.
    Crds,
    /// The release's Deployments rolled out.
    Rollout,
    /// Nothing (the remote profile runs no pod).
    Nothing,
}

/// Installs one release (a dry run renders it instead) and waits for it.
async fn release_step(
    run: &Run<'_>,
    t: &Target<'_>,
    inst: &Installer<'_>,
    step: &str,
    release: &Release,
    wait: Await,
) -> Result<Outcome> {
    let ctx = t.spec.context.as_str();
    let chart = release
        .chart
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if run.opts.dry_run {
        let objects = inst.helm.template(ctx, release).await?;
        let what = format!(
            "installed release {} (chart {chart}, {} objects)",
            release.name,
            objects.len()
        );
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
        return Ok(Outcome::Changed(what, Some(list)));
    }
    let started = Instant::now();
    let mut done = Vec::new();
    if t.releases
        .get(release.name)
        .is_some_and(|r| r.status == install::ReleaseStatus::PendingInstall)
    {
        inst.helm.uninstall(ctx, release.name).await?;
        done.push(format!(
            "removed release {} left pending-install by an interrupted run",
            release.name
        ));
    }
    inst.helm.upgrade_install(ctx, release).await?;
    let on_wait = |what: String| run.emit(ctx, step, EventKind::Waiting(what), started);
    let ns = run.opts.namespace.as_str();
    let detail = match wait {
        Await::Crds => {
            let n = install::wait_crds_established(&t.client, ctx, run.opts.wait, &on_wait).await?;
            format!("{n} CRDs Established")
        }
        Await::Rollout => {
            let names =
                install::wait_rollout(&t.client, ctx, ns, release.name, run.opts.wait, &on_wait)
                    .await?;
            format!("Deployment {} rolled out", names.join(", "))
        }
        Await::Nothing => "no pods to wait for".into(),
    };
    done.push(format!(
        "installed release {ns}/{} (chart {chart}; {detail})",
        release.name
    ));
    Ok(Outcome::from_changes(done))
}

/// The gateway Service the gateway chart will make (for a dry run before it exists).
fn planned_gateway(network: &str) -> GatewayService {
    GatewayService {
        name: EASTWEST_RELEASE.into(),
        selector: BTreeMap::from([
            ("app".to_owned(), EASTWEST_RELEASE.to_owned()),
            ("istio".to_owned(), "eastwestgateway".to_owned()),
        ]),
        port: 15443,
        node_port: None,
        network_label: Some(network.to_owned()),
    }
}

/// Waits for the gateway Service's address: LoadBalancer ip or hostname, else
/// externalIPs, else a node address with the node port.
async fn gateway_address(
    run: &Run<'_>,
    t: &Target<'_>,
    gw: &GatewayService,
) -> Result<(String, u16)> {
    let ctx = t.spec.context.as_str();
    let ns = run.opts.namespace.as_str();
    let api: Api<Service> = Api::namespaced(t.client.clone(), ns);
    let started = Instant::now();
    let look = || async {
        let svc = api
            .get(&gw.name)
            .await
            .map_err(|e| kube(ctx, format!("reading Service {ns}/{}", gw.name), e))?;
        let ingress = svc
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .and_then(|i| i.into_iter().next());
        if let Some(ingress) = ingress
            && let Some(addr) = ingress.ip.or(ingress.hostname)
        {
            return Ok(Some((addr, gw.port)));
        }
        let spec = svc.spec.unwrap_or_default();
        if let Some(ip) = spec.external_ips.and_then(|ips| ips.into_iter().next()) {
            return Ok(Some((ip, gw.port)));
        }
        // A NodePort Service never gets an address: fall back at once.
        if spec.type_.as_deref() == Some("NodePort") {
            return Ok(Some((String::new(), 0)));
        }
        Ok::<_, Error>(None)
    };
    let mut found = look().await?;
    if found.is_none() {
        run.emit(
            ctx,
            "gateway address",
            EventKind::Waiting(format!(
                "for Service {ns}/{} to get a LoadBalancer address",
                gw.name
            )),
            started,
        );
        found = cluster::poll(run.opts.wait, look).await?;
    }
    // What a Service's status or a Node says is written by others (a cloud controller,
    // anyone who may update status) and goes into meshNetworks and helm values: a host
    // name or an IP address, nothing else.
    let checked = |(addr, port): (String, u16), source: &str| match check_host(&addr) {
        Ok(()) => Ok((addr, port)),
        Err(why) => Err(Error::Malformed {
            cluster: ctx.to_owned(),
            object: source.to_owned(),
            reason: format!(
                "the gateway address it gives {why}; pass --gateway-address HOST[:PORT]"
            ),
        }),
    };
    let found = found.filter(|(addr, _)| !addr.is_empty());
    if let Some(addr) = found {
        return checked(addr, &format!("Service {ns}/{}", gw.name));
    }
    // NodePort fallback: a node's address and the node port.
    if let Some(node_port) = gw.node_port {
        let nodes: Api<Node> = Api::all(t.client.clone());
        if let Ok(list) = nodes.list(&Default::default()).await {
            let addr = list.iter().find_map(|n| {
                let addrs = n.status.as_ref()?.addresses.as_ref()?;
                ["ExternalIP", "InternalIP"].iter().find_map(|ty| {
                    addrs
                        .iter()
                        .find(|a| a.type_ == *ty)
                        .map(|a| a.address.clone())
                })
            });
            if let Some(addr) = addr {
                run.warn(ctx, "gateway address", format!("Service {ns}/{} has no LoadBalancer address; using node address {addr} and node port {node_port}", gw.name));
                return checked((addr, node_port), "a Node's address");
            }
        }
    }
    Err(Error::Timeout {
        cluster: ctx.to_owned(),
        what: format!("Service {ns}/{} to get a LoadBalancer address", gw.name),
        seconds: run.opts.wait.as_secs(),
        hint: "check the cloud's load balancer, or pass --gateway-address ADDR[:PORT]".into(),
    })
}

async fn mesh_networks_step(
    run: &Run<'_>,
    primary: &Target<'_>,
    targets: &[Target<'_>],
    gateways: &[Option<(String, u16)>],
) -> Result<Outcome> {
    let ctx = primary.spec.context.as_str();
    let ns = run.opts.namespace.as_str();
    let api: Api<ConfigMap> = Api::namespaced(primary.client.clone(), ns);
    // Other joins and unjoins edit the same document: conditional, re-applied on conflict.
    let object = format!("ConfigMap {ns}/{MESH_CONFIG_MAP}");
    let written = cluster::update(
        &api,
        ctx,
        &object,
        MESH_CONFIG_MAP,
        run.opts.dry_run,
        |cm: Option<&ConfigMap>| {
            let mut networks = match cm {
                Some(cm) => read_mesh_networks(cm, ctx, ns, "join")?,
                // Only a dry run of --install gets here: istiod (and its ConfigMap) is not there yet.
                None if run.opts.dry_run && run.opts.install.is_some() => {
                    MeshNetworks::parse("").expect("empty meshNetworks parses")
                }
                None => {
                    return Err(Error::Malformed {
                        cluster: ctx.to_owned(),
                        object: object.clone(),
                        reason:
                            "it is missing: istiod is not installed; install it, or pass --install"
                                .into(),
                    });
                }
            };
            let mut changed = false;
            for (t, gw) in targets.iter().zip(gateways) {
                // A registry listed under another network moves to this one.
                if let Some(old) = networks.network_of(&t.name)
                    && old != t.network
                {
                    changed |= networks.remove_registry(&t.name);
                }
                changed |= networks.upsert(
                    &t.network,
                    &t.name,
                    gw.as_ref().map(|(a, p)| (a.as_str(), *p)),
                );
            }
            Ok(changed.then(|| (networks.to_config_map(ns), ())))
        },
    )
    .await?;
    let Some((desired, ())) = written else {
        return Ok(Outcome::Unchanged);
    };
    Ok(Outcome::Changed(
        format!(
            "updated meshNetworks in ConfigMap {ns}/{MESH_CONFIG_MAP}: {}",
            targets
                .iter()
                .zip(gateways)
                .map(|(t, g)| match g {
                    Some((a, p)) => format!("{} via {a}:{p}", t.network),
                    None => t.network.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        serde_json::to_value(&desired).ok(),
    ))
}

async fn remote_secret_step(
    run: &Run<'_>,
    kubeconfigs: &Kubeconfigs,
    primary: &Target<'_>,
    remote: &Target<'_>,
    request: &RemoteSecretRequest,
) -> Result<Outcome> {
    let ns = run.opts.namespace.as_str();
    let pctx = primary.spec.context.as_str();
    if run.opts.dry_run {
        // Making a token may create a token Secret in the remote: not in a dry run.
        let client = &remote.client;
        let account = mesh_kubeconfig::ReaderAccount::new(ns, request.service_account.clone());
        let changes =
            mesh_kubeconfig::check_reader_account(client, &remote.spec.context, &account).await?;
        let name = request
            .secret_name
            .clone()
            .unwrap_or_else(|| mesh_kubeconfig::remote_secret_name(&remote.name));
        let secrets: Api<Secret> = Api::namespaced(primary.client.clone(), ns);
        let exists = secrets
            .get_opt(&name)
            .await
            .map_err(|e| kube(pctx, format!("reading Secret {ns}/{name}"), e))?
            .is_some();
        if exists && changes.is_empty() {
            return Ok(Outcome::Unchanged);
        }
        let mut what: Vec<String> = changes
            .iter()
            .map(|c| format!("{} in {}", c, remote.spec.context))
            .collect();
        what.push(format!(
            "{} remote Secret {ns}/{name} in {pctx} (its token is only made by a real run)",
            if exists { "refreshed" } else { "created" }
        ));
        return Ok(Outcome::Changed(what.join("; "), None));
    }
    let generated = mesh_kubeconfig::generate_remote_secret(kubeconfigs, request).await?;
    for w in &generated.warnings {
        run.warn(&remote.spec.context, "remote secret", w.to_string());
    }
    if let Some(v) = &generated.verification
        && !v.is_ok()
    {
        return Err(Error::Kube {
            cluster: remote.spec.context.clone(),
            action: "verifying the reader credentials".into(),
            reason: v.problems().join("; "),
            status: None,
            source: None,
        });
    }
    let mut what: Vec<String> = generated
        .changes
        .iter()
        .map(|c| format!("{c} in {}", remote.spec.context))
        .collect();
    if generated.token_secret_created {
        what.push(format!(
            "created token Secret {ns}/{} in {}",
            generated.token_secret.clone().unwrap_or_default(),
            remote.spec.context
        ));
    }
    let desired = generated.secret;
    let name = desired.metadata.name.clone().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(primary.client.clone(), ns);
    let current = secrets
        .get_opt(&name)
        .await
        .map_err(|e| kube(pctx, format!("reading Secret {ns}/{name}"), e))?;
    let same = current.as_ref().is_some_and(|c| {
        let contains = |have: &Option<BTreeMap<String, String>>,
                        want: &Option<BTreeMap<String, String>>| {
            want.iter()
                .flatten()
                .all(|(k, v)| have.as_ref().and_then(|h| h.get(k)) == Some(v))
        };
        c.data == desired.data
            && contains(&c.metadata.labels, &desired.metadata.labels)
            && contains(&c.metadata.annotations, &desired.metadata.annotations)
    });
    if !same {
        cluster::apply(&secrets, pctx, &name, &desired).await?;
        what.push(format!(
            "{} remote Secret {ns}/{name} in {pctx} (token from {})",
            if current.is_some() {
                "updated"
            } else {
                "created"
            },
            generated.token_source
        ));
    }
    if what.is_empty() {
        Ok(Outcome::Unchanged)
    } else {
        Ok(Outcome::Changed(what.join("; "), None))
    }
}

/// Parses `HOST` or `HOST:PORT` (an IPv6 address in brackets when a port follows),
/// defaulting the port; the error says why `text` is not one (without naming a flag).
fn parse_address(text: &str, default_port: u16) -> std::result::Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("has a '[' without its ']'")?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("has {after:?} after its ']'")),
        }
    } else {
        match text.rsplit_once(':') {
            // One colon: HOST:PORT; more: a bare IPv6 address.
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            _ => (text, None),
        }
    };
    check_host(host)?;
    let port = match port {
        None => default_port,
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(format!("has port {port:?}, not a number from 1 to 65535")),
        },
    };
    Ok((host.to_owned(), port))
}

/// Why `host` is neither an IP address nor a DNS host name, if it is not one.
fn check_host(host: &str) -> std::result::Result<(), String> {
    if host.is_empty() {
        return Err("has no host".into());
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if host.len() <= 253 && host.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "has host {host:?}, which is neither an IP address nor a DNS name"
        ))
    }
}

/// Whether `value` may be a Kubernetes label value that names something: 1 to 63
/// letters, digits, `-`, `_` or `.`, beginning and ending with a letter or digit.
fn is_label_value(value: &str) -> bool {
    let edge_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    value.len() <= 63
        && edge_ok(value.bytes().next())
        && edge_ok(value.bytes().last())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::{is_label_value, parse_address};

    #[test]
    fn gateway_addresses_parse_with_and_without_port() {
        assert_eq!(
            parse_address("1.2.3.4", 15443),
            Ok(("1.2.3.4".into(), 15443))
        );
        assert_eq!(
            parse_address("gw.example.com:443", 15443),
            Ok(("gw.example.com".into(), 443))
        );
        assert_eq!(parse_address("[::1]:8443", 15443), Ok(("::1".into(), 8443)));
        assert_eq!(parse_address("::1", 15443), Ok(("::1".into(), 15443)));
        assert!(parse_address("1.2.3.4:http", 15443).is_err());
        assert!(parse_address("", 15443).is_err());
    }

    #[test]
    fn gateway_addresses_are_a_host_and_a_port_and_nothing_else() {
        // What would reach helm as a second value, or a URL, or a path.
        for bad in [
            "1.2.3.4,x=y",
            "1.2.3.4:15443,x=y",
            "gw.example.com/x",
            "https://gw.example.com",
            "gw example.com",
            "-gw.example.com",
            "[::1",
            "[::1]x",
            ":443",
        ] {
            assert!(parse_address(bad, 15443).is_err(), "{bad:?} was accepted");
        }
        for bad_port in ["1.2.3.4:0", "1.2.3.4:65536", "[::1]:-1"] {
            let e = parse_address(bad_port, 15443).unwrap_err();
            assert!(e.contains("1 to 65535"), "{bad_port:?}: {e}");
        }
        assert_eq!(
            parse_address("GW-1.example.com:65535", 15443),
            Ok(("GW-1.example.com".into(), 65535))
        );
    }

    #[test]
    fn network_names_are_label_values() {
        for good in ["network1", "net_2", "a", "eu-west.1", &"n".repeat(63)] {
            assert!(is_label_value(good), "{good:?} was refused");
        }
        for bad in [
            "",
            "-net",
            "net-",
            "net work",
            "net/1",
            "n=1",
            &"n".repeat(64),
        ] {
            assert!(!is_label_value(bad), "{bad:?} was accepted");
        }
    }
}
