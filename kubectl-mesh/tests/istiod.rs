//! Conformance with real Istio: everything `kubectl mesh join` writes is for istiod, so
//! these tests run istiod itself (`pilot-discovery` from the pinned Istio commit, as a
//! local process against cluster1, see `common::istiod`) after a join on the test bed
//! and read what it concluded from its own debug endpoints. They also compare the remote
//! secret with what `istioctl create-remote-secret` makes for the same cluster and
//! ServiceAccount. `cargo xtask test` runs them; plain `cargo test` leaves them out.
//!
//! # The story
//! Everything join writes has one reader, istiod, so the last rung of the test ladder asks
//! istiod itself. `tests/common/istiod.rs` runs `pilot-discovery` (the test bed's build of
//! the pinned Istio commit) as a local process against cluster1: the cluster's admin
//! kubeconfig, `POD_NAMESPACE=istio-system`, cluster ID `cluster1`, every listener on a free
//! loopback port, a temporary working directory (no mounted mesh file, so mesh config and
//! `meshNetworks` come from the `istio` ConfigMap) and `USE_REMOTE_CERTS=true` (it loads the
//! `cacerts` Secret as the mounted volume would). It logs to a file whose tail a failing test
//! prints, polls the debug endpoints with deadlines, and is stopped with SIGTERM (so it gives
//! its leader leases back) on drop. After a join the tests assert, from istiod's own view:
//! `/debug/clusterz` lists cluster2 `synced` from `istio-remote-secret-cluster2` (and drops
//! it after `unjoin`); `istio-ca-root-cert` carries the root join stored in `cacerts`;
//! `/debug/endpointShardz` holds the guide's helloworld v1 under cluster1 on network1 and v2
//! under cluster2 on network2; `/debug/networkz` has network2's gateway at the address join
//! discovered. A differential test compares the remote Secret with `istioctl
//! create-remote-secret`'s for the same cluster and ServiceAccount: equal but for the token
//! and kubectl-mesh's `app.kubernetes.io/managed-by` label. `cargo xtask demo` ends with the
//! same istiod's `/debug/clusterz` and `/debug/networkz`.
//!
//! `kubectl-mesh/tests/install.rs` does the same from nothing: it wipes Istio out of the
//! bare cluster4 and cluster5 (helm uninstall, namespace, CRDs), runs `join --install`
//! (with a values file asking the charts for no admission webhook — nothing in the test bed
//! could answer one), reads the result back with `helm list`/`helm get values` and kubectl
//! (CRDs Established, istiod rolled out, the remote's istiod EndpointSlice at the primary's
//! discovered gateway address, the injection path), runs istiod against cluster4 (cluster5
//! `synced`, network-cluster5's gateway in `networkz`), and proves a second run makes no
//! write by kubectl-mesh or helm (audit logs, by user agent); a dry run renders the charts
//! and writes nothing; a release staged as `pending-install` (helm's own record rewritten)
//! is repaired by the next join.

mod common;

use std::time::Duration;

use base64::Engine;
use common::istiod::{Istiod, NAMESPACE};
use common::sample::{Sample, pod_ip, shard};
use common::{join_cluster2, kubectl, lb_address, mesh_lock, mesh_networks, text, unjoin};
use serde_json::Value;

