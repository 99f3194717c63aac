//! Generating a root CA and one intermediate CA per cluster, as Istio's
//! `tools/certs` does.
//!
//! Layout written by [`write_layout`] (the same as `make -f
//! tools/certs/Makefile.selfsigned.mk root-ca NAME-cacerts`):
//!
//! ```text
//! DIR/root-cert.pem            the root certificate
//! DIR/root-key.pem             the root key (0600)
//! DIR/NAME/ca-cert.pem         the intermediate of cluster NAME
//! DIR/NAME/ca-key.pem          its key (0600)
//! DIR/NAME/root-cert.pem       a copy of the root certificate
//! DIR/NAME/cert-chain.pem      intermediate, then root
//! ```
//!
//! Defaults follow `tools/certs`: root `O=Istio, CN=Root CA` for 10 years;
//! intermediates `O=Istio, CN=Intermediate CA, L=NAME` for 2 years with
//! `pathlen:0` and the SAN `DNS:istiod.istio-system.svc`. Unlike `tools/certs`
//! (4096-bit RSA), keys are ECDSA P-256 unless RSA is asked for.
//!
//! ```
//! use mesh_certs::generate::{IntermediateOptions, RootCa, RootOptions};
//! use mesh_certs::ValidationOptions;
//!
//! let root = RootCa::generate(&RootOptions::default())?;
//! let cluster1 = root.issue_intermediate("cluster1", &IntermediateOptions::default())?;
//! let report = cluster1.to_bundle().validate(&ValidationOptions::default());
//! assert!(report.is_valid(), "{:?}", report.findings);
//! # Ok::<(), mesh_certs::Error>(())
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber, SignatureAlgorithm,
};
use rustls_pki_types::pem::SectionKind;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::key::{self, Curve, PublicPart};
use crate::{BundleFiles, CaBundle, Error};

const DAY: u64 = 24 * 60 * 60;

/// The kind of key to generate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256 signatures (the default).
    #[default]
    EcdsaP256,
    /// 2048-bit RSA with SHA-256 signatures.
    Rsa2048,
    /// 4096-bit RSA with SHA-256 signatures (what Istio's `tools/certs` uses).
    Rsa4096,
}

impl KeyType {
    fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa2048 | KeyType::Rsa4096)
    }
}

/// Options for [`RootCa::generate`]; defaults follow Istio's `tools/certs`.
#[derive(Debug, Clone)]
pub struct RootOptions {
    /// Key type (default ECDSA P-256).
    pub key_type: KeyType,
    /// Validity (default 3650 days).
    pub validity: Duration,
    /// Subject O (default `Istio`).
    pub organization: String,
    /// Subject CN (default `Root CA`).
    pub common_name: String,
}

impl Default for RootOptions {
    fn default() -> Self {
        RootOptions {
            key_type: KeyType::default(),
            validity: Duration::from_secs(3650 * DAY),
            organization: "Istio".into(),
            common_name: "Root CA".into(),
        }
    }
}

/// Options for [`RootCa::issue_intermediate`]; defaults follow Istio's `tools/certs`.
#[derive(Debug, Clone)]
pub struct IntermediateOptions {
    /// Key type (default ECDSA P-256).
    pub key_type: KeyType,
    /// Validity (default 730 days).
    pub validity: Duration,
    /// Subject O (default `Istio`).
    pub organization: String,
    /// Subject CN (default `Intermediate CA`); L is the cluster name.
    pub common_name: String,
    /// DNS subject alternative name (default `istiod.istio-system.svc`).
    pub san_dns: String,
}

impl Default for IntermediateOptions {
    fn default() -> Self {
        IntermediateOptions {
            key_type: KeyType::default(),
            validity: Duration::from_secs(730 * DAY),
            organization: "Istio".into(),
            common_name: "Intermediate CA".into(),
            san_dns: "istiod.istio-system.svc".into(),
        }
    }
}

/// A root CA that can issue per-cluster intermediates.
pub struct RootCa {
    cert_pem: String,
    cert_der: Vec<u8>,
    key_pem: SecretString,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for RootCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootCa")
            .field("fingerprint", &self.fingerprint())
            .field("key", &"[REDACTED]")
            .finish()
    }
}

