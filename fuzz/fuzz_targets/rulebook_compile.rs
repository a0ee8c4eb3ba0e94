//! Arbitrary UTF-8 text through `reflex_rules::compile_str`: never panics; a rulebook that
//! compiles validates, exports, and evaluates an event without panicking; every error has a
//! position.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reflex_core::store::MapStore;
use reflex_core::{Event, Value, engine};
use reflex_rules::{Catalog, compile_str};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match compile_str("fuzz.yml", text, &Catalog::builtin()) {
        Ok(compiled) => {
            let program = compiled.program();
            program.validate().expect("a compiled rulebook validates");
            let _ = compiled.to_postcard();
            let _ = compiled.to_rust_source("RULES");
            let mut store = MapStore::new(64);
            for (i, name) in compiled.rule_names().into_iter().enumerate() {
                let tag = program
                    .entries
                    .get(i % program.entries.len().max(1))
                    .map(|e| program.str(e.pattern).replace(['*', '?', '[', ']'], "x"))
                    .unwrap_or_else(|| "/x".into());
                let Ok(mut event) = Event::new(&tag, "fuzz") else {
                    continue;
                };
                let _ = event.push(name, Value::Float(i as f64));
                engine::evaluate(&program, &mut store, &event, 1_000 * i as u64, |_| {});
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            for d in errors.iter() {
                let line = d.to_string();
                assert!(line.starts_with("fuzz.yml:"), "{line}");
            }
        }
    }
});
