//! `kubectl mesh remote-secret`: print the Secret that lets the primary's istiod read a remote cluster.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use mesh_kubeconfig::{
    DEFAULT_READER_SERVICE_ACCOUNT, DEFAULT_TOKEN_WAIT, GeneratedRemoteSecret, KubeconfigSource,
    Kubeconfigs, RemoteSecretRequest, TokenOptions, TokenStrategy, generate_remote_secret,
};

use crate::cli::GlobalArgs;
use crate::duration::parse_duration;

/// Options of `kubectl mesh remote-secret`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
# Let cluster1's istiod read cluster2\n  \
kubectl mesh remote-secret cluster2 | kubectl apply -f - --context cluster1\n\n  \
# The API server as the primary reaches it (not the 127.0.0.1 of a kind kubeconfig)\n  \
kubectl mesh remote-secret kind-cluster2 --name cluster2 --server https://172.18.0.3:6443\n\n  \
# A token that expires after a day, instead of a long-lived token Secret\n  \
kubectl mesh remote-secret cluster2 --token-ttl 24h\n\n  \
# The 2019 guide's names: ServiceAccount istio-multi, Secret n2-k8s-secret, key n2-k8s-config\n  \
kubectl mesh remote-secret cluster2 --service-account istio-multi \\\n      \
--name n2-k8s-config --remote-secret-name n2-k8s-secret")]
pub struct RemoteSecretArgs {
    /// The kubeconfig context of the remote cluster.
    #[arg(value_name = "REMOTE")]
    pub remote: String,

    /// The cluster name: the Secret's suffix, its data key and istiod's cluster ID
    /// (a DNS-1123 label; default: REMOTE, sanitised).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// The API server URL the primary uses to reach REMOTE (default: the context's).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,

    /// How the reader credentials are made.
    #[command(flatten)]
    pub credentials: CredentialArgs,

    /// The name of the printed Secret (default: istio-remote-secret-<name>).
    #[arg(long, value_name = "NAME")]
    pub remote_secret_name: Option<String>,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = SecretFormat::Yaml)]
    pub output: SecretFormat,
}

/// How the reader credentials for a remote are made (shared by `remote-secret` and `join`).
#[derive(Debug, Clone, clap::Args)]
pub struct CredentialArgs {
    /// The name the server certificate is checked against instead of the URL's host.
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,

    /// The reader ServiceAccount in the Istio namespace of REMOTE (created if missing).
    #[arg(long, value_name = "NAME", default_value = DEFAULT_READER_SERVICE_ACCOUNT)]
    pub service_account: String,

    /// The token Secret to use when the ServiceAccount has several, or to create
    /// (default: <service-account>-token).
    #[arg(long, value_name = "NAME")]
    pub secret_name: Option<String>,

    /// Use a TokenRequest token that expires after this long (e.g. 24h; at least 10m)
    /// instead of a token Secret. It is bound to a Secret created for it in REMOTE's
    /// Istio namespace (<service-account>-bound-token-…): deleting that Secret revokes it.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub token_ttl: Option<Duration>,

    /// Where the token comes from (default: secrets-ref, then existing-secret, then
    /// create-secret).
    #[arg(long, value_enum, value_name = "SOURCE")]
    pub token_source: Option<TokenSourceArg>,

    /// How long to wait for the token controller to fill a token Secret.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub token_wait: Duration,

    /// Skip checking the kubeconfig against the remote (identity, reads allowed, writes denied).
    #[arg(long)]
    pub no_verify: bool,

    /// A PEM file with REMOTE's API server CA, to put in the remote kubeconfig instead of
    /// the CA read from the cluster. Required when REMOTE's context skips TLS
    /// verification (insecure-skip-tls-verify) and names no CA: a CA read over an
    /// unverified connection proves nothing.
    #[arg(long, value_name = "FILE")]
    pub certificate_authority: Option<std::path::PathBuf>,

    /// Accept a plain http:// server URL for the remote kubeconfig. Without it such a
    /// URL is refused: the reader token would travel in clear text.
    #[arg(long)]
    pub allow_plain_http: bool,
}

/// Where the token comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenSourceArg {
    /// (a), then (b), then (c).
    Auto,
    /// (a) The Secret the ServiceAccount's legacy secrets[] references.
    SecretsRef,
    /// (b) An existing kubernetes.io/service-account-token Secret for the ServiceAccount.
    ExistingSecret,
    /// (c) A token Secret created now, filled by the token controller.
    CreateSecret,
    /// (d) A TokenRequest token (needs --token-ttl).
    TokenRequest,
}

/// Formats of the printed Secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SecretFormat {
    /// YAML, for `kubectl apply -f -`.
    Yaml,
    /// JSON.
    Json,
}

