//! The crate's error type: real failures, not validation findings.

use std::path::PathBuf;

/// Something this crate could not do.
///
/// Problems *in* a bundle are not errors: [`CaBundle::validate`](crate::CaBundle::validate)
/// reports them as [`Finding`](crate::Finding)s. An `Error` means the work itself
/// failed: a file could not be read or written, a root to reuse is unusable,
/// generation failed. No variant ever carries private-key bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file or directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A path that must be a directory is not one (or does not exist).
    #[error("{}: not a directory", path.display())]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// Certificates given to this crate (e.g. a root to reuse) are unusable.
    #[error("{what}: {reason}")]
    InvalidCertificate {
        /// Which certificate or file, e.g. `out/root-cert.pem`.
        what: String,
        /// Why it is unusable.
        reason: String,
    },
    /// A private key given to this crate (e.g. a root key to reuse) is unusable.
    /// The message never contains key material.
    #[error("{what}: {reason}")]
    InvalidKey {
        /// Which key or file, e.g. `out/root-key.pem`.
        what: String,
        /// Why it is unusable.
        reason: String,
    },
    /// A cluster name that cannot be used as a directory name or a certificate field.
    #[error("invalid cluster name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Writing would replace a file that already exists with different content.
    #[error("{} already exists; refusing to overwrite it", path.display())]
    AlreadyExists {
        /// The file that exists.
        path: PathBuf,
    },
    /// Key or certificate generation failed.
    #[error("generating {what} failed: {reason}")]
    Generation {
        /// What was being generated.
        what: String,
        /// Why it failed.
        reason: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn generation(what: impl Into<String>, reason: impl std::fmt::Display) -> Error {
        Error::Generation {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}
