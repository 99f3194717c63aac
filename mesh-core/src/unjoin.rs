//! `unjoin`: take one remote out of the primary's mesh, removing what `join` added for
//! it and nothing else; with `purge`, also the remote's mesh setup.
//!
//! What goes, always (the link):
//! - in the primary, the remote secret data keys of the cluster name: the key `<name>`,
//!   or the only key of a Secret named `istio-remote-secret-<name>` or annotated
//!   `networking.istio.io/cluster=<name>`. A Secret goes whole only when no other
//!   cluster's key is left in it; otherwise only those keys go (a merge patch carrying the
//!   resourceVersion read, so a concurrent change makes it fail rather than be lost);
//! - in the primary, the cluster from `meshNetworks` (and its network, when that leaves
//!   it without endpoints);
//! - in the remote, the token Secret join created (`kubernetes.io/service-account-token`,
//!   labelled `app.kubernetes.io/managed-by=kubectl-mesh`, annotated for the reader
//!   ServiceAccount) — unless another remote secret in the primary, or another primary,
//!   still uses it (below).
//!
//! What also goes with `purge` (the remote's membership), each only when kubectl-mesh made
//! it (its ownership label `app.kubernetes.io/managed-by=kubectl-mesh`; namespace keys:
//! kubectl-mesh's field manager owns them):
//! - `cacerts`, the cross-network Gateway, and the `topology.istio.io/network` label and
//!   `topology.istio.io/controlPlaneClusters` annotation on the Istio namespace (released
//!   by server-side apply, so a value another manager also set stays);
//! - the reader ServiceAccount, its ClusterRoleBinding and (when nothing else binds it)
//!   the ClusterRole — unless another remote secret's token belongs to that ServiceAccount;
//! - and when no remote secret is left in the primary and `meshNetworks` lists no other
//!   cluster, the primary's own membership the same way: its `meshNetworks` entry, network
//!   label, cross-network Gateway, `cacerts`, and the `istiod-gateway`/`istiod-vs` pair
//!   `join --install` exposes istiod with. (Istio itself, installed by `join --install`,
//!   stays: its helm releases are the user's to keep or `helm uninstall`.)
//!
//! Only what is provably this remote's goes: a remote secret key for the name, else its
//! `meshNetworks` entry or the remote's control-plane annotation (set by kubectl-mesh)
//! naming this primary — what a join that stopped early leaves. With none of these,
//! unjoin removes nothing: a remote linked under another cluster name is an error naming
//! that name, and `--purge` refuses, listing what kubectl-mesh made there with the command
//! that removes each by hand.
//!
//! Shared with other primaries: when the remote's control-plane annotation names other
//! primaries, their remote secrets are read (the kubeconfig context named like each
//! cluster ID); while one uses the reader account — or cannot be found or read — the
//! token Secret, the reader account and the remote's membership stay, with a warning.
//!
//! An unreachable remote (the cluster is gone) does not stop the primary's side: what
//! could not be cleaned there is reported as warnings.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{DynamicObject, ObjectMeta};
use kube::{Api, Client};
use mesh_kubeconfig::{Kubeconfigs, ReaderAccount};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::cluster::{
    self, CACERTS, CONTROL_PLANE_CLUSTERS_ANNOTATION, CROSS_NETWORK_GATEWAY, MESH_CONFIG_MAP,
    NETWORK_LABEL, Permissions, Role, default_cluster_id,
};
use crate::error::{Error, Problem, ProblemKind, Result, kube};
use crate::links::{self, TokenSubject};
use crate::networks::{MeshNetworks, read_mesh_networks};
use crate::plan::{Change, Steps};
use crate::progress::{EventKind, Progress};

const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";

/// What to unjoin.
#[derive(Debug, Clone)]
pub struct UnjoinOptions {
    /// The Istio namespace (default `istio-system`).
    pub namespace: String,
    /// The primary's context.
    pub primary: String,
    /// The remote's context.
    pub remote: String,
    /// The remote's cluster ID; default: the remote context as a DNS-1123 label.
    pub cluster_name: Option<String>,
    /// Also remove the remote's mesh setup (see the module documentation).
    pub purge: bool,
    /// Make no mutating request; report what would change.
    pub dry_run: bool,
    /// Bound on each API request.
    pub request_timeout: Option<Duration>,
    /// Raised by the caller on SIGINT/SIGTERM: no new step starts, and unjoin fails
    /// with [`Error::Interrupted`].
    pub interrupt: crate::Interrupt,
}

impl UnjoinOptions {
    /// Options for unjoining `remote` from `primary`, defaults elsewhere.
    ///
    /// ```
    /// let opts = mesh_core::UnjoinOptions::new("cluster1", "cluster2");
    /// assert_eq!(opts.cluster_name(), "cluster2");
    /// assert!(!opts.purge);
    /// ```
    pub fn new(primary: &str, remote: &str) -> UnjoinOptions {
        UnjoinOptions {
            namespace: "istio-system".into(),
            primary: primary.into(),
            remote: remote.into(),
            cluster_name: None,
            purge: false,
            dry_run: false,
            request_timeout: None,
            interrupt: crate::Interrupt::default(),
        }
    }

    /// The cluster ID the remote secret is found by: [`UnjoinOptions::cluster_name`]
    /// if set, else the remote's [`default_cluster_id`].
    pub fn cluster_name(&self) -> String {
        self.cluster_name
            .clone()
            .unwrap_or_else(|| default_cluster_id(Role::Remote, &self.remote, None))
    }
}

/// What an unjoin did.
#[derive(Debug, Clone, Serialize)]
pub struct UnjoinSummary {
    /// The primary's context.
    pub primary: String,
    /// The remote's context.
    pub remote: String,
    /// The cluster ID.
    pub cluster_name: String,
    /// Whether the remote could be reached (if not, only the primary was cleaned).
    pub remote_reachable: bool,
    /// Everything removed (or, in a dry run, that would be). Empty: it was not joined.
    pub changes: Vec<Change>,
    /// Things the user should know, e.g. what was kept and why.
    pub warnings: Vec<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

type Run<'a> = crate::plan::Run<'a, UnjoinOptions>;

impl Run<'_> {
    /// Deletes `name` unless this is a dry run; the object must still be at
    /// `resource_version` (check-then-act). Gone already counts as deleted.
    async fn delete<K>(&self, api: &Api<K>, ctx: &str, what: &str, meta: &ObjectMeta) -> Result<()>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        if self.opts.dry_run {
            return Ok(());
        }
        cluster::delete_checked(api, ctx, what, meta).await
    }

    /// Deletes `name` (`what`, for messages) when kubectl-mesh made it; one somebody
    /// else made is kept, with a warning under `step` (none: silently). Returns whether
    /// it was deleted (in a dry run: would be).
    async fn delete_if_ours<K>(
        &self,
        api: &Api<K>,
        ctx: &str,
        step: Option<&str>,
        what: &str,
        name: &str,
    ) -> Result<bool>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        match find(api, ctx, what, name).await? {
            Found::Ours(object) => {
                self.delete(api, ctx, what, object.meta()).await?;
                Ok(true)
            }
            Found::Foreign => {
                if let Some(step) = step {
                    let kept = format!("kept {what}: kubectl-mesh did not create it");
                    self.warn(ctx, step, kept);
                }
                Ok(false)
            }
            Found::Missing => Ok(false),
        }
    }
}

