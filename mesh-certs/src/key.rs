//! Private keys as istiod accepts them: RSA or ECDSA, in PKCS#1, SEC1 or PKCS#8.

use rustls_pki_types::pem::SectionKind;
use secrecy::{ExposeSecret, SecretSlice};

use crate::der::{self, oid, tag};

/// How a private key is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyFormat {
    Pkcs1,
    Sec1,
    Pkcs8,
}

impl KeyFormat {
    pub(crate) fn name(self) -> &'static str {
        match self {
            KeyFormat::Pkcs1 => "PKCS#1",
            KeyFormat::Sec1 => "SEC1",
            KeyFormat::Pkcs8 => "PKCS#8",
        }
    }
}

/// Named elliptic curves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    fn from_oid(oid: &[u8]) -> Option<Curve> {
        match oid {
            oid::P256 => Some(Curve::P256),
            oid::P384 => Some(Curve::P384),
            oid::P521 => Some(Curve::P521),
            _ => None,
        }
    }

    pub(crate) fn oid(self) -> &'static [u8] {
        match self {
            Curve::P256 => oid::P256,
            Curve::P384 => oid::P384,
            Curve::P521 => oid::P521,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
        }
    }
}

/// The public half of a private key, as far as matching against a certificate needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PublicPart {
    /// Modulus and public exponent, both without leading zeros.
    Rsa { modulus: Vec<u8>, exponent: Vec<u8> },
    /// The curve and the encoded public point, when the key file carries it.
    Ec {
        curve: Curve,
        point: Option<Vec<u8>>,
    },
}

/// A parsed private key. The secret material stays inside `pkcs8`.
pub(crate) struct PrivateKey {
    pub(crate) format: KeyFormat,
    pub(crate) public: PublicPart,
    /// The key re-encoded as PKCS#8, which is what ring and rcgen accept.
    pub(crate) pkcs8: SecretSlice<u8>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("format", &self.format)
            .field("public", &self.public)
            .field("pkcs8", &"[REDACTED]")
            .finish()
    }
}

impl PrivateKey {
    /// "RSA 2048-bit" or "ECDSA P-256".
    pub(crate) fn describe(&self) -> String {
        match &self.public {
            PublicPart::Rsa { modulus, .. } => format!("RSA {}-bit", der::bit_len(modulus)),
            PublicPart::Ec { curve, .. } => format!("ECDSA {}", curve.name()),
        }
    }

    /// RSA modulus size in bits, `None` for EC keys.
    pub(crate) fn rsa_bits(&self) -> Option<usize> {
        match &self.public {
            PublicPart::Rsa { modulus, .. } => Some(der::bit_len(modulus)),
            PublicPart::Ec { .. } => None,
        }
    }
}

/// Why a key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyError {
    /// A well-formed key of an algorithm istiod does not accept.
    Unsupported(String),
    /// Bytes that do not form a key of the format its PEM label claims.
    Malformed(String),
}

/// Parses the DER of a private-key PEM block.
pub(crate) fn parse(kind: SectionKind, der_bytes: &[u8]) -> Result<PrivateKey, KeyError> {
    match kind {
        SectionKind::RsaPrivateKey => {
            let public = parse_pkcs1(der_bytes)?;
            Ok(PrivateKey {
                format: KeyFormat::Pkcs1,
                public,
                pkcs8: SecretSlice::from(wrap_pkcs8(oid::RSA_ENCRYPTION, None, der_bytes)),
            })
        }
        SectionKind::EcPrivateKey => {
            let (curve, point) = parse_sec1(der_bytes, None)?;
            Ok(PrivateKey {
                format: KeyFormat::Sec1,
                public: PublicPart::Ec { curve, point },
                pkcs8: SecretSlice::from(wrap_pkcs8(
                    oid::EC_PUBLIC_KEY,
                    Some(curve.oid()),
                    der_bytes,
                )),
            })
        }
        SectionKind::PrivateKey => parse_pkcs8(der_bytes),
        other => Err(KeyError::Malformed(format!(
            "a {other:?} block is not a private key"
        ))),
    }
}

fn malformed(what: &str) -> KeyError {
    KeyError::Malformed(what.to_owned())
}

/// RSAPrivateKey ::= SEQUENCE { version, modulus, publicExponent, privateExponent, ... }
fn parse_pkcs1(input: &[u8]) -> Result<PublicPart, KeyError> {
    let bad = || malformed("not a valid PKCS#1 RSA private key");
    let (seq, _) = der::expect(input, tag::SEQUENCE).ok_or_else(bad)?;
    let (_version, rest) = der::expect(seq, tag::INTEGER).ok_or_else(bad)?;
    let (modulus, rest) = der::expect(rest, tag::INTEGER).ok_or_else(bad)?;
    let (exponent, rest) = der::expect(rest, tag::INTEGER).ok_or_else(bad)?;
    // privateExponent must follow; a public key alone is not a private key.
    der::expect(rest, tag::INTEGER).ok_or_else(bad)?;
    Ok(PublicPart::Rsa {
        modulus: der::unsigned(modulus).to_vec(),
        exponent: der::unsigned(exponent).to_vec(),
    })
}

