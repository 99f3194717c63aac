//! The remote kubeconfig and the remote Secret istiod watches.

use std::collections::BTreeMap;
use std::net::IpAddr;

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::kubeconfig::validate_server;
use crate::{Error, Result, is_dns1123_label};

/// The label istiod selects remote secrets by (value `"true"`).
pub const MULTICLUSTER_LABEL: &str = "istio/multiCluster";
/// The annotation naming the cluster a remote secret is for.
pub const CLUSTER_ANNOTATION: &str = "networking.istio.io/cluster";
/// The prefix of remote secret names.
pub const REMOTE_SECRET_PREFIX: &str = "istio-remote-secret-";
/// The label marking objects kubectl-mesh manages.
pub const MANAGED_BY_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "kubectl-mesh");

/// `istio-remote-secret-<cluster>`.
pub fn remote_secret_name(cluster_name: &str) -> String {
    format!("{REMOTE_SECRET_PREFIX}{cluster_name}")
}

/// Something the user should know that does not stop the work.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// The server URL is loopback: the primary (another machine or pod) cannot reach it.
    LoopbackServer {
        /// The URL.
        server: String,
    },
    /// The CA could not be checked against the server.
    CaNotValidated {
        /// The URL.
        server: String,
        /// Which CA was used.
        origin: String,
        /// Why it could not be checked.
        reason: String,
    },
    /// The generated kubeconfig did not pass verification.
    Verification {
        /// What is wrong.
        problem: String,
    },
    /// The user's context skips TLS verification: what was read through it proves
    /// nothing about who answered, so only the user's CA went into the kubeconfig.
    InsecureContext {
        /// The context.
        context: String,
    },
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::LoopbackServer { server } => write!(
                f,
                "server {server} is a loopback address: istiod in the primary cluster cannot reach it; give a server URL the primary can reach"
            ),
            Warning::CaNotValidated {
                server,
                origin,
                reason,
            } => write!(
                f,
                "could not check the CA from {origin} against {server} ({reason}); using it unchecked"
            ),
            Warning::Verification { problem } => write!(f, "the remote kubeconfig {problem}"),
            Warning::InsecureContext { context } => write!(
                f,
                "context {context} skips TLS verification (insecure-skip-tls-verify: true): the reader account and token were made over a connection that proves nothing about who answered; the remote secret carries only the CA you gave, never one read from the cluster — remove insecure-skip-tls-verify from that context"
            ),
        }
    }
}

/// Whether the URL's host is `localhost`, a `*.localhost` name, a loopback IP or the
/// unspecified address.
pub fn is_loopback_server(server: &str) -> bool {
    let Ok(uri) = server.parse::<http::Uri>() else {
        return false;
    };
    let Some(host) = uri.host() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let lower = host.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return true;
    }
    host.parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
}

/// Warnings about a server URL the primary will use.
pub fn server_warnings(server: &str) -> Vec<Warning> {
    if is_loopback_server(server) {
        vec![Warning::LoopbackServer {
            server: server.to_owned(),
        }]
    } else {
        Vec::new()
    }
}

/// A kubeconfig istiod can load: one cluster, context and user named after the cluster,
/// with inline CA data and a bearer token (istiod rejects file paths and exec plugins).
#[derive(Clone)]
pub struct RemoteKubeconfig {
    cluster_name: String,
    server: String,
    ca_data: Vec<u8>,
    tls_server_name: Option<String>,
    token: SecretString,
}

impl std::fmt::Debug for RemoteKubeconfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKubeconfig")
            .field("cluster_name", &self.cluster_name)
            .field("server", &self.server)
            .field("ca_data", &format!("{} bytes", self.ca_data.len()))
            .field("tls_server_name", &self.tls_server_name)
            .field("token", &"[REDACTED]")
            .finish()
    }
}

/// Builds a [`RemoteKubeconfig`].
#[derive(Default)]
pub struct RemoteKubeconfigBuilder {
    cluster_name: String,
    server: Option<String>,
    ca_data: Option<Vec<u8>>,
    tls_server_name: Option<String>,
    token: Option<SecretString>,
}

impl std::fmt::Debug for RemoteKubeconfigBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKubeconfigBuilder")
            .field("cluster_name", &self.cluster_name)
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .finish_non_exhaustive()
    }
}