/// An object unjoin may remove, as read.
enum Found<K> {
    /// It carries kubectl-mesh's ownership label: kubectl-mesh made it.
    Ours(K),
    /// Somebody else made it: it stays.
    Foreign,
    /// There is none.
    Missing,
}

/// Reads `name` (`what`, for messages) and says whether kubectl-mesh made it.
async fn find<K>(api: &Api<K>, ctx: &str, what: &str, name: &str) -> Result<Found<K>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let found = api
        .get_opt(name)
        .await
        .map_err(|e| kube(ctx, format!("reading {what}"), e))?;
    Ok(match found {
        Some(object) if links::managed_by_us(object.meta()) => Found::Ours(object),
        Some(_) => Found::Foreign,
        None => Found::Missing,
    })
}

/// Takes the remote out of the primary's mesh: the primary's side first (so istiod
/// stops using the link), then the remote's. See the module documentation for exactly
/// what goes.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use mesh_core::{NoProgress, UnjoinOptions, unjoin};
/// use mesh_kubeconfig::{KubeconfigSource, Kubeconfigs};
///
/// let kubeconfigs = Kubeconfigs::load(&KubeconfigSource::Default)?;
/// let summary = unjoin(&kubeconfigs, &UnjoinOptions::new("cluster1", "cluster2"), &NoProgress).await?;
/// if summary.changes.is_empty() {
///     eprintln!("cluster2 was not joined");
/// }
/// # Ok(()) }
/// ```
pub async fn unjoin(
    kubeconfigs: &Kubeconfigs,
    opts: &UnjoinOptions,
    progress: &dyn Progress,
) -> Result<UnjoinSummary> {
    let primary = kubeconfigs
        .client(&opts.primary, opts.request_timeout)
        .await?;
    if multi_primary_member(&primary, &opts.primary, &opts.namespace).await? {
        return unjoin_member(kubeconfigs, opts, progress).await;
    }
    unjoin_link(kubeconfigs, opts, progress, true).await
}

/// Whether the cluster's Istio namespace records membership of a multi-primary mesh.
async fn multi_primary_member(client: &Client, ctx: &str, ns: &str) -> Result<bool> {
    let api: Api<Namespace> = Api::all(client.clone());
    let namespace = api
        .get_opt(ns)
        .await
        .map_err(|e| kube(ctx, "reaching the API server", e))?;
    Ok(cluster::recorded_model(namespace.as_ref()) == Some(cluster::ControlPlanes::MultiPrimary))
}

/// Takes a member out of a multi-primary mesh, every direction of its links: first
/// every other member's link to it (so no istiod keeps reading it), then its links to
/// every other member. Each direction is one primary-remote unjoin ([`unjoin_link`]);
/// going back, the other member's reader credentials stay while another member still
/// reads it with them. When one member remains, the mesh's record goes from both.
async fn unjoin_member(
    kubeconfigs: &Kubeconfigs,
    opts: &UnjoinOptions,
    progress: &dyn Progress,
) -> Result<UnjoinSummary> {
    let ns = opts.namespace.as_str();
    let pctx = opts.primary.as_str();
    let rctx = opts.remote.as_str();
    let primary = kubeconfigs.client(pctx, opts.request_timeout).await?;
    let facts = cluster::read_facts(&primary, pctx, ns, Permissions::ReadOnly).await?;
    facts.require_readable()?;
    let primary_id = default_cluster_id(Role::Primary, pctx, facts.istiod_cluster_id.as_deref());
    // The members: the primary and every cluster it reads, each with the user's context.
    let contexts = links::contexts_by_server(kubeconfigs);
    let secrets = links::remote_secrets(&primary, pctx, ns).await?;
    let mut members = Vec::new();
    let mut problems = Vec::new();
    for link in links::links(&secrets) {
        let server = links::link_server(&link.kubeconfig);
        let context = server.as_deref().and_then(|server| {
            contexts
                .iter()
                .find(|(_, s)| links::same_server(s, server))
                .map(|(c, _)| c.clone())
        });
        match context {
            Some(context) => members.push((context, link.key)),
            None => problems.push(Problem::new(
                pctx,
                ProblemKind::PeerWithoutContext,
                format!(
                    "{pctx} reads cluster {:?} (remote Secret {ns}/{}, server {}), a member of its multi-primary mesh that no context of the kubeconfig reaches: its links to the cluster leaving cannot be removed; add a context for it",
                    link.key,
                    link.secret,
                    server.as_deref().unwrap_or("unknown")
                ),
            )),
        }
    }
    let leaving = match &opts.cluster_name {
        Some(name) => members.iter().find(|(_, id)| id == name),
        None => members.iter().find(|(c, _)| c == rctx),
    }
    .cloned();
    let Some((rctx, rid)) = leaving else {
        problems.push(Problem::new(
            rctx,
            ProblemKind::NotLinked,
            format!(
                "{pctx}'s multi-primary mesh has no member {}: {pctx} reads {}",
                opts.cluster_name.as_deref().unwrap_or(rctx),
                members
                    .iter()
                    .map(|(c, id)| format!("{id} (context {c})"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
        return Err(Error::Preflight { problems });
    };
    if !problems.is_empty() {
        return Err(Error::Preflight { problems });
    }
    let mut others: Vec<(String, String)> = vec![(pctx.to_owned(), primary_id)];
    others.extend(members.into_iter().filter(|(c, _)| *c != rctx));
    let last = others.len() == 1;

    let mut changes = Vec::new();
    let mut warnings = Vec::new();
    let mut remote_reachable = true;
    // Every other member stops reading the leaving cluster.
    for (octx, _) in &others {
        let done = unjoin_link(
            kubeconfigs,
            &UnjoinOptions {
                primary: octx.clone(),
                remote: rctx.clone(),
                cluster_name: Some(rid.clone()),
                ..opts.clone()
            },
            progress,
            true,
        )
        .await?;
        remote_reachable &= done.remote_reachable;
        changes.extend(done.changes);
        warnings.extend(done.warnings);
    }
    // The leaving cluster stops reading them; their reader credentials stay while
    // another member reads them (all but the last one left).
    for (octx, oid) in &others {
        let done = unjoin_link(
            kubeconfigs,
            &UnjoinOptions {
                primary: rctx.clone(),
                remote: octx.clone(),
                cluster_name: Some(oid.clone()),
                purge: opts.purge && last,
                ..opts.clone()
            },
            progress,
            last,
        )
        .await?;
        changes.extend(done.changes);
        warnings.extend(done.warnings);
    }
    // The record of the model goes from the leaving cluster, and from the last member.
    let run = Run {
        opts,
        steps: Steps::new(opts.dry_run, progress).interruptible(&opts.interrupt),
    };
    let mut unrecord = vec![rctx.clone()];
    if last {
        unrecord.push(others[0].0.clone());
    }
    for ctx in &unrecord {
        run.step_listing(ctx, "model", async {
            let client = kubeconfigs.client(ctx, opts.request_timeout).await?;
            forget_model(&run, &client, ctx).await
        })
        .await?;
    }
    let (more, more_warnings) = run.steps.finish();
    changes.extend(more);
    warnings.extend(more_warnings);
    Ok(UnjoinSummary {
        primary: pctx.to_owned(),
        remote: rctx,
        cluster_name: rid,
        remote_reachable,
        changes,
        warnings,
        dry_run: opts.dry_run,
    })
}

/// Removes the multi-primary record ([`cluster::MODEL_ANNOTATION`]) from the cluster's
/// Istio namespace, conditionally.
async fn forget_model(run: &Run<'_>, client: &Client, ctx: &str) -> Result<Vec<String>> {
    let ns = run.opts.namespace.as_str();
    let api: Api<Namespace> = Api::all(client.clone());
    let written = cluster::update(
        &api,
        ctx,
        &format!("namespace {ns}"),
        ns,
        run.opts.dry_run,
        |current: Option<&Namespace>| {
            let Some(current) = current else {
                return Ok(None);
            };
            let meta = &current.metadata;
            if !meta
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(cluster::MODEL_ANNOTATION))
            {
                return Ok(None);
            }
            // Server-side apply: what kubectl-mesh owns and still wants is applied again;
            // the record, left out, goes.
            let kept = |field: &str, values: Option<&BTreeMap<String, String>>| {
                let owned = links::owned_metadata_keys(meta, field);
                let kept: BTreeMap<String, String> = values
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| owned.contains(k) && *k != cluster::MODEL_ANNOTATION)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                (!kept.is_empty()).then_some(kept)
            };
            let desired = Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.to_owned()),
                    labels: kept("labels", meta.labels.as_ref()),
                    annotations: kept("annotations", meta.annotations.as_ref()),
                    ..Default::default()
                },
                ..Default::default()
            };
            Ok(Some((desired, ())))
        },
    )
    .await?;
    Ok(written
        .map(|_| {
            vec![format!(
                "removed annotation {} from namespace {ns} in {ctx}",
                cluster::MODEL_ANNOTATION
            )]
        })
        .unwrap_or_default())
}

