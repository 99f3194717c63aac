//! The guide's samples as verify deploys them: namespace `sample` (sidecar injection on),
//! the `helloworld` Service in every cluster with one version per cluster, and `sleep`
//! in every cluster — with the images Istio's samples use.
//!
//! Only what is missing is created (a POST; an object that exists, the user's or one a
//! previous verify left, is used as it is), each object created carries
//! [`SAMPLE_LABEL`] and the ownership label, and [`remove`] deletes only objects carrying
//! both — the namespace only when verify created it.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service, ServiceAccount};
use kube::api::{ApiResource, DynamicObject, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::cluster::{MANAGED_BY_LABEL, delete_checked, owned_selector};
use crate::error::{Error, Result, kube};
use crate::interrupt::Interrupt;

/// The namespace the samples go to.
pub const SAMPLE_NAMESPACE: &str = "sample";
/// The label on every object verify deploys (with the ownership label): what a later
/// verify removes.
///
/// ```
/// assert_eq!(mesh_core::verify::SAMPLE_LABEL, "kubectl-mesh.io/verify-sample");
/// ```
pub const SAMPLE_LABEL: &str = "kubectl-mesh.io/verify-sample";
/// helloworld's port.
pub const HELLOWORLD_PORT: u16 = 5000;
/// The sleep sample's image (curl), as Istio's `samples/sleep` uses it.
pub const SLEEP_IMAGE: &str = "curlimages/curl";
/// The container verify execs its requests in.
pub const SLEEP_CONTAINER: &str = "sleep";

/// helloworld's image of `version`, as Istio's `samples/helloworld` uses it.
///
/// ```
/// assert_eq!(mesh_core::verify::helloworld_image("v2"), "istio/examples-helloworld-v2");
/// ```
pub fn helloworld_image(version: &str) -> String {
    format!("istio/examples-helloworld-{version}")
}

/// The labels of a sample object: `app`, verify's [`SAMPLE_LABEL`] and the ownership label.
fn labels(app: Option<&str>) -> serde_json::Value {
    let (owner, us) = MANAGED_BY_LABEL;
    let mut labels = json!({ SAMPLE_LABEL: "true" });
    labels[owner] = json!(us);
    if let Some(app) = app {
        labels["app"] = json!(app);
    }
    labels
}

/// The objects of one cluster's samples, in creation order: (kind, name, object).
/// `version`: the helloworld version this cluster runs (`None`: sleep only).
pub(crate) fn objects(version: Option<&str>) -> Vec<(&'static str, String, serde_json::Value)> {
    let ns = SAMPLE_NAMESPACE;
    let mut namespace_labels = labels(None);
    namespace_labels["istio-injection"] = json!("enabled");
    let mut objects = vec![
        (
            "Namespace",
            ns.to_owned(),
            json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": { "name": ns, "labels": namespace_labels }
            }),
        ),
        (
            "ServiceAccount",
            "sleep".to_owned(),
            json!({ "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": { "name": "sleep", "namespace": ns, "labels": labels(Some("sleep")) } }),
        ),
        (
            "Deployment",
            "sleep".to_owned(),
            json!({ "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": { "name": "sleep", "namespace": ns, "labels": labels(Some("sleep")) },
                "spec": { "replicas": 1, "selector": { "matchLabels": { "app": "sleep" } },
                    "template": { "metadata": { "labels": { "app": "sleep" } },
                        "spec": { "serviceAccountName": "sleep", "terminationGracePeriodSeconds": 0,
                            "containers": [{ "name": SLEEP_CONTAINER, "image": SLEEP_IMAGE,
                                "command": ["/bin/sleep", "infinity"] }] } } } }),
        ),
    ];
    if let Some(version) = version {
        let mut service_labels = labels(Some("helloworld"));
        service_labels["service"] = json!("helloworld");
        objects.push((
            "Service",
            "helloworld".to_owned(),
            json!({ "apiVersion": "v1", "kind": "Service",
                "metadata": { "name": "helloworld", "namespace": ns, "labels": service_labels },
                "spec": { "ports": [{ "port": HELLOWORLD_PORT, "name": "http" }],
                    "selector": { "app": "helloworld" } } }),
        ));
        let mut deployment_labels = labels(Some("helloworld"));
        deployment_labels["version"] = json!(version);
        objects.push((
            "Deployment",
            format!("helloworld-{version}"),
            json!({ "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": { "name": format!("helloworld-{version}"), "namespace": ns,
                    "labels": deployment_labels },
                "spec": { "replicas": 1,
                    "selector": { "matchLabels": { "app": "helloworld", "version": version } },
                    "template": { "metadata": { "labels": { "app": "helloworld", "version": version } },
                        "spec": { "containers": [{ "name": "helloworld",
                            "image": helloworld_image(version),
                            "ports": [{ "containerPort": HELLOWORLD_PORT }] }] } } } }),
        ));
    }
    objects
}

/// The API of a sample object's kind (every sample but the namespace lives in
/// [`SAMPLE_NAMESPACE`]).
fn api_of(client: &Client, kind: &str) -> Api<DynamicObject> {
    let c = client.clone();
    let ns = SAMPLE_NAMESPACE;
    match kind {
        "Namespace" => Api::all_with(c, &ApiResource::erase::<Namespace>(&())),
        "ServiceAccount" => Api::namespaced_with(c, ns, &ApiResource::erase::<ServiceAccount>(&())),
        "Service" => Api::namespaced_with(c, ns, &ApiResource::erase::<Service>(&())),
        _ => Api::namespaced_with(c, ns, &ApiResource::erase::<Deployment>(&())),
    }
}

