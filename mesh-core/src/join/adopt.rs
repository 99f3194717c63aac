//! What join finds already built by hand — the guide's `n2-k8s-secret`, istioctl's
//! `istio-remote-secret-<name>`, the guide's `cluster-aware-gateway` — and takes over
//! instead of making a second copy that istiod would read twice.
//!
//! Reading is [`find_links`] (preflight's I/O: which links reach each remote, and whether
//! their credentials work); deciding is pure: [`plan_link`] (keep, replace, or a problem)
//! and [`adopt_gateway`] (a cross-network Gateway that already does the job).

use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::DynamicObject;
use kube::{Api, Client};
use mesh_kubeconfig::{Kubeconfigs, ReaderAccount};
use secrecy::{ExposeSecret, SecretString};

use crate::cluster::GatewayService;
use crate::error::{ProblemKind, Result, kube};
use crate::links::{self, Link, link_server, same_server};

/// What a hand-made link's credentials proved against the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LinkCheck {
    /// kubectl-mesh's own link (its Secret carries the ownership label): not checked,
    /// join renews it.
    Ours,
    /// It authenticates (as `account`, when that is a ServiceAccount), may read what
    /// istiod reads and may write nothing.
    Works { account: Option<ReaderAccount> },
    /// It authenticates as `account` and may write nothing, but may not make `missing`
    /// reads istiod needs (the guide binds `view`, which has no nodes and no Secrets).
    LacksReads {
        account: ReaderAccount,
        missing: Vec<String>,
    },
    /// It does not work, or may write: why.
    Broken(String),
}

/// A link (one data key of a remote secret) in the primary that reaches a remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FoundLink {
    /// The Secret's name.
    pub secret: String,
    /// The data key: istiod's cluster ID for the remote.
    pub key: String,
    /// What its credentials proved ([`LinkCheck::Ours`] for kubectl-mesh's own).
    pub check: LinkCheck,
}

impl FoundLink {
    /// Whether kubectl-mesh made it.
    pub fn ours(&self) -> bool {
        self.check == LinkCheck::Ours
    }

    /// `Secret NS/NAME key KEY`, for messages.
    pub fn describe(&self, ns: &str) -> String {
        format!(
            "remote Secret {ns}/{} (cluster ID {})",
            self.secret, self.key
        )
    }
}

/// The UID of `kube-system` in the cluster a link's own credentials reach, if they
/// reach one (over https only: a token is not sent in the clear).
async fn link_cluster_uid(kubeconfig: &SecretString, timeout: Option<Duration>) -> Option<String> {
    mesh_kubeconfig::require_https(&link_server(kubeconfig)?, false).ok()?;
    let kc = Kubeconfigs::from_yaml(kubeconfig.expose_secret()).ok()?;
    let context = kc.context_or_current(None).ok()?;
    let client = kc.client(&context, timeout).await.ok()?;
    crate::cluster::kube_system_uid(&client, &context)
        .await
        .ok()
        .flatten()
}

/// What a hand-made link's credentials prove (never logged: the kubeconfig holds a token).
async fn check_link(kubeconfig: &SecretString, timeout: Option<Duration>) -> LinkCheck {
    // Its token goes to its server only over https, as for every link read.
    if let Some(server) = link_server(kubeconfig)
        && let Err(e) = mesh_kubeconfig::require_https(&server, false)
    {
        return LinkCheck::Broken(e.to_string());
    }
    let account_of = ReaderAccount::from_username;
    match mesh_kubeconfig::verify_remote_kubeconfig(kubeconfig, None, timeout).await {
        Ok(v) if v.is_ok() => LinkCheck::Works {
            account: account_of(&v.user),
        },
        Ok(v) if v.allowed_writes.is_empty() => match account_of(&v.user) {
            Some(account) => LinkCheck::LacksReads {
                account,
                missing: v.denied_reads.iter().map(ToString::to_string).collect(),
            },
            None => LinkCheck::Broken(format!(
                "it authenticates as {}, not as a ServiceAccount, and {}",
                v.user,
                v.problems().join("; ")
            )),
        },
        Ok(v) => LinkCheck::Broken(format!(
            "it authenticates as {} but {}",
            v.user,
            v.problems().join("; ")
        )),
        Err(e) => LinkCheck::Broken(e.to_string()),
    }
}

