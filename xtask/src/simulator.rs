//! What a cloud and kubelets would do, and only that (as kwok does):
//!
//! - a Node per cluster, Ready;
//! - LoadBalancer Services get an address `198.18.<i>.<n>` (n from 100) in
//!   `status.loadBalancer.ingress`: from the range set aside for network tests
//!   (RFC 2544), so it is no one's real address, and not loopback — a cloud never hands
//!   out loopback addresses, and Kubernetes refuses them in EndpointSlices, which is
//!   where Istio's remote profile puts the primary's gateway address;
//! - pods are bound to the node, marked Running and Ready with a pod IP `10.<100+i>.x.y`,
//!   so Deployments roll out and EndpointSlices fill;
//! - pods being deleted are removed at once, as a kubelet confirms a deletion;
//! - pods Istio's injection webhook would give a sidecar (namespace label
//!   `istio-injection=enabled`, or pod label `sidecar.istio.io/inject=true`) get the labels
//!   the injector adds (`security.istio.io/tlsMode=istio`, the canonical name and
//!   revision) — not its containers: no webhook can run against the test bed's local
//!   istiod, and istiod sends a pod to other networks only when it has a sidecar.
//!
//! It runs as `xtask testbed simulate` in the background, with its own client
//! certificate (`testbed-simulator`), so audit logs tell its requests apart.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::testbed::{self, ClusterState, State};

/// Runs the simulator for every cluster of the test bed until killed.
pub async fn run() -> Result<()> {
    let state = State::load()?.context("no test bed state; run `cargo xtask testbed up`")?;
    let tasks = state
        .clusters
        .iter()
        .enumerate()
        .map(|(i, c)| simulate_cluster(i as u8 + 1, c));
    futures::future::try_join_all(tasks).await?;
    Ok(())
}

async fn simulate_cluster(index: u8, cluster: &ClusterState) -> Result<()> {
    let client = testbed::client_from(&cluster.dir().join("simulator.kubeconfig")).await?;
    let node = format!("{}-node", cluster.name);
    ensure_node(&client, &node, cluster.ip).await?;
    let sim = ClusterSim {
        client,
        index,
        node,
        lb_used: Mutex::new(BTreeSet::new()),
        next_pod_ip: Mutex::new(1),
    };
    tokio::try_join!(sim.services(), sim.pods())?;
    Ok(())
}

struct ClusterSim {
    client: Client,
    index: u8,
    node: String,
    lb_used: Mutex<BTreeSet<u8>>,
    next_pod_ip: Mutex<u32>,
}

async fn ensure_node(client: &Client, name: &str, ip: Ipv4Addr) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    if nodes.get_opt(name).await?.is_none() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
        }))?;
        nodes.create(&PostParams::default(), &node).await?;
    }
    let now = now();
    let status = json!({"status": {
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "simulated by the kubectl-mesh test bed",
            "lastHeartbeatTime": now, "lastTransitionTime": now}],
        "addresses": [{"type": "InternalIP", "address": ip.to_string()}, {"type": "Hostname", "address": name}],
        "capacity": {"cpu": "32", "memory": "64Gi", "pods": "1000"},
        "allocatable": {"cpu": "32", "memory": "64Gi", "pods": "1000"},
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await?;
    Ok(())
}

impl ClusterSim {
    async fn services(&self) -> Result<()> {
        let api: Api<Service> = Api::all(self.client.clone());
        // Remember what is already handed out, so a restarted simulator does not reuse it.
        for svc in api.list(&Default::default()).await? {
            if let Some(ip) = lb_ip(&svc) {
                self.lb_used.lock().unwrap().insert(ip.octets()[3]);
            }
        }
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(event) = stream.next().await {
            let svc = match event {
                Ok(svc) => svc,
                Err(err) => {
                    tracing::warn!("watching services: {err}");
                    continue;
                }
            };
            let is_lb = svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
            if is_lb
                && lb_ip(&svc).is_none()
                && let Err(err) = self.assign_lb(&svc).await
            {
                tracing::warn!("assigning an address to {}: {err}", svc.name_any());
            }
        }
        Ok(())
    }

