//! `verify`: the guide's last step — what istiod tells each sidecar about a service,
//! judged, and the requests that prove it when pods really run.
//!
//! 1. **status**: [`status`](crate::status) of the mesh, read once: its clusters, their
//!    networks and gateways, and every failed check (the causes hints name).
//! 2. **samples**: unless a service is given, the guide's samples
//!    ([`SAMPLE_NAMESPACE`]: helloworld v1 in the primary, v2 in every other cluster,
//!    `sleep` everywhere; only what is missing is created), then their rollout is awaited.
//! 3. **xds**: per cluster, a connection to the istiod serving its sidecars as that
//!    cluster's `sleep` sidecar would make it (its node metadata, a TokenRequest token for
//!    its ServiceAccount over istiod's TLS port trusting the mesh root, or the plaintext
//!    port where the caller points at it), CDS then EDS for the service ([`mesh_xds`]).
//! 4. **judge**: [`judge`] per cluster, against the ready pods every cluster holds and the
//!    gateways' real addresses; each failed row gets a hint naming the cause found.
//! 5. **traffic**: the guide's requests from each `sleep` through the API server's exec;
//!    where exec cannot run, the row says "not tested" — never passed.
//! 6. **cleanup**: the samples verify created are deleted (unless kept), and what an
//!    interrupted verify left is deleted with them.
//!
//! Nothing here changes the mesh; the only objects written are the samples.

mod judge;
mod samples;
mod traffic;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service, ServiceAccount};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use mesh_kubeconfig::Kubeconfigs;
use secrecy::SecretString;
use serde::Serialize;

pub use judge::{
    Backend, EndpointProblem, EndpointRow, Expected, NetworkGateway, ReceivedEndpoint, judge,
};
pub use samples::{
    HELLOWORLD_PORT, SAMPLE_LABEL, SAMPLE_NAMESPACE, SLEEP_CONTAINER, SLEEP_IMAGE, helloworld_image,
};
pub use traffic::{TrafficRow, TrafficState, count_answers, judge_traffic, request_loop};

use crate::cluster::{CACERTS, ControlPlanes, Model, Role};
use crate::error::{Error, Result, kube};
use crate::progress::{Event, EventKind, Progress};
use crate::status::{Check, CheckKind, CheckState, ClusterRow, MeshStatus, StatusOptions};

/// The label Istio's injector puts on a pod it gives a sidecar (value `istio`).
const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";

/// The service verify checks: `NAME.NAMESPACE:PORT`.
///
/// ```
/// let s: mesh_core::verify::ServiceRef = "helloworld.sample:5000".parse().unwrap();
/// assert_eq!(s.host(), "helloworld.sample.svc.cluster.local");
/// assert!("helloworld:5000".parse::<mesh_core::verify::ServiceRef>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceRef {
    /// The Service's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its port.
    pub port: u16,
}

impl ServiceRef {
    /// The guide's `helloworld.sample:5000`.
    ///
    /// ```
    /// assert_eq!(mesh_core::verify::ServiceRef::helloworld().to_string(), "helloworld.sample:5000");
    /// ```
    pub fn helloworld() -> ServiceRef {
        ServiceRef {
            name: "helloworld".into(),
            namespace: SAMPLE_NAMESPACE.into(),
            port: HELLOWORLD_PORT,
        }
    }

    /// Its cluster-local host name, as istiod names its clusters.
    ///
    /// ```
    /// assert_eq!(mesh_core::verify::ServiceRef::helloworld().host(), "helloworld.sample.svc.cluster.local");
    /// ```
    pub fn host(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.name, self.namespace)
    }
}

impl std::fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}:{}", self.name, self.namespace, self.port)
    }
}

impl std::str::FromStr for ServiceRef {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let wanted = || format!("`{s}` is not NAME.NAMESPACE:PORT (e.g. helloworld.sample:5000)");
        let (host, port) = s.rsplit_once(':').ok_or_else(wanted)?;
        let (name, namespace) = host.split_once('.').ok_or_else(wanted)?;
        let port: u16 = port.parse().map_err(|_| wanted())?;
        if name.is_empty() || namespace.is_empty() || namespace.contains('.') || port == 0 {
            return Err(wanted());
        }
        Ok(ServiceRef {
            name: name.into(),
            namespace: namespace.into(),
            port,
        })
    }
}

/// Where the istiod of one primary is reached: an address the caller already has a route
/// to (a port-forward, a local process).
///
/// ```
/// let r = mesh_core::verify::IstiodRoute::new(Some("cluster1"), "127.0.0.1:15012");
/// assert_eq!(r.context.as_deref(), Some("cluster1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IstiodRoute {
    /// The primary's context (`None`: every primary's, for a mesh with one).
    pub context: Option<String>,
    /// `HOST:PORT` of istiod's TLS xDS port (or its plaintext one, with
    /// [`VerifyOptions::plaintext`]).
    pub address: String,
}

