//! Join's changes after preflight: per cluster (namespace label, `cacerts`, Istio's
//! releases, cross-network Gateway, gateway address), then `meshNetworks` in the
//! primary, then each remote's secret in the primary.

use std::collections::BTreeMap;
use std::time::Instant;

use futures::channel::oneshot;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Secret};
use kube::Api;
use kube::api::{DynamicObject, ObjectMeta};
use mesh_kubeconfig::{Kubeconfigs, RemoteSecretRequest};

use super::adopt::{FoundLink, LinkCheck, LinkPlan};
use super::releases::{self, Installer};
use super::{Run, Target};
use crate::address::GatewayAddress;
use crate::cluster::{
    self, CACERTS, CONTROL_PLANE_CLUSTERS_ANNOTATION, ControlPlanes, GatewayService,
    MESH_CONFIG_MAP, MODEL_ANNOTATION, NETWORK_LABEL, Networks, Role,
};
use crate::error::{Error, Problem, ProblemKind, Result, kube};
use crate::links::{self, GatewayReach};
use crate::networks::{MeshNetworks, read_mesh_networks};
use crate::plan::Outcome;
use crate::progress::EventKind;

/// The primary's east-west gateway address, as the remotes' istiod installs wait for it.
pub(super) type PrimaryAddress = futures::future::Shared<oneshot::Receiver<Option<GatewayAddress>>>;

/// How a cluster's steps link to the primary's gateway address.
pub(super) enum Link {
    /// The primary: sends its gateway address (once known) to the remotes.
    Primary(Option<oneshot::Sender<Option<GatewayAddress>>>),
    /// A remote: its istiod install waits for the primary's address.
    Remote(PrimaryAddress),
}

