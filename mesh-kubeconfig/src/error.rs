//! The one error type of this crate.
//!
//! Every message names the context, cluster, file or object concerned and says what to
//! do. No message ever contains a token: tokens are only ever held in
//! [`secrecy::SecretString`] and are never formatted.

use std::path::PathBuf;
use std::time::Duration;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading kubeconfigs, talking to a cluster about
/// reader credentials, or building a remote secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A kubeconfig named explicitly does not exist.
    #[error("kubeconfig {} does not exist; give an existing kubeconfig file", path.display())]
    KubeconfigMissing {
        /// The file.
        path: PathBuf,
    },

    /// Neither `KUBECONFIG` nor `~/.kube/config` names an existing file.
    #[error("no kubeconfig found (looked at {tried}); give a kubeconfig file or set KUBECONFIG")]
    NoKubeconfig {
        /// The places looked at.
        tried: String,
    },

    /// A kubeconfig file could not be read.
    #[error("cannot read kubeconfig {}: {reason}", path.display())]
    KubeconfigRead {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// A kubeconfig file is not valid YAML of the expected shape.
    #[error("cannot parse kubeconfig {}: {reason}", path.display())]
    KubeconfigParse {
        /// The file.
        path: PathBuf,
        /// Why (without a snippet of the file, which may hold credentials).
        reason: String,
    },

    /// No context was given and the kubeconfig sets no `current-context`.
    #[error(
        "no context given and {files} sets no current-context; pass a context (available: {available})"
    )]
    NoCurrentContext {
        /// The kubeconfig files read.
        files: String,
        /// The contexts that exist.
        available: String,
    },

    /// The context does not exist.
    #[error("context {context:?} not found in {files}; available contexts: {available}")]
    ContextNotFound {
        /// The context asked for.
        context: String,
        /// The kubeconfig files read.
        files: String,
        /// The contexts that exist.
        available: String,
    },

    /// The context names a cluster the kubeconfig does not define.
    #[error(
        "context {context:?} refers to cluster {cluster:?}, which {files} does not define; fix the kubeconfig"
    )]
    ClusterNotFound {
        /// The context.
        context: String,
        /// The missing cluster entry.
        cluster: String,
        /// The kubeconfig files read.
        files: String,
    },

    /// The cluster of a context has no usable server URL.
    #[error(
        "context {context:?} has no valid server URL ({reason}); fix the cluster entry in the kubeconfig or give a server URL"
    )]
    InvalidServer {
        /// The context.
        context: String,
        /// Why.
        reason: String,
    },

    /// The certificate authority of a context could not be loaded.
    #[error("cannot load the certificate authority of context {context:?}: {reason}")]
    CertificateAuthority {
        /// The context.
        context: String,
        /// Why.
        reason: String,
    },

    /// A kube client could not be built for a context.
    #[error("cannot build a Kubernetes client for {context:?} ({server}): {reason}")]
    Client {
        /// The context.
        context: String,
        /// Its server URL.
        server: String,
        /// Why.
        reason: String,
    },

    /// The API server did not answer.
    #[error("cannot reach the API server of {cluster:?}{} while trying to {action}: {reason}; check that the cluster is running and that the server URL is right", at_server(.server.as_deref()))]
    Unreachable {
        /// The context or cluster name.
        cluster: String,
        /// The server URL, when known.
        server: Option<String>,
        /// What was being done.
        action: String,
        /// The connection error.
        reason: String,
    },

    /// The API server rejected the credentials (HTTP 401).
    #[error(
        "{cluster:?} rejected the credentials while trying to {action} (401 Unauthorized): the token or certificate is invalid or expired; refresh the credentials of that context"
    )]
    Unauthorized {
        /// The context or cluster name.
        cluster: String,
        /// What was being done.
        action: String,
    },

    /// The API server refused a request (HTTP 403).
    #[error(
        "{cluster:?} refused to {action}: {message}; use a context whose user may do that (e.g. cluster-admin)"
    )]
    Forbidden {
        /// The context or cluster name.
        cluster: String,
        /// What was being done.
        action: String,
        /// The server's message.
        message: String,
    },

    /// Any other failed API request.
    #[error("{cluster:?}: cannot {action}: {message}")]
    Api {
        /// The context or cluster name.
        cluster: String,
        /// What was being done.
        action: String,
        /// The server's or client's message.
        message: String,
        /// The HTTP status code, when the server answered.
        code: Option<u16>,
    },

    /// A cluster name is not a DNS-1123 label.
    #[error(
        "invalid cluster name {name:?}: it must be a DNS-1123 label (lowercase letters, digits and '-', at most 63 characters); give another cluster name"
    )]
    InvalidClusterName {
        /// The name.
        name: String,
    },

    /// A token lifetime outside what Kubernetes accepts.
    #[error(
        "token TTL {ttl:?} is too short: Kubernetes issues TokenRequest tokens for at least 10m"
    )]
    TokenTtlTooShort {
        /// The TTL asked for.
        ttl: Duration,
    },

    /// The ServiceAccount does not exist (and was not to be created).
    #[error(
        "ServiceAccount {namespace}/{name} does not exist in {cluster:?}; create it, or let kubectl mesh create it"
    )]
    ServiceAccountMissing {
        /// The context or cluster name.
        cluster: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },

    /// The ServiceAccount's legacy `secrets[]` list references no usable token Secret.
    #[error(
        "ServiceAccount {namespace}/{name} in {cluster:?} references no token Secret in .secrets[] (Kubernetes 1.24 and later create none); let a token Secret be created, or ask for a TokenRequest token with a lifetime"
    )]
    NoLegacyTokenSecret {
        /// The context or cluster name.
        cluster: String,
        /// The ServiceAccount's namespace.
        namespace: String,
        /// The ServiceAccount's name.
        name: String,
    },

    /// No existing token Secret for the ServiceAccount.
    #[error(
        "no kubernetes.io/service-account-token Secret for ServiceAccount {namespace}/{name} in {cluster:?}; let one be created, or ask for a TokenRequest token with a lifetime"
    )]
    NoTokenSecret {
        /// The context or cluster name.
        cluster: String,
        /// The ServiceAccount's namespace.
        namespace: String,
        /// The ServiceAccount's name.
        name: String,
    },

    /// Several token Secrets could be used and none was chosen.
    #[error(
        "ServiceAccount {namespace}/{name} in {cluster:?} has several token Secrets: {candidates}; choose one by name"
    )]
    AmbiguousTokenSecret {
        /// The context or cluster name.
        cluster: String,
        /// The ServiceAccount's namespace.
        namespace: String,
        /// The ServiceAccount's name.
        name: String,
        /// The candidate Secret names, comma-separated.
        candidates: String,
    },

    /// A Secret exists under the chosen name but is not a token of the ServiceAccount.
    #[error(
        "Secret {namespace}/{secret} in {cluster:?} is not a token Secret of ServiceAccount {account}: {reason}; choose another token Secret by name"
    )]
    NotATokenSecret {
        /// The context or cluster name.
        cluster: String,
        /// The namespace.
        namespace: String,
        /// The Secret.
        secret: String,
        /// The ServiceAccount.
        account: String,
        /// Why.
        reason: String,
    },

    /// A wait ran past its deadline.
    #[error("gave up after {} waiting for {what}; {hint}", human(*.waited))]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        waited: Duration,
        /// What to do about it.
        hint: String,
    },

    /// The TokenRequest API answered without a token.
    #[error(
        "the TokenRequest for ServiceAccount {namespace}/{name} in {cluster:?} returned no token"
    )]
    EmptyTokenRequest {
        /// The context or cluster name.
        cluster: String,
        /// The ServiceAccount's namespace.
        namespace: String,
        /// The ServiceAccount's name.
        name: String,
    },

    /// No certificate authority is known for the server.
    #[error("no certificate authority for {server}: {reason}")]
    NoCertificateAuthority {
        /// The server URL.
        server: String,
        /// What was tried.
        reason: String,
    },

    /// The remote kubeconfig lacks something or holds something istiod rejects.
    #[error("invalid remote kubeconfig: {reason}")]
    InvalidRemoteKubeconfig {
        /// Why.
        reason: String,
    },

    /// A kubeconfig that came from a cluster (a remote secret's) holds something besides
    /// inline credentials: a program to run, a local file to read, a proxy.
    #[error("refused the stored kubeconfig: {reason}")]
    UntrustedKubeconfig {
        /// What it holds, by field name (never a value).
        reason: String,
    },

    /// A server URL with plain `http://` for a kubeconfig that carries a token.
    #[error(
        "server {server} uses plain http://: the reader token would travel in clear text and nothing would prove who answers; use the https:// URL, or allow plain http explicitly if you really mean it"
    )]
    PlainHttp {
        /// The URL.
        server: String,
    },

    /// The user's context skips TLS verification, so no CA read through it can be trusted
    /// and the user gave none.
    #[error(
        "context {context:?} skips TLS verification (insecure-skip-tls-verify: true), so a CA read from the cluster through it (the token Secret's ca.crt, kube-root-ca.crt) proves nothing about {server}; give a file with the CA that signed the API server's certificate"
    )]
    UnverifiedCa {
        /// The context.
        context: String,
        /// The server URL the remote kubeconfig would use.
        server: String,
    },

    /// A file the user named (e.g. a CA file) cannot be read.
    #[error("cannot read {}: {reason}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// Serialising an object failed.
    #[error("cannot serialise {what}: {reason}")]
    Serialize {
        /// What.
        what: String,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// The HTTP status code of a failed API request, when the server answered.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Error::Unauthorized { .. } => Some(401),
            Error::Forbidden { .. } => Some(403),
            Error::Api { code, .. } => *code,
            _ => None,
        }
    }

    /// Adds the server URL to an [`Error::Unreachable`] that lacks it.
    pub fn with_server(self, url: &str) -> Self {
        match self {
            Error::Unreachable {
                cluster,
                server: None,
                action,
                reason,
            } => Error::Unreachable {
                cluster,
                server: Some(url.to_owned()),
                action,
                reason,
            },
            other => other,
        }
    }

    /// Classifies a kube error from a request to `cluster` while doing `action`.
    pub(crate) fn from_kube(err: kube::Error, cluster: &str, action: impl Into<String>) -> Self {
        let cluster = cluster.to_owned();
        let action = action.into();
        match err {
            kube::Error::Api(status) => match status.code {
                401 => Error::Unauthorized { cluster, action },
                403 => Error::Forbidden {
                    cluster,
                    action,
                    message: status.message.clone(),
                },
                code => Error::Api {
                    cluster,
                    action,
                    message: if status.message.is_empty() {
                        format!("{} ({code})", status.reason)
                    } else {
                        status.message.clone()
                    },
                    code: (code != 0).then_some(code),
                },
            },
            kube::Error::HyperError(_) | kube::Error::Service(_) => Error::Unreachable {
                cluster,
                server: None,
                action,
                reason: error_chain(&err),
            },
            other => Error::Api {
                cluster,
                action,
                message: error_chain(&other),
                code: None,
            },
        }
    }
}

