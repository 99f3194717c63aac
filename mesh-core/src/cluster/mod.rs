//! One cluster as kubectl-mesh sees it, in four parts:
//!
//! - [`names`]: the labels, annotations and object names kubectl-mesh and Istio agree
//!   on, the ownership label, the cluster [`Role`] and the default cluster ID
//!   ([`default_cluster_id`]);
//! - [`facts`]: what a cluster already is, read once ([`facts::read_facts`]), and the single
//!   readers of the Gateway CRD version, the east-west gateway and the `istiod` Service;
//! - [`objects`]: the objects kubectl-mesh writes, built without a request;
//! - [`api`]: server-side apply ([`apply`]), the conditional read-modify-write
//!   ([`update`]), namespace creation and polling.
//!
//! Everything is re-exported here, so `crate::cluster::X` names each item wherever it lives.

pub(crate) mod api;
pub(crate) mod facts;
#[cfg(test)]
pub(crate) mod mock;
pub(crate) mod names;
pub(crate) mod objects;

pub(crate) use api::{Attempt, create_namespace, retry_conflicts, update, update_from};
pub use api::{apply, poll};
pub use facts::{ClusterFacts, GatewayService, Permissions, find_gateway};
pub(crate) use facts::{IstiodService, gateway_crd_version, istiod_service};
pub(crate) use names::owned_selector;
pub use names::{
    CACERTS, CONTROL_PLANE_CLUSTERS_ANNOTATION, CROSS_NETWORK_GATEWAY, FIELD_MANAGER,
    ISTIOD_GATEWAY, ISTIOD_VIRTUAL_SERVICE, MANAGED_BY_LABEL, MESH_CONFIG_MAP, NETWORK_LABEL, Role,
    default_cluster_id,
};
pub(crate) use objects::gateway_does_the_job;
pub use objects::{cacerts_secret, cross_network_gateway, expose_istiod, gateway_resource};
