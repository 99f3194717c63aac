//! Test helpers: build CA hierarchies with rcgen, in memory.
#![allow(dead_code)]

use base64::Engine;
use mesh_certs::{BundleFiles, SecretSlice};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::PrivatePkcs8KeyDer;

/// A CA (or leaf) with its parameters, key and certificate.
pub struct Ca {
    pub params: CertificateParams,
    pub key: KeyPair,
    pub cert: Certificate,
}

impl Ca {
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    pub fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    pub fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }
}

pub fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Istio");
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::CrlSign,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(365);
    params
}

pub fn ec_key() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

/// An RSA key of `bits` bits (generated with the `rsa` crate; ring cannot).
pub fn rsa_private(bits: usize) -> rsa::RsaPrivateKey {
    rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits).unwrap()
}

pub fn rsa_key(private: &rsa::RsaPrivateKey) -> KeyPair {
    use rsa::pkcs8::EncodePrivateKey;
    let der = private.to_pkcs8_der().unwrap();
    KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(der.as_bytes()),
        &rcgen::PKCS_RSA_SHA256,
    )
    .unwrap()
}

/// A self-signed root.
pub fn root(cn: &str) -> Ca {
    root_with(cn, ec_key(), |_| {})
}

pub fn root_with(cn: &str, key: KeyPair, edit: impl FnOnce(&mut CertificateParams)) -> Ca {
    let mut params = ca_params(cn);
    edit(&mut params);
    let cert = params.self_signed(&key).unwrap();
    Ca { params, key, cert }
}

/// A CA issued by `issuer`, edited by `edit`.
pub fn issued(cn: &str, issuer: &Ca, edit: impl FnOnce(&mut CertificateParams)) -> Ca {
    issued_with_key(cn, issuer, ec_key(), edit)
}

pub fn issued_with_key(
    cn: &str,
    issuer: &Ca,
    key: KeyPair,
    edit: impl FnOnce(&mut CertificateParams),
) -> Ca {
    let mut params = ca_params(cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.subject_alt_names = vec![SanType::DnsName(
        "istiod.istio-system.svc".try_into().unwrap(),
    )];
    edit(&mut params);
    let cert = params.signed_by(&key, &issuer.issuer()).unwrap();
    Ca { params, key, cert }
}

/// The usual bundle: `ca` with its key, `chain` after it in cert-chain.pem, `roots` in root-cert.pem.
pub fn bundle(ca: &Ca, chain: &[&Ca], roots: &[&Ca]) -> BundleFiles {
    let mut cert_chain = ca.pem();
    for c in chain {
        cert_chain.push_str(&c.pem());
    }
    BundleFiles {
        ca_cert: Some(ca.pem().into_bytes()),
        ca_key: Some(secret(ca.key_pem().into_bytes())),
        root_cert: Some(
            roots
                .iter()
                .map(|r| r.pem())
                .collect::<String>()
                .into_bytes(),
        ),
        cert_chain: Some(cert_chain.into_bytes()),
    }
}

pub fn secret(bytes: Vec<u8>) -> SecretSlice<u8> {
    SecretSlice::from(bytes)
}

/// PEM-encodes DER under `label`.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Minimal DER TLV encoder for hand-built keys.
pub fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    if value.len() < 0x80 {
        out.push(value.len() as u8);
    } else if value.len() < 0x100 {
        out.extend([0x81, value.len() as u8]);
    } else {
        out.extend([0x82, (value.len() >> 8) as u8, value.len() as u8]);
    }
    out.extend_from_slice(value);
    out
}

/// Reads one TLV: (tag, value, rest).
pub fn read_tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let (len, hdr) = match input[1] {
        l if l < 0x80 => (l as usize, 2),
        0x81 => (input[2] as usize, 3),
        0x82 => (((input[2] as usize) << 8) | input[3] as usize, 4),
        _ => panic!("length too long for tests"),
    };
    (tag, &input[hdr..hdr + len], &input[hdr + len..])
}

/// Converts an rcgen (ring) P-256 PKCS#8 key into SEC1 "EC PRIVATE KEY" PEM,
/// adding the curve parameters as OpenSSL writes them.
pub fn ec_key_as_sec1(key: &KeyPair) -> String {
    let pkcs8 = key.serialize_der();
    let (_, seq, _) = read_tlv(&pkcs8);
    let (_, _version, rest) = read_tlv(seq);
    let (_, _alg, rest) = read_tlv(rest);
    let (_, ec_private_key, _) = read_tlv(rest);
    // ECPrivateKey { version, privateKey, [1] publicKey } -> insert [0] parameters.
    let (_, inner, _) = read_tlv(ec_private_key);
    let (_, version, rest) = read_tlv(inner);
    let (_, private, rest) = read_tlv(rest);
    let p256 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let mut body = tlv(0x02, version);
    body.extend(tlv(0x04, private));
    body.extend(tlv(0xa0, &tlv(0x06, &p256)));
    body.extend_from_slice(rest);
    pem("EC PRIVATE KEY", &tlv(0x30, &body))
}

/// PKCS#1 "RSA PRIVATE KEY" PEM of an RSA key.
pub fn rsa_key_as_pkcs1(private: &rsa::RsaPrivateKey) -> String {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    pem(
        "RSA PRIVATE KEY",
        private.to_pkcs1_der().unwrap().as_bytes(),
    )
}

/// Re-signs an RSA-signed certificate (sha256WithRSAEncryption) with SHA-1,
/// using the issuer's RSA key. rcgen cannot sign with SHA-1, so this patches the
/// two algorithm identifiers (same length) and replaces the signature.
pub fn resign_with_sha1(cert_der: &[u8], issuer: &rsa::RsaPrivateKey) -> Vec<u8> {
    let sha256_rsa = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b,
    ];
    let (_, cert, _) = read_tlv(cert_der);
    let tbs_len = {
        let (_, _, rest) = read_tlv(cert);
        cert.len() - rest.len()
    };
    let mut tbs = cert[..tbs_len].to_vec();
    let mut alg = cert[tbs_len..].to_vec();
    for part in [&mut tbs, &mut alg] {
        let pos = part
            .windows(sha256_rsa.len())
            .position(|w| w == sha256_rsa)
            .expect("sha256WithRSAEncryption in the certificate");
        part[pos + sha256_rsa.len() - 1] = 0x05; // sha1WithRSAEncryption
    }
    let (_, alg_id, _) = read_tlv(&alg);
    let alg_id = tlv(0x30, alg_id);
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &tbs);
    let mut digest_info = vec![
        0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14,
    ];
    digest_info.extend_from_slice(digest.as_ref());
    let signature = issuer
        .sign(rsa::Pkcs1v15Sign::new_unprefixed(), &digest_info)
        .unwrap();
    let mut sig_bits = vec![0u8];
    sig_bits.extend(signature);
    let mut body = tbs;
    body.extend(alg_id);
    body.extend(tlv(0x03, &sig_bits));
    tlv(0x30, &body)
}

/// `CARGO_MANIFEST_DIR/../../shared/fixtures/istio-sample-certs`.
pub fn istio_samples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/istio-sample-certs")
}

/// Copies a sample directory into a fresh temp dir (tests never touch the originals).
pub fn copy_sample(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let src = istio_samples().join(name);
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        let dest = tmp.path().join(entry.file_name());
        std::fs::copy(entry.path(), &dest).unwrap();
        let mut perms = std::fs::metadata(&dest).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&dest, perms).unwrap();
    }
    tmp
}
