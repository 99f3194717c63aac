//! One run at a time: a `coordination.k8s.io` Lease of kubectl-mesh's, held while a run
//! changes something two runs must not change at once (rotate: the tokens of one reader
//! account, whose unused objects a rotation deletes — another run's freshly made token
//! among them).
//!
//! A holder renews the Lease every [`RENEW_EVERY`]; another run waits until the holder
//! releases it, or until it has seen the same renewal for [`LEASE_SECONDS`] of its own
//! clock (a holder that was killed stops renewing), then takes it over with a
//! conditional update. Clocks of different machines are never compared.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::time::Instant;

use crate::error::{Error, Result, kube};

/// How long a Lease holds without a renewal.
pub(crate) const LEASE_SECONDS: i32 = 15;
/// How often the holder renews it.
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// A Lease this run holds; renewed in the background until [`HeldLease::release`] (or
/// until dropped, when it simply expires).
pub(crate) struct HeldLease {
    api: Api<Lease>,
    cluster: String,
    name: String,
    holder: String,
    renewing: tokio::task::JoinHandle<()>,
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        self.renewing.abort();
    }
}

/// Who a run is, as a Lease's holder: unique per process and call.
fn holder_identity() -> String {
    let nanos = Timestamp::now().as_nanosecond();
    format!("kubectl-mesh-{}-{nanos}", std::process::id())
}

/// The Lease as this holder writes it, over `current` (its resourceVersion kept, so the
/// write is conditional).
fn held_by(current: Option<&Lease>, name: &str, holder: &str, purpose: &str) -> Lease {
    let now = MicroTime(Timestamp::now());
    let mut lease = current.cloned().unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(super::names::owned_labels()),
            annotations: Some([("kubectl-mesh.io/purpose".to_owned(), purpose.to_owned())].into()),
            ..ObjectMeta::default()
        },
        spec: None,
    });
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(holder) {
        spec.acquire_time = Some(now.clone());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.holder_identity = Some(holder.to_owned());
    spec.lease_duration_seconds = Some(LEASE_SECONDS);
    spec.renew_time = Some(now);
    lease
}

/// What tells one holding apart from the next: the holder and its last renewal.
fn holding(lease: &Lease) -> Option<(String, Option<String>)> {
    let spec = lease.spec.as_ref()?;
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty())?;
    Some((holder, spec.renew_time.as_ref().map(|t| t.0.to_string())))
}

