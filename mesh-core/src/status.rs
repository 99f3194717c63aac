//! `status`: the mesh as the primary's istiod sees it — one row per cluster, read from
//! the primary's remote secrets — and a check of every link.
//!
//! For each data key of each `istio/multiCluster=true` Secret in the primary (a cluster
//! ID and its kubeconfig), status checks that:
//! - **credentials**: the kubeconfig reaches and authenticates to its cluster and may
//!   read what istiod reads, and may not write what a reader must not
//!   ([`mesh_kubeconfig::verify_remote_kubeconfig`]);
//! - **token expiry**: its token does not expire within the warning window;
//! - **roots**: the cluster's `cacerts` shares a root with the primary's;
//! - **network**: the cluster's Istio namespace declares a network, and `meshNetworks`
//!   lists the cluster ID in that network, with a gateway;
//! - **gateway**: its east-west gateway Service has an address, the one `meshNetworks` lists;
//! - **control plane** (remotes installed with Istio's remote profile): its `istiod`
//!   Service leads to the primary's east-west gateway, where its proxies reach istiod;
//! - **duplicate link**: no other link reaches the same cluster (the same API server, or
//!   the same `kube-system` UID), which istiod would read twice under two cluster IDs.
//!
//! The remote is read through the user's kubeconfig context for the same API server,
//! if there is one, else through the remote secret's own (reader) credentials.
//! Nothing is changed; no token reaches the result.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::{Api, Client};
use mesh_certs::RootSet;
use mesh_kubeconfig::Kubeconfigs;
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::address::GatewayAddress;
use crate::cluster::{
    self, CACERTS, ControlPlanes, MESH_CONFIG_MAP, Model, NETWORK_LABEL, Networks, Permissions,
    Role, default_cluster_id,
};
use crate::error::{Result, kube};
use crate::links;
use crate::networks::MeshNetworks;

/// How long before a link's token expires status warns, and join renews it (7 days).
pub const EXPIRY_WARNING: Duration = Duration::from_secs(7 * 24 * 3600);

/// What to look at.
#[derive(Debug, Clone)]
pub struct StatusOptions {
    /// The Istio namespace (default `istio-system`).
    pub namespace: String,
    /// The primary's context.
    pub primary: String,
    /// Only these cluster IDs (empty: every remote in the primary).
    pub clusters: Vec<String>,
    /// Warn when a token expires within this long.
    pub expiry_warning: Duration,
    /// Bound on each API request.
    pub request_timeout: Option<Duration>,
    /// Contact links whose stored kubeconfig has a plain `http://` server (else they
    /// fail without a request: their token would travel in clear text).
    pub allow_plain_http: bool,
}

impl StatusOptions {
    /// Status of `primary`'s mesh with a 7-day expiry warning.
    ///
    /// ```
    /// let o = mesh_core::StatusOptions::new("cluster1");
    /// assert_eq!(o.expiry_warning.as_secs(), 7 * 24 * 3600);
    /// ```
    pub fn new(primary: &str) -> StatusOptions {
        StatusOptions {
            namespace: "istio-system".into(),
            primary: primary.into(),
            clusters: Vec::new(),
            expiry_warning: EXPIRY_WARNING,
            request_timeout: None,
            allow_plain_http: false,
        }
    }
}

/// One cluster of the mesh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterRow {
    /// The cluster ID (the primary's [`default_cluster_id`]: istiod's `CLUSTER_ID`, else
    /// its context as a DNS-1123 label; the data key for a remote).
    pub cluster_id: String,
    /// Whether it runs the control plane.
    pub role: Role,
    /// The user's context for it, if the kubeconfig has one with the same API server.
    pub context: Option<String>,
    /// The remote Secret that links it (`namespace/name`), for remotes.
    pub secret: Option<String>,
    /// Its network (namespace label, else `meshNetworks`).
    pub network: Option<String>,
    /// Its east-west gateway's address (`ADDR:PORT`), if it has one.
    pub gateway: Option<String>,
    /// Its API server URL.
    pub server: Option<String>,
    /// When the link's token expires (RFC 3339), `never`, or `None` if unknown.
    pub token_expiry: Option<String>,
    /// What kind of token the link holds, if it is a ServiceAccount token.
    pub token_kind: Option<TokenKind>,
    /// How long the link's token has left, in seconds (0 once expired); `None` when it
    /// does not expire or is unknown.
    pub token_remaining_seconds: Option<u64>,
}

/// The kind of ServiceAccount token a link holds (from its claims).
///
/// ```
/// use mesh_core::TokenKind;
/// assert_eq!(serde_json::to_value(TokenKind::TokenSecret).unwrap(), "token-secret");
/// assert_eq!(TokenKind::Bound.to_string(), "bound");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenKind {
    /// A token Secret's (`kubernetes.io/service-account-token`): it lives as long as the
    /// Secret does, and never expires.
    TokenSecret,
    /// A bound token from TokenRequest: it expires, and is revoked with what it is bound to.
    Bound,
}

impl std::fmt::Display for TokenKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenKind::TokenSecret => "token-secret",
            TokenKind::Bound => "bound",
        })
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckState {
    /// It holds.
    Pass,
    /// It holds, but needs attention soon.
    Warn,
    /// It does not hold: the link does not work (or will not).
    Fail,
}

/// What status checks, each with a stable kebab-case id (JSON and YAML show the id;
/// the text table shows [`CheckKind::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum CheckKind {
    /// The primary runs istiod (its Deployment or its mesh config is there).
    Istiod,
    /// The primary's `istio` ConfigMap has a `meshNetworks` that parses.
    MeshNetworks,
    /// The primary has at least one remote secret (else the mesh has one cluster).
    Remotes,
    /// A link's stored kubeconfig is usable (inline credentials only, https), reaches
    /// its cluster, authenticates, and grants what istiod reads and no more; or the
    /// link is keyed with the primary's own ID.
    Credentials,
    /// A link's stored kubeconfig verifies the server's certificate.
    Tls,
    /// A link's token does not expire within the warning window.
    TokenExpiry,
    /// A remote's Istio namespace could be read (with the user's context or the link's).
    RemoteRead,
    /// The cluster's `cacerts` holds a readable root, shared with the primary's.
    Roots,
    /// The cluster declares a network and `meshNetworks` lists it there, with a gateway.
    Network,
    /// The cluster's east-west gateway Service has the address `meshNetworks` lists.
    Gateway,
    /// A remote-profile cluster's `istiod` Service leads to the primary's east-west gateway.
    ControlPlane,
    /// No other link (data key of a remote secret) reaches the same cluster — by its
    /// kubeconfig's server or by `kube-system`'s UID — else istiod reads it twice.
    DuplicateLink,
}

impl CheckKind {
    /// Every check, in the order status makes them for a cluster.
    pub const ALL: [CheckKind; 12] = [
        CheckKind::Istiod,
        CheckKind::MeshNetworks,
        CheckKind::Remotes,
        CheckKind::Credentials,
        CheckKind::Tls,
        CheckKind::TokenExpiry,
        CheckKind::RemoteRead,
        CheckKind::Roots,
        CheckKind::Network,
        CheckKind::Gateway,
        CheckKind::ControlPlane,
        CheckKind::DuplicateLink,
    ];

