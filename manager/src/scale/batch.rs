//! One message of a partition stream: the events `reflex ingest` checked, with the time it
//! stamped them. That time is the events' stream time: an owner evaluates them at it, so a
//! replay after a takeover recomputes the same registers.
//!
//! `[version][postcard(time, events)]`; decoding never panics and refuses more than
//! [`MAX_BATCH`] events.

use reflex_core::Event;
use serde::{Deserialize, Serialize};

/// Version byte of the batches this build writes and reads.
pub const BATCH_VERSION: u8 = 1;
/// Most events in one batch.
pub const MAX_BATCH: usize = 1024;

/// A batch of events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The stream time of every event of the batch, ms since the Unix epoch.
    pub time: u64,
    /// The events, in the order ingest received them.
    pub events: Vec<Event>,
}

/// Why a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Another version or not a batch.
    #[error("not a batch of version {BATCH_VERSION}")]
    Version,
    /// The bytes do not decode.
    #[error("undecodable batch")]
    Decode,
    /// More than [`MAX_BATCH`] events.
    #[error("more than {MAX_BATCH} events in a batch")]
    TooMany,
}

impl Batch {
    /// The batch's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![BATCH_VERSION];
        // Events are bounded and owned: encoding to a vector cannot fail.
        out.extend(postcard::to_allocvec(self).unwrap_or_default());
        out
    }

    /// A batch from untrusted `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Batch, BatchError> {
        let Some((&BATCH_VERSION, rest)) = bytes.split_first() else {
            return Err(BatchError::Version);
        };
        // The count comes first (after the time): refuse large batches before decoding them.
        let (_, after_time) =
            postcard::take_from_bytes::<u64>(rest).map_err(|_| BatchError::Decode)?;
        let (n, _) =
            postcard::take_from_bytes::<u32>(after_time).map_err(|_| BatchError::Decode)?;
        if n as usize > MAX_BATCH {
            return Err(BatchError::TooMany);
        }
        postcard::from_bytes(rest).map_err(|_| BatchError::Decode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reflex_core::value::Value;

    #[test]
    fn batches_round_trip_and_garbage_is_refused() {
        let mut e = Event::new("/client/load/web-1", "web-1").unwrap();
        e.seq = 9;
        e.push("load_avg", Value::Float(3.5)).unwrap();
        let b = Batch {
            time: 1_700_000_000_000,
            events: vec![e.clone(), e],
        };
        let bytes = b.encode();
        assert_eq!(Batch::decode(&bytes).unwrap(), b);
        assert_eq!(Batch::decode(&[]), Err(BatchError::Version));
        assert_eq!(Batch::decode(&[9, 1, 2]), Err(BatchError::Version));
        for cut in 1..bytes.len() {
            assert!(Batch::decode(&bytes[..cut]).is_err());
        }
        let mut huge = vec![BATCH_VERSION];
        huge.extend(postcard::to_allocvec(&(1u64, 5000u32)).unwrap());
        assert_eq!(Batch::decode(&huge), Err(BatchError::TooMany));
    }
}
