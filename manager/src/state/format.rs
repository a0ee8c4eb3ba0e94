//! The state files' format: headers, framed records, and the records' payloads.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Version byte of the state files this build reads and writes.
pub const FORMAT_VERSION: u8 = 1;
/// The snapshot file in the state directory.
pub const SNAPSHOT_FILE: &str = "registers.snapshot";
/// The prefix of log files: `registers.log.<generation>`.
pub const LOG_PREFIX: &str = "registers.log.";
/// Bytes of a file header: magic, version, generation.
pub const HEADER_LEN: usize = 17;
/// Longest record payload accepted; a longer length field marks a damaged record.
pub const MAX_RECORD_LEN: usize = 64 * 1024;
/// The file of replay windows: the highest sequence number accepted from each source.
pub const WINDOWS_FILE: &str = "replay.windows";
pub(super) const WINDOWS_MAGIC: [u8; 8] = *b"RFLXRPLY";
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
    h[9..].copy_from_slice(&generation.to_le_bytes());
    h
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

/// The records of a file's bytes after its header: each good payload, then how the file
/// ended (`Ok` at a clean end, `Err(offset)` at the first damaged record).
pub(super) struct Records<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Records<'a> {
    /// The next record decoded as `T`; `Err(offset)` where a record is damaged or does not
    /// decode, since the rest of the file cannot be trusted either.
    pub(super) fn next_as<T: serde::Deserialize<'a>>(&mut self) -> Option<Result<T, usize>> {
        let start = self.at;
        Some(match self.next()? {
            Ok(payload) => postcard::from_bytes(payload).map_err(|_| start),
            Err(at) => Err(at),
        })
    }

    fn next(&mut self) -> Option<Result<&'a [u8], usize>> {
        let rest = &self.bytes[self.at..];
        if rest.is_empty() {
            return None;
        }
        let bad = Some(Err(self.at));
        if rest.len() < RECORD_HEAD {
            return bad;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > MAX_RECORD_LEN || rest.len() - RECORD_HEAD < len {
            return bad;
        }
        let payload = &rest[RECORD_HEAD..RECORD_HEAD + len];
        if reflex_core::frame::crc32(payload) != crc {
            return bad;
        }
        self.at += RECORD_HEAD + len;
        Some(Ok(payload))
    }
}

/// Checks a file's header; returns its generation and its records.
pub(super) fn open_records<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: [u8; 8],
) -> Result<(u64, Records<'a>), Error> {
    let invalid = |why: String| {
        Error::io(
            format!("read state file {}", path.display()),
            io::Error::new(io::ErrorKind::InvalidData, why),
        )
    };
    if bytes.len() < HEADER_LEN || bytes[..8] != magic {
        return Err(invalid(
            "not a reflex state file of this kind; move it out of the state directory".into(),
        ));
    }
    if bytes[8] != FORMAT_VERSION {
        return Err(invalid(format!(
            "format version {}, this reflex reads version {FORMAT_VERSION}; move the state \
             directory's files away to start with empty registers",
            bytes[8]
        )));
    }
    let mut g = [0u8; 8];
    g.copy_from_slice(&bytes[9..HEADER_LEN]);
    Ok((
        u64::from_le_bytes(g),
        Records {
            bytes,
            at: HEADER_LEN,
        },
    ))
}
