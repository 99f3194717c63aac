//! Load, validate and generate Istio plugged-in CA bundles (cacerts) without touching a cluster.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]