    /// The stable id, e.g. `token-expiry`.
    pub fn id(self) -> &'static str {
        match self {
            CheckKind::Istiod => "istiod",
            CheckKind::MeshNetworks => "mesh-networks",
            CheckKind::Remotes => "remotes",
            CheckKind::Credentials => "credentials",
            CheckKind::Tls => "tls",
            CheckKind::TokenExpiry => "token-expiry",
            CheckKind::RemoteRead => "remote-read",
            CheckKind::Roots => "roots",
            CheckKind::Network => "network",
            CheckKind::Gateway => "gateway",
            CheckKind::ControlPlane => "control-plane",
            CheckKind::DuplicateLink => "duplicate-link",
        }
    }

    /// The check in words, as a table shows it, e.g. `token expiry`.
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::MeshNetworks => "meshNetworks",
            CheckKind::TokenExpiry => "token expiry",
            CheckKind::RemoteRead => "read",
            CheckKind::ControlPlane => "control plane",
            CheckKind::DuplicateLink => "duplicate link",
            other => other.id(),
        }
    }
}

impl std::fmt::Display for CheckKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// One check of one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The cluster ID.
    pub cluster: String,
    /// Whether that cluster is the primary or a remote.
    pub role: Role,
    /// What was checked (serialized as its id, under `check`).
    #[serde(rename = "check")]
    pub kind: CheckKind,
    /// Its outcome.
    pub state: CheckState,
    /// What was found.
    pub message: String,
    /// What to do about it (failures and warnings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<Remedy>,
    /// For a check of a link held by another primary of a multi-primary mesh: that
    /// primary's cluster ID (`None`: the primary status was asked about).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_by: Option<String>,
}

/// What to do about a failed or warned [`Check`]: data, so that the library names no
/// command-line flag; a front end renders it as its own command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Remedy {
    /// Join a remote to the primary (again): that recreates its link.
    Rejoin(Rejoin),
    /// Check the CA bundle the clusters' `cacerts` came from.
    CheckCaBundle {
        /// Whether both clusters' bundles are to be checked against one another (a
        /// remote's check), rather than the primary's own.
        both_clusters: bool,
    },
    /// Find why the east-west gateway Service has no address (the cloud's load
    /// balancer), then join again, or join giving the gateway's address.
    GatewayAddress,
    /// Words, or a command that is not this project's (`kubectl`, `helm`).
    Text(String),
}

/// A join of a remote to a primary, as a [`Remedy`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Rejoin {
    /// Words said before the join, e.g. `renew it before then`.
    pub lead: Option<String>,
    /// The remote's context, if the user's kubeconfig has one (else any remote).
    pub remote: Option<String>,
    /// The primary's context.
    pub primary: String,
    /// The cluster name to join it under (the link's key).
    pub cluster_name: Option<String>,
    /// Which CA bundle the join brings.
    pub certs: RejoinCerts,
    /// Join installing Istio too, which re-points a remote-profile cluster's istiod
    /// Service (`remotePilotAddress`) at the primary's east-west gateway.
    pub install: bool,
    /// What else does it, said after the join (e.g. a `helm upgrade`).
    pub or_else: Option<String>,
}

impl Rejoin {
    /// A join of any remote to `primary`, without certificates or install.
    ///
    /// ```
    /// let r = mesh_core::Rejoin::new("cluster1");
    /// assert!(r.remote.is_none() && r.cluster_name.is_none());
    /// ```
    pub fn new(primary: &str) -> Rejoin {
        Rejoin {
            lead: None,
            remote: None,
            primary: primary.to_owned(),
            cluster_name: None,
            certs: RejoinCerts::Keep,
            install: false,
            or_else: None,
        }
    }
}

/// Which CA bundle a [`Rejoin`] brings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RejoinCerts {
    /// None: the clusters' `cacerts` stay as they are.
    Keep,
    /// A CA bundle directory (one sub-directory per cluster).
    Bundle,
    /// A CA bundle directory that is yet to be generated (the primary has no `cacerts`).
    Generate,
}

/// The mesh and its checks.
#[derive(Debug, Clone, Serialize)]
pub struct MeshStatus {
    /// The mesh's model: multi-primary when the primary's Istio namespace records it
    /// ([`MODEL_ANNOTATION`](crate::cluster::MODEL_ANNOTATION)), on one network when
    /// the primary has links but neither a network label on its Istio namespace nor
    /// networks in `meshNetworks`.
    pub model: Model,
    /// The primary's context.
    pub primary_context: String,
    /// The primary first, then each remote.
    pub clusters: Vec<ClusterRow>,
    /// Every check, cluster by cluster.
    pub checks: Vec<Check>,
}

impl MeshStatus {
    /// Whether a check failed.
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.state == CheckState::Fail)
    }
}

/// What status reads of a cluster's Istio namespace.
struct Seen {
    network: Option<String>,
    roots: Option<RootSet>,
    has_cacerts: bool,
    gateway: Option<cluster::GatewayService>,
    address: Option<GatewayAddress>,
    /// The UID of `kube-system` (what tells clusters apart), if it could be read.
    kube_system_uid: Option<String>,
}

impl Seen {
    /// What the Istio `namespace`, `cacerts` and the east-west `gateway` (with its
    /// `address` now) say.
    fn new(
        namespace: Option<&Namespace>,
        cacerts: Option<&Secret>,
        gateway: Option<cluster::GatewayService>,
        address: Option<GatewayAddress>,
    ) -> Seen {
        let network = namespace
            .and_then(|n| n.metadata.labels.as_ref()?.get(NETWORK_LABEL).cloned())
            .or_else(|| gateway.as_ref()?.network_label.clone());
        Seen {
            network,
            has_cacerts: cacerts.is_some(),
            roots: cacerts
                .and_then(|s| s.data.as_ref()?.get("root-cert.pem"))
                .and_then(|pem| RootSet::from_pem(&pem.0).ok()),
            gateway,
            address,
            kube_system_uid: None,
        }
    }
}

/// Where `gateway` can be reached now, if there is one.
async fn address_now(
    client: &Client,
    ctx: &str,
    ns: &str,
    gateway: Option<&cluster::GatewayService>,
) -> Result<Option<GatewayAddress>> {
    match gateway {
        Some(gw) => match links::gateway_address_now(client, ctx, ns, gw).await? {
            links::GatewayReach::Address(a) => Ok(Some(a)),
            _ => Ok(None),
        },
        None => Ok(None),
    }
}

