//! The one error type of mesh-core.

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

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
    #[error("{cluster}: {action} failed: {reason}")]
    Kube {
        /// The cluster (its context).
        cluster: String,
        /// What was being done, e.g. "reading ConfigMap istio-system/istio".
        action: String,
        /// The server's answer or the transport error.
        reason: String,
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

    /// Reader credentials or the remote secret could not be made.
    #[error(transparent)]
    Credentials(#[from] mesh_kubeconfig::Error),

    /// A CA bundle could not be read.
    #[error(transparent)]
    Certs(#[from] mesh_certs::Error),
}

/// One problem found by preflight.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The cluster concerned (its context), or `-` for problems of the inputs.
    pub cluster: String,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.cluster, self.message)
    }
}

/// Turns a kube error into [`Error::Kube`].
pub(crate) fn kube(cluster: &str, action: impl Into<String>, err: kube::Error) -> Error {
    let reason = match &err {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
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
    Error::Kube {
        cluster: cluster.to_owned(),
        action: action.into(),
        reason,
    }
}