/// Every cluster's steps, concurrently; returns each cluster's gateway address.
pub(super) async fn cluster_steps_all(
    run: &Run<'_>,
    targets: &[Target<'_>],
    installer: Option<&Installer<'_>>,
) -> Result<Vec<Option<GatewayAddress>>> {
    let primary_name = targets[0].name.as_str();
    let (address_tx, address_rx) = oneshot::channel();
    let primary_address: PrimaryAddress = futures::FutureExt::shared(address_rx);
    let mut address_tx = Some(address_tx);
    let per_cluster = targets.iter().enumerate().map(|(i, t)| {
        let link = match t.role {
            Role::Primary if i == 0 => Link::Primary(address_tx.take()),
            Role::Primary => Link::Primary(None),
            Role::Remote => Link::Remote(primary_address.clone()),
        };
        cluster_steps(run, t, primary_name, installer, link)
    });
    futures::future::join_all(per_cluster)
        .await
        .into_iter()
        .collect()
}

/// The steps on one cluster; returns its gateway address.
async fn cluster_steps(
    run: &Run<'_>,
    t: &Target<'_>,
    primary_name: &str,
    installer: Option<&Installer<'_>>,
    link: Link,
) -> Result<Option<GatewayAddress>> {
    let ctx = t.spec.context.as_str();
    let ns = run.opts.namespace.as_str();

    // The namespace first: cacerts lives in it, and istiod must find cacerts at start.
    run.step(ctx, "network label", async {
        network_label_step(run, t, primary_name).await
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

    // Installing: Istio's releases where they are missing, in the guide's order.
    let mut installed = releases::Installed {
        crd_version: t.facts.gateway_crd_version.clone(),
        gateway: t.gateway.clone(),
        gateway_pending: false,
    };
    if let Some(inst) = installer {
        releases::install_steps(run, t, inst, &link, &mut installed).await?;
    }

    // On one network nothing crosses a gateway; only a primary that exposes istiod to
    // remotes it installs needs its gateway's address.
    let exposes_istiod = matches!(link, Link::Primary(Some(_)))
        && t.model.control_planes == ControlPlanes::PrimaryRemote
        && installer.is_some()
        && !run.opts.remotes.is_empty();
    if t.model.networks == Networks::One && !exposes_istiod {
        if let Link::Primary(Some(tx)) = link {
            let _ = tx.send(None);
        }
        return Ok(None);
    }
    let Some(gateway) = &installed.gateway else {
        if t.spec.gateway_address.is_none() {
            run.warn(ctx, "gateway", format!("no east-west gateway Service (label istio=eastwestgateway) in {ns}: traffic from other networks cannot reach this cluster; install one, or give its address"));
        }
        let address = t
            .spec
            .gateway_address
            .as_ref()
            .map(|a| a.with_default_port(crate::address::DEFAULT_GATEWAY_PORT));
        if let Link::Primary(Some(tx)) = link {
            let _ = tx.send(address.clone());
        }
        return Ok(address);
    };
    let version = installed.crd_version.as_deref().unwrap_or("v1");
    let cross_network = t.model.networks == Networks::Different;
    run.step(ctx, "cross-network gateway", async {
        if !cross_network {
            return Ok(Outcome::Found("none: the clusters share one network".into()));
        }
        if let Some(name) = &t.adopted_gateway {
            return Ok(Outcome::Found(format!(
                "adopted Gateway {ns}/{name}, made by hand: it already does TLS AUTO_PASSTHROUGH for *.local on port {} of Service {ns}/{}; used as it is",
                gateway.port, gateway.name
            )));
        }
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
    // Installing, with remotes, the primary exposes istiod to them on its gateway.
    if exposes_istiod {
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

    let found = if let Some(given) = &t.spec.gateway_address {
        Some(given.with_default_port(gateway.port))
    } else if installed.gateway_pending {
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
            let address = wait_gateway_address(run, t, gateway).await?;
            let shown = address.to_string();
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

/// The Istio namespace's network label (on different networks), on a remote the
/// primary's ID in its control-plane list (other primaries' kept), and in a
/// multi-primary mesh the model's record ([`MODEL_ANNOTATION`]); when installing Istio a
/// bare namespace is created first, so that this write stays conditional.
async fn network_label_step(run: &Run<'_>, t: &Target<'_>, primary_name: &str) -> Result<Outcome> {
    let ctx = t.spec.context.as_str();
    let ns = run.opts.namespace.as_str();
    let existed = t.facts.istio_namespace.is_some();
    if !existed && !run.opts.dry_run {
        cluster::create_namespace(&t.client, ctx, ns).await?;
    }
    let remote = t.role == Role::Remote;
    let label = (t.model.networks == Networks::Different).then_some(t.network.as_str());
    let record = (t.model.control_planes == ControlPlanes::MultiPrimary)
        .then_some(ControlPlanes::MultiPrimary.id());
    let api: Api<Namespace> = Api::all(t.client.clone());
    // The control-plane list is shared with other primaries: ours is added to it.
    let written = cluster::update(
        &api,
        ctx,
        &format!("namespace {ns}"),
        ns,
        run.opts.dry_run,
        |current: Option<&Namespace>| {
            let meta = current.map(|n| &n.metadata);
            let labels = meta.and_then(|m| m.labels.as_ref());
            let annotations = meta.and_then(|m| m.annotations.as_ref());
            let has_label = label.is_none_or(|l| {
                labels
                    .and_then(|l| l.get(NETWORK_LABEL))
                    .map(String::as_str)
                    == Some(l)
            });
            let has_record = record.is_none_or(|r| {
                annotations
                    .and_then(|a| a.get(MODEL_ANNOTATION))
                    .map(String::as_str)
                    == Some(r)
            });
            let mut planes = control_plane_clusters(meta);
            let listed = planes.iter().any(|c| c == primary_name);
            if has_label && has_record && (listed || !remote) {
                return Ok(None);
            }
            let mut desired = Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.to_owned()),
                    ..Default::default()
                },
                ..Default::default()
            };
            if let Some(label) = label {
                desired.metadata.labels = Some(BTreeMap::from([(
                    NETWORK_LABEL.to_owned(),
                    label.to_owned(),
                )]));
            }
            let mut annotations = BTreeMap::new();
            if remote {
                if !listed {
                    planes.push(primary_name.to_owned());
                }
                annotations.insert(
                    CONTROL_PLANE_CLUSTERS_ANNOTATION.to_owned(),
                    planes.join(","),
                );
            }
            if let Some(record) = record {
                annotations.insert(MODEL_ANNOTATION.to_owned(), record.to_owned());
            }
            if !annotations.is_empty() {
                desired.metadata.annotations = Some(annotations);
            }
            Ok(Some((desired, ())))
        },
    )
    .await?;
    let Some((desired, ())) = written else {
        return Ok(Outcome::Unchanged);
    };
    let verb = if existed { "labelled" } else { "created" };
    let mut what = Vec::new();
    if let Some(label) = label {
        what.push(format!("{NETWORK_LABEL}={label}"));
    }
    if remote {
        what.push(format!(
            "{CONTROL_PLANE_CLUSTERS_ANNOTATION} with {primary_name}"
        ));
    }
    if let Some(record) = record {
        what.push(format!("{MODEL_ANNOTATION}={record}"));
    }
    Ok(Outcome::Changed(
        format!("{verb} namespace {ns}: {}", what.join(", ")),
        serde_json::to_value(&desired).ok(),
    ))
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
pub(super) async fn apply_if_changed(
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
    // Before an install has made the CRD, a dry run has nothing to read.
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
            problems: vec![Problem::new(
                ctx,
                ProblemKind::ForeignObject,
                super::judge::foreign_object_message(ctx, ns, resource, &name),
            )],
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

/// Waits for the gateway Service's address: LoadBalancer ip or hostname, else
/// externalIPs (see [`links::gateway_address_now`]), else a node address with the node
/// port.
async fn wait_gateway_address(
    run: &Run<'_>,
    t: &Target<'_>,
    gw: &GatewayService,
) -> Result<GatewayAddress> {
    let ctx = t.spec.context.as_str();
    let ns = run.opts.namespace.as_str();
    let started = Instant::now();
    // A NodePort Service never gets an address: it falls back at once.
    let look = || async {
        Ok(
            match links::gateway_address_now(&t.client, ctx, ns, gw).await? {
                GatewayReach::Pending => None,
                reach => Some(reach),
            },
        )
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
    if let Some(GatewayReach::Address(address)) = found {
        return Ok(address);
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
                return GatewayAddress::new(&addr, node_port)
                    .map_err(|e| links::gateway_malformed(ctx, "a Node's address", &e));
            }
        }
    }
    Err(Error::Timeout {
        cluster: ctx.to_owned(),
        what: format!("Service {ns}/{} to get a LoadBalancer address", gw.name),
        seconds: run.opts.wait.as_secs(),
        hint: "check the cloud's load balancer, or give the gateway's address yourself".into(),
    })
}

/// `meshNetworks` in the primary: each cluster's network with its registry and gateway.
pub(super) async fn mesh_networks_step(
    run: &Run<'_>,
    primary: &Target<'_>,
    targets: &[Target<'_>],
    gateways: &[Option<GatewayAddress>],
) -> Result<Outcome> {
    let ns = run.opts.namespace.as_str();
    let written = edit_mesh_networks(run, primary, |networks| {
        let mut said = Vec::new();
        for (t, gw) in targets.iter().zip(gateways) {
            // A registry listed under another network moves to this one.
            if let Some(old) = networks.network_of(&t.name)
                && old != t.network
                && networks.remove_registry(&t.name)
            {
                said.push(format!(
                    "{old}: removed registry {} (its network is {})",
                    t.name, t.network
                ));
            }
            // The guide names the gateway by its Service (registryServiceName): kept.
            let service = t.gateway.as_ref().map(|g| format!("{}.{ns}", g.name));
            said.extend(networks.reconcile(&t.network, &t.name, gw.as_ref(), service.as_deref()));
        }
        said
    })
    .await?;
    let Some((desired, said)) = written else {
        return Ok(Outcome::Unchanged);
    };
    Ok(Outcome::Changed(
        format!(
            "updated meshNetworks in ConfigMap {ns}/{MESH_CONFIG_MAP}: {}",
            said.join("; ")
        ),
        serde_json::to_value(&desired).ok(),
    ))
}

/// The remote secret made for a cluster by its first link of a join, with where its
/// token came from: the other primaries of a multi-primary mesh are given the same one.
pub(super) type Minted = std::sync::Mutex<Option<(Secret, String)>>;

/// The remote's link in the primary, as judged: a hand-made one kept (its reader account
/// given the reads it lacks), kubectl-mesh's own made or refreshed, or hand-made ones
/// replaced — ours written first, then the old ones removed, so that istiod never goes
/// without a link to the remote.
pub(super) async fn remote_secret_step(
    run: &Run<'_>,
    kubeconfigs: &Kubeconfigs,
    primary: &Target<'_>,
    remote: &Target<'_>,
    plan: &LinkPlan,
    request: &RemoteSecretRequest,
    minted: &Minted,
) -> Result<Outcome> {
    match plan {
        LinkPlan::Adopt { link } => adopted_link(run, remote, link).await,
        LinkPlan::Own { secret } => {
            let mut request = request.clone();
            if request.secret_name.is_none() {
                request.secret_name = secret.clone();
            }
            own_link(run, kubeconfigs, primary, remote, &request, minted, true).await
        }
        LinkPlan::Replace { old } => {
            // The hand-made link's reader account, when it may read what istiod needs
            // (istioctl's istio-reader-service-account, the guide's istio-multi), is reused.
            let mut request = request.clone();
            let ns = run.opts.namespace.as_str();
            let reused = old.iter().find_map(|l| match &l.check {
                LinkCheck::Works { account: Some(a) }
                | LinkCheck::LacksReads { account: a, .. }
                    if a.namespace == ns =>
                {
                    Some(a.name.clone())
                }
                _ => None,
            });
            if request.service_account == mesh_kubeconfig::DEFAULT_READER_SERVICE_ACCOUNT
                && let Some(name) = reused
            {
                request.service_account = name;
            }
            let request = &request;
            let mut said =
                match own_link(run, kubeconfigs, primary, remote, request, minted, false).await? {
                    Outcome::Changed(what, _) | Outcome::Found(what) => vec![what],
                    Outcome::Unchanged => Vec::new(),
                };
            let ours = request.secret_name_for(&remote.name);
            said.extend(remove_replaced_links(run, primary, remote, old, &ours).await?);
            Ok(Outcome::from_changes(said))
        }
    }
}

/// A hand-made link kept as it is. When its ServiceAccount may not make every read
/// istiod needs (the guide binds `view`: no nodes, no Secrets), that account is bound to
/// the reader role — the account itself is never modified.
async fn adopted_link(run: &Run<'_>, remote: &Target<'_>, link: &FoundLink) -> Result<Outcome> {
    let ns = run.opts.namespace.as_str();
    let ctx = remote.spec.context.as_str();
    let kept = format!(
        "adopted {}, made by hand: it reaches {ctx}",
        link.describe(ns)
    );
    let LinkCheck::LacksReads { account, missing } = &link.check else {
        return Ok(Outcome::Found(format!(
            "{kept} and its credentials work; kept as it is"
        )));
    };
    let changes = if run.opts.dry_run {
        mesh_kubeconfig::check_reader_account(&remote.client, ctx, account).await?
    } else {
        mesh_kubeconfig::ensure_reader_account(&remote.client, ctx, account).await?
    };
    if changes.is_empty() {
        run.warn(
            ctx,
            "remote secret",
            format!("{kept}, but its ServiceAccount {account} may not {}, which istiod needs, though it is bound to the reader role", missing.join(", ")),
        );
        return Ok(Outcome::Found(format!("{kept}; kept as it is")));
    }
    Ok(Outcome::Changed(
        format!(
            "{kept}, but its ServiceAccount {account} could not {}, which istiod needs: {} in {ctx}",
            missing.join(", "),
            changes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None,
    ))
}

/// Removes the hand-made links a replacement made redundant — each only while it still
/// is what was read (a conditional delete, or a conditional removal of its key when its
/// Secret holds other clusters too) — and their cluster IDs from `meshNetworks`. The
/// Secret `ours` (kubectl-mesh's link, written over one of the same name) stays.
async fn remove_replaced_links(
    run: &Run<'_>,
    primary: &Target<'_>,
    remote: &Target<'_>,
    old: &[FoundLink],
    ours: &str,
) -> Result<Vec<String>> {
    let ns = run.opts.namespace.as_str();
    let pctx = primary.spec.context.as_str();
    let api: Api<Secret> = Api::namespaced(primary.client.clone(), ns);
    let mut said = Vec::new();
    for link in old.iter().filter(|l| l.secret != ours) {
        let what = format!("Secret {ns}/{}", link.secret);
        let Some(secret) = api
            .get_opt(&link.secret)
            .await
            .map_err(|e| kube(pctx, format!("reading {what}"), e))?
        else {
            continue;
        };
        let keys: Vec<&String> = secret.data.iter().flat_map(|d| d.keys()).collect();
        if !keys.iter().any(|k| **k == link.key) {
            continue;
        }
        if keys.len() == 1 {
            if !run.opts.dry_run {
                cluster::delete_checked(&api, pctx, &what, &secret.metadata).await?;
            }
            said.push(format!(
                "deleted remote {what} in {pctx} (made by hand, cluster ID {}): replaced",
                link.key
            ));
        } else {
            if !run.opts.dry_run {
                links::remove_keys(
                    &api,
                    pctx,
                    &secret,
                    std::slice::from_ref(&link.key),
                    &link.key,
                )
                .await?;
            }
            said.push(format!(
                "removed key {} from remote {what} in {pctx} (made by hand; it keeps the other clusters' keys): replaced",
                link.key
            ));
        }
    }
    // The old cluster IDs leave meshNetworks: the remote is listed under its new one.
    let old_ids: Vec<&str> = old
        .iter()
        .map(|l| l.key.as_str())
        .filter(|k| *k != remote.name)
        .collect();
    if old_ids.is_empty() {
        return Ok(said);
    }
    let written = edit_mesh_networks(run, primary, |networks| {
        old_ids
            .iter()
            .filter(|id| networks.remove_registry(id))
            .map(|id| {
                format!(
                    "removed registry {id} from meshNetworks in ConfigMap {ns}/{MESH_CONFIG_MAP}"
                )
            })
            .collect()
    })
    .await?;
    said.extend(written.into_iter().flat_map(|(_, removed)| removed));
    Ok(said)
}

/// Edits `meshNetworks` in the primary's `istio` ConfigMap: `edit` changes the parsed
/// document and says what it changed (nothing: nothing is written). Other joins and
/// unjoins edit the same document, so the write is conditional ([`cluster::update`]: the
/// `resourceVersion` read; on a conflict read, edited and written again). Returns the
/// ConfigMap written and what changed.
async fn edit_mesh_networks(
    run: &Run<'_>,
    primary: &Target<'_>,
    edit: impl Fn(&mut MeshNetworks) -> Vec<String>,
) -> Result<Option<(ConfigMap, Vec<String>)>> {
    let ctx = primary.spec.context.as_str();
    let ns = run.opts.namespace.as_str();
    let api: Api<ConfigMap> = Api::namespaced(primary.client.clone(), ns);
    let object = format!("ConfigMap {ns}/{MESH_CONFIG_MAP}");
    cluster::update(
        &api,
        ctx,
        &object,
        MESH_CONFIG_MAP,
        run.opts.dry_run,
        |cm: Option<&ConfigMap>| {
            let mut networks = match cm {
                Some(cm) => read_mesh_networks(cm, ctx, ns, "join")?,
                // Only a dry run that installs gets here: istiod (and its ConfigMap) is not there yet.
                None if run.opts.dry_run && run.opts.install.is_some() => MeshNetworks::default(),
                None => {
                    return Err(Error::Malformed {
                        cluster: ctx.to_owned(),
                        object: object.clone(),
                        reason: "it is missing: istiod is not installed; install it (or let join install Istio)"
                            .into(),
                    });
                }
            };
            let said = edit(&mut networks);
            Ok((!said.is_empty()).then(|| (networks.to_config_map(ns), said)))
        },
    )
    .await
}

/// The remote's reader credentials (made in the remote) and kubectl-mesh's remote secret
/// in the primary, applied only when its data, labels or annotation differ.
async fn own_link(
    run: &Run<'_>,
    kubeconfigs: &Kubeconfigs,
    primary: &Target<'_>,
    remote: &Target<'_>,
    request: &RemoteSecretRequest,
    minted: &Minted,
    renew: bool,
) -> Result<Outcome> {
    let ns = run.opts.namespace.as_str();
    let pctx = primary.spec.context.as_str();
    // The link as it is, read once for every decision below.
    let name = request.secret_name_for(&remote.name);
    let secrets: Api<Secret> = Api::namespaced(primary.client.clone(), ns);
    let current = secrets
        .get_opt(&name)
        .await
        .map_err(|e| kube(pctx, format!("reading Secret {ns}/{name}"), e))?;
    let ours = current
        .as_ref()
        .filter(|s| links::managed_by_us(&s.metadata));
    // A link of ours with a lifetime is renewed as rotate does it, inside the window
    // status warns in, and kept outside it. In a multi-primary mesh each primary's link
    // to the remote is renewed by its own rotation; rotations of one account take turns.
    if let mesh_kubeconfig::TokenStrategy::TokenRequest { ttl } = request.token.strategy
        && renew
        && ours.is_some()
    {
        return renew_link(run, kubeconfigs, primary, remote, ttl).await;
    }
    // No kind of token asked for, and the link holds a bound token of ours with a
    // lifetime: the link keeps that kind. Inside the warning window it is renewed with
    // its own lifetime; outside it, it is kept (only what else differs is written).
    let held = ours.and_then(|link| links::link_token(link, &remote.name));
    if request.token.strategy == mesh_kubeconfig::TokenStrategy::Auto
        && request.token.secret_name.is_none()
        && renew
        && let Some(token) = held
        && links::token_kind(&token) == Some(crate::status::TokenKind::Bound)
        && let Some(lifetime) = links::token_lifetime(&token)
    {
        let expires = mesh_kubeconfig::jwt_expiry(&token);
        let now = k8s_openapi::jiff::Timestamp::now();
        if crate::rotate::expiring_within(expires, now, crate::status::EXPIRY_WARNING) {
            return renew_link(run, kubeconfigs, primary, remote, lifetime).await;
        }
        return keep_bound_token(run, kubeconfigs, primary, remote, request, current, token).await;
    }
    if run.opts.dry_run {
        // Making a token may create a token Secret in the remote: not in a dry run. The
        // preview holds every object a real run applies, with a stand-in token.
        let preview = mesh_kubeconfig::preview_remote_secret(kubeconfigs, request).await?;
        let exists = current.is_some();
        if exists && preview.changes.is_empty() {
            return Ok(Outcome::Unchanged);
        }
        let mut what: Vec<String> = preview
            .changes
            .iter()
            .map(|c| format!("{} in {}", c, remote.spec.context))
            .collect();
        what.push(format!(
            "{} remote Secret {ns}/{name} in {pctx} (its token is only made by a real run)",
            if exists { "refreshed" } else { "created" }
        ));
        let mut secret = preview.secret;
        secret.metadata.name = Some(name.clone());
        // Shown as text: the kubeconfig is readable, and its token a stand-in.
        if let Some(data) = secret.data.take() {
            secret.string_data = Some(
                data.into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect(),
            );
        }
        let mut items: Vec<serde_json::Value> =
            preview.changes.into_iter().map(|c| c.desired).collect();
        items.push(serde_json::to_value(&secret).unwrap_or_default());
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
        return Ok(Outcome::Changed(what.join("; "), Some(list)));
    }
    let reused = minted.lock().expect("not poisoned").clone();
    let (mut desired, token_source, mut what) = match reused {
        // Made for this cluster by its first link of this join: the same credentials.
        Some((secret, source)) => (secret, source, Vec::new()),
        None => {
            let (secret, source, what) = mint_link(run, kubeconfigs, remote, request, ours).await?;
            *minted.lock().expect("not poisoned") = Some((secret.clone(), source.clone()));
            (secret, source, what)
        }
    };
    desired.metadata.name = Some(name.clone());
    if !same_link(current.as_ref(), &desired) {
        cluster::apply(&secrets, pctx, &name, &desired).await?;
        what.push(format!(
            "{} remote Secret {ns}/{name} in {pctx} (token from {})",
            if current.is_some() {
                "updated"
            } else {
                "created"
            },
            token_source
        ));
    }
    if what.is_empty() {
        Ok(Outcome::Unchanged)
    } else {
        Ok(Outcome::Changed(what.join("; "), None))
    }
}

/// A link of ours that holds a bound token with time left, when no kind of token was
/// asked for: the token is kept, and the rest of the link (server, CA, labels) and the
/// reader account are brought to what join makes — nothing is minted.
async fn keep_bound_token(
    run: &Run<'_>,
    kubeconfigs: &Kubeconfigs,
    primary: &Target<'_>,
    remote: &Target<'_>,
    request: &RemoteSecretRequest,
    current: Option<Secret>,
    token: secrecy::SecretString,
) -> Result<Outcome> {
    let ns = run.opts.namespace.as_str();
    let pctx = primary.spec.context.as_str();
    let rctx = remote.spec.context.as_str();
    let name = request.secret_name_for(&remote.name);
    let preview = mesh_kubeconfig::preview_remote_secret(kubeconfigs, request).await?;
    let mut what: Vec<String> = preview
        .changes
        .iter()
        .map(|c| format!("{c} in {rctx}"))
        .collect();
    if !preview.changes.is_empty() && !run.opts.dry_run {
        let account = mesh_kubeconfig::ReaderAccount::new(ns, request.service_account.clone());
        mesh_kubeconfig::ensure_reader_account(&remote.client, rctx, &account).await?;
    }
    let expires = mesh_kubeconfig::jwt_expiry(&token)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let kubeconfig = crate::rotate::with_token(&preview.kubeconfig, token)?;
    let desired = mesh_kubeconfig::RemoteSecret::new(&preview.cluster_name, ns)
        .secret_name(Some(name.clone()))
        .key(request.secret_key.clone())
        .build(&kubeconfig)?;
    if !same_link(current.as_ref(), &desired) {
        if !run.opts.dry_run {
            let secrets: Api<Secret> = Api::namespaced(primary.client.clone(), ns);
            cluster::apply(&secrets, pctx, &name, &desired).await?;
        }
        what.push(format!(
            "updated remote Secret {ns}/{name} in {pctx} (its bound token kept)"
        ));
    }
    Ok(if what.is_empty() {
        Outcome::Found(format!(
            "kept the link's bound token: it expires at {expires}; pass --token-ttl to renew it earlier, or rotate it"
        ))
    } else {
        Outcome::Changed(what.join("; "), None)
    })
}

/// Whether the link `current` already is `desired`: the same data, and every label and
/// annotation `desired` has.
fn same_link(current: Option<&Secret>, desired: &Secret) -> bool {
    current.is_some_and(|c| {
        let contains = |have: &Option<BTreeMap<String, String>>,
                        want: &Option<BTreeMap<String, String>>| {
            want.iter()
                .flatten()
                .all(|(k, v)| have.as_ref().and_then(|h| h.get(k)) == Some(v))
        };
        c.data == desired.data
            && contains(&c.metadata.labels, &desired.metadata.labels)
            && contains(&c.metadata.annotations, &desired.metadata.annotations)
    })
}

/// The remote's reader credentials (its account, made or checked, and a token for it)
/// and the remote secret holding them: the Secret, where its token came from, and
/// what changed in the remote.
async fn mint_link(
    run: &Run<'_>,
    kubeconfigs: &Kubeconfigs,
    remote: &Target<'_>,
    request: &RemoteSecretRequest,
    link: Option<&Secret>,
) -> Result<(Secret, String, Vec<String>)> {
    let ns = run.opts.namespace.as_str();
    // The token Secret the link uses now is kept (a rotation, or another primary of a
    // multi-primary mesh, may have left a second one for the same account).
    let mut request = request.clone();
    if request.token.secret_name.is_none()
        && request.token.strategy == mesh_kubeconfig::TokenStrategy::Auto
        && let Some(link) = link
        && let Some(in_use) = token_secret_in_use(link, remote, &request).await?
    {
        request.token.secret_name = Some(in_use);
    }
    let generated = mesh_kubeconfig::generate_remote_secret(kubeconfigs, &request).await?;
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
        let secret = generated.token_secret.clone().unwrap_or_default();
        let rctx = &remote.spec.context;
        what.push(
            if generated.token_source == mesh_kubeconfig::TokenSource::TokenRequest {
                format!(
                    "created Secret {ns}/{secret} in {rctx} and a TokenRequest token bound to it (deleting the Secret revokes the token)"
                )
            } else {
                format!("created token Secret {ns}/{secret} in {rctx}")
            },
        );
    }
    Ok((generated.secret, generated.token_source.to_string(), what))
}

/// The token Secret (in the remote) whose token `link` (kubectl-mesh's remote Secret)
/// holds now, when that Secret is still there.
async fn token_secret_in_use(
    link: &Secret,
    remote: &Target<'_>,
    request: &RemoteSecretRequest,
) -> Result<Option<String>> {
    let token = links::link_token(link, &remote.name);
    let Some(token_secret) = token.as_ref().and_then(links::token_claims).and_then(|c| {
        c["kubernetes.io/serviceaccount/secret.name"]
            .as_str()
            .map(str::to_owned)
    }) else {
        return Ok(None);
    };
    let rctx = remote.spec.context.as_str();
    let in_remote: Api<Secret> = Api::namespaced(remote.client.clone(), &request.namespace);
    let exists = in_remote
        .get_opt(&token_secret)
        .await
        .map_err(|e| {
            kube(
                rctx,
                format!("reading Secret {}/{token_secret}", request.namespace),
                e,
            )
        })?
        .is_some();
    Ok(exists.then_some(token_secret))
}

/// The link's token renewed the way `rotate` replaces it (a new token bound to an
/// object of ours, checked, written, in use, then the old one revoked) when it expires
/// within [`EXPIRY_WARNING`](crate::status::EXPIRY_WARNING); kept otherwise.
async fn renew_link(
    run: &Run<'_>,
    kubeconfigs: &Kubeconfigs,
    primary: &Target<'_>,
    remote: &Target<'_>,
    ttl: std::time::Duration,
) -> Result<Outcome> {
    let window = crate::status::EXPIRY_WARNING;
    let rctx = remote.spec.context.as_str();
    let mut opts = crate::RotateOptions::new(&primary.spec.context, &[rctx]);
    opts.namespace = run.opts.namespace.clone();
    opts.token_ttl = Some(ttl);
    opts.if_expiring_within = Some(window);
    opts.dry_run = run.opts.dry_run;
    opts.request_timeout = run.opts.request_timeout;
    opts.wait = run.opts.wait;
    opts.interrupt = run.opts.interrupt.clone();
    let summary = crate::rotate::rotate(kubeconfigs, &opts, &crate::NoProgress).await?;
    for w in summary.warnings {
        run.warn(rctx, "remote secret", w);
    }
    let Some(link) = summary.links.into_iter().next() else {
        return Ok(Outcome::Unchanged);
    };
    let days = window.as_secs() / 86_400;
    let old = link.old_token.expires_at.unwrap_or_else(|| "never".into());
    Ok(match link.outcome {
        crate::LinkOutcome::NotExpiring => Outcome::Found(format!(
            "kept the link's token: it expires at {old}, more than {days} days from now"
        )),
        crate::LinkOutcome::Rotated | crate::LinkOutcome::Resumed => {
            let new = link
                .new_token
                .and_then(|t| t.expires_at)
                .unwrap_or_default();
            Outcome::Changed(
                format!(
                    "renewed the token of remote Secret {} in {} (it expired within {days} days, at {old}): the new one expires at {new}",
                    link.secret, primary.spec.context
                ),
                None,
            )
        }
        crate::LinkOutcome::WouldRotate => Outcome::Changed(
            format!(
                "would renew the token of remote Secret {} in {} (it expires within {days} days, at {old})",
                link.secret, primary.spec.context
            ),
            None,
        ),
        crate::LinkOutcome::Failed => {
            return Err(Error::Kube {
                cluster: rctx.to_owned(),
                action: "renewing the link's token".into(),
                reason: link.error.unwrap_or_default(),
                status: None,
                source: None,
            });
        }
    })
}
