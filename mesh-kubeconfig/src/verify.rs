//! Proving that a remote kubeconfig works: who it is, what it may read, that it cannot write.

use std::time::Duration;

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::config::KubeConfigOptions;
use kube::{Api, Config};
use secrecy::{ExposeSecret, SecretString};

use crate::kubeconfig::{client_from_config, kubeconfig_error_reason, validate_server};
use crate::{Error, Kubeconfigs, Result, jwt_expiry};

/// One access check: a verb on a resource in all namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The verb (`list`, `create`, ...).
    pub verb: String,
    /// The API group (`""` for core).
    pub group: String,
    /// The resource (plural).
    pub resource: String,
}

impl Access {
    fn new(verb: &str, group: &str, resource: &str) -> Self {
        Self {
            verb: verb.to_owned(),
            group: group.to_owned(),
            resource: resource.to_owned(),
        }
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            write!(f, "{} {}", self.verb, self.resource)
        } else {
            write!(f, "{} {}.{}", self.verb, self.resource, self.group)
        }
    }
}

/// What a remote kubeconfig proved about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The user the server authenticated (`system:serviceaccount:NS:NAME`).
    pub user: String,
    /// Its groups.
    pub groups: Vec<String>,
    /// Reads istiod needs that are allowed.
    pub allowed_reads: Vec<Access>,
    /// Reads istiod needs that are denied (should be empty).
    pub denied_reads: Vec<Access>,
    /// Writes that are denied (all of them, ideally).
    pub denied_writes: Vec<Access>,
    /// Writes that are allowed (should be empty).
    pub allowed_writes: Vec<Access>,
    /// When the token expires; `None` if it never does.
    pub expires_at: Option<Timestamp>,
}

impl Verification {
    /// Whether every needed read is allowed and every write denied.
    pub fn is_ok(&self) -> bool {
        self.denied_reads.is_empty() && self.allowed_writes.is_empty()
    }

    /// What is wrong, one sentence each.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.denied_reads.is_empty() {
            out.push(format!(
                "cannot {} across namespaces, which istiod needs",
                join(&self.denied_reads)
            ));
        }
        if !self.allowed_writes.is_empty() {
            out.push(format!(
                "may {}, more than a reader needs",
                join(&self.allowed_writes)
            ));
        }
        out
    }
}

fn join(xs: &[Access]) -> String {
    xs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The cluster-wide reads istiod needs from a remote cluster.
fn needed_reads() -> Vec<Access> {
    let mut out = Vec::new();
    for (group, resource) in [
        ("", "services"),
        ("", "endpoints"),
        ("discovery.k8s.io", "endpointslices"),
        ("", "pods"),
        ("", "nodes"),
        ("", "namespaces"),
        ("", "secrets"),
        ("", "configmaps"),
    ] {
        for verb in ["get", "list", "watch"] {
            out.push(Access::new(verb, group, resource));
        }
    }
    out
}

/// Writes a reader must not be able to make.
///
/// Creating and updating ConfigMaps is left out on purpose: on a remote installed with
/// Istio's `remote` profile, Istio's own reader role grants exactly those two, because
/// the primary's istiod writes its root certificate (ConfigMap `istio-ca-root-cert`)
/// into every namespace of the clusters it controls.
fn forbidden_writes() -> Vec<Access> {
    let mut out = Vec::new();
    for (group, resource) in [
        ("", "services"),
        ("discovery.k8s.io", "endpointslices"),
        ("", "pods"),
        ("", "namespaces"),
        ("", "secrets"),
        ("", "configmaps"),
    ] {
        for verb in ["create", "update", "patch", "delete"] {
            if resource == "configmaps" && (verb == "create" || verb == "update") {
                continue;
            }
            out.push(Access::new(verb, group, resource));
        }
    }
    out
}

/// Checks a remote kubeconfig (YAML) against its cluster: that it holds inline data
/// only, that it authenticates (SelfSubjectReview), what it may read and that it cannot
/// write (SelfSubjectAccessReviews), and when its token expires.
///
/// `server` replaces the kubeconfig's server URL for the check, for when the URL the
/// primary uses is not reachable from here.
///
/// ```no_run
/// # async fn f(yaml: secrecy::SecretString) -> mesh_kubeconfig::Result<()> {
/// let v = mesh_kubeconfig::verify_remote_kubeconfig(&yaml, None, None).await?;
/// println!("authenticates as {}", v.user);
/// # Ok(()) }
/// ```
pub async fn verify_remote_kubeconfig(
    kubeconfig: &SecretString,
    server: Option<&str>,
    timeout: Option<Duration>,
) -> Result<Verification> {
    // from_yaml refuses anything but inline credentials: no exec plugin, no local file.
    let kc = Kubeconfigs::from_yaml(kubeconfig.expose_secret())?;
    let context = kc.context_or_current(None)?;
    let resolved = kc.resolve(&context)?;
    let label = format!("cluster {context} (remote kubeconfig)");
    let mut config = Config::from_custom_kubeconfig(
        kc.raw().clone(),
        &KubeConfigOptions {
            context: Some(context.clone()),
            ..KubeConfigOptions::default()
        },
    )
    .await
    .map_err(|e| Error::InvalidRemoteKubeconfig {
        reason: kubeconfig_error_reason(&e),
    })?;
    let url = server.unwrap_or(&resolved.server).to_owned();
    if let Some(s) = server {
        config.cluster_url = validate_server(s).map_err(|reason| Error::InvalidServer {
            context: context.clone(),
            reason,
        })?;
    }
    let client = client_from_config(config, timeout).map_err(|e| Error::Client {
        context: context.clone(),
        server: url.clone(),
        reason: crate::error::error_chain(&e),
    })?;

    let pp = PostParams::default();
    let review: SelfSubjectReview = Api::<SelfSubjectReview>::all(client.clone())
        .create(&pp, &SelfSubjectReview::default())
        .await
        .map_err(|e| {
            Error::from_kube(e, &label, "authenticate (SelfSubjectReview)").with_server(&url)
        })?;
    let info = review.status.and_then(|s| s.user_info).unwrap_or_default();
    let user = info.username.unwrap_or_default();
    let groups = info.groups.unwrap_or_default();

    let ssar = Api::<SelfSubjectAccessReview>::all(client);
    let check = |access: Access| {
        let ssar = ssar.clone();
        let label = label.clone();
        let url = url.clone();
        async move {
            let review = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        verb: Some(access.verb.clone()),
                        group: Some(access.group.clone()),
                        resource: Some(access.resource.clone()),
                        namespace: Some(String::new()),
                        ..ResourceAttributes::default()
                    }),
                    ..SelfSubjectAccessReviewSpec::default()
                },
                ..SelfSubjectAccessReview::default()
            };
            let answer = ssar
                .create(&PostParams::default(), &review)
                .await
                .map_err(|e| {
                    Error::from_kube(e, &label, format!("check whether it may {access}"))
                        .with_server(&url)
                })?;
            Ok::<_, Error>((access, answer.status.is_some_and(|s| s.allowed)))
        }
    };
    let reads = futures::future::try_join_all(needed_reads().into_iter().map(check)).await?;
    let writes = futures::future::try_join_all(forbidden_writes().into_iter().map(check)).await?;
    let (allowed_reads, denied_reads) = partition(reads);
    let (allowed_writes, denied_writes) = partition(writes);

    let token = kc
        .raw()
        .auth_infos
        .iter()
        .find(|u| Some(&u.name) == resolved.user_name.as_ref())
        .and_then(|u| u.auth_info.as_ref())
        .and_then(|a| a.token.clone());
    let expires_at = token.as_ref().and_then(jwt_expiry);

    let v = Verification {
        user,
        groups,
        allowed_reads,
        denied_reads,
        denied_writes,
        allowed_writes,
        expires_at,
    };
    tracing::info!(
        user = %v.user,
        reads_denied = v.denied_reads.len(),
        writes_allowed = v.allowed_writes.len(),
        expires = ?v.expires_at,
        "verified the remote kubeconfig"
    );
    Ok(v)
}

