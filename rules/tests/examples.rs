//! The shipped example rulebooks compile to the expected tables, and the exports round-trip.
//!
//! `tests/golden/load_simple.rs` is the Rust export of `examples/seed/load-simple.yml`; after an
//! intended change to the export, regenerate it with `REFLEX_UPDATE_GOLDEN=1 cargo test -p
//! reflex-rules --test examples` and review the diff.

use std::path::{Path, PathBuf};

use reflex_core::program::{ChainOp, Fire, GroupBy, Program, ProgramBuf, Reaction, Segment};
use reflex_core::register::RegisterFn;
use reflex_core::rule::RuleFn;
use reflex_rules::{Catalog, Compiled, compile_path, default_plugin_dir};

include!("golden/load_simple.rs");

fn examples() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
}

fn compile(path: &Path) -> Compiled {
    let catalog = Catalog::with_plugins(&[default_plugin_dir(path)]);
    match compile_path(path, &catalog) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

/// A reaction's arguments as `(name, item, segments)`.
fn args<'p>(p: &Program<'p>, r: &Reaction) -> Vec<(&'p str, bool, &'p [Segment])> {
    p.args_of(r)
        .iter()
        .map(|a| (p.str(a.name), a.item, p.segments_of(a.value)))
        .collect()
}

fn lit(p: &Program<'_>, s: &[Segment]) -> String {
    s.iter()
        .map(|seg| match seg {
            Segment::Lit(r) => p.str(*r).to_string(),
            other => format!("<{other:?}>"),
        })
        .collect()
}

#[test]
fn seed_load_simple() {
    let c = compile(&examples().join("seed/load-simple.yml"));
    let p = c.program();
    p.validate().unwrap();
    assert_eq!(
        c.summary().to_string(),
        "1 file, 1 tag entry, 1 rule, 2 reactions"
    );
    assert_eq!(p.entries.len(), 1);
    assert_eq!(p.str(p.entries[0].pattern), "/client/load/*");
    assert_eq!(p.rules_of(&p.entries[0]), [0]);
    assert_eq!(p.index[0].prefix.len, "/client/load/".len() as u32);
    assert!(!p.index[0].literal);

    let r = &p.rules[0];
    assert_eq!(p.str(r.name), "load_avg");
    assert_eq!(p.str(r.field), "load_avg");
    assert_eq!(r.func, RuleFn::Gt);
    assert_eq!((r.lo, r.hi), (20.0, 20.0));
    assert_eq!(r.register, RegisterFn::Avg);
    assert_eq!(r.period_ms, 10_000);
    assert_eq!(r.group_by, GroupBy::Source);
    assert_eq!(r.fire, Fire::Edge);
    assert_eq!(r.cooldown_ms, 0);
    assert!(p.chain_of(r).is_empty());

    let reactions = p.reactions_of(r);
    assert_eq!(reactions.len(), 2);
    let fire = &reactions[0];
    assert_eq!(p.str(fire.key), "reactions.eventer.fire_event");
    assert_eq!(fire.func, 0);
    assert!(!fire.remote);
    assert!(p.segments_of(fire.target).is_empty());
    let a = args(&p, fire);
    assert_eq!(a.len(), 2);
    assert_eq!(
        (a[0].0, a[0].1, lit(&p, a[0].2).as_str()),
        ("tag", false, "/reconfig/lb")
    );
    assert_eq!(
        a[1],
        ("data.turn_down_the_hose", false, &[Segment::Source][..])
    );

    let scale = &reactions[1];
    assert_eq!(p.str(scale.key), "reactions.cloud.scale_up");
    assert_eq!(scale.func, 6, "first plugin after the six built-ins");
    assert!(!scale.remote);
    assert_eq!(
        args(&p, scale),
        [("machine_id", false, &[Segment::Source][..])]
    );
    assert_eq!(c.source_of_rule(0).unwrap().1, 3);
}

#[test]
fn seed_load_with_chain() {
    let c = compile(&examples().join("load.yml"));
    let p = c.program();
    assert_eq!(c.rule_names(), ["load_avg", "io_avg"]);
    assert_eq!(p.rules_of(&p.entries[0]), [0, 1]);
    let load = &p.rules[0];
    let chain = p.chain_of(load);
    assert_eq!(chain.len(), 1);
    assert_eq!(chain[0].op, ChainOp::Or);
    assert_eq!(chain[0].rule, 1);
    let io = &p.rules[1];
    assert_eq!(
        (io.func, io.lo, io.register, io.period_ms),
        (RuleFn::Gt, 20.0, RegisterFn::Avg, 10_000)
    );
    assert!(p.chain_of(io).is_empty());
    let log = &p.reactions_of(io)[0];
    assert_eq!(p.str(log.key), "reactions.log.print");
    let a = args(&p, log);
    assert_eq!(a[0].0, "level");
    assert_eq!(a[1].0, "message");
    assert_eq!(lit(&p, a[1].2), "io_avg <Register> over 20 on <Source>");
    let (file, line, col) = c.source_of_rule(1).unwrap();
    assert!(file.ends_with("load.yml"));
    assert_eq!((line, col), (17, 7));
}

