//! `join`: the guide's whole procedure as a plan of checked, idempotent steps.
//!
//! The phases, one module each:
//! - [`read`]: everything join reads before it judges (every cluster's facts and helm
//!   releases, the primary's remote secrets, Istio objects with join's names, helm and
//!   the charts, the reader credentials' inputs) — all the I/O of preflight;
//! - [`judge`]: a pure function from what was read and the options to each cluster's
//!   name and network and every [`Problem`] — no I/O, tested with a table of cases;
//! - [`steps`]: the per-cluster steps (network label, `cacerts`, cross-network Gateway,
//!   gateway address), `meshNetworks` in the primary and the remote secrets;
//! - [`releases`]: when installing Istio, Istio's helm releases where they are missing;
//! - [`adopt`]: what was built by hand (the guide's or istioctl's links, a cross-network
//!   Gateway) and is taken over instead of doubled.

pub(crate) mod adopt;
mod judge;
mod read;
mod releases;
mod steps;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::Client;
use mesh_certs::CaBundle;
use mesh_kubeconfig::{Kubeconfigs, RemoteSecretRequest};
use serde::Serialize;

use crate::address::{AddressOverride, GatewayAddress};
use crate::cluster::{ClusterFacts, ControlPlanes, Model, Networks, Role};
use crate::error::{Error, Problem, Result};
use crate::install::{InstallOptions, Listed};
pub use crate::plan::Change;
use crate::plan::Steps;
use crate::progress::{EventKind, Progress};

pub(crate) use steps::control_plane_clusters;

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
    /// The east-west gateway address instead of the discovered one; without a port, the
    /// gateway Service's TLS port (15443 when join installs the gateway).
    pub gateway_address: Option<AddressOverride>,
    /// The CA bundle for its `cacerts`; `None` keeps what the cluster has.
    pub certs: Option<CaBundle>,
}

impl ClusterSpec {
    /// The cluster of `context`, with defaults everywhere else.
    pub fn new(context: impl Into<String>) -> ClusterSpec {
        ClusterSpec {
            context: context.into(),
            ..ClusterSpec::default()
        }
    }
}

/// A cluster to join to the primary: its [`ClusterSpec`] and how its reader credentials
/// (the remote secret's token) are made, for one context.
///
/// ```
/// use mesh_core::Remote;
/// use mesh_kubeconfig::RemoteSecretRequest;
///
/// let mut credentials = RemoteSecretRequest::new("somewhere-else");
/// credentials.allow_plain_http = true;
/// let remote = Remote::new("cluster2")
///     .with_network("network2")
///     .with_credentials(credentials);
/// // The credentials are made for the remote's context, whatever the request said.
/// assert_eq!(remote.credentials().context, "cluster2");
/// assert_eq!(remote.spec().network.as_deref(), Some("network2"));
/// ```
#[derive(Debug)]
pub struct Remote {
    spec: ClusterSpec,
    credentials: RemoteSecretRequest,
}

impl Remote {
    /// The cluster of `context`, with default settings and credentials.
    pub fn new(context: impl Into<String>) -> Remote {
        let context = context.into();
        Remote {
            credentials: RemoteSecretRequest::new(context.clone()),
            spec: ClusterSpec::new(context),
        }
    }

    /// The kubeconfig context.
    pub fn context(&self) -> &str {
        &self.spec.context
    }

    /// Its settings.
    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// How its reader credentials are made. Its `context` is the remote's; its
    /// `cluster_name` and `namespace` are set by join (the judged name, the join's
    /// namespace).
    pub fn credentials(&self) -> &RemoteSecretRequest {
        &self.credentials
    }

    /// With its cluster ID (see [`ClusterSpec::cluster_name`]).
    pub fn with_cluster_name(mut self, name: impl Into<String>) -> Remote {
        self.spec.cluster_name = Some(name.into());
        self
    }

    /// With its network (see [`ClusterSpec::network`]).
    pub fn with_network(mut self, network: impl Into<String>) -> Remote {
        self.spec.network = Some(network.into());
        self
    }

