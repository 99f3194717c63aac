//! The one error type of mesh-core.

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether a cluster refused the request with 403 Forbidden: the user (or a link's
    /// credentials) may not do it.
    ///
    /// ```
    /// let e = mesh_core::Error::Kube {
    ///     cluster: "cluster2".into(),
    ///     action: "listing Gateways in istio-system".into(),
    ///     reason: "forbidden".into(),
    ///     status: Some(403),
    ///     source: None,
    /// };
    /// assert!(e.is_forbidden());
    /// ```
    pub fn is_forbidden(&self) -> bool {
        matches!(
            self,
            Error::Kube {
                status: Some(403),
                ..
            }
        )
    }
}

/// What can stop a join, unjoin or status. Every message names the cluster or object
/// and says what to do; none contains a token or a private key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Preflight found problems; nothing was changed. Every problem is listed.
    #[error("preflight found {} problem(s); nothing was changed:\n{}", problems.len(), problems.iter().map(|p| format!("  ✗ {p}")).collect::<Vec<_>>().join("\n"))]
    Preflight {
        /// Each problem, naming its cluster and what to do.
        problems: Vec<Problem>,
    },

    /// A request to a cluster failed.
    ///
    /// A caller acts on `status` (the HTTP status the server answered with, e.g. 403
    /// or 409), never on the text of `reason`:
    ///
    /// ```
    /// fn denied(e: &mesh_core::Error) -> bool {
    ///     matches!(e, mesh_core::Error::Kube { status: Some(403), .. })
    /// }
    /// ```
    #[error("{cluster}: {action} failed: {reason}")]
    Kube {
        /// The cluster (its context).
        cluster: String,
        /// What was being done, e.g. "reading ConfigMap istio-system/istio".
        action: String,
        /// The server's answer or the transport error, as a sentence.
        reason: String,
        /// The HTTP status of the server's answer; `None` when none came (transport
        /// error, deadline) or the failure is ours.
        status: Option<u16>,
        /// kube's error, when one caused this.
        #[source]
        source: Option<Box<kube::Error>>,
    },

    /// Asking istiod over xDS what a sidecar is told failed ([`verify`](crate::verify)).
    #[error("{cluster}: asking istiod what {sidecar} is told failed: {source}")]
    Xds {
        /// The cluster of the sidecar asked about (its context).
        cluster: String,
        /// The sidecar, e.g. `cluster2's sleep sidecar`.
        sidecar: String,
        /// The xDS client's error: it names istiod's address and what to do.
        #[source]
        source: Box<mesh_xds::Error>,
    },

    /// A wait ran out of time.
    #[error("{cluster}: gave up after {seconds}s waiting for {what}; {hint}")]
    Timeout {
        /// The cluster.
        cluster: String,
        /// What was waited for.
        what: String,
        /// How long.
        seconds: u64,
        /// What to do.
        hint: String,
    },

    /// A signal (SIGINT, SIGTERM) stopped the plan: no step started after it, a running
    /// helm was stopped with SIGTERM and waited for.
    #[error("{}", interrupted(.signal, .completed))]
    Interrupted {
        /// The signal number (2 SIGINT, 15 SIGTERM).
        signal: i32,
        /// The steps that completed, as `<cluster> <step>`, in the order they did.
        completed: Vec<String>,
    },

    /// A conditional write met another writer's change every time it tried.
    #[error(
        "{cluster}: {object} changed between our read and our write {attempts} times in a row (another command is writing it too); nothing of ours was lost — run this command again once the other one is done"
    )]
    Conflict {
        /// The cluster.
        cluster: String,
        /// The object, e.g. "ConfigMap istio-system/istio".
        object: String,
        /// How many writes were refused.
        attempts: u32,
    },

    /// An object in a cluster does not have the shape Istio gives it.
    #[error("{cluster}: {object} is malformed: {reason}")]
    Malformed {
        /// The cluster.
        cluster: String,
        /// The object, e.g. "ConfigMap istio-system/istio key meshNetworks".
        object: String,
        /// Why, and what to do.
        reason: String,
    },

    /// helm, or Istio's charts, could not install Istio (`join --install`).
    #[error("{cluster}: {what} failed: {reason}")]
    Install {
        /// The cluster (its context), or `-` when no cluster is concerned.
        cluster: String,
        /// What was being done, e.g. "installing release istiod (chart …/istiod)".
        what: String,
        /// helm's own words (its last lines), or what is missing and how to get it.
        reason: String,
    },

    /// A gateway address is not a host (an IP address or a DNS name) and a port.
    #[error("gateway address {address:?} {reason}")]
    InvalidAddress {
        /// The address as it was given.
        address: String,
        /// What is wrong with it, e.g. `has port "0", not a number from 1 to 65535`.
        reason: String,
    },

    /// A `meshNetworks` document is not what Istio reads: a mapping whose `networks`
    /// is a mapping.
    #[error("meshNetworks is malformed: {reason}")]
    InvalidMeshNetworks {
        /// What is wrong with it.
        reason: String,
    },

    /// Reader credentials or the remote secret could not be made.
    #[error(transparent)]
    Credentials(#[from] mesh_kubeconfig::Error),

    /// A CA bundle could not be read.
    #[error(transparent)]
    Certs(#[from] mesh_certs::Error),
}

fn interrupted(signal: &i32, completed: &[String]) -> String {
    let done = if completed.is_empty() {
        "no step had completed".to_owned()
    } else {
        format!("completed: {}", completed.join(", "))
    };
    format!(
        "stopped by {}; {done}; running the same command again completes the rest",
        crate::interrupt::signal_name(*signal)
    )
}

/// One problem found by preflight: which cluster, what kind of problem (for a program
/// to act on) and what is wrong and what to do (for a person).
///
/// ```
/// use mesh_core::{Error, ProblemKind};
/// fn roots_differ(e: &Error) -> bool {
///     matches!(e, Error::Preflight { problems }
///         if problems.iter().any(|p| p.kind == ProblemKind::RootsDiffer))
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The cluster concerned (its context), or `-` for problems of the inputs.
    pub cluster: String,
    /// What kind of problem it is; serialized as its [`ProblemKind::id`].
    pub kind: ProblemKind,
    /// What is wrong and what to do about it, in the library's terms (it names no
    /// command-line flag: a tool maps [`Problem::kind`] to its own way of fixing it).
    pub message: String,
}

