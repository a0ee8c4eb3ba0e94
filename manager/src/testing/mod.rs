//! `reflex test`: rule tests on a virtual clock. A test file ([`file`]) lists cases of events
//! with times and expectations; [`run`] evaluates them with the real compiler's program and
//! the real engine, in process, and reports every failed expectation at its `file:line:col`.
//! The file format is described for users in `docs/testing.md`.

pub mod file;
pub mod run;
