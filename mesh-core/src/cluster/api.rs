//! The small request helpers every step uses: server-side apply, the conditional
//! read-modify-write of shared state, namespace creation, and polling with a deadline.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client};

use super::names::FIELD_MANAGER;
use crate::error::{Error, Result, kube};

/// Server-side apply of `object` (field manager `kubectl-mesh`, forced).
pub async fn apply<K>(api: &Api<K>, context: &str, name: &str, object: &K) -> Result<()>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|e| kube(context, format!("applying {name}"), e))?;
    Ok(())
}

/// How many times [`update`] (or any [`retry_conflicts`]) writes before a run of
/// conflicts becomes an error.
pub(crate) const UPDATE_ATTEMPTS: u32 = 5;

/// Read-modify-write of one object with optimistic concurrency — the one way every
/// write of shared state (`meshNetworks`, the `controlPlaneClusters` list, the namespace
/// labels) is made, so that two commands at once both keep their change.
///
/// `change` gets the object as it is now (`None`: missing) and returns the object to
/// server-side apply together with what the caller wants back, or `None` when nothing
/// needs to change. The apply carries the `resourceVersion` that was read, which makes
/// it conditional: the server refuses it with 409 Conflict when anyone wrote the object
/// in between. Then the object is read again and `change` runs again on what is there
/// now, up to [`UPDATE_ATTEMPTS`] writes; after that, [`Error::Conflict`] names the
/// cluster and the object. A missing object is created by the apply (nothing to lose).
/// A dry run reads and runs `change` but writes nothing.
pub(crate) async fn update<K, T, F>(
    api: &Api<K>,
    context: &str,
    object: &str,
    name: &str,
    dry_run: bool,
    change: F,
) -> Result<Option<(K, T)>>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
    F: FnMut(Option<&K>) -> Result<Option<(K, T)>>,
{
    let current = api
        .get_opt(name)
        .await
        .map_err(|e| kube(context, format!("reading {object}"), e))?;
    update_from(api, context, object, name, dry_run, current, change).await
}

/// [`update`] of an object the caller has just read (`read`; `None`: missing), so that
/// the first attempt makes no second read of it.
pub(crate) async fn update_from<K, T, F>(
    api: &Api<K>,
    context: &str,
    object: &str,
    name: &str,
    dry_run: bool,
    read: Option<K>,
    mut change: F,
) -> Result<Option<(K, T)>>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
    F: FnMut(Option<&K>) -> Result<Option<(K, T)>>,
{
    retry_conflicts(
        api,
        context,
        object,
        name,
        read,
        async |current: Option<K>| {
            let Some((mut desired, extra)) = change(current.as_ref())? else {
                return Ok(Attempt::Done(None));
            };
            if dry_run {
                return Ok(Attempt::Done(Some((desired, extra))));
            }
            desired.meta_mut().resource_version =
                current.and_then(|c| c.meta().resource_version.clone());
            let written = api
                .patch(
                    name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&desired),
                )
                .await;
            match written {
                Ok(_) => {
                    // What the caller shows or returns is the change, not the precondition.
                    desired.meta_mut().resource_version = None;
                    Ok(Attempt::Done(Some((desired, extra))))
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Conflict),
                Err(e) => Err(kube(context, format!("writing {object}"), e)),
            }
        },
    )
    .await
}

/// What one conditional write of [`retry_conflicts`] came to.
pub(crate) enum Attempt<R> {
    /// Written, or nothing to write: this is the result.
    Done(R),
    /// The server refused the write with 409 Conflict: the object changed since it was read.
    Conflict,
}

/// The loop under every conditional write: `attempt` gets the object as it is (first
/// `read`, the caller's own read; after a conflict, read again — `None`: missing) and
/// writes it conditionally (carrying the `resourceVersion` it got). On
/// [`Attempt::Conflict`] it waits a little and runs again, up to [`UPDATE_ATTEMPTS`]
/// times; then [`Error::Conflict`] names the cluster and `object`.
pub(crate) async fn retry_conflicts<K, R, F>(
    api: &Api<K>,
    context: &str,
    object: &str,
    name: &str,
    read: Option<K>,
    mut attempt: F,
) -> Result<R>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    F: AsyncFnMut(Option<K>) -> Result<Attempt<R>>,
{
    let mut current = read;
    for n in 1..=UPDATE_ATTEMPTS {
        if let Attempt::Done(result) = attempt(current).await? {
            return Ok(result);
        }
        if n == UPDATE_ATTEMPTS {
            break;
        }
        tracing::info!(
            context,
            object,
            attempt = n,
            "changed since read; reading it again"
        );
        // A little spread, so that two writers do not meet again at once.
        let jitter = u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .subsec_millis()
                % 100,
        );
        tokio::time::sleep(Duration::from_millis(50 * u64::from(n) + jitter)).await;
        current = api
            .get_opt(name)
            .await
            .map_err(|e| kube(context, format!("reading {object}"), e))?;
    }
    Err(Error::Conflict {
        cluster: context.to_owned(),
        object: object.to_owned(),
        attempts: UPDATE_ATTEMPTS,
    })
}

/// Creates namespace `name` with nothing else in it, unless it exists: what
/// [`update`] then writes into it stays conditional (a namespace applied into
/// existence by two commands at once would keep only the last one's metadata).
/// The EndpointSlices of namespace `ns`, as JSON objects: their Rust shape differs
/// between the Kubernetes versions k8s-openapi can be built for.
pub(crate) fn endpoint_slices(client: &Client, ns: &str) -> Api<DynamicObject> {
    let resource = ApiResource {
        group: "discovery.k8s.io".into(),
        version: "v1".into(),
        api_version: "discovery.k8s.io/v1".into(),
        kind: "EndpointSlice".into(),
        plural: "endpointslices".into(),
    };
    Api::namespaced_with(client.clone(), ns, &resource)
}

