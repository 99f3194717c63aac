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

/// The annotation on the Istio namespace of every cluster of a multi-primary mesh joined
/// by kubectl-mesh: its value is [`ControlPlanes::id`]. A primary-remote mesh is
/// recorded by Istio's own objects instead (the remotes'
/// [`CONTROL_PLANE_CLUSTERS_ANNOTATION`] and the primary's remote secrets), so that a
/// mesh built by hand is read the same way.
pub const MODEL_ANNOTATION: &str = "kubectl-mesh/model";

/// The model a cluster's Istio namespace records ([`MODEL_ANNOTATION`]), if any: the one
/// reader of that record for join, status, unjoin and rotate.
///
/// ```
/// use k8s_openapi::api::core::v1::Namespace;
/// use mesh_core::cluster::{ControlPlanes, recorded_model};
///
/// let mut ns = Namespace::default();
/// assert_eq!(recorded_model(Some(&ns)), None);
/// ns.metadata.annotations =
///     Some([("kubectl-mesh/model".to_owned(), "multi-primary".to_owned())].into());
/// assert_eq!(recorded_model(Some(&ns)), Some(ControlPlanes::MultiPrimary));
/// ```
pub fn recorded_model(
    namespace: Option<&k8s_openapi::api::core::v1::Namespace>,
) -> Option<ControlPlanes> {
    namespace?
        .metadata
        .annotations
        .as_ref()?
        .get(MODEL_ANNOTATION)?
        .parse()
        .ok()
}

/// Which clusters run a control plane: Istio's two multicluster models.
///
/// ```
/// use mesh_core::cluster::ControlPlanes;
///
/// assert_eq!("multi-primary".parse::<ControlPlanes>(), Ok(ControlPlanes::MultiPrimary));
/// assert_eq!(ControlPlanes::PrimaryRemote.to_string(), "primary-remote");
/// assert!("primaries".parse::<ControlPlanes>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ControlPlanes {
    /// One primary runs istiod for itself and its remotes, and reads each remote.
    PrimaryRemote,
    /// Every cluster runs its own istiod and reads every other cluster.
    MultiPrimary,
}

impl ControlPlanes {
    /// The stable id: `primary-remote` or `multi-primary`.
    pub fn id(self) -> &'static str {
        match self {
            ControlPlanes::PrimaryRemote => "primary-remote",
            ControlPlanes::MultiPrimary => "multi-primary",
        }
    }
}

impl std::fmt::Display for ControlPlanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

impl std::str::FromStr for ControlPlanes {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "primary-remote" => Ok(ControlPlanes::PrimaryRemote),
            "multi-primary" => Ok(ControlPlanes::MultiPrimary),
            other => Err(format!(
                "{other:?} is not a model: primary-remote or multi-primary"
            )),
        }
    }
}

/// Whether the clusters share one network or each has its own: on one network pods
/// reach each other directly and no east-west gateway carries service traffic.
///
/// ```
/// use mesh_core::cluster::Networks;
///
/// assert_eq!(Networks::One.id(), "one-network");
/// assert_eq!(Networks::Different.id(), "multi-network");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Networks {
    /// Every cluster on its own network: cross-network Gateways, gateways in `meshNetworks`.
    #[serde(rename = "multi-network")]
    Different,
    /// Every cluster on one network: neither.
    #[serde(rename = "one-network")]
    One,
}

impl Networks {
    /// The stable id: `multi-network` or `one-network`.
    pub fn id(self) -> &'static str {
        match self {
            Networks::Different => "multi-network",
            Networks::One => "one-network",
        }
    }
}

/// A mesh's model: one of Istio's four multicluster install models.
///
/// ```
/// use mesh_core::cluster::{ControlPlanes, Model, Networks};
///
/// let model = Model { control_planes: ControlPlanes::MultiPrimary, networks: Networks::One };
/// assert_eq!(model.to_string(), "multi-primary on one network");
/// assert_eq!(Model::default().to_string(), "primary-remote on different networks");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Model {
    /// Which clusters run istiod.
    pub control_planes: ControlPlanes,
    /// One network or several.
    pub networks: Networks,
}

impl Default for Model {
    /// The guide's model: primary-remote on different networks.
    fn default() -> Self {
        Model {
            control_planes: ControlPlanes::PrimaryRemote,
            networks: Networks::Different,
        }
    }
}

impl std::fmt::Display for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let networks = match self.networks {
            Networks::Different => "different networks",
            Networks::One => "one network",
        };
        write!(f, "{} on {networks}", self.control_planes)
    }
}