/// Reads what status needs of a remote's Istio namespace, and `kube-system`'s UID (one
/// cluster linked twice under two servers has one UID; a user who may not read
/// `kube-system` leaves it unknown).
async fn see(client: &Client, ctx: &str, ns: &str) -> Result<Seen> {
    let kube_system_uid = match cluster::kube_system_uid(client, ctx).await {
        Ok(uid) => uid,
        Err(e) if e.is_forbidden() => None,
        Err(e) => return Err(e),
    };
    let namespaces = Api::<Namespace>::all(client.clone());
    let namespace = namespaces
        .get_opt(ns)
        .await
        .map_err(|e| kube(ctx, format!("reading namespace {ns}"), e))?;
    let cacerts = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(CACERTS)
        .await
        .map_err(|e| kube(ctx, format!("reading Secret {ns}/{CACERTS}"), e))?;
    // The gateway join uses: one a hand-made cross-network Gateway serves, else the east-west one.
    let found = cluster::find_gateway(client, ctx, ns).await?;
    let version = cluster::gateway_crd_version(client, ctx).await?;
    let gateway =
        crate::join::adopt::gateway_in_use(client, ctx, ns, version.as_deref(), found).await?;
    let address = address_now(client, ctx, ns, gateway.as_ref()).await?;
    Ok(Seen {
        kube_system_uid,
        ..Seen::new(namespace.as_ref(), cacerts.as_ref(), gateway, address)
    })
}

/// The checks of one cluster, as they are made.
struct Checks<'a> {
    cluster: &'a str,
    role: Role,
    out: Vec<Check>,
}

impl<'a> Checks<'a> {
    fn new(cluster: &'a str, role: Role) -> Checks<'a> {
        Checks {
            cluster,
            role,
            out: Vec::new(),
        }
    }
    fn add(&mut self, kind: CheckKind, state: CheckState, message: String, remedy: Option<Remedy>) {
        self.out.push(Check {
            read_by: None,
            cluster: self.cluster.to_owned(),
            role: self.role,
            kind,
            state,
            message,
            remedy,
        });
    }
    fn pass(&mut self, kind: CheckKind, message: String) {
        self.add(kind, CheckState::Pass, message, None);
    }
    fn fail(&mut self, kind: CheckKind, message: String, remedy: Remedy) {
        self.add(kind, CheckState::Fail, message, Some(remedy));
    }
}

/// Reads the mesh from the primary's remote secrets and checks every link. Fails only
/// when the primary cannot be read; every other problem is a failed [`Check`].
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use mesh_core::{StatusOptions, status};
/// use mesh_kubeconfig::{KubeconfigSource, Kubeconfigs};
///
/// let kubeconfigs = Kubeconfigs::load(&KubeconfigSource::Default)?;
/// let mesh = status(&kubeconfigs, &StatusOptions::new("cluster1")).await?;
/// for c in mesh.checks.iter().filter(|c| c.state == mesh_core::CheckState::Fail) {
///     eprintln!("✗ {} {}: {}", c.cluster, c.kind.name(), c.message);
///     if c.kind == mesh_core::CheckKind::Roots {
///         eprintln!("  (the clusters' cacerts do not share a root)");
///     }
/// }
/// # Ok(()) }
/// ```
pub async fn status(kubeconfigs: &Kubeconfigs, opts: &StatusOptions) -> Result<MeshStatus> {
    let mut mesh = status_of(kubeconfigs, opts).await?;
    if mesh.model.control_planes != ControlPlanes::MultiPrimary {
        return Ok(mesh);
    }
    // Multi-primary: every member is a primary, and each one's links are checked too —
    // with the user's context for it (found by its API server).
    for row in &mut mesh.clusters {
        row.role = Role::Primary;
    }
    let members: Vec<(String, String)> = mesh
        .clusters
        .iter()
        .skip(1)
        .filter_map(|r| Some((r.cluster_id.clone(), r.context.clone()?)))
        .collect();
    let of_members = members.iter().map(|(id, ctx)| async move {
        let opts = StatusOptions {
            primary: ctx.clone(),
            clusters: Vec::new(),
            ..opts.clone()
        };
        (id, ctx, status_of(kubeconfigs, &opts).await)
    });
    for (id, ctx, result) in futures::future::join_all(of_members).await {
        match result {
            Ok(member) => {
                // Its links' checks; its own roots, network and gateway are checked above.
                let link_kinds = [
                    CheckKind::Remotes,
                    CheckKind::Credentials,
                    CheckKind::Tls,
                    CheckKind::TokenExpiry,
                    CheckKind::DuplicateLink,
                    CheckKind::Istiod,
                ];
                mesh.checks.extend(
                    member
                        .checks
                        .into_iter()
                        .filter(|c| link_kinds.contains(&c.kind))
                        .map(|c| Check {
                            read_by: Some(id.clone()),
                            role: Role::Primary,
                            ..c
                        }),
                );
            }
            Err(e) => mesh.checks.push(Check {
                cluster: id.clone(),
                role: Role::Primary,
                kind: CheckKind::RemoteRead,
                state: CheckState::Fail,
                message: format!("the links {ctx} holds could not be read: {e}"),
                remedy: None,
                read_by: Some(id.clone()),
            }),
        }
    }
    Ok(mesh)
}

/// The status of one primary's links: [`status`] without a multi-primary mesh's other members.
async fn status_of(kubeconfigs: &Kubeconfigs, opts: &StatusOptions) -> Result<MeshStatus> {
    let ns = opts.namespace.as_str();
    let pctx = opts.primary.as_str();
    let primary = kubeconfigs.client(pctx, opts.request_timeout).await?;
    // The primary, read once: what its checks and every link's compare with.
    let facts = cluster::read_facts(&primary, pctx, ns, Permissions::ReadOnly).await?;
    facts.require_readable()?;
    let primary_id = default_cluster_id(Role::Primary, pctx, facts.istiod_cluster_id.as_deref());
    // The gateway join uses: one a hand-made cross-network Gateway serves, else the east-west one.
    let primary_gateway = crate::join::adopt::gateway_in_use(
        &primary,
        pctx,
        ns,
        facts.gateway_crd_version.as_deref(),
        facts.gateway.clone(),
    )
    .await?;
    let address = address_now(&primary, pctx, ns, primary_gateway.as_ref()).await?;
    let seen = Seen {
        kube_system_uid: facts.kube_system_uid.clone(),
        ..Seen::new(
            facts.istio_namespace.as_ref(),
            facts.cacerts.as_ref(),
            primary_gateway,
            address,
        )
    };
    let networks = facts
        .mesh_config
        .as_ref()
        .map(MeshNetworks::from_config_map);
    let secrets = links::remote_secrets(&primary, pctx, ns).await?;
    let all_links: Vec<links::Link> = links::links(&secrets)
        .into_iter()
        .filter(|l| opts.clusters.is_empty() || opts.clusters.contains(&l.key))
        .collect();

    // The model: multi-primary as recorded; one network when links exist but nothing
    // names a network.
    let multi_primary = cluster::recorded_model(facts.istio_namespace.as_ref())
        == Some(ControlPlanes::MultiPrimary);
    let labelled = facts
        .istio_namespace
        .as_ref()
        .and_then(|n| n.metadata.labels.as_ref()?.get(NETWORK_LABEL))
        .is_some();
    let one_network = !all_links.is_empty()
        && !labelled
        && networks
            .as_ref()
            .is_some_and(|n| n.as_ref().is_ok_and(|n| n.names().is_empty()));
    let model = Model {
        control_planes: if multi_primary {
            ControlPlanes::MultiPrimary
        } else {
            ControlPlanes::PrimaryRemote
        },
        networks: if one_network {
            Networks::One
        } else {
            Networks::Different
        },
    };

    // The user's contexts, by server, to read remotes with the user's own rights.
    let contexts = links::contexts_by_server(kubeconfigs);
    // The primary.
    let mut checks = Checks::new(&primary_id, Role::Primary);
    let primary_server = kubeconfigs.resolve(pctx).ok().map(|r| r.server);
    let mesh_networks = match &networks {
        Some(Ok(n)) => Some(n.clone()),
        Some(Err(reason)) => {
            checks.fail(
                CheckKind::MeshNetworks,
                format!(
                    "ConfigMap {ns}/{MESH_CONFIG_MAP} key meshNetworks does not parse: {reason}"
                ),
                Remedy::Text(format!(
                    "kubectl edit configmap {MESH_CONFIG_MAP} -n {ns} --context {pctx}"
                )),
            );
            None
        }
        None => Some(MeshNetworks::parse("").expect("empty parses")),
    };
    if facts.istiod_cluster_id.is_none() && !facts.has_mesh_config {
        checks.fail(
            CheckKind::Istiod,
            format!("no istiod in {ns} of {pctx}"),
            Remedy::Text("install istiod in the primary (helm install istiod)".into()),
        );
    }
    if all_links.is_empty() {
        checks.add(
            CheckKind::Remotes,
            CheckState::Warn,
            format!(
                "no remote secret (label istio/multiCluster=true) in {ns}: the mesh has one cluster"
            ),
            Some(Remedy::Rejoin(Rejoin {
                certs: RejoinCerts::Bundle,
                ..Rejoin::new(pctx)
            })),
        );
    }
    // Roots and networks only matter between clusters.
    if !all_links.is_empty() {
        if !seen.has_cacerts {
            checks.fail(
                CheckKind::Roots,
                format!("no Secret {ns}/{CACERTS}: istiod signs with a self-signed root no other cluster trusts"),
                Remedy::Rejoin(Rejoin {
                    certs: RejoinCerts::Generate,
                    ..Rejoin::new(pctx)
                }),
            );
        } else if seen.roots.is_none() {
            checks.fail(
                CheckKind::Roots,
                format!("Secret {ns}/{CACERTS} has no readable root-cert.pem"),
                Remedy::CheckCaBundle {
                    both_clusters: false,
                },
            );
        } else {
            checks.pass(
                CheckKind::Roots,
                format!("Secret {ns}/{CACERTS} holds a root"),
            );
        }
        check_network(
            &mut checks,
            &seen,
            ns,
            &primary_id,
            mesh_networks.as_ref(),
            model.networks,
            &Remedy::Rejoin(Rejoin::new(pctx)),
        );
    }
    let mut rows = vec![ClusterRow {
        cluster_id: primary_id.clone(),
        role: Role::Primary,
        context: Some(pctx.to_owned()),
        secret: None,
        network: seen.network.clone(),
        gateway: seen.address.as_ref().map(GatewayAddress::to_string),
        server: primary_server,
        token_expiry: None,
        token_kind: None,
        token_remaining_seconds: None,
    }];
    let mut all_checks = checks.out;

    // Each remote, concurrently.
    let cx = Cx {
        opts,
        kubeconfigs,
        primary_id: &primary_id,
        seen_primary: &seen,
        mesh_networks: mesh_networks.as_ref(),
        networks: model.networks,
        contexts: &contexts,
        now: Timestamp::now(),
    };
    let per_link = all_links.iter().map(|link| check_link(&cx, link));
    let results = futures::future::join_all(per_link).await;
    // Then, between links: two that reach one cluster (by the server each names, by the
    // kube-system UID read just now — no second read).
    let linked: Vec<Linked<'_>> = all_links
        .iter()
        .zip(&results)
        .map(|(link, (row, _, uid))| {
            let secret = secrets
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(link.secret.as_str()));
            Linked {
                secret: &link.secret,
                key: &link.key,
                ours: secret.is_some_and(|s| links::managed_by_us(&s.metadata)),
                keys_in_secret: secret.and_then(|s| s.data.as_ref()).map_or(1, |d| d.len()),
                context: row.context.clone(),
                reach: links::Reach {
                    server: row.server.clone(),
                    kube_system_uid: uid.clone(),
                },
            }
        })
        .collect();
    let duplicates = duplicate_links(ns, pctx, &linked);
    for ((row, checks, _), duplicate) in results.into_iter().zip(duplicates) {
        rows.push(row);
        all_checks.extend(checks);
        all_checks.extend(duplicate);
    }
    Ok(MeshStatus {
        model,
        primary_context: pctx.to_owned(),
        clusters: rows,
        checks: all_checks,
    })
}

