//! The access-token signing key: from configuration, or — on the embedded SQLite default only —
//! generated once and kept beside the database with owner-only permissions.

use std::io::Write;
use std::path::Path;

use crate::auth::jwt::MIN_KEY_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the signing key must be at least {MIN_KEY_BYTES} bytes")]
    TooShort,
    #[error("cannot read the signing key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write the signing key file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot generate a signing key: {0}")]
    Random(String),
}

/// Checks a configured key.
pub fn from_config(secret: &str) -> Result<Vec<u8>, KeyError> {
    let bytes = secret.trim().as_bytes().to_vec();
    if bytes.len() < MIN_KEY_BYTES {
        return Err(KeyError::TooShort);
    }
    Ok(bytes)
}

/// Reads the key kept at `path`, or makes one there (64 random bytes, hex, mode 0600).
pub fn load_or_create(path: &Path) -> Result<Vec<u8>, KeyError> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => return from_config(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(KeyError::Read {
                path: shown,
                source,
            });
        }
    }
    let mut bytes = [0_u8; 64];
    getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
    let key = hex::encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|source| KeyError::Write {
        path: shown.clone(),
        source,
    })?;
    file.write_all(key.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| KeyError::Write {
            path: shown,
            source,
        })?;
    Ok(key.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_are_refused() {
        assert!(from_config("short").is_err());
        assert!(from_config(&"k".repeat(32)).is_ok());
    }

    #[test]
    fn a_generated_key_is_kept_private_and_reused() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("signing.key");
        let first = load_or_create(&path).expect("created");
        let second = load_or_create(&path).expect("read back");
        assert_eq!(first, second);
        assert_eq!(first.len(), 128);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