pub(crate) async fn create_namespace(client: &Client, context: &str, name: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let bare = Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &bare).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(kube(context, format!("creating namespace {name}"), e)),
    }
}

/// Polls `check` every 500 ms until it yields a value or `timeout` passes.
pub async fn poll<T, F, Fut>(timeout: Duration, mut check: F) -> Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await? {
            return Ok(Some(v));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Deletes the object `meta` describes (`what`, for messages) only while it is still the
/// one read: its UID and `resourceVersion` are preconditions (check-then-act). Gone
/// already counts as deleted; changed meanwhile (409) is an error saying to run again.
pub(crate) async fn delete_checked<K>(
    api: &Api<K>,
    context: &str,
    what: &str,
    meta: &kube::api::ObjectMeta,
) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = meta.name.clone().unwrap_or_default();
    let dp = kube::api::DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            resource_version: meta.resource_version.clone(),
            uid: meta.uid.clone(),
        }),
        ..kube::api::DeleteParams::default()
    };
    match api.delete(&name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Err(Error::Kube {
            cluster: context.to_owned(),
            action: format!("deleting {what}"),
            reason: "it changed meanwhile; run the command again".into(),
            status: Some(409),
            source: Some(Box::new(kube::Error::Api(s))),
        }),
        Err(e) => Err(kube(context, format!("deleting {what}"), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response, StatusCode};
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::client::Body;
    use serde_json::json;

    use crate::cluster::mock::{json, status};

    fn config_map(rv: &str, networks: &str) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "istio", "namespace": "istio-system", "resourceVersion": rv},
            "data": {"meshNetworks": networks}})
    }

    fn conflict() -> Response<Body> {
        status(409, "Conflict")
    }

    /// A mock API server: the ConfigMap changes (another writer) after every read, as
    /// often as `interleaved` says; a write with a stale resourceVersion gets 409.
    fn server(interleaved: usize) -> (Client, tokio::task::JoinHandle<Vec<serde_json::Value>>) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let task = tokio::spawn(async move {
            let mut version = 1;
            let mut doc = "networks: {}".to_owned();
            let mut writes = Vec::new();
            while let Some((request, send)) = handle.next_request().await {
                match request.method().as_str() {
                    "GET" => {
                        send.send_response(json(
                            StatusCode::OK,
                            config_map(&version.to_string(), &doc),
                        ));
                        if version <= interleaved {
                            // Someone else writes between our read and our write.
                            version += 1;
                            doc = format!(
                                "networks: {{other{version}: {{endpoints: [{{fromRegistry: c{version}}}]}}}}"
                            );
                        }
                    }
                    "PATCH" => {
                        let body = request.into_body().collect_bytes().await.unwrap();
                        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        writes.push(body.clone());
                        if body["metadata"]["resourceVersion"].as_str()
                            != Some(version.to_string().as_str())
                        {
                            send.send_response(conflict());
                        } else {
                            version += 1;
                            doc = body["data"]["meshNetworks"].as_str().unwrap().to_owned();
                            send.send_response(json(
                                StatusCode::OK,
                                config_map(&version.to_string(), &doc),
                            ));
                        }
                    }
                    other => panic!("unexpected {other}"),
                }
            }
            writes
        });
        (Client::new(service, "istio-system"), task)
    }

    async fn add_cluster9(client: Client) -> (Result<Option<(ConfigMap, ())>>, usize) {
        let api: Api<ConfigMap> = Api::namespaced(client, "istio-system");
        let mut calls = 0;
        let result = update(
            &api,
            "cluster1",
            "ConfigMap istio-system/istio",
            "istio",
            false,
            |cm| {
                calls += 1;
                let mut networks =
                    crate::networks::MeshNetworks::from_config_map(cm.unwrap()).unwrap();
                networks.upsert("network9", "cluster9", None);
                Ok(Some((networks.to_config_map("istio-system"), ())))
            },
        )
        .await;
        (result, calls)
    }

    #[tokio::test]
    async fn a_conflicting_write_is_reapplied_on_what_the_other_writer_left() {
        let (client, task) = server(2);
        let (result, calls) = add_cluster9(client).await;
        let (written, ()) = result.unwrap().unwrap();
        assert_eq!(calls, 3, "read and changed again after each conflict");
        let writes = task.await.unwrap();
        assert_eq!(writes.len(), 3);
        let last = writes.last().unwrap();
        assert_eq!(
            last["metadata"]["resourceVersion"], "3",
            "the version it read"
        );
        let doc = last["data"]["meshNetworks"].as_str().unwrap();
        assert!(
            doc.contains("cluster9") && doc.contains("c3"),
            "both changes: {doc}"
        );
        assert!(written.metadata.resource_version.is_none());
    }

    #[tokio::test]
    async fn conflicts_without_end_are_an_error_naming_cluster_and_object() {
        let (client, _task) = server(usize::MAX);
        let (result, calls) = add_cluster9(client).await;
        let err = result.unwrap_err();
        assert_eq!(calls as u32, UPDATE_ATTEMPTS);
        assert!(matches!(err, Error::Conflict { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.starts_with("cluster1: ConfigMap istio-system/istio changed")
                && msg.contains("run this command again"),
            "{msg}"
        );
    }
}
