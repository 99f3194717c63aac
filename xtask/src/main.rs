//! Build system of kubectl-mesh (`cargo xtask …`): test bed, demo, test, dist, bench.
fn main() {}
