//! Choosing the certificate authority that validates the server the primary will use.

use std::time::Duration;

use kube::Config;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use crate::kubeconfig::{client_from_config, validate_server};
use crate::{Error, Result, Warning};

/// Where a CA came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaOrigin {
    /// `ca.crt` of the ServiceAccount token Secret.
    TokenSecret,
    /// The `kube-root-ca.crt` ConfigMap of the namespace.
    RootCaConfigMap,
    /// The cluster entry of the kubeconfig.
    Kubeconfig,
    /// A file the user gave (`--certificate-authority`).
    Given,
}

impl std::fmt::Display for CaOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CaOrigin::TokenSecret => "the token Secret's ca.crt",
            CaOrigin::RootCaConfigMap => "the kube-root-ca.crt ConfigMap",
            CaOrigin::Kubeconfig => "the kubeconfig's cluster CA",
            CaOrigin::Given => "the given CA file",
        })
    }
}

/// One CA to consider, in order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCandidate {
    /// Where it came from.
    pub origin: CaOrigin,
    /// PEM certificates.
    pub pem: Vec<u8>,
}

/// The CA chosen for the remote kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaChoice {
    /// Where it came from.
    pub origin: CaOrigin,
    /// PEM certificates.
    pub pem: Vec<u8>,
    /// Whether a TLS handshake with the server succeeded with it.
    pub validated: bool,
    /// Whether there were several different CAs to choose from.
    pub had_alternatives: bool,
}

enum Probe {
    Valid,
    Rejected(String),
    Unreachable(String),
}

/// Picks the first candidate (in the order given) whose certificates validate `server`,
/// by a TLS handshake and an anonymous `GET /version` (any HTTP answer, even 401,
/// proves the handshake succeeded).
///
/// When the server cannot be reached from here (it may be reachable only from the
/// primary), the first candidate the server has not rejected is used and a
/// [`Warning::CaNotValidated`] says so: a CA a probe rejected is never chosen, even when
/// a later probe cannot reach the server. When it is reachable and no candidate
/// validates it, that is an error.
pub async fn choose_ca(
    server: &str,
    tls_server_name: Option<&str>,
    candidates: &[CaCandidate],
    timeout: Duration,
) -> Result<(CaChoice, Vec<Warning>)> {
    let mut unique: Vec<&CaCandidate> = Vec::new();
    for c in candidates {
        if c.pem.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if !unique.iter().any(|u| same_certs(&u.pem, &c.pem)) {
            unique.push(c);
        }
    }
    if unique.is_empty() {
        return Err(Error::NoCertificateAuthority {
            server: server.to_owned(),
            reason: "neither the token Secret, the kube-root-ca.crt ConfigMap nor the kubeconfig holds one".into(),
        });
    }
    let had_alternatives = unique.len() > 1;
    let mut rejected = Vec::new();
    for c in &unique {
        match probe(server, tls_server_name, &c.pem, timeout).await {
            Probe::Valid => {
                tracing::info!(server, origin = %c.origin, "CA validates the server");
                return Ok((
                    CaChoice {
                        origin: c.origin,
                        pem: c.pem.clone(),
                        validated: true,
                        had_alternatives,
                    },
                    Vec::new(),
                ));
            }
            Probe::Rejected(reason) => {
                tracing::info!(server, origin = %c.origin, %reason, "CA does not validate the server");
                rejected.push(format!("{} ({reason})", c.origin));
            }
            Probe::Unreachable(reason) => {
                // Every candidate before this one was rejected by the server (else we
                // would have returned): this is the first one not known to be wrong.
                // A CA the server rejected is never chosen.
                tracing::info!(server, %reason, origin = %c.origin, "server not reachable from here; CA unchecked");
                let warning = Warning::CaNotValidated {
                    server: server.to_owned(),
                    origin: c.origin.to_string(),
                    reason,
                };
                return Ok((
                    CaChoice {
                        origin: c.origin,
                        pem: c.pem.clone(),
                        validated: false,
                        had_alternatives,
                    },
                    vec![warning],
                ));
            }
        }
    }
    Err(Error::NoCertificateAuthority {
        server: server.to_owned(),
        reason: format!(
            "no CA validates its certificate: {}; check the server URL (and the TLS server name)",
            rejected.join("; ")
        ),
    })
}

fn certs_of(pem: &[u8]) -> Vec<Vec<u8>> {
    CertificateDer::pem_slice_iter(pem)
        .filter_map(std::result::Result::ok)
        .map(|c| c.as_ref().to_vec())
        .collect()
}

