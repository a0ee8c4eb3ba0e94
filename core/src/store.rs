//! Register store.
