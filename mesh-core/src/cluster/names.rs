//! The names kubectl-mesh and Istio agree on: labels, annotations, object names, the
//! ownership label, and the rule that names a cluster when the user does not.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The label Istio reads a cluster's network from (on the Istio namespace, or on a gateway Service).
pub const NETWORK_LABEL: &str = "topology.istio.io/network";
/// The annotation that tells a remote which clusters run its control plane.
pub const CONTROL_PLANE_CLUSTERS_ANNOTATION: &str = "topology.istio.io/controlPlaneClusters";
/// The Secret istiod loads its plugged-in CA from.
pub const CACERTS: &str = "cacerts";
/// The name of the Gateway that exposes a network's services to the others.
pub const CROSS_NETWORK_GATEWAY: &str = "cross-network-gateway";
/// The ConfigMap holding istiod's mesh config and `meshNetworks`.
pub const MESH_CONFIG_MAP: &str = "istio";
/// The field manager of every server-side apply.
pub use mesh_kubeconfig::FIELD_MANAGER;
/// The name of the Gateway that exposes istiod on the primary's east-west gateway.
pub const ISTIOD_GATEWAY: &str = "istiod-gateway";
/// The name of the VirtualService that routes that Gateway to istiod.
pub const ISTIOD_VIRTUAL_SERVICE: &str = "istiod-vs";

/// The ownership label (key, value) `app.kubernetes.io/managed-by=kubectl-mesh`: join
/// sets it on everything it creates, and unjoin deletes only objects carrying it.
pub use mesh_kubeconfig::MANAGED_BY_LABEL;

/// [`MANAGED_BY_LABEL`] as a map of labels, for an object kubectl-mesh creates.
pub(crate) fn owned_labels() -> BTreeMap<String, String> {
    let (key, value) = MANAGED_BY_LABEL;
    BTreeMap::from([(key.to_owned(), value.to_owned())])
}

/// [`MANAGED_BY_LABEL`] as a label selector (`key=value`), to list what kubectl-mesh made.
pub(crate) fn owned_selector() -> String {
    let (key, value) = MANAGED_BY_LABEL;
    format!("{key}={value}")
}

/// The part a cluster plays in the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// It runs the control plane (istiod) and holds the other clusters' remote secrets.
    Primary,
    /// Its workloads are in the mesh; the primary's istiod reads it through a remote secret.
    Remote,
}

impl Role {
    /// The stable id, as JSON and the status table show it: `primary` or `remote`.
    pub fn id(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Remote => "remote",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// The cluster ID of a cluster the user gave no name for — the one rule join, unjoin
/// and status share: a primary is called what its istiod calls itself (`CLUSTER_ID`,
/// `istiod_cluster_id`, as [`ClusterFacts::istiod_cluster_id`] reads it), and
/// otherwise — always for a remote — a cluster is its kubeconfig context made a
/// DNS-1123 label.
///
/// ```
/// use mesh_core::{Role, cluster::default_cluster_id};
///
/// assert_eq!(default_cluster_id(Role::Primary, "kind-east", Some("east")), "east");
/// assert_eq!(default_cluster_id(Role::Primary, "kind-east", None), "kind-east");
/// assert_eq!(default_cluster_id(Role::Remote, "Kind_West", Some("ignored")), "kind-west");
/// ```
///
/// [`ClusterFacts::istiod_cluster_id`]: crate::cluster::ClusterFacts::istiod_cluster_id
pub fn default_cluster_id(role: Role, context: &str, istiod_cluster_id: Option<&str>) -> String {
    match (role, istiod_cluster_id) {
        (Role::Primary, Some(id)) if !id.is_empty() => id.to_owned(),
        _ => mesh_kubeconfig::dns1123_label(context),
    }
}