fn human(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn at_server(server: Option<&str>) -> String {
    server.map(|s| format!(" at {s}")).unwrap_or_default()
}

/// The messages of an error and its sources, joined by `: ` (duplicates dropped).
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        let msg = e.to_string();
        if !parts.iter().any(|p| p.contains(&msg)) {
            parts.push(msg);
        }
        cur = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `text` holds `--` followed by a letter, as a command-line flag would.
    fn names_a_flag(text: &str) -> bool {
        text.as_bytes()
            .windows(3)
            .any(|w| w[0] == b'-' && w[1] == b'-' && w[2].is_ascii_alphabetic())
    }

    #[test]
    fn messages_name_no_flags() {
        let s = String::from;
        let errors = [
            Error::KubeconfigMissing {
                path: "/no/such/config".into(),
            },
            Error::NoKubeconfig {
                tried: s("KUBECONFIG, ~/.kube/config"),
            },
            Error::InvalidServer {
                context: s("east"),
                reason: s("no host"),
            },
            Error::InvalidClusterName { name: s("East") },
            Error::NoLegacyTokenSecret {
                cluster: s("east"),
                namespace: s("istio-system"),
                name: s("reader"),
            },
            Error::NoTokenSecret {
                cluster: s("east"),
                namespace: s("istio-system"),
                name: s("reader"),
            },
            Error::AmbiguousTokenSecret {
                cluster: s("east"),
                namespace: s("istio-system"),
                name: s("reader"),
                candidates: s("a, b"),
            },
            Error::NotATokenSecret {
                cluster: s("east"),
                namespace: s("istio-system"),
                secret: s("x"),
                account: s("reader"),
                reason: s("wrong type"),
            },
            Error::PlainHttp {
                server: s("http://east:6443"),
            },
            Error::UnverifiedCa {
                context: s("east"),
                server: s("https://east:6443"),
            },
        ];
        for e in &errors {
            assert!(!names_a_flag(&e.to_string()), "{e}");
        }
        let timed_out = crate::RequestTimedOut {
            cluster: s("east"),
            request: s("GET /version"),
            after: Duration::from_secs(5),
        };
        assert!(!names_a_flag(&timed_out.to_string()), "{timed_out}");
        assert!(!names_a_flag(&crate::CaOrigin::Given.to_string()));
        let loopback = crate::Warning::LoopbackServer {
            server: s("https://127.0.0.1:6443"),
        };
        assert!(!names_a_flag(&loopback.to_string()), "{loopback}");
        assert!(names_a_flag("pass --server") && !names_a_flag("a -- b"));
    }
}
