//! A signing key on disk: 32 bytes of seed as base64url, in a file only its
//! owner may read. The broker keeps its key this way, and so does each
//! agent. A file that others can read or write is refused rather than used.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use mandate_core::SigningKey;
use zeroize::Zeroizing;

/// Why the key file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Others may read or write the file.
    #[error("{0} is readable or writable by others; run: chmod 600 {0}")]
    TooOpen(PathBuf),
    /// The file does not hold a key.
    #[error("{0} does not hold a signing key")]
    Malformed(PathBuf),
    /// [`load`] found no file.
    #[error("no key at {0}")]
    Missing(PathBuf),
    /// [`create`] found a file already there.
    #[error("{0} already exists; it is not overwritten")]
    Exists(PathBuf),
    /// Reading or writing failed.
    #[error("cannot use the key file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Loads the key at `path`, or makes one there (mode 0600) if none exists.
pub fn load_or_create(path: &Path) -> Result<SigningKey, KeyFileError> {
    match load(path) {
        Err(KeyFileError::Missing(_)) => match create(path) {
            // Another process made it between the two steps: use theirs.
            Err(KeyFileError::Exists(_)) => load(path),
            made => made,
        },
        loaded => loaded,
    }
}

/// Loads the key at `path`, refusing a file others may read or write.
pub fn load(path: &Path) -> Result<SigningKey, KeyFileError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyFileError::Missing(path.to_owned()));
        }
        Err(source) => {
            return Err(KeyFileError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    check_private(path, &meta)?;
    let text =
        Zeroizing::new(
            std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
                path: path.to_owned(),
                source,
            })?,
        );
    let seed = mandate_core::base64url::decode(text.trim())
        .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
        .map(Zeroizing::new)
        .ok_or_else(|| KeyFileError::Malformed(path.to_owned()))?;
    Ok(SigningKey::from_seed(&seed))
}

/// Makes a new key at `path` (mode 0600). An existing file is never
/// overwritten.
pub fn create(path: &Path) -> Result<SigningKey, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let mut file = match create_private(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(KeyFileError::Exists(path.to_owned()));
        }
        Err(e) => return Err(io(e)),
    };
    let text = Zeroizing::new(mandate_core::base64url::encode(key.to_seed().as_ref()));
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    Ok(key)
}

#[cfg(unix)]
fn check_private(path: &Path, meta: &std::fs::Metadata) -> Result<(), KeyFileError> {
    use std::os::unix::fs::PermissionsExt as _;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(KeyFileError::TooOpen(path.to_owned()));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path, _: &std::fs::Metadata) -> Result<(), KeyFileError> {
    Ok(())
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn made_once_private_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        assert!(matches!(load(&path), Err(KeyFileError::Missing(_))));
        let first = load_or_create(&path).unwrap();
        assert!(matches!(create(&path), Err(KeyFileError::Exists(_))));
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = load_or_create(&path).unwrap();
        assert_eq!(first.thumbprint(), again.thumbprint());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(KeyFileError::TooOpen(_))
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(KeyFileError::Malformed(_))
        ));
    }
}
