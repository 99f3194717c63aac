//! One cluster as kubectl-mesh sees it: the names kubectl-mesh and Istio agree on
//! (labels, annotations, object names, the ownership label [`MANAGED_BY_LABEL`]), the
//! [`Role`] a cluster plays and its default cluster ID ([`default_cluster_id`]), what a
//! cluster already is ([`read_facts`] → [`ClusterFacts`]), and the objects kubectl-mesh
//! writes, built without a request ([`cacerts_secret`], [`cross_network_gateway`],
//! [`expose_istiod`]).
//!
//! ```
//! use mesh_core::cluster::{NETWORK_LABEL, Role, default_cluster_id};
//!
//! // A remote is named after its context; a primary after istiod's CLUSTER_ID.
//! assert_eq!(default_cluster_id(Role::Remote, "kind-East_2", None), "kind-east-2");
//! assert_eq!(default_cluster_id(Role::Primary, "ctx", Some("cluster1")), "cluster1");
//! assert_eq!(NETWORK_LABEL, "topology.istio.io/network");
//! ```
//!
//! Inside, four files: `names.rs`, `facts.rs` (the single readers of the Gateway CRD
//! version, the east-west gateway and the `istiod` Service), `objects.rs`, and `api.rs`
//! (server-side apply, the conditional read-modify-write `update`, namespace creation and
//! polling — crate-internal). Everything is re-exported here, so `crate::cluster::X`
//! names each item wherever it lives.

pub(crate) mod api;
pub(crate) mod facts;
pub(crate) mod lease;
#[cfg(test)]
pub(crate) mod mock;
pub(crate) mod names;
pub(crate) mod objects;

pub(crate) use api::{
    Attempt, create_namespace, delete_checked, endpoint_slices, retry_conflicts, update,
    update_from,
};
pub(crate) use api::{apply, poll};
pub use facts::{ClusterFacts, GatewayService, Permissions, find_gateway, read_facts};
pub(crate) use facts::{
    IstiodService, gateway_crd_version, gateway_service_on, istiod_service, kube_system_uid,
};
pub(crate) use names::owned_selector;
pub use names::{
    CACERTS, CONTROL_PLANE_CLUSTERS_ANNOTATION, CROSS_NETWORK_GATEWAY, ControlPlanes,
    FIELD_MANAGER, ISTIOD_GATEWAY, ISTIOD_VIRTUAL_SERVICE, MANAGED_BY_LABEL, MESH_CONFIG_MAP,
    MODEL_ANNOTATION, Model, NETWORK_LABEL, Networks, Role, default_cluster_id, recorded_model,
};
pub(crate) use objects::gateway_does_the_job;
pub use objects::{cacerts_secret, cross_network_gateway, expose_istiod, gateway_resource};