impl IstiodRoute {
    /// A route to `address` for `context`'s istiod.
    ///
    /// ```
    /// let r = mesh_core::verify::IstiodRoute::new(None, "127.0.0.1:15010");
    /// assert!(r.context.is_none());
    /// ```
    pub fn new(context: Option<&str>, address: &str) -> IstiodRoute {
        IstiodRoute {
            context: context.map(str::to_owned),
            address: address.to_owned(),
        }
    }
}

/// What to verify.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The Istio namespace (default `istio-system`).
    pub namespace: String,
    /// The primary's context.
    pub primary: String,
    /// Contexts that must be part of the mesh besides those the primary reads (a cluster
    /// named here that no link reads fails, with the cause).
    pub clusters: Vec<String>,
    /// The service to check; `None`: deploy and check the guide's helloworld.
    pub service: Option<ServiceRef>,
    /// Keep the samples verify deployed.
    pub keep: bool,
    /// Routes to istiod; a primary without one is reached by a port-forward to a running
    /// istiod pod (label `app=istiod`) through the Kubernetes API.
    pub istiod: Vec<IstiodRoute>,
    /// Speak to istiod's plaintext xDS port (no authentication) instead of its TLS port.
    pub plaintext: bool,
    /// Requests each `sleep` sends (0: no traffic step).
    pub requests: u32,
    /// Bound on each API request.
    pub request_timeout: Option<Duration>,
    /// How long samples may take to roll out, and an xDS exchange to answer.
    pub wait: Duration,
    /// How long a wrong answer from istiod is asked again before it counts (istiod
    /// pushes a change within seconds).
    pub settle: Duration,
    /// Raised by the caller on SIGINT/SIGTERM: no step starts after it (the cleanup still
    /// runs).
    pub interrupt: crate::Interrupt,
}

impl VerifyOptions {
    /// Verify `primary`'s mesh with the guide's samples, 10 requests per cluster.
    ///
    /// ```
    /// let o = mesh_core::verify::VerifyOptions::new("cluster1");
    /// assert_eq!((o.requests, o.keep, o.plaintext), (10, false, false));
    /// ```
    pub fn new(primary: &str) -> VerifyOptions {
        VerifyOptions {
            namespace: "istio-system".into(),
            primary: primary.into(),
            clusters: Vec::new(),
            service: None,
            keep: false,
            istiod: Vec::new(),
            plaintext: false,
            requests: 10,
            request_timeout: None,
            wait: Duration::from_secs(180),
            settle: Duration::from_secs(20),
            interrupt: crate::Interrupt::default(),
        }
    }
}

/// How long one cluster's xDS exchange took (connect, TLS, CDS, EDS; not the token and
/// root read from Kubernetes before it), for the curious and for benchmarks.
///
/// ```
/// let t = mesh_core::verify::XdsTiming { client: "cluster1".into(), millis: 12 };
/// assert_eq!(t.millis, 12);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct XdsTiming {
    /// The cluster whose sidecar was asked about.
    pub client: String,
    /// Connect, TLS, CDS and EDS, in milliseconds.
    pub millis: u64,
}

/// What verify found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The mesh's model.
    pub model: Model,
    /// The service checked (`NAME.NAMESPACE:PORT`).
    pub service: String,
    /// The matrix: per client cluster, per target.
    pub endpoints: Vec<EndpointRow>,
    /// The requests' outcome per client cluster (empty when none were sent).
    pub traffic: Vec<TrafficRow>,
    /// The mesh's failed and warned status checks (the causes hints name).
    pub checks: Vec<Check>,
    /// What verify deployed (`cluster: Kind/name`).
    pub deployed: Vec<String>,
    /// What verify removed at the end (`cluster: Kind/name`).
    pub removed: Vec<String>,
    /// The time of each xDS exchange (a cluster asked again while istiod settles has
    /// several).
    pub xds: Vec<XdsTiming>,
    /// The time the sample checks took (reading the clusters, rollout), in milliseconds.
    pub sample_millis: u64,
}

impl VerifyReport {
    /// Whether anything failed: a matrix row, a status check, or traffic (traffic not
    /// tested is not a failure).
    ///
    /// ```
    /// let r = mesh_core::verify::VerifyReport {
    ///     model: Default::default(), service: "s.n:1".into(), endpoints: vec![],
    ///     traffic: vec![], checks: vec![], deployed: vec![], removed: vec![], xds: vec![],
    ///     sample_millis: 0,
    /// };
    /// assert!(!r.failed());
    /// ```
    pub fn failed(&self) -> bool {
        self.endpoints.iter().any(|r| r.state == CheckState::Fail)
            || self.checks.iter().any(|c| c.state == CheckState::Fail)
            || self.traffic.iter().any(|t| t.state == TrafficState::Failed)
    }
}

