//! The whole flow: from a kubeconfig context to the remote Secret for the primary.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use secrecy::SecretString;

use crate::{
    CaCandidate, CaOrigin, Change, Error, Kubeconfigs, ReaderAccount, RemoteKubeconfig,
    RemoteSecret, Result, TokenOptions, TokenSource, Verification, Warning, choose_ca,
    dns1123_label, ensure_reader_account, is_dns1123_label, obtain_token, server_warnings,
    verify_remote_kubeconfig,
};

/// What [`generate_remote_secret`] should produce.
#[derive(Debug, Clone)]
pub struct RemoteSecretRequest {
    /// The kubeconfig context of the remote cluster.
    pub context: String,
    /// The cluster name (DNS-1123 label); default: the context name, sanitised.
    pub cluster_name: Option<String>,
    /// The Istio namespace (reader account and Secret live there).
    pub namespace: String,
    /// The reader ServiceAccount's name.
    pub service_account: String,
    /// How to get its token.
    pub token: TokenOptions,
    /// The server URL the primary uses; default: the context's.
    pub server: Option<String>,
    /// The TLS server name; default: the context's, if it sets one.
    pub tls_server_name: Option<String>,
    /// The remote Secret's name; default `istio-remote-secret-<cluster>`.
    pub secret_name: Option<String>,
    /// The remote Secret's data key; default: the cluster name.
    pub secret_key: Option<String>,
    /// Bound on each API request.
    pub timeout: Option<Duration>,
    /// Whether to verify the kubeconfig against the cluster.
    pub verify: bool,
    /// A PEM file with the API server's CA, given by the user (`--certificate-authority`):
    /// when set, the remote kubeconfig carries exactly this CA. Required when the
    /// context skips TLS verification and its cluster entry has no CA of its own.
    pub certificate_authority: Option<PathBuf>,
    /// Accept a plain `http://` server URL (the token then travels in clear text).
    pub allow_plain_http: bool,
}

impl RemoteSecretRequest {
    /// The remote Secret's name for the cluster ID `cluster_name`: [`Self::secret_name`]
    /// when given, else `istio-remote-secret-<cluster_name>`.
    ///
    /// ```
    /// let mut request = mesh_kubeconfig::RemoteSecretRequest::new("cluster2");
    /// assert_eq!(request.secret_name_for("cluster2"), "istio-remote-secret-cluster2");
    /// request.secret_name = Some("n2-k8s-secret".into());
    /// assert_eq!(request.secret_name_for("cluster2"), "n2-k8s-secret");
    /// ```
    pub fn secret_name_for(&self, cluster_name: &str) -> String {
        self.secret_name
            .clone()
            .unwrap_or_else(|| crate::remote_secret_name(cluster_name))
    }

    /// Defaults for `context`: Istio's reader account in `istio-system`, token by (a)→(b)→(c).
    pub fn new(context: impl Into<String>) -> Self {
        Self {
            context: context.into(),
            cluster_name: None,
            namespace: "istio-system".into(),
            service_account: crate::DEFAULT_READER_SERVICE_ACCOUNT.into(),
            token: TokenOptions::default(),
            server: None,
            tls_server_name: None,
            secret_name: None,
            secret_key: None,
            timeout: None,
            verify: true,
            certificate_authority: None,
            allow_plain_http: false,
        }
    }
}

/// The remote Secret and how it was made.
#[derive(Clone)]
pub struct GeneratedRemoteSecret {
    /// The Secret to apply in the primary. It holds the token: never log it.
    pub secret: Secret,
    /// The remote kubeconfig inside it.
    pub kubeconfig: SecretString,
    /// The cluster name.
    pub cluster_name: String,
    /// The server URL in the kubeconfig.
    pub server: String,
    /// Where the CA came from.
    pub ca_origin: CaOrigin,
    /// Whether the CA was checked against the server.
    pub ca_validated: bool,
    /// Whether there were different CAs to choose from.
    pub ca_had_alternatives: bool,
    /// Where the token came from.
    pub token_source: TokenSource,
    /// The token Secret, if any.
    pub token_secret: Option<String>,
    /// Whether the token Secret was created.
    pub token_secret_created: bool,
    /// When the token expires.
    pub expires_at: Option<Timestamp>,
    /// What changed in the remote cluster (reader account and RBAC).
    pub changes: Vec<Change>,
    /// What the user should know.
    pub warnings: Vec<Warning>,
    /// The verification, if asked for.
    pub verification: Option<Verification>,
}

impl std::fmt::Debug for GeneratedRemoteSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedRemoteSecret")
            .field("secret", &self.secret.metadata.name)
            .field("kubeconfig", &"[REDACTED]")
            .field("cluster_name", &self.cluster_name)
            .field("server", &self.server)
            .field("ca_origin", &self.ca_origin)
            .field("token_source", &self.token_source)
            .field("token_secret", &self.token_secret)
            .field("changes", &self.changes)
            .field("warnings", &self.warnings)
            .finish_non_exhaustive()
    }
}