/// Takes Lease `name` in `api`'s namespace of `cluster`, waiting (up to `wait`, or until
/// `interrupt` is raised) while another run holds it; `waiting` is told, once, who holds
/// it. `purpose` says what the Lease guards, on the object and in errors. A Lease of
/// that name without kubectl-mesh's label is not taken over: it is somebody else's.
pub(crate) async fn acquire(
    api: Api<Lease>,
    cluster: &str,
    name: &str,
    purpose: &str,
    wait: Duration,
    interrupt: &crate::Interrupt,
    waiting: &(dyn Fn(String) + Send + Sync),
) -> Result<HeldLease> {
    let holder = holder_identity();
    let namespace = api.namespace().unwrap_or_default().to_owned();
    let what = format!("Lease {namespace}/{name}");
    let deadline = Instant::now() + wait;
    // The holding seen last, and since when (by our clock).
    let mut seen: Option<((String, Option<String>), Instant)> = None;
    let pp = PostParams {
        field_manager: Some(super::FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    loop {
        let current = api
            .get_opt(name)
            .await
            .map_err(|e| kube(cluster, format!("reading {what}"), e))?;
        if let Some(lease) = &current
            && !crate::links::managed_by_us(&lease.metadata)
        {
            return Err(Error::Malformed {
                cluster: cluster.to_owned(),
                object: what,
                reason: format!(
                    "it was not made by kubectl-mesh (no {}={} label), so it is not taken over; rename or delete it if nothing uses it",
                    super::MANAGED_BY_LABEL.0,
                    super::MANAGED_BY_LABEL.1
                ),
            });
        }
        let now = Instant::now();
        let free = match current.as_ref().and_then(holding) {
            None => true,
            Some(h) => match &seen {
                Some((before, since)) if *before == h => {
                    now.duration_since(*since) >= Duration::from_secs(LEASE_SECONDS as u64)
                }
                _ => {
                    if seen.is_none() {
                        waiting(format!("another run holds {what} ({purpose}): {}", h.0));
                    }
                    seen = Some((h, now));
                    false
                }
            },
        };
        if free {
            let lease = held_by(current.as_ref(), name, &holder, purpose);
            let written = match current {
                None => api.create(&pp, &lease).await,
                Some(_) => api.replace(name, &pp, &lease).await,
            };
            match written {
                Ok(_) => {
                    tracing::info!(cluster, lease = %what, holder, "holding the lease");
                    let renewing = tokio::spawn(renew(
                        api.clone(),
                        cluster.to_owned(),
                        name.to_owned(),
                        holder.clone(),
                        purpose.to_owned(),
                    ));
                    return Ok(HeldLease {
                        api,
                        cluster: cluster.to_owned(),
                        name: name.to_owned(),
                        holder,
                        renewing,
                    });
                }
                // Another run wrote it first: look again.
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => {
                    return Err(kube(
                        cluster,
                        format!("taking {what}, which keeps two runs from {purpose} at once"),
                        e,
                    ));
                }
            }
        }
        if let Some(signal) = interrupt.raised() {
            return Err(Error::Interrupted {
                signal,
                completed: Vec::new(),
            });
        }
        if now >= deadline {
            return Err(Error::Timeout {
                cluster: cluster.to_owned(),
                what: format!("{what} ({purpose}), held by another run"),
                seconds: wait.as_secs(),
                hint: format!(
                    "another kubectl-mesh run is {purpose}; wait for it, then run the command again (a run that was killed frees it within {LEASE_SECONDS}s)"
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Renews the Lease while it is ours.
async fn renew(api: Api<Lease>, cluster: String, name: String, holder: String, purpose: String) {
    let pp = PostParams {
        field_manager: Some(super::FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let current = match api.get_opt(&name).await {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(cluster, lease = name, error = %e, "could not read the lease to renew it");
                continue;
            }
        };
        if holding(&current).map(|h| h.0).as_deref() != Some(holder.as_str()) {
            tracing::warn!(
                cluster,
                lease = name,
                "the lease was taken over by another run"
            );
            return;
        }
        let lease = held_by(Some(&current), &name, &holder, &purpose);
        if let Err(e) = api.replace(&name, &pp, &lease).await {
            tracing::warn!(cluster, lease = name, error = %e, "could not renew the lease");
        }
    }
}

impl HeldLease {
    /// Stops renewing and deletes the Lease if it is still this run's (preconditions on
    /// its UID and resourceVersion). A failure is only logged: the Lease expires anyway.
    pub(crate) async fn release(self) {
        self.renewing.abort();
        let current = match self.api.get_opt(&self.name).await {
            Ok(Some(l)) => l,
            _ => return,
        };
        if holding(&current).map(|h| h.0).as_deref() != Some(self.holder.as_str()) {
            return;
        }
        let what = format!("Lease {}", self.name);
        if let Err(e) =
            super::delete_checked(&self.api, &self.cluster, &what, &current.metadata).await
        {
            tracing::warn!(cluster = self.cluster, lease = self.name, error = %e, "could not release the lease; it expires in {LEASE_SECONDS}s");
        }
    }
}

#[cfg(test)]
mod tests {
    use http::{Request, Response, StatusCode};
    use kube::client::Body;

    use super::*;
    use crate::cluster::mock;

    /// `acquire` against a mock API server whose Lease is `lease`: its result, and the
    /// requests made (`METHOD path`).
    async fn acquire_against(
        lease: serde_json::Value,
        interrupt: &crate::Interrupt,
    ) -> (Result<HeldLease>, Vec<String>) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some((request, send)) = handle.next_request().await {
                seen.push(format!("{} {}", request.method(), request.uri().path()));
                send.send_response(mock::json(StatusCode::OK, lease.clone()));
            }
            seen
        });
        let client = kube::Client::new(service, "default");
        let api: Api<Lease> = Api::namespaced(client.clone(), "istio-system");
        let result = acquire(
            api,
            "c2",
            "kubectl-mesh-rotate-reader",
            "rotating",
            Duration::from_secs(5),
            interrupt,
            &|_| {},
        )
        .await;
        drop(client);
        (result, server.await.unwrap())
    }

    fn lease(labels: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "kubectl-mesh-rotate-reader", "namespace": "istio-system",
                "resourceVersion": "7", "labels": labels},
            "spec": {"holderIdentity": "someone", "leaseDurationSeconds": 15,
                "renewTime": "2026-12-03T04:00:00.000000Z"}})
    }

    #[tokio::test]
    async fn a_lease_somebody_else_made_is_never_taken_over() {
        let (result, seen) =
            acquire_against(lease(serde_json::json!({})), &crate::Interrupt::default()).await;
        let err = result.err().expect("refused");
        assert!(
            err.to_string().contains("not made by kubectl-mesh"),
            "{err}"
        );
        assert!(seen.iter().all(|r| r.starts_with("GET ")), "{seen:?}");
    }

    #[tokio::test]
    async fn a_signal_stops_the_wait_for_a_held_lease_without_a_write() {
        let interrupt = crate::Interrupt::default();
        interrupt.raise(15);
        let ours = serde_json::json!({"app.kubernetes.io/managed-by": "kubectl-mesh"});
        let (result, seen) = acquire_against(lease(ours), &interrupt).await;
        assert!(
            matches!(result, Err(Error::Interrupted { signal: 15, .. })),
            "{:?}",
            result.err()
        );
        assert!(seen.iter().all(|r| r.starts_with("GET ")), "{seen:?}");
    }

    #[test]
    fn taking_a_lease_over_counts_a_transition_and_renewing_it_does_not() {
        let first = held_by(None, "l", "a", "rotating");
        let spec = first.spec.clone().unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(1));
        assert_eq!(spec.lease_duration_seconds, Some(LEASE_SECONDS));
        let renewed = held_by(Some(&first), "l", "a", "rotating");
        assert_eq!(renewed.spec.as_ref().unwrap().lease_transitions, Some(1));
        assert_eq!(
            renewed.spec.as_ref().unwrap().acquire_time,
            spec.acquire_time
        );
        let taken = held_by(Some(&renewed), "l", "b", "rotating");
        assert_eq!(taken.spec.as_ref().unwrap().lease_transitions, Some(2));
        assert_eq!(holding(&taken).unwrap().0, "b");
        assert!(crate::links::managed_by_us(&taken.metadata));
    }

    #[test]
    fn a_lease_with_no_holder_is_free() {
        let mut lease = held_by(None, "l", "a", "rotating");
        lease.spec.as_mut().unwrap().holder_identity = Some(String::new());
        assert_eq!(holding(&lease), None);
        assert_eq!(holding(&Lease::default()), None);
    }
}
