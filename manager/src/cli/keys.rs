//! `reflex keys gen`: makes the keys of reflex's message authentication.
//!
//! * An Ed25519 key pair: `NAME.key`, the secret key (mode 0600), and `NAME.pub`, its public
//!   key (mode 0644). The Manager signs actions with its secret key and Actors verify them with
//!   its public key; an agent signs its events with its own secret key and the Manager verifies
//!   them with the public key found in its `--trust` directory.
//! * A device key (`--mac`): `NAME.mac` (mode 0600), 32 random bytes shared by one device and
//!   the Manager, which both compute HMAC-SHA256 tags with it.
//! * An HTTP bearer token (`--token`): `NAME.token` (mode 0600), 32 random bytes as hex; in
//!   the Manager's trust directory it lets its holder send events as source `NAME` over
//!   `--http`, and `admin.token` authorizes `POST /reload`.
//!
//! Secret files are created with mode 0600 in one step (never written first and restricted
//! afterwards), and an existing file is never overwritten. The format of the files is
//! [`reflex_core::auth::keyfile`]'s; see `docs/security.md`.

use std::path::{Path, PathBuf};

use reflex_core::auth::keyfile::{self, KeyFile, KeyKind};
use reflex_core::auth::{KEY_LEN, SecretKey};

use crate::Error;
use crate::error::TrustError;

/// Arguments of `reflex keys`.
#[derive(Debug, Clone, clap::Args)]
pub struct KeysArgs {
    /// What to do with keys.
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// The subcommands of `reflex keys`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum KeysCommand {
    /// Generate an Ed25519 key pair (NAME.key, mode 0600, and NAME.pub), or with --mac a
    /// device's HMAC key (NAME.mac, mode 0600).
    Gen(GenArgs),
}

/// Arguments of `reflex keys gen`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenArgs {
    /// The directory to write the files into (created with mode 0700 when missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// The id of the agent, device or Manager the key belongs to; the files are named after
    /// it. Default: this host's name (required with --mac).
    #[arg(long)]
    pub name: Option<String>,
    /// Generate a device's HMAC key instead of an Ed25519 key pair.
    #[arg(long, conflicts_with = "token")]
    pub mac: bool,
    /// Generate an HTTP bearer token (NAME.token, mode 0600) for `--http` ingest as source
    /// NAME; `--name admin` makes the token that authorizes `POST /reload`.
    #[arg(long)]
    pub token: bool,
}

/// Runs `reflex keys`: exit status 0 with the files written, 1 with a message.
pub fn main(args: &KeysArgs) -> std::process::ExitCode {
    let KeysCommand::Gen(gen_args) = &args.command;
    match generate(gen_args) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("reflex keys gen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn generate(args: &GenArgs) -> Result<Vec<String>, Error> {
    if args.token {
        let Some(name) = &args.name else {
            return Err(TrustError::TokenNeedsName.into());
        };
        let path = generate_token(&args.out, name)?;
        let what = if name == crate::http::tokens::ADMIN {
            "it authorizes POST /reload (reflex reload --token FILE)".to_string()
        } else {
            format!("it sends events over --http as source `{name}`")
        };
        Ok(vec![
            format!("wrote {} (secret, mode 0600)", path.display()),
            format!("keep it in the Manager's --trust directory; {what}"),
        ])
    } else if args.mac {
        let Some(name) = &args.name else {
            return Err(TrustError::MacNeedsName.into());
        };
        let path = generate_mac(&args.out, name)?;
        Ok(vec![
            format!("wrote {} (secret, mode 0600)", path.display()),
            format!(
                "put a copy in the Manager's --trust directory, and the key into {name}'s firmware"
            ),
        ])
    } else {
        let name = args.name.clone().unwrap_or_else(super::send::hostname);
        let (secret, public) = generate_pair(&args.out, &name)?;
        Ok(vec![
            format!("wrote {} (secret, mode 0600)", secret.display()),
            format!("wrote {} (public)", public.display()),
        ])
    }
}

/// 32 bytes from the operating system's random source.
fn random_key() -> Result<[u8; KEY_LEN], TrustError> {
    let mut bytes = [0u8; KEY_LEN];
    getrandom::fill(&mut bytes).map_err(TrustError::Random)?;
    Ok(bytes)
}

/// The path of `name`'s key file of `kind` in `dir`, once `name` is checked to be an id.
fn key_path(dir: &Path, name: &str, kind: KeyKind) -> Result<PathBuf, TrustError> {
    reflex_core::id::check_id(name).map_err(|source| TrustError::BadName {
        name: name.to_owned(),
        source,
    })?;
    Ok(dir.join(format!("{name}.{}", kind.extension())))
}

/// Generates an Ed25519 key pair `DIR/NAME.key` (0600) and `DIR/NAME.pub` (0644); returns
/// their paths. Neither file may exist yet.
pub(super) fn generate_pair(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), TrustError> {
    let secret_path = key_path(dir, name, KeyKind::Ed25519Secret)?;
    let public_path = key_path(dir, name, KeyKind::Ed25519Public)?;
    if public_path.exists() {
        return Err(keyfile::KeyFileError::Exists(public_path).into());
    }
    let secret = SecretKey::from_seed(random_key()?);
    let secret_file = KeyFile {
        kind: KeyKind::Ed25519Secret,
        bytes: secret.seed(),
    };
    keyfile::write_new(&secret_path, &secret_file)?;
    let public_file = KeyFile {
        kind: KeyKind::Ed25519Public,
        bytes: secret.public().to_bytes(),
    };
    if let Err(e) = keyfile::write_new(&public_path, &public_file) {
        let _ = std::fs::remove_file(&secret_path);
        return Err(e.into());
    }
    Ok((secret_path, public_path))
}

/// Generates an HTTP bearer token `DIR/NAME.token` (0600): 32 random bytes as 64 lower-case
/// hex digits and a newline; returns its path. The file may not exist yet.
fn generate_token(dir: &Path, name: &str) -> Result<PathBuf, TrustError> {
    use std::fmt::Write as _;
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = key_path(dir, name, KeyKind::Mac)?.with_extension(crate::http::tokens::TOKEN_EXT);
    let mut text = String::with_capacity(2 * KEY_LEN + 1);
    for b in random_key()? {
        let _ = write!(text, "{b:02x}");
    }
    text.push('\n');
    let failed = |e| keyfile::KeyFileError::Write(path.clone(), e);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(failed)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => keyfile::KeyFileError::Exists(path.clone()),
            _ => failed(e),
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(failed)?;
    Ok(path)
}

/// Generates a device's HMAC key `DIR/NAME.mac` (0600); returns its path.
fn generate_mac(dir: &Path, name: &str) -> Result<PathBuf, TrustError> {
    let path = key_path(dir, name, KeyKind::Mac)?;
    let key = KeyFile {
        kind: KeyKind::Mac,
        bytes: random_key()?,
    };
    keyfile::write_new(&path, &key)?;
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
        let s = keyfile::read(&secret).unwrap();
        let p = keyfile::read(&public).unwrap();
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
        assert_eq!(keyfile::read(&mac).unwrap().kind, KeyKind::Mac);
        assert_ne!(keyfile::read(&mac).unwrap().bytes, s.bytes);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_are_ids() {
        let dir = scratch("names");
        for bad in ["", "a/b", "../x", ".hidden", "web *", &"x".repeat(33)] {
            assert!(generate_mac(&dir, bad).is_err(), "{bad:?}");
        }
        assert!(!dir.exists(), "nothing is written for a bad name");
    }
}
