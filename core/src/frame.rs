//! Serial framing: COBS with a CRC-32, so a reader can join mid-stream, drop damaged frames
//! and resynchronise at the next delimiter.
//!
//! # Layout
//!
//! ```text
//! COBS(payload ‖ crc32(payload) as 4 little-endian bytes) ‖ 0x00
//! ```
//!
//! COBS removes every zero byte from the encoded data, so `0x00` only ever marks the end of a
//! frame. The CRC is CRC-32/IEEE 802.3 ([`crc32`]).
//!
//! The layers compose like postcard's flavors: [`encode`] frames any payload,
//! [`encode_envelope`] frames a [`wire`] envelope straight into one caller buffer, and a
//! [`Deframer`] turns a byte stream back into payloads that [`wire::decode`] reads. The
//! envelope bytes inside a frame are exactly the bytes sent on ZeroMQ.
//!
//! ```
//! use reflex_core::Event;
//! use reflex_core::frame::{self, EnvelopeDeframer, MAX_ENVELOPE_FRAME_LEN};
//! use reflex_core::wire::{self, Envelope};
//!
//! let env = Envelope::new(Event::new("/sensor/temp", "dev-1").unwrap());
//! let mut line = [0u8; MAX_ENVELOPE_FRAME_LEN];
//! let n = frame::encode_envelope(&env, &mut line).unwrap();
//!
//! let mut deframer = EnvelopeDeframer::new();
//! // Noise on the line before the frame is dropped at the next delimiter.
//! for &b in b"\x13\x37\x00" {
//!     let _ = deframer.push(b);
//! }
//! let mut got = None;
//! for &b in &line[..n] {
//!     if let Some(Ok(payload)) = deframer.push(b) {
//!         got = Some(wire::decode(payload).unwrap().envelope);
//!     }
//! }
//! assert_eq!(got, Some(env));
//! assert_eq!(deframer.stats().frames_ok, 1);
//! ```

use crate::Error;
use crate::wire;

/// Bytes of CRC appended to each payload before COBS encoding.
pub const CRC_LEN: usize = 4;

/// Most encoded bytes for a payload of `payload_len` bytes: the CRC, one COBS code byte per
/// started block of 254 bytes, and the `0x00` delimiter.
pub const fn max_encoded_len(payload_len: usize) -> usize {
    cobs_max_len(payload_len + CRC_LEN) + 1
}

/// Most encoded bytes for one framed envelope: size output buffers with it.
pub const MAX_ENVELOPE_FRAME_LEN: usize = max_encoded_len(wire::MAX_ENVELOPE_LEN);

/// A [`Deframer`] large enough for any envelope.
pub type EnvelopeDeframer = Deframer<{ wire::MAX_ENVELOPE_LEN + CRC_LEN }>;

/// Upper bound of COBS output for `n` input bytes: `n` data bytes and at most `n / 254 + 1`
/// code bytes.
const fn cobs_max_len(n: usize) -> usize {
    n + cobs_overhead(n)
}

/// Most code bytes COBS adds to `n` input bytes.
const fn cobs_overhead(n: usize) -> usize {
    n / 254 + 1
}

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// CRC-32 as in IEEE 802.3, zlib and PNG: reflected, polynomial `0xEDB88320`, initial value
/// and final xor `0xFFFFFFFF`.
///
/// ```
/// assert_eq!(reflex_core::frame::crc32(b"123456789"), 0xCBF4_3926);
/// ```
pub fn crc32(bytes: &[u8]) -> u32 {
    !crc32_update(0xFFFF_FFFF, bytes)
}

