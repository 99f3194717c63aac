//! The checks run on a bundle and the report they produce.

use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::SectionKind;
use serde::Serialize;
use serde::ser::SerializeStruct;
use x509_parser::prelude::{ASN1Time, FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::der;
use crate::key::{self, KeyError, PrivateKey, PublicPart};
use crate::pem::{self, Block, PemProblem};
use crate::{BundleFile, CaBundle};

/// Tunables of [`CaBundle::validate`].
#[derive(Debug, Clone)]
pub struct ValidationOptions {
    /// Warn when `ca-cert.pem` expires within this window (default 30 days).
    pub expiry_warning: Duration,
    /// The instant "valid now" refers to (default: the current time).
    pub now: Option<SystemTime>,
}

impl Default for ValidationOptions {
    fn default() -> Self {
        ValidationOptions {
            expiry_warning: Duration::from_secs(30 * 24 * 60 * 60),
            now: None,
        }
    }
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The bundle will fail (istiod refuses it, or clusters will not trust each other).
    Error,
    /// The bundle works today but should be fixed (e.g. expiring soon, SHA-1).
    Warning,
}

/// The checks, each with a stable kebab-case id (used in JSON output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// Every file is present, well-formed PEM (not empty, not DER, no corrupted
    /// base64, no truncated block) with the expected kind of block.
    PemFormat,
    /// `ca-key.pem` is an unencrypted RSA or ECDSA key in PKCS#1, SEC1 or PKCS#8.
    KeyFormat,
    /// RSA keys have at least 2048 bits.
    KeyStrength,
    /// `ca-key.pem` is the private key of `ca-cert.pem`.
    KeyMatchesCert,
    /// `ca-cert.pem` is a CA allowed to sign certificates.
    CaCertIsCa,
    /// `ca-cert.pem` is valid now and does not expire within the warning window.
    CaCertValidity,
    /// `root-cert.pem` holds one or more self-signed CA certificates.
    RootCerts,
    /// `cert-chain.pem` starts with `ca-cert.pem`, each next certificate issued
    /// the previous one, and a root, if present, is last.
    CertChainOrder,
    /// `ca-cert.pem` chains to a root of `root-cert.pem`: signatures, CA flags,
    /// path lengths and validity of every certificate on the path.
    ChainToRoot,
    /// No certificate is signed with SHA-1.
    SignatureAlgorithm,
    /// Several bundles trust a common root (checked across bundles, see
    /// [`common_root`](crate::common_root)).
    CommonRoot,
}

impl Check {
    /// The checks [`CaBundle::validate`] runs, in order.
    pub const BUNDLE_CHECKS: [Check; 10] = [
        Check::PemFormat,
        Check::KeyFormat,
        Check::KeyStrength,
        Check::KeyMatchesCert,
        Check::CaCertIsCa,
        Check::CaCertValidity,
        Check::RootCerts,
        Check::CertChainOrder,
        Check::ChainToRoot,
        Check::SignatureAlgorithm,
    ];

    /// The stable id, e.g. `key-matches-cert`.
    pub fn id(self) -> &'static str {
        match self {
            Check::PemFormat => "pem-format",
            Check::KeyFormat => "key-format",
            Check::KeyStrength => "key-strength",
            Check::KeyMatchesCert => "key-matches-cert",
            Check::CaCertIsCa => "ca-cert-is-ca",
            Check::CaCertValidity => "ca-cert-validity",
            Check::RootCerts => "root-certs",
            Check::CertChainOrder => "cert-chain-order",
            Check::ChainToRoot => "chain-to-root",
            Check::SignatureAlgorithm => "signature-algorithm",
            Check::CommonRoot => "common-root",
        }
    }

    /// What the check asserts, phrased as the passing state (for a ✓ line).
    pub fn description(self) -> &'static str {
        match self {
            Check::PemFormat => "all four files are well-formed PEM of the expected kind",
            Check::KeyFormat => "ca-key.pem is an unencrypted RSA or ECDSA key",
            Check::KeyStrength => "ca-key.pem is strong enough",
            Check::KeyMatchesCert => "ca-key.pem is the key of ca-cert.pem",
            Check::CaCertIsCa => "ca-cert.pem is a CA allowed to sign certificates",
            Check::CaCertValidity => "ca-cert.pem is valid and not about to expire",
            Check::RootCerts => "root-cert.pem holds self-signed CA certificates",
            Check::CertChainOrder => "cert-chain.pem runs from ca-cert.pem towards the root",
            Check::ChainToRoot => "ca-cert.pem chains to a root in root-cert.pem",
            Check::SignatureAlgorithm => "no certificate is signed with SHA-1",
            Check::CommonRoot => "the bundles share a root",
        }
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// One problem found in a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// The file the problem is in.
    pub file: BundleFile,
    /// The check that found it.
    pub check: Check,
    /// What is wrong, in one line; names the file.
    pub message: String,
    /// How to fix it, in one line.
    pub fix: String,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// No finding.
    Passed,
    /// Only warnings.
    Warning,
    /// At least one error.
    Failed,
    /// Not run, because a check it depends on failed (e.g. an unreadable key
    /// cannot be matched against the certificate).
    Skipped,
}