/// One cluster verify looks at.
#[derive(Debug, Clone)]
struct Member {
    /// Cluster ID (a context name for a cluster outside the mesh).
    id: String,
    context: String,
    /// The network istiod puts its pods on (its Istio namespace's label, else
    /// `meshNetworks`).
    network: Option<String>,
    /// The network its sidecars claim: its Istio namespace's label, which Istio's
    /// injector writes into each sidecar (`ISTIO_META_NETWORK`).
    sidecar_network: Option<String>,
    /// Whether a link of the mesh reads it (the primary itself counts).
    in_mesh: bool,
    /// The context of the primary whose istiod serves its sidecars.
    istiod_of: String,
    /// The helloworld version its samples run: v1 in the first cluster, v2 in the others
    /// (`None` when an existing service is checked).
    version: Option<&'static str>,
}

fn event(progress: &dyn Progress, cluster: &str, step: &str, kind: EventKind, since: Instant) {
    progress.event(Event {
        cluster: cluster.to_owned(),
        step: step.to_owned(),
        kind,
        elapsed: since.elapsed(),
    });
}

/// Verifies the mesh `opts.primary` belongs to: see the [module docs](self).
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use mesh_core::verify::{VerifyOptions, verify};
/// let kubeconfigs = mesh_kubeconfig::Kubeconfigs::load(&Default::default())?;
/// let report = verify(&kubeconfigs, &VerifyOptions::new("cluster1"), &mesh_core::NoProgress).await?;
/// for row in report.endpoints.iter().filter(|r| r.state == mesh_core::CheckState::Fail) {
///     eprintln!("{} → {}: {}", row.client, row.target, row.hint.as_deref().unwrap_or(""));
/// }
/// # Ok(()) }
/// ```
pub async fn verify(
    kubeconfigs: &Kubeconfigs,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    let started = Instant::now();
    let status_opts = StatusOptions {
        namespace: opts.namespace.clone(),
        request_timeout: opts.request_timeout,
        ..StatusOptions::new(&opts.primary)
    };
    let mesh = crate::status(kubeconfigs, &status_opts).await?;
    let (members, clients) = members(kubeconfigs, opts, &mesh).await?;
    let service = opts.service.clone().unwrap_or_else(ServiceRef::helloworld);

    // Samples: deploy what is missing, then the result always includes the cleanup.
    let mut report = VerifyReport {
        model: mesh.model,
        service: service.to_string(),
        endpoints: Vec::new(),
        traffic: Vec::new(),
        checks: mesh
            .checks
            .iter()
            .filter(|c| c.state != CheckState::Pass)
            .cloned()
            .collect(),
        deployed: Vec::new(),
        removed: Vec::new(),
        xds: Vec::new(),
        sample_millis: 0,
    };
    let outcome = run(
        opts,
        progress,
        &members,
        &clients,
        &mesh,
        &service,
        &mut report,
    )
    .await;
    if !opts.keep {
        for m in &members {
            let t = Instant::now();
            match samples::remove(&clients[&m.context], &m.context).await {
                Ok(removed) => {
                    for r in &removed {
                        event(
                            progress,
                            &m.context,
                            "cleanup",
                            EventKind::Changed(format!("deleted {r}")),
                            t,
                        );
                    }
                    report
                        .removed
                        .extend(removed.into_iter().map(|r| format!("{}: {r}", m.context)));
                }
                Err(e) if outcome.is_ok() => return Err(e),
                Err(e) => tracing::warn!("cleanup in {} failed: {e}", m.context),
            }
        }
    }
    outcome?;
    tracing::debug!("verify took {:?}", started.elapsed());
    Ok(report)
}

