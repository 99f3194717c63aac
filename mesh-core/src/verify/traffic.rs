//! The guide's last step: requests from `sleep` to the service, through the API server's
//! exec, and what answered. The parsing is pure; the exec reports "not tested" when it
//! cannot run (no kubelet behind the API server), never a pass.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::AttachParams;
use serde::Serialize;
use tokio::io::AsyncReadExt;

/// What the requests from one cluster's `sleep` found; serialized as a kebab-case id.
///
/// ```
/// use mesh_core::verify::TrafficState;
/// assert_eq!(serde_json::to_value(TrafficState::NotTested).unwrap(), "not-tested");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrafficState {
    /// Every version expected answered, and every request got an answer.
    Passed,
    /// Some request failed, or a version expected never answered.
    Failed,
    /// The requests could not be sent (e.g. exec is impossible): neither passed nor failed.
    NotTested,
}

/// The requests from one cluster's `sleep`.
///
/// ```
/// let t = mesh_core::verify::count_answers("Hello version: v1, instance: a HTTP 200\n", 1);
/// assert_eq!(t.versions["v1"], 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrafficRow {
    /// The cluster ID of the `sleep` that sent them.
    pub client: String,
    /// The outcome.
    pub state: TrafficState,
    /// How many were sent.
    pub requests: u32,
    /// How many got an HTTP 2xx answer.
    pub answered: u32,
    /// Answers per version (helloworld's `Hello version: vN`).
    pub versions: BTreeMap<String, u32>,
    /// Why it failed or was not tested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The shell loop `sleep` runs: one line per request, the body followed by ` HTTP <code>`
/// (`HTTP 000` when no answer came).
///
/// ```
/// let s = mesh_core::verify::request_loop("http://helloworld.sample:5000/hello", 3);
/// assert!(s.contains("seq 3") && s.contains("helloworld.sample:5000"));
/// ```
pub fn request_loop(url: &str, requests: u32) -> String {
    format!(
        "for i in $(seq {requests}); do curl -s --max-time 5 -w ' HTTP %{{http_code}}\\n' '{url}'; done"
    )
}

/// Counts the answers in the output of [`request_loop`]: HTTP 2xx answers, and per version
/// the lines saying `Hello version: vN,`. The state is left to [`judge_traffic`].
///
/// ```
/// let out = "Hello version: v1, instance: helloworld-v1-1 HTTP 200\n\
///            Hello version: v2, instance: helloworld-v2-1 HTTP 200\n\
///            no healthy upstream HTTP 503\n";
/// let t = mesh_core::verify::count_answers(out, 3);
/// assert_eq!((t.answered, t.versions.len()), (2, 2));
/// ```
pub fn count_answers(output: &str, requests: u32) -> TrafficRow {
    let mut answered = 0;
    let mut versions = BTreeMap::new();
    for line in output.lines() {
        let code = line
            .rsplit_once(" HTTP ")
            .and_then(|(_, code)| code.trim().parse::<u16>().ok());
        if !code.is_some_and(|c| (200..300).contains(&c)) {
            continue;
        }
        answered += 1;
        if let Some(rest) = line.split("Hello version: ").nth(1) {
            let version: String = rest
                .chars()
                .take_while(|c| !matches!(c, ',' | ' '))
                .collect();
            if !version.is_empty() {
                *versions.entry(version).or_insert(0) += 1;
            }
        }
    }
    TrafficRow {
        client: String::new(),
        state: TrafficState::Failed,
        requests,
        answered,
        versions,
        message: None,
    }
}

/// Decides a [`TrafficRow`]'s state: passed when every request was answered and every
/// version in `expected_versions` answered at least once.
///
/// ```
/// use mesh_core::verify::{count_answers, judge_traffic, TrafficState};
/// let out = "Hello version: v1, instance: a HTTP 200\nHello version: v1, instance: a HTTP 200\n";
/// let row = judge_traffic(count_answers(out, 2), &["v1".to_owned(), "v2".to_owned()]);
/// assert_eq!(row.state, TrafficState::Failed);
/// assert!(row.message.unwrap().contains("v2"));
/// ```
pub fn judge_traffic(mut row: TrafficRow, expected_versions: &[String]) -> TrafficRow {
    let silent: Vec<&str> = expected_versions
        .iter()
        .filter(|v| !row.versions.contains_key(*v))
        .map(String::as_str)
        .collect();
    let failed = row.requests - row.answered.min(row.requests);
    row.message = match (failed, silent.as_slice()) {
        (0, []) => None,
        (0, silent) => Some(format!("{} never answered", silent.join(", "))),
        (n, []) => Some(format!(
            "{n} of {} request(s) got no 2xx answer",
            row.requests
        )),
        (n, silent) => Some(format!(
            "{n} of {} request(s) got no 2xx answer; {} never answered",
            row.requests,
            silent.join(", ")
        )),
    };
    row.state = if row.message.is_none() && row.requests > 0 {
        TrafficState::Passed
    } else {
        TrafficState::Failed
    };
    row
}