/// One link: the remote out of the primary's mesh, the primary's side first (so istiod
/// stops using the link), then — with `remote_side` — the remote's.
async fn unjoin_link(
    kubeconfigs: &Kubeconfigs,
    opts: &UnjoinOptions,
    progress: &dyn Progress,
    remote_side: bool,
) -> Result<UnjoinSummary> {
    let run = Run {
        opts,
        steps: Steps::new(opts.dry_run, progress).interruptible(&opts.interrupt),
    };
    let ns = opts.namespace.as_str();
    let pctx = opts.primary.as_str();
    let rctx = opts.remote.as_str();
    let mut name = opts.cluster_name();
    if pctx == rctx {
        return Err(Error::Preflight {
            problems: vec![crate::Problem {
                cluster: rctx.to_owned(),
                kind: crate::ProblemKind::SameCluster,
                message: "the remote is the primary; name the remote cluster's context".into(),
            }],
        });
    }

    // Read: the primary must answer; the remote may be gone.
    let started = Instant::now();
    run.emit(pctx, "preflight", EventKind::Started, started);
    let primary = kubeconfigs.client(pctx, opts.request_timeout).await?;
    // The primary, read once: istiod's cluster ID, meshNetworks (the ConfigMap the
    // meshNetworks step then changes without reading it again), and the remote secrets.
    let facts = cluster::read_facts(&primary, pctx, ns, Permissions::ReadOnly).await?;
    facts.require_readable()?;
    let secrets = links::remote_secrets(&primary, pctx, ns).await?;
    // No cluster name given and no link under the default one: the one link whose
    // kubeconfig names the remote's API server is its link, whatever its name, when it
    // was made by hand (one join adopted, like the guide's n2-k8s-secret).
    if opts.cluster_name.is_none()
        && !matching_secrets(&secrets, &name)
            .iter()
            .any(|m| m.whole || !m.keys.is_empty())
        && let Ok(remote_server) = kubeconfigs.resolve(rctx).map(|r| r.server)
    {
        let reaching: Vec<links::Link> = links::links(&secrets)
            .into_iter()
            .filter(|l| {
                links::link_server(&l.kubeconfig)
                    .is_some_and(|s| links::same_server(&s, &remote_server))
            })
            .collect();
        let ours = |link: &links::Link| {
            secrets.iter().any(|s| {
                s.metadata.name.as_deref() == Some(link.secret.as_str())
                    && links::managed_by_us(&s.metadata)
            })
        };
        // Only a link made by hand, and never for --purge: a cluster name given to
        // kubectl-mesh, or a purge, must be named (a typo must not purge a mesh).
        if let [link] = reaching.as_slice()
            && !ours(link)
            && !opts.purge
        {
            run.warn(
                pctx,
                "preflight",
                format!(
                    "{rctx} is linked by remote Secret {ns}/{} under cluster ID {} (made by hand): unjoining that link",
                    link.secret, link.key
                ),
            );
            name = link.key.clone();
        }
    }
    run.emit(pctx, "preflight", EventKind::Unchanged, started);
    run.emit(rctx, "preflight", EventKind::Started, started);
    // The remote's Istio namespace comes with reaching it.
    let (remote, remote_ns) = match reach(kubeconfigs, rctx, ns, opts.request_timeout).await {
        Ok((client, namespace)) => {
            run.emit(rctx, "preflight", EventKind::Unchanged, started);
            (Some(client), namespace)
        }
        Err(err) => {
            run.warn(
                rctx,
                "preflight",
                format!(
                    "cannot reach it ({err}); removing the primary's side only — its token Secret{} stay{}",
                    if opts.purge { ", cacerts, labels, Gateway and reader account" } else { "" },
                    if opts.purge { "" } else { "s" },
                ),
            );
            (None, None)
        }
    };

    // Which secrets (and which of their keys) are this cluster's, and which tokens other
    // links keep using.
    let ours = matching_secrets(&secrets, &name);
    let is_ours = |secret: &str, key: &str| {
        ours.iter().any(|m| {
            m.secret.metadata.name.as_deref() == Some(secret) && m.keys.iter().any(|k| k == key)
        })
    };
    let all_links = links::links(&secrets);
    let mut our_tokens = Vec::new();
    let mut other_tokens: Vec<(String, SecretString)> = Vec::new();
    for link in &all_links {
        match (
            links::kubeconfig_token(&link.kubeconfig),
            is_ours(&link.secret, &link.key),
        ) {
            (Some(t), true) => our_tokens.push(t),
            (Some(t), false) => other_tokens.push((format!("{}/{}", link.secret, link.key), t)),
            (None, _) => {}
        }
    }
    let our_subject = our_tokens.iter().find_map(links::token_subject);
    let last_link = all_links.iter().all(|l| is_ours(&l.secret, &l.key));
    let linked = ours.iter().any(|m| !m.keys.is_empty() || m.whole);
    for m in ours.iter().filter(|m| m.keys.is_empty() && !m.whole) {
        run.warn(
            pctx,
            "remote secret",
            format!(
                "kept Secret {ns}/{}: it is marked for cluster {name} but holds only the keys of other clusters ({})",
                m.secret.metadata.name.as_deref().unwrap_or_default(),
                m.secret.data.iter().flat_map(|d| d.keys().cloned()).collect::<Vec<_>>().join(", ")
            ),
        );
    }

    // What proves this remote was joined to this primary when no link names it: its
    // meshNetworks entry, or the remote's control-plane annotation (set by kubectl-mesh)
    // naming this primary — a join that stopped before its last step leaves both.
    let primary_id = default_cluster_id(Role::Primary, pctx, facts.istiod_cluster_id.as_deref());
    let networks = facts
        .mesh_config
        .as_ref()
        .map(|cm| read_mesh_networks(cm, pctx, ns, "unjoin"))
        .transpose()?;
    let in_mesh_networks = networks
        .as_ref()
        .is_some_and(|n| n.network_of(&name).is_some());
    let control_planes = remote_ns
        .as_ref()
        .map(|n| crate::join::control_plane_clusters(Some(&n.metadata)))
        .unwrap_or_default();
    let marked_for_primary = remote_ns.as_ref().is_some_and(|n| {
        control_planes.contains(&primary_id)
            && links::owned_metadata_keys(&n.metadata, "annotations")
                .iter()
                .any(|k| k == CONTROL_PLANE_CLUSTERS_ANNOTATION)
    });

    // The remote's reader account, and whether another link of this primary reaches it.
    let account = match &our_subject {
        Some(s) if s.namespace == ns => ReaderAccount::new(ns, s.name.clone()),
        _ => ReaderAccount::istio_default(ns),
    };
    let sa_uid = match &remote {
        Some(client) => read_sa_uid(client, rctx, &account).await?,
        None => None,
    };
    if !linked && let Some(client) = &remote {
        let elsewhere = links_reaching(client, rctx, &other_tokens).await?;
        if !elsewhere.is_empty() {
            return Err(Error::Preflight {
                problems: vec![crate::Problem {
                    cluster: pctx.to_owned(),
                    kind: crate::ProblemKind::LinkedUnderOtherName,
                    message: linked_elsewhere(&name, rctx, pctx, &elsewhere),
                }],
            });
        }
    }
    if !linked && !in_mesh_networks && !marked_for_primary {
        // Nothing proves kubectl-mesh's objects there are this link's: purge refuses,
        // listing them, rather than guess.
        if opts.purge {
            let mut problems = Vec::new();
            let lead = not_linked(&name, pctx, rctx, ns, &primary_id);
            if let Some(client) = &remote {
                let version = cluster::gateway_crd_version(client, rctx).await?;
                for cmd in leftovers(client, rctx, ns, false, version.as_deref()).await? {
                    problems.push(crate::Problem {
                        cluster: rctx.to_owned(),
                        kind: crate::ProblemKind::NotLinked,
                        message: cmd,
                    });
                }
            }
            if all_links.is_empty() {
                let version = facts.gateway_crd_version.as_deref();
                for cmd in leftovers(&primary, pctx, ns, true, version).await? {
                    problems.push(crate::Problem {
                        cluster: pctx.to_owned(),
                        kind: crate::ProblemKind::NotLinked,
                        message: cmd,
                    });
                }
            }
            if !problems.is_empty() {
                problems.insert(
                    0,
                    crate::Problem {
                        cluster: pctx.to_owned(),
                        kind: crate::ProblemKind::NotLinked,
                        message: lead,
                    },
                );
                return Err(Error::Preflight { problems });
            }
        }
        let (changes, warnings) = run.steps.finish();
        return Ok(UnjoinSummary {
            primary: pctx.to_owned(),
            remote: rctx.to_owned(),
            cluster_name: name,
            remote_reachable: remote.is_some(),
            changes,
            warnings,
            dry_run: opts.dry_run,
        });
    }

    // The remote secret(s) in the primary.
    run.step_listing(pctx, "remote secret", async {
        let api: Api<Secret> = Api::namespaced(primary.clone(), ns);
        let mut done = Vec::new();
        for m in &ours {
            let sname = m.secret.metadata.name.clone().unwrap_or_default();
            if m.whole {
                run.delete(
                    &api,
                    pctx,
                    &format!("Secret {ns}/{sname}"),
                    &m.secret.metadata,
                )
                .await?;
                done.push(format!("deleted remote Secret {ns}/{sname} in {pctx}"));
            } else if !m.keys.is_empty() {
                if !opts.dry_run {
                    links::remove_keys(&api, pctx, &m.secret, &m.keys, &name).await?;
                }
                done.push(format!(
                    "removed key {} from remote Secret {ns}/{sname} in {pctx} (it keeps the other clusters' keys)",
                    m.keys.join(", ")
                ));
            }
        }
        Ok(done)
    })
    .await?;

    // The primary's own membership goes only with its last remote: no other link, and
    // no other cluster in meshNetworks than the primary and this one.
    let others_in_networks: Vec<String> = networks
        .as_ref()
        .map(MeshNetworks::registries)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| *r != name && *r != primary_id)
        .collect();
    let purge_primary = opts.purge && last_link && others_in_networks.is_empty();
    if opts.purge && last_link && !others_in_networks.is_empty() {
        run.warn(
            pctx,
            "meshNetworks",
            format!(
                "kept {pctx}'s own mesh setup: meshNetworks still lists cluster(s) {}",
                others_in_networks.join(", ")
            ),
        );
    }
    let primary_entry = purge_primary.then_some(primary_id.as_str());
    run.step_listing(pctx, "meshNetworks", async {
        let read = facts.mesh_config.clone();
        remove_from_mesh_networks(&run, &primary, read, &name, primary_entry).await
    })
    .await?;

    // The remote's side (unless another member of a multi-primary mesh still reads it).
    if let Some(remote) = remote.as_ref().filter(|_| remote_side) {
        let same_cluster = match (&our_subject, &sa_uid) {
            (Some(TokenSubject { uid: Some(a), .. }), Some(b)) => a == b,
            _ => true,
        };
        if !same_cluster {
            run.warn(
                rctx,
                "token secret",
                format!(
                    "the removed remote secret's token belongs to another cluster than context {rctx}; nothing was removed there — run unjoin with the remote's own context to clean it"
                ),
            );
        } else {
            // Another primary may use the same reader credentials and the remote's setup.
            let other_primaries: Vec<String> = control_planes
                .iter()
                .filter(|c| **c != primary_id)
                .cloned()
                .collect();
            let shared = used_by_other_primaries(
                kubeconfigs,
                opts,
                &other_primaries,
                &account,
                sa_uid.as_deref(),
            )
            .await;
            let others_use_sa: Vec<String> = other_tokens
                .iter()
                .filter(|(_, t)| {
                    links::token_subject(t).is_some_and(|s| s.uid.is_some() && s.uid == sa_uid)
                })
                .map(|(where_, _)| where_.clone())
                .collect();
            if shared.is_empty() {
                run.step_listing(rctx, "token secret", async {
                    remove_token_secrets(&run, remote, &account, &other_tokens).await
                })
                .await?;
            } else {
                run.warn(
                    rctx,
                    "token secret",
                    format!(
                        "kept ServiceAccount {account}'s token Secret{}: {}",
                        if opts.purge {
                            ", the account, its RBAC and this cluster's cacerts, network label and cross-network Gateway (only this primary leaves its controlPlaneClusters list)"
                        } else {
                            ""
                        },
                        shared.join("; ")
                    ),
                );
            }
            if opts.purge && shared.is_empty() {
                run.step_listing(rctx, "reader account", async {
                    remove_reader_account(&run, remote, &account, &others_use_sa).await
                })
                .await?;
                let version = cluster::gateway_crd_version(remote, rctx).await?;
                let primary_id = Some(primary_id.as_str());
                purge_membership(&run, remote, rctx, primary_id, version.as_deref()).await?;
            } else if opts.purge {
                // This primary's own entry in the remote's control-plane list is ours
                // alone, whoever else still uses the cluster.
                release_network_membership(&run, remote, rctx, Some(primary_id.as_str()), true)
                    .await?;
            }
        }
    }
    if purge_primary {
        let version = facts.gateway_crd_version.as_deref();
        purge_membership(&run, &primary, pctx, None, version).await?;
    } else if opts.purge {
        tracing::info!("other remotes remain in {pctx}: its own mesh setup stays");
    }
    // A link made by hand (one join adopted): say what else was made by hand and stays.
    let by_hand = ours
        .iter()
        .any(|m| (m.whole || !m.keys.is_empty()) && !links::managed_by_us(&m.secret.metadata));
    if by_hand {
        let mut clusters = vec![(pctx, &primary)];
        clusters.extend(remote.as_ref().map(|r| (rctx, r)));
        for (ctx, client) in clusters {
            let account = (ctx == rctx).then_some(&account);
            for kept in made_by_hand(client, ctx, ns, account, opts.purge).await? {
                run.warn(ctx, "made by hand", kept);
            }
        }
    }

    let (changes, warnings) = run.steps.finish();
    Ok(UnjoinSummary {
        primary: pctx.to_owned(),
        remote: rctx.to_owned(),
        cluster_name: name,
        remote_reachable: remote.is_some(),
        changes,
        warnings,
        dry_run: opts.dry_run,
    })
}