/// The clusters to look at: every cluster the mesh holds that a context reaches, then the
/// clusters named that it does not hold; with a client for each (by context).
async fn members(
    kubeconfigs: &Kubeconfigs,
    opts: &VerifyOptions,
    mesh: &MeshStatus,
) -> Result<(Vec<Member>, BTreeMap<String, Client>)> {
    let multi = mesh.model.control_planes == ControlPlanes::MultiPrimary;
    let version = |i: usize| {
        opts.service
            .is_none()
            .then_some(if i == 0 { "v1" } else { "v2" })
    };
    let mut members = Vec::new();
    let mut clients = BTreeMap::new();
    for row in &mesh.clusters {
        let context = match (&row.context, row.role) {
            (_, Role::Primary) if members.is_empty() => opts.primary.clone(),
            (Some(ctx), _) => ctx.clone(),
            (None, _) => {
                tracing::warn!(
                    "no context reaches cluster {}: its sidecars are not checked",
                    row.cluster_id
                );
                continue;
            }
        };
        let istiod_of = if multi {
            context.clone()
        } else {
            opts.primary.clone()
        };
        let client = kubeconfigs.client(&context, opts.request_timeout).await?;
        let sidecar_network = network_label(&client, &context, &opts.namespace).await?;
        clients.insert(context.clone(), client);
        members.push(Member {
            id: row.cluster_id.clone(),
            context,
            network: row.network.clone(),
            sidecar_network,
            in_mesh: true,
            istiod_of,
            version: version(members.len()),
        });
    }
    for ctx in &opts.clusters {
        if members.iter().any(|m| &m.context == ctx) {
            continue;
        }
        // Named, but no link reads it: its pods are expected, and cannot be reached.
        let client = kubeconfigs.client(ctx, opts.request_timeout).await?;
        let network = network_label(&client, ctx, &opts.namespace).await?;
        clients.insert(ctx.clone(), client);
        members.push(Member {
            id: ctx.clone(),
            context: ctx.clone(),
            network: network.clone(),
            sidecar_network: network,
            in_mesh: false,
            istiod_of: opts.primary.clone(),
            version: version(members.len()),
        });
    }
    Ok((members, clients))
}

async fn network_label(client: &Client, ctx: &str, ns: &str) -> Result<Option<String>> {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let found = namespaces
        .get_opt(ns)
        .await
        .map_err(|e| kube(ctx, format!("reading namespace {ns}"), e))?;
    Ok(found.and_then(|n| {
        n.metadata
            .labels?
            .get(crate::cluster::NETWORK_LABEL)
            .cloned()
    }))
}

