//! Load, validate and generate Istio plugged-in CA bundles (`cacerts`) without
//! touching a cluster.
//!
//! A multi-cluster Istio mesh needs every cluster's istiod to sign workload
//! certificates under a root the other clusters trust. Each cluster gets a
//! `cacerts` Secret with four files:
//!
//! | file | holds |
//! |---|---|
//! | `ca-cert.pem` | this cluster's CA certificate (an intermediate) |
//! | `ca-key.pem` | its private key |
//! | `root-cert.pem` | the shared root certificate(s) |
//! | `cert-chain.pem` | `ca-cert.pem`, then its issuers up to the root (root optional) |
//!
//! A wrong bundle fails late: istiod refuses to start, or issues certificates the
//! other cluster does not trust. [`CaBundle::validate`] checks a bundle before
//! anything reaches a cluster, more strictly than istiod (see [`Check`]), and
//! [`common_root`] checks that several bundles share a root. The [`generate`]
//! module writes new bundles in the layout of Istio's `tools/certs`.
//!
//! Problems in a bundle are [`Finding`]s in a [`Report`], each naming its file
//! and a one-line fix; [`Error`] is only for failures to do the work (I/O,
//! generation). Private keys are held in `secrecy` types and never appear in
//! `Debug` output, logs or errors. This crate never prints; it emits `tracing`
//! events.
//!
//! # Example
//!
//! ```no_run
//! use std::path::Path;
//! use mesh_certs::{common_root, CaBundle, Severity, ValidationOptions};
//!
//! let cluster1 = CaBundle::load_dir(Path::new("certs/cluster1"))?;
//! let cluster2 = CaBundle::load_dir(Path::new("certs/cluster2"))?;
//! for (name, bundle) in [("cluster1", &cluster1), ("cluster2", &cluster2)] {
//!     let report = bundle.validate(&ValidationOptions::default());
//!     for f in &report.findings {
//!         let mark = if f.severity == Severity::Error { "✗" } else { "!" };
//!         eprintln!("{mark} {name}/{}: {} — {}", f.file, f.message, f.fix);
//!     }
//! }
//! let agreement = common_root(&[("cluster1", &cluster1), ("cluster2", &cluster2)]);
//! assert!(agreement.is_agreed(), "no common root: {:?}", agreement.disagreeing);
//! # Ok::<(), mesh_certs::Error>(())
//! ```
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]

mod bundle;
mod der;
mod error;
mod files;
pub mod generate;
mod key;
mod pem;
mod roots;
mod validate;

pub use bundle::{BundleFile, BundleFiles, CaBundle};
pub use error::Error;
pub use files::MAX_FILE_SIZE;
pub use roots::{Root, RootAgreement, RootSet, common_root, common_root_of_sets};
pub use validate::{Check, CheckOutcome, Finding, Report, Severity, Status, ValidationOptions};

/// Re-exported so callers can build [`BundleFiles`] without naming `secrecy` themselves.
pub use secrecy::SecretSlice;
