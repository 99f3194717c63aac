//! A deadline on every API request, and a record of the requests still waiting for an
//! answer (so that a step that waits can say on what).
//!
//! A server that accepts connections but never answers (a frozen process) would
//! otherwise hold a request — and the command — forever: the client's connect timeout
//! does not help once connected, and kube's client sets no read timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tower::{BoxError, Layer, Service};

/// The deadline of one API request when none is given (`--request-timeout` overrides).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An API request that got no answer before its deadline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{cluster} did not answer {request} within {}s (the API server accepts connections but does not respond; a longer request timeout gives it more time)",
    .after.as_secs_f64()
)]
pub struct RequestTimedOut {
    /// The cluster: its context, or its server URL when no context is known.
    pub cluster: String,
    /// The request, as `METHOD /path`.
    pub request: String,
    /// The deadline that passed.
    pub after: Duration,
}

/// An API request waiting for its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    /// The cluster: its context, or its server URL when no context is known.
    pub cluster: String,
    /// The request, as `METHOD /path`.
    pub request: String,
    /// How long it has waited.
    pub waited: Duration,
}

impl std::fmt::Display for PendingRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "for {} to answer {} ({}s so far)",
            self.cluster,
            self.request,
            self.waited.as_secs()
        )
    }
}

type Registry = Mutex<Vec<(u64, String, String, Instant)>>;

static PENDING: Registry = Mutex::new(Vec::new());
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The requests of this process's clients that have waited at least `at_least` for an
/// answer, longest first.
///
/// ```
/// let slow = mesh_kubeconfig::pending_requests(std::time::Duration::from_secs(3));
/// assert!(slow.is_empty());
/// ```
pub fn pending_requests(at_least: Duration) -> Vec<PendingRequest> {
    let now = Instant::now();
    let mut found: Vec<PendingRequest> = PENDING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(_, _, _, since)| now.duration_since(*since) >= at_least)
        .map(|(_, cluster, request, since)| PendingRequest {
            cluster: cluster.clone(),
            request: request.clone(),
            waited: now.duration_since(*since),
        })
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.waited));
    found
}

/// Removes its request from the registry when the request ends, however it ends.
struct Registered(u64);

impl Registered {
    fn new(cluster: &str, request: &str) -> Registered {
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        PENDING.lock().unwrap_or_else(|e| e.into_inner()).push((
            id,
            cluster.to_owned(),
            request.to_owned(),
            Instant::now(),
        ));
        Registered(id)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        PENDING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(id, ..)| *id != self.0);
    }
}

/// The layer that gives every request of a client `timeout` to be answered.
#[derive(Debug, Clone)]
pub(crate) struct DeadlineLayer {
    pub(crate) cluster: String,
    pub(crate) timeout: Duration,
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;
    fn layer(&self, inner: S) -> Deadline<S> {
        Deadline {
            inner,
            cluster: self.cluster.clone(),
            timeout: self.timeout,
        }
    }
}

/// See [`DeadlineLayer`].
#[derive(Debug, Clone)]
pub(crate) struct Deadline<S> {
    inner: S,
    cluster: String,
    timeout: Duration,
}

impl<S, B> Service<http::Request<B>> for Deadline<S>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let what = format!("{} {}", request.method(), request.uri().path());
        let cluster = self.cluster.clone();
        let timeout = self.timeout;
        let answer = self.inner.call(request);
        Box::pin(async move {
            let _pending = Registered::new(&cluster, &what);
            match tokio::time::timeout(timeout, answer).await {
                Ok(result) => result.map_err(Into::into),
                Err(_) => {
                    tracing::debug!(%cluster, request = %what, "no answer before the deadline");
                    Err(Box::new(RequestTimedOut {
                        cluster,
                        request: what,
                        after: timeout,
                    }) as BoxError)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_without_answer_fails_at_its_deadline_and_is_listed_meanwhile() {
        let (service, mut handle) = tower_test::mock::pair::<http::Request<()>, ()>();
        let mut service = DeadlineLayer {
            cluster: "cluster2".into(),
            timeout: Duration::from_millis(300),
        }
        .layer(service);
        handle.allow(1);
        std::future::poll_fn(|cx| service.poll_ready(cx))
            .await
            .unwrap();
        let request = http::Request::get("/api/v1/namespaces/istio-system")
            .body(())
            .unwrap();
        let call = tokio::spawn(service.call(request));
        // The mock never answers.
        let _held = handle.next_request().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let pending = pending_requests(Duration::from_millis(50));
        assert!(
            pending
                .iter()
                .any(|p| p.cluster == "cluster2"
                    && p.request == "GET /api/v1/namespaces/istio-system"),
            "{pending:?}"
        );
        let err = call.await.unwrap().unwrap_err();
        let timed_out = err
            .downcast_ref::<RequestTimedOut>()
            .expect("a RequestTimedOut");
        assert_eq!(timed_out.request, "GET /api/v1/namespaces/istio-system");
        assert!(err.to_string().contains("cluster2 did not answer"), "{err}");
        assert!(
            pending_requests(Duration::ZERO)
                .iter()
                .all(|p| p.request != "GET /api/v1/namespaces/istio-system")
        );
    }
}
