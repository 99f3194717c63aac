//! `rotate`: replace a link's credentials with no moment when istiod cannot read the
//! cluster.
//!
//! A link is one data key of a remote secret in the primary: a cluster ID and the
//! kubeconfig istiod reads that cluster with. Its credential is a ServiceAccount token of
//! the remote's reader account. Rotating it runs, per link, exactly this order
//! ([`rotate_link`] is the one place that runs it):
//!
//! 1. **new token**: a new token Secret (a fresh name the API server generates), or, with
//!    a lifetime, a TokenRequest token bound to a Secret created for it — deleting that
//!    Secret revokes the token, so a token with a lifetime is revocable too;
//! 2. **verify token**: the kubeconfig with the new token authenticates as the same
//!    ServiceAccount, may read what istiod reads and may not write
//!    ([`mesh_kubeconfig::verify_remote_kubeconfig`], as join checks its credentials);
//! 3. **remote secret**: the link's key is rewritten in its own Secret, conditionally
//!    (the `resourceVersion` read, and only while the key still holds the kubeconfig
//!    read). Istio builds the new cluster client for the same Secret and cluster ID and
//!    swaps only once it has synced; a second Secret for the same cluster ID would be
//!    ignored, so the Secret is never duplicated;
//! 4. **istiod sync**: wait until the stored kubeconfig authenticates, and until istiod's
//!    `/debug/clusterz` (at the address given, else through a port-forward to a running
//!    istiod pod's port 8080) reports the cluster synced after the change; when istiod
//!    cannot be reached a short grace period follows and a warning says that istiod's
//!    view was not checked;
//! 5. **revoke old token**: only now, unless asked to keep it, the old token's object (its
//!    token Secret, or the Secret a bound token is bound to) is deleted — only when it
//!    carries kubectl-mesh's ownership label and no link (of this primary or of another
//!    primary named by the remote's `controlPlaneClusters`) uses it — together with any
//!    other token object of ours for the account that no link uses (what an interrupted
//!    rotation left);
//! 6. the summary reports the old and the new token's expiry.
//!
//! An interrupted rotation is completed by running it again: a token minted but never
//! written is one of ours that no link uses, deleted at step 5 of the next run; a link
//! already rewritten is recognised by its token object's `kubectl-mesh.io/rotated-from`
//! annotation naming an object that still exists, and the next run resumes at step 4.
//! At no point does the link hold a revoked token.
//!
//! Only links kubectl-mesh made (their Secret carries the ownership label) are rotated; a
//! hand-made link is a preflight problem ([`ProblemKind::HandMadeLink`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use mesh_kubeconfig::{Kubeconfigs, ReaderAccount};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::cluster::{self, Permissions, Role, default_cluster_id};
use crate::error::{Error, Problem, ProblemKind, Result, kube};
use crate::links;
use crate::plan::{Change, Outcome, Steps};
use crate::progress::Progress;
use crate::status::TokenKind;

/// The annotation on a token object rotate creates naming the token object it replaces;
/// while that one still exists, the rotation has not finished (a re-run resumes it).
///
/// ```
/// assert_eq!(mesh_core::ROTATED_FROM_ANNOTATION, "kubectl-mesh.io/rotated-from");
/// ```
pub const ROTATED_FROM_ANNOTATION: &str = "kubectl-mesh.io/rotated-from";
pub use mesh_kubeconfig::BOUND_TOKEN_FOR_ANNOTATION;

const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";
const SA_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";

// The step names, as progress events carry them.
const STEP_NEW_TOKEN: &str = "new token";
/// Step 2.
const STEP_VERIFY: &str = "verify token";
/// Step 3.
const STEP_REMOTE_SECRET: &str = "remote secret";
/// Step 4.
const STEP_SYNC: &str = "istiod sync";
/// Step 5.
const STEP_REVOKE: &str = "revoke old token";

/// What to rotate.
#[derive(Debug, Clone)]
pub struct RotateOptions {
    /// The Istio namespace (default `istio-system`).
    pub namespace: String,
    /// The primary's context.
    pub primary: String,
    /// The remotes' contexts whose links to rotate (ignored with [`Self::all`]).
    pub remotes: Vec<String>,
    /// Rotate every link of the primary.
    pub all: bool,
    /// The new tokens' lifetime: a TokenRequest token bound to an object of ours; `None`:
    /// a token Secret (no expiry).
    pub token_ttl: Option<Duration>,
    /// Keep the old token valid (do not delete its object).
    pub keep_old: bool,
    /// istiod's HTTP debug address (`HOST:PORT`, or `http://HOST:PORT`), read for
    /// `/debug/clusterz`; `None`: a port-forward to a running istiod pod's port 8080
    /// (label `app=istiod` in the primary's Istio namespace), and when that cannot be
    /// opened istiod's view is not checked (said in a warning).
    pub istiod: Option<String>,
    /// Rotate only links whose token expires within this long (a token that never
    /// expires is never within it).
    pub if_expiring_within: Option<Duration>,
    /// Make no mutating request; report what would be rotated.
    pub dry_run: bool,
    /// Bound on each API request.
    pub request_timeout: Option<Duration>,
    /// How long to wait for a token to be filled and for istiod to sync.
    pub wait: Duration,
    /// After the write: how long istiod's view must stay synced without a re-sync seen
    /// (istiod's debug view does not say which kubeconfig a cluster was built from), or,
    /// without istiod's view, how long to wait once the new kubeconfig authenticates.
    pub settle: Duration,
    /// Raised by the caller on SIGINT/SIGTERM: no step starts after it.
    pub interrupt: crate::Interrupt,
}

impl RotateOptions {
    /// Options rotating the links of `remotes` in `primary`, defaults elsewhere.
    ///
    /// ```
    /// let opts = mesh_core::RotateOptions::new("cluster1", &["cluster2"]);
    /// assert_eq!(opts.namespace, "istio-system");
    /// assert!(!opts.keep_old && opts.token_ttl.is_none());
    /// ```
    pub fn new(primary: &str, remotes: &[&str]) -> RotateOptions {
        RotateOptions {
            namespace: "istio-system".into(),
            primary: primary.into(),
            remotes: remotes.iter().map(|r| (*r).to_owned()).collect(),
            all: false,
            token_ttl: None,
            keep_old: false,
            istiod: None,
            if_expiring_within: None,
            dry_run: false,
            request_timeout: None,
            wait: Duration::from_secs(120),
            settle: Duration::from_secs(10),
            interrupt: crate::Interrupt::default(),
        }
    }
}

/// A token as a rotation reports it (never the token itself).
///
/// ```
/// let t = mesh_core::TokenInfo::default();
/// assert_eq!(serde_json::to_value(&t).unwrap(), serde_json::json!({}));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    /// A token Secret's token, or a bound TokenRequest token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<TokenKind>,
    /// The object whose deletion revokes it (`namespace/name` of a Secret), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// When it expires (RFC 3339); `None`: never.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// What became of one link; serialized as a kebab-case id.
///
/// ```
/// use mesh_core::LinkOutcome;
/// assert_eq!(serde_json::to_value(LinkOutcome::NotExpiring).unwrap(), "not-expiring");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkOutcome {
    /// Its credential was replaced (and the old one revoked unless kept).
    Rotated,
    /// An interrupted rotation of it was completed (the link held the new token already).
    Resumed,
    /// Its token does not expire within the window: nothing was done.
    NotExpiring,
    /// A dry run: it would be rotated.
    WouldRotate,
    /// Its rotation failed (see `error`); its link holds a working token still.
    Failed,
}