impl RemoteKubeconfigBuilder {
    /// The API server URL the primary uses.
    pub fn server(mut self, server: impl Into<String>) -> Self {
        self.server = Some(server.into());
        self
    }
    /// The PEM CA bundle that validates the server.
    pub fn ca_data(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_data = Some(pem.into());
        self
    }
    /// The name to verify the server certificate against instead of the URL's host.
    pub fn tls_server_name(mut self, name: Option<String>) -> Self {
        self.tls_server_name = name.filter(|n| !n.is_empty());
        self
    }
    /// The bearer token.
    pub fn token(mut self, token: SecretString) -> Self {
        self.token = Some(token);
        self
    }
    /// Checks the parts and builds the kubeconfig.
    pub fn build(self) -> Result<RemoteKubeconfig> {
        let invalid = |reason: String| Error::InvalidRemoteKubeconfig { reason };
        if !is_dns1123_label(&self.cluster_name) {
            return Err(Error::InvalidClusterName {
                name: self.cluster_name,
            });
        }
        let server = self.server.ok_or_else(|| invalid("no server URL".into()))?;
        validate_server(&server).map_err(|reason| Error::InvalidServer {
            context: self.cluster_name.clone(),
            reason,
        })?;
        let ca_data = self
            .ca_data
            .filter(|c| !c.is_empty())
            .ok_or_else(|| invalid("no certificate authority data".into()))?;
        let token = self
            .token
            .filter(|t| !t.expose_secret().is_empty())
            .ok_or_else(|| invalid("no token".into()))?;
        Ok(RemoteKubeconfig {
            cluster_name: self.cluster_name,
            server,
            ca_data,
            tls_server_name: self.tls_server_name,
            token,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct KubeconfigDoc {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    clusters: Vec<NamedCluster>,
    contexts: Vec<NamedContext>,
    users: Vec<NamedUser>,
    #[serde(rename = "current-context")]
    current_context: String,
}

#[derive(Serialize, Deserialize)]
struct NamedCluster {
    name: String,
    cluster: ClusterDoc,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ClusterDoc {
    server: String,
    certificate_authority_data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_server_name: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct NamedContext {
    name: String,
    context: ContextDoc,
}

#[derive(Serialize, Deserialize)]
struct ContextDoc {
    cluster: String,
    user: String,
}

#[derive(Serialize, Deserialize)]
struct NamedUser {
    name: String,
    user: UserDoc,
}

#[derive(Serialize, Deserialize)]
struct UserDoc {
    token: String,
}

impl RemoteKubeconfig {
    /// Starts a kubeconfig for the cluster named `cluster_name` (a DNS-1123 label).
    pub fn builder(cluster_name: impl Into<String>) -> RemoteKubeconfigBuilder {
        RemoteKubeconfigBuilder {
            cluster_name: cluster_name.into(),
            ..RemoteKubeconfigBuilder::default()
        }
    }

    /// The cluster name (also the context and user name).
    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    /// The server URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The PEM CA data.
    pub fn ca_data(&self) -> &[u8] {
        &self.ca_data
    }

    /// The token.
    pub fn token(&self) -> &SecretString {
        &self.token
    }

    /// The kubeconfig as YAML. It holds the token, hence a [`SecretString`].
    ///
    /// ```
    /// use mesh_kubeconfig::RemoteKubeconfig;
    /// use secrecy::ExposeSecret;
    /// let kc = RemoteKubeconfig::builder("cluster2")
    ///     .server("https://10.0.0.2:6443")
    ///     .ca_data(b"-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n".to_vec())
    ///     .token("t0ken".to_string().into())
    ///     .build()?;
    /// assert!(kc.to_yaml()?.expose_secret().contains("current-context: cluster2"));
    /// # Ok::<(), mesh_kubeconfig::Error>(())
    /// ```
    pub fn to_yaml(&self) -> Result<SecretString> {
        let name = self.cluster_name.clone();
        let doc = KubeconfigDoc {
            api_version: "v1".into(),
            kind: "Config".into(),
            clusters: vec![NamedCluster {
                name: name.clone(),
                cluster: ClusterDoc {
                    server: self.server.clone(),
                    certificate_authority_data: base64::engine::general_purpose::STANDARD
                        .encode(&self.ca_data),
                    tls_server_name: self.tls_server_name.clone(),
                },
            }],
            contexts: vec![NamedContext {
                name: name.clone(),
                context: ContextDoc {
                    cluster: name.clone(),
                    user: name.clone(),
                },
            }],
            users: vec![NamedUser {
                name: name.clone(),
                user: UserDoc {
                    token: self.token.expose_secret().to_owned(),
                },
            }],
            current_context: name,
        };
        // Plain scalars: a long token or CA stays one line, whatever parser reads it.
        let options = serde_saphyr::ser_options! { prefer_block_scalars: false };
        let yaml =
            serde_saphyr::to_string_with_options(&doc, options).map_err(|e| Error::Serialize {
                what: format!("the kubeconfig of cluster {:?}", self.cluster_name),
                reason: e.to_string(),
            })?;
        Ok(SecretString::from(yaml))
    }
}

/// Builds the Secret istiod watches: `istio-remote-secret-<name>` in the Istio
/// namespace, labelled `istio/multiCluster: "true"`, annotated
/// `networking.istio.io/cluster: <name>`, with one key `<name>` holding the kubeconfig.
///
/// The Secret name and key can be overridden to reproduce older layouts (the 2019
/// guide's `n2-k8s-secret` with key `n2-k8s-config`).
#[derive(Debug, Clone)]
pub struct RemoteSecret {
    cluster_name: String,
    namespace: String,
    secret_name: Option<String>,
    key: Option<String>,
}

impl RemoteSecret {
    /// The remote secret for `cluster_name`, in the Istio `namespace`.
    pub fn new(cluster_name: impl Into<String>, namespace: impl Into<String>) -> Self {
        Self {
            cluster_name: cluster_name.into(),
            namespace: namespace.into(),
            secret_name: None,
            key: None,
        }
    }

    /// Uses `name` instead of `istio-remote-secret-<cluster>`.
    pub fn secret_name(mut self, name: Option<String>) -> Self {
        self.secret_name = name;
        self
    }

    /// Uses `key` instead of the cluster name as the data key (istiod takes the key as
    /// the cluster ID).
    pub fn key(mut self, key: Option<String>) -> Self {
        self.key = key;
        self
    }

    /// The Secret's name.
    pub fn name(&self) -> String {
        self.secret_name
            .clone()
            .unwrap_or_else(|| remote_secret_name(&self.cluster_name))
    }

    /// The data key.
    pub fn data_key(&self) -> String {
        self.key
            .clone()
            .unwrap_or_else(|| self.cluster_name.clone())
    }

    /// The Secret holding `kubeconfig` (YAML from [`RemoteKubeconfig::to_yaml`]).
    ///
    /// The result holds the token: never log it.
    pub fn build(&self, kubeconfig: &SecretString) -> Result<Secret> {
        if !is_dns1123_label(&self.cluster_name) {
            return Err(Error::InvalidClusterName {
                name: self.cluster_name.clone(),
            });
        }
        Ok(Secret {
            metadata: ObjectMeta {
                name: Some(self.name()),
                namespace: Some(self.namespace.clone()),
                labels: Some(BTreeMap::from([
                    (MULTICLUSTER_LABEL.to_owned(), "true".to_owned()),
                    (MANAGED_BY_LABEL.0.to_owned(), MANAGED_BY_LABEL.1.to_owned()),
                ])),
                annotations: Some(BTreeMap::from([(
                    CLUSTER_ANNOTATION.to_owned(),
                    self.cluster_name.clone(),
                )])),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(BTreeMap::from([(
                self.data_key(),
                ByteString(kubeconfig.expose_secret().as_bytes().to_vec()),
            )])),
            ..Secret::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &[u8] = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn kubeconfig(tls: Option<&str>) -> RemoteKubeconfig {
        RemoteKubeconfig::builder("cluster2")
            .server("https://10.1.2.3:6443")
            .ca_data(CA.to_vec())
            .tls_server_name(tls.map(str::to_owned))
            .token(SecretString::from("tok.en.value"))
            .build()
            .unwrap()
    }

    #[test]
    fn kubeconfig_has_istiods_shape_and_inline_data_only() {
        let yaml = kubeconfig(None).to_yaml().unwrap();
        let v: serde_json::Value = serde_saphyr::from_str(yaml.expose_secret()).unwrap();
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["kind"], "Config");
        assert_eq!(v["current-context"], "cluster2");
        assert_eq!(v["clusters"][0]["name"], "cluster2");
        assert_eq!(
            v["clusters"][0]["cluster"]["server"],
            "https://10.1.2.3:6443"
        );
        let ca = v["clusters"][0]["cluster"]["certificate-authority-data"]
            .as_str()
            .unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(ca)
                .unwrap(),
            CA
        );
        assert!(v["clusters"][0]["cluster"].get("tls-server-name").is_none());
        assert_eq!(v["contexts"][0]["name"], "cluster2");
        assert_eq!(v["contexts"][0]["context"]["cluster"], "cluster2");
        assert_eq!(v["contexts"][0]["context"]["user"], "cluster2");
        assert_eq!(v["users"][0]["name"], "cluster2");
        assert_eq!(v["users"][0]["user"]["token"], "tok.en.value");
        assert_eq!(v["users"][0]["user"].as_object().unwrap().len(), 1);
        for forbidden in [
            "certificate-authority:",
            "token-file",
            "exec",
            "auth-provider",
            "client-key",
        ] {
            assert!(!yaml.expose_secret().contains(forbidden), "{forbidden}");
        }
        // kube-rs (and so kubectl-mesh itself) reads it back.
        let kc = crate::Kubeconfigs::from_yaml(yaml.expose_secret()).unwrap();
        assert_eq!(kc.resolve("cluster2").unwrap().ca_data.unwrap(), CA);
    }

    #[test]
    fn long_values_stay_on_one_plain_line() {
        let token = "x".repeat(900);
        let kc = RemoteKubeconfig::builder("c")
            .server("https://10.0.0.1:6443")
            .ca_data(vec![b'a'; 2000])
            .token(SecretString::from(token.clone()))
            .build()
            .unwrap();
        let yaml = kc.to_yaml().unwrap();
        assert!(yaml.expose_secret().contains(&format!("token: {token}\n")));
        assert!(!yaml.expose_secret().contains(">-"));
    }

    #[test]
    fn tls_server_name_when_asked() {
        let yaml = kubeconfig(Some("kubernetes.default")).to_yaml().unwrap();
        assert!(
            yaml.expose_secret()
                .contains("tls-server-name: kubernetes.default")
        );
    }

    #[test]
    fn builder_rejects_bad_parts() {
        let base = || {
            RemoteKubeconfig::builder("ok")
                .server("https://x:6443")
                .ca_data(CA.to_vec())
                .token(SecretString::from("t"))
        };
        assert!(base().build().is_ok());
        assert!(matches!(
            RemoteKubeconfig::builder("Not_A_Label")
                .server("https://x")
                .ca_data(CA.to_vec())
                .token(SecretString::from("t"))
                .build(),
            Err(Error::InvalidClusterName { .. })
        ));
        assert!(base().server("x:6443").build().is_err());
        assert!(base().ca_data(Vec::new()).build().is_err());
        assert!(base().token(SecretString::from("")).build().is_err());
    }

    #[test]
    fn debug_redacts_the_token() {
        let kc = kubeconfig(None);
        assert!(!format!("{kc:?}").contains("tok.en.value"));
        let b = RemoteKubeconfig::builder("x").token(SecretString::from("tok.en.value"));
        assert!(!format!("{b:?}").contains("tok.en.value"));
    }

    #[test]
    fn secret_has_istios_shape() {
        let yaml = kubeconfig(None).to_yaml().unwrap();
        let s = RemoteSecret::new("cluster2", "istio-system")
            .build(&yaml)
            .unwrap();
        assert_eq!(
            s.metadata.name.as_deref(),
            Some("istio-remote-secret-cluster2")
        );
        assert_eq!(s.metadata.namespace.as_deref(), Some("istio-system"));
        assert_eq!(
            s.metadata.labels.as_ref().unwrap()["istio/multiCluster"],
            "true"
        );
        assert_eq!(
            s.metadata.annotations.as_ref().unwrap()["networking.istio.io/cluster"],
            "cluster2"
        );
        let data = s.data.as_ref().unwrap();
        assert_eq!(data.len(), 1);
        assert_eq!(data["cluster2"].0, yaml.expose_secret().as_bytes());
    }

    #[test]
    fn secret_names_reproduce_the_guide() {
        let yaml = kubeconfig(None).to_yaml().unwrap();
        let s = RemoteSecret::new("cluster2", "istio-system")
            .secret_name(Some("n2-k8s-secret".into()))
            .key(Some("n2-k8s-config".into()))
            .build(&yaml)
            .unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("n2-k8s-secret"));
        assert!(s.data.as_ref().unwrap().contains_key("n2-k8s-config"));
    }

    #[test]
    fn loopback_servers_are_detected() {
        for s in [
            "https://127.0.0.1:6443",
            "https://127.1.2.3",
            "https://localhost:6443",
            "https://LOCALHOST",
            "https://api.localhost:443",
            "https://[::1]:6443",
            "https://0.0.0.0:6443",
        ] {
            assert!(is_loopback_server(s), "{s}");
            assert_eq!(server_warnings(s).len(), 1, "{s}");
            assert!(server_warnings(s)[0].to_string().contains("loopback"));
        }
        for s in [
            "https://10.0.0.1:6443",
            "https://api.example.com",
            "https://[fd00::1]:6443",
            "https://localhost.example.com",
        ] {
            assert!(!is_loopback_server(s), "{s}");
            assert!(server_warnings(s).is_empty());
        }
    }
}
