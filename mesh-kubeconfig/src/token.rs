//! Getting a token for the reader ServiceAccount, on every Kubernetes version.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use secrecy::{ExposeSecret, SecretString};

use crate::reader::{ReaderAccount, get_opt};
use crate::{Error, FIELD_MANAGER, Result};

/// The type of Secrets the token controller fills.
const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";
const SA_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
const SA_UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";

/// How long to wait, by default, for the token controller to fill a token Secret.
pub const DEFAULT_TOKEN_WAIT: Duration = Duration::from_secs(30);

/// The shortest lifetime the TokenRequest API grants.
pub const MIN_TOKEN_TTL: Duration = Duration::from_secs(600);

/// The annotation on the Secret a bound token is bound to, naming the ServiceAccount
/// the token is for. Deleting that Secret revokes the token.
///
/// ```
/// assert_eq!(mesh_kubeconfig::BOUND_TOKEN_FOR_ANNOTATION, "kubectl-mesh.io/bound-token-for");
/// ```
pub const BOUND_TOKEN_FOR_ANNOTATION: &str = "kubectl-mesh.io/bound-token-for";

/// Which way to get a token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TokenStrategy {
    /// (a) the legacy `secrets[]` reference, else (b) an existing token Secret, else
    /// (c) create one and wait for it to be filled.
    #[default]
    Auto,
    /// (a) only: the token Secret the ServiceAccount's `secrets[]` references
    /// (what clusters before Kubernetes 1.24 created).
    LegacySecretsRef,
    /// (b) only: an existing `kubernetes.io/service-account-token` Secret annotated
    /// for the ServiceAccount.
    ExistingSecret,
    /// (c) only: create such a Secret (or reuse one of that name) and wait until the
    /// token controller fills it.
    CreateSecret,
    /// (d) a token from the TokenRequest API with this lifetime, bound to a Secret
    /// created for it (see [`request_bound_token`]): deleting that Secret revokes it.
    TokenRequest {
        /// The lifetime asked for (the server may grant less).
        ttl: Duration,
    },
}

/// Options of [`obtain_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOptions {
    /// Which way.
    pub strategy: TokenStrategy,
    /// The token Secret to use among several, or to create (default `<account>-token`).
    pub secret_name: Option<String>,
    /// How long to wait for the token controller to fill a Secret.
    pub wait: Duration,
}

impl Default for TokenOptions {
    fn default() -> Self {
        Self {
            strategy: TokenStrategy::Auto,
            secret_name: None,
            wait: DEFAULT_TOKEN_WAIT,
        }
    }
}

/// Where a token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// (a) the Secret referenced by the ServiceAccount's `secrets[]`.
    LegacySecretsRef,
    /// (b) an existing token Secret annotated for the ServiceAccount.
    ExistingSecret,
    /// (c) a token Secret kubectl-mesh created (or found under the name it creates).
    CreatedSecret,
    /// (d) the TokenRequest API, bound to a Secret created for it.
    TokenRequest,
}

impl std::fmt::Display for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenSource::LegacySecretsRef => "the ServiceAccount's secrets[] reference",
            TokenSource::ExistingSecret => "an existing token Secret",
            TokenSource::CreatedSecret => "a token Secret created for it",
            TokenSource::TokenRequest => "a TokenRequest",
        })
    }
}

/// A token for the reader ServiceAccount.
#[derive(Clone)]
pub struct ReaderToken {
    /// The bearer token.
    pub token: SecretString,
    /// The CA the cluster publishes to its ServiceAccounts (`ca.crt` of the token
    /// Secret, or of the `kube-root-ca.crt` ConfigMap for TokenRequest tokens).
    pub ca_crt: Option<Vec<u8>>,
    /// Which path produced it.
    pub source: TokenSource,
    /// The token Secret it was read from, or the Secret a TokenRequest token is bound
    /// to (deleting either revokes the token).
    pub secret_name: Option<String>,
    /// Whether that Secret was created by this call.
    pub created: bool,
    /// The Secret a TokenRequest token is bound to, as created (its UID and
    /// resourceVersion, for a conditional delete); `None` for a token Secret's token.
    pub bound_to: Option<ObjectMeta>,
    /// When it expires; `None` for tokens that never do (token Secrets).
    pub expires_at: Option<Timestamp>,
}