    /// With its east-west gateway address (see [`ClusterSpec::gateway_address`]).
    pub fn with_gateway_address(mut self, address: AddressOverride) -> Remote {
        self.spec.gateway_address = Some(address);
        self
    }

    /// With a CA bundle for its `cacerts`.
    pub fn with_certs(mut self, certs: CaBundle) -> Remote {
        self.spec.certs = Some(certs);
        self
    }

    /// With `credentials` for how its reader credentials are made; their context
    /// becomes the remote's, so that the two cannot disagree.
    pub fn with_credentials(mut self, mut credentials: RemoteSecretRequest) -> Remote {
        credentials.context = self.spec.context.clone();
        self.credentials = credentials;
        self
    }
}

/// What to join.
#[derive(Debug)]
pub struct JoinOptions {
    /// The Istio namespace (default `istio-system`).
    pub namespace: String,
    /// The cluster running istiod.
    pub primary: ClusterSpec,
    /// The clusters to join to it.
    pub remotes: Vec<Remote>,
    /// Make no mutating request; report what would change.
    pub dry_run: bool,
    /// How long each wait (gateway addresses) may take.
    pub wait: Duration,
    /// Bound on each API request.
    pub request_timeout: Option<Duration>,
    /// Install Istio where it is missing, with helm; `None`: Istio must be installed
    /// already.
    pub install: Option<InstallOptions>,
    /// Overwrite a stored `cacerts` whose root cannot be read (no readable
    /// `root-cert.pem`) with the given bundle; without it, that is a preflight problem
    /// ([`ProblemKind::StoredCacertsUnreadable`](crate::ProblemKind::StoredCacertsUnreadable)),
    /// since nothing proves the given root is the one it had.
    pub replace_cacerts: bool,
    /// Replace links to a remote that kubectl-mesh did not make (the guide's
    /// `n2-k8s-secret`, istioctl's remote secret) with kubectl-mesh's own, under the
    /// remote's cluster name: the new link is written first, then the old ones are
    /// removed. Without it a working hand-made link is kept as it is, under its cluster
    /// ID, and two links to one cluster are a preflight problem.
    pub replace_links: bool,
    /// Which clusters run istiod: `None` keeps the model the mesh is recorded in (a
    /// primary-remote mesh when the primary has links and no record of another, see
    /// [`MODEL_ANNOTATION`](crate::cluster::MODEL_ANNOTATION)), and for a new mesh is
    /// primary-remote. With [`ControlPlanes::MultiPrimary`] every cluster of the join is
    /// a primary: each runs istiod and reads every other (a link in both directions for
    /// each pair), and the primary's other members must be in the join too.
    pub control_planes: Option<ControlPlanes>,
    /// Whether the clusters share one network: `None` decides from what they declare —
    /// one network when every cluster declares the same one (or when the mesh already
    /// runs on one network: its primary has links and declares none), else a network
    /// per cluster. On one network join makes no cross-network Gateway and writes no
    /// network labels or `meshNetworks`, as Istio's documentation of those models does.
    pub networks: Option<Networks>,
    /// Problems the caller found in its own inputs (for example a gateway address that
    /// does not parse), reported with preflight's, so that the user sees every problem
    /// at once; with any, join changes nothing.
    pub input_problems: Vec<Problem>,
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
    /// assert_eq!(opts.remotes[0].context(), "cluster2");
    /// ```
    pub fn new(primary: &str, remotes: &[&str]) -> JoinOptions {
        JoinOptions {
            namespace: "istio-system".into(),
            primary: ClusterSpec::new(primary),
            remotes: remotes.iter().map(|r| Remote::new(*r)).collect(),
            dry_run: false,
            wait: Duration::from_secs(120),
            request_timeout: None,
            install: None,
            replace_cacerts: false,
            replace_links: false,
            control_planes: None,
            networks: None,
            input_problems: Vec::new(),
            interrupt: crate::Interrupt::default(),
        }
    }

    /// Whether the join was asked to be multi-primary.
    fn multi_primary_given(&self) -> bool {
        self.control_planes == Some(ControlPlanes::MultiPrimary)
    }

