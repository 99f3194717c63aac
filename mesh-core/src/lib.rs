//! Join Kubernetes clusters into one multi-network Istio mesh: a plan of idempotent,
//! checked steps over a primary (the cluster running istiod) and its remotes.
//!
//! [`join`] first reads every cluster (concurrently) and judges what it read — contexts
//! reachable and authorised, Istio present, names and networks consistent, certificates
//! valid and sharing one root with what the clusters already store — and fails with
//! every problem before changing anything. Then each step checks the cluster's state
//! and changes only what differs, by server-side apply with field manager
//! `kubectl-mesh`:
//!
//! 1. `cacerts` in every cluster given certificates;
//! 2. the `topology.istio.io/network` label on each Istio namespace (and, on remotes,
//!    `topology.istio.io/controlPlaneClusters` naming the primary);
//! 3. the cross-network Gateway (TLS `AUTO_PASSTHROUGH`, `*.local`) on each east-west gateway;
//! 4. each gateway's address (LoadBalancer ip or hostname, externalIPs, node port);
//! 5. `meshNetworks` in the primary's `istio` ConfigMap, edited structurally;
//! 6. the reader credentials in each remote and its remote secret in the primary.
//!
//! With [`JoinOptions::install`] (`join --install`), Istio is installed first where it is
//! missing, by real `helm` with Istio's own charts and the guide's values (see
//! [`primary_releases`] and [`remote_releases`]): the namespace and `cacerts` first, then
//! the CRDs (waited on until Established), istiod and the east-west gateways (waited on
//! until rolled out); a remote's istiod points at the primary's gateway address.
//!
//! Progress reaches the caller as [`Event`]s through a [`Progress`]; this crate never
//! prints or prompts.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use mesh_core::{EventKind, JoinOptions, join};
//! use mesh_kubeconfig::{KubeconfigSource, Kubeconfigs};
//!
//! let kubeconfigs = Kubeconfigs::load(&KubeconfigSource::Default)?;
//! let options = JoinOptions::new("cluster1", &["cluster2"]);
//! let summary = join(&kubeconfigs, &options, &|e: mesh_core::Event| {
//!     if let EventKind::Changed(what) = &e.kind {
//!         eprintln!("{}: {what}", e.cluster);
//!     }
//! })
//! .await?;
//! assert!(!summary.dry_run);
//! # Ok(()) }
//! ```
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

mod address;
mod cluster;
mod error;
mod install;
mod interrupt;
mod join;
mod links;
mod names;
mod networks;
mod plan;
mod progress;
mod status;
mod unjoin;

pub use address::{AddressOverride, DEFAULT_GATEWAY_PORT, GatewayAddress};
pub use cluster::facts::read_facts;
pub use cluster::{
    CACERTS, CONTROL_PLANE_CLUSTERS_ANNOTATION, CROSS_NETWORK_GATEWAY, ClusterFacts,
    GatewayService, ISTIOD_GATEWAY, ISTIOD_VIRTUAL_SERVICE, MANAGED_BY_LABEL, MESH_CONFIG_MAP,
    NETWORK_LABEL, Permissions, Role, cacerts_secret, cross_network_gateway, default_cluster_id,
    expose_istiod, find_gateway,
};
pub use error::{Error, Problem, ProblemKind, Result, ValuesFor};
pub use install::{
    BASE_RELEASE, Charts, DEFAULT_MESH_ID, EASTWEST_RELEASE, ISTIOD_RELEASE, InstallOptions,
    Release, injection_path, primary_releases, remote_releases,
};
pub use interrupt::Interrupt;
pub use join::{Change, ClusterSpec, JoinOptions, JoinSummary, JoinedCluster, Remote, join};
pub use networks::{MESH_NETWORKS_KEY, MeshNetworks};
pub use progress::{Event, EventKind, NoProgress, Progress};
pub use status::{Check, CheckKind, CheckState, ClusterRow, MeshStatus, StatusOptions, status};
pub use unjoin::{UnjoinOptions, UnjoinSummary, unjoin};