#[allow(clippy::too_many_arguments)]
async fn run(
    opts: &VerifyOptions,
    progress: &dyn Progress,
    members: &[Member],
    clients: &BTreeMap<String, Client>,
    mesh: &MeshStatus,
    service: &ServiceRef,
    report: &mut VerifyReport,
) -> Result<()> {
    let interrupted = || {
        opts.interrupt.raised().map(|signal| Error::Interrupted {
            signal,
            completed: Vec::new(),
        })
    };
    let samples_started = Instant::now();
    // 2. Samples: helloworld v1 in the first cluster, v2 in the others; sleep everywhere.
    for m in members {
        let t = Instant::now();
        event(progress, &m.context, "samples", EventKind::Started, t);
        let created = samples::deploy(&clients[&m.context], &m.context, m.version).await?;
        if created.is_empty() {
            event(progress, &m.context, "samples", EventKind::Unchanged, t);
        }
        for c in &created {
            event(
                progress,
                &m.context,
                "samples",
                EventKind::Changed(format!("created {c}")),
                t,
            );
        }
        report
            .deployed
            .extend(created.into_iter().map(|c| format!("{}: {c}", m.context)));
        if let Some(e) = interrupted() {
            return Err(e);
        }
    }
    let mut versions: Vec<String> = members
        .iter()
        .filter_map(|m| Some(m.version?.to_owned()))
        .collect();
    versions.sort();
    versions.dedup();
    // Rollout: each cluster's sleep, and its helloworld version.
    let mut sleeps = BTreeMap::new();
    for m in members {
        let client = &clients[&m.context];
        let t = Instant::now();
        if let Some(version) = m.version {
            let selector = format!("app=helloworld,version={version}");
            event(
                progress,
                &m.context,
                "rollout",
                EventKind::Waiting(format!("a ready helloworld-{version} pod")),
                t,
            );
            samples::wait_for_pod(
                client,
                &m.context,
                &selector,
                true,
                opts.wait,
                &opts.interrupt,
            )
            .await?;
        }
        event(
            progress,
            &m.context,
            "rollout",
            EventKind::Waiting("a running sleep pod".into()),
            t,
        );
        let sleep = samples::wait_for_pod(
            client,
            &m.context,
            "app=sleep",
            false,
            opts.wait,
            &opts.interrupt,
        )
        .await?;
        event(
            progress,
            &m.context,
            "rollout",
            EventKind::Found(format!(
                "sleep pod {}",
                sleep.metadata.name.as_deref().unwrap_or("")
            )),
            t,
        );
        sleeps.insert(m.context.clone(), sleep);
    }

    // What the clusters hold: every ready pod of the service, every network's gateway.
    let mut backends = Vec::new();
    for m in members {
        backends.extend(ready_backends(&clients[&m.context], m, service).await?);
    }
    let gateways: Vec<NetworkGateway> = mesh.clusters.iter().filter_map(gateway_of).collect();
    report.sample_millis = samples_started.elapsed().as_millis() as u64;

    // 3. and 4. Ask istiod what each cluster's sleep sidecar is told, and judge it: each
    // primary's istiod at the address given, else through a port-forward of ours.
    let mut routes = BTreeMap::new();
    let mut roots = BTreeMap::new();
    let mut forwards = Forwards(Vec::new());
    for primary in members.iter().filter(|m| m.in_mesh).map(|m| &m.istiod_of) {
        if routes.contains_key(primary) {
            continue;
        }
        let given = opts
            .istiod
            .iter()
            .find(|r| r.context.as_deref() == Some(primary.as_str()))
            .or_else(|| opts.istiod.iter().find(|r| r.context.is_none()));
        let address = match given {
            Some(route) => route.address.clone(),
            None => {
                let port = if opts.plaintext { 15010 } else { 15012 };
                let t = Instant::now();
                event(
                    progress,
                    primary,
                    "xds",
                    EventKind::Waiting(format!("a port-forward to istiod's port {port}")),
                    t,
                );
                let (address, task) =
                    forward_istiod(&clients[primary], primary, &opts.namespace, port).await?;
                forwards.0.push(task);
                address
            }
        };
        routes.insert(primary.clone(), address);
        if !opts.plaintext {
            roots.insert(
                primary.clone(),
                mesh_root(&clients[primary], primary, &opts.namespace).await?,
            );
        }
    }
    for m in members {
        if let Some(e) = interrupted() {
            return Err(e);
        }
        let t = Instant::now();
        if !m.in_mesh {
            report.endpoints.push(EndpointRow {
                client: m.id.clone(),
                target: "the mesh".into(),
                target_cluster: Some(m.id.clone()),
                target_network: m.network.clone(),
                expected: format!("a link in {} that reads {}", opts.primary, m.id),
                received: Vec::new(),
                state: CheckState::Fail,
                problem: Some(EndpointProblem::NotInMesh),
                hint: None,
            });
            continue;
        }
        event(
            progress,
            &m.context,
            "xds",
            EventKind::Waiting(format!("istiod's answer for {}'s sleep sidecar", m.id)),
            t,
        );
        let sleep = &sleeps[&m.context];
        let (server, proxy) = sidecar(
            opts,
            &clients[&m.context],
            &routes[&m.istiod_of],
            roots.get(&m.istiod_of),
            m,
            sleep,
        )
        .await?;
        let expected = Expected {
            client_cluster: m.id.clone(),
            client_network: proxy.network.clone(),
            backends: backends.clone(),
            gateways: gateways.clone(),
        };
        let cluster = mesh_xds::outbound_cluster(&service.host(), service.port);
        // istiod pushes what changed within seconds: a wrong answer is asked again until
        // it is right or `settle` has passed, and the last one is judged.
        let asked = Instant::now();
        let rows = loop {
            let exchange = Instant::now();
            let view = mesh_xds::fetch(&server, &proxy, &cluster, opts.wait)
                .await
                .map_err(|e| Error::Xds {
                    cluster: m.context.clone(),
                    sidecar: format!("{}'s sleep sidecar", m.id),
                    source: Box::new(e),
                })?;
            report.xds.push(XdsTiming {
                client: m.id.clone(),
                millis: exchange.elapsed().as_millis() as u64,
            });
            let received: Option<Vec<ReceivedEndpoint>> = view.endpoints.map(|eps| {
                eps.into_iter()
                    .map(|e| ReceivedEndpoint::new(&e.address, e.port, e.weight.max(1)))
                    .collect()
            });
            let rows = judge(&expected, received.as_deref());
            if rows.iter().all(|r| r.state == CheckState::Pass)
                || asked.elapsed() >= opts.settle
                || opts.interrupt.raised().is_some()
            {
                break rows;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        let failed = rows.iter().filter(|r| r.state == CheckState::Fail).count();
        let kind = if failed == 0 {
            EventKind::Found(format!("{} endpoint row(s) as expected", rows.len()))
        } else {
            EventKind::Warning(format!("{failed} of {} endpoint row(s) wrong", rows.len()))
        };
        event(progress, &m.context, "xds", kind, t);
        report.endpoints.extend(rows);
    }
    for row in &mut report.endpoints {
        if row.state == CheckState::Fail {
            row.hint = Some(hint(row, members, mesh, &opts.primary));
        }
    }

    // 5. Traffic.
    if opts.requests > 0 {
        let url = match &opts.service {
            None => format!(
                "http://{}.{}:{}/hello",
                service.name, service.namespace, service.port
            ),
            Some(s) => format!("http://{}.{}:{}/", s.name, s.namespace, s.port),
        };
        let script = request_loop(&url, opts.requests);
        for m in members.iter().filter(|m| m.in_mesh) {
            if let Some(e) = interrupted() {
                return Err(e);
            }
            let t = Instant::now();
            event(
                progress,
                &m.context,
                "traffic",
                EventKind::Waiting(format!("{} request(s) from sleep", opts.requests)),
                t,
            );
            let pods: Api<Pod> = Api::namespaced(clients[&m.context].clone(), SAMPLE_NAMESPACE);
            let pod = sleeps[&m.context].metadata.name.clone().unwrap_or_default();
            let deadline = Duration::from_secs(10 + 6 * u64::from(opts.requests));
            let row = match traffic::exec_requests(&pods, &pod, SLEEP_CONTAINER, &script, deadline)
                .await
            {
                Ok(out) => {
                    let expected: &[String] = if opts.service.is_none() {
                        &versions
                    } else {
                        &[]
                    };
                    TrafficRow {
                        client: m.id.clone(),
                        ..judge_traffic(count_answers(&out, opts.requests), expected)
                    }
                }
                Err(reason) => TrafficRow {
                    client: m.id.clone(),
                    state: TrafficState::NotTested,
                    requests: 0,
                    answered: 0,
                    versions: BTreeMap::new(),
                    message: Some(format!("traffic not tested: {reason}")),
                },
            };
            let kind = match row.state {
                TrafficState::Passed => {
                    EventKind::Found(format!("{}/{} answered", row.answered, row.requests))
                }
                _ => EventKind::Warning(row.message.clone().unwrap_or_default()),
            };
            event(progress, &m.context, "traffic", kind, t);
            report.traffic.push(row);
        }
    }
    Ok(())
}

/// The network an injected pod's sidecar claims (its `istio-proxy` container's
/// `ISTIO_META_NETWORK`), if it has one.
fn sidecar_network(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let proxy = spec.containers.iter().find(|c| c.name == "istio-proxy")?;
    proxy
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "ISTIO_META_NETWORK")
        .and_then(|e| e.value.clone())
        .filter(|v| !v.is_empty())
}

/// The ready pods of `service` in one cluster, from its EndpointSlices.
async fn ready_backends(client: &Client, m: &Member, service: &ServiceRef) -> Result<Vec<Backend>> {
    let ctx = &m.context;
    let ns = &service.namespace;
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let Some(svc) = services
        .get_opt(&service.name)
        .await
        .map_err(|e| kube(ctx, format!("reading Service {ns}/{}", service.name), e))?
    else {
        return Ok(Vec::new());
    };
    let port_name = svc
        .spec
        .and_then(|s| s.ports)
        .into_iter()
        .flatten()
        .find(|p| p.port == i32::from(service.port))
        .and_then(|p| p.name)
        .unwrap_or_default();
    let slices = crate::cluster::endpoint_slices(client, ns);
    let selector = format!("kubernetes.io/service-name={}", service.name);
    let list = slices
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| {
            kube(
                ctx,
                format!("listing EndpointSlices of Service {ns}/{}", service.name),
                e,
            )
        })?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    // Per pod: its version label, and whether it has a sidecar.
    let pod_labels: BTreeMap<String, (Option<String>, bool)> = pods
        .list(&ListParams::default())
        .await
        .map_err(|e| kube(ctx, format!("listing pods in {ns}"), e))?
        .items
        .into_iter()
        .filter_map(|p| {
            let labels = p.metadata.labels.unwrap_or_default();
            let sidecar = labels.get(TLS_MODE_LABEL).map(String::as_str) == Some("istio");
            Some((p.metadata.name?, (labels.get("version").cloned(), sidecar)))
        })
        .collect();
    let mut backends = Vec::new();
    for slice in &list.items {
        let Some(port) = slice.data["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"].as_str().unwrap_or("") == port_name)
            .and_then(|p| p["port"].as_u64())
        else {
            continue;
        };
        for endpoint in slice.data["endpoints"].as_array().into_iter().flatten() {
            if endpoint["conditions"]["ready"] == false {
                continue;
            }
            let (version, sidecar) = endpoint["targetRef"]["name"]
                .as_str()
                .and_then(|pod| pod_labels.get(pod).cloned())
                .unwrap_or((None, false));
            for address in endpoint["addresses"].as_array().into_iter().flatten() {
                if let Some(address) = address.as_str() {
                    backends.push(Backend {
                        version: version.clone(),
                        sidecar,
                        ..Backend::new(&m.id, m.network.as_deref(), address, port as u32)
                    });
                }
            }
        }
    }
    Ok(backends)
}