/// Each remote's links among the primary's remote secrets: a link names the remote's API
/// server (`servers[i]`: the context's URL and, when given, the URL the primary is to
/// use), or its own credentials reach a cluster with the remote's `kube-system` UID
/// (`uids[i]`). Keys equal to `primary_id` are istiod's own cluster and skipped.
/// Hand-made links found are checked against the remote ([`LinkCheck`]).
pub(super) async fn find_links(
    secrets: &[Secret],
    servers: &[Vec<String>],
    uids: &[Option<String>],
    primary_id: Option<&str>,
    timeout: Option<Duration>,
) -> Vec<Vec<FoundLink>> {
    let all = links::links(secrets);
    let ours = |name: &str| {
        secrets
            .iter()
            .any(|s| s.metadata.name.as_deref() == Some(name) && links::managed_by_us(&s.metadata))
    };
    let candidates: Vec<&Link> = all
        .iter()
        .filter(|l| Some(l.key.as_str()) != primary_id)
        .collect();
    let by_server = |l: &Link| {
        let server = link_server(&l.kubeconfig)?;
        servers
            .iter()
            .position(|urls| urls.iter().any(|u| same_server(u, &server)))
    };
    // Links that name no remote's server are asked for their cluster's identity; all
    // concurrently.
    // Each link: which remote it reaches, then (made by hand) what its credentials prove.
    let reached = futures::future::join_all(candidates.iter().map(|l| async move {
        let i = match by_server(l) {
            Some(i) => i,
            None if uids.iter().all(Option::is_none) => return None,
            None => {
                let uid = link_cluster_uid(&l.kubeconfig, timeout).await?;
                uids.iter()
                    .position(|u| u.as_deref() == Some(uid.as_str()))?
            }
        };
        let check = if ours(&l.secret) {
            LinkCheck::Ours
        } else {
            check_link(&l.kubeconfig, timeout).await
        };
        Some((i, check))
    }))
    .await;
    let mut found = vec![Vec::new(); servers.len()];
    for (l, reached) in candidates.iter().zip(reached) {
        if let Some((i, check)) = reached {
            found[i].push(FoundLink {
                secret: l.secret.clone(),
                key: l.key.clone(),
                check,
            });
        }
    }
    found
}

/// What join does about a remote's link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LinkPlan {
    /// kubectl-mesh's own link: made, or refreshed in `secret` (an existing link of
    /// ours under its own name).
    Own { secret: Option<String> },
    /// A hand-made link that works: kept as it is, under its cluster ID (when its
    /// ServiceAccount lacks reads istiod needs, [`LinkCheck::LacksReads`], that account
    /// is bound to the reader role).
    Adopt { link: FoundLink },
    /// Hand-made links replaced by kubectl-mesh's own: ours first, then these removed.
    Replace { old: Vec<FoundLink> },
}

/// A problem with a remote's existing links, as judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LinkProblem {
    pub kind: ProblemKind,
    pub message: String,
}