/// ECPrivateKey ::= SEQUENCE { version 1, privateKey OCTET STRING,
///   parameters [0] OID OPTIONAL, publicKey [1] BIT STRING OPTIONAL }
fn parse_sec1(
    input: &[u8],
    outer_curve: Option<Curve>,
) -> Result<(Curve, Option<Vec<u8>>), KeyError> {
    let bad = || malformed("not a valid SEC1 EC private key");
    let (seq, _) = der::expect(input, tag::SEQUENCE).ok_or_else(bad)?;
    let (_version, rest) = der::expect(seq, tag::INTEGER).ok_or_else(bad)?;
    let (_private, mut rest) = der::expect(rest, tag::OCTET_STRING).ok_or_else(bad)?;
    let mut curve = outer_curve;
    let mut point = None;
    while !rest.is_empty() {
        let (t, value, next) = der::read(rest).ok_or_else(bad)?;
        match t {
            tag::CONTEXT_0 => {
                let (curve_oid, _) = der::expect(value, tag::OID).ok_or_else(bad)?;
                let named = Curve::from_oid(curve_oid).ok_or_else(|| {
                    KeyError::Unsupported("an EC key on a curve istiod does not support".into())
                })?;
                if outer_curve.is_some_and(|c| c != named) {
                    return Err(malformed("the EC key names two different curves"));
                }
                curve = Some(named);
            }
            tag::CONTEXT_1 => {
                let (bits, _) = der::expect(value, tag::BIT_STRING).ok_or_else(bad)?;
                let (&unused, bytes) = bits.split_first().ok_or_else(bad)?;
                if unused != 0 {
                    return Err(bad());
                }
                point = Some(bytes.to_vec());
            }
            _ => return Err(bad()),
        }
        rest = next;
    }
    let curve = curve.ok_or_else(|| malformed("the EC key does not name its curve"))?;
    Ok((curve, point))
}

/// PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier, privateKey OCTET STRING, ... }
fn parse_pkcs8(input: &[u8]) -> Result<PrivateKey, KeyError> {
    let bad = || malformed("not a valid PKCS#8 private key");
    let (seq, _) = der::expect(input, tag::SEQUENCE).ok_or_else(bad)?;
    let (_version, rest) = der::expect(seq, tag::INTEGER).ok_or_else(bad)?;
    let (alg_id, rest) = der::expect(rest, tag::SEQUENCE).ok_or_else(bad)?;
    let (inner, _) = der::expect(rest, tag::OCTET_STRING).ok_or_else(bad)?;
    let (alg, params) = der::expect(alg_id, tag::OID).ok_or_else(bad)?;
    let public = match alg {
        oid::RSA_ENCRYPTION => parse_pkcs1(inner)?,
        oid::EC_PUBLIC_KEY => {
            let (curve_oid, _) = der::expect(params, tag::OID).ok_or_else(bad)?;
            let curve = Curve::from_oid(curve_oid).ok_or_else(|| {
                KeyError::Unsupported("an EC key on a curve istiod does not support".into())
            })?;
            let (curve, point) = parse_sec1(inner, Some(curve))?;
            PublicPart::Ec { curve, point }
        }
        oid::ED25519 => {
            return Err(KeyError::Unsupported("an Ed25519 key".into()));
        }
        oid::DSA => return Err(KeyError::Unsupported("a DSA key".into())),
        _ => {
            return Err(KeyError::Unsupported(
                "a key of an unknown algorithm".into(),
            ));
        }
    };
    Ok(PrivateKey {
        format: KeyFormat::Pkcs8,
        public,
        pkcs8: SecretSlice::from(input.to_vec()),
    })
}

/// Wraps a PKCS#1 or SEC1 key into a PKCS#8 PrivateKeyInfo (version 0).
fn wrap_pkcs8(alg: &[u8], curve: Option<&[u8]>, key: &[u8]) -> Vec<u8> {
    let mut alg_id = der::write(tag::OID, alg);
    match curve {
        Some(curve) => alg_id.extend(der::write(tag::OID, curve)),
        None => alg_id.extend(der::write(tag::NULL, &[])),
    }
    let mut body = der::write(tag::INTEGER, &[0]);
    body.extend(der::write(tag::SEQUENCE, &alg_id));
    body.extend(der::write(tag::OCTET_STRING, key));
    der::write(tag::SEQUENCE, &body)
}

/// Asks ring whether the private key is internally consistent (RSA: the CRT
/// parameters fit the modulus; EC: the public point belongs to the private scalar).
///
/// `Ok(())` when ring accepts it, `Err(reason)` when ring rejects a key it could
/// have checked, and `Ok(())` as well when ring cannot judge this kind of key
/// (RSA outside 2048–4096 bits, P-521).
pub(crate) fn check_consistency(key: &PrivateKey) -> Result<(), String> {
    use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};
    let pkcs8 = key.pkcs8.expose_secret();
    match &key.public {
        PublicPart::Rsa { modulus, .. } => {
            let bits = der::bit_len(modulus);
            if !(2048..=4096).contains(&bits) {
                tracing::debug!(bits, "RSA key size outside what ring checks; skipping");
                return Ok(());
            }
            RsaKeyPair::from_pkcs8(pkcs8)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        PublicPart::Ec { curve, point } => {
            let alg = match curve {
                Curve::P256 => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                Curve::P384 => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                Curve::P521 => return Ok(()),
            };
            if point.is_none() {
                return Ok(());
            }
            let rng = ring::rand::SystemRandom::new();
            EcdsaKeyPair::from_pkcs8(alg, pkcs8, &rng)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    }
}