/// How long istiod may take to reach a conclusion (sync a remote, see an endpoint).
const SETTLE: Duration = Duration::from_secs(90);

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn istiod_syncs_the_joined_remote_uses_the_cacerts_and_drops_the_remote_after_unjoin() {
    let _lock = mesh_lock();
    let certs = join_cluster2();
    let mut istiod = Istiod::start("cluster1");

    // istiod read the remote secret, accepted its kubeconfig and listed everything it
    // watches in cluster2 with the reader token.
    istiod.wait_until("clusterz: cluster2 synced", SETTLE, |i| {
        let status = common::istiod::status_of(&i.clusters()?, "cluster2")?;
        // `timeout`: istiod gave up listing what it watches in cluster2 (permissions).
        assert_ne!(
            status,
            "timeout",
            "istiod could not sync cluster2\n{}",
            i.log_tail(40)
        );
        (status == "synced").then_some(())
    });
    let clusterz = istiod.json("/debug/clusterz").unwrap();
    let entry = clusterz
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "cluster2")
        .unwrap();
    assert_eq!(
        entry["secretName"], "istio-system/istio-remote-secret-cluster2",
        "{clusterz}"
    );
    assert_eq!(
        common::istiod::status_of(&istiod.clusters().unwrap(), "cluster1").as_deref(),
        Some("synced"),
        "{clusterz}"
    );

    // istiod took the cacerts join stored as its CA: the root it publishes to every
    // namespace (istio-ca-root-cert) is the given root.
    let root = std::fs::read_to_string(certs.path().join("cluster1/root-cert.pem")).unwrap();
    istiod.wait_until(
        "istio-ca-root-cert in cluster1 carries the root join stored in cacerts",
        SETTLE,
        |_| {
            let published = kubectl(&[
                "--context=cluster1",
                "-n",
                "default",
                "get",
                "configmap",
                "istio-ca-root-cert",
                "-o",
                "jsonpath={.data.root-cert\\.pem}",
                "--ignore-not-found",
            ]);
            (published.trim() == root.trim()).then_some(())
        },
    );

    // After unjoin, istiod lets go of cluster2.
    let out = unjoin("cluster2", &[]);
    assert!(
        out.status.success(),
        "unjoin failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    istiod.wait_until("clusterz: cluster2 gone after unjoin", SETTLE, |i| {
        let clusters = i.clusters()?;
        (common::istiod::status_of(&clusters, "cluster1").is_some()
            && common::istiod::status_of(&clusters, "cluster2").is_none())
        .then_some(())
    });
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn istiod_sees_helloworld_v1_in_cluster1_and_v2_in_cluster2_on_their_networks() {
    let _lock = mesh_lock();
    let _certs = join_cluster2();
    let dir = tempfile::tempdir().unwrap();
    let _sample = Sample::create(dir.path());
    let mut istiod = Istiod::start("cluster1");

    for (ctx, version, network) in [
        ("cluster1", "v1", "network1"),
        ("cluster2", "v2", "network2"),
    ] {
        let what =
            format!("endpointShardz: helloworld {version} under {ctx} on {network} at its pod IP");
        let endpoint = istiod.wait_until(&what, SETTLE, |i| {
            let ip = pod_ip(ctx, version)?;
            let all = i.json("/debug/endpointShardz")?;
            shard(&all, &format!("Kubernetes/{ctx}"))
                .into_iter()
                .find(|e| e["Addresses"][0] == ip.as_str())
        });
        assert_eq!(endpoint["Network"], network, "{endpoint:#}");
        assert_eq!(endpoint["Labels"]["version"], version, "{endpoint:#}");
        assert_eq!(
            endpoint["Labels"]["topology.istio.io/network"], network,
            "{endpoint:#}"
        );
        assert_eq!(endpoint["Locality"]["ClusterID"], ctx, "{endpoint:#}");
        assert_eq!(endpoint["EndpointPort"], 5000, "{endpoint:#}");
    }
    // Each cluster's shard holds only its own version.
    let all = istiod.json("/debug/endpointShardz").unwrap();
    for (ctx, other) in [("cluster1", "v2"), ("cluster2", "v1")] {
        assert!(
            !shard(&all, &format!("Kubernetes/{ctx}"))
                .iter()
                .any(|e| e["Labels"]["version"] == other),
            "{ctx} holds {other}: {all:#}"
        );
    }

    // network2's gateway is where join found it: the address it wrote to meshNetworks,
    // which is the east-west gateway's LoadBalancer address, on the TLS port.
    let discovered = lb_address("cluster2");
    let networks: Value = serde_saphyr::from_str(&mesh_networks("cluster1")).unwrap();
    assert_eq!(
        networks["networks"]["network2"]["gateways"][0]["address"],
        discovered.as_str()
    );
    for (network, address) in [
        ("network2", discovered.as_str()),
        ("network1", lb_address("cluster1").as_str()),
    ] {
        istiod.wait_until(
            &format!("networkz: {network} gateway at {address}:15443"),
            SETTLE,
            |i| {
                let gateways = i.json("/debug/networkz")?;
                gateways
                    .as_array()?
                    .iter()
                    .any(|g| g["Network"] == network && g["Addr"] == address && g["Port"] == 15443)
                    .then_some(())
            },
        );
    }
}