/// What every link's checks need from the primary and the user's kubeconfig.
struct Cx<'a> {
    opts: &'a StatusOptions,
    kubeconfigs: &'a Kubeconfigs,
    primary_id: &'a str,
    seen_primary: &'a Seen,
    mesh_networks: Option<&'a MeshNetworks>,
    networks: Networks,
    contexts: &'a [(String, String)],
    now: Timestamp,
}

impl Cx<'_> {
    /// The user's context for `server`, if any.
    fn context_for(&self, server: &str) -> Option<String> {
        self.contexts
            .iter()
            .find(|(_, s)| links::same_server(s, server))
            .map(|(c, _)| c.clone())
    }

    /// The join that recreates the link of cluster `id`.
    fn join_hint(&self, ctx: Option<&str>, id: &str) -> Rejoin {
        Rejoin {
            remote: ctx.map(str::to_owned),
            cluster_name: Some(id.to_owned()),
            ..Rejoin::new(&self.opts.primary)
        }
    }
}

/// The row and checks of one link, and the `kube-system` UID of its cluster if read.
async fn check_link(cx: &Cx<'_>, link: &links::Link) -> (ClusterRow, Vec<Check>, Option<String>) {
    let ns = cx.opts.namespace.as_str();
    let pctx = cx.opts.primary.as_str();
    let opts = cx.opts;
    let kubeconfigs = cx.kubeconfigs;
    let seen_primary = cx.seen_primary;
    let mesh_networks = cx.mesh_networks;
    let primary_id = cx.primary_id;
    let now = cx.now;
    let context_for = |s: &str| cx.context_for(s);
    let join_hint = |c: Option<&str>, id: &str| cx.join_hint(c, id);

    let id = link.key.as_str();
    let mut checks = Checks::new(id, Role::Remote);
    let mut row = ClusterRow {
        cluster_id: id.to_owned(),
        role: Role::Remote,
        context: None,
        secret: Some(format!("{ns}/{}", link.secret)),
        network: None,
        gateway: None,
        server: None,
        token_expiry: None,
        token_kind: None,
        token_remaining_seconds: None,
    };
    if id == primary_id {
        checks.add(
            CheckKind::Credentials,
            CheckState::Warn,
            format!("remote Secret {ns}/{} is keyed with the primary's own cluster ID; istiod ignores it", link.secret),
            Some(Remedy::Text(format!("kubectl delete secret {} -n {ns} --context {pctx}", link.secret))),
        );
        return (row, checks.out, None);
    }
    // The stored kubeconfig is untrusted input: from_yaml refuses anything but inline
    // credentials (no exec plugin, no local file) before any client exists.
    let kc = match Kubeconfigs::from_yaml(link.kubeconfig.expose_secret()) {
        Ok(kc) => kc,
        Err(e) => {
            let what = if matches!(e, mesh_kubeconfig::Error::UntrustedKubeconfig { .. }) {
                "was not used"
            } else {
                "is not a kubeconfig"
            };
            checks.fail(
                CheckKind::Credentials,
                format!("remote Secret {ns}/{} key {id} {what}: {e}", link.secret),
                led(
                    "replace it with one that holds inline credentials only",
                    join_hint(None, id),
                ),
            );
            return (row, checks.out, None);
        }
    };
    let resolved = kc.context_or_current(None).and_then(|c| kc.resolve(&c));
    let server = resolved.as_ref().ok().map(|r| r.server.clone());
    row.server = server.clone();
    let context = server.as_deref().and_then(context_for);
    row.context = context.clone();
    let hint = join_hint(context.as_deref(), id);
    if let Some(s) = &server
        && let Err(e) = mesh_kubeconfig::require_https(s, opts.allow_plain_http)
    {
        checks.fail(
            CheckKind::Credentials,
            format!(
                "remote Secret {ns}/{} key {id} was not used: {e}",
                link.secret
            ),
            led("recreate it with the https:// URL", hint),
        );
        return (row, checks.out, None);
    }
    if resolved.as_ref().is_ok_and(|r| r.insecure_skip_tls_verify) {
        checks.add(
            CheckKind::Tls,
            CheckState::Warn,
            format!(
                "remote Secret {ns}/{} key {id} skips TLS verification (insecure-skip-tls-verify: true): istiod sends its token to whoever answers at {}",
                link.secret,
                server.as_deref().unwrap_or("its server")
            ),
            Some(led("recreate it with the server's CA", hint.clone())),
        );
    }

    // Credentials and expiry.
    let token = links::kubeconfig_token(&link.kubeconfig);
    let expiry = token.as_ref().and_then(mesh_kubeconfig::jwt_expiry);
    match mesh_kubeconfig::verify_remote_kubeconfig(&link.kubeconfig, None, opts.request_timeout)
        .await
    {
        Ok(v) if v.is_ok() => checks.pass(
            CheckKind::Credentials,
            format!(
                "authenticates as {}, may read what istiod reads, and may not change Services, EndpointSlices, pods, namespaces or Secrets",
                v.user
            ),
        ),
        Ok(v) => checks.fail(
            CheckKind::Credentials,
            format!(
                "authenticates as {}, but {}",
                v.user,
                v.problems().join("; ")
            ),
            Remedy::Rejoin(hint.clone()),
        ),
        Err(e) => checks.fail(
            CheckKind::Credentials,
            format!("{e}"),
            led(
                "the token or server no longer works; recreate it",
                hint.clone(),
            ),
        ),
    }
    row.token_expiry = Some(match expiry {
        None => "never".into(),
        Some(t) => t.to_string(),
    });
    row.token_kind = token.as_ref().and_then(links::token_kind);
    row.token_remaining_seconds =
        expiry.map(|t| u64::try_from(t.as_second() - now.as_second()).unwrap_or(0));
    match expiry {
        None => checks.pass(CheckKind::TokenExpiry, "the token does not expire".into()),
        Some(t) if t <= now => checks.fail(
            CheckKind::TokenExpiry,
            format!("the token expired at {t}"),
            Remedy::Rejoin(hint.clone()),
        ),
        Some(t) if (t.as_second() - now.as_second()) as u64 <= opts.expiry_warning.as_secs() => {
            checks.add(
                CheckKind::TokenExpiry,
                CheckState::Warn,
                format!("the token expires at {t}"),
                Some(led("renew it before then", hint.clone())),
            )
        }
        Some(t) => checks.pass(CheckKind::TokenExpiry, format!("the token expires at {t}")),
    }

    // Read the remote: with the user's context, else with the link's credentials.
    let client = match &context {
        Some(c) => kubeconfigs.client(c, opts.request_timeout).await,
        None => match kc.context_or_current(None) {
            Ok(c) => kc.client(&c, opts.request_timeout).await,
            Err(e) => Err(e),
        },
    };
    let label = context.clone().unwrap_or_else(|| id.to_owned());
    // Its istiod Service too: on a remote-profile cluster it says where proxies reach istiod.
    let read = match client {
        Ok(client) => match see(&client, &label, ns).await {
            Ok(seen) => cluster::istiod_service(&client, &label, ns)
                .await
                .map(|istiod| (seen, istiod)),
            Err(e) => Err(e),
        },
        Err(e) => Err(e.into()),
    };
    let (remote_seen, remote_istiod) = match read {
        Ok(s) => s,
        Err(e) => {
            checks.fail(
                CheckKind::RemoteRead,
                format!("cannot read its Istio namespace: {e}"),
                match &context {
                    Some(c) => Remedy::Text(format!(
                        "check that context {c} reaches it (kubectl get ns {ns} --context {c})"
                    )),
                    None => led(
                        &format!(
                            "add a kubeconfig context for {} or fix the link",
                            server.clone().unwrap_or_default()
                        ),
                        hint.clone(),
                    ),
                },
            );
            return (row, checks.out, None);
        }
    };
    row.network = remote_seen
        .network
        .clone()
        .or_else(|| mesh_networks?.network_of(id));
    row.gateway = remote_seen.address.as_ref().map(GatewayAddress::to_string);

    // Roots.
    let roots_hint = || Remedy::CheckCaBundle {
        both_clusters: true,
    };
    let no_cacerts = format!(
        "no Secret {ns}/{CACERTS}: its workloads' certificates chain to a root \
         the primary does not trust"
    );
    match (&seen_primary.roots, &remote_seen.roots) {
        (_, None) if !remote_seen.has_cacerts => {
            let with_certs = Rejoin {
                certs: RejoinCerts::Bundle,
                ..hint.clone()
            };
            checks.fail(CheckKind::Roots, no_cacerts, Remedy::Rejoin(with_certs));
        }
        (_, None) => {
            let msg = format!("Secret {ns}/{CACERTS} has no readable root-cert.pem");
            checks.fail(CheckKind::Roots, msg, roots_hint());
        }
        (None, Some(_)) => {
            let msg = "the primary has no readable root to compare with".into();
            checks.fail(CheckKind::Roots, msg, roots_hint());
        }
        (Some(p), Some(r)) => {
            let sets = [("the primary", p.clone()), (id, r.clone())];
            let agreement = mesh_certs::common_root_of_sets(&sets);
            if agreement.is_agreed() {
                let fp: String = agreement
                    .common
                    .first()
                    .map(|f| f.chars().take(16).collect())
                    .unwrap_or_default();
                let msg = format!("its cacerts shares the primary's root (SHA-256 {fp}…)");
                checks.pass(CheckKind::Roots, msg);
            } else {
                let msg = "its cacerts root differs from the primary's: cross-cluster mTLS fails";
                checks.fail(CheckKind::Roots, msg.into(), roots_hint());
            }
        }
    }
    check_network(
        &mut checks,
        &remote_seen,
        ns,
        id,
        mesh_networks,
        cx.networks,
        &Remedy::Rejoin(hint.clone()),
    );

    // Control plane: a remote-profile cluster's proxies reach istiod through the
    // primary's east-west gateway. (No primary address: the primary's gateway check says so.)
    if let (cluster::IstiodService::Remote(targets), Some(primary_gateway)) =
        (&remote_istiod, &seen_primary.address)
    {
        let addr = primary_gateway.host();
        if targets.iter().any(|t| t == addr) {
            checks.pass(
                CheckKind::ControlPlane,
                format!("its istiod Service leads to the primary's east-west gateway {addr}"),
            );
        } else {
            checks.fail(
                CheckKind::ControlPlane,
                format!(
                    "its istiod Service leads to {} but the primary's east-west gateway is {addr}: its proxies cannot reach istiod",
                    if targets.is_empty() { "nowhere".to_owned() } else { targets.join(", ") }
                ),
                Remedy::Rejoin(Rejoin {
                    install: true,
                    or_else: Some(format!(
                        "helm upgrade istiod ISTIOD_CHART -n {ns} --kube-context {} --reuse-values --set global.remotePilotAddress={addr}",
                        context.as_deref().unwrap_or("REMOTE")
                    )),
                    ..hint
                }),
            );
        }
    }
    (row, checks.out, remote_seen.kube_system_uid)
}