    /// The role of the cluster at `i` (in the order of [`JoinOptions::specs`]) as the
    /// options say it before the mesh's recorded model is read: what preflight asks
    /// permissions for.
    fn given_role(&self, i: usize) -> Role {
        if i == 0 || self.multi_primary_given() {
            Role::Primary
        } else {
            Role::Remote
        }
    }

    /// How the reader credentials of the cluster at `i` (in the order of
    /// [`JoinOptions::specs`]) are made: a remote's own request; for the primary, read
    /// by the other primaries of a multi-primary mesh, the defaults with the kind of
    /// token asked for (`--token-ttl` makes every link's token expire, not only the
    /// remotes').
    fn credentials_of(&self, i: usize) -> RemoteSecretRequest {
        match i.checked_sub(1) {
            Some(r) => self.remotes[r].credentials().clone(),
            None => {
                let mut request = RemoteSecretRequest::new(self.primary.context.clone());
                if let Some(first) = self.remotes.first() {
                    request.token.strategy = first.credentials().token.strategy.clone();
                    request.token.wait = first.credentials().token.wait;
                }
                request
            }
        }
    }

    /// The primary's spec, then each remote's: the order of every per-cluster list.
    fn specs(&self) -> impl Iterator<Item = &ClusterSpec> {
        std::iter::once(&self.primary).chain(self.remotes.iter().map(Remote::spec))
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
    /// The east-west gateway's address, if the cluster has a gateway.
    pub gateway: Option<GatewayAddress>,
}

/// What a join did.
#[derive(Debug, Clone, Serialize)]
pub struct JoinSummary {
    /// The mesh's model.
    pub model: Model,
    /// The primary (in a multi-primary mesh: the cluster given as primary; the others
    /// are primaries too, listed under `remotes`).
    pub primary: JoinedCluster,
    /// The remotes.
    pub remotes: Vec<JoinedCluster>,
    /// Everything that changed (or would, in a dry run).
    pub changes: Vec<Change>,
    /// Things the user should know.
    pub warnings: Vec<String>,
    /// What somebody else made and join uses as it is (a hand-made link, a
    /// cross-network Gateway), one sentence each, naming the cluster and the object.
    pub adopted: Vec<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

type Run<'a> = crate::plan::Run<'a, JoinOptions>;

/// A cluster after preflight: its client, what was read, and its judged names.
struct Target<'a> {
    spec: &'a ClusterSpec,
    client: Client,
    facts: ClusterFacts,
    name: String,
    network: String,
    /// The helm releases in the Istio namespace (when installing Istio).
    releases: BTreeMap<String, Listed>,
    /// Its part in the mesh: in a multi-primary mesh every cluster is a primary.
    role: Role,
    /// The mesh's model.
    model: Model,
    /// The east-west gateway Service and the port cross-network traffic uses: the one
    /// an adopted Gateway serves, else the one found.
    gateway: Option<crate::cluster::GatewayService>,
    /// The cross-network Gateway somebody else made that join uses as it is.
    adopted_gateway: Option<String>,
}

/// Joins the remotes to the primary: preflight (every problem, before any change),
/// then the steps, concurrently where they do not depend on each other.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use mesh_core::{Event, JoinOptions, Remote, join};
/// use mesh_kubeconfig::{KubeconfigSource, Kubeconfigs};
///
/// let kubeconfigs = Kubeconfigs::load(&KubeconfigSource::Default)?;
/// let mut options = JoinOptions::new("cluster1", &[]);
/// options.primary.certs = Some(mesh_certs::CaBundle::load_dir("certs/cluster1".as_ref())?);
/// let bundle = mesh_certs::CaBundle::load_dir("certs/cluster2".as_ref())?;
/// options.remotes.push(Remote::new("cluster2").with_certs(bundle));
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