/// Creates what is missing of one cluster's samples; returns what it created
/// (`Kind/name`). An object that exists (the user's, or one a previous verify left) is
/// used as it is: a POST answered 409 changes nothing.
pub(crate) async fn deploy(
    client: &Client,
    ctx: &str,
    version: Option<&str>,
) -> Result<Vec<String>> {
    let mut created = Vec::new();
    for (kind, name, object) in objects(version) {
        let object: DynamicObject = serde_json::from_value(object).map_err(|e| Error::Kube {
            cluster: ctx.to_owned(),
            action: format!("building {kind} {name}"),
            reason: e.to_string(),
            status: None,
            source: None,
        })?;
        match api_of(client, kind)
            .create(&PostParams::default(), &object)
            .await
        {
            Ok(_) => created.push(format!("{kind}/{name}")),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                return Err(kube(
                    ctx,
                    format!("creating {kind} {SAMPLE_NAMESPACE}/{name}"),
                    e,
                ));
            }
        }
    }
    Ok(created)
}

/// A running pod of `selector` in the sample namespace with an IP (ready, when `ready`).
pub(crate) async fn running_pod(
    client: &Client,
    ctx: &str,
    ns: &str,
    selector: &str,
    ready: bool,
) -> Result<Option<Pod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = pods
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| kube(ctx, format!("listing pods {selector} in {ns}"), e))?;
    Ok(list.items.into_iter().find(|p| {
        let Some(status) = &p.status else {
            return false;
        };
        let is_ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        p.metadata.deletion_timestamp.is_none()
            && status.phase.as_deref() == Some("Running")
            && status.pod_ip.is_some()
            && (!ready || is_ready)
    }))
}

/// Waits (polling, until `deadline`) for a running pod of `selector`; `what` says what
/// is waited for in the timeout's message.
pub(crate) async fn wait_for_pod(
    client: &Client,
    ctx: &str,
    selector: &str,
    ready: bool,
    wait: Duration,
    interrupt: &Interrupt,
) -> Result<Pod> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(pod) = running_pod(client, ctx, SAMPLE_NAMESPACE, selector, ready).await? {
            return Ok(pod);
        }
        if let Some(signal) = interrupt.raised() {
            return Err(Error::Interrupted {
                signal,
                completed: Vec::new(),
            });
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                cluster: ctx.to_owned(),
                what: format!("a running pod {selector} in namespace {SAMPLE_NAMESPACE}"),
                seconds: wait.as_secs(),
                hint: format!(
                    "see why with `kubectl --context {ctx} -n {SAMPLE_NAMESPACE} describe pods -l {selector}` (image pulls, sidecar injection, scheduling)"
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Deletes the samples verify made in one cluster: every Deployment, Service and
/// ServiceAccount in the sample namespace carrying [`SAMPLE_LABEL`] and the ownership
/// label, and the namespace when it carries both. Returns what it deleted.
pub(crate) async fn remove(client: &Client, ctx: &str) -> Result<Vec<String>> {
    let ns = SAMPLE_NAMESPACE;
    let selector = format!("{SAMPLE_LABEL}=true,{}", owned_selector());
    let lp = ListParams::default().labels(&selector);
    let mut deleted = Vec::new();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ours = namespaces
        .list(&lp.clone().fields(&format!("metadata.name={ns}")))
        .await
        .map_err(|e| kube(ctx, format!("reading namespace {ns}"), e))?;
    // Each object only while it is still the one listed as ours (UID and
    // resourceVersion as preconditions).
    if let Some(namespace) = ours.items.first() {
        delete_checked(
            &namespaces,
            ctx,
            &format!("namespace {ns}"),
            &namespace.metadata,
        )
        .await?;
        deleted.push(format!("Namespace/{ns}"));
        return Ok(deleted);
    }
    for kind in ["Deployment", "Service", "ServiceAccount"] {
        let api = api_of(client, kind);
        let list = api
            .list(&lp)
            .await
            .map_err(|e| kube(ctx, format!("listing {kind}s in {ns}"), e))?;
        for item in list.items {
            let name = item.metadata.name.clone().unwrap_or_default();
            delete_checked(&api, ctx, &format!("{kind} {ns}/{name}"), &item.metadata).await?;
            deleted.push(format!("{kind}/{name}"));
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_object_carries_the_sample_and_ownership_labels() {
        for (kind, name, object) in objects(Some("v1")) {
            let labels = &object["metadata"]["labels"];
            assert_eq!(labels[SAMPLE_LABEL], "true", "{kind}/{name}");
            assert_eq!(
                labels[MANAGED_BY_LABEL.0], MANAGED_BY_LABEL.1,
                "{kind}/{name}"
            );
        }
    }

    #[test]
    fn a_cluster_without_a_version_gets_sleep_only() {
        let names: Vec<String> = objects(None)
            .into_iter()
            .map(|(k, n, _)| format!("{k}/{n}"))
            .collect();
        assert_eq!(
            names,
            [
                "Namespace/sample",
                "ServiceAccount/sleep",
                "Deployment/sleep"
            ]
        );
        let names: Vec<String> = objects(Some("v2"))
            .into_iter()
            .map(|(k, n, _)| format!("{k}/{n}"))
            .collect();
        assert!(names.contains(&"Deployment/helloworld-v2".to_owned()));
        assert!(names.contains(&"Service/helloworld".to_owned()));
    }

    #[test]
    fn the_namespace_asks_for_sidecar_injection() {
        let (_, _, ns) = &objects(None)[0];
        assert_eq!(ns["metadata"]["labels"]["istio-injection"], "enabled");
    }
}
