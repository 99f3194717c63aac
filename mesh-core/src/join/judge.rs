//! Preflight's judgement: a pure function from what was read and the options to each
//! cluster's name and network and every problem at once. No I/O, nothing async: its
//! cases are a table (see the tests).

use std::collections::BTreeMap;

use mesh_certs::{RootSet, ValidationOptions};

use super::JoinOptions;
use super::adopt::{self, AdoptedGateway, LinkPlan};
use super::read::{ClusterRead, Read};
use super::releases::planned_gateway;
use crate::cluster::{self, CACERTS, ControlPlanes, MESH_CONFIG_MAP, Model, Networks, Role};
use crate::error::{Error, Problem, ProblemKind};
use crate::install::{self, EASTWEST_RELEASE, ReleaseStatus};
use crate::names::is_label_value;
use crate::networks::MeshNetworks;

/// What preflight decided: per cluster (primary first) its name and network, and every
/// problem. The names and networks mean something only when there is no problem.
#[derive(Debug)]
pub(super) struct Judgement {
    /// Each cluster's ID.
    pub names: Vec<String>,
    /// Each cluster's network.
    pub networks: Vec<String>,
    /// The mesh's model.
    pub model: Model,
    /// Each link to make or keep: in primary-remote the primary's link to each remote,
    /// in multi-primary every cluster's link to every other.
    pub links: Vec<PairLink>,
    /// Each cluster's cross-network Gateway made by somebody else that does the job.
    pub gateways: Vec<Option<AdoptedGateway>>,
    /// Every problem found.
    pub problems: Vec<Problem>,
}

/// One link of the mesh: the cluster that reads (holds the remote secret) and the
/// cluster it reads, as indexes into [`JoinOptions::specs`], and what to do about it.
#[derive(Debug)]
pub(super) struct PairLink {
    /// The cluster whose istiod reads through the link.
    pub reader: usize,
    /// The cluster it reaches.
    pub target: usize,
    /// kubectl-mesh's own, a hand-made one kept, or replaced.
    pub plan: LinkPlan,
}

/// Collects problems.
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, cluster: &str, kind: ProblemKind, message: String) {
        self.0.push(Problem::new(cluster, kind, message));
    }
}

/// Judges what was read: names, networks, certificates, permissions, helm, objects.
pub(super) fn judge(read: &Read, opts: &JoinOptions) -> Judgement {
    // The caller's own input problems do not stop the judgement: every problem at once.
    let mut problems = Problems(Vec::new());
    let contexts: Vec<&str> = opts.specs().map(|s| s.context.as_str()).collect();
    if let Some(install) = &read.install {
        problems.0.extend(install.inputs.iter().cloned());
        if let Err(e) = &install.charts {
            problems.add("-", ProblemKind::ChartsMissing, e.to_string());
        }
        if let Err(e) = &install.helm {
            problems.add("-", ProblemKind::HelmUnusable, e.to_string());
        }
    }
    let mut readable = Vec::new();
    for (ctx, cluster) in contexts.iter().zip(&read.clusters) {
        match cluster {
            Ok(cluster) => readable.push(cluster),
            Err(e) => problems.add(ctx, unreadable_kind(e), e.to_string()),
        }
    }
    let judged = if problems.0.is_empty() {
        judge_clusters(&readable, read, opts, &mut problems)
    } else {
        Clusters::default()
    };
    problems.0.extend(opts.input_problems.iter().cloned());
    for (remote, checked) in opts.remotes.iter().zip(&read.credentials) {
        if let Err(e) = checked {
            problems.add(remote.context(), credentials_kind(e), e.to_string());
        }
    }
    Judgement {
        model: judged.model,
        names: judged.names,
        networks: judged.networks,
        links: judged.links,
        gateways: judged.gateways,
        problems: problems.0,
    }
}

/// A cluster that could not be read: refused, or otherwise unreadable.
fn unreadable_kind(e: &Error) -> ProblemKind {
    match e {
        Error::Kube {
            status: Some(401 | 403),
            ..
        }
        | Error::Credentials(
            mesh_kubeconfig::Error::Forbidden { .. } | mesh_kubeconfig::Error::Unauthorized { .. },
        ) => ProblemKind::AccessDenied,
        _ => ProblemKind::ClusterUnreadable,
    }
}

fn credentials_kind(e: &mesh_kubeconfig::Error) -> ProblemKind {
    match e {
        mesh_kubeconfig::Error::PlainHttp { .. } => ProblemKind::PlainHttp,
        mesh_kubeconfig::Error::UnverifiedCa { .. } => ProblemKind::UnverifiedCa,
        _ => ProblemKind::CredentialsInvalid,
    }
}

/// Per cluster (primary first): names, networks, links and adopted Gateways.
#[derive(Default)]
struct Clusters {
    model: Model,
    names: Vec<String>,
    networks: Vec<String>,
    links: Vec<PairLink>,
    gateways: Vec<Option<AdoptedGateway>>,
}