    async fn assign_lb(&self, svc: &Service) -> Result<()> {
        let last = {
            let mut used = self.lb_used.lock().unwrap();
            let last = (100..=250u8)
                .find(|n| !used.contains(n))
                .context("no LoadBalancer addresses left")?;
            used.insert(last);
            last
        };
        let ip = Ipv4Addr::new(198, 18, self.index, last);
        let ns = svc.namespace().unwrap_or_default();
        let api: Api<Service> = Api::namespaced(self.client.clone(), &ns);
        let patch = json!({"status": {"loadBalancer": {"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]}}});
        api.patch_status(
            &svc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?;
        tracing::info!("{ns}/{} got LoadBalancer address {ip}", svc.name_any());
        Ok(())
    }

    async fn pods(&self) -> Result<()> {
        let api: Api<Pod> = Api::all(self.client.clone());
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(event) = stream.try_next().await.transpose() {
            let pod = match event {
                Ok(pod) => pod,
                Err(err) => {
                    tracing::warn!("watching pods: {err}");
                    continue;
                }
            };
            if let Err(err) = self.reconcile_pod(&pod).await {
                tracing::warn!(
                    "simulating pod {}/{}: {err}",
                    pod.namespace().unwrap_or_default(),
                    pod.name_any()
                );
            }
        }
        Ok(())
    }

    async fn reconcile_pod(&self, pod: &Pod) -> Result<()> {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        if pod.metadata.deletion_timestamp.is_some() {
            // A kubelet would stop the containers and confirm; do it at once.
            if node.is_some() {
                api.delete(&name, &DeleteParams::default().grace_period(0))
                    .await?;
            }
            return Ok(());
        }
        if node.is_none() {
            self.label_injected(&api, pod).await?;
            let binding = json!({
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": name, "namespace": ns},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self.node},
            });
            let _: serde_json::Value = api
                .create_subresource("binding", &name, &PostParams::default(), &binding)
                .await?;
            return Ok(()); // the binding triggers another event that marks it running
        }
        let status = pod.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready && status.and_then(|s| s.phase.as_deref()) == Some("Running") {
            return Ok(());
        }
        let pod_ip = match status.and_then(|s| s.pod_ip.clone()) {
            Some(ip) => ip,
            None => self.next_pod_ip(),
        };
        let now = now();
        let containers: Vec<_> = pod
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|c| {
                json!({"name": c.name, "image": c.image.clone().unwrap_or_default(), "imageID": "",
                       "ready": true, "started": true, "restartCount": 0,
                       "state": {"running": {"startedAt": now}}})
            })
            .collect();
        let condition = |t: &str| json!({"type": t, "status": "True", "lastTransitionTime": now});
        let patch = json!({"status": {
            "phase": "Running",
            "hostIP": format!("127.0.{}.1", self.index),
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": now,
            "conditions": [condition("PodScheduled"), condition("Initialized"),
                           condition("ContainersReady"), condition("Ready")],
            "containerStatuses": containers,
        }});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        Ok(())
    }

    /// The labels Istio's injector adds to a pod it gives a sidecar.
    async fn label_injected(&self, api: &Api<Pod>, pod: &Pod) -> Result<()> {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        if labels.contains_key("security.istio.io/tlsMode") {
            return Ok(());
        }
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        let ns = pod.namespace().unwrap_or_default();
        let ns_injects = namespaces
            .get_opt(&ns)
            .await?
            .and_then(|n| n.metadata.labels)
            .is_some_and(|l| l.get("istio-injection").map(String::as_str) == Some("enabled"));
        let pod_injects = labels.get("sidecar.istio.io/inject").map(String::as_str);
        if pod_injects == Some("false") || !(ns_injects || pod_injects == Some("true")) {
            return Ok(());
        }
        let name = labels.get("app").cloned().unwrap_or_else(|| pod.name_any());
        let revision = labels
            .get("version")
            .cloned()
            .unwrap_or_else(|| "latest".into());
        let patch = json!({"metadata": {"labels": {
            "security.istio.io/tlsMode": "istio",
            "service.istio.io/canonical-name": name,
            "service.istio.io/canonical-revision": revision,
        }}});
        api.patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?;
        Ok(())
    }

    fn next_pod_ip(&self) -> String {
        let mut next = self.next_pod_ip.lock().unwrap();
        let n = *next;
        *next += 1;
        format!("10.{}.{}.{}", 100 + self.index as u32, n / 250, n % 250 + 1)
    }
}

fn lb_ip(svc: &Service) -> Option<Ipv4Addr> {
    svc.status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .iter()
        .find_map(|i| i.ip.as_deref()?.parse().ok())
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
