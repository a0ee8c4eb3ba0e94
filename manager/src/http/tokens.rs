//! Bearer tokens: `<name>.token` files in the Manager's trust directory (written by
//! `reflex keys gen --token --name NAME`, mode 0600). A token authenticates its holder as the
//! source `<name>` on the ingest endpoints; `admin.token` authorizes `POST /reload`.
//!
//! The directory is read again when its modification time changes, so a token added while
//! the Manager runs is honoured without a restart. A token file that others may read or
//! write is refused with the `chmod` to run, as a key file is. Tokens are compared in
//! constant time.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// The extension of a token file.
pub const TOKEN_EXT: &str = "token";

/// The name of the token that authorizes `POST /reload`.
pub const ADMIN: &str = "admin";
/// Fewest characters a token holds.
pub const MIN_TOKEN_LEN: usize = 32;
/// Most bytes read from a token file.
const MAX_TOKEN_FILE: u64 = 4096;

/// The tokens of one trust directory.
#[derive(Debug)]
pub struct Tokens {
    dir: Option<PathBuf>,
    loaded: Mutex<Loaded>,
}

#[derive(Debug, Default)]
struct Loaded {
    mtime: Option<SystemTime>,
    /// `(holder, token)`.
    tokens: Vec<(String, Vec<u8>)>,
}

impl Tokens {
    /// The tokens of `dir` (none without one).
    pub fn new(dir: Option<&Path>) -> Tokens {
        let tokens = Tokens {
            dir: dir.map(Path::to_path_buf),
            loaded: Mutex::new(Loaded::default()),
        };
        tokens.refresh();
        tokens
    }

    /// Whether a trust directory is configured (without one, nothing authenticates).
    pub fn configured(&self) -> bool {
        self.dir.is_some()
    }

    /// The holder of `token`: the name of the token file that holds it.
    pub fn holder(&self, token: &str) -> Option<String> {
        self.refresh();
        let loaded = self.loaded.lock().ok()?;
        let mut found = None;
        for (name, t) in &loaded.tokens {
            if constant_time_eq(t, token.as_bytes()) {
                found = Some(name.clone());
            }
        }
        found
    }

    /// How many tokens are loaded.
    pub fn len(&self) -> usize {
        self.refresh();
        self.loaded.lock().map(|l| l.tokens.len()).unwrap_or(0)
    }

    fn refresh(&self) {
        let Some(dir) = &self.dir else { return };
        let mtime = std::fs::metadata(dir).and_then(|m| m.modified()).ok();
        let Ok(mut loaded) = self.loaded.lock() else {
            return;
        };
        if mtime.is_some() && loaded.mtime == mtime {
            return;
        }
        loaded.mtime = mtime;
        loaded.tokens = read_dir(dir);
    }
}

fn read_dir(dir: &Path) -> Vec<(String, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut tokens = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some(TOKEN_EXT) {
            continue;
        }
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() || meta.len() > MAX_TOKEN_FILE {
            tracing::warn!(file = %path.display(), "token file refused: not a small regular file");
            continue;
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                mode = format!("{mode:o}"),
                "token file refused: others may read or write it; run chmod 600 {}",
                path.display()
            );
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let token = text.trim();
        if token.len() < MIN_TOKEN_LEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
            tracing::warn!(
                file = %path.display(),
                "token file refused: a token is one word of at least {MIN_TOKEN_LEN} printable characters"
            );
            continue;
        }
        tokens.push((name.to_string(), token.as_bytes().to_vec()));
    }
    tokens
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// Writes a token file of mode 0600 for `name`, as `reflex keys gen --token` does.
    fn generate_token(dir: &Path, name: &str) -> std::io::Result<PathBuf> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{name}.{TOKEN_EXT}"));
        let token: String = (0..32)
            .map(|i| format!("{:02x}", (i * 7 + usize::from(name.as_bytes()[0])) % 256))
            .collect();
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        writeln!(file, "{token}")?;
        Ok(path)
    }

    #[test]
    fn tokens_name_their_holders_and_loose_files_are_refused() {
        let dir = std::env::temp_dir().join(format!("reflex-tokens-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = generate_token(&dir, "hooks").unwrap();
        let token = std::fs::read_to_string(&path).unwrap().trim().to_string();
        assert_eq!(token.len(), 64);
        let tokens = Tokens::new(Some(&dir));
        assert_eq!(tokens.holder(&token).as_deref(), Some("hooks"));
        assert_eq!(tokens.holder("nope"), None);
        assert_eq!(tokens.holder(&token[..63]), None);
        let loose = generate_token(&dir, "loose").unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
        let loose_token = std::fs::read_to_string(&loose).unwrap().trim().to_string();
        assert_eq!(Tokens::new(Some(&dir)).holder(&loose_token), None);
        assert!(generate_token(&dir, "hooks").is_err(), "never overwritten");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