/// The judgement of clusters that were all read: each one's name and network.
fn judge_clusters(
    clusters: &[&ClusterRead],
    read: &Read,
    opts: &JoinOptions,
    problems: &mut Problems,
) -> Clusters {
    let ns = &opts.namespace;
    let (mut names, mut networks) = (Vec::new(), Vec::new());
    let (mut links, mut gateways) = (Vec::new(), Vec::new());
    let specs: Vec<_> = opts.specs().collect();
    let control_planes = control_planes(&specs, clusters, read, opts, problems);
    let multi = control_planes == ControlPlanes::MultiPrimary;
    // The networks meshNetworks already names (the guide's names are kept).
    let mesh_networks = clusters[0]
        .facts
        .mesh_config
        .as_ref()
        .and_then(|cm| MeshNetworks::from_config_map(cm).ok());
    for (i, (spec, cluster)) in specs.iter().zip(clusters).enumerate() {
        let ctx = spec.context.as_str();
        let primary = i == 0 || multi;
        let f = &cluster.facts;
        istio_present(ctx, cluster, primary, opts, problems);
        helm_releases(ctx, cluster, read, opts, problems);
        if !f.denied.is_empty() {
            problems.add(
                ctx,
                ProblemKind::AccessDenied,
                format!(
                    "your user may not {}; use a context with cluster-admin rights",
                    f.denied.join(", ")
                ),
            );
        }
        // The cluster name.
        let role = if primary { Role::Primary } else { Role::Remote };
        let default_name =
            crate::cluster::default_cluster_id(role, ctx, f.istiod_cluster_id.as_deref());
        let name = match &spec.cluster_name {
            Some(n) if !mesh_kubeconfig::is_dns1123_label(n) => {
                problems.add(
                    ctx,
                    ProblemKind::NameInvalid,
                    format!(
                        "cluster name {n:?} is not a DNS-1123 label (lowercase letters, digits and '-', at most 63); give another cluster name"
                    ),
                );
                n.clone()
            }
            Some(n) => {
                if primary
                    && let Some(id) = &f.istiod_cluster_id
                    && id != n
                {
                    problems.add(
                        ctx,
                        ProblemKind::ClusterIdMismatch,
                        format!(
                            "istiod runs with cluster ID {id:?}, not {n:?}; give the primary no cluster name (istiod's is used) or reinstall istiod with that name"
                        ),
                    );
                }
                n.clone()
            }
            None => default_name,
        };
        // A link to a remote that is there already (ours, or made by hand) decides its
        // name; a primary's is its istiod's.
        let name = if primary {
            name
        } else {
            let found = read.links.get(i - 1).map(Vec::as_slice).unwrap_or_default();
            let ours = opts.remotes[i - 1].credentials().secret_name_for(&name);
            match adopt::plan_link(
                found,
                spec.cluster_name.as_deref(),
                &name,
                &ours,
                opts.replace_links,
                ns,
                ctx,
            ) {
                Ok((plan, name)) => {
                    links.push(PairLink {
                        reader: 0,
                        target: i,
                        plan,
                    });
                    name
                }
                Err(problem) => {
                    problems.add(ctx, problem.kind, problem.message);
                    name
                }
            }
        };
        // The network.
        if let Some(given) = &spec.network
            && !is_label_value(given)
        {
            problems.add(
                ctx,
                ProblemKind::NetworkInvalid,
                format!(
                    "network {given:?} is not a valid label value (at most 63 letters, digits, '-', '_' or '.', beginning and ending with a letter or digit); give another network"
                ),
            );
        }
        let network = match (&spec.network, f.declared_network()) {
            (Some(given), Some((declared, source))) if *given != declared => {
                problems.add(
                    ctx,
                    ProblemKind::NetworkContradictsDeclared,
                    format!(
                        "the network given is {given:?} but {source} says {declared:?}; give no network (the declared one is used) or relabel the cluster yourself"
                    ),
                );
                given.clone()
            }
            (Some(given), _) => given.clone(),
            (None, Some((declared, _))) => declared,
            // The network meshNetworks lists it under (the guide's names), else ours.
            (None, None) => mesh_networks
                .as_ref()
                .and_then(|m| m.network_of(&name))
                .unwrap_or_else(|| format!("network-{name}")),
        };
        let adopted = cluster
            .passthrough
            .as_ref()
            .and_then(|(gws, svcs)| adopt::adopt_gateway(gws, svcs, f.gateway.as_ref()));
        foreign_objects(ctx, cluster, &network, adopted.is_some(), opts, problems);
        names.push(name);
        networks.push(network);
        gateways.push(adopted);
    }

    let networks_model = network_model(&specs, clusters, read, opts, &mut networks, problems);
    if multi {
        links = pair_links(&specs, &names, read, opts, problems);
    }

    // Names and networks across clusters.
    let primary_ctx = specs[0].context.as_str();
    for (i, spec) in specs.iter().enumerate().skip(1) {
        let ctx = spec.context.as_str();
        if names[i] == names[0] {
            problems.add(
                ctx,
                ProblemKind::NameIsPrimarys,
                format!(
                    "cluster name {:?} is the primary's own cluster ID, which istiod ignores; give the remote another cluster name",
                    names[i]
                ),
            );
        }
        let uid = &clusters[i].facts.kube_system_uid;
        if uid.is_some() && *uid == clusters[0].facts.kube_system_uid {
            problems.add(
                ctx,
                ProblemKind::SameCluster,
                format!(
                    "context {ctx} reaches the same cluster as {primary_ctx}; name two different clusters"
                ),
            );
        }
    }
    let mut seen = BTreeMap::new();
    for (spec, name) in specs.iter().zip(names.iter()) {
        if let Some(other) = seen.insert(name.clone(), spec.context.clone()) {
            problems.add(
                &spec.context,
                ProblemKind::NameGivenTwice,
                format!(
                    "cluster name {name:?} is also given to {other}; give another cluster name"
                ),
            );
        }
    }

    // The cluster name must not belong to another remote secret in the primary.
    match &read.remote_secrets {
        Ok(secrets) => {
            for ((remote, name), ctx) in opts.remotes.iter().zip(&names[1..]).zip(&specs[1..]) {
                let ours = remote.credentials().secret_name_for(name);
                // A Secret whose link reaches this remote is its link, not another's.
                let its_link = |secret: &str| {
                    read.links
                        .iter()
                        .flatten()
                        .any(|l| l.secret == secret && l.key == *name)
                };
                for s in secrets {
                    let secret = s.metadata.name.clone().unwrap_or_default();
                    let has_key = s.data.as_ref().is_some_and(|d| d.contains_key(name));
                    if secret != ours && has_key && !its_link(&secret) {
                        problems.add(
                            primary_ctx,
                            ProblemKind::NameTaken,
                            format!(
                                "cluster name {name:?} is already used by remote secret {ns}/{secret}; give {} another cluster name",
                                ctx.context
                            ),
                        );
                    }
                }
            }
        }
        Err(e) => {
            let reason = match e {
                Error::Kube { reason, .. } => reason.clone(),
                other => other.to_string(),
            };
            problems.add(
                primary_ctx,
                ProblemKind::RemoteSecretsUnreadable,
                format!("cannot list remote secrets in {ns}: {reason}"),
            );
        }
    }

    certificates(&specs, clusters, opts, problems);
    Clusters {
        model: Model {
            control_planes,
            networks: networks_model,
        },
        names,
        networks,
        links,
        gateways,
    }
}

/// Whether the primary holds any link (a key of a remote secret): it is in a mesh already.
fn primary_has_links(read: &Read) -> bool {
    read.remote_secrets
        .as_ref()
        .is_ok_and(|s| !crate::links::links(s).is_empty())
}

/// The model recorded in a cluster's Istio namespace by a multi-primary join.
fn recorded_model(facts: &cluster::ClusterFacts) -> Option<ControlPlanes> {
    cluster::recorded_model(facts.istio_namespace.as_ref())
}

/// Which clusters run istiod: what the options ask for, else what the mesh around the
/// primary is recorded as — our annotation, else Istio's own objects: a primary with
/// links is primary-remote unless a cluster it reads in this join runs an istiod that
/// answers to no other control plane (a hand-made multi-primary mesh) — else
/// primary-remote. A join that would mix two models is a problem, on the cluster whose
/// place says so.
fn control_planes(
    specs: &[&super::ClusterSpec],
    clusters: &[&ClusterRead],
    read: &Read,
    opts: &JoinOptions,
    problems: &mut Problems,
) -> ControlPlanes {
    let primary = &clusters[0].facts;
    let pctx = specs[0].context.as_str();
    let planes = |f: &cluster::ClusterFacts| {
        super::control_plane_clusters(f.istio_namespace.as_ref().map(|n| &n.metadata))
    };
    let has_links = primary_has_links(read);
    let recorded = recorded_model(primary).or_else(|| {
        has_links.then(|| {
            let reads_a_primary = read.links.iter().enumerate().any(|(i, found)| {
                let f = &clusters[i + 1].facts;
                !found.is_empty() && f.has_mesh_config && planes(f).is_empty()
            });
            if reads_a_primary {
                ControlPlanes::MultiPrimary
            } else {
                ControlPlanes::PrimaryRemote
            }
        })
    });
    let chosen = opts
        .control_planes
        .or(recorded)
        .unwrap_or(ControlPlanes::PrimaryRemote);
    if let (Some(given), Some(recorded)) = (opts.control_planes, recorded)
        && given != recorded
    {
        problems.add(
            pctx,
            ProblemKind::ModelContradicts,
            format!(
                "{pctx} is a primary of a {recorded} mesh; a {given} join would mix two models in one mesh: join as {recorded}, or unjoin its clusters first"
            ),
        );
    }
    let controllers = planes(primary);
    if !controllers.is_empty() {
        problems.add(
            pctx,
            ProblemKind::ModelContradicts,
            format!(
                "{pctx} is a remote of {} (its namespace {} lists them as its control plane), so it cannot be a primary; give one of them as the primary, or unjoin {pctx} first",
                controllers.join(", "),
                opts.namespace
            ),
        );
    }
    for (spec, c) in specs.iter().zip(clusters).skip(1) {
        let ctx = spec.context.as_str();
        let controllers = planes(&c.facts);
        match chosen {
            ControlPlanes::MultiPrimary if !controllers.is_empty() => problems.add(
                ctx,
                ProblemKind::ModelContradicts,
                format!(
                    "{ctx} is a remote of {} (primary-remote), so it cannot be a primary of a multi-primary mesh; unjoin it first",
                    controllers.join(", ")
                ),
            ),
            ControlPlanes::PrimaryRemote
                if recorded_model(&c.facts) == Some(ControlPlanes::MultiPrimary) =>
            {
                problems.add(
                    ctx,
                    ProblemKind::ModelContradicts,
                    format!(
                        "{ctx} is a primary of a multi-primary mesh, so it cannot be a remote of a primary-remote one; join it as multi-primary, or unjoin it first"
                    ),
                )
            }
            _ => {}
        }
    }
    chosen
}

