//! Reading and writing the files of a bundle safely: bounded reads of regular files only,
//! and writes that never go through a symlink or replace a file someone else just made.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use crate::Error;

/// The largest file a bundle may hold: far more than any PEM certificate chain or key,
/// small enough that a mistaken path (a log, `/dev/zero`) fails at once.
pub const MAX_FILE_SIZE: u64 = 1024 * 1024;

fn invalid(reason: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, reason)
}

/// Reads `path` (following a symlink, as any reader would) if it is a regular file of at
/// most [`MAX_FILE_SIZE`] bytes. `Ok(None)` when it does not exist.
pub(crate) fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    // stat before open: opening a FIFO would block until someone writes to it.
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    check_regular(&meta).map_err(|e| Error::io(path, e))?;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // The same checks on what was opened, in case the path changed in between.
    check_regular(&file.metadata().map_err(|e| Error::io(path, e))?)
        .map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(Error::io(path, too_large(None)));
    }
    Ok(Some(bytes))
}

fn check_regular(meta: &std::fs::Metadata) -> std::io::Result<()> {
    if !meta.is_file() {
        return Err(invalid(
            "not a regular file; a bundle file must be a PEM file".into(),
        ));
    }
    if meta.len() > MAX_FILE_SIZE {
        return Err(too_large(Some(meta.len())));
    }
    Ok(())
}

fn too_large(len: Option<u64>) -> std::io::Error {
    invalid(format!(
        "{}larger than the {MAX_FILE_SIZE} bytes a bundle file may have",
        len.map(|l| format!("{l} bytes, ")).unwrap_or_default()
    ))
}

/// Writes `bytes` to `path` atomically: into a temporary file in the same directory,
/// created exclusively (never an existing file, never through a symlink) with mode 0600
/// for a `secret` (0644 otherwise, less the umask), synced, then moved into place.
///
/// With `replace` false the move fails if anything — a file, a symlink — appeared at
/// `path` since the caller looked ([`Error::AlreadyExists`]); with `replace` true
/// whatever is at `path` is replaced (a symlink itself, never its target).
pub(crate) fn write_atomic(
    path: &Path,
    bytes: &[u8],
    secret: bool,
    replace: bool,
) -> Result<(), Error> {
    let (tmp, mut file) = create_temp(path, secret)?;
    let result = (|| {
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        if replace {
            std::fs::rename(&tmp, path)
        } else {
            // link(2) never replaces: it fails if the name exists, even as a dangling
            // symlink — the no-replace rename std does not have.
            std::fs::hard_link(&tmp, path)
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::AlreadyExists {
            path: path.to_owned(),
        }),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn create_temp(path: &Path, secret: bool) -> Result<(PathBuf, std::fs::File), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    for attempt in 0..16u32 {
        let tmp = dir.join(format!(
            ".{name}.{}.{nanos:x}{attempt}.tmp",
            std::process::id()
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(if secret { 0o600 } else { 0o644 });
        }
        #[cfg(not(unix))]
        let _ = secret;
        match options.open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(&tmp, e)),
        }
    }
    Err(Error::io(
        path,
        std::io::Error::other("cannot create a temporary file next to it"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_refuse_devices_directories_and_large_files() {
        let dir = tempfile::tempdir().unwrap();
        for path in [Path::new("/dev/zero"), dir.path()] {
            let err = read_bounded(path).unwrap_err().to_string();
            assert!(
                err.contains(&path.display().to_string()) && err.contains("not a regular file"),
                "{err}"
            );
        }
        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'a'; MAX_FILE_SIZE as usize + 1]).unwrap();
        let err = read_bounded(&big).unwrap_err().to_string();
        assert!(err.contains("big.pem") && err.contains("larger"), "{err}");
        assert!(read_bounded(&dir.path().join("missing")).unwrap().is_none());
        let ok = dir.path().join("ok.pem");
        std::fs::write(&ok, "pem").unwrap();
        assert_eq!(read_bounded(&ok).unwrap().unwrap(), b"pem");
    }

    #[cfg(unix)]
    #[test]
    fn writes_never_follow_a_symlink_nor_replace_a_new_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let link = dir.path().join("ca-key.pem");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        // Not asked to replace: the symlink is an existing name, nothing is written.
        assert!(matches!(
            write_atomic(&link, b"KEY", true, false),
            Err(Error::AlreadyExists { .. })
        ));
        // Asked to replace: the symlink itself is replaced, its target untouched.
        write_atomic(&link, b"KEY", true, true).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!std::fs::symlink_metadata(&link).unwrap().is_symlink());
        let mode = std::fs::metadata(&link).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