impl std::fmt::Debug for ReaderToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderToken")
            .field("token", &"[REDACTED]")
            .field(
                "ca_crt",
                &self.ca_crt.as_ref().map(|c| format!("{} bytes", c.len())),
            )
            .field("source", &self.source)
            .field("secret_name", &self.secret_name)
            .field("created", &self.created)
            .field(
                "bound_to",
                &self.bound_to.as_ref().and_then(|m| m.name.as_deref()),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Gets a token for `account` in the cluster behind `client` (named `cluster` in errors).
///
/// The ServiceAccount must exist (see [`crate::ensure_reader_account`]). Waiting for
/// the token controller is bounded by `options.wait`.
///
/// ```no_run
/// # async fn f(client: kube::Client) -> mesh_kubeconfig::Result<()> {
/// use mesh_kubeconfig::{ReaderAccount, TokenOptions, obtain_token};
/// let token = obtain_token(&client, "cluster2", &ReaderAccount::istio_default("istio-system"), &TokenOptions::default()).await?;
/// println!("token from {}", token.source);
/// # Ok(()) }
/// ```
pub async fn obtain_token(
    client: &Client,
    cluster: &str,
    account: &ReaderAccount,
    options: &TokenOptions,
) -> Result<ReaderToken> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &account.namespace);
    let sa = get_opt(
        &accounts,
        &account.name,
        cluster,
        &format!("ServiceAccount {account}"),
    )
    .await?
    .ok_or_else(|| Error::ServiceAccountMissing {
        cluster: cluster.to_owned(),
        namespace: account.namespace.clone(),
        name: account.name.clone(),
    })?;
    let ctx = Ctx {
        client,
        cluster,
        account,
        sa_uid: sa.metadata.uid.clone(),
        options,
    };
    let token = match &options.strategy {
        TokenStrategy::LegacySecretsRef => ctx.legacy(&sa).await?,
        TokenStrategy::ExistingSecret => ctx.existing().await?,
        TokenStrategy::CreateSecret => ctx.create().await?,
        TokenStrategy::TokenRequest { ttl } => {
            request_bound_token(client, cluster, account, *ttl, BTreeMap::new()).await?
        }
        TokenStrategy::Auto => match ctx.legacy(&sa).await {
            Ok(t) => t,
            Err(Error::NoLegacyTokenSecret { .. }) => match ctx.existing().await {
                Ok(t) => t,
                Err(Error::NoTokenSecret { .. }) => ctx.create().await?,
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        },
    };
    tracing::info!(
        cluster,
        account = %account,
        source = %token.source,
        secret = token.secret_name.as_deref().unwrap_or("-"),
        created = token.created,
        "obtained a reader token"
    );
    Ok(token)
}

struct Ctx<'a> {
    client: &'a Client,
    cluster: &'a str,
    account: &'a ReaderAccount,
    sa_uid: Option<String>,
    options: &'a TokenOptions,
}

/// Why a Secret is not a usable token of the account, or `None` if it is one (possibly
/// not filled yet).
fn not_a_token_reason(
    secret: &Secret,
    account: &ReaderAccount,
    sa_uid: Option<&str>,
) -> Option<String> {
    if secret.type_.as_deref() != Some(TOKEN_SECRET_TYPE) {
        return Some(format!(
            "its type is {:?}, not {TOKEN_SECRET_TYPE}",
            secret.type_.as_deref().unwrap_or("Opaque")
        ));
    }
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    if annotations.get(SA_NAME_ANNOTATION).map(String::as_str) != Some(account.name.as_str()) {
        return Some(format!(
            "it is not annotated {SA_NAME_ANNOTATION}: {}",
            account.name
        ));
    }
    if let (Some(have), Some(want)) = (annotations.get(SA_UID_ANNOTATION), sa_uid)
        && have != want
    {
        return Some("it belongs to an earlier ServiceAccount of that name".to_owned());
    }
    None
}