/// What happened to the old token; serialized as `state` (and `reason`).
///
/// ```
/// use mesh_core::OldToken;
/// assert_eq!(
///     serde_json::to_value(OldToken::NotRevoked("in use".into())).unwrap(),
///     serde_json::json!({"state": "not-revoked", "reason": "in use"})
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "reason")]
pub enum OldToken {
    /// Its object was deleted: the token is rejected from now on.
    Revoked,
    /// Kept, as asked.
    Kept,
    /// Kept: it cannot be revoked or must not be (said why).
    NotRevoked(String),
    /// Not touched (the link was not rotated).
    Untouched,
}

/// One link's rotation.
///
/// ```
/// fn rotated(summary: &mesh_core::RotateSummary) -> Vec<&str> {
///     summary
///         .links
///         .iter()
///         .filter(|l| l.outcome == mesh_core::LinkOutcome::Rotated)
///         .map(|l| l.cluster_name.as_str())
///         .collect()
/// }
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct RotatedLink {
    /// The remote's context.
    pub cluster: String,
    /// The link's cluster ID (its data key).
    pub cluster_name: String,
    /// The remote Secret in the primary.
    pub secret: String,
    /// What happened.
    pub outcome: LinkOutcome,
    /// The token the link held.
    pub old_token: TokenInfo,
    /// What became of it.
    pub old_token_state: OldToken,
    /// The token the link holds now, when rotated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_token: Option<TokenInfo>,
    /// Whether istiod's own view (`/debug/clusterz`) confirmed the change.
    pub istiod_checked: bool,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a rotation did.
#[derive(Debug, Clone, Serialize)]
pub struct RotateSummary {
    /// The primary's context.
    pub primary: String,
    /// Each selected link, in order.
    pub links: Vec<RotatedLink>,
    /// Every change made (or, in a dry run, that would be).
    pub changes: Vec<Change>,
    /// What the user should know.
    pub warnings: Vec<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

impl RotateSummary {
    /// Whether any link's rotation failed.
    ///
    /// ```
    /// let s = mesh_core::RotateSummary {
    ///     primary: "cluster1".into(),
    ///     links: vec![],
    ///     changes: vec![],
    ///     warnings: vec![],
    ///     dry_run: false,
    /// };
    /// assert!(!s.failed());
    /// ```
    pub fn failed(&self) -> bool {
        self.links.iter().any(|l| l.outcome == LinkOutcome::Failed)
    }
}

type Run<'a> = crate::plan::Run<'a, RotateOptions>;

/// The object whose deletion revokes a ServiceAccount token, from its (unverified)
/// claims: a token Secret's name (legacy tokens), or the Secret a bound token is bound
/// to, with its UID. `None`: no such object (a bound token bound to nothing, or to a Pod).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenObject {
    pub name: String,
    pub uid: Option<String>,
}

pub(crate) fn token_object(token: &SecretString) -> Option<TokenObject> {
    let claims = links::token_claims(token)?;
    if let Some(name) = claims["kubernetes.io/serviceaccount/secret.name"].as_str() {
        return Some(TokenObject {
            name: name.to_owned(),
            uid: None,
        });
    }
    let secret = &claims["kubernetes.io"]["secret"];
    Some(TokenObject {
        name: secret["name"].as_str()?.to_owned(),
        uid: secret["uid"].as_str().map(str::to_owned),
    })
}

/// Whether `secret` is a token object of kubectl-mesh's for `account` (in its
/// namespace): a token Secret annotated for it, or a Secret a bound token for it is bound
/// to — in both cases carrying kubectl-mesh's ownership label.
pub(crate) fn is_our_token_object(secret: &Secret, account_name: &str) -> bool {
    if !links::managed_by_us(&secret.metadata) {
        return false;
    }
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    let annotated = |key: &str| annotations.get(key).map(String::as_str) == Some(account_name);
    if secret.type_.as_deref() == Some(TOKEN_SECRET_TYPE) {
        annotated(SA_NAME_ANNOTATION)
    } else {
        annotated(BOUND_TOKEN_FOR_ANNOTATION)
    }
}

/// Whether a token expiring at `expires_at` is due for rotation `now` with `window`: a
/// token that never expires never is.
pub(crate) fn expiring_within(
    expires_at: Option<Timestamp>,
    now: Timestamp,
    window: Duration,
) -> bool {
    match expires_at {
        None => false,
        Some(t) => {
            t.as_second() - now.as_second() <= i64::try_from(window.as_secs()).unwrap_or(i64::MAX)
        }
    }
}

/// What istiod's `/debug/clusterz` says about a cluster: `None` when it lists no such
/// cluster, else its `syncStatus`.
pub(crate) fn clusterz_status(body: &str, cluster_id: &str) -> Option<String> {
    let list: serde_json::Value = serde_json::from_str(body).ok()?;
    list.as_array()?
        .iter()
        .find(|c| c["id"].as_str() == Some(cluster_id))
        .map(|c| c["syncStatus"].as_str().unwrap_or_default().to_owned())
}

/// A link's kubeconfig with its token replaced by `token`: the same cluster name, server,
/// CA and TLS server name (kubectl-mesh's links have exactly these).
pub(crate) fn with_token(kubeconfig: &SecretString, token: SecretString) -> Result<SecretString> {
    let kc = Kubeconfigs::from_yaml(kubeconfig.expose_secret())?;
    let context = kc.context_or_current(None)?;
    let resolved = kc.resolve(&context)?;
    let ca = resolved.ca_data.clone().unwrap_or_default();
    Ok(
        mesh_kubeconfig::RemoteKubeconfig::builder(&resolved.cluster_name)
            .server(&resolved.server)
            .ca_data(ca)
            .tls_server_name(resolved.tls_server_name.clone())
            .token(token)
            .build()?
            .to_yaml()?,
    )
}

fn timestamp_text(t: Option<Timestamp>) -> Option<String> {
    t.map(|t| t.to_string())
}

fn expiry_words(t: &Option<String>) -> String {
    match t {
        Some(t) => format!("expires {t}"),
        None => "never expires".into(),
    }
}

/// A link selected for rotation, as preflight read it.
struct Selected {
    /// The remote's context (the user's, with rights to make tokens).
    context: String,
    secret: Secret,
    key: String,
    kubeconfig: SecretString,
    token: SecretString,
    subject: links::TokenSubject,
}

/// Rotates the credentials of the selected links, one after the other (see the module
/// documentation for the order). Preflight problems — a remote with no link, a hand-made
/// link, a link no context reaches — fail before anything changes. A link whose rotation
/// fails is reported as [`LinkOutcome::Failed`] (it still holds a working token) and the
/// others go on; a signal stops with [`Error::Interrupted`].
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use mesh_core::{NoProgress, RotateOptions, rotate};
/// use mesh_kubeconfig::{KubeconfigSource, Kubeconfigs};
///
/// let kubeconfigs = Kubeconfigs::load(&KubeconfigSource::Default)?;
/// let mut options = RotateOptions::new("cluster1", &["cluster2"]);
/// options.istiod = Some("127.0.0.1:8080".into());
/// let summary = rotate(&kubeconfigs, &options, &NoProgress).await?;
/// for link in &summary.links {
///     eprintln!("{}: {:?}", link.cluster_name, link.outcome);
/// }
/// # Ok(()) }
/// ```
pub async fn rotate(
    kubeconfigs: &Kubeconfigs,
    opts: &RotateOptions,
    progress: &dyn Progress,
) -> Result<RotateSummary> {
    let run = Run {
        opts,
        steps: Steps::new(opts.dry_run, progress).interruptible(&opts.interrupt),
    };
    match rotate_all(kubeconfigs, &run).await {
        Err(_) if opts.interrupt.raised().is_some() => Err(run.interrupted().expect("raised")),
        other => other,
    }
}

async fn rotate_all(kubeconfigs: &Kubeconfigs, run: &Run<'_>) -> Result<RotateSummary> {
    let opts = run.opts;
    let ns = opts.namespace.as_str();
    let pctx = opts.primary.as_str();
    let started = Instant::now();
    run.emit(pctx, "preflight", crate::EventKind::Started, started);
    if let Some(ttl) = opts.token_ttl
        && ttl < mesh_kubeconfig::MIN_TOKEN_TTL
    {
        return Err(mesh_kubeconfig::Error::TokenTtlTooShort { ttl }.into());
    }
    let primary = kubeconfigs.client(pctx, opts.request_timeout).await?;
    let facts = cluster::read_facts(&primary, pctx, ns, Permissions::ReadOnly).await?;
    facts.require_readable()?;
    let primary_id = default_cluster_id(Role::Primary, pctx, facts.istiod_cluster_id.as_deref());
    let secrets = links::remote_secrets(&primary, pctx, ns).await?;
    let selected = select(kubeconfigs, opts, &secrets)?;
    run.emit(pctx, "preflight", crate::EventKind::Unchanged, started);

    let view = IstiodView {
        given: opts.istiod.clone(),
        forwarded: tokio::sync::OnceCell::new(),
    };
    let mut results = Vec::new();
    for link in &selected {
        let mut result = rotate_link(kubeconfigs, run, &primary, &primary_id, link, &view).await;
        if matches!(result, Ok(None)) {
            // Another run changed the link while this one waited for the account's
            // Lease: rotate it as it is now, once (a failure is this link's only).
            result = async {
                let fresh = links::remote_secrets(&primary, pctx, ns).await?;
                let again = select(kubeconfigs, opts, &fresh)?
                    .into_iter()
                    .find(|l| l.key == link.key);
                match again {
                    Some(again) => {
                        rotate_link(kubeconfigs, run, &primary, &primary_id, &again, &view).await
                    }
                    None => Ok(None),
                }
            }
            .await;
        }
        if let Some(err) = run.interrupted() {
            return Err(err);
        }
        let result = result.and_then(|r| {
            r.ok_or_else(|| Error::Conflict {
                cluster: pctx.to_owned(),
                object: format!(
                    "key {} of Secret {ns}/{}",
                    link.key,
                    link.secret.metadata.name.as_deref().unwrap_or_default()
                ),
                attempts: 2,
            })
        });
        results.push(match result {
            Ok(r) => r,
            Err(e) => RotatedLink {
                cluster: link.context.clone(),
                cluster_name: link.key.clone(),
                secret: link.secret.metadata.name.clone().unwrap_or_default(),
                outcome: LinkOutcome::Failed,
                old_token: token_info(&link.token, ns),
                old_token_state: OldToken::Untouched,
                new_token: None,
                istiod_checked: false,
                error: Some(e.to_string()),
            },
        });
    }
    let (changes, warnings) = run.steps.finish();
    Ok(RotateSummary {
        primary: pctx.to_owned(),
        links: results,
        changes,
        warnings,
        dry_run: opts.dry_run,
    })
}

fn token_info(token: &SecretString, ns: &str) -> TokenInfo {
    TokenInfo {
        kind: links::token_kind(token),
        object: token_object(token).map(|o| format!("{ns}/{}", o.name)),
        expires_at: timestamp_text(mesh_kubeconfig::jwt_expiry(token)),
    }
}

/// The links to rotate, each with the context that reaches its cluster; every problem at
/// once, before anything changes.
fn select(
    kubeconfigs: &Kubeconfigs,
    opts: &RotateOptions,
    secrets: &[Secret],
) -> Result<Vec<Selected>> {
    let ns = opts.namespace.as_str();
    let pctx = opts.primary.as_str();
    let all = links::links(secrets);
    let mut problems = Vec::new();
    // (link, context) pairs.
    let mut chosen: Vec<(&links::Link, String)> = Vec::new();
    let server_of = |ctx: &str| kubeconfigs.resolve(ctx).ok().map(|r| r.server);
    if opts.all {
        for link in &all {
            let server = links::link_server(&link.kubeconfig);
            let contexts: Vec<&str> = kubeconfigs
                .contexts()
                .into_iter()
                .filter(|c| *c != pctx)
                .filter(|c| {
                    matches!((server_of(c), &server), (Some(a), Some(b)) if links::same_server(&a, b))
                })
                .collect();
            let context = contexts
                .iter()
                .find(|c| mesh_kubeconfig::dns1123_label(c) == link.key)
                .or(contexts.first());
            match context {
                Some(c) => chosen.push((link, (*c).to_owned())),
                None => problems.push(Problem::new(
                    pctx,
                    ProblemKind::ClusterUnreadable,
                    format!(
                        "remote Secret {ns}/{} (cluster {}) names API server {}, which no context of your kubeconfig reaches; a new token is made with the remote's own context",
                        link.secret,
                        link.key,
                        server.as_deref().unwrap_or("(none)")
                    ),
                )),
            }
        }
    } else {
        for remote in &opts.remotes {
            let id = default_cluster_id(Role::Remote, remote, None);
            let by_key: Vec<&links::Link> = all.iter().filter(|l| l.key == id).collect();
            let found: Vec<&links::Link> = if by_key.is_empty() {
                match server_of(remote) {
                    Some(server) => all
                        .iter()
                        .filter(|l| {
                            links::link_server(&l.kubeconfig)
                                .is_some_and(|s| links::same_server(&s, &server))
                        })
                        .collect(),
                    None => Vec::new(),
                }
            } else {
                by_key
            };
            match found.as_slice() {
                [] => problems.push(Problem::new(
                    remote.as_str(),
                    ProblemKind::NotLinked,
                    format!(
                        "no remote secret in {pctx} links it: no data key {id} and no kubeconfig naming its API server; join it first"
                    ),
                )),
                [link] => chosen.push((link, remote.clone())),
                many => problems.push(Problem::new(
                    remote.as_str(),
                    ProblemKind::DuplicateLinks,
                    format!(
                        "{} links in {pctx} reach it ({}); istiod reads it once per cluster ID — remove the extra ones first",
                        many.len(),
                        many.iter()
                            .map(|l| format!("{ns}/{} key {}", l.secret, l.key))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
            }
        }
    }
    let mut selected = Vec::new();
    for (link, context) in chosen {
        let secret = secrets
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(link.secret.as_str()))
            .expect("a link comes from a listed Secret")
            .clone();
        if !links::managed_by_us(&secret.metadata) {
            problems.push(Problem::new(
                context.as_str(),
                ProblemKind::HandMadeLink,
                format!(
                    "its link in {pctx}, remote Secret {ns}/{} (key {}), was made by hand, not by kubectl-mesh; only kubectl-mesh's links are rotated: join can replace it with kubectl-mesh's own, then rotate it",
                    link.secret, link.key
                ),
            ));
            continue;
        }
        let token = links::kubeconfig_token(&link.kubeconfig);
        let subject = token.as_ref().and_then(links::token_subject);
        let (Some(token), Some(subject)) = (token, subject) else {
            problems.push(Problem::new(
                context.as_str(),
                ProblemKind::CredentialsInvalid,
                format!(
                    "the kubeconfig of remote Secret {ns}/{} (key {}) holds no ServiceAccount token; rejoin it",
                    link.secret, link.key
                ),
            ));
            continue;
        };
        selected.push(Selected {
            context,
            secret,
            key: link.key.clone(),
            kubeconfig: link.kubeconfig.clone(),
            token,
            subject,
        });
    }
    if !problems.is_empty() {
        return Err(Error::Preflight { problems });
    }
    Ok(selected)
}

/// Who uses which token object of the remote: for each link of this primary and of the
/// other primaries, the (ServiceAccount UID, object name) its token names.
struct Users {
    /// `(sa uid, object name)` → where it is used (`context: Secret ns/name key K`).
    uses: Vec<((Option<String>, String), String)>,
    /// Why whether other primaries use the remote's tokens cannot be told (nothing of
    /// theirs is deleted then).
    unknown: Vec<String>,
}

impl Users {
    fn of(&self, sa_uid: Option<&str>, object: &str) -> Vec<&str> {
        self.uses
            .iter()
            .filter(|((uid, name), _)| {
                name == object && (uid.is_none() || sa_uid.is_none() || uid.as_deref() == sa_uid)
            })
            .map(|(_, w)| w.as_str())
            .collect()
    }

    fn add_links(&mut self, ctx: &str, ns: &str, account: &ReaderAccount, secrets: &[Secret]) {
        for link in links::links(secrets) {
            let Some(token) = links::kubeconfig_token(&link.kubeconfig) else {
                continue;
            };
            let Some(subject) = links::token_subject(&token) else {
                continue;
            };
            if subject.namespace != account.namespace || subject.name != account.name {
                continue;
            }
            if let Some(object) = token_object(&token) {
                self.uses.push((
                    (subject.uid, object.name),
                    format!("{ctx}: remote Secret {ns}/{} key {}", link.secret, link.key),
                ));
            }
        }
    }
}

/// The token objects in use by any link reaching the remote: this primary's (read now)
/// and those of other primaries — the remote's `controlPlaneClusters`, and in a
/// multi-primary mesh every other member this primary reads (`key`: the link's own).
#[allow(clippy::too_many_arguments)]
async fn users(
    kubeconfigs: &Kubeconfigs,
    run: &Run<'_>,
    primary: &Client,
    primary_id: &str,
    remote: &Client,
    rctx: &str,
    key: &str,
    account: &ReaderAccount,
) -> Result<Users> {
    let opts = run.opts;
    let ns = opts.namespace.as_str();
    let pctx = opts.primary.as_str();
    let mut users = Users {
        uses: Vec::new(),
        unknown: Vec::new(),
    };
    let secrets = links::remote_secrets(primary, pctx, ns).await?;
    users.add_links(pctx, ns, account, &secrets);
    let namespace = Api::<Namespace>::all(remote.clone())
        .get_opt(ns)
        .await
        .map_err(|e| kube(rctx, format!("reading namespace {ns}"), e))?;
    let mut planes = crate::join::control_plane_clusters(namespace.as_ref().map(|n| &n.metadata));
    // In a multi-primary mesh every member runs istiod and reads every other one (its
    // members name no controlPlaneClusters): each cluster this primary reads may read
    // the remote with the same reader account.
    let multi_primary =
        cluster::recorded_model(namespace.as_ref()) == Some(cluster::ControlPlanes::MultiPrimary);
    if multi_primary {
        for other in links::links(&secrets) {
            if other.key != key && !planes.contains(&other.key) {
                planes.push(other.key);
            }
        }
    }
    for id in planes.iter().filter(|p| **p != primary_id) {
        let contexts: Vec<&str> = kubeconfigs
            .contexts()
            .into_iter()
            .filter(|c| *c != pctx && *c != rctx && mesh_kubeconfig::dns1123_label(c) == *id)
            .collect();
        if contexts.is_empty() {
            users.unknown.push(format!(
                "{rctx} names control plane {id} too and no context of your kubeconfig is named {id}"
            ));
            continue;
        }
        for ctx in contexts {
            let listed = match kubeconfigs.client(ctx, opts.request_timeout).await {
                Ok(client) => links::remote_secrets(&client, ctx, ns).await,
                Err(e) => Err(e.into()),
            };
            match listed {
                Ok(secrets) => users.add_links(ctx, ns, account, &secrets),
                Err(e) => users.unknown.push(format!(
                    "whether control plane {id} (context {ctx}) uses them cannot be told: {e}"
                )),
            }
        }
    }
    Ok(users)
}

/// Our token objects for `account` that no link uses.
async fn unused_objects(
    remote: &Client,
    rctx: &str,
    account: &ReaderAccount,
    sa_uid: Option<&str>,
    users: &Users,
) -> Result<Vec<Secret>> {
    let api: Api<Secret> = Api::namespaced(remote.clone(), &account.namespace);
    let list = api
        .list(&ListParams::default().labels(&cluster::owned_selector()))
        .await
        .map_err(|e| kube(rctx, format!("listing Secrets in {}", account.namespace), e))?;
    Ok(list
        .items
        .into_iter()
        .filter(|s| is_our_token_object(s, &account.name))
        .filter(|s| {
            let name = s.metadata.name.as_deref().unwrap_or_default();
            users.of(sa_uid, name).is_empty()
        })
        .collect())
}

/// One link, in the order that never leaves it with a revoked token: mint, verify,
/// write, wait until in use, and only then revoke. The one place that order is kept.
/// `None`: another run changed the link while this one waited for the account's Lease
/// (the link as selected is stale; nothing was done).
async fn rotate_link(
    kubeconfigs: &Kubeconfigs,
    run: &Run<'_>,
    primary: &Client,
    primary_id: &str,
    link: &Selected,
    view: &IstiodView,
) -> Result<Option<RotatedLink>> {
    let opts = run.opts;
    let pctx = opts.primary.as_str();
    let rctx = link.context.as_str();
    let account = ReaderAccount::new(&link.subject.namespace, link.subject.name.clone());
    let ans = account.namespace.as_str();
    let secret_name = link.secret.metadata.name.clone().unwrap_or_default();
    let old_info = token_info(&link.token, ans);
    let old_object = token_object(&link.token);
    let mut result = RotatedLink {
        cluster: rctx.to_owned(),
        cluster_name: link.key.clone(),
        secret: secret_name.clone(),
        outcome: LinkOutcome::Rotated,
        old_token: old_info.clone(),
        old_token_state: OldToken::Untouched,
        new_token: None,
        istiod_checked: false,
        error: None,
    };

    let remote = kubeconfigs.client(rctx, opts.request_timeout).await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(remote.clone(), ans);
    let sa = accounts
        .get_opt(&account.name)
        .await
        .map_err(|e| kube(rctx, format!("reading ServiceAccount {account}"), e))?;
    let sa_uid = sa.as_ref().and_then(|s| s.metadata.uid.clone());
    if sa.is_none() || (link.subject.uid.is_some() && link.subject.uid != sa_uid) {
        return Err(Error::Malformed {
            cluster: rctx.to_owned(),
            object: format!("ServiceAccount {account}"),
            reason: format!(
                "the token of link {} (remote Secret {}/{secret_name} in {pctx}) belongs to a ServiceAccount {account} that this cluster does not have (another cluster's, or one deleted since); rejoin it",
                link.key, opts.namespace
            ),
        });
    }
    let sa_uid = sa_uid.as_deref();
    let secrets: Api<Secret> = Api::namespaced(remote.clone(), ans);

    // An unfinished rotation: the link's token object replaced one that still exists.
    let current_object = match &old_object {
        Some(o) => secrets
            .get_opt(&o.name)
            .await
            .map_err(|e| kube(rctx, format!("reading Secret {ans}/{}", o.name), e))?,
        None => None,
    };
    let replaced = current_object
        .as_ref()
        .filter(|s| links::managed_by_us(&s.metadata))
        .and_then(|s| s.metadata.annotations.as_ref())
        .and_then(|a| a.get(ROTATED_FROM_ANNOTATION))
        .cloned();
    let resume = match &replaced {
        Some(name) => secrets
            .get_opt(name)
            .await
            .map_err(|e| kube(rctx, format!("reading Secret {ans}/{name}"), e))?
            .is_some_and(|s| is_our_token_object(&s, &account.name)),
        None => false,
    };

    if !resume
        && let Some(window) = opts.if_expiring_within
        && !expiring_within(
            mesh_kubeconfig::jwt_expiry(&link.token),
            Timestamp::now(),
            window,
        )
    {
        tracing::info!(cluster = rctx, link = %link.key, "token not expiring within the window");
        result.outcome = LinkOutcome::NotExpiring;
        return Ok(Some(result));
    }

    if opts.dry_run {
        let what = if resume {
            format!(
                "completed the unfinished rotation of link {} (revoking the token it replaced)",
                link.key
            )
        } else {
            format!(
                "rotated link {} (remote Secret {}/{secret_name} in {pctx}): a new {} for ServiceAccount {account}, old token {}",
                link.key,
                opts.namespace,
                if opts.token_ttl.is_some() {
                    "bound TokenRequest token"
                } else {
                    "token Secret"
                },
                expiry_words(&old_info.expires_at)
            )
        };
        run.step(rctx, "rotate", async { Ok(Outcome::Changed(what, None)) })
            .await?;
        result.outcome = LinkOutcome::WouldRotate;
        return Ok(Some(result));
    }

    // One rotation of this account's tokens at a time: a rotation deletes the account's
    // token objects no link uses, and another run's new token is one until it is written.
    let leases: Api<Lease> = Api::namespaced(remote.clone(), ans);
    let lease_name = format!("kubectl-mesh-rotate-{}", account.name);
    let waited = Instant::now();
    let lease = cluster::lease::acquire(
        leases,
        rctx,
        &lease_name,
        &format!("rotating the tokens of ServiceAccount {account}"),
        opts.wait,
        &opts.interrupt,
        &|why| run.emit(rctx, STEP_NEW_TOKEN, crate::EventKind::Waiting(why), waited),
    )
    .await?;
    // While this run waited, another may have rotated this very link: then the link
    // read before is stale, and the caller reads it again.
    match link_holds(primary, opts, link, &link.kubeconfig).await {
        Ok(true) => {}
        stale_or_unknown => {
            lease.release().await;
            return stale_or_unknown.map(|_| None);
        }
    }
    let rotated = async {
        let stored = if resume {
            result.outcome = LinkOutcome::Resumed;
            result.new_token = Some(old_info.clone());
            result.old_token = TokenInfo {
                kind: None,
                object: replaced.as_ref().map(|r| format!("{ans}/{r}")),
                expires_at: None,
            };
            run.warn(
                rctx,
                STEP_NEW_TOKEN,
                format!(
                    "link {} holds a token that replaced {} (an interrupted rotation): completing it",
                    link.key,
                    replaced.as_deref().unwrap_or_default()
                ),
            );
            link.kubeconfig.clone()
        } else {
            // 1. The new token.
            let rotated_from = old_object
                .as_ref()
                .filter(|_| !opts.keep_old)
                .map(|o| o.name.clone());
            let mut minted = None;
            run.step(rctx, STEP_NEW_TOKEN, async {
                let m = mint(run, &remote, rctx, &account, rotated_from.as_deref()).await?;
                let what = format!("created {} in {rctx}", m.describe(ans));
                minted = Some(m);
                Ok(Outcome::Changed(what, None))
            })
            .await?;
            let minted = minted.expect("minted");
            let new_kubeconfig = with_token(&link.kubeconfig, minted.token.clone())?;

            // 2. Check it as join checks its credentials.
            let verified = run
                .step(rctx, STEP_VERIFY, async {
                    verify(kubeconfigs, opts, rctx, &account, &new_kubeconfig).await
                })
                .await;
            if let Err(e) = verified {
                // Never used: ours to take back at once.
                let _ =
                    cluster::delete_checked(&secrets, rctx, &minted.describe(ans), &minted.meta).await;
                return Err(e);
            }

            // 3. The link's key, in its own Secret, conditionally.
            let written = run
                .step(pctx, STEP_REMOTE_SECRET, async {
                    write_link(
                        run,
                        primary,
                        &link.secret,
                        &link.key,
                        &link.kubeconfig,
                        &new_kubeconfig,
                    )
                    .await
                })
                .await;
            if let Err(e) = written {
                // Provably not written (the link, read again, holds something else):
                // never used, ours to take back at once. Unknown: kept for a later run.
                if matches!(link_holds(primary, opts, link, &new_kubeconfig).await, Ok(false)) {
                    let _ = cluster::delete_checked(
                        &secrets,
                        rctx,
                        &minted.describe(ans),
                        &minted.meta,
                    )
                    .await;
                }
                return Err(e);
            }
            result.new_token = Some(token_info(&minted.token, ans));
            new_kubeconfig
        };

        // 4. In use: istiod reads the cluster with the new credentials.
        let mut checked = false;
        run.step(pctx, STEP_SYNC, async {
            let (outcome, istiod) = wait_in_use(kubeconfigs, run, primary, link, &stored, view).await?;
            checked = istiod;
            Ok(outcome)
        })
        .await?;
        result.istiod_checked = checked;

        // 5. Only now: the old token (and what interrupted runs left) goes.
        if opts.keep_old && !resume {
            result.old_token_state = OldToken::Kept;
            return Ok(result);
        }
        let mut state = OldToken::Untouched;
        let current_token = if resume {
            None
        } else {
            result.new_token.as_ref().and_then(|t| t.object.clone())
        };
        run.step_listing(rctx, STEP_REVOKE, async {
            let users = users(
                kubeconfigs,
                run,
                primary,
                primary_id,
                &remote,
                rctx,
                &link.key,
                &account,
            )
            .await?;
            let (done, old_state) = revoke(
                run,
                &remote,
                rctx,
                &account,
                sa_uid,
                &users,
                if resume {
                    replaced.as_deref().map(|n| TokenObject {
                        name: n.to_owned(),
                        uid: None,
                    })
                } else {
                    old_object.clone()
                },
                current_token.as_deref(),
            )
            .await?;
            state = old_state;
            Ok(done)
        })
        .await?;
        result.old_token_state = state;
        Ok(result)
    }
    .await;
    lease.release().await;
    rotated.map(Some)
}

/// Whether `link`'s key in its remote Secret (read now) holds `kubeconfig`.
async fn link_holds(
    primary: &Client,
    opts: &RotateOptions,
    link: &Selected,
    kubeconfig: &SecretString,
) -> Result<bool> {
    let (ns, pctx) = (opts.namespace.as_str(), opts.primary.as_str());
    let name = link.secret.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(primary.clone(), ns);
    let stored = api
        .get_opt(name)
        .await
        .map_err(|e| kube(pctx, format!("reading Secret {ns}/{name}"), e))?
        .and_then(|s| s.data)
        .and_then(|d| d.get(&link.key).cloned());
    Ok(stored.is_some_and(|b| b.0 == kubeconfig.expose_secret().as_bytes()))
}

/// A token rotate made, with the object that revokes it.
struct Minted {
    token: SecretString,
    meta: ObjectMeta,
    bound: bool,
}

impl Minted {
    fn describe(&self, ns: &str) -> String {
        let name = self.meta.name.as_deref().unwrap_or_default();
        if self.bound {
            format!("Secret {ns}/{name} and a TokenRequest token bound to it")
        } else {
            format!("token Secret {ns}/{name}")
        }
    }
}

/// Step 1: a token Secret with a fresh name, or a Secret of ours and a TokenRequest token
/// bound to it.
async fn mint(
    run: &Run<'_>,
    remote: &Client,
    rctx: &str,
    account: &ReaderAccount,
    rotated_from: Option<&str>,
) -> Result<Minted> {
    let ns = account.namespace.as_str();
    let secrets: Api<Secret> = Api::namespaced(remote.clone(), ns);
    let mut annotations = BTreeMap::new();
    if let Some(old) = rotated_from {
        annotations.insert(ROTATED_FROM_ANNOTATION.to_owned(), old.to_owned());
    }
    if let Some(ttl) = run.opts.token_ttl {
        let token =
            mesh_kubeconfig::request_bound_token(remote, rctx, account, ttl, annotations).await?;
        return Ok(Minted {
            token: token.token,
            meta: token.bound_to.unwrap_or_default(),
            bound: true,
        });
    }
    annotations.insert(SA_NAME_ANNOTATION.to_owned(), account.name.clone());
    let object = Secret {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-token-", account.name)),
            namespace: Some(ns.to_owned()),
            labels: Some(cluster::names::owned_labels()),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        type_: Some(TOKEN_SECRET_TYPE.to_owned()),
        ..Secret::default()
    };
    let pp = PostParams {
        field_manager: Some(cluster::FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    let created = secrets
        .create(&pp, &object)
        .await
        .map_err(|e| kube(rctx, format!("creating a token Secret in {ns}"), e))?;
    let name = created.metadata.name.clone().unwrap_or_default();
    tracing::info!(cluster = rctx, secret = %name, "created a token object");
    let filled = cluster::poll(mesh_kubeconfig::DEFAULT_TOKEN_WAIT, || async {
        let s = secrets
            .get_opt(&name)
            .await
            .map_err(|e| kube(rctx, format!("reading Secret {ns}/{name}"), e))?;
        Ok(s.and_then(|s| {
            let token = s.data.as_ref()?.get("token")?;
            let text = std::str::from_utf8(&token.0).ok()?.trim().to_owned();
            (!text.is_empty()).then(|| (SecretString::from(text), s.metadata.clone()))
        }))
    })
    .await?;
    let Some((token, meta)) = filled else {
        let _ = cluster::delete_checked(&secrets, rctx, &name, &created.metadata).await;
        return Err(Error::Timeout {
            cluster: rctx.to_owned(),
            what: format!("the token controller to fill token Secret {ns}/{name}"),
            seconds: mesh_kubeconfig::DEFAULT_TOKEN_WAIT.as_secs(),
            hint: "check that kube-controller-manager signs ServiceAccount tokens, or ask for a token with a lifetime instead".into(),
        });
    };
    Ok(Minted {
        token,
        meta,
        bound: false,
    })
}

/// Step 2: the new kubeconfig authenticates as the same account, may read what istiod
/// reads and may not write.
async fn verify(
    kubeconfigs: &Kubeconfigs,
    opts: &RotateOptions,
    rctx: &str,
    account: &ReaderAccount,
    kubeconfig: &SecretString,
) -> Result<Outcome> {
    // Through the URL we reach the remote by; the primary's may differ.
    let mine = kubeconfigs.resolve(rctx)?.server;
    let stored = links::link_server(kubeconfig).unwrap_or_default();
    let via = (!links::same_server(&mine, &stored)).then_some(mine.as_str());
    let v =
        mesh_kubeconfig::verify_remote_kubeconfig(kubeconfig, via, opts.request_timeout).await?;
    let mut problems = v.problems();
    if v.user != account.username() {
        problems.insert(
            0,
            format!(
                "authenticates as {:?}, not as {}",
                v.user,
                account.username()
            ),
        );
    }
    if !problems.is_empty() {
        return Err(Error::Kube {
            cluster: rctx.to_owned(),
            action: "verifying the new token".into(),
            reason: problems.join("; "),
            status: None,
            source: None,
        });
    }
    Ok(Outcome::Found(format!(
        "authenticates as {}, reads what istiod reads, may not write",
        v.user
    )))
}

/// Step 3: the link's key in its own Secret holds the new kubeconfig — a merge patch
/// carrying the `resourceVersion` read, made only while the key still holds the
/// kubeconfig rotate started from (on 409 read again and checked again).
async fn write_link(
    run: &Run<'_>,
    primary: &Client,
    read: &Secret,
    key: &str,
    old: &SecretString,
    new: &SecretString,
) -> Result<Outcome> {
    let ns = run.opts.namespace.as_str();
    let pctx = run.opts.primary.as_str();
    let name = read.metadata.name.clone().unwrap_or_default();
    let object = format!("Secret {ns}/{name}");
    let api: Api<Secret> = Api::namespaced(primary.clone(), ns);
    let encoded = base64::engine::general_purpose::STANDARD.encode(new.expose_secret());
    cluster::retry_conflicts(
        &api,
        pctx,
        &object,
        &name,
        Some(read.clone()),
        async |current: Option<Secret>| {
            let Some(current) = current else {
                return Err(changed_meanwhile(pctx, &object, key, "it was deleted"));
            };
            let holds = current
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|v| v.0.as_slice());
            if holds == Some(new.expose_secret().as_bytes()) {
                return Ok(cluster::Attempt::Done(Outcome::Unchanged));
            }
            if holds != Some(old.expose_secret().as_bytes())
                || !links::managed_by_us(&current.metadata)
            {
                return Err(changed_meanwhile(
                    pctx,
                    &object,
                    key,
                    "its key was rewritten by someone else",
                ));
            }
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": current.metadata.resource_version},
                "data": { key: encoded },
            });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => Ok(cluster::Attempt::Done(Outcome::Changed(
                    format!("updated key {key} of remote {object} in {pctx} with the new token"),
                    None,
                ))),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(cluster::Attempt::Conflict),
                Err(e) => Err(kube(pctx, format!("writing {object}"), e)),
            }
        },
    )
    .await
}

fn changed_meanwhile(pctx: &str, object: &str, key: &str, why: &str) -> Error {
    Error::Kube {
        cluster: pctx.to_owned(),
        action: format!("writing key {key} of {object}"),
        reason: format!(
            "the key changed while rotating ({why}); nothing more was written — run the command again"
        ),
        status: Some(409),
        source: None,
    }
}

/// istiod's HTTP debug port, where `/debug/clusterz` is served.
const ISTIOD_DEBUG_PORT: u16 = 8080;

/// istiod's debug view as rotate reads it: the address given, else a port-forward of
/// ours (as `verify` reaches istiod) to a running istiod pod's debug port, opened at the
/// first link that reaches step 4 and closed when the rotation ends.
struct IstiodView {
    given: Option<String>,
    forwarded:
        tokio::sync::OnceCell<std::result::Result<(String, crate::verify::Forwards), String>>,
}

impl IstiodView {
    /// The address to read `/debug/clusterz` at, or why there is none.
    async fn address(
        &self,
        primary: &Client,
        pctx: &str,
        ns: &str,
    ) -> std::result::Result<String, String> {
        if let Some(given) = &self.given {
            return Ok(given.clone());
        }
        self.forwarded
            .get_or_init(|| async {
                crate::verify::forward_istiod(primary, pctx, ns, ISTIOD_DEBUG_PORT)
                    .await
                    .map(|(address, task)| (address, crate::verify::Forwards(vec![task])))
                    .map_err(|e| format!("no --istiod, and {e}"))
            })
            .await
            .as_ref()
            .map(|(address, _)| address.clone())
            .map_err(Clone::clone)
    }
}

/// Step 4: the stored kubeconfig authenticates; then istiod's view (when reachable)
/// reports the cluster synced after the change. Returns the outcome and whether istiod
/// was checked.
async fn wait_in_use(
    kubeconfigs: &Kubeconfigs,
    run: &Run<'_>,
    primary: &Client,
    link: &Selected,
    expected: &SecretString,
    view: &IstiodView,
) -> Result<(Outcome, bool)> {
    let opts = run.opts;
    let ns = opts.namespace.as_str();
    let pctx = opts.primary.as_str();
    let rctx = link.context.as_str();
    if !link_holds(primary, opts, link, expected).await? {
        let name = link.secret.metadata.name.as_deref().unwrap_or_default();
        return Err(changed_meanwhile(
            pctx,
            &format!("Secret {ns}/{name}"),
            &link.key,
            "it no longer holds the new kubeconfig",
        ));
    }
    // The stored kubeconfig authenticates (through the URL we reach the remote by).
    let via = kubeconfigs
        .resolve(rctx)
        .ok()
        .map(|r| r.server)
        .filter(|mine| links::link_server(expected).is_none_or(|s| !links::same_server(mine, &s)));
    let authenticated = cluster::poll(opts.wait, || async {
        match mesh_kubeconfig::verify_remote_kubeconfig(expected, via.as_deref(), opts.request_timeout)
            .await
        {
            Ok(v) => Ok(Some(v.user)),
            Err(e) => {
                tracing::info!(cluster = rctx, error = %e, "the stored kubeconfig does not authenticate yet");
                Ok(None)
            }
        }
    })
    .await?;
    if authenticated.is_none() {
        return Err(Error::Timeout {
            cluster: rctx.to_owned(),
            what: format!("link {}'s new kubeconfig to authenticate", link.key),
            seconds: opts.wait.as_secs(),
            hint: "the old token was not revoked; run the command again".into(),
        });
    }
    let address = match view.address(primary, pctx, ns).await {
        Ok(address) => address,
        Err(why) => {
            tokio::time::sleep(opts.settle).await;
            run.warn(
                pctx,
                STEP_SYNC,
                format!(
                    "istiod's view was not checked ({why}): link {}'s new kubeconfig authenticates; waited {}s for istiod to pick it up before revoking the old token",
                    link.key,
                    opts.settle.as_secs()
                ),
            );
            return Ok((
                Outcome::Found(format!(
                    "the new kubeconfig of link {} authenticates",
                    link.key
                )),
                false,
            ));
        }
    };
    let address = address.as_str();
    // istiod rebuilds the cluster for the changed Secret and swaps once it synced; its
    // debug view names no kubeconfig version, so: synced after a re-sync was seen, or
    // synced without a break for the settle time.
    let deadline = tokio::time::Instant::now() + opts.wait;
    let mut synced_since: Option<tokio::time::Instant> = None;
    let mut resync_seen = false;
    let mut last = String::new();
    loop {
        let status = match clusterz(address).await {
            Ok(body) => clusterz_status(&body, &link.key),
            Err(e) => {
                last = format!("istiod at {address} does not answer: {e}");
                None
            }
        };
        let now = tokio::time::Instant::now();
        match status.as_deref() {
            Some("synced") => {
                let since = *synced_since.get_or_insert(now);
                if resync_seen || now.duration_since(since) >= opts.settle {
                    return Ok((
                        Outcome::Found(format!(
                            "istiod reports cluster {} synced with the new credentials",
                            link.key
                        )),
                        true,
                    ));
                }
            }
            Some(other) => {
                resync_seen = true;
                synced_since = None;
                last = format!("istiod reports cluster {} {other}", link.key);
            }
            None => {
                synced_since = None;
                if last.is_empty() || !last.starts_with("istiod at") {
                    last = format!("istiod lists no cluster {}", link.key);
                }
            }
        }
        if now >= deadline {
            return Err(Error::Timeout {
                cluster: pctx.to_owned(),
                what: format!(
                    "istiod to report cluster {} synced after its credentials changed ({last})",
                    link.key
                ),
                seconds: opts.wait.as_secs(),
                hint:
                    "the old token was not revoked; check istiod's log, then run the command again"
                        .into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /debug/clusterz` on istiod's HTTP debug address: the body.
async fn clusterz(address: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = address
        .trim()
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(host).await?;
        stream
            .write_all(
                format!("GET /debug/clusterz HTTP/1.0\r\nHost: {host}\r\nAccept: application/json\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in 5s"))??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        return Err(std::io::Error::other(format!("answered {status}")));
    }
    Ok(body.to_owned())
}

/// Step 5: the old token's object, and every other token object of ours for the account
/// that no link uses, except `keep` (the new token's). Returns what was deleted and what
/// became of the old token.
#[allow(clippy::too_many_arguments)]
async fn revoke(
    run: &Run<'_>,
    remote: &Client,
    rctx: &str,
    account: &ReaderAccount,
    sa_uid: Option<&str>,
    users: &Users,
    old: Option<TokenObject>,
    keep: Option<&str>,
) -> Result<(Vec<String>, OldToken)> {
    let ns = account.namespace.as_str();
    let api: Api<Secret> = Api::namespaced(remote.clone(), ns);
    let mut done = Vec::new();
    if !users.unknown.is_empty() {
        let why = users.unknown.join("; ");
        run.warn(rctx, STEP_REVOKE, format!("kept the old token: {why}"));
        return Ok((done, OldToken::NotRevoked(why)));
    }
    let keep = keep.map(|k| k.rsplit('/').next().unwrap_or(k).to_owned());
    let state = match &old {
        None => {
            let why = "it is a TokenRequest token bound to no object, so it cannot be revoked; it stays valid until it expires".to_owned();
            run.warn(rctx, STEP_REVOKE, format!("kept the old token: {why}"));
            OldToken::NotRevoked(why)
        }
        Some(o) => {
            let found = api
                .get_opt(&o.name)
                .await
                .map_err(|e| kube(rctx, format!("reading Secret {ns}/{}", o.name), e))?;
            let in_use = users.of(sa_uid, &o.name);
            match found {
                None => OldToken::Revoked,
                Some(s) if o.uid.is_some() && s.metadata.uid != o.uid => OldToken::Revoked,
                Some(s) if !is_our_token_object(&s, &account.name) => {
                    let why = format!(
                        "Secret {ns}/{} was not made by kubectl-mesh; delete it yourself once nothing uses it",
                        o.name
                    );
                    run.warn(rctx, STEP_REVOKE, format!("kept the old token: {why}"));
                    OldToken::NotRevoked(why)
                }
                Some(_) if !in_use.is_empty() => {
                    let why = format!("still used by {}", in_use.join(", "));
                    run.warn(rctx, STEP_REVOKE, format!("kept the old token: {why}"));
                    OldToken::NotRevoked(why)
                }
                Some(s) => {
                    let what = format!("Secret {ns}/{}", o.name);
                    cluster::delete_checked(&api, rctx, &what, &s.metadata).await?;
                    done.push(format!(
                        "deleted {what} in {rctx}: the old token is revoked"
                    ));
                    OldToken::Revoked
                }
            }
        }
    };
    for s in unused_objects(remote, rctx, account, sa_uid, users).await? {
        let name = s.metadata.name.clone().unwrap_or_default();
        if Some(&name) == keep.as_ref() || old.as_ref().is_some_and(|o| o.name == name) {
            continue;
        }
        let what = format!("Secret {ns}/{name}");
        cluster::delete_checked(&api, rctx, &what, &s.metadata).await?;
        done.push(format!(
            "deleted {what} in {rctx}: a token of kubectl-mesh's no link uses (left by an interrupted rotation)"
        ));
    }
    Ok((done, state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::links::tests::jwt;

    #[test]
    fn a_tokens_object_is_its_secret_or_the_secret_it_is_bound_to() {
        let legacy = jwt(serde_json::json!({
            "sub": "system:serviceaccount:istio-system:reader",
            "kubernetes.io/serviceaccount/secret.name": "reader-token-abcde",
        }));
        assert_eq!(
            token_object(&legacy),
            Some(TokenObject {
                name: "reader-token-abcde".into(),
                uid: None
            })
        );
        let bound = jwt(serde_json::json!({
            "sub": "system:serviceaccount:istio-system:reader",
            "kubernetes.io": {"namespace": "istio-system",
                "secret": {"name": "reader-bound-token-x", "uid": "u9"},
                "serviceaccount": {"name": "reader", "uid": "u1"}},
        }));
        assert_eq!(
            token_object(&bound),
            Some(TokenObject {
                name: "reader-bound-token-x".into(),
                uid: Some("u9".into())
            })
        );
        let unbound = jwt(serde_json::json!({
            "sub": "system:serviceaccount:istio-system:reader",
            "kubernetes.io": {"namespace": "istio-system",
                "serviceaccount": {"name": "reader", "uid": "u1"}},
        }));
        assert_eq!(token_object(&unbound), None);
        let pod = jwt(serde_json::json!({
            "kubernetes.io": {"pod": {"name": "p", "uid": "u"}},
        }));
        assert_eq!(token_object(&pod), None);
        assert_eq!(token_object(&SecretString::from("opaque")), None);
    }

    #[test]
    fn only_labelled_token_objects_for_the_account_are_ours() {
        let secret = |type_: &str, annotations: serde_json::Value, ours: bool| -> Secret {
            let labels = if ours {
                serde_json::json!({"app.kubernetes.io/managed-by": "kubectl-mesh"})
            } else {
                serde_json::json!({})
            };
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "s", "labels": labels, "annotations": annotations},
                "type": type_,
            }))
            .unwrap()
        };
        let sa = serde_json::json!({ SA_NAME_ANNOTATION: "reader" });
        let bound = serde_json::json!({ BOUND_TOKEN_FOR_ANNOTATION: "reader" });
        assert!(is_our_token_object(
            &secret(TOKEN_SECRET_TYPE, sa.clone(), true),
            "reader"
        ));
        assert!(!is_our_token_object(
            &secret(TOKEN_SECRET_TYPE, sa.clone(), false),
            "reader"
        ));
        assert!(!is_our_token_object(
            &secret(TOKEN_SECRET_TYPE, sa.clone(), true),
            "other"
        ));
        assert!(is_our_token_object(
            &secret("Opaque", bound.clone(), true),
            "reader"
        ));
        assert!(!is_our_token_object(&secret("Opaque", sa, true), "reader"));
        assert!(!is_our_token_object(
            &secret(TOKEN_SECRET_TYPE, bound, true),
            "reader"
        ));
    }

    #[test]
    fn the_window_takes_tokens_that_expire_within_it_and_never_ones_that_do_not_expire() {
        let now = Timestamp::from_second(1_000_000).unwrap();
        let hour = Duration::from_secs(3600);
        let at = |s: i64| Some(Timestamp::from_second(1_000_000 + s).unwrap());
        assert!(expiring_within(at(1800), now, hour));
        assert!(expiring_within(at(3600), now, hour));
        assert!(expiring_within(at(-5), now, hour), "expired already");
        assert!(!expiring_within(at(3601), now, hour));
        assert!(!expiring_within(None, now, hour));
    }

    #[test]
    fn clusterz_is_read_by_cluster_id() {
        let body = r#"[{"id":"cluster1","syncStatus":"synced"},
            {"id":"cluster2","secretName":"istio-system/istio-remote-secret-cluster2","syncStatus":"syncing"}]"#;
        assert_eq!(
            clusterz_status(body, "cluster2").as_deref(),
            Some("syncing")
        );
        assert_eq!(clusterz_status(body, "cluster1").as_deref(), Some("synced"));
        assert_eq!(clusterz_status(body, "cluster3"), None);
        assert_eq!(clusterz_status("not json", "cluster2"), None);
    }

    #[test]
    fn the_new_kubeconfig_differs_from_the_old_only_in_its_token() {
        let old = mesh_kubeconfig::RemoteKubeconfig::builder("cluster2")
            .server("https://127.0.2.1:6443")
            .ca_data(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_vec())
            .tls_server_name(Some("kubernetes".into()))
            .token(SecretString::from("old-token"))
            .build()
            .unwrap()
            .to_yaml()
            .unwrap();
        let new = with_token(&old, SecretString::from("new-token")).unwrap();
        assert_eq!(
            new.expose_secret(),
            old.expose_secret().replace("old-token", "new-token")
        );
        assert_eq!(
            links::kubeconfig_token(&new).unwrap().expose_secret(),
            "new-token"
        );
    }
}
