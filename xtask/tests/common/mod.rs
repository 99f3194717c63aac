//! Helpers shared by xtask's tests on a running test bed.

use kube::config::KubeConfigOptions;
use kube::{Client, Config};

/// A client for `context` of `KUBECONFIG` (the test bed's).
pub async fn client(context: &str) -> Client {
    let options = KubeConfigOptions {
        context: Some(context.to_owned()),
        ..Default::default()
    };
    let config = Config::from_kubeconfig(&options).await.unwrap_or_else(|e| {
        panic!("no context {context} in KUBECONFIG ({e}); is the test bed up?")
    });
    Client::try_from(config).expect("client")
}