/// Decides what to do about the links that reach one remote: `given` is the cluster
/// name the user gave, `name` the one join would use without links, `ours_name` the
/// Secret kubectl-mesh's link would be (under `name`), `replace` whether
/// the user asked for kubectl-mesh's own link in place of hand-made ones. Returns the
/// plan and the cluster name join uses (a kept link keeps its cluster ID), or a problem.
pub(super) fn plan_link(
    found: &[FoundLink],
    given: Option<&str>,
    name: &str,
    ours_name: &str,
    replace: bool,
    ns: &str,
    ctx: &str,
) -> Result<(LinkPlan, String), LinkProblem> {
    if replace && found.iter().any(|l| !l.ours()) {
        // istiod ignores a second Secret with a cluster ID it already reads, and drops the
        // cluster when the first goes: a link under the same ID in another Secret cannot
        // be replaced without istiod losing the cluster until it restarts.
        if let Some(same) = found
            .iter()
            .find(|l| !l.ours() && l.key == name && l.secret != ours_name)
        {
            return Err(LinkProblem {
                kind: ProblemKind::NameTaken,
                message: format!(
                    "{} links {ctx} under the cluster ID kubectl-mesh's own link would have; istiod ignores a second Secret with an ID it already reads and drops the cluster when the first goes, so it cannot be replaced in place: give {ctx} another cluster name",
                    same.describe(ns)
                ),
            });
        }
        // Everything that reaches the remote but the link join makes now goes.
        let old = found
            .iter()
            .filter(|l| !(l.ours() && l.secret == ours_name && l.key == name))
            .cloned()
            .collect();
        return Ok((LinkPlan::Replace { old }, name.to_owned()));
    }
    match found {
        [] => Ok((LinkPlan::Own { secret: None }, name.to_owned())),
        [link] => {
            if let Some(given) = given
                && given != link.key
            {
                return Err(LinkProblem {
                    kind: ProblemKind::LinkNamedOtherwise,
                    message: format!(
                        "{} already links {ctx} to the primary under cluster ID {:?}, not {given:?}; give no cluster name to keep it, or replace it with kubectl-mesh's own under {given:?}",
                        link.describe(ns),
                        link.key
                    ),
                });
            }
            if link.ours() {
                // Refreshed where it is, unless that is the name it would have anyway.
                let secret = (link.secret != mesh_kubeconfig::remote_secret_name(&link.key))
                    .then(|| link.secret.clone());
                return Ok((LinkPlan::Own { secret }, link.key.clone()));
            }
            match &link.check {
                LinkCheck::Broken(why) => Err(LinkProblem {
                    kind: ProblemKind::LinkBroken,
                    message: format!(
                        "{}, made by hand, links {ctx} to the primary but does not work: {why}; fix it, or replace it with kubectl-mesh's own",
                        link.describe(ns)
                    ),
                }),
                _ => Ok((LinkPlan::Adopt { link: link.clone() }, link.key.clone())),
            }
        }
        several => Err(LinkProblem {
            kind: ProblemKind::DuplicateLinks,
            message: format!(
                "{} links reach {ctx}: {}; istiod reads it once per link, under each cluster ID (duplicate endpoints); keep one — delete the others, or replace the hand-made ones with kubectl-mesh's own",
                several.len(),
                several
                    .iter()
                    .map(|l| l.describe(ns))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// A cross-network Gateway somebody else made that already does the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AdoptedGateway {
    /// The Gateway's name.
    pub name: String,
    /// The gateway Service it serves, with the port it serves on.
    pub service: GatewayService,
}

/// A Gateway not made by kubectl-mesh that does the cross-network job — TLS
/// `AUTO_PASSTHROUGH` for `*.local` (or `*`) on a port of a gateway Service whose pods it
/// selects: the guide's `cluster-aware-gateway` on the ingress gateway's 443, Istio's
/// sample `cross-network-gateway` on 15443. One that serves `preferred` (the east-west
/// gateway join found) wins; else the first by name. None while a Gateway of
/// kubectl-mesh's own is there: join keeps what it made.
pub(crate) fn adopt_gateway(
    gateways: &[DynamicObject],
    services: &[Service],
    preferred: Option<&GatewayService>,
) -> Option<AdoptedGateway> {
    if gateways.iter().any(|g| links::managed_by_us(&g.metadata)) {
        return None;
    }
    let mut sorted: Vec<&DynamicObject> = gateways.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut candidates = Vec::new();
    for g in sorted {
        for svc in services {
            for port in passthrough_ports(g) {
                let Some(service) = crate::cluster::gateway_service_on(svc, port) else {
                    continue;
                };
                if crate::cluster::gateway_does_the_job(g, &service) {
                    candidates.push(AdoptedGateway {
                        name: g.metadata.name.clone().unwrap_or_default(),
                        service,
                    });
                }
            }
        }
    }
    let preferred_one = preferred.and_then(|p| {
        candidates
            .iter()
            .position(|c| c.service.name == p.name && c.service.port == p.port)
            .or_else(|| candidates.iter().position(|c| c.service.name == p.name))
    });
    match preferred_one {
        Some(i) => Some(candidates.swap_remove(i)),
        None => candidates.into_iter().next(),
    }
}

/// The ports of a Gateway's TLS `AUTO_PASSTHROUGH` servers.
fn passthrough_ports(gateway: &DynamicObject) -> Vec<u16> {
    gateway.data["spec"]["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["tls"]["mode"].as_str() == Some("AUTO_PASSTHROUGH"))
        .filter_map(|s| u16::try_from(s["port"]["number"].as_u64()?).ok())
        .collect()
}

/// The Gateways somebody other than kubectl-mesh made in the Istio namespace with a TLS
/// `AUTO_PASSTHROUGH` server (one list request).
pub(crate) async fn hand_made_passthrough(
    client: &Client,
    context: &str,
    ns: &str,
    crd_version: &str,
) -> Result<Vec<DynamicObject>> {
    Ok(list_gateways(client, context, ns, crd_version)
        .await?
        .into_iter()
        .filter(|g| !links::managed_by_us(&g.metadata) && !passthrough_ports(g).is_empty())
        .collect())
}

async fn list_gateways(
    client: &Client,
    context: &str,
    ns: &str,
    crd_version: &str,
) -> Result<Vec<DynamicObject>> {
    let resource = crate::cluster::gateway_resource(crd_version);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    Ok(api
        .list(&Default::default())
        .await
        .map_err(|e| kube(context, format!("listing Gateways in {ns}"), e))?
        .items)
}

/// What [`adopt_gateway`] looks at — every Gateway in the Istio namespace, and its
/// Services — when it can adopt one: a hand-made Gateway does TLS `AUTO_PASSTHROUGH` and
/// none of kubectl-mesh's is there (`None` otherwise, and the Services are not listed).
pub(crate) async fn passthrough_gateways(
    client: &Client,
    context: &str,
    ns: &str,
    crd_version: &str,
) -> Result<Option<(Vec<DynamicObject>, Vec<Service>)>> {
    let gateways = list_gateways(client, context, ns, crd_version).await?;
    let adoptable = !gateways.iter().any(|g| links::managed_by_us(&g.metadata))
        && gateways.iter().any(|g| !passthrough_ports(g).is_empty());
    if !adoptable {
        return Ok(None);
    }
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let services = services
        .list(&Default::default())
        .await
        .map_err(|e| kube(context, format!("listing Services in {ns}"), e))?
        .items;
    Ok(Some((gateways, services)))
}

/// The gateway Service (and port) a cluster's cross-network traffic uses: the one a
/// cross-network Gateway somebody made serves ([`adopt_gateway`]), else `found`, the
/// east-west gateway [`find_gateway`](crate::cluster::find_gateway) found. What join
/// decides in preflight, read the same way for status. `crd_version`: the Gateway CRD's
/// served version, `None` without the CRD.
pub(crate) async fn gateway_in_use(
    client: &Client,
    context: &str,
    ns: &str,
    crd_version: Option<&str>,
    found: Option<GatewayService>,
) -> Result<Option<GatewayService>> {
    let Some(version) = crd_version else {
        return Ok(found);
    };
    // Credentials that may not read Istio's Gateways (a link's, say) see the east-west one.
    let adopted = match passthrough_gateways(client, context, ns, version).await {
        Ok(listed) => listed.and_then(|(gws, svcs)| adopt_gateway(&gws, &svcs, found.as_ref())),
        Err(e) if e.is_forbidden() => None,
        Err(e) => return Err(e),
    };
    Ok(adopted.map(|a| a.service).or(found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn link(secret: &str, key: &str, check: LinkCheck) -> FoundLink {
        FoundLink {
            secret: secret.into(),
            key: key.into(),
            check,
        }
    }

    fn plan(
        found: &[FoundLink],
        given: Option<&str>,
        replace: bool,
    ) -> Result<(LinkPlan, String), LinkProblem> {
        plan_link(
            found,
            given,
            "cluster2",
            "istio-remote-secret-cluster2",
            replace,
            "istio-system",
            "cluster2",
        )
    }

    #[test]
    fn links_are_kept_replaced_or_refused() {
        let guide = link(
            "n2-k8s-secret",
            "n2-k8s-config",
            LinkCheck::Works { account: None },
        );
        let ours = link("istio-remote-secret-cluster2", "cluster2", LinkCheck::Ours);
        // No link: ours, under the name join would give.
        assert_eq!(
            plan(&[], None, false).unwrap(),
            (LinkPlan::Own { secret: None }, "cluster2".into())
        );
        // The guide's link works: kept, and its cluster ID is the remote's name.
        let (p, name) = plan(std::slice::from_ref(&guide), None, false).unwrap();
        assert_eq!(
            (p, name.as_str()),
            (
                LinkPlan::Adopt {
                    link: guide.clone()
                },
                "n2-k8s-config"
            )
        );
        // Lacking reads is still adopted (join binds the reader role).
        let lacking = link(
            "n2-k8s-secret",
            "n2-k8s-config",
            LinkCheck::LacksReads {
                account: ReaderAccount::new("istio-system", "istio-multi"),
                missing: vec!["list nodes".into()],
            },
        );
        assert!(matches!(
            plan(std::slice::from_ref(&lacking), None, false).unwrap().0,
            LinkPlan::Adopt { .. }
        ));
        // A name given that is not the link's: refused.
        let e = plan(std::slice::from_ref(&guide), Some("cluster2"), false).unwrap_err();
        assert_eq!(e.kind, ProblemKind::LinkNamedOtherwise);
        assert!(e.message.contains("n2-k8s-secret"), "{}", e.message);
        // A broken hand-made link: refused, saying why.
        let broken = link(
            "n2-k8s-secret",
            "n2-k8s-config",
            LinkCheck::Broken("Unauthorized".into()),
        );
        let e = plan(std::slice::from_ref(&broken), None, false).unwrap_err();
        assert_eq!(e.kind, ProblemKind::LinkBroken);
        assert!(e.message.contains("Unauthorized"));
        // Two links to one cluster: refused, naming both.
        let e = plan(&[guide.clone(), ours.clone()], None, false).unwrap_err();
        assert_eq!(e.kind, ProblemKind::DuplicateLinks);
        assert!(
            e.message.contains("n2-k8s-secret")
                && e.message.contains("istio-remote-secret-cluster2")
        );
        // Replacing: every other link goes, ours stays.
        let (p, name) = plan(&[guide.clone(), ours.clone()], None, true).unwrap();
        assert_eq!(name, "cluster2");
        assert_eq!(
            p,
            LinkPlan::Replace {
                old: vec![guide.clone()]
            }
        );
        // Replacing a broken one is fine.
        assert!(matches!(
            plan(&[broken], None, true).unwrap().0,
            LinkPlan::Replace { .. }
        ));
        // Our own link under another name: refreshed there, its name kept.
        let ours_c2 = link("istio-remote-secret-c2", "c2", LinkCheck::Ours);
        assert_eq!(
            plan(&[ours_c2], None, false).unwrap(),
            (LinkPlan::Own { secret: None }, "c2".into())
        );
        let custom = link("n2-k8s-secret", "cluster2", LinkCheck::Ours);
        assert_eq!(
            plan(&[custom], None, false).unwrap(),
            (
                LinkPlan::Own {
                    secret: Some("n2-k8s-secret".into())
                },
                "cluster2".into()
            )
        );
        // Replacing a hand-made link with our ID in another Secret would drop the cluster.
        let same_id = link("hand-made", "cluster2", LinkCheck::Works { account: None });
        assert_eq!(
            plan(&[same_id], None, true).unwrap_err().kind,
            ProblemKind::NameTaken
        );
        // istioctl's Secret has our name: written over in place (istiod updates it).
        let istioctl = link(
            "istio-remote-secret-cluster2",
            "cluster2",
            LinkCheck::Works { account: None },
        );
        assert_eq!(
            plan(std::slice::from_ref(&istioctl), None, true).unwrap().0,
            LinkPlan::Replace {
                old: vec![istioctl]
            }
        );
        // Replace with nothing hand-made: nothing to replace.
        assert_eq!(
            plan(&[ours], None, true).unwrap().0,
            LinkPlan::Own { secret: None }
        );
    }

    fn gateway(name: &str, selector: serde_json::Value, port: u16, mode: &str) -> DynamicObject {
        let resource = crate::cluster::gateway_resource("v1");
        let mut g = DynamicObject::new(name, &resource).within("istio-system");
        g.data = json!({"spec": {"selector": selector, "servers": [{
            "port": {"number": port, "name": "tls", "protocol": "TLS"},
            "tls": {"mode": mode}, "hosts": ["*.local"]}]}});
        g
    }

    fn service(name: &str, istio: &str, ports: &[(&str, u16)]) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "istio-system", "labels": {"istio": istio}},
            "spec": {"selector": {"istio": istio, "app": name},
                     "ports": ports.iter().map(|(n, p)| json!({"name": n, "port": p})).collect::<Vec<_>>()},
        }))
        .unwrap()
    }

    #[test]
    fn gateways_that_do_the_job_are_adopted() {
        let ingress = service(
            "istio-ingressgateway",
            "ingressgateway",
            &[("http2", 80), ("https", 443)],
        );
        let eastwest = service(
            "istio-eastwestgateway",
            "eastwestgateway",
            &[("tls", 15443)],
        );
        let guide = gateway(
            "cluster-aware-gateway",
            json!({"istio": "ingressgateway"}),
            443,
            "AUTO_PASSTHROUGH",
        );
        let services = [eastwest.clone(), ingress.clone()];
        // The guide's Gateway on the ingress gateway's 443.
        let adopted = adopt_gateway(std::slice::from_ref(&guide), &services, None).unwrap();
        assert_eq!(adopted.name, "cluster-aware-gateway");
        assert_eq!(
            (adopted.service.name.as_str(), adopted.service.port),
            ("istio-ingressgateway", 443)
        );
        // A SIMPLE TLS Gateway, or one on a port the Service lacks, does not do the job.
        let simple = gateway(
            "cluster-aware-gateway",
            json!({"istio": "ingressgateway"}),
            443,
            "SIMPLE",
        );
        assert!(adopt_gateway(&[simple], &services, None).is_none());
        let elsewhere = gateway(
            "g",
            json!({"istio": "ingressgateway"}),
            15443,
            "AUTO_PASSTHROUGH",
        );
        assert!(adopt_gateway(&[elsewhere], &services, None).is_none());
        // Istio's sample on the east-west gateway's 15443 wins when that is the one join found.
        let sample = gateway(
            "cross-network-gateway",
            json!({"istio": "eastwestgateway"}),
            15443,
            "AUTO_PASSTHROUGH",
        );
        let preferred = crate::cluster::gateway_service_on(&eastwest, 15443).unwrap();
        let adopted = adopt_gateway(
            &[guide.clone(), sample.clone()],
            &services,
            Some(&preferred),
        )
        .unwrap();
        assert_eq!(adopted.name, "cross-network-gateway");
        // Ours there: nothing is adopted (join keeps what it made).
        let mut ours = sample.clone();
        ours.metadata.labels = Some(crate::cluster::names::owned_labels());
        assert!(adopt_gateway(&[guide, ours], &services, None).is_none());
    }
}