/// One check and how it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CheckOutcome {
    /// The check.
    pub check: Check,
    /// How it went.
    pub status: Status,
}

/// The result of [`CaBundle::validate`].
///
/// Serialises as `{"valid": bool, "checks": [...], "findings": [...]}`.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every problem found, errors and warnings.
    pub findings: Vec<Finding>,
    /// Every check of [`Check::BUNDLE_CHECKS`], in order, with its status.
    pub checks: Vec<CheckOutcome>,
}

impl Report {
    /// True when there is no error (warnings allowed).
    pub fn is_valid(&self) -> bool {
        !self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
    }

    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
    }

    /// The checks that passed without any finding.
    pub fn passed(&self) -> impl Iterator<Item = Check> + '_ {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Passed)
            .map(|c| c.check)
    }

    /// The status of one check (`Skipped` when it is not part of the report).
    pub fn status(&self, check: Check) -> Status {
        self.checks
            .iter()
            .find(|c| c.check == check)
            .map_or(Status::Skipped, |c| c.status)
    }

    /// The findings of one check.
    pub fn findings_for(&self, check: Check) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.check == check)
    }
}

impl Serialize for Report {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Report", 3)?;
        s.serialize_field("valid", &self.is_valid())?;
        s.serialize_field("checks", &self.checks)?;
        s.serialize_field("findings", &self.findings)?;
        s.end()
    }
}

/// Accumulates findings and which checks ran.
struct Ctx {
    findings: Vec<Finding>,
    ran: Vec<Check>,
}

impl Ctx {
    fn error(&mut self, check: Check, file: BundleFile, message: String, fix: impl Into<String>) {
        self.push(Severity::Error, check, file, message, fix.into());
    }

    fn warn(&mut self, check: Check, file: BundleFile, message: String, fix: impl Into<String>) {
        self.push(Severity::Warning, check, file, message, fix.into());
    }

    fn push(
        &mut self,
        severity: Severity,
        check: Check,
        file: BundleFile,
        message: String,
        fix: String,
    ) {
        tracing::debug!(%check, %file, ?severity, %message, "finding");
        self.findings.push(Finding {
            severity,
            file,
            check,
            message,
            fix,
        });
    }

    fn ran(&mut self, check: Check) {
        if !self.ran.contains(&check) {
            self.ran.push(check);
        }
    }

    fn into_report(self) -> Report {
        let checks = Check::BUNDLE_CHECKS
            .iter()
            .map(|&check| {
                let mut status = if self.ran.contains(&check) {
                    Status::Passed
                } else {
                    Status::Skipped
                };
                for f in self.findings.iter().filter(|f| f.check == check) {
                    status = match (f.severity, status) {
                        (Severity::Error, _) | (_, Status::Failed) => Status::Failed,
                        (Severity::Warning, _) => Status::Warning,
                    };
                }
                CheckOutcome { check, status }
            })
            .collect();
        Report {
            findings: self.findings,
            checks,
        }
    }
}

/// A certificate with where it came from, for messages.
struct Cert<'a> {
    x509: X509Certificate<'a>,
    der: &'a [u8],
    file: BundleFile,
    /// 1-based position in its file.
    index: usize,
}