/// What somebody made by hand in `ctx` for a mesh link and unjoin keeps, also with
/// `--purge` (which removes only what carries kubectl-mesh's label), one sentence each
/// with the command that removes it: cross-network Gateways of any name, a `cacerts`, and
/// (in the remote) the link's reader ServiceAccount. With `purge`, what purge already
/// reports as kept (`cacerts`, the account, a Gateway of join's name) is left out.
async fn made_by_hand(
    client: &Client,
    ctx: &str,
    ns: &str,
    account: Option<&ReaderAccount>,
    purge: bool,
) -> Result<Vec<String>> {
    let mut kept = Vec::new();
    // What may not be read is not listed: this only informs.
    let listed = match cluster::gateway_crd_version(client, ctx).await? {
        Some(version) => {
            match crate::join::adopt::hand_made_passthrough(client, ctx, ns, &version).await {
                Ok(listed) => listed,
                Err(e) if e.is_forbidden() => Vec::new(),
                Err(e) => return Err(e),
            }
        }
        None => Vec::new(),
    };
    for g in &listed {
        let name = g.metadata.name.clone().unwrap_or_default();
        if purge && name == CROSS_NETWORK_GATEWAY {
            continue;
        }
        kept.push(format!(
            "kept Gateway {ns}/{name} (made by hand; other links may use it): kubectl --context {ctx} -n {ns} delete gateways.networking.istio.io {name}"
        ));
    }
    if !purge {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        if let Found::Foreign =
            find(&secrets, ctx, &format!("Secret {ns}/{CACERTS}"), CACERTS).await?
        {
            kept.push(format!(
                "kept Secret {ns}/{CACERTS} (made by hand): kubectl --context {ctx} -n {ns} delete secret {CACERTS}"
            ));
        }
        if let Some(account) = account {
            let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &account.namespace);
            let what = format!("ServiceAccount {account}");
            if let Found::Foreign = find(&accounts, ctx, &what, &account.name).await? {
                kept.push(format!(
                    "kept {what} (made by hand; the link's token was its): kubectl --context {ctx} -n {} delete serviceaccount {}",
                    account.namespace, account.name
                ));
            }
        }
    }
    Ok(kept)
}

