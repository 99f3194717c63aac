//! Reading kubeconfigs the way kubectl does, and building clients for their contexts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use http::{HeaderName, HeaderValue};
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};

use crate::{Error, Result};

/// The HTTP `User-Agent` of every client built by kubectl-mesh.
///
/// Audit logs tell kubectl-mesh's requests apart by it.
pub const USER_AGENT: &str = concat!("kubectl-mesh/", env!("CARGO_PKG_VERSION"));

/// How long to wait for a TCP connection to an API server when no request timeout is
/// given: an unreachable server fails fast instead of hanging.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much longer than a request's deadline a socket read or write may wait.
const SOCKET_TIMEOUT_MARGIN: Duration = Duration::from_secs(5);

/// Where to read kubeconfig from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KubeconfigSource {
    /// One file named explicitly (`--kubeconfig`); it must exist.
    Explicit(PathBuf),
    /// Several files merged as `KUBECONFIG` would merge them; missing ones are skipped.
    Paths(Vec<PathBuf>),
    /// `KUBECONFIG` (several paths merged) if set, else `~/.kube/config`.
    #[default]
    Default,
}

impl KubeconfigSource {
    /// The source kubectl would use given the value of `--kubeconfig`.
    pub fn from_flag(kubeconfig: Option<PathBuf>) -> Self {
        kubeconfig.map_or(KubeconfigSource::Default, KubeconfigSource::Explicit)
    }
}

/// One or more kubeconfig files merged with kubectl's rules: the first file to define a
/// context, cluster or user wins, and so does the first `current-context`.
#[derive(Clone)]
pub struct Kubeconfigs {
    config: Kubeconfig,
    files: Vec<PathBuf>,
}

impl std::fmt::Debug for Kubeconfigs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The merged kubeconfig holds credentials: show only where it came from.
        f.debug_struct("Kubeconfigs")
            .field("files", &self.files)
            .field("contexts", &self.contexts())
            .field("current_context", &self.current_context())
            .finish_non_exhaustive()
    }
}

/// A context resolved to everything needed to reach its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedContext {
    /// The context name.
    pub name: String,
    /// The name of its cluster entry.
    pub cluster_name: String,
    /// The name of its user entry, if any.
    pub user_name: Option<String>,
    /// The API server URL.
    pub server: String,
    /// The PEM certificate authority of the cluster (inline data or the file it names).
    pub ca_data: Option<Vec<u8>>,
    /// The TLS server name to verify instead of the URL's host.
    pub tls_server_name: Option<String>,
    /// Whether the kubeconfig disables server certificate verification.
    pub insecure_skip_tls_verify: bool,
    /// The context's default namespace.
    pub namespace: Option<String>,
}

impl Kubeconfigs {
    /// Reads kubeconfig the way kubectl does.
    ///
    /// ```no_run
    /// use mesh_kubeconfig::{KubeconfigSource, Kubeconfigs};
    /// let kc = Kubeconfigs::load(&KubeconfigSource::Default)?;
    /// println!("{:?}", kc.contexts());
    /// # Ok::<(), mesh_kubeconfig::Error>(())
    /// ```
    pub fn load(source: &KubeconfigSource) -> Result<Self> {
        match source {
            KubeconfigSource::Explicit(path) => {
                if !path.exists() {
                    return Err(Error::KubeconfigMissing { path: path.clone() });
                }
                Ok(Self {
                    config: read_file(path)?,
                    files: vec![path.clone()],
                })
            }
            KubeconfigSource::Paths(paths) => Self::merge_paths(paths, "the given paths"),
            KubeconfigSource::Default => {
                if let Some(value) = std::env::var_os("KUBECONFIG") {
                    let paths: Vec<PathBuf> = std::env::split_paths(&value)
                        .filter(|p| !p.as_os_str().is_empty())
                        .collect();
                    if !paths.is_empty() {
                        return Self::merge_paths(&paths, "KUBECONFIG");
                    }
                }
                let home = std::env::var_os("HOME")
                    .or_else(|| std::env::var_os("USERPROFILE"))
                    .ok_or_else(|| Error::NoKubeconfig {
                        tried: "KUBECONFIG (unset) and ~/.kube/config (no home directory)".into(),
                    })?;
                let path = Path::new(&home).join(".kube").join("config");
                if !path.exists() {
                    return Err(Error::NoKubeconfig {
                        tried: format!("KUBECONFIG (unset) and {}", path.display()),
                    });
                }
                Ok(Self {
                    config: read_file(&path)?,
                    files: vec![path],
                })
            }
        }
    }