impl Cert<'_> {
    fn subject(&self) -> String {
        let s = self.x509.subject().to_string();
        if s.is_empty() {
            "(empty subject)".into()
        } else {
            s
        }
    }

    fn issuer(&self) -> String {
        let s = self.x509.issuer().to_string();
        if s.is_empty() {
            "(empty issuer)".into()
        } else {
            s
        }
    }

    /// "root-cert.pem certificate #2 (O=Istio, CN=Root CA)"
    fn name(&self) -> String {
        if self.file == BundleFile::CaCert {
            format!("ca-cert.pem ({})", self.subject())
        } else {
            format!(
                "{} certificate #{} ({})",
                self.file,
                self.index,
                self.subject()
            )
        }
    }

    fn is_self_signed(&self) -> bool {
        self.x509.subject().as_raw() == self.x509.issuer().as_raw()
            && self.x509.verify_signature(None).is_ok()
    }

    fn is_ca(&self) -> bool {
        matches!(self.x509.basic_constraints(), Ok(Some(bc)) if bc.value.ca)
    }

    fn path_len(&self) -> Option<u32> {
        match self.x509.basic_constraints() {
            Ok(Some(bc)) => bc.value.path_len_constraint,
            _ => None,
        }
    }

    fn may_sign_certs(&self) -> bool {
        match self.x509.key_usage() {
            Ok(Some(ku)) => ku.value.key_cert_sign(),
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// Whether `self` issued `child`: names match and the signature verifies.
    fn issued(&self, child: &Cert<'_>) -> bool {
        self.x509.subject().as_raw() == child.x509.issuer().as_raw()
            && child
                .x509
                .verify_signature(Some(self.x509.public_key()))
                .is_ok()
    }
}

fn date(t: ASN1Time) -> String {
    let d = t.to_datetime();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

fn regenerate_hint() -> &'static str {
    "`kubectl mesh certs generate` writes a correct bundle"
}

fn pem_fix(file: BundleFile, problem: &PemProblem) -> String {
    let name = file.file_name();
    match problem {
        PemProblem::Der if file == BundleFile::CaKey => {
            format!("convert it to PEM: openssl pkey -inform der -in {name} -out {name}")
        }
        PemProblem::Der => {
            format!("convert it to PEM: openssl x509 -inform der -in {name} -out {name}")
        }
        PemProblem::Encrypted => {
            format!("decrypt it: openssl pkey -in {name} -out {name} (istiod has no passphrase)")
        }
        _ => format!(
            "restore {name} from the CA that issued it (a PEM text file), or {}",
            regenerate_hint()
        ),
    }
}

/// Splits one certificate file into certificate DERs, recording pem-format findings.
fn cert_blocks(ctx: &mut Ctx, file: BundleFile, bytes: Option<&[u8]>) -> Option<Vec<Vec<u8>>> {
    let name = file.file_name();
    let Some(bytes) = bytes else {
        ctx.error(
            Check::PemFormat,
            file,
            format!("{name} is missing"),
            format!("add {name} to the bundle; {}", regenerate_hint()),
        );
        return None;
    };
    let blocks = match pem::blocks(bytes) {
        Ok(blocks) => blocks,
        Err(problem) => {
            let fix = pem_fix(file, &problem);
            ctx.error(Check::PemFormat, file, problem.describe(name), fix);
            return None;
        }
    };
    let mut ders = Vec::new();
    let mut ok = true;
    for (i, Block { kind, der }) in blocks.into_iter().enumerate() {
        if kind == SectionKind::Certificate {
            ders.push(der);
            continue;
        }
        ok = false;
        if pem::is_private_key(kind) {
            ctx.error(
                Check::PemFormat,
                file,
                format!(
                    "{name} block #{} is a private key ({}), not a certificate",
                    i + 1,
                    pem::label(kind)
                ),
                format!(
                    "remove the key from {name} (it must hold certificates only; the key belongs in ca-key.pem)"
                ),
            );
        } else {
            ctx.error(
                Check::PemFormat,
                file,
                format!(
                    "{name} block #{} is a {} block, not a CERTIFICATE",
                    i + 1,
                    pem::label(kind)
                ),
                format!("{name} must hold only CERTIFICATE blocks"),
            );
        }
    }
    if file == BundleFile::CaCert && ders.len() > 1 {
        ctx.error(
            Check::PemFormat,
            file,
            format!(
                "ca-cert.pem holds {} certificates; it must hold exactly one",
                ders.len()
            ),
            "keep only the CA certificate of this cluster in ca-cert.pem; put its issuers in cert-chain.pem",
        );
        ok = false;
    }
    ok.then_some(ders)
}

/// Parses DERs into certificates, recording pem-format findings.
fn parse_certs<'a>(ctx: &mut Ctx, file: BundleFile, ders: &'a [Vec<u8>]) -> Option<Vec<Cert<'a>>> {
    let mut certs = Vec::new();
    let mut ok = true;
    for (i, der) in ders.iter().enumerate() {
        match X509Certificate::from_der(der) {
            Ok(([], x509)) => certs.push(Cert {
                x509,
                der,
                file,
                index: i + 1,
            }),
            Ok(_) => {
                ok = false;
                ctx.error(
                    Check::PemFormat,
                    file,
                    format!(
                        "{file} certificate #{} has trailing bytes after the certificate",
                        i + 1
                    ),
                    format!("restore {file} from the CA that issued it"),
                );
            }
            Err(e) => {
                ok = false;
                ctx.error(
                    Check::PemFormat,
                    file,
                    format!(
                        "{file} block #{} is not a valid X.509 certificate ({e})",
                        i + 1
                    ),
                    format!(
                        "restore {file} from the CA that issued it; {}",
                        regenerate_hint()
                    ),
                );
            }
        }
    }
    ok.then_some(certs)
}

