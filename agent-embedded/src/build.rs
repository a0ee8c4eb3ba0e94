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
//! device refuses) plus the device reactions ([`DEVICE_KEYS`]). The catalog of the rules
//! compiler is made from plugins on disk, so the device keys are added the way a plugin is: an
//! executable marker file per key, under `$OUT_DIR/device-plugins/reactions/device/`. Every
//! reaction must then be a local device reaction, or the build fails with a message naming it,
//! so a rulebook the [`Agent`](crate::Agent) would refuse at boot never reaches a device.

extern crate std;

use std::format;
use std::fs;
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::vec::Vec;

use reflex_rules::{Catalog, Compiled, compile_path};

use crate::reaction::{DEVICE_KEYS, DeviceFn};

/// The reaction catalog of a device: the built-ins and [`DEVICE_KEYS`], the latter declared as
/// marker plugins under `dir`.
pub fn device_catalog(dir: &Path) -> Result<Catalog, String> {
    for key in DEVICE_KEYS {
        let mut parts = key.split('.').skip(1);
        let (Some(module), Some(function)) = (parts.next(), parts.next()) else {
            return Err(format!("malformed device key {key}"));
        };
        let module_dir = dir.join("reactions").join(module);
        fs::create_dir_all(&module_dir).map_err(|e| format!("{}: {e}", module_dir.display()))?;
        let path = module_dir.join(function);
        let marker =
            "#!/bin/sh\necho 'a device reaction: performed by the device agent' >&2\nexit 2\n";
        fs::write(&path, marker).map_err(|e| format!("{}: {e}", path.display()))?;
        set_executable(&path)?;
    }
    Ok(Catalog::with_plugins(&[dir.to_path_buf()]))
}

#[cfg(unix)]
fn set_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(not(unix))]
fn set_executable(_path: &Path) -> Result<(), String> {
    Ok(())
}

/// Compiles `rulebook` (a file or a directory of rulebook files) for a device, checks that
/// every reaction is a local device reaction, and returns it.
pub fn compile(rulebook: &Path, plugin_dir: &Path) -> Result<Compiled, String> {
    let catalog = device_catalog(plugin_dir)?;
    let compiled = compile_path(rulebook, &catalog).map_err(|e| e.to_string())?;
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
        return Err(format!("{}: {}", rulebook.display(), bad.join("; ")));
    }
    Ok(compiled)
}

/// The whole build-script step: compiles `rulebook` (relative to the crate's manifest
/// directory) and writes `$OUT_DIR/rules.rs` defining `pub static <name>: Program<'static>`.
/// Tells cargo to rerun when the rulebook changes. Returns the path written.
pub fn rulebook(rulebook: &str, name: &str) -> Result<PathBuf, String> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?;
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let path = Path::new(&manifest).join(rulebook);
    std::println!("cargo:rerun-if-changed={}", path.display());
    let compiled = compile(&path, &out.join("device-plugins"))?;
    let target = out.join("rules.rs");
    fs::write(&target, compiled.to_rust_source(name))
        .map_err(|e| format!("{}: {e}", target.display()))?;
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
pub fn device_key(var: &str, name: &str) -> Result<bool, String> {
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?);
    std::println!("cargo:rerun-if-env-changed={var}");
    let path = std::env::var_os(var).filter(|p| !p.is_empty());
    let value = match &path {
        None => String::from("None"),
        Some(path) => {
            let path = Path::new(path);
            std::println!("cargo:rerun-if-changed={}", path.display());
            let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let key = reflex_core::auth::KeyFile::parse(&text)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if key.kind != reflex_core::auth::KeyKind::Mac {
                return Err(format!(
                    "{}: holds {} where a device's HMAC key is expected",
                    path.display(),
                    key.kind
                ));
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
    fs::write(&target, source).map_err(|e| format!("{}: {e}", target.display()))?;
    Ok(path.is_some())
}
