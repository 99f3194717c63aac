//! The four files of a plugged-in CA bundle and loading them.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretSlice};
use serde::Serialize;

use crate::{Error, Report, RootSet, ValidationOptions};

/// One of the four files of a `cacerts` bundle.
///
/// Serialises as its file name (`"ca-cert.pem"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BundleFile {
    /// `ca-cert.pem`: the certificate istiod signs workload certificates with
    /// (usually an intermediate CA, one per cluster).
    CaCert,
    /// `ca-key.pem`: the private key of `ca-cert.pem`.
    CaKey,
    /// `root-cert.pem`: the root certificate(s) every cluster of the mesh trusts.
    RootCert,
    /// `cert-chain.pem`: `ca-cert.pem` followed by the certificates up to (and
    /// optionally including) the root.
    CertChain,
}

impl BundleFile {
    /// All four files, in the order istiod's documentation lists them.
    pub const ALL: [BundleFile; 4] = [
        BundleFile::CaCert,
        BundleFile::CaKey,
        BundleFile::RootCert,
        BundleFile::CertChain,
    ];

    /// The file name, which is also the data key in the `cacerts` Secret.
    ///
    /// ```
    /// assert_eq!(mesh_certs::BundleFile::CaKey.file_name(), "ca-key.pem");
    /// ```
    pub fn file_name(self) -> &'static str {
        match self {
            BundleFile::CaCert => "ca-cert.pem",
            BundleFile::CaKey => "ca-key.pem",
            BundleFile::RootCert => "root-cert.pem",
            BundleFile::CertChain => "cert-chain.pem",
        }
    }

    /// The file for a file name or Secret data key, if it is one of the four.
    pub fn from_file_name(name: &str) -> Option<BundleFile> {
        BundleFile::ALL.into_iter().find(|f| f.file_name() == name)
    }
}

impl std::fmt::Display for BundleFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.file_name())
    }
}

impl Serialize for BundleFile {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.file_name())
    }
}

/// The raw contents of the four files; `None` for a file that is absent.
///
/// The key is held in a [`SecretSlice`]: it is zeroed on drop and never shown by
/// `Debug`.
#[derive(Default)]
pub struct BundleFiles {
    /// Contents of `ca-cert.pem`.
    pub ca_cert: Option<Vec<u8>>,
    /// Contents of `ca-key.pem`.
    pub ca_key: Option<SecretSlice<u8>>,
    /// Contents of `root-cert.pem`.
    pub root_cert: Option<Vec<u8>>,
    /// Contents of `cert-chain.pem`.
    pub cert_chain: Option<Vec<u8>>,
}

impl BundleFiles {
    /// The public bytes of `file` (`None` for the key and for absent files).
    pub(crate) fn public(&self, file: BundleFile) -> Option<&[u8]> {
        match file {
            BundleFile::CaCert => self.ca_cert.as_deref(),
            BundleFile::RootCert => self.root_cert.as_deref(),
            BundleFile::CertChain => self.cert_chain.as_deref(),
            BundleFile::CaKey => None,
        }
    }
}

impl std::fmt::Debug for BundleFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = |b: &Option<Vec<u8>>| b.as_ref().map(Vec::len);
        f.debug_struct("BundleFiles")
            .field("ca_cert_len", &len(&self.ca_cert))
            .field("ca_key", &self.ca_key.as_ref().map(|_| "[REDACTED]"))
            .field("root_cert_len", &len(&self.root_cert))
            .field("cert_chain_len", &len(&self.cert_chain))
            .finish()
    }
}

/// A plugged-in CA bundle (`cacerts`) as loaded, possibly broken.
///
/// Loading only reads bytes; [`CaBundle::validate`] says what is wrong.
///
/// ```no_run
/// use mesh_certs::{CaBundle, ValidationOptions};
///
/// let bundle = CaBundle::load_dir(std::path::Path::new("certs/cluster1"))?;
/// let report = bundle.validate(&ValidationOptions::default());
/// for finding in &report.findings {
///     eprintln!("{}: {} (fix: {})", finding.file, finding.message, finding.fix);
/// }
/// # Ok::<(), mesh_certs::Error>(())
/// ```
#[derive(Debug)]
pub struct CaBundle {
    source: Option<PathBuf>,
    files: BundleFiles,
}

impl CaBundle {
    /// Reads `ca-cert.pem`, `ca-key.pem`, `root-cert.pem` and `cert-chain.pem`
    /// from `dir`. A missing file is not an error here (validation reports it);
    /// a missing directory, an unreadable file, a file that is not a regular file or is
    /// larger than [`MAX_FILE_SIZE`](crate::MAX_FILE_SIZE) is.
    pub fn load_dir(dir: &Path) -> Result<CaBundle, Error> {
        let meta = std::fs::metadata(dir).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotADirectory {
                    path: dir.to_owned(),
                }
            } else {
                Error::io(dir, e)
            }
        })?;
        if !meta.is_dir() {
            return Err(Error::NotADirectory {
                path: dir.to_owned(),
            });
        }
        let read = |file: BundleFile| -> Result<Option<Vec<u8>>, Error> {
            // A regular file of at most MAX_FILE_SIZE bytes; `/dev/zero` is an error.
            crate::files::read_bounded(&dir.join(file.file_name()))
        };
        let files = BundleFiles {
            ca_cert: read(BundleFile::CaCert)?,
            ca_key: read(BundleFile::CaKey)?.map(SecretSlice::from),
            root_cert: read(BundleFile::RootCert)?,
            cert_chain: read(BundleFile::CertChain)?,
        };
        tracing::debug!(dir = %dir.display(), ?files, "loaded CA bundle");
        Ok(CaBundle {
            source: Some(dir.to_owned()),
            files,
        })
    }

    /// A bundle from bytes, e.g. the data of a `cacerts` Secret.
    ///
    /// ```
    /// use mesh_certs::{BundleFiles, CaBundle};
    ///
    /// let bundle = CaBundle::from_pem(BundleFiles {
    ///     ca_cert: Some(b"not a certificate".to_vec()),
    ///     ..BundleFiles::default()
    /// });
    /// assert!(!bundle.validate(&Default::default()).is_valid());
    /// ```
    pub fn from_pem(files: BundleFiles) -> CaBundle {
        CaBundle {
            source: None,
            files,
        }
    }

    /// The directory the bundle was loaded from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// The raw file contents.
    pub fn files(&self) -> &BundleFiles {
        &self.files
    }

    /// The key bytes, for the crate's own use.
    pub(crate) fn key_bytes(&self) -> Option<&[u8]> {
        self.files.ca_key.as_ref().map(|k| k.expose_secret())
    }

    /// Runs every check and returns the findings (see [`Check`](crate::Check)).
    pub fn validate(&self, options: &ValidationOptions) -> Report {
        crate::validate::validate(self, options)
    }

    /// The roots of `root-cert.pem` that parse as certificates (empty when none do).
    pub fn root_set(&self) -> RootSet {
        self.files
            .root_cert
            .as_deref()
            .map(RootSet::from_pem_lossy)
            .unwrap_or_default()
    }

    /// SHA-256 fingerprints (lowercase hex of the DER) of the certificates in
    /// `root-cert.pem`, in file order.
    pub fn root_fingerprints(&self) -> Vec<String> {
        self.root_set().fingerprints().map(str::to_owned).collect()
    }
}
