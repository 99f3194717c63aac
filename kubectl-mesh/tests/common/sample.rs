//! The guide's helloworld sample, as the tests that ask real istiod about endpoints
//! deploy it.

use std::path::Path;

use serde_json::Value;

use super::{kubectl, kubectl_ok};

/// The guide's sample namespace.
pub const SAMPLE: &str = "sample";

/// The guide's helloworld: the Service in both clusters, `helloworld-v1` in cluster1 and
/// `helloworld-v2` in cluster2, in a namespace with sidecar injection on (as the guide
/// labels it). kube-controller-manager writes the EndpointSlices, the test bed's simulator
/// schedules the pods, marks them Running and Ready with a pod IP, and gives them the
/// labels Istio's injector would (istiod sends a pod to other networks only with a sidecar).
pub fn helloworld(version: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {SAMPLE}
  labels: {{istio-injection: enabled}}
---
apiVersion: v1
kind: Service
metadata:
  name: helloworld
  namespace: {SAMPLE}
  labels: {{app: helloworld, service: helloworld}}
spec:
  ports:
  - {{port: 5000, name: http}}
  selector: {{app: helloworld}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: helloworld-{version}
  namespace: {SAMPLE}
  labels: {{app: helloworld, version: {version}}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: helloworld, version: {version}}}
  template:
    metadata:
      labels: {{app: helloworld, version: {version}}}
    spec:
      containers:
      - name: helloworld
        image: istio/examples-helloworld-{version}
        ports:
        - containerPort: 5000
"#
    )
}

/// Deletes the sample namespace in both clusters (waiting until it is gone) when created
/// and when dropped.
pub struct Sample(Vec<&'static str>);

impl Sample {
    /// The guide's: v1 in cluster1, v2 in cluster2.
    pub fn create(dir: &Path) -> Sample {
        Sample::create_in(dir, &[("cluster1", "v1"), ("cluster2", "v2")])
    }

    /// helloworld `version` in each `ctx` given.
    pub fn create_in(dir: &Path, versions: &[(&'static str, &str)]) -> Sample {
        let contexts: Vec<&'static str> = versions.iter().map(|(c, _)| *c).collect();
        Sample::delete(&contexts, true);
        for (ctx, version) in versions {
            let file = dir.join(format!("helloworld-{ctx}.yaml"));
            std::fs::write(&file, helloworld(version)).unwrap();
            kubectl(&["--context", ctx, "apply", "-f", file.to_str().unwrap()]);
        }
        Sample(contexts)
    }

    fn delete(contexts: &[&str], wait: bool) {
        for ctx in contexts {
            let wait = format!("--wait={wait}");
            kubectl_ok(&[
                "--context",
                ctx,
                "delete",
                "namespace",
                SAMPLE,
                "--ignore-not-found",
                &wait,
            ]);
        }
    }
}

impl Drop for Sample {
    fn drop(&mut self) {
        Sample::delete(&self.0, false);
    }
}

/// The Ready pod IP of helloworld `version` in `ctx`, once it has one.
pub fn pod_ip(ctx: &str, version: &str) -> Option<String> {
    let ip = kubectl(&[
        "--context",
        ctx,
        "-n",
        SAMPLE,
        "get",
        "pods",
        "-l",
        &format!("app=helloworld,version={version}"),
        "-o",
        "jsonpath={.items[0].status.podIP}",
        "--ignore-not-found",
    ]);
    (!ip.is_empty()).then_some(ip)
}

/// The endpoints istiod holds for helloworld under `shard` (`Kubernetes/<cluster>`).
pub fn shard(endpoints: &Value, shard: &str) -> Vec<Value> {
    endpoints["helloworld.sample.svc.cluster.local"][SAMPLE]["Shards"][shard]
        .as_array()
        .cloned()
        .unwrap_or_default()
}