    // Preflight: read everything, concurrently, then judge it all at once.
    let started = Instant::now();
    for spec in opts.specs() {
        run.emit(&spec.context, "preflight", EventKind::Started, started);
    }
    let (read, clients, installer) = read::read(kubeconfigs, opts).await;
    let judged = judge::judge(&read, opts);
    for spec in opts.specs() {
        let mine = judged
            .problems
            .iter()
            .filter(|p| p.cluster == spec.context)
            .count();
        let kind = if mine == 0 {
            EventKind::Unchanged
        } else {
            EventKind::Failed(format!("{mine} problem(s)"))
        };
        if read.readable(&spec.context) {
            run.emit(&spec.context, "preflight", kind, started);
        }
    }
    if !judged.problems.is_empty() {
        return Err(Error::Preflight {
            problems: judged.problems,
        });
    }
    let mut targets = Vec::new();
    let model = judged.model;
    let pairs = judged.links;
    for (i, (((spec, client), cluster), ((name, network), adopted))) in opts
        .specs()
        .zip(clients)
        .zip(read.clusters)
        .zip(
            judged
                .names
                .into_iter()
                .zip(judged.networks)
                .zip(judged.gateways),
        )
        .enumerate()
    {
        let (Some(client), Ok(cluster)) = (client, cluster) else {
            unreachable!("an unreadable cluster is a preflight problem");
        };
        let (gateway, adopted_gateway) = match adopted {
            Some(a) => (Some(a.service), Some(a.name)),
            None => (cluster.facts.gateway.clone(), None),
        };
        targets.push(Target {
            spec,
            client,
            facts: cluster.facts,
            name,
            network,
            releases: cluster.releases,
            role: if i == 0 || model.control_planes == ControlPlanes::MultiPrimary {
                Role::Primary
            } else {
                Role::Remote
            },
            model,
            gateway,
            adopted_gateway,
        });
    }
    let adopted = adoptions(&targets, &pairs, &opts.namespace);
    let installer = installer.as_ref();

    // Per cluster: the namespace's network label (and, on remotes, the control-plane
    // annotation), cacerts, (installing) Istio's releases, the cross-network Gateway and
    // the gateway address. Clusters run concurrently; a remote's istiod install waits
    // for the primary's gateway address.
    let gateways = steps::cluster_steps_all(run, &targets, installer).await?;

    // meshNetworks in each primary, once, with every cluster of this join (on one
    // network there is none: pods reach each other directly).
    if model.networks == Networks::Different {
        let edits = targets
            .iter()
            .filter(|t| t.role == Role::Primary)
            .map(|primary| {
                let (targets, gateways) = (&targets, &gateways);
                run.step(&primary.spec.context, "meshNetworks", async move {
                    steps::mesh_networks_step(run, primary, targets, gateways).await
                })
            });
        for result in futures::future::join_all(edits).await {
            result?;
        }
    }

    // Reader credentials in each cluster read and the remote secret in each cluster
    // that reads it: concurrently per cluster read; its first link makes its reader
    // account and token, the others (multi-primary) then reuse them concurrently.
    let secrets = (0..targets.len()).map(|target| {
        let (run, targets, pairs) = (&run, &targets, &pairs);
        async move {
            let remote = &targets[target];
            let mut request = opts.credentials_of(target);
            request.cluster_name = Some(remote.name.clone());
            request.namespace = opts.namespace.clone();
            request.timeout = request.timeout.or(opts.request_timeout);
            let request = &request;
            let minted = &steps::Minted::default();
            let link = |i: usize| async move {
                let pair = &pairs[i];
                let reader = &targets[pair.reader];
                let step = if model.control_planes == ControlPlanes::MultiPrimary {
                    format!("remote secret in {}", reader.spec.context)
                } else {
                    "remote secret".to_owned()
                };
                run.step(&remote.spec.context, &step, async {
                    steps::remote_secret_step(
                        run,
                        kubeconfigs,
                        reader,
                        remote,
                        &pair.plan,
                        request,
                        minted,
                    )
                    .await
                })
                .await
            };
            let mut links = (0..pairs.len()).filter(|i| pairs[*i].target == target);
            if let Some(first) = links.next() {
                link(first).await?;
            }
            for result in futures::future::join_all(links.map(link)).await {
                result?;
            }
            Ok::<(), Error>(())
        }
    });
    for result in futures::future::join_all(secrets).await {
        result?;
    }

