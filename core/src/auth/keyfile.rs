//! Key files: one key per file, as one line of text.
//!
//! ```text
//! reflex-ed25519-secret 9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60
//! ```
//!
//! The first word names the kind ([`KeyKind`]), the second is the key's 32 bytes in hex. Blank
//! lines and lines starting with `#` are ignored; anything else is an error. `reflex keys gen`
//! writes these files (secret ones with mode 0600); a firmware build script can read a device's
//! key with [`KeyFile::parse`], which needs no `std`.
//!
//! ```
//! use reflex_core::auth::{KeyFile, KeyKind};
//! let text = "# node-7\nreflex-hmac-sha256 0101010101010101010101010101010101010101010101010101010101010101\n";
//! let key = KeyFile::parse(text).unwrap();
//! assert_eq!(key.kind, KeyKind::Mac);
//! assert_eq!(key.to_string(), text.lines().nth(1).unwrap().to_owned() + "\n");
//! assert!(KeyFile::parse("reflex-hmac-sha256 0101").is_err());
//! ```

use core::fmt;

use super::{KEY_LEN, MacKey, Signer, Verifier};

/// What a key file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum KeyKind {
    /// An Ed25519 secret key (its 32-byte seed): `reflex-ed25519-secret`. Secret.
    Ed25519Secret,
    /// An Ed25519 public key: `reflex-ed25519-public`. May be shown to anyone.
    Ed25519Public,
    /// A device's HMAC-SHA256 key: `reflex-hmac-sha256`. Secret, shared by the device and the
    /// Manager.
    Mac,
}

impl KeyKind {
    /// Every kind.
    pub const ALL: [KeyKind; 3] = [KeyKind::Ed25519Secret, KeyKind::Ed25519Public, KeyKind::Mac];

    /// The first word of the file.
    pub const fn label(self) -> &'static str {
        match self {
            KeyKind::Ed25519Secret => "reflex-ed25519-secret",
            KeyKind::Ed25519Public => "reflex-ed25519-public",
            KeyKind::Mac => "reflex-hmac-sha256",
        }
    }

    /// The extension of a file of this kind, named after its owner's id: `<id>.key`,
    /// `<id>.pub`, `<id>.mac`.
    pub const fn extension(self) -> &'static str {
        match self {
            KeyKind::Ed25519Secret => "key",
            KeyKind::Ed25519Public => "pub",
            KeyKind::Mac => "mac",
        }
    }

    /// Whether a file of this kind must be kept from other users.
    pub const fn is_secret(self) -> bool {
        !matches!(self, KeyKind::Ed25519Public)
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyKind::Ed25519Secret => "an Ed25519 secret key",
            KeyKind::Ed25519Public => "an Ed25519 public key",
            KeyKind::Mac => "an HMAC key",
        })
    }
}

/// Why a key file's text is not a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum KeyError {
    /// No key line.
    Empty,
    /// The first word is not a kind this build knows.
    UnknownKind,
    /// The key is not hex digits.
    BadHex,
    /// The key is not 32 bytes: the number of hex digits found.
    WrongLength(usize),
    /// More than one key line, or more than two words on it.
    Extra,
    /// The bytes are not a valid Ed25519 public key.
    InvalidPublicKey,
    /// A key of the wrong kind for its use: `found` where `expected` was needed.
    WrongKind {
        /// What was needed.
        expected: KeyKind,
        /// What the file holds.
        found: KeyKind,
    },
    /// This build has no Ed25519 support (the `ed25519` feature).
    Unsupported,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Empty => f.write_str("no key in the file"),
            KeyError::UnknownKind => write!(
                f,
                "not a reflex key file: a key line starts with `{}`, `{}` or `{}`",
                KeyKind::Ed25519Secret.label(),
                KeyKind::Ed25519Public.label(),
                KeyKind::Mac.label()
            ),
            KeyError::BadHex => f.write_str("the key is not hexadecimal"),
            KeyError::WrongLength(n) => write!(
                f,
                "the key has {n} hex digits, not {} (32 bytes)",
                2 * KEY_LEN
            ),
            KeyError::Extra => f.write_str("more than one key line, or extra words after the key"),
            KeyError::InvalidPublicKey => f.write_str("not a valid Ed25519 public key"),
            KeyError::WrongKind { expected, found } => {
                write!(f, "{found} where {expected} is needed")
            }
            KeyError::Unsupported => f.write_str("Ed25519 keys are not supported by this build"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for KeyError {}

/// A parsed key file: its kind and 32 bytes. `Display` writes the file's text (the key itself
/// for a secret one); `Debug` does not show the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyFile {
    /// What the bytes are.
    pub kind: KeyKind,
    /// The key.
    pub bytes: [u8; KEY_LEN],
}

