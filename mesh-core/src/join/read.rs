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
use crate::cluster::{self, ClusterFacts, Permissions};
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
    /// Each remote's own remote secrets and the links among them to the join's other
    /// clusters: in a multi-primary mesh every cluster reads the others.
    pub peers: Vec<PeerRead>,
}

/// The links a cluster other than the primary holds.
pub(super) struct PeerRead {
    /// Its remote secrets (empty when it could not be read or holds none).
    pub remote_secrets: Result<Vec<Secret>, Error>,
    /// Per cluster of the join, in the order of [`JoinOptions::specs`], the links
    /// reaching it (its own entry empty; the whole list empty when unread).
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
        let role = opts.given_role(i);
        let mut facts =
            cluster::read_facts(&client, &spec.context, ns, Permissions::Join(role)).await?;
        let releases = match helm {
            Some(helm) => helm.releases(&spec.context).await?,
            None => BTreeMap::new(),
        };
        let serves_remotes = i == 0 && !opts.multi_primary_given();
        let istio_objects = istio_objects(&client, &facts, opts, serves_remotes).await;
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
            let mut reaching = links_reaching(kubeconfigs, opts, secrets, &clusters, 0).await;
            reaching.remove(0);
            reaching
        }
        Err(_) => vec![Vec::new(); opts.remotes.len()],
    };
    // Every other cluster's links too: in a multi-primary mesh each reads the others
    // (and a remote that reads clusters is a primary of some mesh).
    let peers = futures::future::join_all(clients.iter().enumerate().skip(1).map(|(i, client)| {
        let clusters = &clusters;
        async move {
            let Some(client) = client else {
                return PeerRead {
                    remote_secrets: Ok(Vec::new()),
                    links: Vec::new(),
                };
            };
            let ctx = opts
                .specs()
                .nth(i)
                .map(|s| s.context.as_str())
                .unwrap_or("");
            let remote_secrets = crate::links::remote_secrets(client, ctx, ns).await;
            let links = match &remote_secrets {
                Ok(secrets) if !secrets.is_empty() => {
                    links_reaching(kubeconfigs, opts, secrets, clusters, i).await
                }
                _ => vec![Vec::new(); clusters.len()],
            };
            PeerRead {
                remote_secrets,
                links,
            }
        }
    }))
    .await;
    let read = Read {
        at: SystemTime::now(),
        install,
        clusters,
        remote_secrets,
        credentials,
        links,
        peers,
    };
    (read, clients, installer)
}

/// Among `secrets` (the remote secrets of the cluster at `reader`, an index into
/// [`JoinOptions::specs`]), the links reaching each cluster of the join — by the API
/// server URLs its context (and `--server`) name, else by its `kube-system` UID — in
/// the order of the specs; the reader's own entry is empty.
async fn links_reaching(
    kubeconfigs: &Kubeconfigs,
    opts: &JoinOptions,
    secrets: &[Secret],
    clusters: &[Result<ClusterRead, Error>],
    reader: usize,
) -> Vec<Vec<FoundLink>> {
    let remotes = std::iter::once(None).chain(opts.remotes.iter().map(Some));
    let servers: Vec<Vec<String>> = opts
        .specs()
        .zip(remotes)
        .enumerate()
        .map(|(i, (spec, remote))| {
            if i == reader {
                return Vec::new();
            }
            let mut urls: Vec<String> = kubeconfigs
                .resolve(&spec.context)
                .map(|c| c.server)
                .into_iter()
                .collect();
            urls.extend(remote.and_then(|r| r.credentials().server.clone()));
            urls
        })
        .collect();
    let uids: Vec<Option<String>> = clusters
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (i != reader)
                .then(|| c.as_ref().ok()?.facts.kube_system_uid.clone())
                .flatten()
        })
        .collect();
    let reader_id = clusters[reader]
        .as_ref()
        .ok()
        .and_then(|c| c.facts.istiod_cluster_id.clone());
    adopt::find_links(
        secrets,
        &servers,
        &uids,
        reader_id.as_deref(),
        opts.request_timeout,
    )
    .await
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