/// One link as the `duplicate-link` check sees it.
struct Linked<'a> {
    /// The remote Secret's name.
    secret: &'a str,
    /// The data key (the cluster ID).
    key: &'a str,
    /// Whether kubectl-mesh made the Secret.
    ours: bool,
    /// How many data keys (links) the Secret holds.
    keys_in_secret: usize,
    /// The user's context for the link's server, if any.
    context: Option<String>,
    /// Which cluster it reaches.
    reach: links::Reach,
}

/// The `duplicate-link` check of each link (in order; none for a link whose cluster is
/// unknown: its kubeconfig was refused, and its credentials check says so). Links that
/// reach one cluster ([`links::same_cluster`]) fail, each naming all of them: istiod
/// would read that cluster once per cluster ID (duplicate endpoints). The remedy keeps
/// one: kubectl-mesh's, if exactly one is, else any.
fn duplicate_links(ns: &str, pctx: &str, links: &[Linked<'_>]) -> Vec<Option<Check>> {
    let reaches: Vec<links::Reach> = links.iter().map(|l| l.reach.clone()).collect();
    let groups = links::same_cluster(&reaches);
    let check = |l: &Linked<'_>, state, message, remedy| Check {
        read_by: None,
        cluster: l.key.to_owned(),
        role: Role::Remote,
        kind: CheckKind::DuplicateLink,
        state,
        message,
        remedy,
    };
    let mut out: Vec<Option<Check>> = links
        .iter()
        .map(|l| {
            let links::Reach {
                server: Some(server),
                kube_system_uid,
            } = &l.reach
            else {
                return None;
            };
            let message = match kube_system_uid {
                Some(uid) => format!(
                    "no other link reaches its cluster (server {server}, kube-system UID {uid})"
                ),
                None => format!("no other link names its server {server}"),
            };
            Some(check(l, CheckState::Pass, message, None))
        })
        .collect();
    let name = |l: &Linked<'_>| format!("{ns}/{} (cluster ID {})", l.secret, l.key);
    let remove = |l: &Linked<'_>| {
        if l.keys_in_secret <= 1 {
            format!(
                "kubectl delete secret {} -n {ns} --context {pctx}",
                l.secret
            )
        } else {
            // The Secret links other clusters too: only this key goes.
            format!(
                "kubectl patch secret {} -n {ns} --context {pctx} --type=json -p '[{{\"op\":\"remove\",\"path\":\"/data/{}\"}}]'",
                l.secret, l.key
            )
        }
    };
    for group in groups {
        let members: Vec<&Linked<'_>> = group.iter().map(|&i| &links[i]).collect();
        let names: Vec<String> = members.iter().map(|l| name(l)).collect();
        let names = match names.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => continue,
        };
        // The cluster: each server named (once), its context, its kube-system UID.
        let mut servers: Vec<&str> = Vec::new();
        for l in &members {
            if let Some(s) = l.reach.server.as_deref()
                && !servers.iter().any(|k| links::same_server(k, s))
            {
                servers.push(s);
            }
        }
        let mut about = Vec::new();
        if let Some(c) = members.iter().find_map(|l| l.context.as_deref()) {
            about.push(format!("context {c}"));
        }
        if let Some(uid) = members
            .iter()
            .find_map(|l| l.reach.kube_system_uid.as_deref())
        {
            about.push(format!("kube-system UID {uid}"));
        }
        let cluster = format!(
            "{}{}",
            servers.join(" and "),
            if about.is_empty() {
                String::new()
            } else {
                format!(" ({})", about.join(", "))
            }
        );
        let message = format!(
            "remote Secrets {names} reach one cluster, {cluster}: istiod reads it once per cluster ID (duplicate endpoints)"
        );
        // Keep one: kubectl-mesh's if exactly one is; remove what it did not make first.
        let (ours, theirs): (Vec<&Linked<'_>>, Vec<&Linked<'_>>) =
            members.iter().partition(|l| l.ours);
        let cmds = |ls: &[&Linked<'_>]| ls.iter().map(|l| remove(l)).collect::<Vec<_>>();
        let keep_one = |ls: &[&Linked<'_>]| match cmds(ls).as_slice() {
            [a, b] => format!("keep one and remove the other: {a}, or {b}"),
            all => format!(
                "keep one and remove the others, each by: {}",
                all.join("; ")
            ),
        };
        let remedy = match (ours.as_slice(), theirs.as_slice()) {
            ([kept], others) => format!(
                "keep {}, which kubectl-mesh made, and remove {}: {}",
                name(kept),
                if others.len() == 1 {
                    "the other"
                } else {
                    "the others"
                },
                cmds(others).join("; ")
            ),
            ([], all) | (all, []) => keep_one(all),
            (ours, theirs) => format!(
                "remove what kubectl-mesh did not make: {}; then {}",
                cmds(theirs).join("; "),
                keep_one(ours)
            ),
        };
        for &i in &group {
            out[i] = Some(check(
                &links[i],
                CheckState::Fail,
                message.clone(),
                Some(Remedy::Text(remedy.clone())),
            ));
        }
    }
    out
}

