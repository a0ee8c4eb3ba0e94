//! The serial gateway: joins a device on a serial line (a real tty, or the pseudo-terminal of
//! an emulator) to the bus.
//!
//! Up the line: bytes are deframed ([`reflex_core::frame`], COBS + CRC) and decoded
//! ([`reflex_core::wire`]); events, heartbeats and action results are forwarded to the
//! Manager's events socket on a PUSH socket that never blocks (a full queue drops and counts).
//! Damaged frames and undecodable envelopes are dropped and counted, and the first of each
//! kind is logged; the deframer resynchronises at the next frame delimiter. Envelopes whose
//! time is below [`BOOT_CLOCK_LIMIT_MS`] come from a device clock counting since boot: the
//! gateway stamps them with its wall clock as they arrive (and re-encodes them; the device's
//! sequence numbers are kept), unless they carry an authentication tag: those are forwarded
//! unchanged, for the Manager to check the device's tag (the gateway holds no key).
//!
//! Down the line: the gateway learns device ids from the sources of what the devices send
//! (at most [`MAX_DEVICES`]) and subscribes to the Publisher for each `<id>\0`, and for
//! `*\0`. Actions for a device id go down framed whatever their function (the device answers
//! an unknown function with a failed result); actions for all (`*`) go down only when they
//! are device reactions (`reactions.device.*`), since a device cannot do what Actors do.
//! Expired actions are dropped and counted: devices have no wall clock. Each frame goes down
//! after a `0x00`, as devices send theirs, so noise on the line spoils no frame but itself.
//!
//! The line may go away (a USB adapter unplugged, an emulator stopped): on end of file, a read
//! or write error or a hang-up, the gateway closes it and reopens the same path with backoff
//! ([`REOPEN_MIN`] doubling to [`REOPEN_MAX`]) until it opens again. A partial frame is
//! dropped with the line; actions waiting to go down are kept (at most [`MAX_PENDING_DOWN`]
//! bytes).
//!
//! Counters are logged every `stats_every` and when the gateway stops, one line:
//! `gateway <id> stats: frames_ok=.. crc_errors=.. ...` ([`GatewayStats`]'s `Display`).

use std::collections::VecDeque;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use reflex_core::frame::{self, EnvelopeDeframer, FrameStats, MAX_ENVELOPE_FRAME_LEN};
use reflex_core::wire::{self, Body, MAX_ENVELOPE_LEN};

use crate::Error;

/// Most device ids one gateway subscribes for; further ids are forwarded up but get no
/// actions (counted in [`GatewayStats::devices_over`]).
pub const MAX_DEVICES: usize = 16;
/// Most bytes of framed actions waiting for the line; an action that does not fit is dropped
/// and counted.
pub const MAX_PENDING_DOWN: usize = 64 * 1024;
/// First delay before reopening a lost line.
pub const REOPEN_MIN: Duration = Duration::from_millis(100);
/// Longest delay between two attempts to reopen a lost line.
pub const REOPEN_MAX: Duration = Duration::from_secs(2);
/// Event times below this (2001-09-09 in milliseconds since the Unix epoch) are read as
/// milliseconds since the device booted, and replaced by the gateway's wall clock.
pub const BOOT_CLOCK_LIMIT_MS: u64 = 1_000_000_000_000;
/// Bytes read from the line per read call.
const READ_CHUNK: usize = 4096;
/// The longest the loop sleeps: how quickly a stop request, a due reopen or a due stats line
/// is noticed.
const TICK: Duration = Duration::from_millis(100);

const SERIAL: Token = Token(0);
const SUB: Token = Token(1);

/// What the gateway is told to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayOptions {
    /// The serial line: a tty or a pseudo-terminal's path.
    pub serial: PathBuf,
    /// Baud rate set on a tty (ignored by pseudo-terminals).
    pub baud: u32,
    /// The Manager's events endpoint.
    pub manager: String,
    /// The Publisher's endpoint.
    pub publisher: String,
    /// The gateway's own id, in its log lines.
    pub id: String,
    /// How often the counters are logged.
    pub stats_every: Duration,
}

