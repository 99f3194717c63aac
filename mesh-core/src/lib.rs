//! Join Kubernetes clusters into one multi-network Istio mesh: a plan of idempotent, checked steps.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(missing_docs)]