/// Reads the key file, recording pem-format and key-format findings.
fn load_key(ctx: &mut Ctx, bytes: Option<&[u8]>) -> Option<PrivateKey> {
    let file = BundleFile::CaKey;
    let Some(bytes) = bytes else {
        ctx.error(
            Check::PemFormat,
            file,
            "ca-key.pem is missing".into(),
            format!(
                "add the private key of ca-cert.pem as ca-key.pem; {}",
                regenerate_hint()
            ),
        );
        return None;
    };
    let blocks = match pem::blocks(bytes) {
        Ok(blocks) => blocks,
        Err(PemProblem::Encrypted) => {
            ctx.ran(Check::PemFormat);
            ctx.error(
                Check::KeyFormat,
                file,
                "ca-key.pem is encrypted with a passphrase; istiod cannot use an encrypted key"
                    .into(),
                pem_fix(file, &PemProblem::Encrypted),
            );
            return None;
        }
        Err(problem) => {
            let fix = pem_fix(file, &problem);
            ctx.error(Check::PemFormat, file, problem.describe("ca-key.pem"), fix);
            return None;
        }
    };
    if let [block] = blocks.as_slice()
        && pem::is_private_key(block.kind)
    {
        ctx.ran(Check::PemFormat);
        ctx.ran(Check::KeyFormat);
        return match key::parse(block.kind, &block.der) {
            Ok(key) => {
                tracing::debug!(key = %key.describe(), format = key.format.name(), "parsed ca-key.pem");
                Some(key)
            }
            Err(KeyError::Unsupported(what)) => {
                ctx.error(
                    Check::KeyFormat,
                    file,
                    format!("ca-key.pem is {what}; istiod accepts only RSA or ECDSA keys"),
                    format!(
                        "issue a new CA with an RSA or ECDSA P-256 key; {}",
                        regenerate_hint()
                    ),
                );
                None
            }
            Err(KeyError::Malformed(what)) => {
                ctx.error(
                    Check::KeyFormat,
                    file,
                    format!("ca-key.pem is {what}"),
                    format!(
                        "restore ca-key.pem from where the CA was created; {}",
                        regenerate_hint()
                    ),
                );
                None
            }
        };
    }
    if blocks.iter().any(|b| b.kind == SectionKind::Certificate)
        && !blocks.iter().any(|b| pem::is_private_key(b.kind))
    {
        ctx.error(
            Check::PemFormat,
            file,
            "ca-key.pem holds a certificate, not a private key".into(),
            "put the private key of ca-cert.pem in ca-key.pem (the files may have been swapped)",
        );
    } else if blocks
        .iter()
        .filter(|b| pem::is_private_key(b.kind))
        .count()
        > 1
    {
        ctx.error(
            Check::PemFormat,
            file,
            "ca-key.pem holds more than one private key".into(),
            "keep only the private key of ca-cert.pem in ca-key.pem",
        );
    } else {
        let labels: Vec<_> = blocks.iter().map(|b| pem::label(b.kind)).collect();
        ctx.error(
            Check::PemFormat,
            file,
            format!(
                "ca-key.pem must hold exactly one private key, but holds: {}",
                labels.join(", ")
            ),
            "keep only the private key of ca-cert.pem in ca-key.pem",
        );
    }
    None
}

