//! Root certificates as a set of fingerprints, and agreement across bundles.

use std::collections::BTreeMap;

use rustls_pki_types::pem::SectionKind;
use serde::Serialize;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::{CaBundle, Error};

/// One root certificate: its SHA-256 fingerprint and subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Root {
    /// Lowercase hex SHA-256 of the certificate's DER.
    pub fingerprint: String,
    /// The subject, e.g. `O=Istio, CN=Root CA`.
    pub subject: String,
}

/// The roots a bundle (or a cluster) trusts, identified by fingerprint.
///
/// ```
/// use mesh_certs::RootSet;
///
/// // Roots already stored in a cluster can be compared without a whole bundle.
/// let stored = RootSet::from_pem(b"no certificate here");
/// assert!(stored.is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RootSet {
    roots: Vec<Root>,
}

/// Lowercase hex SHA-256 of `der`.
pub(crate) fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl RootSet {
    /// Parses PEM holding one or more certificates (e.g. `root-cert.pem`, or the
    /// `root-cert.pem` key of an existing `cacerts` / `istio-ca-root-cert`).
    ///
    /// Fails when the bytes are not PEM or hold no parseable certificate.
    pub fn from_pem(pem: &[u8]) -> Result<RootSet, Error> {
        let blocks = crate::pem::blocks(pem).map_err(|p| Error::InvalidCertificate {
            what: "root certificates".into(),
            reason: p.describe("the PEM"),
        })?;
        let mut roots = Vec::new();
        for block in blocks {
            if block.kind != SectionKind::Certificate {
                continue;
            }
            let (_, cert) =
                X509Certificate::from_der(&block.der).map_err(|e| Error::InvalidCertificate {
                    what: "root certificates".into(),
                    reason: format!("not a valid X.509 certificate: {e}"),
                })?;
            roots.push(Root {
                fingerprint: fingerprint(&block.der),
                subject: cert.subject().to_string(),
            });
        }
        if roots.is_empty() {
            return Err(Error::InvalidCertificate {
                what: "root certificates".into(),
                reason: "no certificate found".into(),
            });
        }
        Ok(RootSet { roots })
    }

    /// Like [`RootSet::from_pem`] but keeps whatever parses (for broken bundles).
    pub(crate) fn from_pem_lossy(pem: &[u8]) -> RootSet {
        let Ok(blocks) = crate::pem::blocks(pem) else {
            return RootSet::default();
        };
        let roots = blocks
            .iter()
            .filter(|b| b.kind == SectionKind::Certificate)
            .filter_map(|b| {
                let (_, cert) = X509Certificate::from_der(&b.der).ok()?;
                Some(Root {
                    fingerprint: fingerprint(&b.der),
                    subject: cert.subject().to_string(),
                })
            })
            .collect();
        RootSet { roots }
    }

    /// The roots, in file order.
    pub fn roots(&self) -> &[Root] {
        &self.roots
    }

    /// The fingerprints, in file order.
    pub fn fingerprints(&self) -> impl Iterator<Item = &str> {
        self.roots.iter().map(|r| r.fingerprint.as_str())
    }

    /// Whether a root with this fingerprint is in the set.
    pub fn contains(&self, fingerprint: &str) -> bool {
        self.fingerprints()
            .any(|f| f.eq_ignore_ascii_case(fingerprint))
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// Whether the two sets share at least one root.
    pub fn shares_root_with(&self, other: &RootSet) -> bool {
        self.fingerprints().any(|f| other.contains(f))
    }
}

/// Whether several bundles trust a common root, and which ones do not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RootAgreement {
    /// Fingerprints present in every bundle's `root-cert.pem`.
    pub common: Vec<String>,
    /// The root most bundles trust (the first such in input order on a tie);
    /// `None` when no bundle has a readable root.
    pub reference: Option<Root>,
    /// Names of the bundles that trust `reference`.
    pub agreeing: Vec<String>,
    /// Names of the bundles that do not trust `reference`.
    pub disagreeing: Vec<String>,
}

impl RootAgreement {
    /// True when every bundle trusts at least one common root.
    pub fn is_agreed(&self) -> bool {
        !self.common.is_empty()
    }
}

/// Compares the roots of named bundles (one per cluster).
///
/// ```no_run
/// use std::path::Path;
/// use mesh_certs::{common_root, CaBundle};
///
/// let a = CaBundle::load_dir(Path::new("certs/cluster1"))?;
/// let b = CaBundle::load_dir(Path::new("certs/cluster2"))?;
/// let agreement = common_root(&[("cluster1", &a), ("cluster2", &b)]);
/// if !agreement.is_agreed() {
///     eprintln!("these bundles do not share a root: {:?}", agreement.disagreeing);
/// }
/// # Ok::<(), mesh_certs::Error>(())
/// ```
pub fn common_root(bundles: &[(&str, &CaBundle)]) -> RootAgreement {
    let sets: Vec<(&str, RootSet)> = bundles.iter().map(|(n, b)| (*n, b.root_set())).collect();
    common_root_of_sets(&sets)
}

/// [`common_root`] over root sets, e.g. the roots already stored in clusters.
pub fn common_root_of_sets(sets: &[(&str, RootSet)]) -> RootAgreement {
    // How many sets trust each root, remembering first appearance for ties.
    let mut counts: BTreeMap<&str, (usize, usize, &Root)> = BTreeMap::new();
    let mut order = 0;
    for (_, set) in sets {
        let mut seen = std::collections::BTreeSet::new();
        for root in set.roots() {
            if !seen.insert(root.fingerprint.as_str()) {
                continue;
            }
            let entry = counts
                .entry(root.fingerprint.as_str())
                .or_insert((0, order, root));
            entry.0 += 1;
            order += 1;
        }
    }
    let reference = counts
        .values()
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
        .map(|(_, _, root)| (*root).clone());
    let common = counts
        .iter()
        .filter(|(_, (n, _, _))| *n == sets.len() && !sets.is_empty())
        .map(|(f, _)| (*f).to_owned())
        .collect();
    let (agreeing, disagreeing) = match &reference {
        Some(r) => sets
            .iter()
            .map(|(n, s)| ((*n).to_owned(), s.contains(&r.fingerprint)))
            .fold((Vec::new(), Vec::new()), |(mut a, mut d), (n, ok)| {
                if ok {
                    a.push(n)
                } else {
                    d.push(n)
                }
                (a, d)
            }),
        None => (
            Vec::new(),
            sets.iter().map(|(n, _)| (*n).to_owned()).collect(),
        ),
    };
    RootAgreement {
        common,
        reference,
        agreeing,
        disagreeing,
    }
}