impl KeyFile {
    /// Parses a key file's text.
    pub fn parse(text: &str) -> Result<KeyFile, KeyError> {
        let mut found = None;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if found.is_some() {
                return Err(KeyError::Extra);
            }
            let mut words = line.split_whitespace();
            let label = words.next().unwrap_or("");
            let kind = KeyKind::ALL
                .into_iter()
                .find(|k| k.label() == label)
                .ok_or(KeyError::UnknownKind)?;
            let hex = words.next().ok_or(KeyError::WrongLength(0))?;
            if words.next().is_some() {
                return Err(KeyError::Extra);
            }
            found = Some(KeyFile {
                kind,
                bytes: parse_hex(hex)?,
            });
        }
        found.ok_or(KeyError::Empty)
    }

    /// What a sender tags with: an Ed25519 secret key or an HMAC key.
    ///
    /// Errors: [`KeyError::WrongKind`] for a public key; [`KeyError::Unsupported`] for an
    /// Ed25519 key without the `ed25519` feature.
    pub fn signer(&self) -> Result<Signer, KeyError> {
        match self.kind {
            KeyKind::Mac => Ok(Signer::Mac(MacKey::from_bytes(self.bytes))),
            #[cfg(feature = "ed25519")]
            KeyKind::Ed25519Secret => Ok(Signer::Ed25519(super::SecretKey::from_seed(self.bytes))),
            #[cfg(not(feature = "ed25519"))]
            KeyKind::Ed25519Secret => Err(KeyError::Unsupported),
            KeyKind::Ed25519Public => Err(KeyError::WrongKind {
                expected: KeyKind::Ed25519Secret,
                found: KeyKind::Ed25519Public,
            }),
        }
    }

    /// What a receiver checks tags with: an Ed25519 public key or an HMAC key. A secret
    /// Ed25519 key is refused: give its public half instead.
    ///
    /// Errors: [`KeyError::WrongKind`], [`KeyError::InvalidPublicKey`],
    /// [`KeyError::Unsupported`].
    pub fn verifier(&self) -> Result<Verifier, KeyError> {
        match self.kind {
            KeyKind::Mac => Ok(Verifier::Mac(MacKey::from_bytes(self.bytes))),
            #[cfg(feature = "ed25519")]
            KeyKind::Ed25519Public => super::PublicKey::from_bytes(&self.bytes)
                .map(Verifier::Ed25519)
                .ok_or(KeyError::InvalidPublicKey),
            #[cfg(not(feature = "ed25519"))]
            KeyKind::Ed25519Public => Err(KeyError::Unsupported),
            KeyKind::Ed25519Secret => Err(KeyError::WrongKind {
                expected: KeyKind::Ed25519Public,
                found: KeyKind::Ed25519Secret,
            }),
        }
    }
}

impl fmt::Display for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.label())?;
        f.write_str(" ")?;
        for b in &self.bytes {
            write!(f, "{b:02x}")?;
        }
        f.write_str("\n")
    }
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyFile({}, ..)", self.kind.label())
    }
}

fn parse_hex(hex: &str) -> Result<[u8; KEY_LEN], KeyError> {
    let digits = hex.as_bytes();
    if digits.len() != 2 * KEY_LEN {
        return Err(KeyError::WrongLength(digits.len()));
    }
    let mut out = [0u8; KEY_LEN];
    for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *o = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Ok(out)
}

fn nibble(c: u8) -> Result<u8, KeyError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => Err(KeyError::BadHex),
    }
}

#[cfg(feature = "std")]
pub use file::{KeyFileError, check_dir, read, write_new};

#[cfg(feature = "std")]
mod file {
    use std::path::{Path, PathBuf};

    use super::{KeyError, KeyFile};