/// What `RemoteSecretRequest::prepare` settles before any request.
struct Prepared {
    resolved: crate::ResolvedContext,
    cluster_name: String,
    server: String,
    given_ca: Option<Vec<u8>>,
    /// The context skips TLS verification: nothing read through it is trusted.
    unverified: bool,
    warnings: Vec<Warning>,
}

impl RemoteSecretRequest {
    /// Checks what can be checked without asking the cluster — the cluster name, the
    /// server URL (https unless [`allow_plain_http`](Self::allow_plain_http)), the
    /// `--certificate-authority` file, and that a context skipping TLS verification comes
    /// with a CA from the user — so a caller can refuse before it changes anything.
    pub fn check(&self, kubeconfigs: &Kubeconfigs) -> Result<()> {
        self.prepare(kubeconfigs).map(|_| ())
    }

    fn prepare(&self, kubeconfigs: &Kubeconfigs) -> Result<Prepared> {
        let request = self;
        let resolved = kubeconfigs.resolve(&request.context)?;
        let cluster_name = match &request.cluster_name {
            Some(name) if !is_dns1123_label(name) => {
                return Err(Error::InvalidClusterName { name: name.clone() });
            }
            Some(name) => name.clone(),
            None => dns1123_label(&request.context),
        };
        let server = request
            .server
            .clone()
            .unwrap_or_else(|| resolved.server.clone());
        crate::kubeconfig::validate_server(&server).map_err(|reason| Error::InvalidServer {
            context: request.context.clone(),
            reason,
        })?;
        crate::require_https(&server, request.allow_plain_http)?;
        let mut warnings = server_warnings(&server);
        // A CA the user gave is read before anything is written anywhere.
        let given_ca =
            match &request.certificate_authority {
                Some(path) => Some(crate::kubeconfig::read_bounded(path).map_err(|reason| {
                    Error::ReadFile {
                        path: path.clone(),
                        reason,
                    }
                })?),
                None => None,
            };
        // Over a connection that skips TLS verification, anything read from the cluster —
        // its CA included — may come from whoever answered: only a CA from the user counts.
        let unverified = resolved.insecure_skip_tls_verify;
        if unverified {
            if given_ca.is_none() && resolved.ca_data.is_none() {
                return Err(Error::UnverifiedCa {
                    context: request.context.clone(),
                    server,
                });
            }
            warnings.push(Warning::InsecureContext {
                context: request.context.clone(),
            });
        }
        Ok(Prepared {
            resolved,
            cluster_name,
            server,
            given_ca,
            unverified,
            warnings,
        })
    }
}

/// Ensures the reader account in the remote cluster, gets its token, chooses the CA,
/// builds the remote kubeconfig and Secret, and (if asked) verifies the kubeconfig.
///
/// ```no_run
/// # async fn f() -> mesh_kubeconfig::Result<()> {
/// use mesh_kubeconfig::{KubeconfigSource, Kubeconfigs, RemoteSecretRequest, generate_remote_secret};
/// let kc = Kubeconfigs::load(&KubeconfigSource::Default)?;
/// let out = generate_remote_secret(&kc, &RemoteSecretRequest::new("cluster2")).await?;
/// for w in &out.warnings { eprintln!("warning: {w}"); }
/// # Ok(()) }
/// ```
pub async fn generate_remote_secret(
    kubeconfigs: &Kubeconfigs,
    request: &RemoteSecretRequest,
) -> Result<GeneratedRemoteSecret> {
    build(kubeconfigs, request, false).await
}

/// The token a [`preview_remote_secret`]'s kubeconfig holds in place of a real one.
///
/// ```
/// assert_eq!(mesh_kubeconfig::PREVIEW_TOKEN, "<made by a real run>");
/// ```
pub const PREVIEW_TOKEN: &str = "<made by a real run>";

/// What [`generate_remote_secret`] would make, changing nothing: the reader account's
/// changes as [`check_reader_account`](crate::check_reader_account) reports them (each
/// with its object), the CA chosen as a real run chooses it (from the namespace's
/// `kube-root-ca.crt`, else the kubeconfig), and the Secret with [`PREVIEW_TOKEN`] in
/// place of a token. It makes no token and does not verify the kubeconfig: for a dry run.
///
/// ```no_run
/// # async fn f() -> mesh_kubeconfig::Result<()> {
/// use mesh_kubeconfig::{KubeconfigSource, Kubeconfigs, RemoteSecretRequest, preview_remote_secret};
/// let kc = Kubeconfigs::load(&KubeconfigSource::Default)?;
/// let preview = preview_remote_secret(&kc, &RemoteSecretRequest::new("cluster2")).await?;
/// for change in &preview.changes { println!("would be {change}"); }
/// # Ok(()) }
/// ```
pub async fn preview_remote_secret(
    kubeconfigs: &Kubeconfigs,
    request: &RemoteSecretRequest,
) -> Result<GeneratedRemoteSecret> {
    build(kubeconfigs, request, true).await
}