    let joined = |t: &Target, gw: &Option<GatewayAddress>| JoinedCluster {
        context: t.spec.context.clone(),
        cluster_name: t.name.clone(),
        network: t.network.clone(),
        gateway: gw.clone(),
    };
    let (changes, warnings) = run.steps.finish();
    Ok(JoinSummary {
        model,
        primary: joined(&targets[0], &gateways[0]),
        remotes: targets[1..]
            .iter()
            .zip(&gateways[1..])
            .map(|(t, g)| joined(t, g))
            .collect(),
        changes,
        warnings,
        adopted,
        dry_run: opts.dry_run,
    })
}

/// The contexts of the other members of `primary`'s multi-primary mesh: when its Istio
/// namespace records the model ([`MODEL_ANNOTATION`](crate::cluster::MODEL_ANNOTATION)),
/// each cluster it reads that a context of `kubeconfigs` reaches (by API server URL).
/// Empty for any other mesh. A joining program adds them to the join, so that a new
/// member is linked with every member; one no context reaches stays a preflight problem
/// ([`ProblemKind::PeerWithoutContext`](crate::ProblemKind::PeerWithoutContext)).
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use mesh_core::{JoinOptions, Remote, multi_primary_members};
/// use mesh_kubeconfig::{KubeconfigSource, Kubeconfigs};
///
/// let kubeconfigs = Kubeconfigs::load(&KubeconfigSource::Default)?;
/// let mut options = JoinOptions::new("cluster1", &["cluster3"]);
/// for member in multi_primary_members(&kubeconfigs, "cluster1", "istio-system", None).await? {
///     options.remotes.push(Remote::new(member));
/// }
/// # Ok(()) }
/// ```
pub async fn multi_primary_members(
    kubeconfigs: &Kubeconfigs,
    primary: &str,
    namespace: &str,
    timeout: Option<Duration>,
) -> Result<Vec<String>> {
    let client = kubeconfigs.client(primary, timeout).await?;
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    let recorded = api
        .get_opt(namespace)
        .await
        .map_err(|e| crate::error::kube(primary, "reaching the API server", e))?
        .and_then(|n| {
            n.metadata
                .annotations?
                .remove(crate::cluster::MODEL_ANNOTATION)
        })
        .is_some_and(|v| v == ControlPlanes::MultiPrimary.id());
    if !recorded {
        return Ok(Vec::new());
    }
    let contexts: Vec<(String, String)> = kubeconfigs
        .contexts()
        .into_iter()
        .filter_map(|c| Some((c.to_owned(), kubeconfigs.resolve(c).ok()?.server)))
        .collect();
    let secrets = crate::links::remote_secrets(&client, primary, namespace).await?;
    let mut members = Vec::new();
    for link in crate::links::links(&secrets) {
        let Some(server) = crate::links::link_server(&link.kubeconfig) else {
            continue;
        };
        if let Some((context, _)) = contexts
            .iter()
            .find(|(c, s)| c != primary && crate::links::same_server(s, &server))
            && !members.contains(context)
        {
            members.push(context.clone());
        }
    }
    Ok(members)
}

/// What join takes over, one sentence per object.
fn adoptions(targets: &[Target<'_>], pairs: &[judge::PairLink], ns: &str) -> Vec<String> {
    let mut out = Vec::new();
    for t in targets {
        let ctx = t.spec.context.as_str();
        if let (Some(name), Some(gw)) = (&t.adopted_gateway, &t.gateway) {
            out.push(format!(
                "{ctx}: Gateway {ns}/{name}, made by hand: TLS AUTO_PASSTHROUGH on port {} of Service {ns}/{}",
                gw.port, gw.name
            ));
        }
    }
    for pair in pairs {
        if let adopt::LinkPlan::Adopt { link } = &pair.plan {
            out.push(format!(
                "{}: {}, made by hand: the link to {}",
                targets[pair.reader].spec.context,
                link.describe(ns),
                targets[pair.target].spec.context
            ));
        }
    }
    out
}
