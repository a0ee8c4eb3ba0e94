//! The reflex rulebook compiler: YAML rulebooks to the core's [`Program`] tables, validated
//! with `file:line:col` errors.
//!
//! ```
//! use reflex_rules::{compile_str, Catalog};
//! let yaml = "
//! /client/load/*:
//!   rules:
//!     - load_avg:
//!         rule: rules.simple.gt
//!         register: register.aggregate.avg
//!         threshold: 20
//!         period: 10
//!         reactions:
//!           - reactions.log.print:
//!               message: 'load {{ value }} on {{ event.source }}'
//! ";
//! let compiled = compile_str("load.yml", yaml, &Catalog::builtin()).unwrap();
//! assert_eq!(compiled.summary().to_string(), "1 file, 1 tag entry, 1 rule, 1 reaction");
//! let program = compiled.program();
//! assert_eq!(program.rules[0].period_ms, 10_000);
//! ```
//!
//! # Why yaml-rust2 and not serde_yaml
//!
//! serde_yaml is deprecated and, through serde, hands over values without the place they were
//! written. Every validation error here must say `file:line:col`, so the compiler parses with
//! yaml-rust2's marked event parser into a small tree of its own ([`yaml`]) in which every
//! map, list, scalar and key carries its line and column.
//!
//! # Modules
//!
//! * [`compile`]: [`compile_path`] and [`compile_str`], the walk over the tree that fills the
//!   tables and collects every error (not just the first).
//! * [`compiled`]: [`Compiled`], the owned tables, lent as a [`Program`].
//! * [`export`]: the tables as postcard bytes or as Rust source for firmware.
//! * [`catalog`]: the reactions that exist (built-ins and plugins) and built-in arguments.
//! * [`template`]: reaction argument templates.
//! * [`diagnostic`]: the crate's [`Error`], and [`Diagnostic`] / [`Errors`] that place it.
//! * [`yaml`]: the marked YAML tree.
//!
//! The rulebook format is described for users in `docs/rulebook.md`.
//!
//! [`Program`]: reflex_core::program::Program
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod catalog;
pub mod compile;
pub mod compiled;
pub mod diagnostic;
pub mod export;
pub mod template;
pub mod yaml;

pub use catalog::{Catalog, default_plugin_dir};
pub use compile::{compile_path, compile_str};
pub use compiled::{Compiled, Summary};
pub use diagnostic::{Diagnostic, Error, Errors};