fn partition(results: Vec<(Access, bool)>) -> (Vec<Access>, Vec<Access>) {
    let mut yes = Vec::new();
    let mut no = Vec::new();
    for (a, allowed) in results {
        if allowed { yes.push(a) } else { no.push(a) }
    }
    (yes, no)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_references_and_plugins_are_rejected() {
        let with = |user: &str, cluster: &str| {
            format!(
                "clusters:\n- name: c\n  cluster:\n    server: https://x:6443\n{cluster}contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n{user}"
            )
        };
        let inline =
            "    token: abc\n    client-certificate-data: Y2VydA==\n    client-key-data: a2V5\n";
        let ok = with(
            inline,
            "    certificate-authority-data: Y2E=\n    tls-server-name: k\n    insecure-skip-tls-verify: true\n",
        );
        assert!(Kubeconfigs::from_yaml(&ok).is_ok());
        for (bad, field) in [
            ("    tokenFile: /var/run/token\n", "tokenFile"),
            (
                "    exec:\n      command: aws\n      apiVersion: client.authentication.k8s.io/v1\n",
                "exec",
            ),
            ("    auth-provider:\n      name: gcp\n", "auth-provider"),
            ("    client-certificate: /tmp/c.crt\n", "client-certificate"),
            ("    client-key: /tmp/c.key\n", "client-key"),
            ("    username: admin\n    password: hunter2\n", "password"),
            ("    token: abc\n    as: system:admin\n", "as"),
        ] {
            let err = Kubeconfigs::from_yaml(&with(bad, ""))
                .map(|_| ())
                .unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, Error::UntrustedKubeconfig { .. }) && msg.contains(field),
                "{bad}: {msg}"
            );
            assert!(
                !msg.contains("hunter2") && !msg.contains("/var/run"),
                "{msg}"
            );
        }
        for (bad, field) in [
            (
                "    certificate-authority: /etc/ca.crt\n",
                "certificate-authority",
            ),
            ("    proxy-url: http://proxy:3128\n", "proxy-url"),
        ] {
            let msg = Kubeconfigs::from_yaml(&with("    token: abc\n", bad))
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(msg.contains(field), "{bad}: {msg}");
        }
    }

    #[test]
    fn problems_say_what_is_wrong() {
        let v = Verification {
            user: "u".into(),
            groups: vec![],
            allowed_reads: vec![],
            denied_reads: vec![Access::new("list", "discovery.k8s.io", "endpointslices")],
            denied_writes: vec![],
            allowed_writes: vec![Access::new("delete", "", "pods")],
            expires_at: None,
        };
        assert!(!v.is_ok());
        let p = v.problems().join("\n");
        assert!(
            p.contains("list endpointslices.discovery.k8s.io") && p.contains("delete pods"),
            "{p}"
        );
    }
}