impl Problem {
    /// A problem of `kind` in `cluster`.
    pub fn new(
        cluster: impl Into<String>,
        kind: ProblemKind,
        message: impl Into<String>,
    ) -> Problem {
        Problem {
            cluster: cluster.into(),
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.cluster, self.message)
    }
}

/// Which values a values file or a `KEY=VALUE` setting of [`InstallOptions`] is for.
///
/// [`InstallOptions`]: crate::InstallOptions
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValuesFor {
    /// The control-plane releases (`istio-base`, `istiod`).
    ControlPlane,
    /// The east-west gateway releases (the gateway chart).
    Gateway,
}

/// The kinds of [`Problem`], each with a stable kebab-case id (see [`ProblemKind::id`]),
/// so that a program acts on a problem without reading its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProblemKind {
    /// A context cannot be read: unreachable, refused, or a request failed.
    ClusterUnreadable,
    /// The user may not make a request the plan needs.
    AccessDenied,
    /// The Istio namespace does not exist (and Istio is not to be installed).
    IstioMissing,
    /// Istio's CRDs are missing (and Istio is not to be installed).
    CrdsMissing,
    /// istiod is not installed in the primary (and Istio is not to be installed).
    IstiodMissing,
    /// A cluster name (cluster ID) is not a DNS-1123 label.
    NameInvalid,
    /// A remote's cluster name is the primary's cluster ID, which istiod ignores.
    NameIsPrimarys,
    /// Two clusters of the join have one cluster name.
    NameGivenTwice,
    /// A remote's cluster name is already a key of another remote secret.
    NameTaken,
    /// The primary's cluster name differs from the cluster ID istiod runs with.
    ClusterIdMismatch,
    /// A given network is not a label value.
    NetworkInvalid,
    /// A given network contradicts the network the cluster declares.
    NetworkContradictsDeclared,
    /// A remote is on the primary's network.
    SameNetwork,
    /// Two contexts reach one cluster (the remote is the primary).
    SameCluster,
    /// A given gateway address is not `HOST` or `HOST:PORT`.
    GatewayAddressInvalid,
    /// A given CA bundle is not valid (the message names the file and the check).
    BundleInvalid,
    /// A cluster has no `cacerts` and no bundle was given for it.
    CertsMissing,
    /// A cluster's stored `cacerts` has no readable root, so replacing it is not shown safe.
    StoredCacertsUnreadable,
    /// A cluster's stored `cacerts` has another root than the bundle given for it.
    StoredRootDiffers,
    /// The clusters' roots (given and stored) are not one.
    RootsDiffer,
    /// A helm release of ours is in another helm operation (upgrade, rollback, …).
    HelmReleaseStuck,
    /// A helm release of ours is pending-install recently: another helm may be on it.
    HelmReleasePending,
    /// An Istio object with the name join gives its own was made by somebody else and
    /// does not do the job.
    ForeignObject,
    /// helm cannot be run.
    HelmUnusable,
    /// Istio's charts are not where they were said to be.
    ChartsMissing,
    /// A values file does not exist.
    ValuesFileMissing(ValuesFor),
    /// A `KEY=VALUE` setting does not read as helm reads it.
    SetInvalid(ValuesFor),
    /// The primary's remote secrets cannot be listed.
    RemoteSecretsUnreadable,
    /// The remote's API server URL is plain `http://`.
    PlainHttp,
    /// The remote's context skips TLS verification and no CA was given for it.
    UnverifiedCa,
    /// Another problem with how the reader credentials would be made (server, CA file, …).
    CredentialsInvalid,
    /// Unjoin: the remote is linked to the primary under another cluster name.
    LinkedUnderOtherName,
    /// Unjoin: nothing links the remote to the primary, yet objects of kubectl-mesh remain.
    NotLinked,
    /// Join: more than one link (remote secret key) in the primary reaches the remote,
    /// so istiod reads it twice under two cluster IDs.
    DuplicateLinks,
    /// Join: a link made by hand reaches the remote but its credentials do not work
    /// (they do not authenticate, or may write).
    LinkBroken,
    /// Join: a link made by hand reaches the remote under another cluster ID than the
    /// one given.
    LinkNamedOtherwise,
    /// Join: the model asked for (or a cluster's place in a mesh) contradicts the model
    /// the mesh is recorded in — a multi-primary join into a primary-remote mesh, a
    /// remote of one mesh joined as a primary, or the reverse.
    ModelContradicts,
    /// Join: a multi-primary mesh's member that the primary reads has no context in the
    /// kubeconfig, so its links to the new cluster cannot be made.
    PeerWithoutContext,
    /// Rotate: the link was made by hand, not by kubectl-mesh (join can replace it with
    /// kubectl-mesh's own first).
    HandMadeLink,
}