/// One network or several, and each cluster's network made the one network when
/// shared: what the options ask for, else one network when every cluster declares (or
/// is given) the same one, or when the mesh already runs on one (the primary has links,
/// no cluster declares a network and `meshNetworks` names none), else a network each. On different networks a
/// remote may not share the primary's.
fn network_model(
    specs: &[&super::ClusterSpec],
    clusters: &[&ClusterRead],
    read: &Read,
    opts: &JoinOptions,
    networks: &mut [String],
    problems: &mut Problems,
) -> Networks {
    let declared: Vec<Option<String>> = specs
        .iter()
        .zip(clusters)
        .map(|(spec, c)| {
            spec.network
                .clone()
                .or_else(|| c.facts.declared_network().map(|(n, _)| n))
        })
        .collect();
    let has_links = primary_has_links(read);
    // A mesh on one network names no networks in meshNetworks.
    let names_networks = clusters[0]
        .facts
        .mesh_config
        .as_ref()
        .and_then(|cm| MeshNetworks::from_config_map(cm).ok())
        .is_some_and(|n| !n.names().is_empty());
    let first = declared.iter().flatten().next();
    let model = opts.networks.unwrap_or_else(|| {
        let all_same = declared.iter().all(|d| d.is_some() && d.as_ref() == first);
        if all_same || (has_links && first.is_none() && !names_networks) {
            Networks::One
        } else {
            Networks::Different
        }
    });
    match model {
        Networks::One => {
            let common = first.cloned().unwrap_or_else(|| networks[0].clone());
            for (spec, d) in specs.iter().zip(&declared) {
                if let Some(d) = d
                    && *d != common
                {
                    problems.add(
                        &spec.context,
                        ProblemKind::NetworkContradictsDeclared,
                        format!(
                            "it is on network {d:?}, but the mesh is on one network, {common:?}; give the clusters one network, or join them on different networks"
                        ),
                    );
                }
            }
            networks.iter_mut().for_each(|n| *n = common.clone());
        }
        Networks::Different => {
            for (i, spec) in specs.iter().enumerate().skip(1) {
                if networks[i] == networks[0] {
                    problems.add(
                        &spec.context,
                        ProblemKind::SameNetwork,
                        format!(
                            "it is on network {:?} like the primary, while the mesh has a network per cluster; give it another network, or join every cluster on one network",
                            networks[i]
                        ),
                    );
                }
            }
        }
    }
    model
}

/// In a multi-primary mesh, every cluster's link to every other — each planned as a
/// primary-remote link is (a hand-made one adopted, ours refreshed) under the target's
/// name — and what each primary reads that is not in the join (its link to the new
/// cluster would be missing) or whose name another link of its uses.
fn pair_links(
    specs: &[&super::ClusterSpec],
    names: &[String],
    read: &Read,
    opts: &JoinOptions,
    problems: &mut Problems,
) -> Vec<PairLink> {
    let ns = opts.namespace.as_str();
    let mut pairs = Vec::new();
    for reader in 0..specs.len() {
        let rctx = specs[reader].context.as_str();
        let (secrets, found): (&[_], Vec<&[adopt::FoundLink]>) = if reader == 0 {
            (
                read.remote_secrets.as_deref().unwrap_or_default(),
                std::iter::once(&[][..])
                    .chain(read.links.iter().map(Vec::as_slice))
                    .collect(),
            )
        } else {
            let peer = &read.peers[reader - 1];
            if let Err(e) = &peer.remote_secrets {
                problems.add(
                    rctx,
                    ProblemKind::RemoteSecretsUnreadable,
                    format!("cannot list remote secrets in {ns}: {e}"),
                );
            }
            (
                peer.remote_secrets.as_deref().unwrap_or_default(),
                peer.links.iter().map(Vec::as_slice).collect(),
            )
        };
        for (target, spec) in specs.iter().enumerate() {
            if target == reader {
                continue;
            }
            let name = &names[target];
            let ours = opts.credentials_of(target).secret_name_for(name);
            let links = found.get(target).copied().unwrap_or_default();
            match adopt::plan_link(
                links,
                Some(name),
                name,
                &ours,
                opts.replace_links,
                ns,
                &spec.context,
            ) {
                Ok((plan, _)) => pairs.push(PairLink {
                    reader,
                    target,
                    plan,
                }),
                Err(problem) => problems.add(
                    &spec.context,
                    problem.kind,
                    format!("in {rctx}: {}", problem.message),
                ),
            }
        }
        // Every cluster the reader reads must be in the join: it is a member whose link
        // to the new cluster, and the new cluster's to it, would be missing.
        let matched: Vec<&str> = found
            .iter()
            .flat_map(|f| f.iter())
            .map(|l| l.key.as_str())
            .collect();
        for link in crate::links::links(secrets) {
            if link.key != names[reader] && !matched.contains(&link.key.as_str()) {
                problems.add(
                    rctx,
                    ProblemKind::PeerWithoutContext,
                    format!(
                        "{rctx} reads cluster {:?} (remote Secret {ns}/{}), a member of this multi-primary mesh that is not in the join, so the new links to and from it would be missing; add its context to the join",
                        link.key, link.secret
                    ),
                );
            }
        }
    }
    pairs
}

/// Istio present where it must be (unless it is to be installed).
fn istio_present(
    ctx: &str,
    cluster: &ClusterRead,
    primary: bool,
    opts: &JoinOptions,
    problems: &mut Problems,
) {
    if opts.install.is_some() {
        return;
    }
    let ns = &opts.namespace;
    let f = &cluster.facts;
    if f.istio_namespace.is_none() {
        problems.add(
            ctx,
            ProblemKind::IstioMissing,
            format!(
                "namespace {ns} does not exist; install Istio first (or let join install it), or give Istio's namespace"
            ),
        );
    }
    if f.gateway_crd_version.is_none() {
        problems.add(
            ctx,
            ProblemKind::CrdsMissing,
            "Istio's CRDs are missing (gateways.networking.istio.io); install Istio's base chart first, or let join install Istio".into(),
        );
    }
    if primary && f.istio_namespace.is_some() && !f.has_mesh_config {
        problems.add(
            ctx,
            ProblemKind::IstiodMissing,
            format!(
                "ConfigMap {ns}/{MESH_CONFIG_MAP} is missing: istiod is not installed in the primary; install istiod there first, or let join install Istio"
            ),
        );
    }
}