    fn merge_paths(paths: &[PathBuf], origin: &str) -> Result<Self> {
        let mut merged: Option<Kubeconfig> = None;
        let mut files = Vec::new();
        for path in paths {
            // kubectl skips files of KUBECONFIG that do not exist.
            if !path.exists() {
                tracing::debug!(path = %path.display(), "skipping missing kubeconfig file");
                continue;
            }
            let config = read_file(path)?;
            merged = Some(match merged {
                None => config,
                Some(m) => m.merge(config).map_err(|e| Error::KubeconfigParse {
                    path: path.clone(),
                    reason: kubeconfig_error_reason(&e),
                })?,
            });
            files.push(path.clone());
        }
        match merged {
            Some(config) => Ok(Self { config, files }),
            None => Err(Error::NoKubeconfig {
                tried: format!(
                    "{origin}: {}",
                    paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }

    /// Parses kubeconfig YAML held in memory — a remote secret's kubeconfig, which came
    /// from a cluster and is therefore **untrusted input**.
    ///
    /// This is the one way kubectl-mesh reads a kubeconfig that is not the user's own
    /// file, so the trust rule lives here: such a kubeconfig may hold only inline data —
    /// a bearer token, client certificate and key data, CA data — besides the server,
    /// TLS server name and `insecure-skip-tls-verify`. A user with `exec`, an
    /// `auth-provider`, `tokenFile`, `client-certificate`/`client-key` file paths,
    /// `username`/`password` or impersonation, and a cluster with a `certificate-authority`
    /// file or a `proxy-url`, are refused with [`Error::UntrustedKubeconfig`] before any
    /// client could be built from it: a Secret anyone with write access to the Istio
    /// namespace can store must never make this process run a program or read a local
    /// file. istiod applies the same rule to the remote secrets it loads.
    ///
    /// ```
    /// use mesh_kubeconfig::Kubeconfigs;
    /// let evil = "users:\n- name: u\n  user:\n    exec:\n      command: sh\n      apiVersion: client.authentication.k8s.io/v1\n";
    /// assert!(Kubeconfigs::from_yaml(evil).unwrap_err().to_string().contains("exec"));
    /// ```
    pub fn from_yaml(yaml: &str) -> Result<Self> {
        let path = PathBuf::from("<in memory>");
        let config = Kubeconfig::from_yaml(yaml).map_err(|e| Error::KubeconfigParse {
            path: path.clone(),
            reason: kubeconfig_error_reason(&e),
        })?;
        check_stored(&config).map_err(|reason| Error::UntrustedKubeconfig { reason })?;
        Ok(Self {
            config,
            files: vec![path],
        })
    }

    /// The files read, in merge order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The names of all contexts, in the order the files define them.
    pub fn contexts(&self) -> Vec<&str> {
        self.config
            .contexts
            .iter()
            .map(|c| c.name.as_str())
            .collect()
    }

    /// The `current-context`, as the first file to set it says.
    pub fn current_context(&self) -> Option<&str> {
        self.config
            .current_context
            .as_deref()
            .filter(|c| !c.is_empty())
    }

    /// The merged kubeconfig (it holds credentials: never log it).
    pub fn raw(&self) -> &Kubeconfig {
        &self.config
    }

    fn files_display(&self) -> String {
        let names: Vec<String> = self.files.iter().map(|p| p.display().to_string()).collect();
        if names.len() == 1 {
            format!("kubeconfig {}", names[0])
        } else {
            format!("kubeconfig files {}", names.join(", "))
        }
    }

    fn available(&self) -> String {
        let contexts = self.contexts();
        if contexts.is_empty() {
            "none".to_owned()
        } else {
            contexts.join(", ")
        }
    }

    /// `context` if given and it exists, else the current context.
    pub fn context_or_current(&self, context: Option<&str>) -> Result<String> {
        match context {
            Some(c) => {
                self.find_context(c)?;
                Ok(c.to_owned())
            }
            None => {
                let c = self
                    .current_context()
                    .ok_or_else(|| Error::NoCurrentContext {
                        files: self.files_display(),
                        available: self.available(),
                    })?;
                self.find_context(c)?;
                Ok(c.to_owned())
            }
        }
    }

    fn find_context(&self, context: &str) -> Result<&kube::config::Context> {
        self.config
            .contexts
            .iter()
            .find(|c| c.name == context)
            .and_then(|c| c.context.as_ref())
            .ok_or_else(|| Error::ContextNotFound {
                context: context.to_owned(),
                files: self.files_display(),
                available: self.available(),
            })
    }

    /// Resolves a context to its server URL, CA and TLS settings.
    pub fn resolve(&self, context: &str) -> Result<ResolvedContext> {
        let ctx = self.find_context(context)?;
        let cluster = self
            .config
            .clusters
            .iter()
            .find(|c| c.name == ctx.cluster)
            .and_then(|c| c.cluster.as_ref())
            .ok_or_else(|| Error::ClusterNotFound {
                context: context.to_owned(),
                cluster: ctx.cluster.clone(),
                files: self.files_display(),
            })?;
        let server = cluster
            .server
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::InvalidServer {
                context: context.to_owned(),
                reason: format!("cluster {:?} has no server", ctx.cluster),
            })?;
        validate_server(&server).map_err(|reason| Error::InvalidServer {
            context: context.to_owned(),
            reason,
        })?;
        let ca_data = load_ca(cluster).map_err(|reason| Error::CertificateAuthority {
            context: context.to_owned(),
            reason,
        })?;
        Ok(ResolvedContext {
            name: context.to_owned(),
            cluster_name: ctx.cluster.clone(),
            user_name: ctx.user.clone(),
            server,
            ca_data,
            tls_server_name: cluster.tls_server_name.clone().filter(|s| !s.is_empty()),
            insecure_skip_tls_verify: cluster.insecure_skip_tls_verify.unwrap_or(false),
            namespace: ctx.namespace.clone(),
        })
    }

    /// Builds a client for `context`, identifying itself as [`USER_AGENT`].
    ///
    /// `timeout` bounds each request (and the TCP connect); without it, each request
    /// gets [`DEFAULT_REQUEST_TIMEOUT`](crate::DEFAULT_REQUEST_TIMEOUT) and connecting
    /// gives up after [`DEFAULT_CONNECT_TIMEOUT`].
    ///
    /// ```no_run
    /// # async fn f() -> mesh_kubeconfig::Result<()> {
    /// use mesh_kubeconfig::{KubeconfigSource, Kubeconfigs};
    /// let kc = Kubeconfigs::load(&KubeconfigSource::Default)?;
    /// let client = kc.client("cluster2", None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn client(&self, context: &str, timeout: Option<Duration>) -> Result<Client> {
        let resolved = self.resolve(context)?;
        let options = KubeConfigOptions {
            context: Some(context.to_owned()),
            ..KubeConfigOptions::default()
        };
        let config = Config::from_custom_kubeconfig(self.config.clone(), &options)
            .await
            .map_err(|e| Error::Client {
                context: context.to_owned(),
                server: resolved.server.clone(),
                reason: kubeconfig_error_reason(&e),
            })?;
        build_client(config, timeout, context).map_err(|e| Error::Client {
            context: context.to_owned(),
            server: resolved.server,
            reason: crate::error::error_chain(&e),
        })
    }
}

/// Builds a client from a kube [`Config`]: sets the [`USER_AGENT`], makes ring the
/// process's rustls crypto provider, and gives every request a deadline: `timeout`, else
/// [`DEFAULT_REQUEST_TIMEOUT`](crate::DEFAULT_REQUEST_TIMEOUT). A request without an
/// answer by then fails with [`RequestTimedOut`](crate::RequestTimedOut) (inside
/// `kube::Error::Service`), naming the server and the request; while it waits,
/// [`pending_requests`](crate::pending_requests) lists it.
pub fn client_from_config(
    config: Config,
    timeout: Option<Duration>,
) -> std::result::Result<Client, kube::Error> {
    let server = config.cluster_url.to_string();
    build_client(config, timeout, server.trim_end_matches('/'))
}

/// [`client_from_config`] with the name its requests are known by (a context).
fn build_client(
    mut config: Config,
    timeout: Option<Duration>,
    cluster: &str,
) -> std::result::Result<Client, kube::Error> {
    install_crypto_provider();
    config
        .headers
        .retain(|(name, _)| name != http::header::USER_AGENT);
    config.headers.push((
        HeaderName::from_static("user-agent"),
        HeaderValue::from_static(USER_AGENT),
    ));
    let deadline = timeout.unwrap_or(crate::DEFAULT_REQUEST_TIMEOUT);
    config.connect_timeout = Some(timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT));
    // The body, too, must keep coming: no socket read may wait much longer than the
    // deadline (a little longer, so that the deadline's own error, which names the
    // request, comes first).
    config.read_timeout = Some(deadline + SOCKET_TIMEOUT_MARGIN);
    config.write_timeout = Some(deadline + SOCKET_TIMEOUT_MARGIN);
    let layer = crate::deadline::DeadlineLayer {
        cluster: cluster.to_owned(),
        timeout: deadline,
    };
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&layer)
        .build())
}