/// A client for `context` that has answered one request: the Istio namespace `ns`
/// (returned with it; `None`: there is none).
async fn reach(
    kubeconfigs: &Kubeconfigs,
    context: &str,
    ns: &str,
    timeout: Option<Duration>,
) -> Result<(Client, Option<Namespace>)> {
    let client = kubeconfigs
        .client(context, timeout.or(Some(Duration::from_secs(10))))
        .await?;
    let namespace = Api::<Namespace>::all(client.clone())
        .get_opt(ns)
        .await
        .map_err(|e| kube(context, "reaching the API server", e))?;
    Ok((client, namespace))
}

/// A remote secret marked for a cluster: by its name (`istio-remote-secret-<name>`), its
/// `networking.istio.io/cluster` annotation, or a data key `<name>`.
#[derive(Debug)]
struct Matched {
    secret: Secret,
    /// The data keys that are this cluster's: the key `<name>`, or the only key of a
    /// Secret named or annotated for it (the guide's `n2-k8s-secret`).
    keys: Vec<String>,
    /// Whether the whole Secret goes: it holds nothing but this cluster's keys.
    whole: bool,
}

/// The remote secrets marked for `name`, each with the keys that are its and whether the
/// whole Secret goes. Keys of other clusters always stay: a Secret annotated for `name`
/// that holds only other clusters' keys is matched with no key and kept.
fn matching_secrets(secrets: &[Secret], name: &str) -> Vec<Matched> {
    let wanted = mesh_kubeconfig::remote_secret_name(name);
    secrets
        .iter()
        .filter_map(|s| {
            let marked = s.metadata.name.as_deref() == Some(wanted.as_str())
                || links::annotated_for(s, name);
            let all: Vec<&String> = s.data.iter().flat_map(|d| d.keys()).collect();
            let mut keys: Vec<String> = all
                .iter()
                .filter(|k| **k == name)
                .map(|k| (*k).clone())
                .collect();
            if keys.is_empty() && marked && all.len() == 1 {
                keys.push(all[0].clone());
            }
            if keys.is_empty() && !marked {
                return None;
            }
            let whole = keys.len() == all.len();
            Some(Matched {
                secret: s.clone(),
                keys,
                whole,
            })
        })
        .collect()
}

/// Which of `links` (`secret/key`, token) carry a token of a ServiceAccount of the
/// remote: the account named in the token's claims exists there with the claimed UID.
async fn links_reaching(
    remote: &Client,
    rctx: &str,
    links: &[(String, SecretString)],
) -> Result<Vec<String>> {
    let mut uids: BTreeMap<(String, String), Option<String>> = BTreeMap::new();
    let mut found = Vec::new();
    for (where_, token) in links {
        let Some(subject) = links::token_subject(token) else {
            continue;
        };
        let Some(uid) = &subject.uid else { continue };
        let key = (subject.namespace.clone(), subject.name.clone());
        if !uids.contains_key(&key) {
            let account = ReaderAccount::new(&subject.namespace, subject.name.clone());
            let uid = read_sa_uid(remote, rctx, &account).await?;
            uids.insert(key.clone(), uid);
        }
        if uids[&key].as_ref() == Some(uid) {
            found.push(where_.clone());
        }
    }
    Ok(found)
}

