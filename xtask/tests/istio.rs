//! The test bed has Istio as a platform engineer has it before joining clusters.
//!
//! These tests need a test bed brought up with `--with-istio` (`cargo xtask test` does
//! that and runs them; plain `cargo test` leaves them out). They reach it through
//! `KUBECONFIG` and find helm on `PATH`.

mod common;

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};
use xtask::istio::{self, EASTWEST_RELEASE, NAMESPACE};
use xtask::testbed::ClusterState;

use common::client;

const CONTEXTS: [&str; 2] = ["cluster1", "cluster2"];

fn unique(prefix: &str) -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    format!("{prefix}-{}-{}", std::process::id(), micros % 1_000_000_000)
}

#[test]
fn the_primary_gets_istiod_and_every_cluster_an_eastwest_gateway() {
    let clusters: Vec<ClusterState> = (1..=3)
        .map(|i| ClusterState {
            name: format!("cluster{i}"),
            ip: Ipv4Addr::new(127, 0, i, 1),
            kubernetes_version: xtask::testbed::default_version(i.into()).to_owned(),
            components: vec![],
        })
        .collect();
    let plan = istio::plan(&clusters);
    let names: Vec<(&str, &str)> = plan
        .iter()
        .map(|r| (r.cluster.as_str(), r.release))
        .collect();
    assert_eq!(
        names,
        [
            ("cluster1", "istio-base"),
            ("cluster1", "istiod"),
            ("cluster1", EASTWEST_RELEASE),
            ("cluster2", "istio-base"),
            ("cluster2", EASTWEST_RELEASE),
            ("cluster3", "istio-base"),
            ("cluster3", EASTWEST_RELEASE),
        ]
    );
    let istiod = &plan[1].values["global"];
    assert_eq!(istiod["multiCluster"]["clusterName"], "cluster1");
    assert_eq!(istiod["network"], "network1");
    assert_eq!(istiod["meshID"], istio::MESH_ID);
    // No webhook that no istiod could serve.
    assert_eq!(istiod["configValidation"], false);
    assert_eq!(istiod["operatorManageWebhooks"], true);
    assert_eq!(plan[0].values["defaultRevision"], "");
    assert_eq!(plan[6].values["networkGateway"], "network3");
}

#[tokio::test]
#[ignore = "needs the test bed: cargo xtask test"]
async fn istio_crds_are_established_in_every_cluster() {
    for context in CONTEXTS {
        let crds: Api<CustomResourceDefinition> = Api::all(client(context).await);
        for name in [
            "gateways.networking.istio.io",
            "virtualservices.networking.istio.io",
            "destinationrules.networking.istio.io",
            "serviceentries.networking.istio.io",
            "peerauthentications.security.istio.io",
        ] {
            let crd = crds
                .get_opt(name)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("no CRD {name} in {context}"));
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            assert!(established, "CRD {name} is not Established in {context}");
        }
    }
}

#[tokio::test]
#[ignore = "needs the test bed: cargo xtask test"]
async fn istiod_runs_in_the_primary_only() {
    let primary: Api<Deployment> = Api::namespaced(client("cluster1").await, NAMESPACE);
    let istiod = primary.get("istiod").await.expect("istiod in cluster1");
    let status = istiod.status.unwrap_or_default();
    assert!(
        status.available_replicas.unwrap_or(0) >= 1,
        "istiod is not available: {status:?}"
    );
    let env = istiod.spec.template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap_or_default();
    let cluster_id = env.iter().find(|e| e.name == "CLUSTER_ID");
    assert_eq!(
        cluster_id.and_then(|e| e.value.as_deref()),
        Some("cluster1")
    );
    let remote: Api<Deployment> = Api::namespaced(client("cluster2").await, NAMESPACE);
    assert!(remote.get_opt("istiod").await.unwrap().is_none());
}

#[tokio::test]
#[ignore = "needs the test bed: cargo xtask test"]
async fn the_istio_configmap_holds_the_mesh_config() {
    let cms: Api<ConfigMap> = Api::namespaced(client("cluster1").await, NAMESPACE);
    let data = cms.get("istio").await.unwrap().data.unwrap_or_default();
    let mesh: Value = serde_saphyr::from_str(data.get("mesh").expect("a mesh key")).unwrap();
    assert_eq!(mesh["rootNamespace"], NAMESPACE);
    assert_eq!(mesh["trustDomain"], "cluster.local");
    assert_eq!(mesh["defaultConfig"]["meshId"], istio::MESH_ID);
    let networks: Value =
        serde_saphyr::from_str(data.get("meshNetworks").expect("a meshNetworks key")).unwrap();
    assert!(networks["networks"].is_object(), "{networks}");
}