fn same_certs(a: &[u8], b: &[u8]) -> bool {
    let (ca, cb) = (certs_of(a), certs_of(b));
    if ca.is_empty() && cb.is_empty() {
        a == b
    } else {
        ca == cb
    }
}

async fn probe(
    server: &str,
    tls_server_name: Option<&str>,
    pem: &[u8],
    timeout: Duration,
) -> Probe {
    let certs = certs_of(pem);
    if certs.is_empty() {
        return Probe::Rejected("it holds no PEM certificate".into());
    }
    let uri = match validate_server(server) {
        Ok(uri) => uri,
        Err(reason) => return Probe::Rejected(reason),
    };
    let mut config = Config::new(uri);
    config.root_cert = Some(certs);
    config.tls_server_name = tls_server_name.map(str::to_owned);
    config.default_retry = false;
    let client = match client_from_config(config, Some(timeout)) {
        Ok(c) => c,
        Err(e) => return Probe::Rejected(crate::error::error_chain(&e)),
    };
    match tokio::time::timeout(timeout, client.apiserver_version()).await {
        Err(_) => Probe::Unreachable(format!("no answer within {}s", timeout.as_secs())),
        Ok(Ok(_)) | Ok(Err(kube::Error::Api(_))) => Probe::Valid,
        Ok(Err(e)) => {
            if is_tls_error(&e) {
                Probe::Rejected(crate::error::error_chain(&e))
            } else {
                Probe::Unreachable(crate::error::error_chain(&e))
            }
        }
    }
}

/// Whether a certificate (or other TLS) error is somewhere in the chain. The connector
/// nests `io::Error`s (`Other` around `InvalidData` around the `rustls::Error`), and
/// `io::Error::source` skips the error it wraps, so each one is opened with `get_ref`.
fn is_tls_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        cur = match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_candidate_is_an_error_naming_the_server() {
        let err = choose_ca("https://10.0.0.1:6443", None, &[], Duration::from_secs(1))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("https://10.0.0.1:6443"), "{err}");
    }

    /// A TLS server on loopback that answers one handshake with a certificate of its own
    /// and then goes away: a probe with another CA is rejected, every later probe finds
    /// nothing listening.
    fn tls_server_once() -> (std::net::SocketAddr, Vec<u8>, std::thread::JoinHandle<()>) {
        use std::sync::Arc;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
        .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (mut tcp, _) = listener.accept().unwrap();
            drop(listener);
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut tls = rustls::ServerConnection::new(Arc::new(config)).unwrap();
            while tls.is_handshaking() {
                if tls.complete_io(&mut tcp).is_err() {
                    break;
                }
            }
        });
        (addr, cert.pem().into_bytes(), handle)
    }

    #[tokio::test]
    async fn a_rejected_ca_is_never_chosen_when_a_later_probe_cannot_connect() {
        let (addr, server_ca, server) = tls_server_once();
        let other_key = rcgen::KeyPair::generate().unwrap();
        let other_ca = rcgen::CertificateParams::new(vec!["elsewhere".to_owned()])
            .unwrap()
            .self_signed(&other_key)
            .unwrap()
            .pem()
            .into_bytes();
        let candidates = [
            CaCandidate {
                origin: CaOrigin::TokenSecret,
                pem: other_ca,
            },
            CaCandidate {
                origin: CaOrigin::Kubeconfig,
                pem: server_ca.clone(),
            },
        ];
        let (choice, warnings) = choose_ca(
            &format!("https://{addr}"),
            None,
            &candidates,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        server.join().unwrap();
        assert_eq!(
            choice.origin,
            CaOrigin::Kubeconfig,
            "the token Secret's CA was rejected by the server: {warnings:?}"
        );
        assert_eq!(choice.pem, server_ca);
        assert!(!choice.validated);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].to_string().contains("kubeconfig's cluster CA"),
            "{}",
            warnings[0]
        );
    }

    #[tokio::test]
    async fn unreachable_server_falls_back_to_the_first_candidate_with_a_warning() {
        // Port 1 on loopback: connection refused at once.
        let pem = include_bytes!("../tests/data/ca.pem").to_vec();
        let candidates = [
            CaCandidate {
                origin: CaOrigin::TokenSecret,
                pem: pem.clone(),
            },
            CaCandidate {
                origin: CaOrigin::Kubeconfig,
                pem,
            },
        ];
        let (choice, warnings) = choose_ca(
            "https://127.0.0.1:1",
            None,
            &candidates,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(choice.origin, CaOrigin::TokenSecret);
        assert!(!choice.validated);
        assert!(!choice.had_alternatives, "identical CAs are one candidate");
        assert_eq!(warnings.len(), 1);
    }
}