const SHA1_SIGNATURES: [&str; 4] = [
    "1.2.840.113549.1.1.5", // sha1WithRSAEncryption
    "1.3.14.3.2.29",        // sha1WithRSASignature (OIW)
    "1.2.840.10045.4.1",    // ecdsa-with-SHA1
    "1.2.840.10040.4.3",    // dsa-with-sha1
];

pub(crate) fn validate(bundle: &CaBundle, options: &ValidationOptions) -> Report {
    let mut ctx = Ctx {
        findings: Vec::new(),
        ran: Vec::new(),
    };
    let now = options
        .now
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .and_then(|d| ASN1Time::from_timestamp(d.as_secs() as i64).ok())
        .unwrap_or_else(ASN1Time::now);

    // pem-format, then parse what can be parsed.
    let files = bundle.files();
    let ca_ders = cert_blocks(
        &mut ctx,
        BundleFile::CaCert,
        files.public(BundleFile::CaCert),
    );
    let root_ders = cert_blocks(
        &mut ctx,
        BundleFile::RootCert,
        files.public(BundleFile::RootCert),
    );
    let chain_ders = cert_blocks(
        &mut ctx,
        BundleFile::CertChain,
        files.public(BundleFile::CertChain),
    );
    let key = load_key(&mut ctx, bundle.key_bytes());
    let ca = ca_ders
        .as_deref()
        .and_then(|d| parse_certs(&mut ctx, BundleFile::CaCert, d))
        .and_then(|mut v| v.pop());
    let roots = root_ders
        .as_deref()
        .and_then(|d| parse_certs(&mut ctx, BundleFile::RootCert, d));
    let chain = chain_ders
        .as_deref()
        .and_then(|d| parse_certs(&mut ctx, BundleFile::CertChain, d));
    ctx.ran(Check::PemFormat);

    if let Some(key) = &key {
        check_key_strength(&mut ctx, key);
        if let Some(ca) = &ca {
            check_key_matches(&mut ctx, key, ca);
        }
    }
    if let Some(ca) = &ca {
        check_ca_is_ca(&mut ctx, ca);
        check_ca_validity(&mut ctx, ca, now, options.expiry_warning);
    }
    if let Some(roots) = &roots {
        check_roots(&mut ctx, roots);
    }
    if let (Some(ca), Some(chain)) = (&ca, &chain) {
        check_chain_order(&mut ctx, ca, chain);
    }
    if let (Some(ca), Some(roots), Some(chain)) = (&ca, &roots, &chain) {
        check_chain_to_root(&mut ctx, ca, chain, roots, now);
    }
    let all: Vec<&Cert<'_>> = ca
        .iter()
        .chain(
            chain
                .iter()
                .flatten()
                .filter(|c| ca.as_ref().is_none_or(|ca| ca.der != c.der)),
        )
        .chain(roots.iter().flatten())
        .collect();
    if !all.is_empty() {
        check_signature_algorithms(&mut ctx, &all);
    }
    ctx.into_report()
}

fn check_key_strength(ctx: &mut Ctx, key: &PrivateKey) {
    ctx.ran(Check::KeyStrength);
    if let Some(bits) = key.rsa_bits()
        && bits < 2048
    {
        ctx.error(
            Check::KeyStrength,
            BundleFile::CaKey,
            format!("ca-key.pem is a {bits}-bit RSA key; at least 2048 bits are required"),
            format!(
                "issue a new CA with a 2048-bit or larger RSA key, or ECDSA P-256; {}",
                regenerate_hint()
            ),
        );
    }
}