/// A cluster's east-west gateway as status found it now, on its network.
fn gateway_of(row: &ClusterRow) -> Option<NetworkGateway> {
    let network = row.network.as_deref()?;
    let (address, port) = row.gateway.as_deref()?.rsplit_once(':')?;
    Some(NetworkGateway::new(
        network,
        address.trim_start_matches('[').trim_end_matches(']'),
        port.parse().ok()?,
    ))
}

/// The one-line cause of a failed row: the cluster outside the mesh, else the first
/// failed status check of the clusters the row concerns, else what the problem means.
fn hint(row: &EndpointRow, members: &[Member], mesh: &MeshStatus, primary: &str) -> String {
    // The clusters concerned: the target's (by cluster or network), and the client's.
    let mut concerned: Vec<&str> = members
        .iter()
        .filter(|m| {
            row.target_cluster.as_deref() == Some(m.id.as_str())
                || (row.target_cluster.is_none()
                    && row.target_network.is_some()
                    && m.network == row.target_network)
        })
        .map(|m| m.id.as_str())
        .collect();
    if let Some(outside) = members
        .iter()
        .find(|m| !m.in_mesh && concerned.contains(&m.id.as_str()))
    {
        return format!(
            "{} is not part of the mesh: no remote secret in {primary} reads it (join it, and check that istiod reports it synced)",
            outside.id
        );
    }
    concerned.push(row.client.as_str());
    if mesh.model.networks == crate::cluster::Networks::Different
        && let Some(unlabelled) = members.iter().find(|m| {
            m.in_mesh && m.sidecar_network.is_none() && concerned.contains(&m.id.as_str())
        })
    {
        return format!(
            "{}: its Istio namespace has no network label ({}): its sidecars claim no network, so istiod cannot tell them which endpoints are across a gateway (join it again to restore the label)",
            unlabelled.id,
            crate::cluster::NETWORK_LABEL
        );
    }
    if let Some(first) = mesh.clusters.first() {
        concerned.push(first.cluster_id.as_str());
    }
    const CAUSES: [CheckKind; 9] = [
        CheckKind::Credentials,
        CheckKind::RemoteRead,
        CheckKind::Tls,
        CheckKind::Roots,
        CheckKind::Network,
        CheckKind::Gateway,
        CheckKind::MeshNetworks,
        CheckKind::Istiod,
        CheckKind::DuplicateLink,
    ];
    for kind in CAUSES {
        if let Some(check) = mesh.checks.iter().find(|c| {
            c.kind == kind && c.state == CheckState::Fail && concerned.contains(&c.cluster.as_str())
        }) {
            return format!("{}: {}: {}", check.cluster, kind.name(), check.message);
        }
    }
    match row.problem {
        Some(EndpointProblem::ServiceUnknown) => "istiod gives this sidecar no cluster for the service: does the Service exist in the clusters istiod reads, and does the sidecar's namespace see it (Sidecar resources, exportTo)?".into(),
        Some(EndpointProblem::PodMissing) => "istiod does not hold this ready pod: it has not synced the cluster yet, or does not read it".into(),
        Some(EndpointProblem::NoSidecar) => "its pods have no sidecar (label security.istio.io/tlsMode=istio): istiod sends them to no other network; enable injection in their namespace (istio-injection=enabled) and restart them".into(),
        Some(EndpointProblem::NoGateway) => "no east-west gateway with an address serves this network: its pods cannot be reached from other networks".into(),
        Some(EndpointProblem::GatewayMissing) => "istiod does not send this network's gateway: it does not read the cluster, or meshNetworks does not list the network with this gateway".into(),
        Some(EndpointProblem::GatewayWeight) => "the gateway's weight does not match the pods behind it: istiod's view of that network is stale".into(),
        Some(EndpointProblem::PodOfOtherNetwork) => "istiod puts the pod on the sidecar's network: the network label (topology.istio.io/network) of one of the clusters is missing or wrong".into(),
        Some(EndpointProblem::UnknownAddress) => "an address that is neither a ready pod nor a gateway: a stale gateway address in meshNetworks, or an endpoint istiod has not yet dropped".into(),
        Some(EndpointProblem::NotInMesh) | None => "not part of the mesh".into(),
    }
}