impl GatewayOptions {
    /// The defaults for a line: 115200 baud, the Manager and Publisher on loopback, the id
    /// `gateway-<file name of the path>`, counters logged every 60 s.
    pub fn new(serial: impl Into<PathBuf>) -> GatewayOptions {
        let serial = serial.into();
        let name = serial
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "serial".into());
        GatewayOptions {
            id: format!("gateway-{name}"),
            serial,
            baud: 115_200,
            manager: reflex_core::endpoint::EVENTS.into(),
            publisher: reflex_core::endpoint::PUBLISH.into(),
            stats_every: Duration::from_secs(60),
        }
    }
}

/// What the gateway has done and dropped. Displayed as `name=value` pairs, one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GatewayStats {
    /// Frames read from the line: intact ones, and the damaged ones dropped.
    pub frames: FrameStats,
    /// Intact frames that held no valid envelope.
    pub decode_errors: u64,
    /// Envelopes forwarded to the Manager.
    pub forwarded: u64,
    /// Envelopes the Manager's socket did not take (queue full): dropped.
    pub dropped_manager: u64,
    /// Envelopes from the line of a kind that does not go up (actions).
    pub dropped_kind: u64,
    /// Device ids beyond [`MAX_DEVICES`].
    pub devices_over: u64,
    /// Actions written down the line.
    pub actions_down: u64,
    /// Actions dropped because they had expired.
    pub actions_expired: u64,
    /// Actions for all (`*`) that are not device reactions: not for devices.
    pub actions_skipped: u64,
    /// Actions dropped: undecodable, too large, or no room while the line is down.
    pub actions_dropped: u64,
    /// Times the line was (re)opened.
    pub opens: u64,
}

impl fmt::Display for GatewayStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fr = &self.frames;
        write!(
            f,
            "frames_ok={} crc_errors={} cobs_errors={} too_long={} too_short={} \
             decode_errors={} forwarded={} dropped_manager={} dropped_kind={} devices_over={} \
             actions_down={} actions_expired={} actions_skipped={} actions_dropped={} opens={}",
            fr.frames_ok,
            fr.crc_errors,
            fr.cobs_errors,
            fr.too_long,
            fr.too_short,
            self.decode_errors,
            self.forwarded,
            self.dropped_manager,
            self.dropped_kind,
            self.devices_over,
            self.actions_down,
            self.actions_expired,
            self.actions_skipped,
            self.actions_dropped,
            self.opens,
        )
    }
}

/// The serial line, open.
struct Line {
    file: File,
    /// Whether WRITABLE interest is registered (bytes are waiting to go down).
    writable: bool,
}

/// The state of one gateway run.
struct Gateway {
    opts: GatewayOptions,
    poll: Poll,
    push: zmq::Socket,
    sub: zmq::Socket,
    line: Option<Line>,
    reopen_at: Instant,
    backoff: Duration,
    /// Whether the loss of the line has been logged (once per outage).
    loss_logged: bool,
    deframer: EnvelopeDeframer,
    devices: Vec<String>,
    down: VecDeque<u8>,
    stats: GatewayStats,
    /// Error kinds already logged, so each is logged once.
    logged: Vec<&'static str>,
}

/// Runs a gateway until `shutdown` is set, then returns its counters (also logged).
///
/// Errors only for what prevents it from running at all: a bad baud rate, sockets that cannot
/// be made or connected. A missing or lost line is not an error: it is reopened until it
/// appears.
pub fn run(opts: GatewayOptions, shutdown: Arc<AtomicBool>) -> Result<GatewayStats, Error> {
    baud_rate(opts.baud)?;
    let ctx = zmq::Context::new();
    let push = crate::sender::PUSH.connect(&ctx, &opts.manager)?;
    let sub = crate::sender::SUB
        .max_msg_size(crate::actor::MAX_FRAME)
        .connect(&ctx, &opts.publisher)?;
    sub.set_subscribe(reflex_core::id::BROADCAST_TOPIC)
        .map_err(Error::zmq("subscribe to *"))?;
    let poll = Poll::new().map_err(|source| Error::System {
        what: "poll",
        source,
    })?;
    let sub_fd = sub
        .get_fd()
        .map_err(Error::zmq("get the SUB socket's fd"))?;
    poll.registry()
        .register(&mut SourceFd(&sub_fd), SUB, Interest::READABLE)
        .map_err(|source| Error::System {
            what: "poll the SUB socket",
            source,
        })?;

    tracing::info!(
        "gateway {} up: line {} at {} baud, events to {}, actions from {}",
        opts.id,
        opts.serial.display(),
        opts.baud,
        opts.manager,
        opts.publisher
    );
    let mut gw = Gateway {
        opts,
        poll,
        push,
        sub,
        line: None,
        reopen_at: Instant::now(),
        backoff: REOPEN_MIN,
        loss_logged: false,
        deframer: EnvelopeDeframer::new(),
        devices: Vec::new(),
        down: VecDeque::new(),
        stats: GatewayStats::default(),
        logged: Vec::new(),
    };
    gw.run(&shutdown);
    let stats = gw.stats();
    tracing::info!("gateway {} stopped: {stats}", gw.opts.id);
    Ok(stats)
}