fn check_key_matches(ctx: &mut Ctx, key: &PrivateKey, ca: &Cert<'_>) {
    ctx.ran(Check::KeyMatchesCert);
    let fix = "put the private key that belongs to ca-cert.pem in ca-key.pem (the pair may come from different runs or clusters)";
    let spki = ca.x509.public_key();
    let cert_curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.as_bytes().to_vec());
    let matched = match (spki.parsed(), &key.public) {
        (Ok(PublicKey::RSA(rsa)), PublicPart::Rsa { modulus, exponent }) => {
            der::unsigned(rsa.modulus) == modulus.as_slice()
                && der::unsigned(rsa.exponent) == exponent.as_slice()
        }
        (Ok(PublicKey::EC(_)), PublicPart::Ec { point: None, .. }) => {
            ctx.error(
                Check::KeyMatchesCert,
                BundleFile::CaKey,
                "ca-key.pem does not carry its public key, so it cannot be matched against ca-cert.pem".into(),
                "re-export the key with its public part: openssl pkey -in ca-key.pem -out ca-key.pem",
            );
            return;
        }
        (
            Ok(PublicKey::EC(point)),
            PublicPart::Ec {
                curve,
                point: Some(p),
            },
        ) => cert_curve.as_deref() == Some(curve.oid()) && point.data() == p.as_slice(),
        (Ok(_), _) => {
            ctx.error(
                Check::KeyMatchesCert,
                BundleFile::CaKey,
                format!(
                    "ca-key.pem is an {} key but ca-cert.pem holds a different kind of public key",
                    key.describe()
                ),
                fix,
            );
            return;
        }
        (Err(e), _) => {
            ctx.error(
                Check::KeyMatchesCert,
                BundleFile::CaCert,
                format!("ca-cert.pem has an unreadable public key ({e})"),
                format!("restore ca-cert.pem; {}", regenerate_hint()),
            );
            return;
        }
    };
    if !matched {
        ctx.error(
            Check::KeyMatchesCert,
            BundleFile::CaKey,
            "ca-key.pem does not match ca-cert.pem (its public key differs from the certificate's)"
                .into(),
            fix,
        );
        return;
    }
    if let Err(reason) = key::check_consistency(key) {
        ctx.error(
            Check::KeyMatchesCert,
            BundleFile::CaKey,
            format!("ca-key.pem is damaged: its private part is inconsistent ({reason})"),
            format!(
                "restore ca-key.pem from where the CA was created; {}",
                regenerate_hint()
            ),
        );
    }
}

fn check_ca_is_ca(ctx: &mut Ctx, ca: &Cert<'_>) {
    ctx.ran(Check::CaCertIsCa);
    let fix = "ca-cert.pem must be a CA certificate (basicConstraints CA:TRUE, keyUsage keyCertSign); issue it as an intermediate CA";
    if !ca.is_ca() {
        ctx.error(
            Check::CaCertIsCa,
            BundleFile::CaCert,
            format!(
                "ca-cert.pem ({}) is not a CA: basicConstraints CA:TRUE is missing",
                ca.subject()
            ),
            fix,
        );
    }
    if !ca.may_sign_certs() {
        ctx.error(
            Check::CaCertIsCa,
            BundleFile::CaCert,
            format!(
                "ca-cert.pem ({}) has keyUsage without keyCertSign, so it may not sign certificates",
                ca.subject()
            ),
            fix,
        );
    }
}