/// Port-forwards this verify opened; closed when dropped.
pub(crate) struct Forwards(pub(crate) Vec<tokio::task::JoinHandle<()>>);

impl Drop for Forwards {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// A local address forwarded, through the Kubernetes API, to `port` of a running istiod
/// pod in `ns` (label `app=istiod`), with the task that serves it: one port-forward per
/// connection accepted. The first is opened here, so that a cluster that cannot forward
/// (no kubelet reachable) fails now, naming the pod.
pub(crate) async fn forward_istiod(
    client: &Client,
    ctx: &str,
    ns: &str,
    port: u16,
) -> Result<(String, tokio::task::JoinHandle<()>)> {
    let pod = samples::running_pod(client, ctx, ns, "app=istiod", true)
        .await?
        .and_then(|p| p.metadata.name)
        .ok_or_else(|| Error::Kube {
            cluster: ctx.to_owned(),
            action: format!("finding a running istiod pod in {ns} to forward port {port} to"),
            reason: "none is running and ready (label app=istiod); if istiod runs elsewhere, give its address".into(),
            status: None,
            source: None,
        })?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let action = || format!("port-forwarding to pod {ns}/{pod} port {port}");
    let first = pods
        .portforward(&pod, &[port])
        .await
        .map_err(|e| kube(ctx, action(), e))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::Kube {
            cluster: ctx.to_owned(),
            action: action(),
            reason: format!("cannot listen on a local port: {e}"),
            status: None,
            source: None,
        })?;
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let task = tokio::spawn(async move {
        let mut first = Some(first);
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut forwarder = match first.take() {
                Some(f) => f,
                None => match pods.portforward(&pod, &[port]).await {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::warn!("port-forward to pod {pod} port {port}: {e}");
                        continue;
                    }
                },
            };
            tokio::spawn(async move {
                if let Some(mut upstream) = forwarder.take_stream(port) {
                    let _ = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await;
                }
                drop(forwarder);
            });
        }
    });
    Ok((address, task))
}

