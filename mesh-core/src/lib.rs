//! Join Kubernetes clusters into one multi-network Istio mesh — the library under
//! `kubectl mesh`, for your own tools (a controller that joins every new cluster, a CI
//! check of a mesh).
//!
//! # Entry points
//!
//! | function | takes | returns | changes |
//! |---|---|---|---|
//! | [`join`] | [`JoinOptions`] (a primary [`ClusterSpec`], [`Remote`]s, optionally [`InstallOptions`]) | [`JoinSummary`] | what is missing, nothing else |
//! | [`unjoin`] | [`UnjoinOptions`] | [`UnjoinSummary`] | only what the link provably owns |
//! | [`status`] | [`StatusOptions`] | [`MeshStatus`] of typed [`Check`]s | nothing |
//! | [`rotate`] | [`RotateOptions`] | [`RotateSummary`] | a link's token, never leaving it revoked |
//! | [`verify::verify`] | [`verify::VerifyOptions`] | [`verify::VerifyReport`]: what istiod tells each sidecar, judged | only the samples it deploys (and removes) |
//!
//! Each reads every cluster first and judges what it read before it writes. A join that
//! finds problems fails with [`Error::Preflight`], listing every [`Problem`] at once, each
//! with a [`ProblemKind`] to match on (never its text) — nothing was changed. A failed
//! request is [`Error::Kube`] with the HTTP status as data. Then each step compares the
//! cluster's state with what it needs and writes only the difference (server-side apply
//! with field manager `kubectl-mesh`, conditional on the `resourceVersion` read where the
//! object is shared), so running a join again converges and then writes nothing:
//!
//! 1. `cacerts` in every cluster given certificates;
//! 2. the `topology.istio.io/network` label on each Istio namespace (and, on remotes,
//!    `topology.istio.io/controlPlaneClusters` naming the primary);
//! 3. the cross-network Gateway (TLS `AUTO_PASSTHROUGH`, `*.local`) on each east-west gateway;
//! 4. each gateway's [`GatewayAddress`] (LoadBalancer ip or hostname, externalIPs, node port);
//! 5. `meshNetworks` in the primary's `istio` ConfigMap, edited structurally ([`networks`]);
//! 6. the reader credentials in each remote and its remote secret in the primary.
//!
//! With [`JoinOptions::install`], Istio is first installed where it is missing, by real
//! `helm` with Istio's own charts and the guide's values ([`install`]).
//!
//! Progress reaches the caller as [`Event`]s through a [`Progress`] (any
//! `Fn(Event)`); an [`Interrupt`] raised from a signal handler stops a plan between
//! steps. This crate never prints or prompts.
//!
//! # Modules
//!
//! - [`cluster`]: the names kubectl-mesh and Istio agree on (labels, annotations, object
//!   names), the objects it writes, built without a request, and [`cluster::read_facts`];
//! - [`install`]: Istio's helm releases as a join installs them;
//! - [`networks`]: Istio's `meshNetworks` document;
//! - [`address`]: gateway addresses, parsed once;
//! - [`verify`]: what istiod tells each sidecar about a service, judged ([`verify::judge`]).
//!
//! # Example
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use mesh_core::{Error, EventKind, JoinOptions, ProblemKind, join};
//! use mesh_kubeconfig::{KubeconfigSource, Kubeconfigs};
//!
//! let kubeconfigs = Kubeconfigs::load(&KubeconfigSource::Default)?;
//! let options = JoinOptions::new("cluster1", &["cluster2"]);
//! let progress = |e: mesh_core::Event| {
//!     if let EventKind::Changed(what) = &e.kind {
//!         eprintln!("{}: {what}", e.cluster);
//!     }
//! };
//! match join(&kubeconfigs, &options, &progress).await {
//!     Ok(summary) => eprintln!("{} change(s)", summary.changes.len()),
//!     Err(Error::Preflight { problems })
//!         if problems.iter().any(|p| p.kind == ProblemKind::RootsDiffer) =>
//!     {
//!         eprintln!("the clusters' CAs have different roots; give them one root first");
//!     }
//!     Err(other) => return Err(other.into()),
//! }
//! # Ok(()) }
//! ```
//!
//! `examples/join_two.rs` is the same as a program.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

pub mod address;
pub mod cluster;
mod error;
pub mod install;
mod interrupt;
mod join;
mod links;
mod names;
pub mod networks;
mod plan;
mod progress;
mod rotate;
mod status;
mod unjoin;
pub mod verify;

// The entry points and what each takes and returns.
pub use install::InstallOptions;
pub use join::{
    Change, ClusterSpec, JoinOptions, JoinSummary, JoinedCluster, Remote, join,
    multi_primary_members,
};
pub use rotate::{
    BOUND_TOKEN_FOR_ANNOTATION, LinkOutcome, OldToken, ROTATED_FROM_ANNOTATION, RotateOptions,
    RotateSummary, RotatedLink, TokenInfo, rotate,
};
pub use status::{
    Check, CheckKind, CheckState, ClusterRow, MeshStatus, Rejoin, RejoinCerts, Remedy,
    StatusOptions, TokenKind, status,
};
pub use unjoin::{UnjoinOptions, UnjoinSummary, unjoin};

// What they share: addresses, roles, errors and problems, progress and interruption.
pub use address::{AddressOverride, GatewayAddress};
pub use cluster::Role;
pub use error::{Error, Problem, ProblemKind, Result, ValuesFor};
pub use interrupt::Interrupt;
pub use progress::{Event, EventKind, NoProgress, Progress};
