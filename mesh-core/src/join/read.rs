//! Preflight's reading: everything join reads before it judges, every cluster
//! concurrently. Nothing here decides; what was read (or the error that stopped a read)
//! is data for [`judge`](super::judge).

use std::collections::BTreeMap;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{ApiResource, DynamicObject};
use kube::{Api, Client};
use mesh_kubeconfig::Kubeconfigs;

use super::JoinOptions;
use super::adopt::{self, FoundLink};
use super::releases::Installer;
use crate::cluster::{self, ClusterFacts, Permissions, Role};
use crate::error::{Error, Problem, kube};
use crate::install::{self, Charts, Helm, InstallOptions, Listed};

/// What preflight read, in the order of [`JoinOptions::specs`] where per cluster.
pub(super) struct Read {
    /// When it was read (a pending helm release's age is counted to this).
    pub at: SystemTime,
    /// When installing Istio: helm, the charts and the user's values.
    pub install: Option<InstallRead>,
    /// Each cluster, or why it could not be read.
    pub clusters: Vec<Result<ClusterRead, Error>>,
    /// The primary's remote secrets (empty when the primary could not be read).
    pub remote_secrets: Result<Vec<Secret>, Error>,
    /// Each remote's credential inputs, checked (`Ok` for a remote that could not be read).
    pub credentials: Vec<Result<(), mesh_kubeconfig::Error>>,
    /// Each remote's links among the primary's remote secrets (whoever made them).
    pub links: Vec<Vec<FoundLink>>,
}

impl Read {
    /// Whether the cluster of `context` was read.
    pub fn readable(&self, context: &str) -> bool {
        self.clusters
            .iter()
            .any(|c| c.as_ref().is_ok_and(|c| c.facts.context == context))
    }
}

/// helm, the charts and the user's values files and settings (when installing Istio).
pub(super) struct InstallRead {
    /// The values files that do not exist and the settings helm would not read.
    pub inputs: Vec<Problem>,
    /// The charts, or why they were not found.
    pub charts: Result<Charts, Error>,
    /// helm's version, or why it does not run.
    pub helm: Result<String, Error>,
}

/// What was read of one cluster.
pub(super) struct ClusterRead {
    /// Its facts.
    pub facts: ClusterFacts,
    /// Its helm releases in the Istio namespace (when installing Istio).
    pub releases: BTreeMap<String, Listed>,
    /// The Istio objects with the names join gives its own, as found.
    pub istio_objects: Vec<FoundObject>,
    /// Every Gateway in the Istio namespace and its Services, when a Gateway somebody
    /// made does TLS `AUTO_PASSTHROUGH` and none of kubectl-mesh's is there (it may do
    /// the cross-network job: [`adopt::passthrough_gateways`]).
    pub passthrough: Option<(Vec<DynamicObject>, Vec<Service>)>,
}

/// An Istio object join would create, as found under its name.
pub(super) struct FoundObject {
    /// Its kind and version.
    pub resource: ApiResource,
    /// Its name.
    pub name: String,
    /// The object, `None` when there is none, or why it could not be read.
    pub found: Result<Option<DynamicObject>, Error>,
}