/// `join` with `lead` said before it.
fn led(lead: &str, join: Rejoin) -> Remedy {
    Remedy::Rejoin(Rejoin {
        lead: Some(lead.to_owned()),
        ..join
    })
}

/// The `network` and `gateway` checks of one cluster against `meshNetworks`.
fn check_network(
    checks: &mut Checks<'_>,
    seen: &Seen,
    ns: &str,
    id: &str,
    networks: Option<&MeshNetworks>,
    model: Networks,
    hint: &Remedy,
) {
    if model == Networks::One {
        let network = seen
            .network
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        checks.pass(
            CheckKind::Network,
            format!("one network{network}: pods reach each other directly, no gateway needed"),
        );
        return;
    }
    let Some(networks) = networks else { return };
    let listed = networks.network_of(id);
    let gateways = listed
        .as_deref()
        .map(|n| networks.gateways(n))
        .unwrap_or_default();
    // The guide names its gateway by Service (registryServiceName): Istio resolves it.
    let by_service = match (&seen.gateway, listed.as_deref()) {
        (Some(gw), Some(n)) => networks
            .service_gateways(n)
            .into_iter()
            .find(|(name, port)| {
                name.starts_with(&format!("{}.{ns}.svc.", gw.name)) && *port == gw.port
            })
            .map(|(name, port)| format!("{name}:{port}")),
        _ => None,
    };
    match (&seen.network, &listed) {
        (None, _) => checks.fail(
            CheckKind::Network,
            format!("its Istio namespace has no {NETWORK_LABEL} label"),
            hint.clone(),
        ),
        (Some(_), None) => checks.fail(
            CheckKind::Network,
            format!("meshNetworks does not list cluster {id}"),
            hint.clone(),
        ),
        (Some(label), Some(listed)) if label != listed => checks.fail(
            CheckKind::Network,
            format!("its namespace says network {label}, but meshNetworks lists it under {listed}"),
            hint.clone(),
        ),
        (Some(label), Some(_)) if gateways.is_empty() && by_service.is_none() => checks.fail(
            CheckKind::Network,
            format!("meshNetworks network {label} has no gateway: other networks cannot reach it"),
            hint.clone(),
        ),
        (Some(label), Some(_)) => checks.pass(
            CheckKind::Network,
            format!(
                "network {label}, listed in meshNetworks with gateway {}",
                by_service
                    .clone()
                    .unwrap_or_else(|| join_addresses(&gateways))
            ),
        ),
    }
    match (&seen.gateway, &seen.address) {
        (None, _) => checks.fail(
            CheckKind::Gateway,
            "no east-west gateway Service (label istio=eastwestgateway)".into(),
            Remedy::Text(
                "install Istio's east-west gateway (helm install istio-eastwestgateway istio/gateway)"
                    .into(),
            ),
        ),
        (Some(gw), None) => {
            let by_node_port = gw
                .node_port
                .is_some_and(|np| gateways.iter().any(|g| g.port() == np));
            if by_node_port {
                checks.pass(
                    CheckKind::Gateway,
                    format!(
                        "Service {} is reached by node port {}",
                        gw.name,
                        gw.node_port.unwrap_or_default()
                    ),
                );
            } else {
                checks.fail(
                    CheckKind::Gateway,
                    format!(
                        "Service {} has no LoadBalancer address or external IP",
                        gw.name
                    ),
                    Remedy::GatewayAddress,
                );
            }
        }
        (Some(gw), Some(address)) => {
            if listed.is_none() || gateways.contains(address) || by_service.is_some() {
                checks.pass(
                    CheckKind::Gateway,
                    format!("Service {} has address {address}", gw.name),
                );
            } else {
                checks.fail(
                    CheckKind::Gateway,
                    format!("Service {} has address {address}, but meshNetworks routes its network via {}", gw.name, join_addresses(&gateways)),
                    hint.clone(),
                );
            }
        }
    }
}