/// ring is the only rustls crypto provider compiled in; installing it explicitly keeps
/// rustls from guessing. Installing twice is harmless.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn read_file(path: &Path) -> Result<Kubeconfig> {
    check_readable_file(path).map_err(|reason| Error::KubeconfigRead {
        path: path.to_owned(),
        reason,
    })?;
    Kubeconfig::read_from(path).map_err(|e| match e {
        KubeconfigError::ReadConfig(io, _) => Error::KubeconfigRead {
            path: path.to_owned(),
            reason: io.to_string(),
        },
        other => Error::KubeconfigParse {
            path: path.to_owned(),
            reason: kubeconfig_error_reason(&other),
        },
    })
}

/// The reason of a kubeconfig error, without the YAML snippet serde-saphyr would render
/// (the snippet may quote a token or key).
pub(crate) fn kubeconfig_error_reason(err: &KubeconfigError) -> String {
    match err {
        KubeconfigError::Parse(e) => {
            let inner = e.without_snippet();
            let mut msg = inner.to_string();
            // Keep only the first line: later lines may quote the document.
            if let Some(i) = msg.find('\n') {
                msg.truncate(i);
            }
            match inner.location() {
                Some(loc) if !msg.contains("line") => {
                    format!("{msg} (line {}, column {})", loc.line(), loc.column())
                }
                _ => msg,
            }
        }
        other => crate::error::error_chain(other),
    }
}

