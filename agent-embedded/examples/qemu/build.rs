//! Compiles rules.yml into flash (`$OUT_DIR/rules.rs`), writes the device's HMAC key from the
//! key file `$REFLEX_DEVICE_KEY` names (`$OUT_DIR/device_key.rs`; lab mode when unset) and
//! puts memory.x on the linker's path.

use std::path::PathBuf;

fn main() {
    if let Err(e) = reflex_agent_embedded::build::rulebook("rules.yml", "RULES") {
        eprintln!("{e}");
        std::process::exit(1);
    }
    if let Err(e) = reflex_agent_embedded::build::device_key("REFLEX_DEVICE_KEY", "DEVICE_KEY") {
        eprintln!("REFLEX_DEVICE_KEY: {e}");
        std::process::exit(1);
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::copy("memory.x", out.join("memory.x")).expect("memory.x beside Cargo.toml");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
}
