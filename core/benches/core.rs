//! Register benchmark.
//!
//! Core micro-benchmarks live with the compiler in `rules/benches`, where realistic rulebooks
//! are built from YAML; this bench measures the register window alone.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use criterion::{Criterion, criterion_group, criterion_main};
use reflex_core::register::{RegisterFn, Window};
use std::hint::black_box;

fn register_update(c: &mut Criterion) {
    let mut w = Window::new(10_000);
    let mut t = 0u64;
    c.bench_function("register push + avg", |b| {
        b.iter(|| {
            t += 7;
            w.push(black_box(t), black_box(3.5));
            black_box(w.value(RegisterFn::Avg, t))
        })
    });
}

criterion_group!(benches, register_update);
criterion_main!(benches);