/// The largest kubeconfig or CA file read: far more than any real one, and small
/// enough that a mistaken path (a log, a device) fails at once instead of filling memory.
pub const MAX_FILE_SIZE: u64 = 1024 * 1024;

/// A file we are about to read must be a regular file (following symlinks, as kubectl
/// does) of at most [`MAX_FILE_SIZE`] bytes: `/dev/zero` or a FIFO would never end.
fn check_readable_file(path: &Path) -> std::result::Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_FILE_SIZE {
        return Err(format!(
            "{} bytes, more than the {MAX_FILE_SIZE} a kubeconfig or CA file may have",
            meta.len()
        ));
    }
    Ok(())
}

/// Reads a file the user named (a CA, say), refusing what [`check_readable_file`] refuses.
/// The size is checked again on the open file, so a file swapped or grown in between
/// cannot make the read unbounded.
pub(crate) fn read_bounded(path: &Path) -> std::result::Result<Vec<u8>, String> {
    use std::io::Read as _;
    check_readable_file(path)?;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    if !file.metadata().map_err(|e| e.to_string())?.is_file() {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(format!(
            "more than the {MAX_FILE_SIZE} bytes a kubeconfig or CA file may have"
        ));
    }
    Ok(bytes)
}

/// The trust rule for a kubeconfig that came from a cluster (see
/// [`Kubeconfigs::from_yaml`]). The structs are destructured without `..`, so a field
/// a new kube version adds fails to compile here until someone decides about it.
fn check_stored(config: &Kubeconfig) -> std::result::Result<(), String> {
    const RULE: &str = "a kubeconfig stored in a cluster may hold only an inline token, client certificate and key data and CA data (istiod refuses it too)";
    for named in &config.clusters {
        let Some(cluster) = &named.cluster else {
            continue;
        };
        let kube::config::Cluster {
            server: _,
            insecure_skip_tls_verify: _,
            certificate_authority,
            certificate_authority_data: _,
            proxy_url,
            disable_compression: _,
            tls_server_name: _,
            extensions: _,
            other: _,
        } = cluster;
        let refused = [
            (
                certificate_authority.is_some(),
                "names a local CA file (certificate-authority)",
            ),
            (
                proxy_url.is_some(),
                "sends its requests through a proxy (proxy-url)",
            ),
        ];
        if let Some((_, what)) = refused.iter().find(|(bad, _)| *bad) {
            return Err(format!("cluster {:?} {what}; {RULE}", named.name));
        }
    }
    for named in &config.auth_infos {
        let Some(user) = &named.auth_info else {
            continue;
        };
        let kube::config::AuthInfo {
            username,
            password,
            token: _,
            token_file,
            client_certificate,
            client_certificate_data: _,
            client_key,
            client_key_data: _,
            impersonate,
            impersonate_uid,
            impersonate_groups,
            impersonate_user_extra,
            extensions: _,
            auth_provider,
            exec,
            other: _,
        } = user;
        let refused = [
            (exec.is_some(), "runs a program (exec plugin)"),
            (auth_provider.is_some(), "uses an auth-provider plugin"),
            (
                token_file.is_some(),
                "reads its token from a local file (tokenFile)",
            ),
            (
                client_certificate.is_some() || client_key.is_some(),
                "reads its client certificate or key from a local file (client-certificate, client-key)",
            ),
            (
                username.is_some() || password.is_some(),
                "uses basic authentication (username, password)",
            ),
            (
                impersonate.is_some()
                    || impersonate_uid.is_some()
                    || impersonate_groups.is_some()
                    || impersonate_user_extra.is_some(),
                "impersonates another user (as, as-uid, as-groups, as-user-extra)",
            ),
        ];
        if let Some((_, what)) = refused.iter().find(|(bad, _)| *bad) {
            return Err(format!("user {:?} {what}; {RULE}", named.name));
        }
    }
    Ok(())
}