fn check_ca_validity(ctx: &mut Ctx, ca: &Cert<'_>, now: ASN1Time, window: Duration) {
    ctx.ran(Check::CaCertValidity);
    let validity = ca.x509.validity();
    let renew = format!(
        "issue a new ca-cert.pem for this cluster; {}",
        regenerate_hint()
    );
    if now < validity.not_before {
        ctx.error(
            Check::CaCertValidity,
            BundleFile::CaCert,
            format!(
                "ca-cert.pem is not valid yet: valid from {}",
                date(validity.not_before)
            ),
            "check the clock of the machine that issued it, or wait until it becomes valid",
        );
    } else if now > validity.not_after {
        ctx.error(
            Check::CaCertValidity,
            BundleFile::CaCert,
            format!("ca-cert.pem expired on {}", date(validity.not_after)),
            renew,
        );
    } else {
        let left = validity.not_after.timestamp() - now.timestamp();
        if left < window.as_secs() as i64 {
            ctx.warn(
                Check::CaCertValidity,
                BundleFile::CaCert,
                format!(
                    "ca-cert.pem expires on {} (in {} days)",
                    date(validity.not_after),
                    left / 86_400
                ),
                renew,
            );
        }
    }
}

fn check_roots(ctx: &mut Ctx, roots: &[Cert<'_>]) {
    ctx.ran(Check::RootCerts);
    for root in roots {
        if !root.is_self_signed() {
            ctx.error(
                Check::RootCerts,
                BundleFile::RootCert,
                format!(
                    "{} is not self-signed (issued by {}); root-cert.pem must hold roots only",
                    root.name(),
                    root.issuer()
                ),
                "put intermediate certificates in cert-chain.pem and only the self-signed root(s) in root-cert.pem",
            );
        } else if !root.is_ca() {
            ctx.error(
                Check::RootCerts,
                BundleFile::RootCert,
                format!(
                    "{} is not a CA (basicConstraints CA:TRUE is missing)",
                    root.name()
                ),
                "root-cert.pem must hold CA certificates; use the root CA that issued ca-cert.pem",
            );
        }
    }
}

fn check_chain_order(ctx: &mut Ctx, ca: &Cert<'_>, chain: &[Cert<'_>]) {
    ctx.ran(Check::CertChainOrder);
    let file = BundleFile::CertChain;
    let fix = "write cert-chain.pem as ca-cert.pem, then each issuer in turn, the root last or absent: cat ca-cert.pem intermediate.pem root-cert.pem > cert-chain.pem";
    let Some(first) = chain.first() else {
        return;
    };
    if first.der != ca.der {
        ctx.error(
            Check::CertChainOrder,
            file,
            format!(
                "cert-chain.pem must start with ca-cert.pem but starts with {}",
                first.subject()
            ),
            fix,
        );
        return;
    }
    let last = chain.len() - 1;
    for (i, pair) in chain.windows(2).enumerate() {
        let (child, parent) = (&pair[0], &pair[1]);
        if parent.is_self_signed() && i + 1 != last {
            ctx.error(
                Check::CertChainOrder,
                file,
                format!(
                    "{} is a self-signed root but is not last in cert-chain.pem",
                    parent.name()
                ),
                fix,
            );
            return;
        }
        if !parent.issued(child) {
            ctx.error(
                Check::CertChainOrder,
                file,
                format!(
                    "{} did not issue {} (which was issued by {})",
                    parent.name(),
                    child.name(),
                    child.issuer()
                ),
                fix,
            );
            return;
        }
    }
}