fn crc32_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        crc = CRC_TABLE[((crc ^ b as u32) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

/// Forward COBS encoder writing into a buffer it does not hold, so the same encoder can read
/// from a separate payload or from further along its own output buffer.
struct CobsWriter {
    /// Where the current block's code byte goes.
    code_at: usize,
    /// Next write position.
    at: usize,
    /// The current block's code: 1 + data bytes so far.
    code: u8,
}

impl CobsWriter {
    fn new() -> CobsWriter {
        // Position 0 is reserved for the first block's code byte.
        CobsWriter {
            code_at: 0,
            at: 1,
            code: 1,
        }
    }

    fn push(&mut self, out: &mut [u8], byte: u8) -> Result<(), Error> {
        if byte == 0 {
            self.close_block(out)
        } else {
            *out.get_mut(self.at).ok_or(Error::BufferFull)? = byte;
            self.at += 1;
            self.code += 1;
            if self.code == 0xFF {
                self.close_block(out)
            } else {
                Ok(())
            }
        }
    }

    fn close_block(&mut self, out: &mut [u8]) -> Result<(), Error> {
        *out.get_mut(self.code_at).ok_or(Error::BufferFull)? = self.code;
        self.code_at = self.at;
        self.at += 1;
        self.code = 1;
        Ok(())
    }

    /// Writes the last code byte and the delimiter; returns the frame length.
    fn finish(self, out: &mut [u8]) -> Result<usize, Error> {
        *out.get_mut(self.code_at).ok_or(Error::BufferFull)? = self.code;
        *out.get_mut(self.at).ok_or(Error::BufferFull)? = 0;
        Ok(self.at + 1)
    }
}

/// Frames `payload` into `out` and returns the frame's length, delimiter included. At most
/// [`max_encoded_len`]`(payload.len())` bytes are written.
///
/// Errors: [`Error::BufferFull`].
pub fn encode(payload: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    let mut w = CobsWriter::new();
    for &b in payload {
        w.push(out, b)?;
    }
    for b in crc32(payload).to_le_bytes() {
        w.push(out, b)?;
    }
    w.finish(out)
}

/// Encodes `env` with [`wire::encode`] and frames it, using `out` alone: the same bytes as
/// [`encode`] over [`wire::encode`]'s output. Size `out` with [`MAX_ENVELOPE_FRAME_LEN`].
///
/// Errors: those of [`wire::encode`], and [`Error::BufferFull`].
pub fn encode_envelope(env: &wire::Envelope, out: &mut [u8]) -> Result<usize, Error> {
    encode_in_place(out, |buf| wire::encode(env, buf))
}

/// Encodes `body` with [`crate::auth::encode`], tagged by `signer` (unauthenticated when
/// `None`), and frames it, using `out` alone as [`encode_envelope`] does. This is how a device
/// sends: the tag is made over the envelope's signed part in the same buffer.
///
/// Errors: those of [`crate::auth::encode`], and [`Error::BufferFull`].
#[cfg(feature = "auth")]
pub fn encode_tagged(
    body: &wire::Body,
    signer: Option<&crate::auth::Signer>,
    out: &mut [u8],
) -> Result<usize, Error> {
    encode_in_place(out, |buf| crate::auth::encode(body, signer, buf))
}

/// Writes an envelope with `write` into `out` and frames it there.
fn encode_in_place(
    out: &mut [u8],
    write: impl FnOnce(&mut [u8]) -> Result<usize, Error>,
) -> Result<usize, Error> {
    // The envelope is written `start` bytes in and COBS-encoded forward over itself. After
    // reading `i` of the `n` envelope bytes the encoder has written at most `i` data bytes and
    // `i / 254 + 1` code bytes, so its writes stay behind its reads as long as
    // `start >= n / 254 + 1`; the envelope is at most `min(out.len(),
    // MAX_ENVELOPE_LEN)` bytes, which bounds `n` for the choice below.
    let start = cobs_overhead(out.len().min(wire::MAX_ENVELOPE_LEN));
    let n = write(out.get_mut(start..).ok_or(Error::BufferFull)?)?;
    let crc = crc32(&out[start..start + n]);
    let mut w = CobsWriter::new();
    for i in start..start + n {
        let b = out[i];
        w.push(out, b)?;
    }
    for b in crc.to_le_bytes() {
        w.push(out, b)?;
    }
    w.finish(out)
}

/// Counters of what a [`Deframer`] has seen. Each saturates at `u32::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FrameStats {
    /// Frames delivered intact.
    pub frames_ok: u32,
    /// Frames dropped for a CRC mismatch.
    pub crc_errors: u32,
    /// Frames dropped for invalid COBS.
    pub cobs_errors: u32,
    /// Frames dropped for exceeding the buffer.
    pub too_long: u32,
    /// Frames dropped for being too short to hold a CRC.
    pub too_short: u32,
}

/// Streaming deframer: feed it the line's bytes one at a time, get payloads back at each
/// delimiter.
///
/// `N` is the most decoded bytes one frame may hold, CRC included: use at least the largest
/// payload plus [`CRC_LEN`] ([`EnvelopeDeframer`] does so for envelopes). Memory is `N` bytes
/// and a few words; COBS is decoded as bytes arrive.
///
/// Errors are reported once per frame, at its delimiter, and the next frame starts clean, so
/// the deframer resynchronises after any noise at the next `0x00`. A reader that joins
/// mid-frame sees that frame rejected and the following ones delivered.
///
/// See the [module documentation](self) for an example.
#[derive(Debug, Clone)]
pub struct Deframer<const N: usize> {
    buf: [u8; N],
    /// Decoded bytes in `buf`.
    len: usize,
    /// Data bytes left in the current COBS block; 0 when the next byte is a code byte.
    left: u8,
    /// The current block's code was below 0xFF: a zero goes before the next block's data.
    zero_pending: bool,
    /// Whether any byte arrived since the last delimiter.
    seen: bool,
    /// The frame overflowed `buf`: skip to the delimiter, then report it.
    overflow: bool,
    stats: FrameStats,
}

impl<const N: usize> Default for Deframer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Deframer<N> {
    /// An empty deframer, waiting for the start of a frame.
    pub const fn new() -> Self {
        Deframer {
            buf: [0; N],
            len: 0,
            left: 0,
            zero_pending: false,
            seen: false,
            overflow: false,
            stats: FrameStats {
                frames_ok: 0,
                crc_errors: 0,
                cobs_errors: 0,
                too_long: 0,
                too_short: 0,
            },
        }
    }

    /// Feeds one byte. Returns `None` until a delimiter ends a frame, then the frame's payload
    /// without its CRC, or why it was dropped: [`Error::FrameCobs`], [`Error::FrameCrc`],
    /// [`Error::FrameTooShort`] or [`Error::FrameTooLong`]. Consecutive delimiters (empty
    /// frames) are ignored.
    pub fn push(&mut self, byte: u8) -> Option<Result<&[u8], Error>> {
        if byte != 0 {
            self.seen = true;
            if !self.overflow {
                self.decode(byte);
            }
            return None;
        }
        if !self.seen {
            return None;
        }
        let len = self.len;
        let outcome = if self.overflow {
            Err(Error::FrameTooLong)
        } else if self.left != 0 {
            Err(Error::FrameCobs)
        } else if len < CRC_LEN {
            Err(Error::FrameTooShort)
        } else {
            let (payload, crc) = self.buf[..len].split_at(len - CRC_LEN);
            let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
            if crc32(payload) == crc {
                Ok(len - CRC_LEN)
            } else {
                Err(Error::FrameCrc)
            }
        };
        self.reset();
        let counter = match outcome {
            Ok(_) => &mut self.stats.frames_ok,
            Err(Error::FrameTooLong) => &mut self.stats.too_long,
            Err(Error::FrameCobs) => &mut self.stats.cobs_errors,
            Err(Error::FrameTooShort) => &mut self.stats.too_short,
            // The only error left is a CRC mismatch.
            Err(_) => &mut self.stats.crc_errors,
        };
        *counter = counter.saturating_add(1);
        Some(outcome.map(|n| &self.buf[..n]))
    }

    /// Counters since the deframer was made.
    pub fn stats(&self) -> FrameStats {
        self.stats
    }

    /// Drops any partial frame, e.g. after the line reconnects; the counters are kept.
    pub fn reset(&mut self) {
        self.len = 0;
        self.left = 0;
        self.zero_pending = false;
        self.seen = false;
        self.overflow = false;
    }

    /// Decodes one non-zero COBS byte into `buf`.
    fn decode(&mut self, byte: u8) {
        if self.left == 0 {
            // A code byte: the previous block, unless it was a full one, ended in a zero.
            if self.zero_pending {
                self.store(0);
            }
            self.left = byte - 1;
            self.zero_pending = byte != 0xFF;
        } else {
            self.store(byte);
            self.left -= 1;
        }
    }

    fn store(&mut self, byte: u8) {
        match self.buf.get_mut(self.len) {
            Some(slot) => {
                *slot = byte;
                self.len += 1;
            }
            None => self.overflow = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::strategies::envelope;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// Reference COBS encoder in the variant that omits the final code byte after a full
    /// block, to check the decoder accepts both forms.
    fn cobs_ref_encode(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0];
        let mut code_at = 0;
        let mut code = 1u8;
        for (i, &b) in data.iter().enumerate() {
            if b == 0 {
                out[code_at] = code;
                code_at = out.len();
                out.push(0);
                code = 1;
            } else {
                out.push(b);
                code += 1;
                if code == 0xFF && i + 1 < data.len() {
                    out[code_at] = code;
                    code_at = out.len();
                    out.push(0);
                    code = 1;
                }
            }
        }
        out[code_at] = code;
        out
    }

    fn cobs_ref_decode(data: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < data.len() {
            let code = data[i] as usize;
            if code == 0 || i + code > data.len() {
                return None;
            }
            out.extend_from_slice(&data[i + 1..i + code]);
            i += code;
            if code < 0xFF && i < data.len() {
                out.push(0);
            }
        }
        Some(out)
    }

    fn with_crc(payload: &[u8]) -> Vec<u8> {
        let mut v = payload.to_vec();
        v.extend_from_slice(&crc32(payload).to_le_bytes());
        v
    }

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; max_encoded_len(payload.len())];
        let n = encode(payload, &mut out).unwrap();
        out.truncate(n);
        out
    }

    /// Feeds `bytes` and collects every outcome.
    fn feed<const N: usize>(d: &mut Deframer<N>, bytes: &[u8]) -> Vec<Result<Vec<u8>, Error>> {
        bytes
            .iter()
            .filter_map(|&b| d.push(b).map(|r| r.map(<[u8]>::to_vec)))
            .collect()
    }

    fn oks(outcomes: Vec<Result<Vec<u8>, Error>>) -> Vec<Vec<u8>> {
        outcomes.into_iter().filter_map(Result::ok).collect()
    }

    #[test]
    fn crc_check_values() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(CRC_TABLE[1], 0x7707_3096);
        assert_eq!(CRC_TABLE[255], 0x2D02_EF8D);
    }

    #[test]
    fn cobs_known_vectors() {
        fn cobs(data: &[u8]) -> Vec<u8> {
            let mut out = [0u8; 600];
            let mut w = CobsWriter::new();
            for &b in data {
                w.push(&mut out, b).unwrap();
            }
            let n = w.finish(&mut out).unwrap();
            out[..n - 1].to_vec()
        }
        assert_eq!(cobs(&[]), [0x01]);
        assert_eq!(cobs(&[0x00]), [0x01, 0x01]);
        assert_eq!(cobs(&[0x00, 0x00]), [0x01, 0x01, 0x01]);
        assert_eq!(
            cobs(&[0x11, 0x22, 0x00, 0x33]),
            [0x03, 0x11, 0x22, 0x02, 0x33]
        );
        assert_eq!(
            cobs(&[0x11, 0x22, 0x33, 0x44]),
            [0x05, 0x11, 0x22, 0x33, 0x44]
        );
        let run: Vec<u8> = (1..=254).collect();
        let mut expect = vec![0xFF];
        expect.extend_from_slice(&run);
        expect.push(0x01);
        assert_eq!(cobs(&run), expect);
        assert_eq!(cobs_ref_decode(&cobs(&run)).unwrap(), run);
    }

    #[test]
    fn frame_errors_are_reported_at_the_delimiter() {
        let mut d = Deframer::<16>::new();
        // Empty frames are ignored.
        assert_eq!(feed(&mut d, &[0, 0, 0]), []);
        // [01] decodes to nothing: too short for a CRC.
        assert_eq!(feed(&mut d, &[0x01, 0x00]), [Err(Error::FrameTooShort)]);
        // A code byte promising more data than arrives.
        assert_eq!(feed(&mut d, &[0x05, 0x11, 0x00]), [Err(Error::FrameCobs)]);
        // Valid COBS, wrong CRC.
        assert_eq!(
            feed(&mut d, &[0x06, 1, 2, 3, 4, 5, 0x00]),
            [Err(Error::FrameCrc)]
        );
        // Longer than the buffer: reported once, at the delimiter.
        let long = framed(&[7u8; 40]);
        assert_eq!(feed(&mut d, &long), [Err(Error::FrameTooLong)]);
        // And the next frame is fine.
        assert_eq!(feed(&mut d, &framed(b"hello")), [Ok(b"hello".to_vec())]);
        assert_eq!(
            d.stats(),
            FrameStats {
                frames_ok: 1,
                crc_errors: 1,
                cobs_errors: 1,
                too_long: 1,
                too_short: 1,
            }
        );
    }

    #[test]
    fn payload_filling_the_buffer_exactly() {
        let mut d = Deframer::<{ 12 + CRC_LEN }>::new();
        assert_eq!(feed(&mut d, &framed(&[9; 12])), [Ok(vec![9; 12])]);
        assert_eq!(feed(&mut d, &framed(&[9; 13])), [Err(Error::FrameTooLong)]);
        assert_eq!(feed(&mut d, &framed(&[])), [Ok(vec![])]);
    }

    #[test]
    fn reset_drops_a_partial_frame() {
        let mut d = Deframer::<64>::new();
        let f = framed(b"abc");
        assert_eq!(feed(&mut d, &f[..3]), []);
        d.reset();
        assert_eq!(feed(&mut d, &f), [Ok(b"abc".to_vec())]);
        assert_eq!(d.stats().frames_ok, 1);
    }

    #[test]
    fn encoder_reports_full_buffers() {
        let f = framed(b"payload");
        for n in 0..f.len() {
            let mut out = vec![0u8; n];
            assert_eq!(encode(b"payload", &mut out), Err(Error::BufferFull));
        }
        let env = wire::Envelope::new(crate::Event::new("/t", "h").unwrap());
        let mut out = [0u8; 4];
        assert_eq!(encode_envelope(&env, &mut out), Err(Error::BufferFull));
        assert_eq!(encode_envelope(&env, &mut []), Err(Error::BufferFull));
    }

    #[test]
    fn stats_saturate() {
        let mut d = Deframer::<8>::new();
        d.stats.too_short = u32::MAX;
        assert_eq!(feed(&mut d, &[0x01, 0x00]), [Err(Error::FrameTooShort)]);
        assert_eq!(d.stats().too_short, u32::MAX);
    }

    proptest! {
        #[test]
        fn frames_round_trip(payload in vec(any::<u8>(), 0..1500)) {
            let f = framed(&payload);
            prop_assert!(f.len() <= max_encoded_len(payload.len()));
            prop_assert_eq!(f.iter().position(|&b| b == 0), Some(f.len() - 1));
            prop_assert_eq!(cobs_ref_decode(&f[..f.len() - 1]), Some(with_crc(&payload)));
            let mut d = Deframer::<{ 1500 + CRC_LEN }>::new();
            prop_assert_eq!(feed(&mut d, &f), vec![Ok(payload.clone())]);
            // The variant without a trailing code byte after a full block decodes too.
            let mut alt = cobs_ref_encode(&with_crc(&payload));
            alt.push(0);
            prop_assert_eq!(feed(&mut d, &alt), vec![Ok(payload)]);
        }

        #[test]
        fn encode_envelope_composes(env in envelope()) {
            let mut wire_buf = [0u8; wire::MAX_ENVELOPE_LEN];
            let n = wire::encode(&env, &mut wire_buf).unwrap();
            let expect = framed(&wire_buf[..n]);
            let mut out = [0u8; MAX_ENVELOPE_FRAME_LEN];
            let m = encode_envelope(&env, &mut out).unwrap();
            prop_assert_eq!(&out[..m], &expect[..]);
            // A buffer of exactly the frame's length is enough, one byte less is not.
            let mut exact = vec![0u8; m];
            prop_assert_eq!(encode_envelope(&env, &mut exact), Ok(m));
            prop_assert_eq!(&exact[..], &expect[..]);
            let mut short = vec![0u8; m - 1];
            prop_assert_eq!(encode_envelope(&env, &mut short), Err(Error::BufferFull));
            // And the deframed payload decodes back.
            let mut d = EnvelopeDeframer::new();
            let got = oks(feed(&mut d, &out[..m]));
            prop_assert_eq!(got.len(), 1);
            prop_assert_eq!(wire::decode(&got[0]).unwrap().envelope, env);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..3000)) {
            let mut small = Deframer::<8>::new();
            let mut large = EnvelopeDeframer::new();
            let mut errors = 0u32;
            for &b in &bytes {
                if let Some(r) = small.push(b) {
                    errors += u32::from(r.is_err());
                }
                if let Some(Ok(p)) = large.push(b) {
                    let _ = wire::decode(p);
                }
            }
            let s = small.stats();
            prop_assert_eq!(
                s.crc_errors + s.cobs_errors + s.too_long + s.too_short,
                errors
            );
        }

        #[test]
        fn resynchronises_after_garbage(
            frames in vec(
                (
                    vec(1u8..=255, 0..40).prop_filter("garbage must not be a valid frame", |g| {
                        let mut d = Deframer::<64>::new();
                        !feed(&mut d, &[g.as_slice(), &[0]].concat()).iter().any(Result::is_ok)
                    }),
                    vec(any::<u8>(), 0..60),
                ),
                0..12,
            )
        ) {
            let mut line = Vec::new();
            for (garbage, payload) in &frames {
                line.extend_from_slice(garbage);
                line.push(0);
                line.extend_from_slice(&framed(payload));
            }
            let mut d = Deframer::<64>::new();
            let outcomes = feed(&mut d, &line);
            let errors = outcomes.iter().filter(|r| r.is_err()).count();
            let sent: Vec<Vec<u8>> = frames.iter().map(|(_, p)| p.clone()).collect();
            prop_assert_eq!(oks(outcomes), sent);
            let dirty = frames.iter().filter(|(g, _)| !g.is_empty()).count();
            prop_assert_eq!(errors, dirty);
            let s = d.stats();
            prop_assert_eq!(s.frames_ok as usize, frames.len());
            prop_assert_eq!((s.crc_errors + s.cobs_errors + s.too_long + s.too_short) as usize, dirty);
        }

        #[test]
        fn truncated_frames_are_rejected(
            payload in vec(any::<u8>(), 0..300),
            next in vec(any::<u8>(), 0..60),
            cut in any::<prop::sample::Index>(),
        ) {
            let f = framed(&payload);
            let k = 1 + cut.index(f.len() - 2); // keep 1..len-2 bytes, never the delimiter
            let mut line = f[..k].to_vec();
            line.push(0);
            line.extend_from_slice(&framed(&next));
            let mut d = Deframer::<{ 300 + CRC_LEN }>::new();
            let outcomes = feed(&mut d, &line);
            prop_assert_eq!(outcomes.len(), 2);
            prop_assert!(matches!(
                outcomes[0],
                Err(Error::FrameCrc | Error::FrameCobs | Error::FrameTooShort)
            ));
            prop_assert_eq!(&outcomes[1], &Ok(next));
        }

        #[test]
        fn bit_flips_are_rejected(
            payload in vec(any::<u8>(), 0..300),
            next in vec(any::<u8>(), 0..60),
            at in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut line = framed(&payload);
            let i = at.index(line.len() - 1); // any byte but the delimiter
            line[i] ^= 1 << bit;
            line.extend_from_slice(&framed(&next));
            let mut d = Deframer::<{ 300 + CRC_LEN }>::new();
            let outcomes = feed(&mut d, &line);
            // A flip to 0x00 splits the frame in two, both rejected.
            prop_assert!(outcomes.len() >= 2);
            let (last, damaged) = outcomes.split_last().unwrap();
            prop_assert!(damaged.iter().all(Result::is_err));
            prop_assert_eq!(last, &Ok(next));
        }
    }
}
