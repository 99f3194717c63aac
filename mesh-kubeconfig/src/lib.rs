//! Read kubeconfigs like kubectl, obtain Istio reader credentials from any cluster,
//! build remote secrets.
//!
//! The credential flow for one remote cluster:
//!
//! 1. [`Kubeconfigs::load`] reads the kubeconfig the way kubectl does and
//!    [`Kubeconfigs::resolve`] turns a context into its server and CA.
//! 2. [`ensure_reader_account`] makes sure the reader ServiceAccount exists in the
//!    remote cluster, bound to a ClusterRole equivalent to Istio's reader role.
//! 3. [`obtain_token`] gets a token for it: the legacy `secrets[]` reference, an
//!    existing token Secret, a token Secret it creates, or a TokenRequest token bound to a Secret it creates
//!    (deleting that Secret revokes the token).
//! 4. [`choose_ca`] picks the CA that validates the server the primary will use.
//! 5. [`RemoteKubeconfig`] and [`RemoteSecret`] build the Secret istiod watches.
//! 6. [`verify_remote_kubeconfig`] proves the kubeconfig authenticates, may read
//!    what istiod reads and may not write.
//!
//! [`generate_remote_secret`] runs the whole flow. Tokens live in
//! [`secrecy::SecretString`] and never reach a log or an error message.
//!
//! # Example
//!
//! From your own program: the remote Secret for context `cluster2`, as
//! `kubectl mesh remote-secret cluster2` prints it.
//!
//! ```no_run
//! # async fn f() -> Result<(), mesh_kubeconfig::Error> {
//! use mesh_kubeconfig::{KubeconfigSource, Kubeconfigs, RemoteSecretRequest};
//!
//! let kubeconfigs = Kubeconfigs::load(&KubeconfigSource::Default)?;
//! let generated =
//!     mesh_kubeconfig::generate_remote_secret(&kubeconfigs, &RemoteSecretRequest::new("cluster2"))
//!         .await?;
//! for warning in &generated.warnings {
//!     eprintln!("warning: {warning:?}");
//! }
//! // `generated.secret` is a k8s-openapi Secret to apply in the primary; it holds the token.
//! eprintln!(
//!     "{} for cluster {} (token from {:?})",
//!     generated.secret.metadata.name.as_deref().unwrap_or_default(),
//!     generated.cluster_name,
//!     generated.token_source
//! );
//! # Ok(()) }
//! ```
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

mod ca;
mod deadline;
mod error;
mod generate;
mod kubeconfig;
mod names;
mod reader;
mod remote;
mod token;
mod verify;

pub use ca::{CaCandidate, CaChoice, CaOrigin, choose_ca};
pub use deadline::{DEFAULT_REQUEST_TIMEOUT, PendingRequest, RequestTimedOut, pending_requests};
pub use error::{Error, Result};
pub use generate::{
    GeneratedRemoteSecret, PREVIEW_TOKEN, RemoteSecretRequest, generate_remote_secret,
    preview_remote_secret,
};
pub use kubeconfig::{
    DEFAULT_CONNECT_TIMEOUT, KubeconfigSource, Kubeconfigs, MAX_FILE_SIZE, ResolvedContext,
    USER_AGENT, client_from_config, require_https,
};
pub use names::{dns1123_label, is_dns1123_label};
pub use reader::{
    Change, ChangeKind, DEFAULT_READER_SERVICE_ACCOUNT, READER_CLUSTER_ROLE, ReaderAccount,
    check_reader_account, ensure_reader_account, reader_cluster_role,
};
pub use remote::{
    CLUSTER_ANNOTATION, MANAGED_BY_LABEL, MULTICLUSTER_LABEL, REMOTE_SECRET_PREFIX,
    RemoteKubeconfig, RemoteKubeconfigBuilder, RemoteSecret, Warning, is_loopback_server,
    remote_secret_name, server_warnings,
};
pub use token::{
    BOUND_TOKEN_FOR_ANNOTATION, DEFAULT_TOKEN_WAIT, MIN_TOKEN_TTL, ReaderToken, TokenOptions,
    TokenSource, TokenStrategy, jwt_expiry, obtain_token, request_bound_token,
};
pub use verify::{Access, Verification, verify_remote_kubeconfig};

/// The field manager of every server-side apply made by kubectl-mesh.
pub const FIELD_MANAGER: &str = "kubectl-mesh";