fn generate_key(key_type: KeyType) -> Result<KeyPair, Error> {
    match key_type {
        KeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| Error::generation("an ECDSA P-256 key", e)),
        KeyType::Rsa2048 | KeyType::Rsa4096 => {
            use rsa::pkcs8::EncodePrivateKey;
            let bits = if key_type == KeyType::Rsa2048 {
                2048
            } else {
                4096
            };
            let what = format!("a {bits}-bit RSA key");
            // ring (our only signing provider) cannot generate RSA keys; the
            // `rsa` crate generates it, ring loads and signs with it.
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
                .map_err(|e| Error::generation(what.clone(), e))?;
            let pkcs8 = key
                .to_pkcs8_der()
                .map_err(|e| Error::generation(what.clone(), e))?;
            KeyPair::from_pkcs8_der_and_sign_algo(
                &PrivatePkcs8KeyDer::from(pkcs8.as_bytes()),
                &rcgen::PKCS_RSA_SHA256,
            )
            .map_err(|e| Error::generation(what, e))
        }
    }
}

fn serial() -> Result<SerialNumber, Error> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::generation("a serial number", "no randomness available"))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

fn validity(params: &mut CertificateParams, validity: Duration) -> Result<(), Error> {
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .map_err(|e| Error::generation("a validity period", e))?;
    params.not_before = now;
    params.not_after = now + validity;
    Ok(())
}

fn usages(key_type: KeyType) -> Vec<KeyUsagePurpose> {
    let mut usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    if key_type.is_rsa() {
        usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    usages
}

impl RootCa {
    /// Generates a new self-signed root CA.
    pub fn generate(options: &RootOptions) -> Result<RootCa, Error> {
        let key = generate_key(options.key_type)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, options.organization.as_str());
        dn.push(DnType::CommonName, options.common_name.as_str());
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = usages(options.key_type);
        params.serial_number = Some(serial()?);
        validity(&mut params, options.validity)?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| Error::generation("the root certificate", e))?;
        tracing::info!(key = ?options.key_type, "generated a root CA");
        let key_pem = SecretString::from(key.serialize_pem());
        Ok(RootCa {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads `root-cert.pem` and `root-key.pem` from `dir` (the layout
    /// [`write_layout`] and Istio's `tools/certs` write), to issue intermediates
    /// for more clusters under the same root.
    pub fn load(dir: &Path) -> Result<RootCa, Error> {
        let cert_path = dir.join("root-cert.pem");
        let key_path = dir.join("root-key.pem");
        let read = |path: &Path| {
            crate::files::read_bounded(path)?
                .ok_or_else(|| Error::io(path, std::io::Error::from(std::io::ErrorKind::NotFound)))
        };
        let cert = read(&cert_path)?;
        let key = SecretSlice::from(read(&key_path)?);
        RootCa::from_pem(&cert, &key).map_err(|e| match e {
            Error::InvalidCertificate { reason, .. } => Error::InvalidCertificate {
                what: cert_path.display().to_string(),
                reason,
            },
            Error::InvalidKey { reason, .. } => Error::InvalidKey {
                what: key_path.display().to_string(),
                reason,
            },
            other => other,
        })
    }

    /// A root CA from its certificate and key (PEM; the key as PKCS#1, SEC1 or PKCS#8).
    pub fn from_pem(cert_pem: &[u8], key_pem: &SecretSlice<u8>) -> Result<RootCa, Error> {
        let bad_cert = |reason: String| Error::InvalidCertificate {
            what: "root-cert.pem".into(),
            reason,
        };
        let bad_key = |reason: String| Error::InvalidKey {
            what: "root-key.pem".into(),
            reason,
        };
        let blocks = crate::pem::blocks(cert_pem).map_err(|p| bad_cert(p.describe("the file")))?;
        let der = blocks
            .into_iter()
            .find(|b| b.kind == SectionKind::Certificate)
            .ok_or_else(|| bad_cert("holds no certificate".into()))?
            .der;
        let (_, x509) = X509Certificate::from_der(&der)
            .map_err(|e| bad_cert(format!("not a valid certificate: {e}")))?;
        if !x509.is_ca() {
            return Err(bad_cert("is not a CA certificate".into()));
        }
        let key_blocks = crate::pem::blocks(key_pem.expose_secret())
            .map_err(|p| bad_key(p.describe("the file")))?;
        let block = key_blocks
            .into_iter()
            .find(|b| crate::pem::is_private_key(b.kind))
            .ok_or_else(|| bad_key("holds no private key".into()))?;
        let parsed = key::parse(block.kind, &block.der).map_err(|e| {
            bad_key(match e {
                key::KeyError::Unsupported(w) | key::KeyError::Malformed(w) => w,
            })
        })?;
        let alg: &'static SignatureAlgorithm = match parsed.public {
            PublicPart::Rsa { .. } => &rcgen::PKCS_RSA_SHA256,
            PublicPart::Ec {
                curve: Curve::P256, ..
            } => &rcgen::PKCS_ECDSA_P256_SHA256,
            PublicPart::Ec {
                curve: Curve::P384, ..
            } => &rcgen::PKCS_ECDSA_P384_SHA384,
            PublicPart::Ec { curve, .. } => {
                return Err(bad_key(format!("{} keys cannot sign here", curve.name())));
            }
        };
        let key_pair = KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(parsed.pkcs8.expose_secret()),
            alg,
        )
        .map_err(|e| bad_key(format!("unusable key: {e}")))?;
        if key_pair.public_key_raw() != x509.public_key().subject_public_key.data.as_ref() {
            return Err(bad_key("does not match root-cert.pem".into()));
        }
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(der.as_slice()), key_pair)
            .map_err(|e| bad_cert(format!("cannot issue from it: {e}")))?;
        let cert_pem = String::from_utf8_lossy(cert_pem).into_owned();
        // Keep only the first certificate, normalised.
        let cert_pem = if cert_pem.matches("-----BEGIN CERTIFICATE-----").count() == 1 {
            cert_pem
        } else {
            pem_encode_cert(&der)
        };
        Ok(RootCa {
            cert_pem,
            cert_der: der,
            key_pem: SecretString::from(
                String::from_utf8_lossy(key_pem.expose_secret()).into_owned(),
            ),
            issuer,
        })
    }

    /// The root certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The root key, PEM.
    pub fn key_pem(&self) -> &SecretString {
        &self.key_pem
    }

    /// SHA-256 fingerprint (lowercase hex) of the root certificate.
    pub fn fingerprint(&self) -> String {
        crate::roots::fingerprint(&self.cert_der)
    }

    /// Issues the intermediate CA of cluster `name`.
    pub fn issue_intermediate(
        &self,
        name: &str,
        options: &IntermediateOptions,
    ) -> Result<IntermediateCa, Error> {
        validate_name(name)?;
        let key = generate_key(options.key_type)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, options.organization.as_str());
        dn.push(DnType::CommonName, options.common_name.as_str());
        dn.push(DnType::LocalityName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = usages(options.key_type);
        params.subject_alt_names = vec![SanType::DnsName(
            options
                .san_dns
                .as_str()
                .try_into()
                .map_err(|e| Error::generation("the intermediate's DNS name", e))?,
        )];
        params.serial_number = Some(serial()?);
        validity(&mut params, options.validity)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| Error::generation(format!("the intermediate of {name}"), e))?;
        tracing::info!(cluster = name, key = ?options.key_type, "issued an intermediate CA");
        let cert_pem = cert.pem();
        Ok(IntermediateCa {
            name: name.to_owned(),
            cert_chain_pem: format!("{cert_pem}{}", ensure_newline(&self.cert_pem)),
            cert_pem,
            key_pem: SecretString::from(key.serialize_pem()),
            root_cert_pem: ensure_newline(&self.cert_pem),
        })
    }
}