/// Reads every cluster, the primary's remote secrets, helm and the charts (when installing Istio)
/// and the remotes' credential inputs. Returns what was read, each cluster's client
/// (`None` when unreadable) and, when helm and the charts are usable, the installer.
pub(super) async fn read<'a>(
    kubeconfigs: &Kubeconfigs,
    opts: &'a JoinOptions,
) -> (Read, Vec<Option<Client>>, Option<Installer<'a>>) {
    let ns = opts.namespace.as_str();
    let (install, installer) = match &opts.install {
        Some(options) => {
            let (read, installer) = read_install(options, opts).await;
            (Some(read), installer)
        }
        None => (None, None),
    };
    let helm = installer.as_ref().map(|i| &i.helm);
    let reads = opts.specs().enumerate().map(|(i, spec)| async move {
        let client = kubeconfigs
            .client(&spec.context, opts.request_timeout)
            .await?;
        let role = if i == 0 { Role::Primary } else { Role::Remote };
        let mut facts =
            cluster::read_facts(&client, &spec.context, ns, Permissions::Join(role)).await?;
        let releases = match helm {
            Some(helm) => helm.releases(&spec.context).await?,
            None => BTreeMap::new(),
        };
        let istio_objects = istio_objects(&client, &facts, opts, i == 0).await;
        // A refused list is one more denial, reported with the others.
        let passthrough = match &facts.gateway_crd_version {
            Some(version) => {
                match adopt::passthrough_gateways(&client, &spec.context, ns, version).await {
                    Ok(found) => found,
                    Err(e) if e.is_forbidden() => {
                        facts.denied.push(format!(
                            "list gateways.networking.istio.io and services in namespace {ns}"
                        ));
                        None
                    }
                    Err(e) => return Err(e),
                }
            }
            None => None,
        };
        Ok::<_, Error>((
            client,
            ClusterRead {
                facts,
                releases,
                istio_objects,
                passthrough,
            },
        ))
    });
    let mut clients = Vec::new();
    let mut clusters = Vec::new();
    for result in futures::future::join_all(reads).await {
        match result {
            Ok((client, read)) => {
                clients.push(Some(client));
                clusters.push(Ok(read));
            }
            Err(e) => {
                clients.push(None);
                clusters.push(Err(e));
            }
        }
    }
    let remote_secrets = match &clients[0] {
        Some(primary) => crate::links::remote_secrets(primary, &opts.primary.context, ns).await,
        None => Ok(Vec::new()),
    };
    // The remote secret's own inputs (https server, a CA the user gave when a context
    // skips TLS verification), before anything is written.
    let credentials = opts
        .remotes
        .iter()
        .zip(&clients[1..])
        .map(|(remote, client)| {
            if client.is_none() {
                return Ok(()); // unreadable: already a problem
            }
            let mut request = remote.credentials().clone();
            request.cluster_name = None;
            request.check(kubeconfigs)
        })
        .collect();
    let links = match &remote_secrets {
        Ok(secrets) => {
            // A remote is known by its API server URL(s) and its kube-system UID.
            let servers: Vec<Vec<String>> = opts
                .remotes
                .iter()
                .map(|r| {
                    let mut urls: Vec<String> = kubeconfigs
                        .resolve(r.context())
                        .map(|c| c.server)
                        .into_iter()
                        .collect();
                    urls.extend(r.credentials().server.clone());
                    urls
                })
                .collect();
            let uid = |c: &Result<ClusterRead, Error>| {
                c.as_ref()
                    .ok()
                    .and_then(|c| c.facts.kube_system_uid.clone())
            };
            let uids: Vec<Option<String>> = clusters[1..].iter().map(uid).collect();
            let primary_id = clusters[0]
                .as_ref()
                .ok()
                .and_then(|c| c.facts.istiod_cluster_id.clone());
            adopt::find_links(
                secrets,
                &servers,
                &uids,
                primary_id.as_deref(),
                opts.request_timeout,
            )
            .await
        }
        Err(_) => vec![Vec::new(); opts.remotes.len()],
    };
    let read = Read {
        at: SystemTime::now(),
        install,
        clusters,
        remote_secrets,
        credentials,
        links,
    };
    (read, clients, installer)
}

/// helm and the charts, for installing Istio: what was found, and the installer when usable.
async fn read_install<'a>(
    install: &'a InstallOptions,
    opts: &'a JoinOptions,
) -> (InstallRead, Option<Installer<'a>>) {
    let inputs = install::check_inputs(install);
    let charts = Charts::find(&install.charts);
    let helm = Helm {
        opts: install,
        namespace: &opts.namespace,
        timeout: opts.wait,
        interrupt: opts.interrupt.clone(),
    };
    let version = helm.version().await;
    if let Ok(version) = &version {
        tracing::debug!(%version, "helm runs");
    }
    let installer = match (&charts, &version) {
        (Ok(charts), Ok(_)) if inputs.is_empty() => Some(Installer {
            helm,
            charts: charts.clone(),
        }),
        _ => None,
    };
    let read = InstallRead {
        inputs,
        charts,
        helm: version,
    };
    (read, installer)
}

/// The Istio objects join would create on a cluster, as found under their names: the
/// cross-network Gateway (when there is or will be a gateway) and, on the primary with
/// installing Istio, with remotes, the pair exposing istiod. Without the CRD there is none yet.
async fn istio_objects(
    client: &Client,
    facts: &ClusterFacts,
    opts: &JoinOptions,
    primary: bool,
) -> Vec<FoundObject> {
    let ns = opts.namespace.as_str();
    let Some(version) = &facts.gateway_crd_version else {
        return Vec::new();
    };
    let mut wanted = Vec::new();
    if facts.gateway.is_some() || opts.install.is_some() {
        wanted.push((
            cluster::CROSS_NETWORK_GATEWAY.to_owned(),
            cluster::gateway_resource(version),
        ));
    }
    if primary && opts.install.is_some() && !opts.remotes.is_empty() {
        for (object, resource) in cluster::expose_istiod(ns, version) {
            wanted.push((object.metadata.name.unwrap_or_default(), resource));
        }
    }
    let mut found = Vec::new();
    for (name, resource) in wanted {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
        let object = api.get_opt(&name).await.map_err(|e| {
            kube(
                &facts.context,
                format!("reading {} {ns}/{name}", resource.kind),
                e,
            )
        });
        found.push(FoundObject {
            resource,
            name,
            found: object,
        });
    }
    found
}