/// Whether primaries other than this one (`others`: cluster IDs from the remote's
/// control-plane annotation) still use the remote's reader account: each is looked for
/// among the kubeconfig's contexts (the context whose DNS-1123 form is its ID) and its
/// remote secrets read. Returns why the shared objects must stay; empty when none uses
/// them. A primary that cannot be found or read counts as using them.
async fn used_by_other_primaries(
    kubeconfigs: &Kubeconfigs,
    opts: &UnjoinOptions,
    others: &[String],
    account: &ReaderAccount,
    sa_uid: Option<&str>,
) -> Vec<String> {
    let ns = opts.namespace.as_str();
    let rctx = opts.remote.as_str();
    let mut reasons = Vec::new();
    for id in others {
        let contexts: Vec<&str> = kubeconfigs
            .contexts()
            .into_iter()
            .filter(|c| {
                *c != opts.primary && *c != opts.remote && mesh_kubeconfig::dns1123_label(c) == *id
            })
            .collect();
        if contexts.is_empty() {
            reasons.push(format!(
                "{rctx}'s namespace {ns} names control plane {id} too ({CONTROL_PLANE_CLUSTERS_ANNOTATION}) and no context of your kubeconfig is named {id}, so whether {id} still uses them cannot be told; remove them by hand once it does not"
            ));
            continue;
        }
        for ctx in contexts {
            let client = match reach(kubeconfigs, ctx, ns, opts.request_timeout).await {
                Ok((c, _)) => c,
                Err(e) => {
                    reasons.push(format!("whether control plane {id} (context {ctx}) still uses them cannot be told: {e}"));
                    continue;
                }
            };
            let secrets = match links::remote_secrets(&client, ctx, ns).await {
                Ok(s) => s,
                Err(e) => {
                    reasons.push(format!("whether control plane {id} (context {ctx}) still uses them cannot be told: {e}"));
                    continue;
                }
            };
            for link in links::links(&secrets) {
                let subject = links::kubeconfig_token(&link.kubeconfig)
                    .as_ref()
                    .and_then(links::token_subject);
                let uses = subject.is_some_and(|s| {
                    s.namespace == account.namespace
                        && s.name == account.name
                        && (s.uid.is_none() || s.uid.as_deref() == sa_uid)
                });
                if uses {
                    reasons.push(format!(
                        "remote Secret {ns}/{} (key {}) in {ctx}, control plane {id}, still uses ServiceAccount {account}",
                        link.secret, link.key
                    ));
                }
            }
        }
    }
    reasons
}

/// What kubectl-mesh made in a cluster that a purge would remove, each with the command
/// that removes it by hand: `cacerts`, the cross-network Gateway (on the primary also the
/// istiod exposure), the namespace keys kubectl-mesh set, and on a remote the default
/// reader account, its binding and token Secrets. `crd_version` is the Gateway CRD's
/// served version, as read once for the cluster.
async fn leftovers(
    client: &Client,
    ctx: &str,
    ns: &str,
    primary: bool,
    crd_version: Option<&str>,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let what = format!("Secret {ns}/{CACERTS}");
    if let Found::Ours(_) = find(&secrets, ctx, &what, CACERTS).await? {
        out.push(format!(
            "Secret {ns}/{CACERTS}: kubectl --context {ctx} -n {ns} delete secret {CACERTS}"
        ));
    }
    if let Some(version) = crd_version {
        let mut objects = vec![(
            CROSS_NETWORK_GATEWAY.to_owned(),
            cluster::gateway_resource(version),
        )];
        if primary {
            objects.extend(
                cluster::expose_istiod(ns, version)
                    .into_iter()
                    .map(|(o, r)| (o.metadata.name.unwrap_or_default(), r)),
            );
        }
        for (name, resource) in objects {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
            let kind = &resource.kind;
            let what = format!("{kind} {ns}/{name}");
            if let Found::Ours(_) = find(&api, ctx, &what, &name).await? {
                out.push(format!(
                    "{kind} {ns}/{name}: kubectl --context {ctx} -n {ns} delete {}.networking.istio.io {name}",
                    resource.plural
                ));
            }
        }
    }
    if let Some(namespace) = Api::<Namespace>::all(client.clone())
        .get_opt(ns)
        .await
        .map_err(|e| kube(ctx, format!("reading namespace {ns}"), e))?
    {
        for (section, key, flag) in [
            ("labels", NETWORK_LABEL, "label"),
            ("annotations", CONTROL_PLANE_CLUSTERS_ANNOTATION, "annotate"),
        ] {
            if links::owned_metadata_keys(&namespace.metadata, section)
                .iter()
                .any(|k| k == key)
            {
                out.push(format!(
                    "{key} on namespace {ns}: kubectl --context {ctx} {flag} namespace {ns} {key}-"
                ));
            }
        }
    }
    if !primary {
        for s in &our_token_secrets(&secrets, ctx, ns).await? {
            let name = s.metadata.name.as_deref().unwrap_or_default();
            out.push(format!(
                "token Secret {ns}/{name}: kubectl --context {ctx} -n {ns} delete secret {name}"
            ));
        }
        let account = ReaderAccount::istio_default(ns);
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
        let what = format!("ServiceAccount {account}");
        if let Found::Ours(_) = find(&accounts, ctx, &what, &account.name).await? {
            out.push(format!(
                "ServiceAccount {account}: kubectl --context {ctx} -n {ns} delete serviceaccount {}",
                account.name
            ));
        }
        let binding = account.binding_name();
        let bindings = Api::<ClusterRoleBinding>::all(client.clone());
        let what = format!("ClusterRoleBinding {binding}");
        if let Found::Ours(_) = find(&bindings, ctx, &what, &binding).await? {
            out.push(format!(
                "ClusterRoleBinding {binding}: kubectl --context {ctx} delete clusterrolebinding {binding}"
            ));
        }
    }
    Ok(out)
}

/// Removes cluster `name` (and the primary's own entry, `primary_id`, when its
/// membership goes) from `meshNetworks`, starting from the ConfigMap as preflight `read` it.
async fn remove_from_mesh_networks(
    run: &Run<'_>,
    primary: &Client,
    read: Option<ConfigMap>,
    name: &str,
    primary_id: Option<&str>,
) -> Result<Vec<String>> {
    let ctx = run.opts.primary.as_str();
    let ns = run.opts.namespace.as_str();
    let api: Api<ConfigMap> = Api::namespaced(primary.clone(), ns);
    // Joins and unjoins of other remotes edit the same document: conditional, re-applied
    // on conflict (see `cluster::update`).
    let object = format!("ConfigMap {ns}/{MESH_CONFIG_MAP}");
    let written = cluster::update_from(&api, ctx, &object, MESH_CONFIG_MAP, run.opts.dry_run, read, |cm: Option<&ConfigMap>| {
        let Some(cm) = cm else {
            return Ok(None);
        };
        let mut networks = read_mesh_networks(cm, ctx, ns, "unjoin")?;
        let mut done = Vec::new();
        for id in std::iter::once(name).chain(primary_id) {
            let network = networks.network_of(id);
            if networks.remove_registry(id) {
                done.push(format!(
                    "removed cluster {id} (network {}) from meshNetworks in ConfigMap {ns}/{MESH_CONFIG_MAP}",
                    network.unwrap_or_default()
                ));
            }
        }
        Ok((!done.is_empty()).then(|| (networks.to_config_map(ns), done)))
    })
    .await?;
    Ok(written.map(|(_, done)| done).unwrap_or_default())
}

async fn read_sa_uid(
    client: &Client,
    ctx: &str,
    account: &ReaderAccount,
) -> Result<Option<String>> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &account.namespace);
    Ok(api
        .get_opt(&account.name)
        .await
        .map_err(|e| kube(ctx, format!("reading ServiceAccount {account}"), e))?
        .and_then(|sa| sa.metadata.uid))
}

/// The ServiceAccount token Secrets kubectl-mesh created in namespace `ns`.
async fn our_token_secrets(api: &Api<Secret>, ctx: &str, ns: &str) -> Result<Vec<Secret>> {
    let list = api
        .list(&kube::api::ListParams::default().labels(&cluster::owned_selector()))
        .await
        .map_err(|e| kube(ctx, format!("listing Secrets in {ns}"), e))?;
    Ok(list
        .items
        .into_iter()
        .filter(|s| {
            s.type_.as_deref() == Some(TOKEN_SECRET_TYPE)
                // The Secret a bound token of `rotate` is bound to: deleting it revokes it.
                || s.metadata.annotations.as_ref().is_some_and(|a| {
                    a.contains_key(crate::rotate::BOUND_TOKEN_FOR_ANNOTATION)
                })
        })
        .collect())
}