/// Runs [`request_loop`] in `pod`'s `container` through the API server's exec; `Err`
/// with the reason when the exec cannot run (nothing was tested).
pub(crate) async fn exec_requests(
    pods: &Api<Pod>,
    pod: &str,
    container: &str,
    script: &str,
    deadline: Duration,
) -> Result<String, String> {
    let params = AttachParams::default()
        .container(container)
        .stdin(false)
        .stdout(true)
        .stderr(false);
    let run = async {
        let mut process = pods
            .exec(pod, ["sh", "-c", script], &params)
            .await
            .map_err(|e| format!("exec in pod {pod} could not start: {e}"))?;
        let status = process.take_status();
        let mut out = String::new();
        if let Some(mut stdout) = process.stdout() {
            stdout
                .read_to_string(&mut out)
                .await
                .map_err(|e| format!("reading the output of exec in pod {pod}: {e}"))?;
        }
        // The API server reports on the exec's error channel: success, the command's
        // non-zero exit (it ran), or why it could not run (e.g. no kubelet to reach).
        if let Some(status) = status
            && let Some(status) = status.await
            && status.status.as_deref() == Some("Failure")
            && status.reason.as_deref() != Some("NonZeroExitCode")
        {
            return Err(format!(
                "exec in pod {pod} could not run: {}",
                status.message.unwrap_or_default()
            ));
        }
        process
            .join()
            .await
            .map_err(|e| format!("exec in pod {pod}: {e}"))?;
        Ok(out)
    };
    tokio::time::timeout(deadline, run)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "exec in pod {pod} did not finish within {}s",
                deadline.as_secs()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn both_versions_answering_pass() {
        let out = "Hello version: v2, instance: helloworld-v2-7 HTTP 200\n\
                   Hello version: v1, instance: helloworld-v1-3 HTTP 200\n\
                   Hello version: v1, instance: helloworld-v1-3 HTTP 200\n";
        let row = judge_traffic(count_answers(out, 3), &versions(&["v1", "v2"]));
        assert_eq!(row.state, TrafficState::Passed, "{row:?}");
        assert_eq!(row.versions["v1"], 2);
        assert_eq!(row.versions["v2"], 1);
        assert_eq!(row.answered, 3);
    }

    #[test]
    fn a_503_fails_and_is_counted() {
        let out = "Hello version: v1, instance: a HTTP 200\nno healthy upstream HTTP 503\n";
        let row = judge_traffic(count_answers(out, 2), &versions(&["v1"]));
        assert_eq!(row.state, TrafficState::Failed);
        assert_eq!(
            row.message.as_deref(),
            Some("1 of 2 request(s) got no 2xx answer")
        );
    }

    #[test]
    fn no_answer_at_all_fails() {
        let out = " HTTP 000\n HTTP 000\n";
        let row = judge_traffic(count_answers(out, 2), &versions(&["v1", "v2"]));
        assert_eq!(row.state, TrafficState::Failed);
        assert_eq!(row.answered, 0);
        assert!(row.message.unwrap().contains("v1, v2 never answered"));
    }

    #[test]
    fn fewer_lines_than_requests_fail() {
        // The loop was cut short: the missing lines are requests without an answer.
        let out = "Hello version: v1, instance: a HTTP 200\n";
        let row = judge_traffic(count_answers(out, 3), &versions(&["v1"]));
        assert_eq!(row.state, TrafficState::Failed);
        assert_eq!(row.answered, 1);
    }

    #[test]
    fn a_service_without_versions_passes_on_2xx() {
        let out = "<html>ok</html> HTTP 200\n{} HTTP 204\n";
        let row = judge_traffic(count_answers(out, 2), &[]);
        assert_eq!(row.state, TrafficState::Passed);
        assert!(row.versions.is_empty());
    }

    #[test]
    fn zero_requests_never_pass() {
        let row = judge_traffic(count_answers("", 0), &[]);
        assert_eq!(row.state, TrafficState::Failed);
    }
}
