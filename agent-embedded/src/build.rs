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