/// The trust root a sidecar of the mesh has: the primary's `istio-ca-root-cert`
/// ConfigMap (what istiod publishes), else its `cacerts`' `root-cert.pem`.
async fn mesh_root(client: &Client, ctx: &str, ns: &str) -> Result<String> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    if let Some(root) = maps
        .get_opt("istio-ca-root-cert")
        .await
        .map_err(|e| kube(ctx, format!("reading ConfigMap {ns}/istio-ca-root-cert"), e))?
        .and_then(|m| m.data?.get("root-cert.pem").cloned())
    {
        return Ok(root);
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    secrets
        .get_opt(CACERTS)
        .await
        .map_err(|e| kube(ctx, format!("reading Secret {ns}/{CACERTS}"), e))?
        .and_then(|s| s.data?.get("root-cert.pem").cloned())
        .and_then(|b| String::from_utf8(b.0).ok())
        .ok_or_else(|| Error::Kube {
            cluster: ctx.to_owned(),
            action: "finding the mesh root".into(),
            reason: format!("neither ConfigMap {ns}/istio-ca-root-cert nor Secret {ns}/{CACERTS} holds root-cert.pem; is istiod running?"),
            status: None,
            source: None,
        })
}

/// A short-lived token for `sleep`'s ServiceAccount with istiod's audience, as the
/// sidecar's own projected token is.
async fn sleep_token(client: &Client, ctx: &str, account: &str) -> Result<SecretString> {
    #[derive(serde::Deserialize)]
    struct Answer {
        status: Option<AnswerStatus>,
    }
    #[derive(serde::Deserialize)]
    struct AnswerStatus {
        token: Option<SecretString>,
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), SAMPLE_NAMESPACE);
    // As JSON: TokenRequest's Rust shape differs between Kubernetes versions.
    let request = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": { "audiences": ["istio-ca"], "expirationSeconds": 600 },
    });
    let action = || format!("requesting a token for ServiceAccount {SAMPLE_NAMESPACE}/{account}");
    let answer: Answer = accounts
        .create_subresource("token", account, &PostParams::default(), &request)
        .await
        .map_err(|e| kube(ctx, action(), e))?;
    answer
        .status
        .and_then(|s| s.token)
        .ok_or_else(|| Error::Kube {
            cluster: ctx.to_owned(),
            action: action(),
            reason: "the answer holds no token".into(),
            status: None,
            source: None,
        })
}

/// Where and as whom `m`'s sleep sidecar asks istiod: the server (its address; over TLS
/// the mesh `root` and a token for sleep's ServiceAccount from `m`'s cluster) and the
/// proxy identity istio-agent would send. Made once per cluster; every xDS exchange of
/// that cluster reuses it.
async fn sidecar(
    opts: &VerifyOptions,
    client: &Client,
    address: &str,
    root: Option<&String>,
    m: &Member,
    sleep: &Pod,
) -> Result<(mesh_xds::XdsServer, mesh_xds::ProxyIdentity)> {
    let account = sleep
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let transport = match root {
        Some(root) if !opts.plaintext => mesh_xds::Transport::Tls {
            root_pem: root.clone(),
            server_name: format!("istiod.{}.svc", opts.namespace),
            token: sleep_token(client, &m.context, &account).await?,
        },
        _ => mesh_xds::Transport::Plaintext,
    };
    let server = mesh_xds::XdsServer {
        address: address.to_owned(),
        transport,
    };
    let labels = sleep.metadata.labels.clone().unwrap_or_default();
    let proxy = mesh_xds::ProxyIdentity {
        ip: sleep
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_default(),
        pod: sleep.metadata.name.clone().unwrap_or_default(),
        namespace: SAMPLE_NAMESPACE.into(),
        service_account: account,
        cluster_id: m.id.clone(),
        network: sidecar_network(sleep).or_else(|| m.sidecar_network.clone()),
        workload_name: labels.get("app").cloned().unwrap_or_else(|| "sleep".into()),
        labels,
        mesh_id: None,
        istio_version: None,
    };
    Ok((server, proxy))
}