fn ensure_newline(s: &str) -> String {
    if s.ends_with('\n') {
        s.to_owned()
    } else {
        format!("{s}\n")
    }
}

fn pem_encode_cert(der: &[u8]) -> String {
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    let b64 = base64_encode(der);
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Cluster names become directory names and the subject's L: keep them simple.
fn validate_name(name: &str) -> Result<(), Error> {
    let bad = |reason: &str| Error::InvalidName {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.len() > 253 {
        return Err(bad("it is longer than 253 characters"));
    }
    if name.starts_with('.') || name.starts_with('-') {
        return Err(bad("it must not start with '.' or '-'"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(bad("use only letters, digits, '-', '_' and '.'"));
    }
    Ok(())
}

/// Checks a cluster name the way [`RootCa::issue_intermediate`] does.
pub fn check_cluster_name(name: &str) -> Result<(), Error> {
    validate_name(name)
}

/// The intermediate CA of one cluster: the four files of its `cacerts` bundle.
pub struct IntermediateCa {
    name: String,
    cert_pem: String,
    key_pem: SecretString,
    root_cert_pem: String,
    cert_chain_pem: String,
}

impl std::fmt::Debug for IntermediateCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntermediateCa")
            .field("name", &self.name)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

impl IntermediateCa {
    /// The cluster name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ca-cert.pem`.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// `ca-key.pem`.
    pub fn key_pem(&self) -> &SecretString {
        &self.key_pem
    }

    /// `root-cert.pem`.
    pub fn root_cert_pem(&self) -> &str {
        &self.root_cert_pem
    }

    /// `cert-chain.pem`: the intermediate, then the root.
    pub fn cert_chain_pem(&self) -> &str {
        &self.cert_chain_pem
    }

    /// The four files as bytes.
    pub fn files(&self) -> BundleFiles {
        BundleFiles {
            ca_cert: Some(self.cert_pem.as_bytes().to_vec()),
            ca_key: Some(SecretSlice::from(
                self.key_pem.expose_secret().as_bytes().to_vec(),
            )),
            root_cert: Some(self.root_cert_pem.as_bytes().to_vec()),
            cert_chain: Some(self.cert_chain_pem.as_bytes().to_vec()),
        }
    }

    /// The bundle, in memory, e.g. to validate it or to create a `cacerts` Secret.
    pub fn to_bundle(&self) -> CaBundle {
        CaBundle::from_pem(self.files())
    }
}

/// Options for [`write_layout`].
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteOptions {
    /// Replace files that exist with different content (root and intermediates).
    /// Without it, nothing is written when any such file exists.
    pub overwrite: bool,
}

/// Writes the root and the intermediates in Istio's `tools/certs` layout (see
/// the [module documentation](self)); keys are written with mode 0600. Each file is
/// written to a temporary file created exclusively next to it and then moved into
/// place, so a write never goes through a symlink and never replaces a file another
/// process created after the check below.
///
/// Existing files with identical content are left alone (so a root loaded with
/// [`RootCa::load`] from `out_dir` is reused). Any other existing file is an
/// [`Error::AlreadyExists`] unless `options.overwrite`; the check happens
/// before anything is written.
///
/// ```no_run
/// use std::path::Path;
/// use mesh_certs::generate::{write_layout, IntermediateOptions, RootCa, WriteOptions};
///
/// // Add a third cluster under the root created earlier.
/// let out = Path::new("certs");
/// let root = RootCa::load(out)?;
/// let cluster3 = root.issue_intermediate("cluster3", &IntermediateOptions::default())?;
/// write_layout(out, &root, &[cluster3], WriteOptions::default())?;
/// # Ok::<(), mesh_certs::Error>(())
/// ```
pub fn write_layout(
    out_dir: &Path,
    root: &RootCa,
    intermediates: &[IntermediateCa],
    options: WriteOptions,
) -> Result<(), Error> {
    struct Target<'a> {
        path: PathBuf,
        bytes: &'a [u8],
        secret: bool,
    }
    let mut targets = vec![
        Target {
            path: out_dir.join("root-cert.pem"),
            bytes: root.cert_pem.as_bytes(),
            secret: false,
        },
        Target {
            path: out_dir.join("root-key.pem"),
            bytes: root.key_pem.expose_secret().as_bytes(),
            secret: true,
        },
    ];
    for ica in intermediates {
        validate_name(&ica.name)?;
        let dir = out_dir.join(&ica.name);
        targets.extend([
            Target {
                path: dir.join("ca-cert.pem"),
                bytes: ica.cert_pem.as_bytes(),
                secret: false,
            },
            Target {
                path: dir.join("ca-key.pem"),
                bytes: ica.key_pem.expose_secret().as_bytes(),
                secret: true,
            },
            Target {
                path: dir.join("root-cert.pem"),
                bytes: ica.root_cert_pem.as_bytes(),
                secret: false,
            },
            Target {
                path: dir.join("cert-chain.pem"),
                bytes: ica.cert_chain_pem.as_bytes(),
                secret: false,
            },
        ]);
    }
    // Decide everything before writing anything.
    let mut to_write = Vec::new();
    for target in &targets {
        match std::fs::symlink_metadata(&target.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => to_write.push((target, false)),
            Err(e) => return Err(Error::io(&target.path, e)),
            Ok(_) => match crate::files::read_bounded(&target.path) {
                Ok(Some(existing)) if existing == target.bytes => {
                    tracing::debug!(path = %target.path.display(), "unchanged");
                }
                // Different, unreadable, a dangling symlink, a device: all "something else
                // is there", replaced (the name, never a symlink's target) only when asked.
                _ if !options.overwrite => {
                    return Err(Error::AlreadyExists {
                        path: target.path.clone(),
                    });
                }
                _ => to_write.push((target, true)),
            },
        }
    }
    for (target, replace) in to_write {
        if let Some(parent) = target.path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        // A file that did not exist a moment ago is created without replacing anything
        // another process may have put there since.
        crate::files::write_atomic(&target.path, target.bytes, target.secret, replace)?;
        tracing::info!(path = %target.path.display(), "wrote");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_encoding_round_trips() {
        for len in [1usize, 2, 3, 4, 100, 1000] {
            let der: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let pem = pem_encode_cert(&der);
            let blocks = crate::pem::blocks(pem.as_bytes()).expect("valid PEM");
            assert_eq!(blocks[0].der, der);
        }
    }

    #[test]
    fn rejects_names_that_are_not_simple() {
        for bad in ["", "../x", "a/b", ".hidden", "-x", "a b"] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["cluster1", "us-east.prod", "c_2"] {
            validate_name(good).expect(good);
        }
    }
}
