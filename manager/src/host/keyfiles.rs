//! Key files on disk: key names (source ids), and new key pairs and device keys written with
//! their modes in one step, never overwriting a file. The format of the files is
//! [`reflex_core::auth::keyfile`]'s; see `docs/security.md`.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use reflex_core::auth::{KEY_LEN, KeyFile, KeyKind, SecretKey};

use crate::Error;

/// Extension of an Ed25519 secret key file.
pub const SECRET_EXT: &str = "key";
/// Extension of an Ed25519 public key file.
pub const PUBLIC_EXT: &str = "pub";
/// Extension of a device's HMAC key file.
pub const MAC_EXT: &str = "mac";
/// Extension of an HTTP bearer token file.
pub const TOKEN_EXT: &str = "token";

/// 32 bytes from the operating system's random source.
fn random_key() -> Result<[u8; KEY_LEN], Error> {
    let mut bytes = [0u8; KEY_LEN];
    getrandom::fill(&mut bytes).map_err(|e| Error::Auth(format!("no random bytes: {e}")))?;
    Ok(bytes)
}

/// Checks a key name: it names the agent or device whose key it is (its source id), so it is
/// one tag segment of at most 32 bytes, without glob characters, not starting with `.`.
pub fn check_name(name: &str) -> Result<(), Error> {
    let bad = |c: char| c == '/' || c.is_whitespace() || c.is_control() || "*?[]{}\\".contains(c);
    if name.is_empty()
        || name.len() > reflex_core::event::MAX_SOURCE_LEN
        || name.starts_with('.')
        || name.chars().any(bad)
    {
        return Err(Error::Auth(format!(
            "key name {name:?}: use the agent's or device's id (at most {} bytes, no '/', \
             whitespace or glob characters, not starting with '.')",
            reflex_core::event::MAX_SOURCE_LEN
        )));
    }
    Ok(())
}

/// Writes `text` to a new file `path` created with `mode`; an existing file is an error.
fn write_new(path: &Path, text: &str, mode: u32) -> Result<(), Error> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Auth(format!(
                    "{} exists; keys are never overwritten: remove it first to replace it",
                    path.display()
                ))
            } else {
                Error::io(format!("create {}", path.display()), e)
            }
        })?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| Error::io(format!("write {}", path.display()), e))
}

/// Creates `dir` (mode 0700) when it does not exist.
fn make_dir(dir: &Path) -> Result<(), Error> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(format!("create {}", dir.display()), e))
}

/// Generates an Ed25519 key pair `DIR/NAME.key` (0600) and `DIR/NAME.pub` (0644); returns
/// their paths.
pub fn generate_pair(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), Error> {
    check_name(name)?;
    make_dir(dir)?;
    let secret = SecretKey::from_seed(random_key()?);
    let secret_path = dir.join(format!("{name}.{SECRET_EXT}"));
    let public_path = dir.join(format!("{name}.{PUBLIC_EXT}"));
    if public_path.exists() {
        return Err(Error::Auth(format!(
            "{} exists; keys are never overwritten: remove it first to replace it",
            public_path.display()
        )));
    }
    let secret_text = KeyFile {
        kind: KeyKind::Ed25519Secret,
        bytes: secret.seed(),
    };
    write_new(&secret_path, &secret_text.to_string(), 0o600)?;
    let public_text = KeyFile {
        kind: KeyKind::Ed25519Public,
        bytes: secret.public().to_bytes(),
    };
    if let Err(e) = write_new(&public_path, &public_text.to_string(), 0o644) {
        let _ = std::fs::remove_file(&secret_path);
        return Err(e);
    }
    Ok((secret_path, public_path))
}

/// Generates a device's HMAC key `DIR/NAME.mac` (0600); returns its path.
pub fn generate_mac(dir: &Path, name: &str) -> Result<PathBuf, Error> {
    check_name(name)?;
    make_dir(dir)?;
    let path = dir.join(format!("{name}.{MAC_EXT}"));
    let key = KeyFile {
        kind: KeyKind::Mac,
        bytes: random_key()?,
    };
    write_new(&path, &key.to_string(), 0o600)?;
    Ok(path)
}

/// Generates an HTTP bearer token `DIR/NAME.token` (0600): 32 random bytes as 64 lower-case
/// hex digits and a newline; returns its path.
pub fn generate_token(dir: &Path, name: &str) -> Result<PathBuf, Error> {
    use std::fmt::Write as _;
    check_name(name)?;
    make_dir(dir)?;
    let path = dir.join(format!("{name}.{TOKEN_EXT}"));
    let mut text = String::with_capacity(2 * KEY_LEN + 1);
    for b in random_key()? {
        let _ = write!(text, "{b:02x}");
    }
    text.push('\n');
    write_new(&path, &text, 0o600)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("reflex-keys-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn pairs_are_written_once_with_their_modes() {
        let dir = scratch("pair");
        let (secret, public) = generate_pair(&dir, "web-1").unwrap();
        assert_eq!(mode(&secret), 0o600);
        assert_eq!(mode(&dir), 0o700);
        let s = reflex_core::auth::keyfile::read(&secret).unwrap();
        let p = reflex_core::auth::keyfile::read(&public).unwrap();
        assert_eq!(s.kind, KeyKind::Ed25519Secret);
        assert_eq!(
            SecretKey::from_seed(s.bytes).public().to_bytes(),
            p.bytes,
            "the public key is the secret key's"
        );
        let again = generate_pair(&dir, "web-1").unwrap_err().to_string();
        assert!(again.contains("never overwritten"), "{again}");
        assert_eq!(std::fs::read(&secret).unwrap(), s.to_string().as_bytes());
        let mac = generate_mac(&dir, "node-7").unwrap();
        assert_eq!(mode(&mac), 0o600);
        assert_eq!(
            reflex_core::auth::keyfile::read(&mac).unwrap().kind,
            KeyKind::Mac
        );
        assert_ne!(
            reflex_core::auth::keyfile::read(&mac).unwrap().bytes,
            s.bytes
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_are_ids() {
        for bad in ["", "a/b", "../x", ".hidden", "web *", &"x".repeat(33)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("web-1").unwrap();
    }
}