/// Addresses as a list for a message: `a:15443, b:15443`.
fn join_addresses(addresses: &[GatewayAddress]) -> String {
    addresses
        .iter()
        .map(GatewayAddress::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn seen(network: Option<&str>, address: Option<(&str, u16)>) -> Seen {
        Seen {
            network: network.map(str::to_owned),
            roots: None,
            has_cacerts: false,
            gateway: Some(cluster::GatewayService {
                name: "istio-eastwestgateway".into(),
                selector: Default::default(),
                port: 15443,
                node_port: None,
                network_label: None,
            }),
            address: address.map(|(a, p)| GatewayAddress::new(a, p).expect("a valid address")),
            kube_system_uid: None,
        }
    }

    fn run(seen: &Seen, networks: &str) -> Vec<(CheckKind, CheckState)> {
        let n = MeshNetworks::parse(networks).unwrap();
        let mut c = Checks::new("c2", Role::Remote);
        let hint = Remedy::Rejoin(Rejoin::new("cluster1"));
        check_network(
            &mut c,
            seen,
            "istio-system",
            "c2",
            Some(&n),
            Networks::Different,
            &hint,
        );
        for check in &c.out {
            assert_flag_free(&check.message);
            if let Some(Remedy::Text(t)) = &check.remedy {
                assert_flag_free(t);
            }
        }
        c.out.into_iter().map(|c| (c.kind, c.state)).collect()
    }

    /// Panics if `text` names this project's CLI: `kubectl mesh`, or a `--flag` that is
    /// not kubectl's or helm's.
    pub(crate) fn assert_flag_free(text: &str) {
        assert!(!text.contains("kubectl mesh"), "{text}");
        let theirs = ["context", "kube-context", "reuse-values", "set", "type"];
        for (i, _) in text.match_indices("--") {
            let rest = &text[i + 2..];
            if !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
                continue;
            }
            let flag: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            assert!(theirs.contains(&flag.as_str()), "--{flag} in {text}");
        }
    }

    #[test]
    fn remedies_name_no_flag_of_ours() {
        assert_flag_free("kubectl get ns istio-system --context c2; helm upgrade --set a=b");
        let caught = std::panic::catch_unwind(|| assert_flag_free("pass --cluster-name X"));
        assert!(caught.is_err());
        let caught = std::panic::catch_unwind(|| assert_flag_free("kubectl mesh join c2"));
        assert!(caught.is_err());
        // Every remedy of the network and gateway checks, failing each way.
        for (network, address, networks) in [
            (None, None, GOOD),
            (Some("n2"), None, "networks: {}"),
            (Some("n3"), Some(("10.0.0.9", 15443)), GOOD),
            (Some("n2"), Some(("10.0.0.9", 15443)), GOOD),
        ] {
            run(&seen(network, address), networks);
        }
        let mut no_gateway = seen(Some("n2"), None);
        no_gateway.gateway = None;
        run(&no_gateway, GOOD);
    }

    const GOOD: &str = "networks:\n  n2:\n    endpoints:\n    - fromRegistry: c2\n    gateways:\n    - address: 127.0.2.100\n      port: 15443\n";

    #[test]
    fn a_consistent_network_passes() {
        let s = seen(Some("n2"), Some(("127.0.2.100", 15443)));
        assert_eq!(
            run(&s, GOOD),
            [
                (CheckKind::Network, CheckState::Pass),
                (CheckKind::Gateway, CheckState::Pass)
            ]
        );
    }

    #[test]
    fn missing_labels_entries_and_moved_gateways_fail() {
        let fail = |s: &Seen, n: &str, which: CheckKind| {
            run(s, n)
                .iter()
                .any(|(c, st)| *c == which && *st == CheckState::Fail)
        };
        assert!(fail(
            &seen(None, Some(("127.0.2.100", 15443))),
            GOOD,
            CheckKind::Network
        ));
        assert!(fail(
            &seen(Some("n2"), Some(("127.0.2.100", 15443))),
            "networks: {}",
            CheckKind::Network
        ));
        assert!(fail(
            &seen(Some("n3"), Some(("127.0.2.100", 15443))),
            GOOD,
            CheckKind::Network
        ));
        assert!(fail(
            &seen(Some("n2"), Some(("10.0.0.9", 15443))),
            GOOD,
            CheckKind::Gateway
        ));
        assert!(fail(&seen(Some("n2"), None), GOOD, CheckKind::Gateway));
        let no_gw = "networks:\n  n2:\n    endpoints:\n    - fromRegistry: c2\n";
        assert!(fail(
            &seen(Some("n2"), Some(("127.0.2.100", 15443))),
            no_gw,
            CheckKind::Network
        ));
    }

    #[test]
    fn check_ids_are_what_json_shows_and_unique() {
        let mut ids = std::collections::BTreeSet::new();
        for kind in CheckKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                kind.id(),
                "serde and id() agree"
            );
            assert!(
                kind.id()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-'),
                "{} is kebab-case",
                kind.id()
            );
            assert!(ids.insert(kind.id()), "{} is unique", kind.id());
        }
        assert_eq!(CheckKind::TokenExpiry.name(), "token expiry");
        assert_eq!(serde_json::to_value(Role::Remote).unwrap(), "remote");
    }

    fn linked<'a>(
        secret: &'a str,
        key: &'a str,
        ours: bool,
        server: Option<&str>,
        uid: Option<&str>,
    ) -> Linked<'a> {
        Linked {
            secret,
            key,
            ours,
            keys_in_secret: 1,
            context: server.map(|_| "cluster2".to_owned()),
            reach: links::Reach {
                server: server.map(str::to_owned),
                kube_system_uid: uid.map(str::to_owned),
            },
        }
    }

    /// Each link's `duplicate-link` check: (state, message, remedy text).
    fn duplicates(links: &[Linked<'_>]) -> Vec<Option<(CheckState, String, String)>> {
        duplicate_links("istio-system", "cluster1", links)
            .into_iter()
            .map(|c| {
                let c = c?;
                assert_eq!(c.kind, CheckKind::DuplicateLink);
                assert_flag_free(&c.message);
                let remedy = match c.remedy {
                    Some(Remedy::Text(t)) => t,
                    None => String::new(),
                    other => panic!("{other:?}"),
                };
                assert_flag_free(&remedy);
                Some((c.state, c.message, remedy))
            })
            .collect()
    }

    const S2: &str = "https://127.0.2.1:6443";
    const DELETE_N2: &str =
        "kubectl delete secret n2-k8s-secret -n istio-system --context cluster1";
    const DELETE_OURS: &str =
        "kubectl delete secret istio-remote-secret-cluster2 -n istio-system --context cluster1";

    #[test]
    fn two_links_to_one_cluster_fail_and_the_hand_made_one_is_to_go() {
        let ours = linked(
            "istio-remote-secret-cluster2",
            "cluster2",
            true,
            Some(S2),
            Some("u2"),
        );
        let guide = linked(
            "n2-k8s-secret",
            "n2-k8s-config",
            false,
            Some("https://127.0.2.1:6443/"),
            Some("u2"),
        );
        let other = linked(
            "istio-remote-secret-cluster3",
            "cluster3",
            true,
            Some("https://127.0.3.1:6443"),
            Some("u3"),
        );
        let refused = linked("bad", "bad", false, None, None);
        let out = duplicates(&[ours, guide, other, refused]);
        let (state, message, remedy) = out[0].clone().unwrap();
        assert_eq!(state, CheckState::Fail);
        assert_eq!(out[1].as_ref().unwrap().1, message, "both name both");
        for name in [
            "istio-system/istio-remote-secret-cluster2 (cluster ID cluster2)",
            "istio-system/n2-k8s-secret (cluster ID n2-k8s-config)",
            "https://127.0.2.1:6443 (context cluster2, kube-system UID u2)",
        ] {
            assert!(message.contains(name), "{message}");
        }
        assert_eq!(
            remedy,
            format!(
                "keep istio-system/istio-remote-secret-cluster2 (cluster ID cluster2), which kubectl-mesh made, and remove the other: {DELETE_N2}"
            )
        );
        assert_eq!(out[2].as_ref().unwrap().0, CheckState::Pass);
        assert!(out[2].as_ref().unwrap().1.contains("kube-system UID u3"));
        assert!(out[3].is_none(), "a refused kubeconfig: no such check");
    }

    #[test]
    fn two_hand_made_links_offer_either_removal() {
        let mut a = linked(
            "istio-remote-secret-cluster2",
            "cluster2",
            false,
            Some(S2),
            None,
        );
        let b = linked(
            "n2-k8s-secret",
            "n2-k8s-config",
            false,
            Some("https://c2.example:6443"),
            Some("u2"),
        );
        // The same kube-system UID, read through another server name.
        a.reach.kube_system_uid = Some("u2".into());
        let out = duplicates(&[a, b]);
        let (_, message, remedy) = out[0].clone().unwrap();
        assert!(
            message.contains("https://127.0.2.1:6443 and https://c2.example:6443"),
            "{message}"
        );
        assert_eq!(
            remedy,
            format!("keep one and remove the other: {DELETE_OURS}, or {DELETE_N2}")
        );

        // A Secret that links other clusters too loses only its key.
        let mut shared = linked(
            "istio-remote-secret-cluster2",
            "cluster2",
            false,
            Some(S2),
            None,
        );
        shared.keys_in_secret = 2;
        let ours = linked("mine", "c2", true, Some(S2), None);
        let (_, _, remedy) = duplicates(&[shared, ours])[0].clone().unwrap();
        assert!(
            remedy.ends_with(r#"kubectl patch secret istio-remote-secret-cluster2 -n istio-system --context cluster1 --type=json -p '[{"op":"remove","path":"/data/cluster2"}]'"#),
            "{remedy}"
        );
    }

    #[test]
    fn servers_compare_without_trailing_slash_or_case() {
        assert!(links::same_server(
            "https://127.0.2.1:6443/",
            "https://127.0.2.1:6443"
        ));
        assert!(!links::same_server(
            "https://127.0.2.1:6443",
            "https://127.0.1.1:6443"
        ));
    }
}