fn token_of(secret: &Secret) -> Option<SecretString> {
    let data = secret.data.as_ref()?;
    let token = data.get("token")?;
    let text = std::str::from_utf8(&token.0).ok()?.trim();
    (!text.is_empty()).then(|| SecretString::from(text.to_owned()))
}

fn ca_of(secret: &Secret) -> Option<Vec<u8>> {
    secret
        .data
        .as_ref()?
        .get("ca.crt")
        .map(|b| b.0.clone())
        .filter(|b| !b.is_empty())
}

impl Ctx<'_> {
    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.account.namespace)
    }

    fn ambiguous(&self, mut names: Vec<String>) -> Error {
        names.sort();
        Error::AmbiguousTokenSecret {
            cluster: self.cluster.to_owned(),
            namespace: self.account.namespace.clone(),
            name: self.account.name.clone(),
            candidates: names.join(", "),
        }
    }

    fn filled(&self, secret: &Secret, source: TokenSource, created: bool) -> Option<ReaderToken> {
        let token = token_of(secret)?;
        Some(ReaderToken {
            expires_at: jwt_expiry(&token),
            token,
            ca_crt: ca_of(secret),
            source,
            secret_name: secret.metadata.name.clone(),
            created,
            bound_to: None,
        })
    }

    /// (a) The token Secret of the ServiceAccount's legacy `secrets[]` list.
    async fn legacy(&self, sa: &ServiceAccount) -> Result<ReaderToken> {
        let refs = sa.secrets.clone().unwrap_or_default();
        let mut candidates = Vec::new();
        for r in refs {
            let Some(name) = r.name.filter(|n| !n.is_empty()) else {
                continue;
            };
            if self
                .options
                .secret_name
                .as_ref()
                .is_some_and(|want| *want != name)
            {
                continue;
            }
            let secret = get_opt(
                &self.secrets(),
                &name,
                self.cluster,
                &format!("Secret {}/{name}", self.account.namespace),
            )
            .await?;
            match secret {
                Some(s)
                    if not_a_token_reason(&s, self.account, self.sa_uid.as_deref()).is_none() =>
                {
                    candidates.push(s)
                }
                Some(_) => {
                    tracing::debug!(secret = %name, "secrets[] entry is not a token Secret of the account")
                }
                None => tracing::debug!(secret = %name, "secrets[] entry does not exist"),
            }
        }
        match candidates.len() {
            0 => Err(Error::NoLegacyTokenSecret {
                cluster: self.cluster.to_owned(),
                namespace: self.account.namespace.clone(),
                name: self.account.name.clone(),
            }),
            1 => {
                let name = candidates[0].metadata.name.clone().unwrap_or_default();
                self.wait_filled(&name, TokenSource::LegacySecretsRef, false)
                    .await
            }
            _ => Err(self.ambiguous(
                candidates
                    .into_iter()
                    .filter_map(|s| s.metadata.name)
                    .collect(),
            )),
        }
    }

    /// (b) An existing token Secret annotated for the ServiceAccount.
    async fn existing(&self) -> Result<ReaderToken> {
        let lp = ListParams::default().fields(&format!("type={TOKEN_SECRET_TYPE}"));
        let list = self.secrets().list(&lp).await.map_err(|e| {
            Error::from_kube(
                e,
                self.cluster,
                format!("list token Secrets in namespace {}", self.account.namespace),
            )
        })?;
        let names: Vec<String> = list
            .items
            .iter()
            .filter(|s| not_a_token_reason(s, self.account, self.sa_uid.as_deref()).is_none())
            .filter_map(|s| s.metadata.name.clone())
            .filter(|n| {
                self.options
                    .secret_name
                    .as_ref()
                    .is_none_or(|want| want == n)
            })
            .collect();
        match names.as_slice() {
            [] => Err(Error::NoTokenSecret {
                cluster: self.cluster.to_owned(),
                namespace: self.account.namespace.clone(),
                name: self.account.name.clone(),
            }),
            [name] => {
                self.wait_filled(name, TokenSource::ExistingSecret, false)
                    .await
            }
            _ => Err(self.ambiguous(names)),
        }
    }

    /// (c) Create a token Secret (or reuse the one of that name) and wait for the token.
    async fn create(&self) -> Result<ReaderToken> {
        let name = self
            .options
            .secret_name
            .clone()
            .unwrap_or_else(|| format!("{}-token", self.account.name));
        let ns = &self.account.namespace;
        let what = format!("Secret {ns}/{name}");
        let secrets = self.secrets();
        if let Some(existing) = get_opt(&secrets, &name, self.cluster, &what).await? {
            if let Some(reason) =
                not_a_token_reason(&existing, self.account, self.sa_uid.as_deref())
            {
                return Err(Error::NotATokenSecret {
                    cluster: self.cluster.to_owned(),
                    namespace: ns.clone(),
                    secret: name,
                    account: self.account.name.clone(),
                    reason,
                });
            }
            return self
                .wait_filled(&name, TokenSource::CreatedSecret, false)
                .await;
        }
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                annotations: Some(BTreeMap::from([(
                    SA_NAME_ANNOTATION.to_owned(),
                    self.account.name.clone(),
                )])),
                labels: Some(crate::reader::managed_labels()),
                ..ObjectMeta::default()
            },
            type_: Some(TOKEN_SECRET_TYPE.to_owned()),
            ..Secret::default()
        };
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        match secrets.create(&pp, &secret).await {
            Ok(_) => tracing::info!(cluster = self.cluster, "{what} created"),
            // Another run created it between our read and our write: use it.
            Err(kube::Error::Api(s)) if s.is_already_exists() => {}
            Err(e) => return Err(Error::from_kube(e, self.cluster, format!("create {what}"))),
        }
        self.wait_filled(&name, TokenSource::CreatedSecret, true)
            .await
    }

    /// Reads a token Secret until the token controller has filled it, or the deadline.
    async fn wait_filled(
        &self,
        name: &str,
        source: TokenSource,
        created: bool,
    ) -> Result<ReaderToken> {
        let ns = &self.account.namespace;
        let what = format!("Secret {ns}/{name}");
        let secrets = self.secrets();
        let deadline = tokio::time::Instant::now() + self.options.wait;
        let mut delay = Duration::from_millis(100);
        loop {
            let Some(secret) = get_opt(&secrets, name, self.cluster, &what).await? else {
                return Err(Error::Api {
                    cluster: self.cluster.to_owned(),
                    action: format!("read {what}"),
                    message: "it was deleted (the token controller deletes token Secrets whose ServiceAccount is gone)".to_owned(),
                    code: Some(404),
                });
            };
            if let Some(token) = self.filled(&secret, source, created) {
                return Ok(token);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(Error::Timeout {
                    what: format!(
                        "the token controller to fill {what} in {:?} with a token for ServiceAccount {}",
                        self.cluster, self.account
                    ),
                    waited: self.options.wait,
                    hint: "check that kube-controller-manager runs with --service-account-private-key-file, or ask for a TokenRequest token with a lifetime instead".to_owned(),
                });
            }
            tracing::debug!(secret = %what, "waiting for the token controller");
            tokio::time::sleep(delay.min(deadline - now)).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }
}

