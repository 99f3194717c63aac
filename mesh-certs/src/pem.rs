//! Splitting a file into PEM blocks, with a precise reason when that fails.
//!
//! Decoding is done by `rustls-pki-types`' [`PemObject`]; this module adds the
//! diagnosis around it: empty files, DER where PEM was expected, blocks of kinds
//! `PemObject` skips silently (encrypted keys, unknown labels) and OpenSSL's
//! legacy encrypted-key headers.

use rustls_pki_types::pem::{self, PemObject, SectionKind};

/// One decoded PEM block.
pub(crate) struct Block {
    pub(crate) kind: SectionKind,
    pub(crate) der: Vec<u8>,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Blocks may hold private keys: never print their bytes.
        f.debug_struct("Block")
            .field("kind", &self.kind)
            .field("len", &self.der.len())
            .finish()
    }
}

/// Why a file is not usable PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PemProblem {
    /// Nothing but whitespace.
    Empty,
    /// Binary DER rather than PEM text.
    Der,
    /// Text without any `-----BEGIN` line.
    NoBlock,
    /// A private key encrypted with a passphrase (PKCS#8 `ENCRYPTED PRIVATE KEY`
    /// or OpenSSL's `Proc-Type: 4,ENCRYPTED` header).
    Encrypted,
    /// A block whose label this tool does not know (e.g. `PUBLIC KEY` is known,
    /// `OPENSSH PRIVATE KEY` is not).
    UnknownLabel(String),
    /// A `-----BEGIN` without its `-----END`.
    Truncated,
    /// The base64 between the markers does not decode.
    Corrupted(String),
    /// A malformed `-----BEGIN` line.
    BadHeader,
}

impl PemProblem {
    /// One line saying what is wrong, for a file named `file`.
    pub(crate) fn describe(&self, file: &str) -> String {
        match self {
            PemProblem::Empty => format!("{file} is empty"),
            PemProblem::Der => format!("{file} is binary DER, not PEM"),
            PemProblem::NoBlock => format!("{file} holds no PEM block (no -----BEGIN line)"),
            PemProblem::Encrypted => format!("{file} holds an encrypted private key"),
            PemProblem::UnknownLabel(label) => {
                format!("{file} holds a \"{label}\" block, which is not expected here")
            }
            PemProblem::Truncated => {
                format!("{file} is truncated: a -----BEGIN block has no matching -----END line")
            }
            PemProblem::Corrupted(detail) => {
                format!("{file} has corrupted base64 inside a PEM block ({detail})")
            }
            PemProblem::BadHeader => format!("{file} has a malformed -----BEGIN line"),
        }
    }
}

/// Splits `bytes` into PEM blocks, or says precisely why it cannot.
pub(crate) fn blocks(bytes: &[u8]) -> Result<Vec<Block>, PemProblem> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(PemProblem::Empty);
    }
    let text = String::from_utf8_lossy(bytes);
    if !text.contains("-----BEGIN ") {
        // DER starts with a SEQUENCE tag and is not text.
        let binary = bytes
            .iter()
            .any(|b| !b.is_ascii() || (b.is_ascii_control() && !b.is_ascii_whitespace()));
        return Err(if bytes[0] == 0x30 && binary {
            PemProblem::Der
        } else {
            PemProblem::NoBlock
        });
    }
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("Proc-Type:") && line.contains("ENCRYPTED") {
            return Err(PemProblem::Encrypted);
        }
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            if label == "ENCRYPTED PRIVATE KEY" {
                return Err(PemProblem::Encrypted);
            }
            if SectionKind::try_from(label.as_bytes()).is_err() {
                return Err(PemProblem::UnknownLabel(label.to_owned()));
            }
        }
    }
    let mut out = Vec::new();
    for item in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(bytes) {
        match item {
            Ok((kind, der)) => out.push(Block { kind, der }),
            Err(pem::Error::MissingSectionEnd { .. }) => return Err(PemProblem::Truncated),
            Err(pem::Error::Base64Decode(detail)) => return Err(PemProblem::Corrupted(detail)),
            Err(pem::Error::IllegalSectionStart { .. }) => return Err(PemProblem::BadHeader),
            Err(other) => return Err(PemProblem::Corrupted(other.to_string())),
        }
    }
    if out.is_empty() {
        return Err(PemProblem::NoBlock);
    }
    Ok(out)
}

/// A human name for a block kind, as its PEM label reads.
pub(crate) fn label(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Certificate => "CERTIFICATE",
        SectionKind::PublicKey => "PUBLIC KEY",
        SectionKind::RsaPrivateKey => "RSA PRIVATE KEY",
        SectionKind::PrivateKey => "PRIVATE KEY",
        SectionKind::EcPrivateKey => "EC PRIVATE KEY",
        SectionKind::Crl => "X509 CRL",
        SectionKind::Csr => "CERTIFICATE REQUEST",
        _ => "unknown",
    }
}

/// Whether the block holds a private key.
pub(crate) fn is_private_key(kind: SectionKind) -> bool {
    matches!(
        kind,
        SectionKind::RsaPrivateKey | SectionKind::PrivateKey | SectionKind::EcPrivateKey
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnoses_non_pem() {
        assert_eq!(blocks(b"").unwrap_err(), PemProblem::Empty);
        assert_eq!(blocks(b"  \n").unwrap_err(), PemProblem::Empty);
        assert_eq!(
            blocks(&[0x30, 0x82, 0x01, 0x00, 0xff]).unwrap_err(),
            PemProblem::Der
        );
        assert_eq!(blocks(b"hello").unwrap_err(), PemProblem::NoBlock);
        assert_eq!(
            blocks(b"-----BEGIN CERTIFICATE-----\nMIIB\n").unwrap_err(),
            PemProblem::Truncated
        );
        assert!(matches!(
            blocks(b"-----BEGIN CERTIFICATE-----\nM!!B\n-----END CERTIFICATE-----\n").unwrap_err(),
            PemProblem::Corrupted(_)
        ));
        assert_eq!(
            blocks(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n")
                .unwrap_err(),
            PemProblem::Encrypted
        );
        assert_eq!(
            blocks(
                b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
            )
            .unwrap_err(),
            PemProblem::UnknownLabel("OPENSSH PRIVATE KEY".into())
        );
    }
}
