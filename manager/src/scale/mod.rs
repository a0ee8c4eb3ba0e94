//! Scale-out on NATS JetStream (the `nats` feature): partitioned Managers sharing the work of
//! one site, laid out by role:
//!
//! * `partition.rs`: which partition a source belongs to (the server's `partition` mapping).
//! * `batch.rs`: the bytes of one message of a partition stream (a batch of checked events).
//! * `names.rs`: every subject, stream and bucket name, in one place.
//! * `bridge.rs`: the one thread that runs the NATS client (tokio stays there).
//! * `ingest.rs`: `reflex ingest`, the stateless ZeroMQ edge publishing batches.
//! * `lease.rs`: partition ownership, a lease renewed by compare-and-swap.
//! * `checkpoint.rs`: a partition's register state with the stream sequence it covers.
//! * `streams.rs`: creating the streams and buckets.
//! * `owner.rs`: `reflex manager --nats`, the loop that owns partitions and evaluates them.
//!
//! The design, its guarantees and its figures are in `docs/scale-out.md`.

pub mod batch;
pub mod bridge;
pub mod checkpoint;
pub mod ingest;
pub mod lease;
pub mod names;
pub mod owner;
pub mod partition;
pub mod streams;

/// What can go wrong talking to NATS or with what is stored there.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    /// The server cannot be reached, or refused a request.
    #[error("NATS {what}: {why}")]
    Nats {
        /// What was tried.
        what: String,
        /// What the client said.
        why: String,
    },
    /// A stored checkpoint or lease could not be read.
    #[error("damaged {what} for partition {partition}: {why}")]
    Damaged {
        /// `checkpoint` or `lease`.
        what: &'static str,
        /// The partition.
        partition: u32,
        /// Why.
        why: String,
    },
    /// The rulebook uses what a partitioned Manager does not run.
    #[error("{0}")]
    Unsupported(String),
    /// The NATS thread stopped.
    #[error("the NATS thread stopped")]
    Stopped,
}

impl ScaleError {
    /// A NATS failure of `what`.
    pub fn nats(what: impl Into<String>, why: impl std::fmt::Display) -> ScaleError {
        ScaleError::Nats {
            what: what.into(),
            why: why.to_string(),
        }
    }
}