#[test]
fn examples_directory_as_one_rulebook() {
    let c = compile(&examples());
    assert_eq!(
        c.summary().to_string(),
        "3 files, 3 tag entries, 4 rules, 7 reactions"
    );
    let files: Vec<&str> = c
        .files()
        .iter()
        .map(|f| Path::new(f).file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(files, ["disk.yml", "load.yml", "service.yml"]);
    let p = c.program();
    p.validate().unwrap();

    let disk = &p.rules[p.rule_named("disk_full").unwrap() as usize];
    assert_eq!(p.str(disk.field), "used_pct");
    assert_eq!(
        (disk.func, disk.lo, disk.register),
        (RuleFn::Ge, 90.0, RegisterFn::Max)
    );
    assert_eq!(disk.cooldown_ms, 300_000);
    let run = &p.reactions_of(disk)[1];
    assert_eq!(p.str(run.key), "reactions.actor.run");
    assert!(run.remote);
    assert_eq!(p.segments_of(run.target), [Segment::Source]);
    let a = args(&p, run);
    assert_eq!(a.iter().filter(|x| x.0 == "argv" && x.1).count(), 2);
    assert_eq!(lit(&p, a[1].2), "-h");

    let svc = &p.rules[p.rule_named("service_down").unwrap() as usize];
    assert_eq!((svc.func, svc.lo), (RuleFn::Eq, 0.0));
    assert!(matches!(svc.group_by, GroupBy::SourceField(f) if p.str(f) == "name"));
    let fire = &p.reactions_of(svc)[0];
    assert!(!fire.remote);
    let a = args(&p, fire);
    assert_eq!(a[1], ("data.host", false, &[Segment::Source][..]));
    assert!(matches!(a[2].2, [Segment::Data(_)]));
    let run = &p.reactions_of(svc)[1];
    assert!(run.remote);
    assert_eq!(p.segments_of(run.target), [Segment::Source]);
}

#[test]
fn a_local_reaction_with_target_is_remote() {
    let yaml = "/t:\n  rules:\n    - x:\n        rule: rules.simple.changed\n        reactions:\n          - reactions.exec.run:\n              argv: [true]\n              target: 'web-*'\n          - reactions.actor.fire_event:\n              tag: /x\n";
    let c = reflex_rules::compile_str("t.yml", yaml, &Catalog::builtin()).unwrap();
    let p = c.program();
    let [exec, fire] = p.reactions else { panic!() };
    assert!(exec.remote);
    assert_eq!(lit(&p, p.segments_of(exec.target)), "web-*");
    assert_eq!(args(&p, exec).len(), 1, "target is not an argument");
    assert!(fire.remote);
    assert_eq!(
        lit(&p, p.segments_of(fire.target)),
        "*",
        "no target: every Actor"
    );
    assert!(p.index[0].literal);
}

/// Asserts that two programs hold the same tables, one table at a time so a failure names it.
fn assert_same_tables(a: &Program<'_>, b: &Program<'_>) {
    assert_eq!(a.strings, b.strings);
    assert_eq!(a.entries, b.entries);
    assert_eq!(a.index, b.index);
    assert_eq!(a.prefix_lens, b.prefix_lens);
    assert_eq!(a.prefix_table, b.prefix_table);
    assert_eq!(a.entry_rules, b.entry_rules);
    assert_eq!(a.rules, b.rules);
    assert_eq!(a.chain, b.chain);
    assert_eq!(a.reactions, b.reactions);
    assert_eq!(a.args, b.args);
    assert_eq!(a.segments, b.segments);
}

#[test]
fn postcard_round_trip() {
    let c = compile(&examples());
    let bytes = c.to_postcard();
    let buf = ProgramBuf::<2048, 64>::from_bytes(&bytes).unwrap();
    let (a, b) = (c.program(), buf.view());
    assert_same_tables(&a, &b);
    // Tables larger than the buffer's capacity are refused, not truncated.
    assert!(ProgramBuf::<2048, 4>::from_bytes(&bytes).is_err());
}

#[test]
fn rust_source_golden() {
    let c = compile(&examples().join("seed/load-simple.yml"));
    let source = c.to_rust_source("LOAD_SIMPLE");
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/load_simple.rs");
    if std::env::var_os("REFLEX_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &source).unwrap();
    }
    assert_eq!(source, include_str!("golden/load_simple.rs"));
    // The golden text is compiled into this test: the static equals the compiled tables.
    let (a, b) = (c.program(), LOAD_SIMPLE);
    b.validate().unwrap();
    assert_same_tables(&a, &b);
}
