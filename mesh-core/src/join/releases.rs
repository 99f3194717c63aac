//! The steps of a join that installs Istio: Istio's helm releases where they are missing, in the
//! guide's order (base, istiod, east-west gateway), each waited on; a remote's istiod
//! pointed at the primary's east-west gateway.

use std::collections::BTreeMap;
use std::time::Instant;

use super::steps::{Link, PrimaryAddress};
use super::{Run, Target};
use crate::address::DEFAULT_GATEWAY_PORT;
use crate::cluster::{self, ControlPlanes, GatewayService, IstiodService, Networks, Role};
use crate::error::{Error, Result};
use crate::install::{self, Charts, EASTWEST_RELEASE, Helm, Release, ReleaseStatus};
use crate::plan::Outcome;
use crate::progress::EventKind;

/// helm and the charts, for installing Istio.
pub(super) struct Installer<'a> {
    pub helm: Helm<'a>,
    pub charts: Charts,
}

/// What the cluster has once the releases are in: the Gateway CRD's version and the
/// east-west gateway Service (in a dry run, the one the chart would make).
pub(super) struct Installed {
    pub crd_version: Option<String>,
    pub gateway: Option<GatewayService>,
    /// A dry run's gateway: its address is known only once it is installed.
    pub gateway_pending: bool,
}

/// Installs the releases the cluster misses (or left failed by an interrupted run).
pub(super) async fn install_steps(
    run: &Run<'_>,
    t: &Target<'_>,
    inst: &Installer<'_>,
    link: &Link,
    installed: &mut Installed,
) -> Result<()> {
    let ctx = t.spec.context.as_str();
    let ns = run.opts.namespace.as_str();
    let charts = &inst.charts;
    let [base, istiod, eastwest] = match link {
        Link::Primary(_) if t.model.control_planes == ControlPlanes::MultiPrimary => {
            install::member_releases(charts, &inst.helm.opts.mesh_id, &t.name, &t.network)
        }
        Link::Primary(_) => {
            install::primary_releases(charts, &inst.helm.opts.mesh_id, &t.name, &t.network)
        }
        // The remote's istiod is rebuilt below, once the primary's address is known.
        Link::Remote(_) => install::remote_releases(charts, &t.name, &t.network, ""),
    };
    if installed.crd_version.is_none() || needs_repair(t, base.name) {
        run.step(ctx, "istio-base", async {
            release_step(run, t, inst, "istio-base", &base, Await::Crds).await
        })
        .await?;
        installed.crd_version = Some(if run.opts.dry_run {
            "v1".to_owned()
        } else {
            cluster::gateway_crd_version(&t.client, ctx)
                .await?
                .unwrap_or_else(|| "v1".into())
        });
    }
    match link {
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
            let deployed = release.is_some_and(|r| r.status == ReleaseStatus::Deployed);
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
    // On one network only a primary that serves remotes needs an east-west gateway (to
    // expose istiod to them).
    let wants_gateway = t.model.networks == Networks::Different
        || (t.model.control_planes == ControlPlanes::PrimaryRemote && t.role == Role::Primary);
    if wants_gateway && (installed.gateway.is_none() || needs_repair(t, eastwest.name)) {
        run.step(ctx, "east-west gateway", async {
            release_step(run, t, inst, "east-west gateway", &eastwest, Await::Rollout).await
        })
        .await?;
        installed.gateway = if run.opts.dry_run {
            installed.gateway_pending = true;
            Some(planned_gateway(&t.network))
        } else {
            cluster::find_gateway(&t.client, ctx, ns).await?
        };
    }
    Ok(())
}

/// Whether a release of ours exists but did not deploy (an interrupted or failed run).
fn needs_repair(t: &Target<'_>, release: &str) -> bool {
    t.releases
        .get(release)
        .is_some_and(|r| r.status.needs_repair())
}

/// What a dry run's remote istiod shows for the primary's east-west gateway address
/// when that gateway is not installed yet: an address reserved for documentation
/// (RFC 5737), never a real one.
const DRY_RUN_GATEWAY_ADDRESS: &str = "192.0.2.1";

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
        Some(address) if address.is_loopback() => {
            return Err(failed(format!(
                "the primary's east-west gateway address {} is a loopback address: this cluster's proxies could not reach istiod there (and Kubernetes refuses it in the istiod EndpointSlice); give the primary's gateway an address the remote reaches",
                address.host()
            )));
        }
        Some(address) => address.host().to_owned(),
        None if run.opts.dry_run && install => {
            // The objects, rendered with a documentation address standing in for the
            // gateway's.
            let [_, istiod, _] = install::remote_releases(
                &inst.charts,
                &t.name,
                &t.network,
                DRY_RUN_GATEWAY_ADDRESS,
            );
            let objects = inst.helm.template(ctx, &istiod).await?;
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
            return Ok(Outcome::Changed(
                format!(
                    "installed release istiod (remote profile, injection path {}, {} objects) with remotePilotAddress set to the primary's east-west gateway address, known once that gateway is installed (shown as {DRY_RUN_GATEWAY_ADDRESS})",
                    install::injection_path(&t.name, &t.network),
                    objects.len()
                ),
                Some(list),
            ));
        }
        None => {
            return Err(failed(
                "the primary's east-west gateway has no address; give the primary's gateway address"
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
            "release {ns}/istiod sends this cluster's proxies to {} but the primary's east-west gateway is at {addr}; it is chart {installed} and the given charts hold {given}, so update it yourself: helm upgrade istiod <chart {installed}> -n {ns} --kube-context {ctx} --reuse-values --set {set}",
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
        .is_some_and(|r| r.status == ReleaseStatus::PendingInstall)
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
pub(super) fn planned_gateway(network: &str) -> GatewayService {
    GatewayService {
        name: EASTWEST_RELEASE.into(),
        selector: BTreeMap::from([
            ("app".to_owned(), EASTWEST_RELEASE.to_owned()),
            ("istio".to_owned(), "eastwestgateway".to_owned()),
        ]),
        port: DEFAULT_GATEWAY_PORT,
        node_port: None,
        network_label: Some(network.to_owned()),
    }
}
