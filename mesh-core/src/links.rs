//! What unjoin and status share: the primary's remote secrets (the links of the mesh),
//! what a link's token says about the ServiceAccount behind it, whether kubectl-mesh
//! made an object, and where a gateway Service can be reached right now.

use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams};
use kube::{Api, Client};
use secrecy::{ExposeSecret, SecretString};

use crate::address::GatewayAddress;
use crate::cluster::{FIELD_MANAGER, GatewayService};
use crate::error::{Result, kube};

/// One data key of a remote secret: a cluster ID and the kubeconfig istiod uses for it.
pub(crate) struct Link {
    /// The Secret's name.
    pub secret: String,
    /// The data key (istiod's cluster ID).
    pub key: String,
    /// The kubeconfig YAML. Holds a token: never log it.
    pub kubeconfig: SecretString,
}

/// Every context of `kubeconfigs` with the API server URL it names, as `(context,
/// server)`: how a cluster a link reaches is found among the user's contexts.
pub(crate) fn contexts_by_server(
    kubeconfigs: &mesh_kubeconfig::Kubeconfigs,
) -> Vec<(String, String)> {
    kubeconfigs
        .contexts()
        .into_iter()
        .filter_map(|c| Some((c.to_owned(), kubeconfigs.resolve(c).ok()?.server)))
        .collect()
}

/// The Secrets labelled `istio/multiCluster=true` in the primary's Istio namespace.
pub(crate) async fn remote_secrets(
    client: &Client,
    context: &str,
    ns: &str,
) -> Result<Vec<Secret>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&format!("{}=true", mesh_kubeconfig::MULTICLUSTER_LABEL));
    Ok(api
        .list(&lp)
        .await
        .map_err(|e| kube(context, format!("listing remote secrets in {ns}"), e))?
        .items)
}

/// Each data key of each secret, as a [`Link`].
pub(crate) fn links(secrets: &[Secret]) -> Vec<Link> {
    let mut out = Vec::new();
    for s in secrets {
        let name = s.metadata.name.clone().unwrap_or_default();
        for (key, value) in s.data.iter().flatten() {
            out.push(Link {
                secret: name.clone(),
                key: key.clone(),
                kubeconfig: SecretString::from(String::from_utf8_lossy(&value.0).into_owned()),
            });
        }
    }
    out
}

/// The token in key `key` of the remote secret `secret`, if that key holds a kubeconfig
/// with one.
pub(crate) fn link_token(secret: &Secret, key: &str) -> Option<SecretString> {
    links(std::slice::from_ref(secret))
        .into_iter()
        .find(|l| l.key == key)
        .and_then(|l| kubeconfig_token(&l.kubeconfig))
}

/// Two API server URLs name the same server once normalised ([`normalized_server`]).
pub(crate) fn same_server(a: &str, b: &str) -> bool {
    normalized_server(a) == normalized_server(b)
}

/// The API server URL a stored kubeconfig names, if it parses. It came from a cluster:
/// `from_yaml` refuses one that holds anything but inline credentials.
pub(crate) fn link_server(kubeconfig: &SecretString) -> Option<String> {
    let kc = mesh_kubeconfig::Kubeconfigs::from_yaml(kubeconfig.expose_secret()).ok()?;
    let context = kc.context_or_current(None).ok()?;
    Some(kc.resolve(&context).ok()?.server)
}

/// An API server URL as compared between kubeconfigs: scheme and host lowercased, the
/// scheme's default port made explicit, no user info, no trailing slash (a path, as a
/// proxy in front of several clusters has, is kept). A URL without a scheme is https, as
/// kubectl reads it.
pub(crate) fn normalized_server(url: &str) -> String {
    let url = url.trim();
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => ("https".to_owned(), url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
        .to_ascii_lowercase();
    let has_port = match host.rfind(']') {
        // [v6]:port
        Some(i) => host[i..].contains(':'),
        None => host.contains(':'),
    };
    let port = match (has_port, scheme.as_str()) {
        (false, "https") => ":443",
        (false, "http") => ":80",
        _ => "",
    };
    format!("{scheme}://{host}{port}{}", path.trim_end_matches('/'))
}

/// What tells which cluster a link reaches: the API server its kubeconfig names (none
/// when `from_yaml` refused the kubeconfig: nothing of it is used) and, when the cluster
/// was read, `kube-system`'s UID (what Istio itself tells clusters apart by).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Reach {
    /// The server URL, as the kubeconfig writes it.
    pub server: Option<String>,
    /// The UID of the cluster's `kube-system` namespace.
    pub kube_system_uid: Option<String>,
}

