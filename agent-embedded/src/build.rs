//! For firmware build scripts (feature `build`, std): compiles the device rulebook into Rust
//! source that the firmware `include!`s, so the rulebook lives in flash as a `static`.
//!
//! In a firmware crate's `build.rs`, with
//! `[build-dependencies] reflex-agent-embedded = { path = "...", features = ["build"] }`:
//!
//! ```no_run
//! if let Err(e) = reflex_agent_embedded::build::rulebook("rules.yml", "RULES") {
//!     eprintln!("{e}");
//!     std::process::exit(1);
//! }
//! ```
//!
//! and in its `main.rs`, `include!(concat!(env!("OUT_DIR"), "/rules.rs"));` defines
//! `pub static RULES: reflex_core::program::Program<'static>`.
//!
//! The rulebook is compiled against the reaction catalog of a device: the built-ins (which a
//! device refuses) plus the device reactions ([`DEVICE_KEYS`]), given to the compiler with
//! [`Catalog::with_keys`]. Every reaction must then be a local device reaction, or the build
//! fails with a message naming it, so a rulebook the [`Agent`](crate::Agent) would refuse at
//! boot never reaches a device.

extern crate std;

use std::format;
use std::fs;
use std::path::{Path, PathBuf};
use std::string::String;
use std::vec::Vec;

use reflex_rules::{Catalog, Compiled, compile_path};

use crate::reaction::{DEVICE_KEYS, DeviceFn};

/// Why a firmware build step failed.
#[derive(Debug)]
pub enum BuildError {
    /// Cargo did not set an environment variable every build script has.
    Env(&'static str),
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The rulebook does not compile.
    Rulebook(reflex_rules::Errors),
    /// The rulebook compiles, but some reactions are not ones the device performs itself: one
    /// message per reaction.
    NotDevice {
        /// The rulebook.
        path: PathBuf,
        /// What is wrong with each reaction.
        reasons: Vec<String>,
    },
    /// The key file is not a key file.
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: reflex_core::auth::keyfile::KeyError,
    },
    /// The key file holds another kind of key than a device's HMAC key.
    KeyKind {
        /// The file.
        path: PathBuf,
        /// The kind it holds.
        kind: reflex_core::auth::KeyKind,
    },
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BuildError::Env(var) => write!(f, "{var} is not set: run from a cargo build script"),
            BuildError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            BuildError::Rulebook(e) => write!(f, "{e}"),
            BuildError::NotDevice { path, reasons } => {
                write!(f, "{}: {}", path.display(), reasons.join("; "))
            }
            BuildError::KeyFile { path, source } => write!(f, "{}: {source}", path.display()),
            BuildError::KeyKind { path, kind } => write!(
                f,
                "{}: holds {kind} where a device's HMAC key is expected",
                path.display()
            ),
        }
    }
}

impl std::error::Error for BuildError {}

/// The reaction catalog of a device: the built-ins and [`DEVICE_KEYS`].
pub fn device_catalog() -> Catalog {
    Catalog::builtin().with_keys(DEVICE_KEYS)
}

fn env(var: &'static str) -> Result<String, BuildError> {
    std::env::var(var).map_err(|_| BuildError::Env(var))
}

fn write(path: &Path, text: &str) -> Result<(), BuildError> {
    fs::write(path, text).map_err(|source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Compiles `rulebook` (a file or a directory of rulebook files) for a device, checks that
/// every reaction is a local device reaction, and returns it.
pub fn compile(rulebook: &Path) -> Result<Compiled, BuildError> {
    let compiled = compile_path(rulebook, &device_catalog()).map_err(BuildError::Rulebook)?;
    let program = compiled.program();
    let mut bad = Vec::new();
    for r in program.reactions {
        let key = program.str(r.key);
        if DeviceFn::from_key(key).is_none() {
            bad.push(format!(
                "{key}: not a device reaction (use one of {DEVICE_KEYS:?})"
            ));
        } else if r.remote || r.target.len != 0 {
            bad.push(format!(
                "{key}: a device performs its own reactions; remove `target:`"
            ));
        }
    }
    if !bad.is_empty() {
        return Err(BuildError::NotDevice {
            path: rulebook.to_path_buf(),
            reasons: bad,
        });
    }
    Ok(compiled)
}

/// The whole build-script step: compiles `rulebook` (relative to the crate's manifest
/// directory) and writes `$OUT_DIR/rules.rs` defining `pub static <name>: Program<'static>`.
/// Tells cargo to rerun when the rulebook changes. Returns the path written.
pub fn rulebook(rulebook: &str, name: &str) -> Result<PathBuf, BuildError> {
    let manifest = env("CARGO_MANIFEST_DIR")?;
    let out = PathBuf::from(env("OUT_DIR")?);
    let path = Path::new(&manifest).join(rulebook);
    std::println!("cargo:rerun-if-changed={}", path.display());
    let compiled = compile(&path)?;
    let target = out.join("rules.rs");
    write(&target, &compiled.to_rust_source(name))?;
    Ok(target)
}

/// The build-script step for a device's HMAC key: when the environment variable `var` names a
/// key file (`reflex-hmac-sha256 <64 hex digits>`, as `reflex keys gen` writes it), parses it
/// and writes `$OUT_DIR/device_key.rs` defining
/// `pub const <name>: Option<reflex_agent_embedded::MacKey>` as `Some(key)`; when `var` is
/// unset or empty, as `None` (lab mode). Tells cargo to rerun when `var` or the file changes.
/// Returns whether a key was found.
///
/// Errors: the file cannot be read, is not a key file, or holds another kind of key.
pub fn device_key(var: &str, name: &str) -> Result<bool, BuildError> {
    let out = PathBuf::from(env("OUT_DIR")?);
    std::println!("cargo:rerun-if-env-changed={var}");
    let path = std::env::var_os(var).filter(|p| !p.is_empty());
    let value = match &path {
        None => String::from("None"),
        Some(path) => {
            let path = Path::new(path);
            std::println!("cargo:rerun-if-changed={}", path.display());
            let text = fs::read_to_string(path).map_err(|source| BuildError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            let key =
                reflex_core::auth::KeyFile::parse(&text).map_err(|source| BuildError::KeyFile {
                    path: path.to_path_buf(),
                    source,
                })?;
            if key.kind != reflex_core::auth::KeyKind::Mac {
                return Err(BuildError::KeyKind {
                    path: path.to_path_buf(),
                    kind: key.kind,
                });
            }
            format!(
                "Some(reflex_agent_embedded::MacKey::from_bytes({:?}))",
                key.bytes
            )
        }
    };
    let target = out.join("device_key.rs");
    let source = format!(
        "/// The device's HMAC key, from ${var} at build time; `None`: lab mode.\n\
         pub const {name}: Option<reflex_agent_embedded::MacKey> = {value};\n"
    );
    write(&target, &source)?;
    Ok(path.is_some())
}
