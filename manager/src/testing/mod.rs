//! `reflex test`: rule tests on a virtual clock. A test file ([`file`]) lists cases of events
//! with times and expectations; [`run`] evaluates them with the real compiler's program and
//! the real engine, in process, and reports every failed expectation at its `file:line:col`.
//! The file format is described for users in `docs/testing.md`. [`replay`] runs a recording
//! of `reflex watch --json` through the same evaluation.

pub mod file;
pub mod replay;
pub mod run;