/// The links that reach one cluster, as groups of indexes into `reaches` (each group of
/// two or more, in order): links whose servers are the same once normalised
/// ([`normalized_server`]) or whose `kube-system` UIDs are the same, and so on
/// transitively. A link with neither is in no group.
pub(crate) fn same_cluster(reaches: &[Reach]) -> Vec<Vec<usize>> {
    // Union-find over "same server or same UID".
    let mut parent: Vec<usize> = (0..reaches.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let servers: Vec<Option<String>> = reaches
        .iter()
        .map(|r| r.server.as_deref().map(normalized_server))
        .collect();
    for i in 0..reaches.len() {
        for j in i + 1..reaches.len() {
            let same_server = servers[i].is_some() && servers[i] == servers[j];
            let uid = &reaches[i].kube_system_uid;
            let same_uid = uid.is_some() && *uid == reaches[j].kube_system_uid;
            if same_server || same_uid {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for i in 0..reaches.len() {
        let r = root(&mut parent, i);
        match groups.iter_mut().find(|g| g[0] == r) {
            Some(g) => g.push(i),
            None => groups.push(vec![i]),
        }
    }
    groups.retain(|g| g.len() > 1);
    groups
}

/// The bearer token of a kubeconfig's current (or only) user, if it has one.
///
/// The kubeconfig came from a cluster: `from_yaml` refuses one that holds anything but
/// inline credentials (a refused link has no token here; nothing of it is run or read).
pub(crate) fn kubeconfig_token(kubeconfig: &SecretString) -> Option<SecretString> {
    let kc = match mesh_kubeconfig::Kubeconfigs::from_yaml(kubeconfig.expose_secret()) {
        Ok(kc) => kc,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring a stored kubeconfig");
            return None;
        }
    };
    let user = kc
        .context_or_current(None)
        .ok()
        .and_then(|c| kc.resolve(&c).ok())
        .and_then(|r| r.user_name);
    kc.raw()
        .auth_infos
        .iter()
        .find(|u| user.is_none() || Some(&u.name) == user.as_ref())
        .and_then(|u| u.auth_info.as_ref())
        .and_then(|a| a.token.clone())
}

/// The ServiceAccount a ServiceAccount token was issued for, from its (unverified)
/// claims: namespace, name and UID. Legacy and bound tokens spell the UID differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenSubject {
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
}

/// A JWT's (unverified) claims; never logged.
pub(crate) fn token_claims(token: &SecretString) -> Option<serde_json::Value> {
    use base64::Engine as _;
    let payload = token.expose_secret().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The lifetime a token was issued with (`exp` − `iat` of its claims, read without
/// verifying them); `None` for a token without both (a token Secret's never expires).
pub(crate) fn token_lifetime(token: &SecretString) -> Option<std::time::Duration> {
    let claims = token_claims(token)?;
    let lifetime = claims["exp"].as_i64()? - claims["iat"].as_i64()?;
    u64::try_from(lifetime)
        .ok()
        .map(std::time::Duration::from_secs)
}

/// Whether a ServiceAccount token is a token Secret's (legacy claims, naming the Secret)
/// or a bound one from TokenRequest (the `kubernetes.io` claim), from its (unverified)
/// claims; `None` for anything else.
pub(crate) fn token_kind(token: &SecretString) -> Option<crate::status::TokenKind> {
    let claims = token_claims(token)?;
    if claims["kubernetes.io/serviceaccount/secret.name"].is_string() {
        Some(crate::status::TokenKind::TokenSecret)
    } else if claims["kubernetes.io"].is_object() {
        Some(crate::status::TokenKind::Bound)
    } else {
        None
    }
}

pub(crate) fn token_subject(token: &SecretString) -> Option<TokenSubject> {
    let claims = token_claims(token)?;
    let account = mesh_kubeconfig::ReaderAccount::from_username(claims["sub"].as_str()?)?;
    let uid = claims["kubernetes.io"]["serviceaccount"]["uid"]
        .as_str()
        .or_else(|| claims["kubernetes.io/serviceaccount/service-account.uid"].as_str())
        .map(str::to_owned);
    Some(TokenSubject {
        namespace: account.namespace,
        name: account.name,
        uid,
    })
}

/// Whether kubectl-mesh made the object: it carries the ownership label
/// `app.kubernetes.io/managed-by=kubectl-mesh`, which join sets only on what it creates.
/// kubectl-mesh's field manager alone proves nothing: an apply may have gone over an
/// object somebody else made.
pub(crate) fn managed_by_us(meta: &ObjectMeta) -> bool {
    let (key, value) = crate::cluster::MANAGED_BY_LABEL;
    meta.labels
        .as_ref()
        .is_some_and(|l| l.get(key).map(String::as_str) == Some(value))
}

/// The label and annotation keys under `metadata` that kubectl-mesh's field manager owns.
pub(crate) fn owned_metadata_keys(meta: &ObjectMeta, section: &str) -> Vec<String> {
    let mut keys = Vec::new();
    for m in meta.managed_fields.iter().flatten() {
        if m.manager.as_deref() != Some(FIELD_MANAGER) {
            continue;
        }
        let Some(fields) = &m.fields_v1 else { continue };
        if let Some(map) = fields.0["f:metadata"][format!("f:{section}")].as_object() {
            keys.extend(
                map.keys()
                    .filter_map(|k| k.strip_prefix("f:").map(str::to_owned)),
            );
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// Where a gateway Service can be reached, as its status and spec say now.
pub(crate) enum GatewayReach {
    /// Its LoadBalancer ip or hostname, else its first external IP, with its TLS port.
    Address(GatewayAddress),
    /// A NodePort Service: it never gets such an address (a node's address is used).
    NodePort,
    /// Neither yet (a LoadBalancer still pending), or no such Service.
    Pending,
}

/// Where the gateway Service can be reached now (no waiting): LoadBalancer ip or
/// hostname, else an external IP, with its TLS port. The one place that reads a gateway's
/// address (join waits on it, status shows it).
///
/// What a Service's status or spec says is written by others (a cloud controller,
/// anyone who may update status) and goes into meshNetworks and helm values: an address
/// that is not a host name or an IP is [`Error::Malformed`](crate::Error::Malformed).
pub(crate) async fn gateway_address_now(
    client: &Client,
    context: &str,
    ns: &str,
    gw: &GatewayService,
) -> Result<GatewayReach> {
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    let Some(svc) = api
        .get_opt(&gw.name)
        .await
        .map_err(|e| kube(context, format!("reading Service {ns}/{}", gw.name), e))?
    else {
        return Ok(GatewayReach::Pending);
    };
    let ingress = svc
        .status
        .and_then(|s| s.load_balancer)
        .and_then(|lb| lb.ingress)
        .and_then(|i| i.into_iter().next());
    let spec = svc.spec.unwrap_or_default();
    let host = ingress
        .and_then(|i| i.ip.or(i.hostname))
        .or_else(|| spec.external_ips.and_then(|ips| ips.into_iter().next()));
    match host {
        Some(host) => GatewayAddress::new(&host, gw.port)
            .map(GatewayReach::Address)
            .map_err(|e| gateway_malformed(context, &format!("Service {ns}/{}", gw.name), &e)),
        None if spec.type_.as_deref() == Some("NodePort") => Ok(GatewayReach::NodePort),
        None => Ok(GatewayReach::Pending),
    }
}

/// The error of an address `source` (a Service, a Node) gives that is no host and port.
pub(crate) fn gateway_malformed(context: &str, source: &str, e: &crate::Error) -> crate::Error {
    let why = match e {
        crate::Error::InvalidAddress { reason, .. } => reason.clone(),
        other => other.to_string(),
    };
    crate::Error::Malformed {
        cluster: context.to_owned(),
        object: source.to_owned(),
        reason: format!("the gateway address it gives {why}; give the gateway's address yourself"),
    }
}

/// Removes `keys` (and the cluster annotation when it names `cluster_name`) from a remote
/// Secret that holds other clusters too. A JSON merge patch touches only those keys
/// (whoever set them: the guide's `kubectl create secret` is not our field manager), and
/// it carries the `resourceVersion` read, so it is conditional: on 409 Conflict the
/// Secret is read again and the keys still there are removed from what it holds now
/// ([`cluster::retry_conflicts`], the loop under every conditional write).
pub(crate) async fn remove_keys(
    api: &Api<Secret>,
    ctx: &str,
    read: &Secret,
    keys: &[String],
    cluster_name: &str,
) -> Result<()> {
    let name = read.metadata.name.clone().unwrap_or_default();
    let ns = read.metadata.namespace.clone().unwrap_or_default();
    let object = format!("Secret {ns}/{name}");
    let first = Some(read.clone());
    crate::cluster::retry_conflicts(
        api,
        ctx,
        &object,
        &name,
        first,
        async |current: Option<Secret>| {
            let Some(current) = current else {
                return Ok(crate::cluster::Attempt::Done(())); // deleted meanwhile
            };
            let present: serde_json::Map<String, serde_json::Value> = keys
                .iter()
                .filter(|k| current.data.as_ref().is_some_and(|d| d.contains_key(*k)))
                .map(|k| (k.clone(), serde_json::Value::Null))
                .collect();
            let mut patch = serde_json::json!({
                "metadata": {"resourceVersion": current.metadata.resource_version},
                "data": present,
            });
            if annotated_for(&current, cluster_name) {
                // The Secret no longer holds that cluster: neither does its mark.
                patch["metadata"]["annotations"] =
                    serde_json::json!({ mesh_kubeconfig::CLUSTER_ANNOTATION: null });
            } else if present.is_empty() {
                return Ok(crate::cluster::Attempt::Done(())); // somebody else removed them meanwhile
            }
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => Ok(crate::cluster::Attempt::Done(())),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(crate::cluster::Attempt::Conflict),
                Err(e) => Err(kube(
                    ctx,
                    format!("removing key(s) {} from {object}", keys.join(", ")),
                    e,
                )),
            }
        },
    )
    .await
}

pub(crate) fn annotated_for(secret: &Secret, name: &str) -> bool {
    secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(mesh_kubeconfig::CLUSTER_ANNOTATION))
        .is_some_and(|v| v == name)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64::Engine as _;

    /// An unsigned JWT with `claims`, as a ServiceAccount token's payload reads.
    pub(crate) fn jwt(claims: serde_json::Value) -> SecretString {
        let b = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        SecretString::from(format!(
            "{}.{}.sig",
            b(br#"{"alg":"RS256"}"#),
            b(claims.to_string().as_bytes())
        ))
    }

    #[test]
    fn a_tokens_lifetime_is_its_expiry_less_its_issue_time() {
        let bound = jwt(serde_json::json!({"iat": 1000, "exp": 4600}));
        assert_eq!(
            token_lifetime(&bound),
            Some(std::time::Duration::from_secs(3600))
        );
        let legacy = jwt(serde_json::json!({"kubernetes.io/serviceaccount/secret.name": "t"}));
        assert_eq!(token_lifetime(&legacy), None);
        let backwards = jwt(serde_json::json!({"iat": 10, "exp": 5}));
        assert_eq!(token_lifetime(&backwards), None);
    }

    #[test]
    fn token_subjects_of_legacy_and_bound_tokens() {
        let legacy = jwt(serde_json::json!({
            "sub": "system:serviceaccount:istio-system:reader",
            "kubernetes.io/serviceaccount/service-account.uid": "u1",
        }));
        assert_eq!(
            token_subject(&legacy),
            Some(TokenSubject {
                namespace: "istio-system".into(),
                name: "reader".into(),
                uid: Some("u1".into())
            })
        );
        let bound = jwt(serde_json::json!({
            "sub": "system:serviceaccount:ns:sa",
            "kubernetes.io": {"serviceaccount": {"uid": "u2"}},
        }));
        assert_eq!(token_subject(&bound).unwrap().uid.as_deref(), Some("u2"));
        assert!(token_subject(&jwt(serde_json::json!({"sub": "alice"}))).is_none());
        // A token Secret's token names its Secret; a TokenRequest token is bound.
        use crate::status::TokenKind;
        let legacy_secret = jwt(serde_json::json!({
            "sub": "system:serviceaccount:istio-system:reader",
            "kubernetes.io/serviceaccount/secret.name": "reader-token",
        }));
        assert_eq!(token_kind(&legacy_secret), Some(TokenKind::TokenSecret));
        assert_eq!(token_kind(&bound), Some(TokenKind::Bound));
        assert_eq!(token_kind(&jwt(serde_json::json!({"sub": "alice"}))), None);
        assert_eq!(token_kind(&SecretString::from("opaque-token")), None);
        assert!(token_subject(&SecretString::from("opaque-token")).is_none());
    }

    #[test]
    fn owned_keys_come_from_our_field_manager_only() {
        let meta: ObjectMeta = serde_json::from_value(serde_json::json!({
            "name": "istio-system",
            "managedFields": [
                {"manager": "kubectl-mesh", "operation": "Apply", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:labels": {"f:topology.istio.io/network": {}},
                                             "f:annotations": {"f:topology.istio.io/controlPlaneClusters": {}}}}},
                {"manager": "kubectl-label", "operation": "Update", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:labels": {"f:team": {}}}}}
            ]
        }))
        .unwrap();
        assert_eq!(
            owned_metadata_keys(&meta, "labels"),
            ["topology.istio.io/network"]
        );
        assert_eq!(
            owned_metadata_keys(&meta, "annotations"),
            ["topology.istio.io/controlPlaneClusters"]
        );
        // Our field manager alone does not make an object ours: only the label does.
        assert!(!managed_by_us(&meta));
        assert!(!managed_by_us(&ObjectMeta::default()));
        let labelled = ObjectMeta {
            labels: Some(crate::cluster::names::owned_labels()),
            ..ObjectMeta::default()
        };
        assert!(managed_by_us(&labelled));
    }

    #[test]
    fn servers_normalise_to_scheme_host_and_port() {
        for (a, b) in [
            ("https://127.0.2.1:6443/", "https://127.0.2.1:6443"),
            ("HTTPS://API.Example.COM", "https://api.example.com:443"),
            ("api.example.com:6443", "https://api.example.com:6443"),
            ("http://h", "http://h:80"),
            ("https://[FD00::1]", "https://[fd00::1]:443"),
            (
                "https://proxy/k8s/clusters/c-1/",
                "https://proxy:443/k8s/clusters/c-1",
            ),
        ] {
            assert_eq!(normalized_server(a), normalized_server(b), "{a} vs {b}");
        }
        for (a, b) in [
            ("https://127.0.2.1:6443", "https://127.0.1.1:6443"),
            ("https://h:6443", "https://h:443"),
            ("https://h", "http://h"),
            (
                "https://proxy/k8s/clusters/c-1",
                "https://proxy/k8s/clusters/c-2",
            ),
        ] {
            assert_ne!(normalized_server(a), normalized_server(b), "{a} vs {b}");
        }
        assert_eq!(
            normalized_server("https://127.0.2.1:6443/"),
            "https://127.0.2.1:6443"
        );
    }

    /// A link's [`Reach`] as status builds it: the server of a kubeconfig `from_yaml`
    /// accepts, and the UID read from the cluster.
    fn reach(server: &str, exec: bool, uid: Option<&str>) -> Reach {
        let user = if exec {
            "exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh}"
        } else {
            "token: t"
        };
        let yaml = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: c\n  cluster: {{server: '{server}'}}\nusers:\n- name: u\n  user: {{{user}}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\n"
        );
        let kc = mesh_kubeconfig::Kubeconfigs::from_yaml(&yaml);
        assert_eq!(
            matches!(kc, Err(mesh_kubeconfig::Error::UntrustedKubeconfig { .. })),
            exec,
            "only the exec plugin is refused"
        );
        let server = kc
            .ok()
            .and_then(|kc| kc.resolve(&kc.context_or_current(None).ok()?).ok())
            .map(|r| r.server);
        Reach {
            server,
            kube_system_uid: uid.map(str::to_owned),
        }
    }

    #[test]
    fn links_reach_one_cluster_by_server_or_by_kube_system_uid() {
        let s1 = "https://127.0.2.1:6443";
        let s1_written_otherwise = "https://127.0.2.1:6443/";
        let s1_by_name = "https://cluster2.example:6443";
        let s2 = "https://127.0.3.1:6443";
        type Groups = Vec<Vec<usize>>;
        let cases: &[(&str, Vec<Reach>, Groups)] = &[
            (
                "same server, written differently, cluster not read",
                vec![
                    reach(s1, false, None),
                    reach(s1_written_otherwise, false, None),
                ],
                vec![vec![0, 1]],
            ),
            (
                "same kube-system UID through two servers",
                vec![
                    reach(s1, false, Some("u1")),
                    reach(s1_by_name, false, Some("u1")),
                ],
                vec![vec![0, 1]],
            ),
            (
                "different clusters",
                vec![reach(s1, false, Some("u1")), reach(s2, false, Some("u2"))],
                vec![],
            ),
            (
                "a refused kubeconfig naming the same server is not used",
                vec![reach(s1, false, Some("u1")), reach(s1, true, None)],
                vec![],
            ),
            (
                "transitively: by server, then by UID; another cluster stays out",
                vec![
                    reach(s1, false, None),
                    reach(s2, false, Some("u2")),
                    reach(s1_written_otherwise, false, Some("u1")),
                    reach(s1_by_name, false, Some("u1")),
                ],
                vec![vec![0, 2, 3]],
            ),
            (
                "nothing known",
                vec![Reach::default(), Reach::default()],
                vec![],
            ),
        ];
        for (what, reaches, groups) in cases {
            assert_eq!(same_cluster(reaches), *groups, "{what}");
        }
    }

    #[test]
    fn links_are_one_per_data_key() {
        let s: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "istio-remote-secret-a"},
            "data": {"a": "YQ==", "b": "Yg=="}
        }))
        .unwrap();
        let l = links(&[s]);
        assert_eq!(
            l.iter().map(|l| l.key.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(l[1].kubeconfig.expose_secret(), "b");
    }
}
