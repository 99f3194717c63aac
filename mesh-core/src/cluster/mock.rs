//! A mock API server's answers, for unit tests of the request helpers.

use http::{Response, StatusCode};
use kube::client::Body;

/// A response of the mock API server: `value` with `status` (kube reads the body as JSON
/// whatever its content type says).
pub(crate) fn json(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::from(value.to_string().into_bytes()));
    *response.status_mut() = status;
    response
}

/// The API server's `Status` answer with `code` and `reason` (404 NotFound, 409 Conflict).
pub(crate) fn status(code: u16, reason: &str) -> Response<Body> {
    json(
        StatusCode::from_u16(code).expect("an HTTP status"),
        serde_json::json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
            "reason": reason, "code": code, "message": reason}),
    )
}
