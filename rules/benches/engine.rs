//! Engine benchmarks on compiled rulebooks: tag matching with 10 and 10 000 entries, one
//! event through the engine with 10 and 10 000 entries loaded (one rule matching), and one
//! event evaluated by 100 rules.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::fmt::Write;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use reflex_core::store::MapStore;
use reflex_core::tag::TagIndex;
use reflex_core::{Event, Value, engine};
use reflex_rules::{Catalog, Compiled, compile_str};

/// `entries` tag entries `/svc/<i>/load/*` with one rule each.
fn many_entries(entries: usize) -> Compiled {
    let mut text = String::new();
    for i in 0..entries {
        writeln!(
            text,
            "/svc/{i}/load/*:\n  rules:\n    - r{i}:\n        rule: rules.simple.gt\n        field: load_avg\n        register: register.aggregate.avg\n        threshold: 20\n        period: 10\n        reactions:\n          - reactions.log.print:\n              message: high"
        )
        .unwrap();
    }
    compile_str("many.yml", &text, &Catalog::builtin()).expect("bench rulebook compiles")
}

/// One entry with `rules` rules all reading `load_avg`.
fn many_rules(rules: usize) -> Compiled {
    let mut text = String::from("/client/load/*:\n  rules:\n");
    for i in 0..rules {
        writeln!(
            text,
            "    - r{i}:\n        rule: rules.simple.gt\n        field: load_avg\n        register: register.aggregate.avg\n        threshold: {}\n        period: 10",
            i % 50
        )
        .unwrap();
    }
    compile_str("rules.yml", &text, &Catalog::builtin()).expect("bench rulebook compiles")
}

fn event(tag: &str) -> Event {
    let mut e = Event::new(tag, "web-1").unwrap();
    e.push("load_avg", Value::Float(12.5)).unwrap();
    e
}

fn tag_matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("tag match");
    for n in [10usize, 10_000] {
        let compiled = many_entries(n);
        let tag = "/svc/7/load/web-1";
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            let index = TagIndex::new(compiled.program());
            b.iter(|| {
                let mut hits = 0u32;
                index.for_each_match(black_box(tag), |_| hits += 1);
                assert_eq!(hits, 1);
                hits
            })
        });
    }
    group.finish();
}

fn evaluate_entries(c: &mut Criterion) {
    let mut group = c.benchmark_group("evaluate, entries loaded");
    for n in [10usize, 10_000] {
        let compiled = many_entries(n);
        let program = compiled.program();
        let e = event("/svc/7/load/web-1");
        let mut store = MapStore::new(1 << 20);
        let mut now = 0u64;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                now += 1;
                engine::evaluate(&program, &mut store, black_box(&e), now, |f| {
                    black_box(f.rule);
                })
            })
        });
    }
    group.finish();
}

fn evaluate_rules(c: &mut Criterion) {
    let compiled = many_rules(100);
    let program = compiled.program();
    let e = event("/client/load/web-1");
    let mut store = MapStore::new(1 << 20);
    let mut now = 0u64;
    c.bench_function("evaluate, 100 rules matching", |b| {
        b.iter(|| {
            now += 1;
            let out = engine::evaluate(&program, &mut store, black_box(&e), now, |f| {
                black_box(f.rule);
            });
            assert_eq!(out.evaluated, 100);
            out
        })
    });
}

criterion_group!(benches, tag_matching, evaluate_entries, evaluate_rules);
criterion_main!(benches);