/// (d) A TokenRequest token for `account` with lifetime `ttl`, bound to an `Opaque`
/// Secret created for it in the account's namespace (named `<account>-bound-token-…`,
/// labelled [`MANAGED_BY_LABEL`](crate::MANAGED_BY_LABEL), annotated
/// [`BOUND_TOKEN_FOR_ANNOTATION`] and with `annotations`). Deleting that Secret revokes
/// the token, so a token with a lifetime can be replaced before it expires and the old
/// one invalidated. When the API server gives no token, the Secret is deleted again.
///
/// ```no_run
/// # async fn f(client: kube::Client) -> mesh_kubeconfig::Result<()> {
/// use mesh_kubeconfig::{ReaderAccount, request_bound_token};
/// let account = ReaderAccount::istio_default("istio-system");
/// let ttl = std::time::Duration::from_secs(86_400);
/// let token = request_bound_token(&client, "cluster2", &account, ttl, Default::default()).await?;
/// println!("revoke it with: kubectl delete secret -n istio-system {}", token.secret_name.unwrap_or_default());
/// # Ok(()) }
/// ```
pub async fn request_bound_token(
    client: &Client,
    cluster: &str,
    account: &ReaderAccount,
    ttl: Duration,
    annotations: BTreeMap<String, String>,
) -> Result<ReaderToken> {
    if ttl < MIN_TOKEN_TTL {
        return Err(Error::TokenTtlTooShort { ttl });
    }
    let ns = account.namespace.as_str();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut annotations = annotations;
    annotations.insert(BOUND_TOKEN_FOR_ANNOTATION.to_owned(), account.name.clone());
    let object = Secret {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-bound-token-", account.name)),
            namespace: Some(ns.to_owned()),
            labels: Some(crate::reader::managed_labels()),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    };
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    let created = secrets.create(&pp, &object).await.map_err(|e| {
        Error::from_kube(
            e,
            cluster,
            format!("create a Secret in {ns} to bind a token of ServiceAccount {account} to"),
        )
    })?;
    let name = created.metadata.name.clone().unwrap_or_default();
    tracing::info!(cluster, secret = %name, "created the Secret a token is bound to");
    match bound_token(client, cluster, account, ttl, &created.metadata).await {
        Ok(token) => Ok(token),
        Err(e) => {
            // Nothing holds a token bound to it: take it back, only if it is still ours.
            let dp = kube::api::DeleteParams {
                preconditions: Some(kube::api::Preconditions {
                    uid: created.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..kube::api::DeleteParams::default()
            };
            if let Err(gone) = secrets.delete(&name, &dp).await {
                tracing::warn!(cluster, secret = %name, error = %gone, "could not delete the Secret of a token that was not issued");
            }
            Err(e)
        }
    }
}

/// The TokenRequest of [`request_bound_token`], once `object` exists.
async fn bound_token(
    client: &Client,
    cluster: &str,
    account: &ReaderAccount,
    ttl: Duration,
    object: &ObjectMeta,
) -> Result<ReaderToken> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &account.namespace);
    // Built and read as JSON: the shape of TokenRequest's Rust type differs between
    // the Kubernetes versions k8s-openapi can be built for.
    let request = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "expirationSeconds": ttl.as_secs(),
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Secret",
                "name": object.name,
                "uid": object.uid,
            },
        },
    });
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    let response: TokenRequestAnswer = accounts
        .create_subresource("token", &account.name, &pp, &request)
        .await
        .map_err(|e| {
            Error::from_kube(
                e,
                cluster,
                format!(
                    "request a token for ServiceAccount {account} bound to Secret {}/{}",
                    account.namespace,
                    object.name.as_deref().unwrap_or_default()
                ),
            )
        })?;
    let empty = || Error::EmptyTokenRequest {
        cluster: cluster.to_owned(),
        namespace: account.namespace.clone(),
        name: account.name.clone(),
    };
    let status = response.status.ok_or_else(empty)?;
    let token = status
        .token
        .filter(|t| !t.expose_secret().is_empty())
        .ok_or_else(empty)?;
    let expires = status
        .expiration_timestamp
        .and_then(|t| t.parse::<Timestamp>().ok())
        .or_else(|| jwt_expiry(&token));
    // A TokenRequest token comes with no CA; the cluster publishes it in every namespace.
    let ca_crt = published_ca(client, cluster, &account.namespace).await?;
    Ok(ReaderToken {
        token,
        ca_crt,
        source: TokenSource::TokenRequest,
        secret_name: object.name.clone(),
        created: true,
        bound_to: Some(object.clone()),
        expires_at: expires,
    })
}