/// [`generate_remote_secret`], or with `preview` [`preview_remote_secret`].
async fn build(
    kubeconfigs: &Kubeconfigs,
    request: &RemoteSecretRequest,
    preview: bool,
) -> Result<GeneratedRemoteSecret> {
    let Prepared {
        resolved,
        cluster_name,
        server,
        given_ca,
        unverified,
        mut warnings,
    } = request.prepare(kubeconfigs)?;
    let tls_server_name = request
        .tls_server_name
        .clone()
        .or_else(|| resolved.tls_server_name.clone());

    let client = kubeconfigs
        .client(&request.context, request.timeout)
        .await?;
    let ctx = request.context.as_str();
    let account = ReaderAccount::new(&request.namespace, &request.service_account);
    let (changes, token) = if preview {
        let changes = crate::check_reader_account(&client, ctx, &account)
            .await
            .map_err(|e| e.with_server(&resolved.server))?;
        let token = preview_token(&client, ctx, &account, &request.token).await?;
        (changes, token)
    } else {
        let changes = ensure_reader_account(&client, ctx, &account)
            .await
            .map_err(|e| e.with_server(&resolved.server))?;
        let token = obtain_token(&client, ctx, &account, &request.token)
            .await
            .map_err(|e| e.with_server(&resolved.server))?;
        (changes, token)
    };

    let mut candidates = Vec::new();
    if let Some(ca) = given_ca {
        candidates.push(CaCandidate {
            origin: CaOrigin::Given,
            pem: ca,
        });
    } else if let Some(ca) = &token.ca_crt
        && !unverified
    {
        let origin = if token.source == TokenSource::TokenRequest {
            CaOrigin::RootCaConfigMap
        } else {
            CaOrigin::TokenSecret
        };
        candidates.push(CaCandidate {
            origin,
            pem: ca.clone(),
        });
    }
    if let Some(ca) = &resolved.ca_data
        && request.certificate_authority.is_none()
    {
        candidates.push(CaCandidate {
            origin: CaOrigin::Kubeconfig,
            pem: ca.clone(),
        });
    }
    let probe_timeout = request.timeout.unwrap_or(Duration::from_secs(10));
    let (ca, ca_warnings) = choose_ca(
        &server,
        tls_server_name.as_deref(),
        &candidates,
        probe_timeout,
    )
    .await?;
    warnings.extend(ca_warnings);

    let kubeconfig = RemoteKubeconfig::builder(&cluster_name)
        .server(&server)
        .ca_data(ca.pem.clone())
        .tls_server_name(tls_server_name)
        .token(token.token.clone())
        .build()?
        .to_yaml()?;
    let secret = RemoteSecret::new(&cluster_name, &request.namespace)
        .secret_name(request.secret_name.clone())
        .key(request.secret_key.clone())
        .build(&kubeconfig)?;

    let verification = if request.verify && !preview {
        // Verify through the URL we can reach; the primary's may differ.
        let via = (server != resolved.server).then_some(resolved.server.as_str());
        let v = verify_remote_kubeconfig(&kubeconfig, via, request.timeout).await?;
        if v.user != account.username() {
            warnings.push(Warning::Verification {
                problem: format!(
                    "authenticates as {:?}, not as {}",
                    v.user,
                    account.username()
                ),
            });
        }
        warnings.extend(
            v.problems()
                .into_iter()
                .map(|problem| Warning::Verification { problem }),
        );
        Some(v)
    } else {
        None
    };

    for w in &warnings {
        // The caller shows warnings; this is only for the diagnostic trail.
        tracing::debug!(warning = %w, "remote secret warning");
    }
    Ok(GeneratedRemoteSecret {
        secret,
        kubeconfig,
        cluster_name,
        server,
        ca_origin: ca.origin,
        ca_validated: ca.validated,
        ca_had_alternatives: ca.had_alternatives,
        token_source: token.source,
        token_secret: token.secret_name.clone(),
        token_secret_created: token.created,
        expires_at: token.expires_at,
        changes,
        warnings,
        verification,
    })
}

/// The stand-in token of a preview: [`PREVIEW_TOKEN`], with the CA the cluster publishes
/// to its ServiceAccounts (`kube-root-ca.crt` in the account's namespace), read only.
async fn preview_token(
    client: &kube::Client,
    cluster: &str,
    account: &ReaderAccount,
    options: &crate::TokenOptions,
) -> Result<crate::ReaderToken> {
    let ca_crt = crate::token::published_ca(client, cluster, &account.namespace).await?;
    let source = match options.strategy {
        crate::TokenStrategy::TokenRequest { .. } => TokenSource::TokenRequest,
        _ => TokenSource::CreatedSecret,
    };
    Ok(crate::ReaderToken {
        token: SecretString::from(PREVIEW_TOKEN.to_owned()),
        ca_crt,
        source,
        secret_name: None,
        created: false,
        bound_to: None,
        expires_at: None,
    })
}