impl ProblemKind {
    /// The stable id, e.g. `roots-differ`.
    pub fn id(self) -> &'static str {
        match self {
            ProblemKind::ClusterUnreadable => "cluster-unreadable",
            ProblemKind::AccessDenied => "access-denied",
            ProblemKind::IstioMissing => "istio-missing",
            ProblemKind::CrdsMissing => "crds-missing",
            ProblemKind::IstiodMissing => "istiod-missing",
            ProblemKind::NameInvalid => "name-invalid",
            ProblemKind::NameIsPrimarys => "name-is-primarys",
            ProblemKind::NameGivenTwice => "name-given-twice",
            ProblemKind::NameTaken => "name-taken",
            ProblemKind::ClusterIdMismatch => "cluster-id-mismatch",
            ProblemKind::NetworkInvalid => "network-invalid",
            ProblemKind::NetworkContradictsDeclared => "network-contradicts-declared",
            ProblemKind::SameNetwork => "same-network",
            ProblemKind::SameCluster => "same-cluster",
            ProblemKind::GatewayAddressInvalid => "gateway-address-invalid",
            ProblemKind::BundleInvalid => "bundle-invalid",
            ProblemKind::CertsMissing => "certs-missing",
            ProblemKind::StoredCacertsUnreadable => "stored-cacerts-unreadable",
            ProblemKind::StoredRootDiffers => "stored-root-differs",
            ProblemKind::RootsDiffer => "roots-differ",
            ProblemKind::HelmReleaseStuck => "helm-release-stuck",
            ProblemKind::HelmReleasePending => "helm-release-pending",
            ProblemKind::ForeignObject => "foreign-object",
            ProblemKind::HelmUnusable => "helm-unusable",
            ProblemKind::ChartsMissing => "charts-missing",
            ProblemKind::ValuesFileMissing(_) => "values-file-missing",
            ProblemKind::SetInvalid(_) => "set-invalid",
            ProblemKind::RemoteSecretsUnreadable => "remote-secrets-unreadable",
            ProblemKind::PlainHttp => "plain-http",
            ProblemKind::UnverifiedCa => "unverified-ca",
            ProblemKind::CredentialsInvalid => "credentials-invalid",
            ProblemKind::LinkedUnderOtherName => "linked-under-other-name",
            ProblemKind::NotLinked => "not-linked",
            ProblemKind::DuplicateLinks => "duplicate-links",
            ProblemKind::LinkBroken => "link-broken",
            ProblemKind::LinkNamedOtherwise => "link-named-otherwise",
            ProblemKind::ModelContradicts => "model-contradicts",
            ProblemKind::PeerWithoutContext => "peer-without-context",
            ProblemKind::HandMadeLink => "hand-made-link",
        }
    }
}

impl std::fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

impl serde::Serialize for ProblemKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id())
    }
}

/// Turns a kube error into [`Error::Kube`].
pub(crate) fn kube(cluster: &str, action: impl Into<String>, err: kube::Error) -> Error {
    let reason = match &err {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        // The request's deadline: the server named, and what sets the deadline.
        kube::Error::Service(e)
            if e.downcast_ref::<mesh_kubeconfig::RequestTimedOut>()
                .is_some() =>
        {
            e.to_string()
        }
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    };
    let status = match &err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    };
    Error::Kube {
        cluster: cluster.to_owned(),
        action: action.into(),
        reason,
        status,
        source: Some(Box::new(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kube_error_keeps_the_status_code_and_its_source() {
        let answer =
            kube::core::Status::failure("secrets is forbidden", "Forbidden").with_code(403);
        let err = kube(
            "cluster2",
            "reading Secret istio-system/cacerts",
            kube::Error::Api(Box::new(answer)),
        );
        assert!(
            matches!(
                err,
                Error::Kube {
                    status: Some(403),
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "cluster2: reading Secret istio-system/cacerts failed: secrets is forbidden (403)"
        );
        let source = std::error::Error::source(&err).expect("kube's error is the source");
        assert!(
            source.to_string().contains("secrets is forbidden"),
            "{source}"
        );
    }
}
