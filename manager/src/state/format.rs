//! The state files' format: headers, framed records, and the records' payloads.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Version byte of the state files this build writes: version 2 adds a CRC to the header.
/// Version 1 files (no header CRC) are still read.
pub const FORMAT_VERSION: u8 = 2;
/// The first version, read but no longer written.
pub const FORMAT_VERSION_1: u8 = 1;
/// The snapshot file in the state directory.
pub const SNAPSHOT_FILE: &str = "registers.snapshot";
/// The prefix of log files: `registers.log.<generation>`.
pub const LOG_PREFIX: &str = "registers.log.";
/// Bytes of a file header: magic, version, generation, and the CRC-32 of those 17 bytes.
pub const HEADER_LEN: usize = 21;
/// Bytes of a version 1 header: magic, version, generation.
pub const HEADER_LEN_V1: usize = 17;
/// Most bytes checksummed while looking for the next good record after a damaged one, per
/// file: past that the rest of the file is skipped (a file of garbage cannot stall a start).
pub const RESYNC_BUDGET: usize = 256 * 1024 * 1024;
/// Longest record payload accepted; a longer length field marks a damaged record.
pub const MAX_RECORD_LEN: usize = 64 * 1024;
/// The file of replay windows: the highest sequence number accepted from each source.
pub const WINDOWS_FILE: &str = "replay.windows";
pub(super) const WINDOWS_MAGIC: [u8; 8] = *b"RFLXRPLY";
/// The action journal ([`super::journal`]).
pub const JOURNAL_FILE: &str = "actions.journal";
pub(super) const ACTIONS_MAGIC: [u8; 8] = *b"RFLXACTS";
pub(super) const SNAPSHOT_MAGIC: [u8; 8] = *b"RFLXSNAP";
pub(super) const LOG_MAGIC: [u8; 8] = *b"RFLXLOG\0";
/// Bytes before a record's payload: length and CRC.
pub(super) const RECORD_HEAD: usize = 8;

/// A snapshot record: one slot.
#[derive(Serialize, Deserialize)]
pub(super) struct SnapshotRecord<'a, S> {
    pub(super) rule: &'a str,
    pub(super) group: &'a str,
    pub(super) slot: S,
}

/// A replay window record: the highest sequence number accepted from one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct WindowRecord<'a> {
    pub(super) source: &'a str,
    pub(super) highest: u64,
}

/// A log record: one evaluation's update of one slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct LogRecord<'a> {
    pub(super) rule: &'a str,
    pub(super) group: &'a str,
    pub(super) time: u64,
    pub(super) sample: f64,
    pub(super) active: bool,
    pub(super) last_fired: Option<u64>,
    pub(super) previous: Option<f64>,
}

pub(super) fn header(magic: [u8; 8], generation: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&magic);
    h[8] = FORMAT_VERSION;
    h[9..HEADER_LEN_V1].copy_from_slice(&generation.to_le_bytes());
    let crc = reflex_core::frame::crc32(&h[..HEADER_LEN_V1]);
    h[HEADER_LEN_V1..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Why a record (or a whole file) was skipped at start: the label of
/// `reflex_state_records_skipped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// A bad length or CRC: bytes were lost or changed (a torn write at a crash, a bad disk).
    Damaged,
    /// The CRC holds but the payload does not decode as a record of this kind.
    Undecodable,
    /// The record's rule is not in the rulebook any more.
    UnknownRule,
    /// The store had no room for the slot.
    StoreFull,
    /// A file whose header is missing, cut short or damaged: the whole file is skipped.
    BadHeader,
}

impl SkipReason {
    /// Every reason, in the order of their counters.
    pub const ALL: [SkipReason; 5] = [
        SkipReason::Damaged,
        SkipReason::Undecodable,
        SkipReason::UnknownRule,
        SkipReason::StoreFull,
        SkipReason::BadHeader,
    ];

    /// The metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            SkipReason::Damaged => "damaged",
            SkipReason::Undecodable => "undecodable",
            SkipReason::UnknownRule => "unknown_rule",
            SkipReason::StoreFull => "store_full",
            SkipReason::BadHeader => "bad_header",
        }
    }
}

/// Appends `[len][crc][payload]` to `out`.
pub(super) fn frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&reflex_core::frame::crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Encodes `value` as one framed record onto `out`; `false` (nothing appended) when it does
/// not fit [`MAX_RECORD_LEN`].
pub(super) fn push_record<T: Serialize>(value: &T, scratch: &mut [u8], out: &mut Vec<u8>) -> bool {
    match postcard::to_slice(value, scratch) {
        Ok(payload) => {
            frame(payload, out);
            true
        }
        Err(_) => false,
    }
}