/// Releases of ours in another helm operation, or perhaps being installed right now.
fn helm_releases(
    ctx: &str,
    cluster: &ClusterRead,
    read: &Read,
    opts: &JoinOptions,
    problems: &mut Problems,
) {
    let ns = &opts.namespace;
    let ours = [
        install::BASE_RELEASE,
        install::ISTIOD_RELEASE,
        EASTWEST_RELEASE,
    ];
    let repair_pending = opts.install.as_ref().is_some_and(|i| i.repair_pending);
    for (release, listed) in &cluster.releases {
        if !ours.contains(&release.as_str()) {
            continue;
        }
        let status = &listed.status;
        let age = listed.age_at(read.at);
        // A pending install may be another helm's (a second join) running right now:
        // repaired only when provably left over, or when the user says so.
        let busy = *status == ReleaseStatus::PendingInstall
            && !repair_pending
            && age.is_none_or(|age| age <= opts.wait + install::PENDING_IS_DEAD_AFTER);
        if busy {
            let since = age
                .map(|a| format!(" since {}s", a.as_secs()))
                .unwrap_or_default();
            problems.add(
                ctx,
                ProblemKind::HelmReleasePending,
                format!(
                    "helm release {ns}/{release} is pending-install{since}: a helm install (another join?) may be running on it now; wait for it to end and run join again — or, if no helm is running on it, let join uninstall and reinstall it"
                ),
            );
        }
        if status.is_stuck() {
            problems.add(
                ctx,
                ProblemKind::HelmReleaseStuck,
                format!(
                    "helm release {ns}/{release} is {status}; finish or undo that helm operation first (`helm history {release} -n {ns} --kube-context {ctx}`, then `helm rollback`)"
                ),
            );
        }
    }
}

/// Istio objects join would create that somebody else made: used only if they do the job.
fn foreign_objects(
    ctx: &str,
    cluster: &ClusterRead,
    network: &str,
    gateway_adopted: bool,
    opts: &JoinOptions,
    problems: &mut Problems,
) {
    let ns = opts.namespace.as_str();
    let Some(version) = &cluster.facts.gateway_crd_version else {
        return;
    };
    let gateway = match (&cluster.facts.gateway, opts.install.is_some()) {
        (Some(gw), _) => Some(gw.clone()),
        (None, true) => Some(planned_gateway(network)),
        (None, false) => None,
    };
    let expose = cluster::expose_istiod(ns, version);
    for object in &cluster.istio_objects {
        let existing = match &object.found {
            Ok(Some(existing)) => existing,
            Ok(None) => continue,
            Err(e) => {
                problems.add(ctx, unreadable_kind(e), e.to_string());
                continue;
            }
        };
        if crate::links::managed_by_us(&existing.metadata) {
            continue;
        }
        let is_gateway =
            object.name == cluster::CROSS_NETWORK_GATEWAY && object.resource.kind == "Gateway";
        if is_gateway && gateway_adopted {
            continue; // join uses the Gateway it adopts and makes none of its own
        }
        let fine = match &gateway {
            Some(gw) if is_gateway => cluster::gateway_does_the_job(existing, gw),
            _ => expose
                .iter()
                .find(|(o, r)| {
                    o.metadata.name.as_deref() == Some(&object.name)
                        && r.kind == object.resource.kind
                })
                .is_some_and(|(desired, _)| existing.data["spec"] == desired.data["spec"]),
        };
        if !fine {
            problems.add(
                ctx,
                ProblemKind::ForeignObject,
                foreign_object_message(ctx, ns, &object.resource, &object.name),
            );
        }
    }
}