/// Prints the remote secret for `args.remote`.
pub fn run(global: &GlobalArgs, args: &RemoteSecretArgs) -> anyhow::Result<ExitCode> {
    let request = request(global, args)?;
    let kubeconfigs = Kubeconfigs::load(&KubeconfigSource::from_flag(global.kubeconfig.clone()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let out = runtime.block_on(generate_remote_secret(&kubeconfigs, &request))?;
    report(&out, &request);
    let text = render(&out, args.output)?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn request(global: &GlobalArgs, args: &RemoteSecretArgs) -> anyhow::Result<RemoteSecretRequest> {
    let mut request = credentials_request(global, &args.remote, &args.credentials)?;
    request.cluster_name = args.name.clone();
    request.server = args.server.clone();
    request.secret_name = args.remote_secret_name.clone();
    Ok(request)
}

/// The credential part of a [`RemoteSecretRequest`] for `remote`, from the shared flags.
pub fn credentials_request(
    global: &GlobalArgs,
    remote: &str,
    args: &CredentialArgs,
) -> anyhow::Result<RemoteSecretRequest> {
    let strategy = match (args.token_source, args.token_ttl) {
        (None | Some(TokenSourceArg::TokenRequest), Some(ttl)) => {
            TokenStrategy::TokenRequest { ttl }
        }
        (Some(TokenSourceArg::TokenRequest), None) => {
            anyhow::bail!("--token-source token-request needs --token-ttl (e.g. --token-ttl 24h)")
        }
        (Some(other), Some(_)) => {
            anyhow::bail!(
                "--token-ttl asks for a TokenRequest token; it cannot be combined with --token-source {}",
                other
                    .to_possible_value()
                    .map(|v| v.get_name().to_owned())
                    .unwrap_or_default()
            )
        }
        (None | Some(TokenSourceArg::Auto), None) => TokenStrategy::Auto,
        (Some(TokenSourceArg::SecretsRef), None) => TokenStrategy::LegacySecretsRef,
        (Some(TokenSourceArg::ExistingSecret), None) => TokenStrategy::ExistingSecret,
        (Some(TokenSourceArg::CreateSecret), None) => TokenStrategy::CreateSecret,
    };
    let wait = args.token_wait;
    let timeout = global.request_timeout();
    Ok(RemoteSecretRequest {
        context: remote.to_owned(),
        cluster_name: None,
        namespace: global.namespace.clone(),
        service_account: args.service_account.clone(),
        token: TokenOptions {
            strategy,
            secret_name: args.secret_name.clone(),
            wait: if wait.is_zero() {
                DEFAULT_TOKEN_WAIT
            } else {
                wait
            },
        },
        server: None,
        tls_server_name: args.tls_server_name.clone(),
        secret_name: None,
        secret_key: None,
        timeout,
        verify: !args.no_verify,
        certificate_authority: args.certificate_authority.clone(),
        allow_plain_http: args.allow_plain_http,
    })
}

/// Notes and warnings on stderr; stdout carries only the Secret.
fn report(out: &GeneratedRemoteSecret, request: &RemoteSecretRequest) {
    for change in &out.changes {
        eprintln!("note: {}: {change}", request.context);
    }
    if out.token_secret_created {
        let secret = out.token_secret.as_deref().unwrap_or("?");
        if out.token_source == mesh_kubeconfig::TokenSource::TokenRequest {
            eprintln!(
                "note: {}: Secret {}/{secret} created; the token of ServiceAccount {} is bound to it (delete it to revoke the token)",
                request.context, request.namespace, request.service_account
            );
        } else {
            eprintln!(
                "note: {}: token Secret {}/{secret} created for ServiceAccount {}",
                request.context, request.namespace, request.service_account
            );
        }
    }
    if out.ca_had_alternatives || !out.ca_validated {
        let how = if out.ca_validated {
            "it validates"
        } else {
            "unchecked"
        };
        eprintln!("note: CA from {} ({how} {})", out.ca_origin, out.server);
    }
    tracing::info!(
        cluster = %out.cluster_name,
        token = %out.token_source,
        secret = out.token_secret.as_deref().unwrap_or("-"),
        ca = %out.ca_origin,
        expires = ?out.expires_at,
        "remote secret ready"
    );
    if let Some(v) = &out.verification {
        tracing::info!(user = %v.user, "the kubeconfig authenticates");
    }
    for w in &out.warnings {
        eprintln!("warning: {}", crate::hints::warning(w));
    }
}

/// The Secret with its kubeconfig as `stringData`, so a reviewer can read it (the API
/// server stores it as `data`).
fn render(out: &GeneratedRemoteSecret, format: SecretFormat) -> anyhow::Result<String> {
    let mut secret = out.secret.clone();
    let string_data = secret
        .data
        .take()
        .into_iter()
        .flatten()
        .map(|(key, bytes)| {
            let text = String::from_utf8(bytes.0).context("the kubeconfig is not UTF-8")?;
            Ok((key, text))
        })
        .collect::<anyhow::Result<_>>()?;
    secret.string_data = Some(string_data);
    Ok(match format {
        SecretFormat::Json => format!("{}\n", serde_json::to_string_pretty(&secret)?),
        SecretFormat::Yaml => {
            let yaml = serde_saphyr::to_string(&secret).context("cannot render YAML")?;
            format!(
                "# Remote secret for cluster {:?}, generated by kubectl-mesh {}.\n# Apply it to the primary cluster: kubectl apply -f - --context PRIMARY\n---\n{yaml}",
                out.cluster_name,
                env!("CARGO_PKG_VERSION")
            )
        }
    })
}