fn check_chain_to_root(
    ctx: &mut Ctx,
    ca: &Cert<'_>,
    chain: &[Cert<'_>],
    roots: &[Cert<'_>],
    now: ASN1Time,
) {
    ctx.ran(Check::ChainToRoot);
    // Build the path like a verifier: from ca-cert.pem, look for the issuer among
    // the roots, then among the intermediates of cert-chain.pem.
    let mut path: Vec<&Cert<'_>> = vec![ca];
    let root: &Cert<'_> = loop {
        let current = *path.last().expect("path starts with ca-cert.pem");
        if let Some(root) = roots
            .iter()
            .find(|r| r.der == current.der || r.issued(current))
        {
            if root.der == current.der {
                path.pop();
            }
            break root;
        }
        let candidates: Vec<&Cert<'_>> = chain
            .iter()
            .filter(|c| c.der != current.der && !c.is_self_signed())
            .filter(|c| !path.iter().any(|p| p.der == c.der))
            .filter(|c| c.x509.subject().as_raw() == current.x509.issuer().as_raw())
            .collect();
        if let Some(next) = candidates.iter().find(|c| c.issued(current)) {
            if path.len() > 16 {
                ctx.error(
                    Check::ChainToRoot,
                    BundleFile::CertChain,
                    "the chain from ca-cert.pem is longer than 16 certificates".into(),
                    "shorten the CA hierarchy",
                );
                return;
            }
            path.push(next);
            continue;
        }
        if let Some(chain_root) = chain
            .iter()
            .find(|c| c.is_self_signed() && c.issued(current))
        {
            ctx.error(
                Check::ChainToRoot,
                BundleFile::RootCert,
                format!(
                    "{} chains to the root {} from cert-chain.pem, which is not in root-cert.pem",
                    current.name(),
                    chain_root.subject()
                ),
                "put the root that issued this bundle in root-cert.pem (during a root rotation, both roots)",
            );
            return;
        }
        let by_name_root = roots
            .iter()
            .find(|r| r.x509.subject().as_raw() == current.x509.issuer().as_raw());
        let (file, message, fix) = if let Some(r) = by_name_root.or(candidates.first().copied()) {
            (
                current.file,
                format!(
                    "the signature of {} does not verify with the key of {}, although the names match",
                    current.name(),
                    r.name()
                ),
                "the certificate was issued by a different CA with the same name; use the root-cert.pem and cert-chain.pem of the CA that really issued it".to_string(),
            )
        } else {
            (
                BundleFile::RootCert,
                format!(
                    "{} was issued by {}, which is neither in root-cert.pem nor in cert-chain.pem",
                    current.name(),
                    current.issuer()
                ),
                format!(
                    "add the root that issued it to root-cert.pem (and any intermediates to cert-chain.pem); {}",
                    regenerate_hint()
                ),
            )
        };
        ctx.error(Check::ChainToRoot, file, message, fix);
        return;
    };
    path.push(root);
    tracing::debug!(
        path = ?path.iter().map(|c| c.subject()).collect::<Vec<_>>(),
        "chain to root"
    );

    for (i, cert) in path.iter().enumerate() {
        let validity = cert.x509.validity();
        if now < validity.not_before || now > validity.not_after {
            let state = if now < validity.not_before {
                format!("is not valid before {}", date(validity.not_before))
            } else {
                format!("expired on {}", date(validity.not_after))
            };
            ctx.error(
                Check::ChainToRoot,
                cert.file,
                format!("{} on the path to the root {state}", cert.name()),
                format!(
                    "renew {} and reissue what it signed; {}",
                    cert.file,
                    regenerate_hint()
                ),
            );
        }
        if i == 0 {
            continue;
        }
        // `cert` issued path[i-1]; it must be a CA allowed to sign.
        if !cert.is_ca() || !cert.may_sign_certs() {
            ctx.error(
                Check::ChainToRoot,
                cert.file,
                format!(
                    "{} issued {} but is not a CA allowed to sign certificates",
                    cert.name(),
                    path[i - 1].name()
                ),
                "every issuer on the path needs basicConstraints CA:TRUE and, when keyUsage is present, keyCertSign",
            );
        }
        // Below it are i CA certificates (ca-cert.pem included, since it will
        // issue workload certificates).
        if let Some(max) = cert.path_len()
            && (max as usize) < i
        {
            ctx.error(
                Check::ChainToRoot,
                cert.file,
                format!(
                    "{} has pathlen {max} but {i} CA certificate(s) follow it on the path to the workloads",
                    cert.name()
                ),
                "reissue the CA hierarchy with fewer levels or a larger pathlen on the upper CA",
            );
        }
    }
}

fn check_signature_algorithms(ctx: &mut Ctx, certs: &[&Cert<'_>]) {
    ctx.ran(Check::SignatureAlgorithm);
    for cert in certs {
        let alg = cert.x509.signature_algorithm.algorithm.to_id_string();
        if SHA1_SIGNATURES.contains(&alg.as_str()) {
            ctx.warn(
                Check::SignatureAlgorithm,
                cert.file,
                format!("{} is signed with SHA-1, which is deprecated", cert.name()),
                format!("reissue it with SHA-256 or stronger; {}", regenerate_hint()),
            );
        }
    }
}
