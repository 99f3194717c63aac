//! istiod (`pilot-discovery` from the pinned Istio commit) as a local process against one
//! test-bed cluster, as the conformance tests run it: for the demo and the benchmarks.
//!
//! It runs as istiod's pod would, minus the pod: the cluster's admin kubeconfig,
//! `POD_NAMESPACE=istio-system`, every listener on a free loopback port, a working
//! directory of its own (so mesh config and `meshNetworks` come from the `istio`
//! ConfigMap), and `USE_REMOTE_CERTS=true` (it loads the `cacerts` Secret as the mounted
//! volume would). It is stopped (SIGTERM, then SIGKILL) when dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::testbed;

/// A running local istiod.
pub struct LocalIstiod {
    child: Child,
    /// Its HTTP (debug) address.
    pub http: SocketAddr,
    /// Its TLS xDS address (what sidecars reach on 15012).
    pub secure_grpc: String,
    /// Its log file.
    pub log: PathBuf,
}

impl LocalIstiod {
    /// Starts istiod for `cluster` (its cluster ID), working in the test bed's `work` directory.
    pub fn start(cluster: &str, work: &str, env: &[(String, String)]) -> Result<LocalIstiod> {
        let bin =
            crate::tools::tool_dir("istio", crate::istio::ISTIO_VERSION).join("pilot-discovery");
        let work = testbed::state_dir().join(work);
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work)?;
        let log = work.join("istiod.log");
        let ports: Vec<TcpListener> = (0..6)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<std::io::Result<_>>()?;
        let addr: Vec<String> = ports
            .iter()
            .map(|p| Ok(format!("127.0.0.1:{}", p.local_addr()?.port())))
            .collect::<Result<_>>()?;
        let ctrlz_port = ports[5].local_addr()?.port().to_string();
        drop(ports);
        let out = std::fs::File::create(&log)?;
        let child = Command::new(&bin)
            .arg("discovery")
            .arg("--kubeconfig")
            .arg(testbed::state_dir().join(cluster).join("admin.kubeconfig"))
            .args(["--clusterID", cluster, "--namespace", "istio-system"])
            .args(["--httpAddr", &addr[0], "--grpcAddr", &addr[1]])
            .args(["--secureGRPCAddr", &addr[2], "--monitoringAddr", &addr[3]])
            .args(["--httpsAddr", &addr[4], "--ctrlz_address", "127.0.0.1"])
            .args(["--ctrlz_port", &ctrlz_port, "--shutdownDuration", "1s"])
            .envs(env.iter().cloned())
            .env_remove("KUBECONFIG")
            .env("POD_NAMESPACE", "istio-system")
            .env("REVISION", "default")
            .env("USE_REMOTE_CERTS", "true")
            .env("ROOT_CA_DIR", work.join("cacerts"))
            .current_dir(&work)
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("running {}", bin.display()))?;
        Ok(LocalIstiod {
            child,
            http: addr[0].parse()?,
            secure_grpc: addr[2].clone(),
            log,
        })
    }

    /// `GET path` on istiod's HTTP port: the body of a 200 answer.
    pub fn get(&self, path: &str) -> Option<String> {
        let mut s = TcpStream::connect_timeout(&self.http, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.http).ok()?;
        let mut response = String::new();
        s.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        (head.split_whitespace().nth(1) == Some("200")).then(|| body.to_owned())
    }

    /// Waits (90 s deadline) until `/debug/clusterz` lists `remote` synced and the TLS
    /// xDS port accepts connections (istiod serves its debug views before xDS).
    pub fn wait_synced(&mut self, remote: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(90);
        let xds: SocketAddr = self.secure_grpc.parse()?;
        loop {
            if let Some(body) = self.get("/debug/clusterz")
                && body.contains(&format!("\"{remote}\""))
                && !body.contains("\"syncing\"")
                && TcpStream::connect_timeout(&xds, Duration::from_secs(2)).is_ok()
            {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!("istiod exited ({status}); see {}", self.log.display());
            }
            if Instant::now() > deadline {
                bail!(
                    "istiod did not list {remote} synced in /debug/clusterz and serve xDS on {} within 90s; see {}",
                    self.secure_grpc,
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for LocalIstiod {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let stop = Instant::now() + Duration::from_secs(10);
        while Instant::now() < stop && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
