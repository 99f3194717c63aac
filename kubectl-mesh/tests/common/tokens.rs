//! ServiceAccount tokens as the tests see them: the token a link holds, and whether a
//! cluster still accepts it. Tokens never reach an assertion message: they are compared,
//! and named by where they came from.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;

use super::{kubectl, text};

/// The API server caches a successful token authentication for 10 s: a revoked token is
/// rejected once that has passed.
pub const REVOCATION: Duration = Duration::from_secs(30);

/// The token in link `key`'s kubeconfig (remote Secret `istio-remote-secret-<key>` in
/// `primary`).
pub fn link_token(primary: &str, key: &str) -> String {
    let data = kubectl(&[
        "--context",
        primary,
        "-n",
        "istio-system",
        "get",
        "secret",
        &format!("istio-remote-secret-{key}"),
        "-o",
        &format!("jsonpath={{.data.{key}}}"),
    ]);
    let yaml = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .expect("base64 data");
    let yaml = String::from_utf8(yaml).unwrap();
    yaml.lines()
        .find_map(|l| l.trim().strip_prefix("token:"))
        .map(|t| t.trim().trim_matches(['"', '\'']).to_owned())
        .expect("a token in the link's kubeconfig")
}

/// Whether `ctx`'s API server authenticates `token` (a TokenReview; the token goes on
/// stdin, never on a command line).
pub fn authenticates(ctx: &str, token: &str) -> bool {
    let review = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    });
    let mut child = std::process::Command::new("kubectl")
        .args(["--context", ctx, "create", "-f", "-", "-o", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(review.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "TokenReview: {}", text(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    answer["status"]["authenticated"] == true
}

/// Waits until `ctx` rejects `token`; false if it still authenticates after [`REVOCATION`].
pub fn rejected(ctx: &str, token: &str) -> bool {
    let deadline = Instant::now() + REVOCATION;
    while Instant::now() < deadline {
        if !authenticates(ctx, token) {
            return true;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    false
}