/// The token Secrets kubectl-mesh created for `account`, unless another link uses them.
async fn remove_token_secrets(
    run: &Run<'_>,
    remote: &Client,
    account: &ReaderAccount,
    other_tokens: &[(String, SecretString)],
) -> Result<Vec<String>> {
    let ctx = run.opts.remote.as_str();
    let ns = account.namespace.as_str();
    let api: Api<Secret> = Api::namespaced(remote.clone(), ns);
    let mut done = Vec::new();
    for s in our_token_secrets(&api, ctx, ns).await? {
        let sname = s.metadata.name.clone().unwrap_or_default();
        let for_account = crate::rotate::is_our_token_object(&s, &account.name);
        if !for_account {
            continue;
        }
        let token = s
            .data
            .as_ref()
            .and_then(|d| d.get("token"))
            .map(|t| String::from_utf8_lossy(&t.0).into_owned());
        let users: Vec<&str> = other_tokens
            .iter()
            .filter(|(_, t)| {
                token
                    .as_deref()
                    .is_some_and(|mine| t.expose_secret() == mine)
                    // A bound token names the Secret it is bound to, by UID.
                    || crate::rotate::token_object(t)
                        .is_some_and(|o| o.uid.is_some() && o.uid == s.metadata.uid)
            })
            .map(|(w, _)| w.as_str())
            .collect();
        if !users.is_empty() {
            run.warn(
                ctx,
                "token secret",
                format!(
                    "kept token Secret {ns}/{sname}: remote Secret {} in {} still uses it",
                    users.join(", "),
                    run.opts.primary
                ),
            );
            continue;
        }
        run.delete(&api, ctx, &format!("Secret {ns}/{sname}"), &s.metadata)
            .await?;
        done.push(format!("deleted token Secret {ns}/{sname} in {ctx}"));
    }
    Ok(done)
}

/// The reader ServiceAccount, its ClusterRoleBinding and (if unused) the ClusterRole,
/// each only if kubectl-mesh made it, and none while another link uses the account.
async fn remove_reader_account(
    run: &Run<'_>,
    remote: &Client,
    account: &ReaderAccount,
    others_use_it: &[String],
) -> Result<Vec<String>> {
    let ctx = run.opts.remote.as_str();
    if !others_use_it.is_empty() {
        run.warn(
            ctx,
            "reader account",
            format!(
                "kept ServiceAccount {account} and its RBAC: remote Secret {} in {} uses its tokens",
                others_use_it.join(", "),
                run.opts.primary
            ),
        );
        return Ok(Vec::new());
    }
    let mut done = Vec::new();
    let bindings: Api<ClusterRoleBinding> = Api::all(remote.clone());
    let binding_name = account.binding_name();
    let what = format!("ClusterRoleBinding {binding_name}");
    if run
        .delete_if_ours(&bindings, ctx, None, &what, &binding_name)
        .await?
    {
        done.push(format!("deleted {what} in {ctx}"));
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(remote.clone(), &account.namespace);
    let what = format!("ServiceAccount {account}");
    let step = Some("reader account");
    if run
        .delete_if_ours(&accounts, ctx, step, &what, &account.name)
        .await?
    {
        done.push(format!("deleted {what} in {ctx}"));
    }
    // The ClusterRole, when no binding is left that grants it.
    let role_name = mesh_kubeconfig::READER_CLUSTER_ROLE;
    let roles: Api<ClusterRole> = Api::all(remote.clone());
    let what = format!("ClusterRole {role_name}");
    if let Found::Ours(role) = find(&roles, ctx, &what, role_name).await? {
        let all = bindings
            .list(&Default::default())
            .await
            .map_err(|e| kube(ctx, "listing ClusterRoleBindings", e))?;
        let still_bound = all.iter().any(|b| {
            b.role_ref.kind == "ClusterRole"
                && b.role_ref.name == role_name
                && b.metadata.name.as_deref() != Some(binding_name.as_str())
        });
        if !still_bound {
            run.delete(&roles, ctx, &what, &role.metadata).await?;
            done.push(format!("deleted {what} in {ctx}"));
        }
    }
    Ok(done)
}

/// Releases the remote's network label and `controlPlaneClusters` entry that join set.
/// While other primaries are listed, only `primary`'s ID leaves the list and the label
/// stays; with `keep_membership` (the remote is still used by another primary, or that
/// cannot be told), nothing but `primary`'s own ID ever goes.
async fn release_network_membership(
    run: &Run<'_>,
    client: &Client,
    ctx: &str,
    primary: Option<&str>,
    keep_membership: bool,
) -> Result<()> {
    let ns = run.opts.namespace.as_str();
    run.step_listing(ctx, "network label", async {
        let api: Api<Namespace> = Api::all(client.clone());
        let object = format!("namespace {ns}");
        // Conditional, like every write of a shared list (see `cluster::update`).
        let written = cluster::update(&api, ctx, &object, ns, run.opts.dry_run, |current: Option<&Namespace>| {
            let Some(current) = current else {
                return Ok(None);
            };
            // Only the keys join sets: the server attributes labels it adds itself (such
            // as kubernetes.io/metadata.name) to whoever applied last.
            let ours = |section: &str, key: &str| {
                links::owned_metadata_keys(&current.metadata, section)
                    .into_iter()
                    .filter(|k| k == key)
                    .collect::<Vec<_>>()
            };
            let labels = ours("labels", NETWORK_LABEL);
            let annotations = ours("annotations", CONTROL_PLANE_CLUSTERS_ANNOTATION);
            if labels.is_empty() && annotations.is_empty() {
                return Ok(None);
            }
            let planes = crate::join::control_plane_clusters(Some(&current.metadata));
            let others: Vec<String> = planes
                .iter()
                .filter(|c| Some(c.as_str()) != primary)
                .cloned()
                .collect();
            let mut desired = Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.to_owned()),
                    ..Default::default()
                },
                ..Default::default()
            };
            if keep_membership && others.is_empty() {
                return Ok(None); // nothing else names a control plane: all of it stays
            }
            if primary.is_some() && !others.is_empty() {
                // Other primaries still run this cluster's control plane: only our ID
                // goes, and the cluster stays on its network.
                if others.len() == planes.len() {
                    return Ok(None);
                }
                let label = current
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(NETWORK_LABEL));
                if let Some(network) = label.filter(|_| !labels.is_empty()) {
                    desired.metadata.labels =
                        Some([(NETWORK_LABEL.to_owned(), network.clone())].into());
                }
                desired.metadata.annotations = Some(
                    [(CONTROL_PLANE_CLUSTERS_ANNOTATION.to_owned(), others.join(","))].into(),
                );
                let what = format!(
                    "removed {} from annotation {CONTROL_PLANE_CLUSTERS_ANNOTATION} of namespace {ns} (kept {})",
                    primary.unwrap_or_default(),
                    others.join(",")
                );
                return Ok(Some((desired, what)));
            }
            // Applying nothing releases every field kubectl-mesh owns on the namespace:
            // the server removes those no other manager also set.
            let mut what: Vec<String> = labels.iter().map(|k| format!("label {k}")).collect();
            what.extend(annotations.iter().map(|k| format!("annotation {k}")));
            let what = format!("removed {} from namespace {ns}", what.join(" and "));
            Ok(Some((desired, what)))
        })
        .await?;
        Ok(written.map(|(_, what)| what).into_iter().collect())
    })
    .await?;
    Ok(())
}

