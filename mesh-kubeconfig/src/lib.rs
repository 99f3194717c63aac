//! Read kubeconfigs like kubectl, obtain Istio reader credentials from any cluster, build remote secrets.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]
