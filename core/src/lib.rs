//! The rules-and-registers core of reflex.
//!
//! `no_std`, allocation-free and panic-free on any input: the same code evaluates rulebooks in
//! the Manager and inside firmware. Every capacity is a named constant and every overflow an
//! [`Error`].
//!
//! * [`value`] and [`event`]: what a beacon reports.
//! * [`id`], [`endpoint`] and [`text`]: protocol facts every part shares — the rule for a
//!   valid id and the topic of a target, the default endpoints, cutting text to a capacity.
//! * [`tag`]: fnmatch-style tag globs and the index that finds the entries matching a tag.
//! * [`wire`] and [`frame`]: the postcard envelope and its COBS + CRC serial framing.
//! * [`register`]: sliding windows over a fixed ring of buckets.
//! * [`rule`]: the comparison functions.
//! * [`program`]: a compiled rulebook as flat tables, and its reaction argument templates.
//! * [`reaction`]: the table of built-in reactions — key, performer, arguments.
//! * [`loader`]: `<role>.<module>.<function>` keys resolved once, at load time.
//! * [`store`] and [`engine`]: per-rule, per-group state and the evaluation of one event.
//! * `host` (feature `host`): code every std part shares — running programs, the clock, the
//!   only `unsafe` of the workspace's libraries, in `host::sys`.
//! * `auth` (feature `auth`; Ed25519 with feature `ed25519`): authentication tags, key files
//!   and replay windows.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(missing_docs)]
#![cfg_attr(not(feature = "host"), forbid(unsafe_code))]
#![cfg_attr(feature = "host", deny(unsafe_code))]

#[cfg(feature = "auth")]
pub mod auth;
pub mod endpoint;
pub mod engine;
pub mod error;
pub mod event;
pub mod frame;
#[cfg(feature = "host")]
pub mod host;
pub mod id;
pub mod loader;
pub mod program;
pub mod reaction;
pub mod register;
pub mod rule;
pub mod store;
pub mod tag;
pub mod text;
pub mod value;
pub mod wire;

pub use error::Error;
pub use event::{Event, Field};
pub use value::Value;