/// Refuses a plain `http://` server for a kubeconfig that carries a reader token, unless
/// the user asked for it: over plain HTTP the token travels in clear text and nothing
/// proves who answers.
///
/// ```
/// assert!(mesh_kubeconfig::require_https("https://10.0.0.1:6443", false).is_ok());
/// assert!(mesh_kubeconfig::require_https("http://10.0.0.1:8080", false).is_err());
/// assert!(mesh_kubeconfig::require_https("http://10.0.0.1:8080", true).is_ok());
/// ```
pub fn require_https(server: &str, allow_plain_http: bool) -> Result<()> {
    let plain = server.parse::<http::Uri>().is_ok_and(|u| {
        u.scheme_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("http"))
    });
    if plain && !allow_plain_http {
        return Err(Error::PlainHttp {
            server: server.to_owned(),
        });
    }
    Ok(())
}

pub(crate) fn validate_server(server: &str) -> std::result::Result<http::Uri, String> {
    let uri: http::Uri = server
        .parse()
        .map_err(|e| format!("{server:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("https") | Some("http") => {}
        _ => return Err(format!("{server:?} must start with https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{server:?} has no host"));
    }
    Ok(uri)
}

fn load_ca(cluster: &kube::config::Cluster) -> std::result::Result<Option<Vec<u8>>, String> {
    if let Some(data) = cluster
        .certificate_authority_data
        .as_deref()
        .filter(|d| !d.trim().is_empty())
    {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| format!("certificate-authority-data is not base64: {e}"))?;
        return Ok(Some(bytes));
    }
    if let Some(file) = cluster
        .certificate_authority
        .as_deref()
        .filter(|f| !f.is_empty())
    {
        let bytes = read_bounded(Path::new(file))
            .map_err(|e| format!("cannot read certificate-authority {file}: {e}"))?;
        return Ok(Some(bytes));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA_B64: &str =
        "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=";

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn one(ctx: &str, cluster: &str, server: &str, current: Option<&str>) -> String {
        let current = current
            .map(|c| format!("current-context: {c}\n"))
            .unwrap_or_default();
        format!(
            "apiVersion: v1\nkind: Config\n{current}clusters:\n- name: {cluster}\n  cluster:\n    server: {server}\n    certificate-authority-data: {CA_B64}\ncontexts:\n- name: {ctx}\n  context:\n    cluster: {cluster}\n    user: {ctx}-admin\nusers:\n- name: {ctx}-admin\n  user:\n    token: not-a-real-token\n"
        )
    }

    #[test]
    fn merges_like_kubectl_first_current_context_wins() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            "a",
            &one("cluster1", "c1", "https://10.0.0.1:6443", Some("cluster1")),
        );
        let b = write(
            dir.path(),
            "b",
            &one("cluster2", "c2", "https://10.0.0.2:6443", Some("cluster2")),
        );
        let missing = dir.path().join("missing");
        let kc = Kubeconfigs::load(&KubeconfigSource::Paths(vec![
            missing,
            a.clone(),
            b.clone(),
        ]))
        .unwrap();
        assert_eq!(kc.contexts(), vec!["cluster1", "cluster2"]);
        assert_eq!(kc.current_context(), Some("cluster1"));
        assert_eq!(kc.files(), &[a, b]);
        let r = kc.resolve("cluster2").unwrap();
        assert_eq!(r.server, "https://10.0.0.2:6443");
        assert_eq!(r.cluster_name, "c2");
        assert!(
            r.ca_data
                .unwrap()
                .starts_with(b"-----BEGIN CERTIFICATE-----")
        );
        assert_eq!(kc.context_or_current(None).unwrap(), "cluster1");
    }

    #[test]
    fn first_file_wins_for_duplicate_names() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            "a",
            &one("ctx", "c", "https://first:6443", None),
        );
        let b = write(
            dir.path(),
            "b",
            &one("ctx", "c", "https://second:6443", Some("ctx")),
        );
        let kc = Kubeconfigs::load(&KubeconfigSource::Paths(vec![a, b])).unwrap();
        assert_eq!(kc.contexts(), vec!["ctx"]);
        assert_eq!(kc.resolve("ctx").unwrap().server, "https://first:6443");
        // The first file sets no current-context, so the second file's is used.
        assert_eq!(kc.current_context(), Some("ctx"));
    }

    #[test]
    fn unknown_context_lists_the_ones_that_exist() {
        let kc = Kubeconfigs::from_yaml(&one("cluster1", "c1", "https://x:6443", None)).unwrap();
        let err = kc.resolve("nope").unwrap_err().to_string();
        assert!(
            err.contains("\"nope\"") && err.contains("available contexts: cluster1"),
            "{err}"
        );
        let err = kc.context_or_current(None).unwrap_err().to_string();
        assert!(
            err.contains("no current-context") && err.contains("cluster1"),
            "{err}"
        );
    }

    #[test]
    fn explicit_missing_file_is_an_error_naming_it() {
        let err = Kubeconfigs::load(&KubeconfigSource::Explicit("/nonexistent/kc".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/kc"), "{err}");
    }

    #[test]
    fn parse_errors_name_the_file_and_do_not_quote_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "bad",
            "users:\n- name: u\n  user:\n    token: SECRET-TOKEN-VALUE\n   bad: [\n",
        );
        let err = Kubeconfigs::load(&KubeconfigSource::Explicit(p.clone()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&p.display().to_string()), "{err}");
        assert!(!err.contains("SECRET-TOKEN-VALUE"), "{err}");
    }

    #[test]
    fn ca_file_is_read_and_relative_paths_resolve_against_the_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "ca.crt",
            "-----BEGIN CERTIFICATE-----\nfile\n-----END CERTIFICATE-----\n",
        );
        let p = write(
            dir.path(),
            "kc",
            "clusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority: ca.crt\n    tls-server-name: kubernetes\ncontexts:\n- name: x\n  context:\n    cluster: c\n",
        );
        let kc = Kubeconfigs::load(&KubeconfigSource::Explicit(p)).unwrap();
        let r = kc.resolve("x").unwrap();
        assert!(
            String::from_utf8(r.ca_data.unwrap())
                .unwrap()
                .contains("file")
        );
        assert_eq!(r.tls_server_name.as_deref(), Some("kubernetes"));
    }

    #[test]
    fn context_pointing_at_a_missing_cluster_is_explained() {
        let kc = Kubeconfigs::from_yaml("contexts:\n- name: x\n  context:\n    cluster: gone\n")
            .unwrap();
        let err = kc.resolve("x").unwrap_err().to_string();
        assert!(err.contains("\"gone\""), "{err}");
    }

    #[test]
    fn debug_does_not_show_credentials() {
        let kc = Kubeconfigs::from_yaml(&one("c", "c", "https://x:6443", None)).unwrap();
        assert!(!format!("{kc:?}").contains("not-a-real-token"));
    }

    #[test]
    fn kubeconfig_and_ca_files_must_be_small_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let big = write(dir.path(), "big", &"#".repeat(MAX_FILE_SIZE as usize + 1));
        for (path, why) in [
            (PathBuf::from("/dev/zero"), "not a regular file"),
            (dir.path().to_owned(), "not a regular file"),
            (big, "more than"),
        ] {
            let err = Kubeconfigs::load(&KubeconfigSource::Explicit(path.clone()))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&path.display().to_string()) && err.contains(why),
                "{err}"
            );
            assert!(read_bounded(&path).unwrap_err().contains(why));
        }
    }

    #[test]
    fn server_urls_are_validated() {
        assert!(validate_server("https://10.0.0.1:6443").is_ok());
        assert!(validate_server("10.0.0.1:6443").is_err());
        assert!(validate_server("ftp://x").is_err());
    }
}
