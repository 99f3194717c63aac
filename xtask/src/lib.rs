//! The build system of kubectl-mesh as a library, so its own tests can reach the
//! pinned versions and the test bed's layout. Never a dependency of a product crate.
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod bench;
pub mod bench_join;
pub mod bench_verify;
pub mod demo;
pub mod dist;
pub mod istio;
pub mod krew;
pub mod local_istiod;
pub mod mesh_reset;
pub mod pki;
pub mod simulator;
pub mod testbed;
pub mod tidy;
pub mod tools;
