//! Real istiod (`pilot-discovery`, built by the test bed from the pinned Istio commit) as
//! a local process against one test-bed cluster, for tests that prove istiod accepts what
//! `kubectl mesh join` wrote.
//!
//! It runs as istiod's pod would, minus the pod: the cluster's admin kubeconfig (istiod
//! runs as cluster-admin there, so writing its ConfigMaps and leader leases works),
//! `POD_NAMESPACE=istio-system`, cluster ID = the cluster's name, every listener on a free
//! loopback port, and a temporary working directory — so `./etc/istio/config/mesh` is
//! missing and istiod reads mesh config and `meshNetworks` from the `istio` ConfigMap, as
//! it does without a mounted file. `USE_REMOTE_CERTS=true` makes it load the `cacerts`
//! Secret from the cluster (what the mounted volume would hold) into that directory.
//!
//! Everything istiod prints goes to `istiod.log` in the temporary directory; a panic in
//! the test keeps the directory and prints the log's tail. Waits poll with deadlines.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::testbed_dir;

/// The Istio namespace of the test bed.
pub const NAMESPACE: &str = "istio-system";

/// A running istiod; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Istiod {
    child: Child,
    http: SocketAddr,
    grpc: SocketAddr,
    secure_grpc: SocketAddr,
    dir: Option<tempfile::TempDir>,
    log: PathBuf,
}

fn free_ports<const N: usize>() -> [u16; N] {
    // Hold every listener until all are chosen, so no port is handed out twice.
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}

impl Istiod {
    /// Starts istiod for `cluster` (its cluster ID is the cluster's name) and waits until
    /// its debug endpoints answer.
    pub fn start(cluster: &str) -> Istiod {
        let dir = tempfile::Builder::new()
            .prefix("istiod-")
            .tempdir()
            .expect("a temp dir for istiod");
        let log = dir.path().join("istiod.log");
        let out = std::fs::File::create(&log).expect("istiod.log");
        let [http, grpc, secure_grpc, monitoring, https, ctrlz] = free_ports::<6>();
        let addr = |port: u16| format!("127.0.0.1:{port}");
        let kubeconfig = testbed_dir().join(cluster).join("admin.kubeconfig");
        let child = Command::new("pilot-discovery")
            .arg("discovery")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--clusterID", cluster])
            .args(["--namespace", NAMESPACE])
            .args(["--httpAddr", &addr(http)])
            .args(["--grpcAddr", &addr(grpc)])
            .args(["--secureGRPCAddr", &addr(secure_grpc)])
            .args(["--monitoringAddr", &addr(monitoring)])
            .args(["--httpsAddr", &addr(https)])
            .args(["--ctrlz_address", "127.0.0.1"])
            .args(["--ctrlz_port", &ctrlz.to_string()])
            // Release leader leases quickly on SIGTERM, for the next test's istiod.
            .args(["--shutdownDuration", "1s"])
            .env_remove("KUBECONFIG")
            .env("POD_NAMESPACE", NAMESPACE)
            .env("POD_NAME", format!("istiod-test-{}", std::process::id()))
            .env("REVISION", "default")
            .env("CLUSTER_ID", cluster)
            .env("ENABLE_DEBUG_ON_HTTP", "true")
            .env("USE_REMOTE_CERTS", "true")
            .env("ROOT_CA_DIR", dir.path().join("cacerts"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("pilot-discovery on PATH (cargo xtask testbed env builds it)");
        let mut istiod = Istiod {
            child,
            http: ([127, 0, 0, 1], http).into(),
            grpc: ([127, 0, 0, 1], grpc).into(),
            secure_grpc: ([127, 0, 0, 1], secure_grpc).into(),
            dir: Some(dir),
            log,
        };
        istiod.wait_until(
            "istiod serves /debug/clusterz",
            Duration::from_secs(60),
            |i| i.get("/debug/clusterz").ok().filter(|(s, _)| *s == 200),
        );
        istiod
    }

    /// istiod's HTTP debug address (`127.0.0.1:PORT`), as `kubectl mesh rotate --istiod`
    /// takes it.
    pub fn http_address(&self) -> String {
        self.http.to_string()
    }

    /// istiod's plaintext xDS address (`127.0.0.1:PORT`, a pod's 15010): no authentication.
    pub fn grpc_address(&self) -> String {
        self.grpc.to_string()
    }

    /// istiod's TLS xDS address (`127.0.0.1:PORT`, a pod's 15012), where sidecars connect
    /// with a ServiceAccount token; its certificate is for `istiod.istio-system.svc`.
    pub fn secure_grpc_address(&self) -> String {
        self.secure_grpc.to_string()
    }

    /// `GET path` on istiod's HTTP port: (status, body). Debug endpoints answer loopback
    /// clients without authentication.
    pub fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect_timeout(&self.http, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: {}\r\nAccept: application/json\r\n\r\n",
            self.http
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok((status, body.to_owned()))
    }

    /// `GET path` as JSON; `None` while istiod does not answer it with 200 and JSON.
    pub fn json(&self, path: &str) -> Option<Value> {
        match self.get(path) {
            Ok((200, body)) => serde_json::from_str(&body).ok(),
            _ => None,
        }
    }

    /// Polls `check` until it returns `Some`, panicking after `timeout` with what it waited
    /// for and the tail of istiod's log. Panics at once if istiod exited.
    pub fn wait_until<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Istiod) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = check(self) {
                return found;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "istiod exited ({status}) while waiting for: {what}\n{}",
                    self.log_tail(60)
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "gave up after {timeout:?} waiting for: {what}\n{}",
                    self.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Everything istiod logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `lines` lines of istiod's log, with the log's path.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        format!(
            "--- last {lines} lines of {} ---\n{}",
            self.log.display(),
            all[all.len().saturating_sub(lines)..].join("\n")
        )
    }

    /// `/debug/clusterz`: the clusters istiod reads, as `(id, syncStatus)`.
    pub fn clusters(&self) -> Option<Vec<(String, String)>> {
        let list = self.json("/debug/clusterz")?;
        Some(
            list.as_array()?
                .iter()
                .map(|c| {
                    (
                        c["id"].as_str().unwrap_or_default().to_owned(),
                        c["syncStatus"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect(),
        )
    }
}

/// The sync status `/debug/clusterz` gives cluster `id`, in [`Istiod::clusters`]'s list.
pub fn status_of(clusters: &[(String, String)], id: &str) -> Option<String> {
    clusters
        .iter()
        .find(|(c, _)| c == id)
        .map(|(_, s)| s.clone())
}

impl Drop for Istiod {
    fn drop(&mut self) {
        // SIGTERM first: istiod then releases its leader leases, so the next istiod does
        // not wait for them to expire.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            eprintln!("istiod's log is kept in {}", dir.keep().display());
        }
    }
}