/// The problem of an Istio object with join's name that kubectl-mesh did not create and
/// that does not do what join's would.
pub(super) fn foreign_object_message(
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

/// Certificates: valid, and one root across the given bundles and the stored ones.
fn certificates(
    specs: &[&super::ClusterSpec],
    clusters: &[&ClusterRead],
    opts: &JoinOptions,
    problems: &mut Problems,
) {
    let ns = &opts.namespace;
    let mut root_sets: Vec<(String, RootSet)> = Vec::new();
    for (spec, cluster) in specs.iter().zip(clusters) {
        let ctx = spec.context.as_str();
        let facts = &cluster.facts;
        match &spec.certs {
            Some(bundle) => {
                let where_ = bundle
                    .source()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "the bundle".into());
                let report = bundle.validate(&ValidationOptions::default());
                for f in report.errors() {
                    problems.add(
                        ctx,
                        ProblemKind::BundleInvalid,
                        format!("{where_}/{}: {} — {}", f.file, f.message, f.fix),
                    );
                }
                root_sets.push((
                    format!("the certificates for {ctx} ({where_})"),
                    bundle.root_set(),
                ));
                if facts.cacerts.is_some() && facts.stored_roots().is_none() && !opts.replace_cacerts
                {
                    problems.add(
                        ctx,
                        ProblemKind::StoredCacertsUnreadable,
                        format!(
                            "its stored Secret {ns}/{CACERTS} has no readable root-cert.pem, so nothing shows that {where_} keeps its root; move it aside first (kubectl --context {ctx} -n {ns} get secret {CACERTS} -o yaml > {CACERTS}-{ctx}.yaml && kubectl --context {ctx} -n {ns} delete secret {CACERTS}), or let join replace it"
                        ),
                    );
                }
                if let Some(stored) = facts.stored_roots()
                    && !stored.shares_root_with(&bundle.root_set())
                {
                    problems.add(
                        ctx,
                        ProblemKind::StoredRootDiffers,
                        format!(
                            "its stored Secret {ns}/{CACERTS} has another root than {where_}; istiod would sign with a root the other clusters do not trust — delete that Secret first if you mean to replace the root"
                        ),
                    );
                }
            }
            None => match facts.stored_roots() {
                Some(stored) => root_sets.push((format!("{ctx}'s stored {CACERTS}"), stored)),
                None => problems.add(
                    ctx,
                    ProblemKind::CertsMissing,
                    format!(
                        "it has no Secret {ns}/{CACERTS} and no certificates were given; give a CA bundle for it (see `kubectl mesh certs generate`)"
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
            problems.add(
                "-",
                ProblemKind::RootsDiffer,
                format!(
                    "the roots differ: {} do not trust the root of {}; every cluster of a mesh needs the same root (see `kubectl mesh certs check`)",
                    agreement.disagreeing.join(", "),
                    agreement.agreeing.join(", ")
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    //! The judgement as a table: a healthy join of cluster1 (primary) and cluster2, and
    //! per case one change to what was read or given, with the problem it must produce.

    use std::sync::OnceLock;
    use std::time::SystemTime;

    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{Namespace, Secret};
    use kube::api::{DynamicObject, ObjectMeta};
    use mesh_certs::CaBundle;
    use mesh_certs::generate::{IntermediateCa, IntermediateOptions, RootCa, RootOptions};

    use super::*;
    use crate::cluster::{ClusterFacts, GatewayService, MODEL_ANNOTATION};
    use crate::install::{InstallOptions, Listed};
    use crate::join::adopt::{FoundLink, LinkCheck};
    use crate::join::read::PeerRead;
    use crate::join::read::{FoundObject, InstallRead};
    use crate::{Remote, ValuesFor};

    /// Two roots, each with an intermediate for cluster1 and cluster2.
    fn intermediates() -> &'static [[IntermediateCa; 2]; 2] {
        static CAS: OnceLock<[[IntermediateCa; 2]; 2]> = OnceLock::new();
        CAS.get_or_init(|| {
            let one = || {
                let root = RootCa::generate(&RootOptions::default()).unwrap();
                ["cluster1", "cluster2"].map(|c| {
                    root.issue_intermediate(c, &IntermediateOptions::default())
                        .unwrap()
                })
            };
            [one(), one()]
        })
    }

    /// The bundle of cluster `cluster` (0 or 1) under root `root` (0 or 1).
    fn bundle(root: usize, cluster: usize) -> CaBundle {
        intermediates()[root][cluster].to_bundle()
    }

    /// A stored `cacerts` holding `root-cert.pem` (or not).
    fn cacerts(root_pem: Option<&[u8]>) -> Secret {
        let mut data = BTreeMap::new();
        if let Some(pem) = root_pem {
            data.insert("root-cert.pem".to_owned(), ByteString(pem.to_vec()));
        }
        data.insert("ca-cert.pem".to_owned(), ByteString(b"x".to_vec()));
        Secret {
            data: Some(data),
            ..Secret::default()
        }
    }

    fn root_pem(root: usize) -> Vec<u8> {
        intermediates()[root][0].root_cert_pem().as_bytes().to_vec()
    }

    fn facts(context: &str, primary: bool) -> ClusterFacts {
        ClusterFacts {
            context: context.into(),
            kube_system_uid: Some(format!("uid-{context}")),
            istio_namespace: Some(Namespace {
                metadata: ObjectMeta {
                    name: Some("istio-system".into()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            }),
            gateway_crd_version: Some("v1".into()),
            gateway: Some(GatewayService {
                network_label: None,
                ..planned_gateway("")
            }),
            cacerts: Some(cacerts(Some(&root_pem(0)))),
            istiod_cluster_id: primary.then(|| context.to_owned()),
            istiod_network: None,
            has_mesh_config: primary,
            mesh_config: None,
            denied: Vec::new(),
        }
    }

    /// The Istio namespace records the multi-primary model, as a multi-primary join leaves it.
    fn record_multi_primary(facts: &mut ClusterFacts) {
        let ns = facts.istio_namespace.as_mut().expect("the Istio namespace");
        ns.metadata.annotations = Some(BTreeMap::from([(
            MODEL_ANNOTATION.to_owned(),
            "multi-primary".to_owned(),
        )]));
    }

    fn cluster(context: &str, primary: bool) -> Result<ClusterRead, Error> {
        Ok(ClusterRead {
            facts: facts(context, primary),
            releases: BTreeMap::new(),
            istio_objects: Vec::new(),
            passthrough: None,
        })
    }

    /// cluster1 and cluster2, Istio installed, one root stored in both, nothing given.
    fn healthy() -> (JoinOptions, Read) {
        let opts = JoinOptions::new("cluster1", &["cluster2"]);
        let read = Read {
            at: SystemTime::now(),
            install: None,
            clusters: vec![cluster("cluster1", true), cluster("cluster2", false)],
            remote_secrets: Ok(Vec::new()),
            credentials: vec![Ok(())],
            links: vec![Vec::new()],
            peers: vec![PeerRead {
                remote_secrets: Ok(Vec::new()),
                links: vec![Vec::new(), Vec::new()],
            }],
        };
        (opts, read)
    }

    /// `--install`, with helm and the charts found.
    fn installing(opts: &mut JoinOptions, read: &mut Read) {
        opts.install = Some(InstallOptions::new("charts"));
        read.install = Some(InstallRead {
            inputs: Vec::new(),
            charts: Ok(crate::install::Charts {
                base: "charts/base".into(),
                istiod: "charts/istiod".into(),
                gateway: "charts/gateway".into(),
            }),
            helm: Ok("v3.19.0".into()),
        });
    }

    fn facts_of(read: &mut Read, i: usize) -> &mut ClusterFacts {
        &mut read.clusters[i].as_mut().expect("read").facts
    }

    fn release(read: &mut Read, i: usize, name: &str, status: &str) {
        let listed = Listed {
            name: name.into(),
            status: ReleaseStatus::from(status.to_owned()),
            chart: "istiod-1.28.0".into(),
            updated: String::new(),
        };
        let cluster = read.clusters[i].as_mut().expect("read");
        cluster.releases.insert(name.into(), listed);
    }

    fn remote_secret(name: &str, key: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(key.to_owned(), ByteString(Vec::new()))])),
            ..Secret::default()
        }
    }

    fn found_link(secret: &str, key: &str, check: LinkCheck) -> FoundLink {
        FoundLink {
            secret: secret.into(),
            key: key.into(),
            check,
        }
    }

    fn kube_error(status: Option<u16>) -> Error {
        Error::Kube {
            cluster: "cluster2".into(),
            action: "reaching the API server".into(),
            reason: "no answer".into(),
            status,
            source: None,
        }
    }

    /// What a case must produce.
    enum Expect {
        /// No problem; the names and networks given.
        Clean([&'static str; 2], [&'static str; 2]),
        /// A problem of this kind about this cluster (others may come with it).
        Problem(&'static str, ProblemKind),
    }

    struct Case {
        name: &'static str,
        change: fn(&mut JoinOptions, &mut Read),
        expect: Expect,
    }

    fn cases() -> Vec<Case> {
        use Expect::*;
        use ProblemKind::*;
        vec![
            // --- everything right ----------------------------------------------------
            Case {
                name: "healthy: default names and networks",
                change: |_, _| {},
                expect: Clean(
                    ["cluster1", "cluster2"],
                    ["network-cluster1", "network-cluster2"],
                ),
            },
            Case {
                name: "healthy: declared networks, given names, one root given to both",
                change: |opts, read| {
                    facts_of(read, 0).istiod_network = Some("east".into());
                    facts_of(read, 1).gateway.as_mut().unwrap().network_label = Some("west".into());
                    opts.primary.certs = Some(bundle(0, 0));
                    opts.remotes[0] = Remote::new("cluster2")
                        .with_cluster_name("c2")
                        .with_certs(bundle(0, 1));
                },
                expect: Clean(["cluster1", "c2"], ["east", "west"]),
            },
            Case {
                name: "healthy: istiod's own cluster ID names the primary",
                change: |_, read| facts_of(read, 0).istiod_cluster_id = Some("main".into()),
                expect: Clean(["main", "cluster2"], ["network-main", "network-cluster2"]),
            },
            Case {
                name: "healthy: --install on bare clusters",
                change: |opts, read| {
                    installing(opts, read);
                    for i in 0..2 {
                        let f = facts_of(read, i);
                        f.istio_namespace = None;
                        f.gateway_crd_version = None;
                        f.has_mesh_config = false;
                        f.istiod_cluster_id = None;
                    }
                },
                expect: Clean(
                    ["cluster1", "cluster2"],
                    ["network-cluster1", "network-cluster2"],
                ),
            },
            Case {
                name: "healthy: a pending release of ours, repair asked for",
                change: |opts, read| {
                    installing(opts, read);
                    opts.install.as_mut().unwrap().repair_pending = true;
                    release(read, 1, "istiod", "pending-install");
                },
                expect: Clean(
                    ["cluster1", "cluster2"],
                    ["network-cluster1", "network-cluster2"],
                ),
            },
            Case {
                name: "healthy: Istio's own sample cross-network Gateway is used as it is",
                change: |_, read| {
                    let mut sample =
                        cluster::cross_network_gateway("istio-system", &planned_gateway("x"), "v1");
                    sample.metadata.labels = None;
                    found(read, 1, sample);
                },
                expect: Clean(
                    ["cluster1", "cluster2"],
                    ["network-cluster1", "network-cluster2"],
                ),
            },
            // --- reading -----------------------------------------------------------
            Case {
                name: "a cluster that does not answer",
                change: |_, read| read.clusters[1] = Err(kube_error(None)),
                expect: Problem("cluster2", ClusterUnreadable),
            },
            Case {
                name: "a cluster that refuses the user",
                change: |_, read| read.clusters[1] = Err(kube_error(Some(403))),
                expect: Problem("cluster2", AccessDenied),
            },
            Case {
                name: "a write the user may not make",
                change: |_, read| facts_of(read, 1).denied = vec!["create secrets".into()],
                expect: Problem("cluster2", AccessDenied),
            },
            Case {
                name: "the primary's remote secrets cannot be listed",
                change: |_, read| read.remote_secrets = Err(kube_error(Some(500))),
                expect: Problem("cluster1", RemoteSecretsUnreadable),
            },
            // --- Istio -------------------------------------------------------------
            Case {
                name: "no Istio namespace",
                change: |_, read| facts_of(read, 1).istio_namespace = None,
                expect: Problem("cluster2", IstioMissing),
            },
            Case {
                name: "no Istio CRDs",
                change: |_, read| facts_of(read, 1).gateway_crd_version = None,
                expect: Problem("cluster2", CrdsMissing),
            },
            Case {
                name: "no istiod in the primary",
                change: |_, read| {
                    let f = facts_of(read, 0);
                    f.has_mesh_config = false;
                    f.istiod_cluster_id = None;
                },
                expect: Problem("cluster1", IstiodMissing),
            },
            // --- names -------------------------------------------------------------
            Case {
                name: "a cluster name that is no DNS-1123 label",
                change: |opts, _| {
                    opts.remotes[0] = Remote::new("cluster2").with_cluster_name("Cluster_2")
                },
                expect: Problem("cluster2", NameInvalid),
            },
            Case {
                name: "a remote named like the primary",
                change: |opts, _| {
                    opts.remotes[0] = Remote::new("cluster2").with_cluster_name("cluster1")
                },
                expect: Problem("cluster2", NameIsPrimarys),
            },
            Case {
                name: "one name for two clusters",
                change: |opts, _| {
                    opts.remotes[0] = Remote::new("cluster2").with_cluster_name("cluster1")
                },
                expect: Problem("cluster2", NameGivenTwice),
            },
            Case {
                name: "a name another remote secret has",
                change: |_, read| {
                    read.remote_secrets = Ok(vec![remote_secret("hand-made", "cluster2")])
                },
                expect: Problem("cluster1", NameTaken),
            },
            // --- links made by hand --------------------------------------------------
            Case {
                name: "healthy: the guide's link is kept under its cluster ID and network",
                change: |_, read| {
                    read.links = vec![vec![found_link(
                        "n2-k8s-secret",
                        "n2-k8s-config",
                        LinkCheck::Works { account: None },
                    )]];
                    read.remote_secrets = Ok(vec![remote_secret("n2-k8s-secret", "n2-k8s-config")]);
                    let mut networks = MeshNetworks::default();
                    networks.upsert("network2", "n2-k8s-config", None);
                    facts_of(read, 0).mesh_config = Some(networks.to_config_map("istio-system"));
                },
                expect: Clean(
                    ["cluster1", "n2-k8s-config"],
                    ["network-cluster1", "network2"],
                ),
            },
            Case {
                name: "two links reach the remote",
                change: |_, read| {
                    read.links = vec![vec![
                        found_link(
                            "n2-k8s-secret",
                            "n2-k8s-config",
                            LinkCheck::Works { account: None },
                        ),
                        found_link(
                            "istio-remote-secret-c2",
                            "c2",
                            LinkCheck::Works { account: None },
                        ),
                    ]];
                },
                expect: Problem("cluster2", DuplicateLinks),
            },
            Case {
                name: "a hand-made link that does not work",
                change: |_, read| {
                    let broken = LinkCheck::Broken("Unauthorized".into());
                    read.links = vec![vec![found_link("n2-k8s-secret", "n2-k8s-config", broken)]];
                },
                expect: Problem("cluster2", LinkBroken),
            },
            Case {
                name: "a name given that the hand-made link does not have",
                change: |opts, read| {
                    opts.remotes[0] = Remote::new("cluster2").with_cluster_name("cluster2");
                    read.links = vec![vec![found_link(
                        "n2-k8s-secret",
                        "n2-k8s-config",
                        LinkCheck::Works { account: None },
                    )]];
                },
                expect: Problem("cluster2", LinkNamedOtherwise),
            },
            Case {
                name: "a primary name istiod does not run with",
                change: |opts, _| opts.primary.cluster_name = Some("primary".into()),
                expect: Problem("cluster1", ClusterIdMismatch),
            },
            // --- networks ----------------------------------------------------------
            Case {
                name: "a network that is no label value",
                change: |opts, _| {
                    opts.remotes[0] = Remote::new("cluster2").with_network("net work")
                },
                expect: Problem("cluster2", NetworkInvalid),
            },
            Case {
                name: "a network that contradicts the declared one",
                change: |opts, read| {
                    facts_of(read, 1).istiod_network = Some("west".into());
                    opts.remotes[0] = Remote::new("cluster2").with_network("east");
                },
                expect: Problem("cluster2", NetworkContradictsDeclared),
            },
            Case {
                name: "a remote on the primary's network, a network each asked for",
                change: |opts, read| {
                    opts.networks = Some(Networks::Different);
                    facts_of(read, 0).istiod_network = Some("flat".into());
                    facts_of(read, 1).istiod_network = Some("flat".into());
                },
                expect: Problem("cluster2", SameNetwork),
            },
            Case {
                name: "both clusters declare one network: the one-network model",
                change: |_, read| {
                    facts_of(read, 0).istiod_network = Some("flat".into());
                    facts_of(read, 1).istiod_network = Some("flat".into());
                },
                expect: Clean(["cluster1", "cluster2"], ["flat", "flat"]),
            },
            Case {
                name: "one network asked for, none declared: the primary's default",
                change: |opts, _| opts.networks = Some(Networks::One),
                expect: Clean(
                    ["cluster1", "cluster2"],
                    ["network-cluster1", "network-cluster1"],
                ),
            },
            Case {
                name: "one network asked for, two declared",
                change: |opts, read| {
                    opts.networks = Some(Networks::One);
                    facts_of(read, 0).istiod_network = Some("east".into());
                    facts_of(read, 1).istiod_network = Some("west".into());
                },
                expect: Problem("cluster2", NetworkContradictsDeclared),
            },
            Case {
                name: "multi-primary: both run istiod, each named by its istiod",
                change: |opts, read| {
                    opts.control_planes = Some(ControlPlanes::MultiPrimary);
                    *facts_of(read, 1) = facts("cluster2", true);
                    facts_of(read, 1).istiod_cluster_id = Some("west".into());
                },
                expect: Clean(["cluster1", "west"], ["network-cluster1", "network-west"]),
            },
            Case {
                name: "multi-primary: the second cluster runs no istiod",
                change: |opts, _| opts.control_planes = Some(ControlPlanes::MultiPrimary),
                expect: Problem("cluster2", IstiodMissing),
            },
            Case {
                name: "multi-primary into a primary-remote mesh",
                change: |opts, read| {
                    opts.control_planes = Some(ControlPlanes::MultiPrimary);
                    *facts_of(read, 1) = facts("cluster2", true);
                    read.remote_secrets = Ok(vec![remote_secret(
                        "istio-remote-secret-cluster3",
                        "cluster3",
                    )]);
                },
                expect: Problem("cluster1", ModelContradicts),
            },
            Case {
                name: "primary-remote into a multi-primary mesh",
                change: |opts, read| {
                    opts.control_planes = Some(ControlPlanes::PrimaryRemote);
                    record_multi_primary(facts_of(read, 0));
                },
                expect: Problem("cluster1", ModelContradicts),
            },
            Case {
                name: "a primary of a multi-primary mesh joined as a remote",
                change: |_, read| record_multi_primary(facts_of(read, 1)),
                expect: Problem("cluster2", ModelContradicts),
            },
            Case {
                name: "a multi-primary member the join does not name",
                change: |opts, read| {
                    opts.control_planes = Some(ControlPlanes::MultiPrimary);
                    *facts_of(read, 1) = facts("cluster2", true);
                    record_multi_primary(facts_of(read, 0));
                    read.remote_secrets = Ok(vec![remote_secret(
                        "istio-remote-secret-cluster3",
                        "cluster3",
                    )]);
                },
                expect: Problem("cluster1", PeerWithoutContext),
            },
            Case {
                name: "two contexts of one cluster",
                change: |_, read| facts_of(read, 1).kube_system_uid = Some("uid-cluster1".into()),
                expect: Problem("cluster2", SameCluster),
            },
            Case {
                name: "the caller's input problems do not hide the judgement's",
                change: |opts, _| {
                    opts.input_problems.push(crate::Problem::new(
                        "cluster1",
                        GatewayAddressInvalid,
                        "gateway address \"x,y\" has host \"x,y\"",
                    ));
                    opts.remotes[0] = Remote::new("cluster2").with_network("net work");
                },
                expect: Problem("cluster2", NetworkInvalid),
            },
            Case {
                name: "a gateway address the caller could not parse",
                change: |opts, _| {
                    opts.input_problems.push(crate::Problem::new(
                        "cluster2",
                        GatewayAddressInvalid,
                        "gateway address \"x,y\" has host \"x,y\"",
                    ))
                },
                expect: Problem("cluster2", GatewayAddressInvalid),
            },
            // --- certificates ------------------------------------------------------
            Case {
                name: "an invalid bundle",
                change: |opts, _| {
                    let mut files = intermediates()[0][1].files();
                    files.cert_chain = None;
                    opts.remotes[0] = Remote::new("cluster2").with_certs(CaBundle::from_pem(files));
                },
                expect: Problem("cluster2", BundleInvalid),
            },
            Case {
                name: "no cacerts and no bundle",
                change: |_, read| facts_of(read, 1).cacerts = None,
                expect: Problem("cluster2", CertsMissing),
            },
            Case {
                name: "a stored cacerts without a readable root",
                change: |opts, read| {
                    facts_of(read, 1).cacerts = Some(cacerts(None));
                    opts.remotes[0] = Remote::new("cluster2").with_certs(bundle(0, 1));
                },
                expect: Problem("cluster2", StoredCacertsUnreadable),
            },
            Case {
                name: "a bundle with another root than the stored one",
                change: |opts, _| {
                    opts.remotes[0] = Remote::new("cluster2").with_certs(bundle(1, 1));
                },
                expect: Problem("cluster2", StoredRootDiffers),
            },
            Case {
                name: "clusters storing different roots",
                change: |_, read| facts_of(read, 1).cacerts = Some(cacerts(Some(&root_pem(1)))),
                expect: Problem("-", RootsDiffer),
            },
            // --- helm (--install) --------------------------------------------------
            Case {
                name: "helm does not run",
                change: |opts, read| {
                    installing(opts, read);
                    read.install.as_mut().unwrap().helm = Err(Error::Install {
                        cluster: "-".into(),
                        what: "running helm".into(),
                        reason: "helm was not found".into(),
                    });
                },
                expect: Problem("-", HelmUnusable),
            },
            Case {
                name: "no charts",
                change: |opts, read| {
                    installing(opts, read);
                    let missing = crate::install::Charts::find("/no/such/charts".as_ref());
                    read.install.as_mut().unwrap().charts = missing;
                },
                expect: Problem("-", ChartsMissing),
            },
            Case {
                name: "a values file that does not exist",
                change: |opts, read| {
                    installing(opts, read);
                    let install = opts.install.as_mut().unwrap();
                    install.values_files = vec!["/no/such/values.yaml".into()];
                    read.install.as_mut().unwrap().inputs = install::check_inputs(install);
                },
                expect: Problem("-", ValuesFileMissing(ValuesFor::ControlPlane)),
            },
            Case {
                name: "a setting helm would not read",
                change: |opts, read| {
                    installing(opts, read);
                    let install = opts.install.as_mut().unwrap();
                    install.gateway_set = vec!["a=1,oops".into()];
                    read.install.as_mut().unwrap().inputs = install::check_inputs(install);
                },
                expect: Problem("-", SetInvalid(ValuesFor::Gateway)),
            },
            Case {
                name: "a release of ours in another helm operation",
                change: |opts, read| {
                    installing(opts, read);
                    release(read, 0, "istiod", "pending-upgrade");
                },
                expect: Problem("cluster1", HelmReleaseStuck),
            },
            Case {
                name: "a release of ours pending-install, perhaps right now",
                change: |opts, read| {
                    installing(opts, read);
                    release(read, 1, "istio-base", "pending-install");
                },
                expect: Problem("cluster2", HelmReleasePending),
            },
            // --- objects -----------------------------------------------------------
            Case {
                name: "a cross-network Gateway somebody else made that does not do the job",
                change: |_, read| {
                    let mut other = DynamicObject::new(
                        cluster::CROSS_NETWORK_GATEWAY,
                        &cluster::gateway_resource("v1"),
                    );
                    other.data = serde_json::json!({"spec": {"selector": {"app": "other"}}});
                    found(read, 1, other);
                },
                expect: Problem("cluster2", ForeignObject),
            },
            // --- credentials -------------------------------------------------------
            Case {
                name: "a plain http server",
                change: |_, read| {
                    read.credentials[0] = Err(mesh_kubeconfig::Error::PlainHttp {
                        server: "http://10.0.0.2:6443".into(),
                    })
                },
                expect: Problem("cluster2", PlainHttp),
            },
            Case {
                name: "a context that skips TLS verification and no CA",
                change: |_, read| {
                    read.credentials[0] = Err(mesh_kubeconfig::Error::UnverifiedCa {
                        context: "cluster2".into(),
                        server: "https://10.0.0.2:6443".into(),
                    })
                },
                expect: Problem("cluster2", UnverifiedCa),
            },
            Case {
                name: "a server URL that is none",
                change: |_, read| {
                    read.credentials[0] = Err(mesh_kubeconfig::Error::InvalidServer {
                        context: "cluster2".into(),
                        reason: "no host".into(),
                    })
                },
                expect: Problem("cluster2", CredentialsInvalid),
            },
        ]
    }

    /// `object` found in cluster `i` under its name.
    fn found(read: &mut Read, i: usize, object: DynamicObject) {
        let cluster = read.clusters[i].as_mut().expect("read");
        cluster.istio_objects.push(FoundObject {
            resource: cluster::gateway_resource("v1"),
            name: object.metadata.name.clone().unwrap_or_default(),
            found: Ok(Some(object)),
        });
    }

    /// The flags of `kubectl mesh join`: the library's messages name none.
    const FLAGS: &[&str] = &[
        "--install",
        "--cluster-name",
        "--network",
        "--remote-network",
        "--certs",
        "--replace-cacerts",
        "--repair-pending",
        "--helm ",
        "--istio-charts",
        "--set",
        "--values",
        "--gateway-address",
        "--primary",
    ];

    #[test]
    fn every_case_is_judged_as_expected() {
        let mut failures = Vec::new();
        for case in cases() {
            let (mut opts, mut read) = healthy();
            (case.change)(&mut opts, &mut read);
            let judged = judge(&read, &opts);
            let problems: Vec<String> = judged
                .problems
                .iter()
                .map(|p| format!("{} [{}] {}", p.cluster, p.kind, p.message))
                .collect();
            match case.expect {
                Expect::Clean(names, networks) => {
                    if !judged.problems.is_empty()
                        || judged.names != names
                        || judged.networks != networks
                    {
                        failures.push(format!(
                            "{}: names {:?}, networks {:?}, problems {problems:#?}",
                            case.name, judged.names, judged.networks
                        ));
                    }
                }
                Expect::Problem(cluster, kind) => {
                    if !judged
                        .problems
                        .iter()
                        .any(|p| p.cluster == cluster && p.kind == kind)
                    {
                        failures.push(format!(
                            "{}: no {kind} for {cluster} in {problems:#?}",
                            case.name
                        ));
                    }
                }
            }
            for p in &judged.problems {
                let from_library = p.kind != ProblemKind::GatewayAddressInvalid
                    && !matches!(
                        p.kind,
                        ProblemKind::PlainHttp
                            | ProblemKind::UnverifiedCa
                            | ProblemKind::CredentialsInvalid
                    );
                if let Some(flag) = FLAGS.iter().find(|f| p.message.contains(*f))
                    && from_library
                {
                    failures.push(format!(
                        "{}: a message names {flag}: {}",
                        case.name, p.message
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }

    /// Every kind join's preflight can produce has a case (unjoin's have their own tests).
    #[test]
    fn every_problem_kind_has_a_case() {
        let covered: Vec<ProblemKind> = cases()
            .iter()
            .filter_map(|c| match c.expect {
                Expect::Problem(_, kind) => Some(kind),
                Expect::Clean(..) => None,
            })
            .collect();
        // A new kind does not compile here until it is placed: judged, or unjoin's (or rotate's).
        let judged = |kind: ProblemKind| match kind {
            ProblemKind::LinkedUnderOtherName | ProblemKind::NotLinked => false,
            ProblemKind::HandMadeLink => false,
            ProblemKind::ClusterUnreadable
            | ProblemKind::AccessDenied
            | ProblemKind::IstioMissing
            | ProblemKind::CrdsMissing
            | ProblemKind::IstiodMissing
            | ProblemKind::NameInvalid
            | ProblemKind::NameIsPrimarys
            | ProblemKind::NameGivenTwice
            | ProblemKind::NameTaken
            | ProblemKind::ClusterIdMismatch
            | ProblemKind::NetworkInvalid
            | ProblemKind::NetworkContradictsDeclared
            | ProblemKind::SameNetwork
            | ProblemKind::SameCluster
            | ProblemKind::GatewayAddressInvalid
            | ProblemKind::BundleInvalid
            | ProblemKind::CertsMissing
            | ProblemKind::StoredCacertsUnreadable
            | ProblemKind::StoredRootDiffers
            | ProblemKind::RootsDiffer
            | ProblemKind::HelmReleaseStuck
            | ProblemKind::HelmReleasePending
            | ProblemKind::ForeignObject
            | ProblemKind::HelmUnusable
            | ProblemKind::ChartsMissing
            | ProblemKind::ValuesFileMissing(_)
            | ProblemKind::SetInvalid(_)
            | ProblemKind::RemoteSecretsUnreadable
            | ProblemKind::PlainHttp
            | ProblemKind::UnverifiedCa
            | ProblemKind::CredentialsInvalid
            | ProblemKind::DuplicateLinks
            | ProblemKind::LinkBroken
            | ProblemKind::LinkNamedOtherwise
            | ProblemKind::ModelContradicts
            | ProblemKind::PeerWithoutContext => true,
        };
        let ids: Vec<&str> = covered.iter().map(|k| k.id()).collect();
        for kind in ALL {
            if judged(*kind) {
                assert!(ids.contains(&kind.id()), "no case for {kind}");
            }
        }
        let mut unique: Vec<&str> = ALL.iter().map(|k| k.id()).collect();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ALL.len() - 2, "ids are unique (per variant)");
        assert!(
            unique
                .iter()
                .all(|id| id.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
        );
    }

    /// Every kind (both values of the ones that carry [`ValuesFor`]).
    const ALL: &[ProblemKind] = &[
        ProblemKind::ClusterUnreadable,
        ProblemKind::AccessDenied,
        ProblemKind::IstioMissing,
        ProblemKind::CrdsMissing,
        ProblemKind::IstiodMissing,
        ProblemKind::NameInvalid,
        ProblemKind::NameIsPrimarys,
        ProblemKind::NameGivenTwice,
        ProblemKind::NameTaken,
        ProblemKind::ClusterIdMismatch,
        ProblemKind::NetworkInvalid,
        ProblemKind::NetworkContradictsDeclared,
        ProblemKind::SameNetwork,
        ProblemKind::SameCluster,
        ProblemKind::GatewayAddressInvalid,
        ProblemKind::BundleInvalid,
        ProblemKind::CertsMissing,
        ProblemKind::StoredCacertsUnreadable,
        ProblemKind::StoredRootDiffers,
        ProblemKind::RootsDiffer,
        ProblemKind::HelmReleaseStuck,
        ProblemKind::HelmReleasePending,
        ProblemKind::ForeignObject,
        ProblemKind::HelmUnusable,
        ProblemKind::ChartsMissing,
        ProblemKind::ValuesFileMissing(ValuesFor::ControlPlane),
        ProblemKind::ValuesFileMissing(ValuesFor::Gateway),
        ProblemKind::SetInvalid(ValuesFor::ControlPlane),
        ProblemKind::SetInvalid(ValuesFor::Gateway),
        ProblemKind::RemoteSecretsUnreadable,
        ProblemKind::PlainHttp,
        ProblemKind::UnverifiedCa,
        ProblemKind::CredentialsInvalid,
        ProblemKind::LinkedUnderOtherName,
        ProblemKind::NotLinked,
        ProblemKind::DuplicateLinks,
        ProblemKind::LinkBroken,
        ProblemKind::LinkNamedOtherwise,
        ProblemKind::HandMadeLink,
    ];
}