/// The CA the cluster publishes to every namespace's ServiceAccounts (`ca.crt` of the
/// `kube-root-ca.crt` ConfigMap in `namespace`), if there is one.
pub(crate) async fn published_ca(
    client: &Client,
    cluster: &str,
    namespace: &str,
) -> Result<Option<Vec<u8>>> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let map = get_opt(
        &maps,
        "kube-root-ca.crt",
        cluster,
        "ConfigMap kube-root-ca.crt",
    )
    .await?;
    Ok(map
        .and_then(|m| m.data)
        .and_then(|d| d.get("ca.crt").cloned())
        .map(String::into_bytes))
}

#[derive(serde::Deserialize)]
struct TokenRequestAnswer {
    status: Option<TokenRequestAnswerStatus>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenRequestAnswerStatus {
    token: Option<SecretString>,
    expiration_timestamp: Option<String>,
}

/// The expiry (`exp` claim) of a JWT bearer token, read without verifying it.
/// `None` for tokens without one (legacy ServiceAccount tokens never expire).
pub fn jwt_expiry(token: &SecretString) -> Option<Timestamp> {
    let payload = token.expose_secret().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    #[derive(serde::Deserialize)]
    struct Claims {
        exp: Option<i64>,
    }
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    Timestamp::from_second(claims.exp?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn jwt(claims: &str) -> SecretString {
        let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        SecretString::from(format!("{}.{}.sig", e(r#"{"alg":"RS256"}"#), e(claims)))
    }

    #[test]
    fn jwt_expiry_reads_exp() {
        let t = jwt_expiry(&jwt(r#"{"exp":1700000000,"sub":"x"}"#)).unwrap();
        assert_eq!(t.as_second(), 1_700_000_000);
        assert_eq!(jwt_expiry(&jwt(r#"{"sub":"x"}"#)), None);
        assert_eq!(jwt_expiry(&SecretString::from("opaque")), None);
    }

    #[test]
    fn token_secrets_are_recognised() {
        let account = ReaderAccount::new("istio-system", "reader");
        let mut s = Secret {
            metadata: ObjectMeta {
                name: Some("reader-token".into()),
                annotations: Some(BTreeMap::from([
                    (SA_NAME_ANNOTATION.to_owned(), "reader".to_owned()),
                    (SA_UID_ANNOTATION.to_owned(), "uid-1".to_owned()),
                ])),
                ..ObjectMeta::default()
            },
            type_: Some(TOKEN_SECRET_TYPE.into()),
            ..Secret::default()
        };
        assert_eq!(not_a_token_reason(&s, &account, Some("uid-1")), None);
        assert!(not_a_token_reason(&s, &account, Some("uid-2")).is_some());
        assert!(
            not_a_token_reason(&s, &ReaderAccount::new("istio-system", "other"), None).is_some()
        );
        assert!(token_of(&s).is_none());
        s.data = Some(BTreeMap::from([(
            "token".to_owned(),
            ByteString(b"abc".to_vec()),
        )]));
        assert_eq!(token_of(&s).unwrap().expose_secret(), "abc");
        s.type_ = Some("Opaque".into());
        assert!(
            not_a_token_reason(&s, &account, None)
                .unwrap()
                .contains("Opaque")
        );
    }

    #[test]
    fn reader_token_debug_redacts() {
        let t = ReaderToken {
            token: SecretString::from("super-secret"),
            ca_crt: None,
            source: TokenSource::TokenRequest,
            secret_name: None,
            created: false,
            bound_to: None,
            expires_at: None,
        };
        assert!(!format!("{t:?}").contains("super-secret"));
    }
}
