//! Every example rulebook against the events the real host beacons produce on this machine:
//! each entry's rules find their fields, as numbers, and the service example renders the
//! process beacon's name into its restart.

use std::path::PathBuf;

use reflex_beacons::Beacon;
use reflex_beacons::host::{Disk, Load, Process};
use reflex_core::Event;
use reflex_core::engine;
use reflex_core::store::MapStore;
use reflex_rules::{Catalog, Compiled, compile_path};

fn example(name: &str) -> Compiled {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules/examples"));
    compile_path(
        &dir.join(name),
        &Catalog::with_plugins(&[dir.join("plugins")]),
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// One event from a real beacon.
fn sample(beacon: &mut impl Beacon) -> Event {
    let mut event = Event::new(beacon.tag(), "web-1").unwrap();
    assert_eq!(
        beacon.sample(0, &mut event).unwrap(),
        reflex_beacons::Emit::Event
    );
    event
}

/// Evaluates `event` on `compiled`; every rule under the matched entries must have read a
/// number from it. Returns the firings as (rule, group, rendered argv of the first remote
/// reaction's `argv`).
fn evaluate(compiled: &Compiled, event: &Event) -> Vec<(String, String, Vec<String>)> {
    let p = compiled.program();
    let mut store = MapStore::new(100);
    let mut fired = Vec::new();
    let out = engine::evaluate(&p, &mut store, event, 1_000, |f| {
        let rule = &p.rules[f.rule as usize];
        let ctx = f.context(event);
        let mut argv = Vec::new();
        for r in p.reactions_of(rule) {
            for a in p.args_of(r) {
                if p.str(a.name) == "argv" {
                    let mut text = String::new();
                    p.render(a.value, &ctx, &mut text).unwrap();
                    argv.push(text);
                }
            }
        }
        fired.push((p.str(rule.name).to_string(), f.group.to_string(), argv));
    });
    assert!(out.entries > 0, "{} matches no entry", event.tag);
    assert_eq!(
        (out.missing_field, out.not_numeric, out.store_full),
        (0, 0, 0),
        "{event:?}: {out:?}"
    );
    fired
}

#[test]
fn the_load_example_reads_the_load_beacon() {
    let event = sample(&mut Load::new("web-1").unwrap());
    evaluate(&example("load.yml"), &event);
    evaluate(&example("seed/load-simple.yml"), &event);
}

#[test]
fn the_disk_example_reads_the_disk_beacon() {
    let event = sample(&mut Disk::new("web-1", "/").unwrap());
    evaluate(&example("disk.yml"), &event);
}

#[test]
fn the_service_example_restarts_the_process_that_is_down_by_its_name() {
    let compiled = example("service.yml");
    let down = sample(&mut Process::new("web-1", "no-such-daemon", None).unwrap());
    let fired = evaluate(&compiled, &down);
    assert_eq!(
        fired,
        [(
            "service_down".to_string(),
            "web-1/no-such-daemon".to_string(),
            vec![
                "systemctl".to_string(),
                "restart".to_string(),
                "no-such-daemon".to_string()
            ]
        )]
    );
    // A running process (this test's own program name) fires nothing.
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    let up = sample(&mut Process::new("web-1", comm.trim(), None).unwrap());
    assert_eq!(up.get("running"), Some(&reflex_core::Value::Bool(true)));
    assert!(evaluate(&compiled, &up).is_empty());
}
