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