/// A kubeconfig as a comparable value, with the token replaced and the count of tokens.
fn without_token(kubeconfig: &str) -> (Value, usize) {
    let mut value: Value = serde_saphyr::from_str(kubeconfig).unwrap();
    let mut tokens = 0;
    for user in value["users"].as_array_mut().unwrap() {
        if let Some(token) = user["user"].get_mut("token") {
            assert!(token.as_str().is_some_and(|t| t.len() > 100));
            *token = Value::from("<token>");
            tokens += 1;
        }
    }
    (value, tokens)
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn the_remote_secret_is_what_istioctl_create_remote_secret_makes() {
    let _lock = mesh_lock();
    let _certs = join_cluster2();

    // istioctl for the same remote cluster and ServiceAccount (join's reader account,
    // which exists now: istioctl must not create one of its own).
    let out = std::process::Command::new("istioctl")
        .args([
            "create-remote-secret",
            "--context",
            "cluster2",
            "--name",
            "cluster2",
            "--namespace",
            NAMESPACE,
            "--service-account",
            "istio-reader-service-account",
            "--create-service-account=false",
        ])
        .env_remove("NO_COLOR")
        .output()
        .expect("istioctl on PATH (cargo xtask testbed env builds it)");
    assert!(
        out.status.success(),
        "istioctl create-remote-secret: {}",
        text(&out.stderr)
    );
    // One Secret, followed by a document separator.
    let stdout = text(&out.stdout);
    let document = stdout
        .split("\n---")
        .find(|d| d.contains("kind: Secret"))
        .expect("istioctl printed a Secret");
    let theirs: Value = serde_saphyr::from_str(document).expect("istioctl's Secret parses");
    let ours: Value = serde_json::from_str(&kubectl(&[
        "--context=cluster1",
        "-n",
        NAMESPACE,
        "get",
        "secret",
        "istio-remote-secret-cluster2",
        "-o",
        "json",
    ]))
    .unwrap();

    assert_eq!(ours["metadata"]["name"], theirs["metadata"]["name"]);
    assert_eq!(
        ours["metadata"]["namespace"],
        theirs["metadata"]["namespace"]
    );
    assert_eq!(
        ours["metadata"]["annotations"], theirs["metadata"]["annotations"],
        "annotations"
    );
    // Every label istioctl sets, with its value; the one label kubectl-mesh adds is its
    // managed-by label (which unjoin and status use, and istiod ignores).
    let mut labels = ours["metadata"]["labels"].as_object().unwrap().clone();
    assert_eq!(
        labels.remove("app.kubernetes.io/managed-by"),
        Some(Value::from("kubectl-mesh"))
    );
    assert_eq!(
        Value::Object(labels),
        theirs["metadata"]["labels"],
        "labels"
    );
    assert_eq!(
        theirs["type"].as_str().unwrap_or("Opaque"),
        ours["type"],
        "type"
    );

    // The same single data key, the cluster name.
    let their_data = theirs["stringData"].as_object().unwrap();
    let our_data = ours["data"].as_object().unwrap();
    let keys = |m: &serde_json::Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(our_data), keys(their_data));
    assert_eq!(keys(our_data), ["cluster2"]);

    // The same kubeconfig — clusters, contexts, users, server, CA — but for the token.
    let our_kubeconfig = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(our_data["cluster2"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let (ours, our_tokens) = without_token(&our_kubeconfig);
    let (theirs, their_tokens) = without_token(their_data["cluster2"].as_str().unwrap());
    assert_eq!((our_tokens, their_tokens), (1, 1));
    assert_eq!(ours, theirs, "the kubeconfigs differ beyond the token");
}