#[tokio::test]
#[ignore = "needs the test bed: cargo xtask test"]
async fn each_cluster_has_an_eastwest_gateway_with_a_load_balancer_address() {
    for (i, context) in CONTEXTS.iter().enumerate() {
        let client = client(context).await;
        let network = istio::network(i + 1);
        let svc = Api::<Service>::namespaced(client.clone(), NAMESPACE)
            .get(EASTWEST_RELEASE)
            .await
            .unwrap_or_else(|e| panic!("no east-west gateway Service in {context}: {e}"));
        let labels = svc.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels["istio"], "eastwestgateway", "{context}");
        assert_eq!(labels["app"], EASTWEST_RELEASE, "{context}");
        assert_eq!(labels["topology.istio.io/network"], network, "{context}");
        let spec = svc.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        let ports: Vec<(String, i32, String)> = spec
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                let target = p.target_port.map(|t| match t {
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => {
                        n.to_string()
                    }
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s,
                });
                (
                    p.name.unwrap_or_default(),
                    p.port,
                    target.unwrap_or_default(),
                )
            })
            .collect();
        for (name, port) in [
            ("status-port", 15021),
            ("tls", 15443),
            ("tls-istiod", 15012),
            ("tls-webhook", 15017),
        ] {
            assert!(
                ports.contains(&(name.to_owned(), port, port.to_string())),
                "{context}: no port {name} {port}: {ports:?}"
            );
        }
        let ip: Ipv4Addr = svc
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .and_then(|ingress| ingress.first()?.ip.clone())
            .unwrap_or_else(|| panic!("{context}: the east-west gateway has no address"))
            .parse()
            .unwrap();
        assert_eq!(
            ip.octets()[..3],
            [198, 18, (i + 1) as u8],
            "{context}: {ip}"
        );

        let deployment = Api::<Deployment>::namespaced(client, NAMESPACE)
            .get(EASTWEST_RELEASE)
            .await
            .unwrap();
        assert!(
            deployment
                .status
                .and_then(|s| s.available_replicas)
                .unwrap_or(0)
                >= 1,
            "{context}: the east-west gateway is not available"
        );
        let template = deployment.spec.template;
        let pod_labels = template.metadata.unwrap().labels.unwrap_or_default();
        assert_eq!(pod_labels["topology.istio.io/network"], network);
        let env = template.spec.unwrap().containers[0]
            .env
            .clone()
            .unwrap_or_default();
        let view = env
            .iter()
            .find(|e| e.name == "ISTIO_META_REQUESTED_NETWORK_VIEW");
        assert_eq!(view.and_then(|e| e.value.as_deref()), Some(&*network));
    }
}

#[tokio::test]
#[ignore = "needs the test bed: cargo xtask test"]
async fn istio_gateways_can_be_created_quickly_in_every_cluster() {
    let gvk = GroupVersionKind::gvk("networking.istio.io", "v1", "Gateway");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "gateways");
    for context in CONTEXTS {
        let client = client(context).await;
        // No webhook of Istio's is registered: none could be served.
        let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
        let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
        let mut names: Vec<String> = Vec::new();
        for w in validating.list(&Default::default()).await.unwrap() {
            names.extend(w.metadata.name);
        }
        for w in mutating.list(&Default::default()).await.unwrap() {
            names.extend(w.metadata.name);
        }
        assert!(
            !names.iter().any(|n| n.starts_with("istio")),
            "{context}: {names:?}"
        );

        let api: Api<DynamicObject> = Api::namespaced_with(client, NAMESPACE, &resource);
        let name = unique("test-gateway");
        let gateway: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "selector": {"istio": "eastwestgateway"},
                "servers": [{
                    "port": {"number": 15443, "name": "tls", "protocol": "TLS"},
                    "tls": {"mode": "AUTO_PASSTHROUGH"},
                    "hosts": ["*.local"],
                }],
            },
        }))
        .unwrap();
        let started = Instant::now();
        api.create(&PostParams::default(), &gateway)
            .await
            .unwrap_or_else(|e| panic!("{context}: creating a Gateway: {e}"));
        api.delete(&name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("{context}: deleting a Gateway: {e}"));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{context}: creating and deleting a Gateway took {:?}",
            started.elapsed()
        );
    }
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn helm_on_path_lists_the_releases_as_deployed() {
    let version = Command::new("helm")
        .args(["version", "--short"])
        .output()
        .expect("helm on PATH (eval \"$(cargo xtask testbed env)\")");
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.starts_with(istio::HELM_VERSION),
        "helm version {version}"
    );
    for (context, expected) in [
        ("cluster1", &["istio-base", "istiod", EASTWEST_RELEASE][..]),
        ("cluster2", &["istio-base", EASTWEST_RELEASE][..]),
    ] {
        let out = Command::new("helm")
            .args(["list", "--kube-context", context, "--namespace", NAMESPACE])
            .args(["--output", "json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        let deployed: Vec<&str> = listed
            .iter()
            .filter(|r| r["status"] == "deployed")
            .filter_map(|r| r["name"].as_str())
            .collect();
        for release in expected {
            assert!(
                deployed.contains(release),
                "{context}: {release} is not deployed: {listed:?}"
            );
        }
        assert_eq!(
            deployed.contains(&"istiod"),
            context == "cluster1",
            "{context}"
        );
    }
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn istio_binaries_report_the_pinned_build() {
    for binary in ["istioctl", "pilot-discovery"] {
        let mut cmd = Command::new(binary);
        if binary == "istioctl" {
            cmd.args(["version", "--remote=false", "--short"]);
        } else {
            cmd.args(["version", "--short"]);
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("{binary} on PATH: {e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(istio::ISTIO_BUILD_VERSION),
            "{binary}: {text}"
        );
    }
}

#[test]
#[ignore = "needs the test bed: cargo xtask test"]
fn a_helm_failure_names_the_cluster_and_the_release_and_shows_helm_output() {
    let missing = ClusterState {
        name: unique("no-such-cluster"),
        ip: Ipv4Addr::new(127, 0, 9, 1),
        kubernetes_version: xtask::tools::NEWEST_KUBERNETES.to_owned(),
        components: vec![],
    };
    let err = istio::install(std::slice::from_ref(&missing), None)
        .expect_err("a context that does not exist")
        .to_string();
    assert!(err.contains(&missing.name), "{err}");
    assert!(err.contains("release istio-base"), "{err}");
    assert!(err.contains("Error:"), "helm's own output: {err}");
    let values = xtask::testbed::state_dir()
        .join("istio")
        .join(format!("{}-istio-base.values.json", missing.name));
    std::fs::remove_file(values).unwrap();
}