impl Gateway {
    fn run(&mut self, shutdown: &AtomicBool) {
        let mut events = Events::with_capacity(16);
        let mut next_stats = Instant::now() + self.opts.stats_every;
        while !shutdown.load(Ordering::Relaxed) {
            let now = Instant::now();
            if self.line.is_none() && now >= self.reopen_at {
                self.open();
            }
            let wait = TICK.min(next_stats.saturating_duration_since(now));
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() != ErrorKind::Interrupted {
                    tracing::error!("poll failed: {e}");
                    std::thread::sleep(TICK);
                }
                continue;
            }
            let mut serial_ready = false;
            for ev in &events {
                if ev.token() == SERIAL {
                    serial_ready = true;
                }
            }
            if serial_ready {
                self.read_line();
            }
            // ZeroMQ's fd is edge-triggered and says little: drain the socket every round.
            self.receive_actions();
            self.write_line();
            if Instant::now() >= next_stats {
                tracing::info!("gateway {} stats: {}", self.opts.id, self.stats());
                next_stats += self.opts.stats_every;
            }
        }
    }

    fn stats(&self) -> GatewayStats {
        let mut s = self.stats;
        s.frames = self.deframer.stats();
        s
    }

    /// Logs a problem the first time it happens; later ones are only counted.
    fn once(&mut self, kind: &'static str, message: fmt::Arguments<'_>) {
        if !self.logged.contains(&kind) {
            self.logged.push(kind);
            tracing::warn!("{message} (further ones counted, not logged)");
        }
    }

    fn open(&mut self) {
        match open_line(&self.opts.serial, self.opts.baud) {
            Ok(file) => {
                let fd = file.as_raw_fd();
                let interest = if self.down.is_empty() {
                    Interest::READABLE
                } else {
                    Interest::READABLE | Interest::WRITABLE
                };
                if let Err(e) = self
                    .poll
                    .registry()
                    .register(&mut SourceFd(&fd), SERIAL, interest)
                {
                    tracing::warn!("cannot poll {}: {e}", self.opts.serial.display());
                    self.schedule_reopen();
                    return;
                }
                tracing::info!("serial line {} open", self.opts.serial.display());
                self.stats.opens += 1;
                self.backoff = REOPEN_MIN;
                self.loss_logged = false;
                self.deframer.reset();
                self.line = Some(Line {
                    file,
                    writable: !self.down.is_empty(),
                });
                // Bytes that arrived before registration are read now: readiness is
                // edge-triggered.
                self.read_line();
            }
            Err(e) => {
                if !self.loss_logged {
                    tracing::warn!(
                        "serial line {} not available: {e}; retrying",
                        self.opts.serial.display()
                    );
                    self.loss_logged = true;
                }
                self.schedule_reopen();
            }
        }
    }

    fn schedule_reopen(&mut self) {
        self.reopen_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(REOPEN_MAX);
    }

    fn close(&mut self, why: &str) {
        if let Some(line) = self.line.take() {
            let fd = line.file.as_raw_fd();
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
            tracing::warn!(
                "serial line {} lost ({why}); reopening",
                self.opts.serial.display()
            );
            self.loss_logged = true;
        }
        self.deframer.reset();
        self.schedule_reopen();
    }

    fn read_line(&mut self) {
        let mut buf = [0u8; READ_CHUNK];
        loop {
            let Some(line) = self.line.as_mut() else {
                return;
            };
            match line.file.read(&mut buf) {
                Ok(0) => return self.close("end of file"),
                Ok(n) => {
                    for &b in &buf[..n] {
                        self.byte(b);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return self.close(&e.to_string()),
            }
        }
    }

    fn byte(&mut self, b: u8) {
        let decoded = match self.deframer.push(b) {
            None => return,
            Some(Err(e)) => {
                let kind = match e {
                    reflex_core::Error::FrameCrc => "crc",
                    reflex_core::Error::FrameCobs => "cobs",
                    reflex_core::Error::FrameTooLong => "too_long",
                    _ => "too_short",
                };
                self.once(kind, format_args!("dropped a damaged frame: {e}"));
                return;
            }
            Some(Ok(payload)) => wire::decode(payload).map(|d| (d, payload.to_vec())),
        };
        match decoded {
            Ok((d, bytes)) => {
                let authenticated = d.envelope.is_authenticated();
                self.up(d.envelope.body, bytes, authenticated)
            }
            Err(e) => {
                self.stats.decode_errors += 1;
                self.once(
                    "decode",
                    format_args!("dropped an undecodable envelope: {e}"),
                );
            }
        }
    }

    /// Forwards one envelope to the Manager, re-encoded when its time had to be stamped.
    fn up(&mut self, mut body: Body, mut bytes: Vec<u8>, authenticated: bool) {
        let time = match &mut body {
            Body::Action(_) => {
                self.stats.dropped_kind += 1;
                self.once("kind", format_args!("dropped an action coming up the line"));
                return;
            }
            Body::Event(e) => &mut e.time,
            Body::Result(r) => &mut r.time,
            Body::Heartbeat(h) => &mut h.time,
        };
        // An authenticated envelope goes up byte for byte: the Manager checks the device's tag
        // over these bytes, and does not read a device's time as wall-clock time.
        if *time < BOOT_CLOCK_LIMIT_MS && !authenticated {
            *time = reflex_core::host::clock::now_ms();
            let env = reflex_core::wire::Envelope::new(body.clone());
            let mut buf = vec![0u8; MAX_ENVELOPE_LEN];
            match wire::encode(&env, &mut buf) {
                Ok(n) => {
                    buf.truncate(n);
                    bytes = buf;
                }
                Err(_) => {
                    self.stats.decode_errors += 1;
                    return;
                }
            }
        }
        self.learn(body.source());
        match self.push.send(&bytes, zmq::DONTWAIT) {
            Ok(()) => self.stats.forwarded += 1,
            Err(e) => {
                self.stats.dropped_manager += 1;
                self.once("manager", format_args!("manager not taking events: {e}"));
            }
        }
    }

    /// Subscribes for a device id the first time it is seen.
    fn learn(&mut self, id: &str) {
        if id.is_empty() || self.devices.iter().any(|d| d == id) {
            return;
        }
        if self.devices.len() >= MAX_DEVICES {
            self.stats.devices_over += 1;
            self.once(
                "devices",
                format_args!(
                    "more than {MAX_DEVICES} device ids on one line: {id} gets no actions"
                ),
            );
            return;
        }
        let Ok(topic) = reflex_core::id::topic(id) else {
            return;
        };
        match self.sub.set_subscribe(&topic) {
            Ok(()) => {
                tracing::info!("device {id} seen: subscribed to its actions");
                self.devices.push(id.to_owned());
            }
            Err(e) => tracing::warn!("cannot subscribe for device {id}: {e}"),
        }
    }

    /// Takes every action waiting on the SUB socket and queues the ones for the line.
    fn receive_actions(&mut self) {
        loop {
            let parts = match self.sub.recv_multipart(zmq::DONTWAIT) {
                Ok(parts) => parts,
                Err(zmq::Error::EAGAIN) => return,
                Err(e) => {
                    self.once(
                        "sub",
                        format_args!("receive from the publisher failed: {e}"),
                    );
                    return;
                }
            };
            let Some(envelope) = parts.last() else {
                continue;
            };
            let action = match wire::decode(envelope) {
                Ok(d) => match d.envelope.body {
                    Body::Action(a) => a,
                    _ => {
                        self.stats.actions_dropped += 1;
                        continue;
                    }
                },
                Err(e) => {
                    self.stats.actions_dropped += 1;
                    self.once("action", format_args!("dropped an undecodable action: {e}"));
                    continue;
                }
            };
            if action.is_expired(reflex_core::host::clock::now_ms()) {
                self.stats.actions_expired += 1;
                continue;
            }
            let for_device = self
                .devices
                .iter()
                .any(|d| d.as_str() == action.target.as_str());
            if !for_device && !action.function.starts_with("reactions.device.") {
                self.stats.actions_skipped += 1;
                continue;
            }
            // The bytes go down as they came: signature and all.
            let mut framed = vec![0u8; MAX_ENVELOPE_FRAME_LEN];
            let n = match frame::encode(envelope, &mut framed) {
                Ok(n) => n,
                Err(_) => {
                    self.stats.actions_dropped += 1;
                    continue;
                }
            };
            if self.down.len() + 1 + n > MAX_PENDING_DOWN {
                self.stats.actions_dropped += 1;
                self.once(
                    "pending",
                    format_args!("actions pile up for a line that is down"),
                );
                continue;
            }
            // A leading delimiter ends any partial frame the device holds.
            self.down.push_back(0);
            self.down.extend(&framed[..n]);
            self.stats.actions_down += 1;
        }
    }

    /// Writes what waits to go down, as far as the line takes it.
    fn write_line(&mut self) {
        loop {
            let Some(line) = self.line.as_mut() else {
                return;
            };
            if self.down.is_empty() {
                if line.writable {
                    let fd = line.file.as_raw_fd();
                    let _ = self.poll.registry().reregister(
                        &mut SourceFd(&fd),
                        SERIAL,
                        Interest::READABLE,
                    );
                    line.writable = false;
                }
                return;
            }
            let (front, _) = self.down.as_slices();
            match line.file.write(front) {
                Ok(0) => return self.close("write returned 0"),
                Ok(n) => {
                    self.down.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if !line.writable {
                        let fd = line.file.as_raw_fd();
                        let _ = self.poll.registry().reregister(
                            &mut SourceFd(&fd),
                            SERIAL,
                            Interest::READABLE | Interest::WRITABLE,
                        );
                        line.writable = true;
                    }
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return self.close(&e.to_string()),
            }
        }
    }
}

/// Opens the line non-blocking; a tty is put in raw mode at `baud`.
fn open_line(path: &Path, baud: u32) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    if nix::unistd::isatty(file.as_fd()).unwrap_or(false) {
        use nix::sys::termios::{self, ControlFlags, SetArg, SpecialCharacterIndices};
        let mut t = termios::tcgetattr(file.as_fd())?;
        termios::cfmakeraw(&mut t);
        t.control_flags |= ControlFlags::CLOCAL | ControlFlags::CREAD;
        t.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
        t.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        let rate = baud_rate(baud).map_err(|e| std::io::Error::other(e.to_string()))?;
        termios::cfsetspeed(&mut t, rate)?;
        termios::tcsetattr(file.as_fd(), SetArg::TCSANOW, &t)?;
    }
    Ok(file)
}

/// The termios rate for a baud rate.
fn baud_rate(baud: u32) -> Result<nix::sys::termios::BaudRate, Error> {
    use nix::sys::termios::BaudRate as B;
    Ok(match baud {
        1200 => B::B1200,
        2400 => B::B2400,
        4800 => B::B4800,
        9600 => B::B9600,
        19_200 => B::B19200,
        38_400 => B::B38400,
        57_600 => B::B57600,
        115_200 => B::B115200,
        230_400 => B::B230400,
        460_800 => B::B460800,
        921_600 => B::B921600,
        1_000_000 => B::B1000000,
        2_000_000 => B::B2000000,
        3_000_000 => B::B3000000,
        other => {
            return Err(Error::UnsupportedBaud(other));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_rates() {
        let o = GatewayOptions::new("/dev/ttyUSB0");
        assert_eq!(o.id, "gateway-ttyUSB0");
        assert_eq!(o.baud, 115_200);
        assert!(baud_rate(115_200).is_ok());
        assert!(
            baud_rate(12_345)
                .unwrap_err()
                .to_string()
                .contains("115200")
        );
    }

    #[test]
    fn stats_line_names_every_counter() {
        let s = GatewayStats::default().to_string();
        for name in [
            "frames_ok=0",
            "crc_errors=0",
            "cobs_errors=0",
            "forwarded=0",
            "opens=0",
        ] {
            assert!(s.contains(name), "{s}");
        }
    }
}