/// A cluster's mesh membership that kubectl-mesh made: the network label and
/// control-plane annotation it owns on the Istio namespace, the cross-network Gateway,
/// and `cacerts`. `primary` is the primary's cluster ID when `client` is a remote: only
/// that ID leaves the remote's `controlPlaneClusters` list, and while other primaries
/// remain in it the network label stays. `crd_version` is the Gateway CRD's served
/// version, as read once for the cluster (none: no Istio object to remove).
async fn purge_membership(
    run: &Run<'_>,
    client: &Client,
    ctx: &str,
    primary: Option<&str>,
    crd_version: Option<&str>,
) -> Result<()> {
    release_network_membership(run, client, ctx, primary, false).await?;
    let ns = run.opts.namespace.as_str();
    run.step_listing(ctx, "cross-network gateway", async {
        let Some(version) = crd_version else {
            return Ok(Vec::new());
        };
        let gateway = cluster::gateway_resource(version);
        delete_istio_object(
            run,
            client,
            ctx,
            "cross-network gateway",
            &gateway,
            CROSS_NETWORK_GATEWAY,
        )
        .await
    })
    .await?;

    if primary.is_none() {
        // What `join --install` added so remotes reach istiod through the gateway.
        run.step_listing(ctx, "expose istiod", async {
            let Some(version) = crd_version else {
                return Ok(Vec::new());
            };
            let mut done = Vec::new();
            for (object, resource) in cluster::expose_istiod(ns, version) {
                let name = object.metadata.name.unwrap_or_default();
                done.extend(
                    delete_istio_object(run, client, ctx, "expose istiod", &resource, &name)
                        .await?,
                );
            }
            Ok(done)
        })
        .await?;
    }

    run.step_listing(ctx, "cacerts", async {
        let api: Api<Secret> = Api::namespaced(client.clone(), ns);
        let what = format!("Secret {ns}/{CACERTS}");
        if !run.delete_if_ours(&api, ctx, Some("cacerts"), &what, CACERTS).await? {
            return Ok(Vec::new());
        }
        if primary.is_none() {
            run.warn(ctx, "cacerts", format!("istiod keeps the plugged-in CA until it restarts: kubectl rollout restart deployment/istiod -n {ns}"));
        }
        Ok(vec![format!("deleted {what}")])
    })
    .await
}

/// Deletes an Istio object (Gateway, VirtualService) in the Istio namespace when
/// kubectl-mesh made it; one it did not make is kept, with a warning.
async fn delete_istio_object(
    run: &Run<'_>,
    client: &Client,
    ctx: &str,
    step: &str,
    resource: &kube::api::ApiResource,
    name: &str,
) -> Result<Vec<String>> {
    let ns = run.opts.namespace.as_str();
    let kind = &resource.kind;
    let what = format!("{kind} {ns}/{name}");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, resource);
    let deleted = run
        .delete_if_ours(&api, ctx, Some(step), &what, name)
        .await?;
    Ok(deleted
        .then(|| format!("deleted {what}"))
        .into_iter()
        .collect())
}

/// The problem when no link names cluster `name` but remote Secrets `elsewhere` link
/// `rctx` to `pctx`: another cluster name unjoins it (the binary names its flag).
fn linked_elsewhere(name: &str, rctx: &str, pctx: &str, elsewhere: &[String]) -> String {
    format!(
        "no remote secret names cluster {name}, but {rctx} is linked to {pctx} by remote Secret {}; nothing was removed — unjoin it under that key as its cluster name",
        elsewhere.join(", ")
    )
}

/// The lead of the problems when nothing links cluster `name` to `pctx` and purge
/// would have to guess (the binary names the flag that gives another name).
fn not_linked(name: &str, pctx: &str, rctx: &str, ns: &str, primary_id: &str) -> String {
    format!(
        "nothing links cluster name {name} to {pctx}: no remote secret for it, no meshNetworks entry, and {rctx}'s namespace {ns} names no control plane {primary_id}; nothing was removed. If it was joined under another name, give that name; else remove by hand what you know is this join's"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_no_flag() {
        let elsewhere = ["istio-system/istio-remote-secret-c2".to_owned()];
        crate::status::tests::assert_flag_free(&linked_elsewhere(
            "cluster2", "cluster2", "cluster1", &elsewhere,
        ));
        crate::status::tests::assert_flag_free(&not_linked(
            "cluster3",
            "cluster1",
            "cluster3",
            "istio-system",
            "cluster1",
        ));
    }

    fn secret(name: &str, annotation: Option<&str>, keys: &[&str]) -> Secret {
        let mut s: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "data": keys.iter().map(|k| (k.to_string(), "eA==")).collect::<std::collections::BTreeMap<_, _>>(),
        }))
        .unwrap();
        if let Some(a) = annotation {
            s.metadata.annotations =
                Some([(mesh_kubeconfig::CLUSTER_ANNOTATION.to_owned(), a.to_owned())].into());
        }
        s
    }

    #[test]
    fn remote_secrets_match_by_name_annotation_or_key() {
        let all = [
            secret("istio-remote-secret-c2", None, &["c2"]),
            secret("n2-k8s-secret", Some("c2"), &["n2-k8s-config"]),
            secret("shared", None, &["c2", "c3"]),
            secret("istio-remote-secret-c3", Some("c3"), &["c3"]),
            secret("by-key", None, &["c2"]),
            secret("annotated-shared", Some("c2"), &["c2", "c4"]),
            secret("annotated-others", Some("c2"), &["c4", "c5"]),
        ];
        let found: Vec<(String, Vec<String>, bool)> = matching_secrets(&all, "c2")
            .into_iter()
            .map(|m| (m.secret.metadata.name.unwrap(), m.keys, m.whole))
            .collect();
        let s = |v: &[&str]| v.iter().map(|k| (*k).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            found,
            [
                ("istio-remote-secret-c2".to_owned(), s(&["c2"]), true),
                ("n2-k8s-secret".to_owned(), s(&["n2-k8s-config"]), true),
                ("shared".to_owned(), s(&["c2"]), false),
                ("by-key".to_owned(), s(&["c2"]), true),
                // Annotated for c2 but holding others too: only c2's key goes.
                ("annotated-shared".to_owned(), s(&["c2"]), false),
                // Annotated for c2 but holding only others' keys: nothing goes.
                ("annotated-others".to_owned(), s(&[]), false),
            ]
        );
        assert!(matching_secrets(&all, "c9").is_empty());
    }

    #[test]
    fn control_plane_clusters_are_a_comma_separated_list() {
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "istio-system", "annotations": {
                CONTROL_PLANE_CLUSTERS_ANNOTATION: "cluster1, cluster3,"
            }}
        }))
        .unwrap();
        let planes = |ns: &Namespace| crate::join::control_plane_clusters(Some(&ns.metadata));
        assert_eq!(planes(&ns), ["cluster1", "cluster3"]);
        assert!(planes(&Namespace::default()).is_empty());
    }

    #[test]
    fn the_default_cluster_name_is_the_context_as_a_label() {
        let mut o = UnjoinOptions::new("p", "Kind_Cluster2");
        assert_eq!(
            o.cluster_name(),
            mesh_kubeconfig::dns1123_label("Kind_Cluster2")
        );
        o.cluster_name = Some("x".into());
        assert_eq!(o.cluster_name(), "x");
    }
}