/// The records of a file's bytes after its header. A damaged record is reported once
/// ([`SkipReason::Damaged`] with its offset) and reading resumes at the next offset where a
/// whole record with a good CRC starts, so one bad record costs only itself.
pub(super) struct Records<'a> {
    bytes: &'a [u8],
    at: usize,
    budget: usize,
}

impl<'a> Records<'a> {
    /// The next record decoded as `T`; `Err((offset, reason))` for a damaged stretch or a
    /// payload that does not decode, after which reading goes on.
    pub(super) fn next_as<T: serde::Deserialize<'a>>(
        &mut self,
    ) -> Option<Result<T, (usize, SkipReason)>> {
        let start = self.at;
        Some(match self.next()? {
            Ok(payload) => {
                postcard::from_bytes(payload).map_err(|_| (start, SkipReason::Undecodable))
            }
            Err(at) => Err((at, SkipReason::Damaged)),
        })
    }

    /// The whole record at `at`, if one with a good CRC starts there.
    fn frame_at(&mut self, at: usize, resync: bool) -> Option<&'a [u8]> {
        let rest = &self.bytes[at..];
        if rest.len() < RECORD_HEAD {
            return None;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        // No record is empty: an empty "record" is a run of zeros, which resync would
        // otherwise take for one (the CRC of nothing is 0).
        if len == 0 || len > MAX_RECORD_LEN || rest.len() - RECORD_HEAD < len {
            return None;
        }
        if resync {
            self.budget = self.budget.saturating_sub(len.max(1));
        }
        let payload = &rest[RECORD_HEAD..RECORD_HEAD + len];
        (reflex_core::frame::crc32(payload) == crc).then_some(payload)
    }

    fn next(&mut self) -> Option<Result<&'a [u8], usize>> {
        if self.at >= self.bytes.len() {
            return None;
        }
        let at = self.at;
        if let Some(payload) = self.frame_at(at, false) {
            self.at += RECORD_HEAD + payload.len();
            return Some(Ok(payload));
        }
        // Damaged: find the next good record, within the budget.
        let mut next = at + 1;
        while next < self.bytes.len() && self.budget > 0 {
            if self.frame_at(next, true).is_some() {
                break;
            }
            next += 1;
        }
        self.at = if self.budget > 0 {
            next
        } else {
            self.bytes.len()
        };
        Some(Err(at))
    }
}

/// A file's header that cannot be trusted: why, for the log.
pub(super) struct BadHeader(pub(super) String);

/// Checks a file's header; returns its generation and its records. A header that is missing,
/// cut short, of another kind or damaged is `Ok(Err(_))`, to be skipped and counted; a file of
/// a format version this build does not read is an error.
pub(super) fn open_records<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: [u8; 8],
) -> Result<Result<(u64, Records<'a>), BadHeader>, Error> {
    if bytes.len() < HEADER_LEN_V1 {
        return Ok(Err(BadHeader(format!(
            "{} bytes, shorter than a header",
            bytes.len()
        ))));
    }
    if bytes[..8] != magic {
        return Ok(Err(BadHeader(
            "not a reflex state file of this kind (or its magic bytes are damaged)".into(),
        )));
    }
    let len = match bytes[8] {
        FORMAT_VERSION_1 => HEADER_LEN_V1,
        FORMAT_VERSION => {
            if bytes.len() < HEADER_LEN {
                return Ok(Err(BadHeader("the header is cut short".into())));
            }
            let crc = u32::from_le_bytes([bytes[17], bytes[18], bytes[19], bytes[20]]);
            if reflex_core::frame::crc32(&bytes[..HEADER_LEN_V1]) != crc {
                return Ok(Err(BadHeader("the header's CRC does not match".into())));
            }
            HEADER_LEN
        }
        other => {
            return Err(Error::io(
                format!("read state file {}", path.display()),
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "format version {other}, this reflex reads versions {FORMAT_VERSION_1} \
                         and {FORMAT_VERSION}; move the state directory's files away to start \
                         with empty registers"
                    ),
                ),
            ));
        }
    };
    let mut g = [0u8; 8];
    g.copy_from_slice(&bytes[9..HEADER_LEN_V1]);
    Ok(Ok((
        u64::from_le_bytes(g),
        Records {
            bytes,
            at: len,
            budget: RESYNC_BUDGET,
        },
    )))
}