    /// Why a key file cannot be used.
    #[derive(Debug)]
    pub enum KeyFileError {
        /// It cannot be read.
        Io(PathBuf, std::io::Error),
        /// Its text is not a key.
        Format(PathBuf, KeyError),
        /// A secret key that users other than its owner may read or write: the mode found.
        Exposed(PathBuf, u32),
        /// A key file, or the directory holding it, that users other than its owner may
        /// write (anyone could swap in their own key), as ssh's StrictModes refuses: the path
        /// and the mode found.
        Writable(PathBuf, u32),
        /// The file exists already; a key is never overwritten.
        Exists(PathBuf),
        /// It cannot be written.
        Write(PathBuf, std::io::Error),
    }

    impl core::fmt::Display for KeyFileError {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self {
                KeyFileError::Io(p, e) => write!(f, "{}: cannot read the key: {e}", p.display()),
                KeyFileError::Format(p, e) => write!(f, "{}: {e}", p.display()),
                KeyFileError::Exposed(p, mode) => write!(
                    f,
                    "{}: a secret key open to other users (mode {mode:04o}); run `chmod 600 {}`",
                    p.display(),
                    p.display()
                ),
                KeyFileError::Writable(p, mode) => write!(
                    f,
                    "{}: writable by other users (mode {mode:04o}), who could put their own key \
                     there; run `chmod go-w {}`",
                    p.display(),
                    p.display()
                ),
                KeyFileError::Exists(p) => write!(
                    f,
                    "{} exists; keys are never overwritten: remove it first to replace it",
                    p.display()
                ),
                KeyFileError::Write(p, e) => {
                    write!(f, "{}: cannot write the key: {e}", p.display())
                }
            }
        }
    }

    impl std::error::Error for KeyFileError {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            match self {
                KeyFileError::Io(_, e) | KeyFileError::Write(_, e) => Some(e),
                KeyFileError::Format(_, e) => Some(e),
                KeyFileError::Exposed(..)
                | KeyFileError::Writable(..)
                | KeyFileError::Exists(_) => None,
            }
        }
    }

    /// Refuses a directory of keys that users other than its owner may write, unless its
    /// sticky bit keeps them from replacing files they do not own (as in `/tmp`). A missing
    /// directory is left to the read that follows.
    pub fn check_dir(dir: impl AsRef<Path>) -> Result<(), KeyFileError> {
        let dir = dir.as_ref();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let shown = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Ok(meta) = std::fs::metadata(shown) {
                let mode = meta.permissions().mode();
                if mode & 0o022 != 0 && mode & 0o1000 == 0 {
                    return Err(KeyFileError::Writable(shown.to_owned(), mode & 0o7777));
                }
            }
        }
        Ok(())
    }

    /// Reads and parses a key file. As ssh's StrictModes: a secret key (Ed25519 secret or
    /// HMAC) whose file other users may read or write is refused, and so is any key whose
    /// file or directory ([`check_dir`]) other users may write.
    pub fn read(path: impl AsRef<Path>) -> Result<KeyFile, KeyFileError> {
        let path = path.as_ref();
        check_dir(path.parent().unwrap_or(Path::new("")))?;
        let text =
            std::fs::read_to_string(path).map_err(|e| KeyFileError::Io(path.to_owned(), e))?;
        let key = KeyFile::parse(&text).map_err(|e| KeyFileError::Format(path.to_owned(), e))?;
        #[cfg(unix)]
        if key.kind.is_secret() {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| KeyFileError::Io(path.to_owned(), e))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(KeyFileError::Exposed(path.to_owned(), mode & 0o7777));
            }
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| KeyFileError::Io(path.to_owned(), e))?
                .permissions()
                .mode();
            if mode & 0o022 != 0 {
                return Err(KeyFileError::Writable(path.to_owned(), mode & 0o7777));
            }
        }
        Ok(key)
    }

    /// Writes `key` to the new file `path`, creating its directory (mode 0700) when missing:
    /// mode 0600 for a secret key, 0644 for a public one, synced to disk. An existing file is
    /// [`KeyFileError::Exists`]: keys are never overwritten.
    pub fn write_new(path: impl AsRef<Path>, key: &KeyFile) -> Result<(), KeyFileError> {
        use std::io::Write;
        let path = path.as_ref();
        let failed = |e| KeyFileError::Write(path.to_owned(), e);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(failed)?;
            }
            options.mode(if key.kind.is_secret() { 0o600 } else { 0o644 });
        }
        let mut file = options.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyFileError::Exists(path.to_owned())
            } else {
                failed(e)
            }
        })?;
        file.write_all(key.to_string().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[cfg(all(feature = "std", unix))]
    #[test]
    fn written_files_read_back_with_their_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("reflex-keyfile-{}", std::process::id()));
        for kind in KeyKind::ALL {
            let key = KeyFile {
                kind,
                bytes: [7; KEY_LEN],
            };
            let path = dir.join("keys").join(kind.label());
            write_new(&path, &key).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, if kind.is_secret() { 0o600 } else { 0o644 });
            assert_eq!(read(&path).unwrap(), key);
            assert!(matches!(
                write_new(&path, &key),
                Err(KeyFileError::Exists(_))
            ));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn round_trip_every_kind() {
        for kind in KeyKind::ALL {
            let mut bytes = [0u8; KEY_LEN];
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = i as u8;
            }
            let key = KeyFile { kind, bytes };
            let text = key.to_string();
            assert_eq!(text, format!("{} {HEX}\n", kind.label()));
            assert_eq!(KeyFile::parse(&text), Ok(key.clone()));
            assert!(!format!("{key:?}").contains("0102"));
        }
    }

    #[test]
    fn errors() {
        let line = |s: &str| KeyFile::parse(s).unwrap_err();
        assert_eq!(line(""), KeyError::Empty);
        assert_eq!(line("# only a comment\n\n"), KeyError::Empty);
        assert_eq!(line(&format!("ssh-ed25519 {HEX}")), KeyError::UnknownKind);
        assert_eq!(line("reflex-hmac-sha256"), KeyError::WrongLength(0));
        assert_eq!(line("reflex-hmac-sha256 abcd"), KeyError::WrongLength(4));
        assert_eq!(
            line(&format!("reflex-hmac-sha256 {}", HEX.replace('a', "g"))),
            KeyError::BadHex
        );
        assert_eq!(
            line(&format!("reflex-hmac-sha256 {HEX} x")),
            KeyError::Extra
        );
        assert_eq!(
            line(&format!(
                "reflex-hmac-sha256 {HEX}\nreflex-hmac-sha256 {HEX}"
            )),
            KeyError::Extra
        );
        let upper = KeyFile::parse(&format!("  reflex-hmac-sha256   {}  ", HEX.to_uppercase()));
        assert!(upper.is_ok());
    }

    #[test]
    fn kinds_fit_their_use() {
        let mac = KeyFile::parse(&format!("reflex-hmac-sha256 {HEX}")).unwrap();
        assert!(mac.signer().is_ok() && mac.verifier().is_ok());
        let public = KeyFile::parse(&format!("reflex-ed25519-public {HEX}")).unwrap();
        assert!(matches!(public.signer(), Err(KeyError::WrongKind { .. })));
        let secret = KeyFile::parse(&format!("reflex-ed25519-secret {HEX}")).unwrap();
        assert!(matches!(secret.verifier(), Err(KeyError::WrongKind { .. })));
        #[cfg(feature = "ed25519")]
        {
            assert!(secret.signer().is_ok());
            let Ok(Signer::Ed25519(s)) = secret.signer() else {
                panic!()
            };
            let public = KeyFile {
                kind: KeyKind::Ed25519Public,
                bytes: s.public().to_bytes(),
            };
            assert!(public.verifier().is_ok());
        }
    }

    #[cfg(all(feature = "std", unix))]
    #[test]
    fn exposed_secret_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir =
            std::env::temp_dir().join(format!("reflex-keyfile-exposed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k.mac");
        std::fs::write(&path, format!("reflex-hmac-sha256 {HEX}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read(&path).unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read(&path).unwrap().kind, KeyKind::Mac);
        // A public key may be readable by all.
        let public = dir.join("k.pub");
        std::fs::write(&public, format!("reflex-ed25519-public {HEX}\n")).unwrap();
        std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read(&public).is_ok());
        // Anyone may read a public key, but not rewrite it.
        std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = read(&public).unwrap_err();
        assert!(matches!(e, KeyFileError::Writable(..)), "{e}");
        assert!(e.to_string().contains("chmod go-w"), "{e}");
        std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
        // Nor the directory holding keys, unless it is sticky.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(read(&public), Err(KeyFileError::Writable(..))));
        assert!(matches!(check_dir(&dir), Err(KeyFileError::Writable(..))));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(read(&public).is_ok());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(
            read(dir.join("missing")),
            Err(KeyFileError::Io(..))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
