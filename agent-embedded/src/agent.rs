//! The device agent: beacons up the line, rules on the device, actions down the line.

use core::fmt::Write as _;

use embedded_hal::digital::OutputPin;
use embedded_io::{Error as _, Read, ReadReady, Write};
use heapless::Vec;
use reflex_beacons::{Beacon, Emit, Schedule};
use reflex_core::auth::{self, MacKey, ReplayWindow, Signer};
use reflex_core::event::{SourceId, Tag, make_source};
use reflex_core::frame::{self, CRC_LEN, Deframer};
use reflex_core::program::{Context, Program, Reaction, Segment, Span};
use reflex_core::value::{MAX_STR_LEN, Str};
use reflex_core::wire::{ActionResult, Body, Envelope, Heartbeat};
use reflex_core::{Event, Value, engine};

use crate::downlink::{self, DeviceAction, Downlink};
use crate::log::log_warn;
use crate::reaction::{DeviceFn, Pin, pin_state};
use crate::stats::{Stats, bump};
use crate::store::SlotStore;
use crate::{Clock, Error};

/// Most reactions a device rulebook may hold.
pub const MAX_REACTIONS: usize = 32;
/// Most reactions reported per event; further firings are still performed, their reports
/// counted in [`Stats::reports_dropped`].
pub const MAX_REPORTS_PER_EVENT: usize = 8;
/// Largest envelope the device sends, in bytes. The largest event (every string and field at
/// its capacity) encodes to 947 bytes unauthenticated, 1011 with the longest authentication
/// tag; results and heartbeats are smaller.
pub const MAX_DEVICE_ENVELOPE_LEN: usize = 1024;
/// The transmit buffer: a leading delimiter and one framed envelope of up to
/// [`MAX_DEVICE_ENVELOPE_LEN`] bytes. The leading `0x00` ends whatever noise the line picked up
/// since the previous frame, so the noise costs no frame but its own.
pub const TX_FRAME_LEN: usize = 1 + frame::max_encoded_len(MAX_DEVICE_ENVELOPE_LEN);
/// Largest envelope the device reads, in bytes. The largest action it accepts (every string
/// at its capacity, [`MAX_DEVICE_ARGS`](crate::downlink::MAX_DEVICE_ARGS) arguments, the
/// longest authentication tag) encodes to 677 bytes. A longer frame is dropped and counted
/// ([`reflex_core::frame::FrameStats::too_long`]).
pub const MAX_DOWNLINK_LEN: usize = 768;
/// The receive buffer: one deframed envelope of up to [`MAX_DOWNLINK_LEN`] bytes and its CRC.
pub const RX_FRAME_LEN: usize = MAX_DOWNLINK_LEN + CRC_LEN;
/// Recent action ids remembered, so a retried action is performed at most once.
pub const RECENT_ACTIONS: usize = 8;
/// Bytes read from the UART per call to [`Agent::poll`] at most, so a flood on the line
/// cannot starve the beacons.
pub const RX_BUDGET: usize = 512;
/// Interval of the device's heartbeat, in milliseconds (the Manager counts an id as known for
/// 60 s after its last heartbeat).
pub const HEARTBEAT_MS: u64 = 5_000;

/// Result code of an action whose function the device does not have.
pub const CODE_UNKNOWN_FUNCTION: i32 = 127;
/// Result code of an action that failed (bad argument, pin error).
pub const CODE_FAILED: i32 = 1;

/// A beacon and its schedule, as the agent runs it.
pub struct Scheduled<'b> {
    /// The beacon.
    pub beacon: &'b mut dyn Beacon,
    /// When it runs and which samples are sent.
    pub schedule: Schedule,
}

impl<'b> Scheduled<'b> {
    /// Pairs a beacon with its schedule.
    pub fn new(beacon: &'b mut dyn Beacon, schedule: Schedule) -> Scheduled<'b> {
        Scheduled { beacon, schedule }
    }
}

/// One on-device reaction's outcome, reported after the event's evaluation.
#[derive(Clone, Copy)]
struct Report {
    rule: u32,
    func: DeviceFn,
    error: Option<Error>,
}

/// The agent's large buffers: the deframer ([`RX_FRAME_LEN`] bytes), the transmit buffer
/// ([`TX_FRAME_LEN`] bytes), one envelope (about 2 KiB) and the register store of `SLOTS`
/// slots (about 700 bytes each).
///
/// [`AgentMemory::new`] is a `const fn`, so firmware keeps the memory in a `static` built at
/// compile time and lends it to [`Agent::new`]: kilobytes are never built on the stack and then
/// copied, which a 16 KiB device could not afford.
///
/// ```
/// use reflex_agent_embedded::AgentMemory;
/// static mut MEMORY: AgentMemory<4> = AgentMemory::new();
/// ```
pub struct AgentMemory<const SLOTS: usize> {
    deframer: Deframer<RX_FRAME_LEN>,
    tx: [u8; TX_FRAME_LEN],
    env: Envelope,
    store: SlotStore<SLOTS>,
}

impl<const SLOTS: usize> AgentMemory<SLOTS> {
    /// Empty buffers and an empty store.
    pub const fn new() -> Self {
        AgentMemory {
            deframer: Deframer::new(),
            tx: [0; TX_FRAME_LEN],
            // All zero bytes, so a `static` of it takes no flash.
            env: Envelope {
                body: Body::Event(Event {
                    tag: Tag::new(),
                    source: SourceId::new(),
                    time: 0,
                    seq: 0,
                    hops: 0,
                    data: heapless::Vec::new(),
                }),
                auth: heapless::Vec::new(),
            },
            store: SlotStore::new(),
        }
    }
}

impl<const SLOTS: usize> Default for AgentMemory<SLOTS> {
    fn default() -> Self {
        Self::new()
    }
}

/// The device agent.
///
/// * `U`: the UART to the gateway, [`embedded_io`] `Read + Write + ReadReady`;
/// * `P`: the output pin device reactions drive;
/// * `C`: the [`Clock`], milliseconds since boot;
/// * `SLOTS`: register slots (rule and group pairs) of the on-device store, in the
///   [`AgentMemory`] the agent borrows.
///
/// Each [`poll`](Agent::poll) reads what arrived on the line (performing actions addressed to
/// this device and answering each with a result), runs the beacons that are due, sends their
/// events framed up the line, evaluates each event against the on-device rulebook, performs
/// the reactions that fire and reports each as a `/device/reaction/<id>` event.
///
/// Memory is fixed: the borrowed [`AgentMemory`] and a few hundred bytes of its own; nothing
/// grows at run time. Each step of a poll that holds an envelope-sized temporary (a decoded
/// action, a result) is kept out of line (`#[inline(never)]`), so the temporaries of different
/// steps share the stack instead of adding up in one frame.
pub struct Agent<'a, U, P, C, const SLOTS: usize> {
    id: SourceId,
    reaction_tag: Tag,
    uart: U,
    pin: Pin<P>,
    clock: C,
    program: Program<'a>,
    funcs: Vec<DeviceFn, MAX_REACTIONS>,
    memory: &'a mut AgentMemory<SLOTS>,
    seq: u64,
    key: Option<MacKey>,
    window: ReplayWindow,
    manager_time: Option<(u64, u64)>,
    result_ready: bool,
    recent: [Option<(u64, bool)>; RECENT_ACTIONS],
    recent_next: usize,
    next_heartbeat_ms: u64,
    stats: Stats,
}

impl<'a, U, P, C, const SLOTS: usize> Agent<'a, U, P, C, SLOTS>
where
    U: Read + Write + ReadReady,
    P: OutputPin,
    C: Clock,
{
    /// An agent for device `id` running `program`, in `memory` (which it resets). The pin is
    /// driven low.
    ///
    /// Errors: [`Error::InvalidId`]; [`Error::ProgramCorrupt`] when the program's tables are
    /// inconsistent; [`Error::TooManyReactions`]; [`Error::UnsupportedReaction`] when a
    /// reaction is not a local `reactions.device.*` one.
    pub fn new(
        id: &str,
        uart: U,
        pin: P,
        clock: C,
        program: Program<'a>,
        memory: &'a mut AgentMemory<SLOTS>,
    ) -> Result<Self, Error> {
        reflex_core::id::check_id(id).map_err(|_| Error::InvalidId)?;
        let source = make_source(id).map_err(|_| Error::InvalidId)?;
        let mut reaction_tag = Tag::new();
        write!(reaction_tag, "/device/reaction/{id}").map_err(|_| Error::InvalidId)?;
        program.validate().map_err(|_| Error::ProgramCorrupt)?;
        let funcs = resolve(&program)?;
        memory.deframer.reset();
        memory.store.clear();
        Ok(Agent {
            id: source,
            reaction_tag,
            uart,
            pin: Pin::new(pin),
            clock,
            program,
            funcs,
            memory,
            seq: 0,
            key: None,
            window: ReplayWindow::new(),
            manager_time: None,
            result_ready: false,
            recent: [None; RECENT_ACTIONS],
            recent_next: 0,
            next_heartbeat_ms: 0,
            stats: Stats::default(),
        })
    }

    /// Authenticates the device with `key`, the HMAC key it shares with the Manager, after its
    /// `boot`-th boot. `None` keeps lab mode: nothing is tagged and every action is accepted.
    ///
    /// With a key, every envelope sent (events, reaction reports, results, heartbeats) carries
    /// `key`'s tag, and an action is performed only when its tag verifies with `key`, it has
    /// not expired by the Manager's time learnt from the last authentic action, and its
    /// sequence number passes a [`ReplayWindow`] of the Manager's; other actions are refused,
    /// not answered, and counted ([`Stats::actions_refused`], [`Stats::actions_stale`]).
    ///
    /// Sequence numbers start at [`auth::boot_seq`]`(boot)`: `boot` must grow from one boot to
    /// the next (a boot count in non-volatile memory, or the wall-clock second of the boot)
    /// for the Manager's replay window to accept the device after a reboot.
    pub fn with_key(mut self, key: Option<MacKey>, boot: u32) -> Self {
        self.key = key;
        self.seq = auth::boot_seq(boot);
        self
    }

    /// The device id: the source of its events and the target of its actions.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The counters, the deframer's included.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.frames = self.memory.deframer.stats();
        s
    }

    /// The level the output pin was last driven to.
    pub fn pin_is_high(&self) -> bool {
        self.pin.is_high()
    }

    /// The UART, e.g. for a test to look at what was sent.
    pub fn uart_mut(&mut self) -> &mut U {
        &mut self.uart
    }

    /// The clock.
    pub fn clock_mut(&mut self) -> &mut C {
        &mut self.clock
    }

    /// Does one round of work: reads the line, runs due beacons, sends a heartbeat when due.
    /// Returns how long the caller may idle (milliseconds) before the next beacon or heartbeat
    /// is due; bytes arriving on the line meanwhile wait in the UART.
    pub fn poll(&mut self, beacons: &mut [Scheduled<'_>]) -> u64 {
        let now = self.clock.now_ms();
        self.receive(now);
        for b in beacons.iter_mut() {
            self.run_beacon(b, now);
        }
        if now >= self.next_heartbeat_ms {
            self.heartbeat(now);
            self.next_heartbeat_ms = now.saturating_add(HEARTBEAT_MS);
        }
        beacons
            .iter()
            .map(|b| b.schedule.due_in_ms(now))
            .fold(self.next_heartbeat_ms.saturating_sub(now), u64::min)
    }

    /// Reads what the UART holds (at most [`RX_BUDGET`] bytes) and handles complete frames.
    fn receive(&mut self, now: u64) {
        let mut budget = RX_BUDGET;
        let mut chunk = [0u8; 64];
        while budget > 0 {
            match self.uart.read_ready() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    self.uart_error(e.kind());
                    break;
                }
            }
            let want = chunk.len().min(budget);
            let n = match self.uart.read(&mut chunk[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    self.uart_error(e.kind());
                    break;
                }
            };
            budget -= n;
            for &b in &chunk[..n] {
                self.receive_byte(b, now);
                // A result is sent from here, once the frame holding the decoded action has
                // returned: tagging it then does not add to that frame's stack.
                if self.result_ready {
                    self.result_ready = false;
                    self.send();
                }
            }
        }
    }

    #[inline(never)]
    fn receive_byte(&mut self, byte: u8, now: u64) {
        let decoded = match self.memory.deframer.push(byte) {
            None => return,
            Some(Err(e)) => {
                // Counted by the deframer.
                log_warn!("frame dropped: {}", e);
                return;
            }
            Some(Ok(payload)) => downlink::decode_tagged(payload).map(|(d, tagged)| {
                // Checked here, while the bytes are at hand; `None` in lab mode.
                let authentic = self.key.as_ref().map(|k| tagged.verify(k, payload));
                (d, authentic)
            }),
        };
        match &decoded {
            Ok((Downlink::Action(a), authentic)) => self.accept_action(a, *authentic, now),
            Ok((Downlink::Other, _)) => bump(&mut self.stats.ignored),
            Err(e) => {
                log_warn!("undecodable frame: {}", e);
                bump(&mut self.stats.decode_errors);
            }
        }
    }

    /// Performs an action for this device that passes [`Agent::admit`] (with a key); ignores
    /// one for another device.
    fn accept_action(&mut self, action: &DeviceAction, authentic: Option<bool>, now: u64) {
        if action.target != self.id.as_str() && action.target != "*" {
            bump(&mut self.stats.ignored);
            return;
        }
        if let Some(authentic) = authentic {
            if !self.admit(action, authentic, now) {
                return;
            }
        }
        self.handle_action(action, now);
    }

    /// Whether an action for this device passes authentication (the tag verified: `authentic`),
    /// expiry and the replay window. A refused one is counted.
    #[inline(never)]
    fn admit(&mut self, action: &DeviceAction, authentic: bool, now: u64) -> bool {
        if !authentic {
            log_warn!("action refused: its tag does not verify");
            bump(&mut self.stats.actions_refused);
            return false;
        }
        if action.expires != 0 && self.manager_now(now).is_some_and(|t| t >= action.expires) {
            log_warn!("action refused: expired");
            bump(&mut self.stats.actions_stale);
            return false;
        }
        // A retry of an action handled already is answered again (not performed again), so
        // its sequence number does not go through the window a second time.
        let retry = self.recent.iter().flatten().any(|(id, _)| *id == action.id);
        if !retry && self.window.accept(action.seq).is_err() {
            log_warn!("action refused: replayed");
            bump(&mut self.stats.actions_stale);
            return false;
        }
        if self.manager_now(now).is_none_or(|t| action.time > t) {
            self.manager_time = Some((action.time, now));
        }
        true
    }

    /// The Manager's wall-clock time now, estimated from the last authentic action's time and
    /// the device's clock since; `None` before the first.
    fn manager_now(&self, now: u64) -> Option<u64> {
        self.manager_time
            .map(|(time, at)| time.saturating_add(now.saturating_sub(at)))
    }

    /// Performs an action addressed to this device (its exact id, or `*`), admitted already, and
    /// leaves its result in the envelope for [`Agent::receive`] to send.
    #[inline(never)]
    fn handle_action(&mut self, action: &DeviceAction, now: u64) {
        let seen = self
            .recent
            .iter()
            .flatten()
            .find(|(id, _)| *id == action.id)
            .map(|(_, ok)| *ok);
        let (ok, code, output): (bool, i32, Str) = if let Some(ok) = seen {
            bump(&mut self.stats.actions_duplicate);
            let code = if ok { 0 } else { CODE_FAILED };
            (
                ok,
                code,
                text(format_args!("action {} already handled", action.id)),
            )
        } else {
            let outcome = match DeviceFn::from_key(&action.function) {
                None => Err(Error::UnknownFunction),
                Some(f) => self.pin.perform(f, action.arg("state")),
            };
            let (ok, code, output) = match outcome {
                Ok(high) => (true, 0, text(format_args!("pin {}", level(high)))),
                Err(Error::UnknownFunction) => (
                    false,
                    CODE_UNKNOWN_FUNCTION,
                    text(format_args!("unknown function {}", action.function)),
                ),
                Err(e) => (false, CODE_FAILED, text(format_args!("{e}"))),
            };
            if ok {
                bump(&mut self.stats.actions_ok);
            } else {
                log_warn!("action failed");
                bump(&mut self.stats.actions_failed);
            }
            self.recent[self.recent_next] = Some((action.id, ok));
            self.recent_next = (self.recent_next + 1) % RECENT_ACTIONS;
            (ok, code, output)
        };
        let result = ActionResult::new(action.id, &action.function, &self.id, ok, code);
        match result {
            Ok(mut r) => {
                r.set_output(&output);
                r.seq = self.next_seq();
                r.time = now;
                r.hops = action.hops;
                self.memory.env.body = Body::Result(r);
                self.result_ready = true;
            }
            Err(_) => bump(&mut self.stats.encode_errors),
        }
    }

    #[inline(never)]
    fn run_beacon(&mut self, b: &mut Scheduled<'_>, now: u64) {
        let seq = self.seq.wrapping_add(1);
        let Some(event) = event_mut(&mut self.memory.env, &self.id) else {
            return;
        };
        match b.schedule.run(&mut *b.beacon, now, event) {
            Ok(Emit::Event) => {
                event.time = now;
                event.seq = seq;
                event.hops = 0;
                self.seq = seq;
                if self.send() {
                    bump(&mut self.stats.events_sent);
                }
                self.evaluate(now);
            }
            Ok(Emit::Skip) => {}
            Err(e) => {
                log_warn!("beacon failed: {}", defmt_str(&e));
                bump(&mut self.stats.beacon_errors);
            }
        }
    }

    /// Evaluates the event in the envelope against the rulebook, performs the reactions that
    /// fire, then reports each one.
    #[inline(never)]
    fn evaluate(&mut self, now: u64) {
        let mut reports: Vec<Report, MAX_REPORTS_PER_EVENT> = Vec::new();
        {
            let Agent {
                program,
                memory,
                pin,
                funcs,
                stats,
                ..
            } = self;
            let AgentMemory { store, env, .. } = &mut **memory;
            let Body::Event(event) = &env.body else {
                return;
            };
            let outcome = engine::evaluate(program, store, event, now, |firing| {
                bump(&mut stats.rules_fired);
                let Some(rule) = program.rules.get(firing.rule as usize) else {
                    return;
                };
                let ctx = firing.context(event);
                let first = rule.reactions.start as usize;
                for (k, reaction) in program.reactions_of(rule).iter().enumerate() {
                    let Some(&func) = funcs.get(first + k) else {
                        continue;
                    };
                    let done = match (func, state_arg(program, reaction, &ctx)) {
                        (DeviceFn::SetPin, Some(Ok(high))) => pin.set(high).map(|()| high),
                        (DeviceFn::SetPin, Some(Err(e))) => Err(e),
                        (DeviceFn::SetPin, None) => Err(Error::BadArgument("state")),
                        (DeviceFn::TogglePin, _) => pin.perform(func, None),
                    };
                    match done {
                        Ok(_) => bump(&mut stats.reactions_ok),
                        Err(_) => bump(&mut stats.reactions_failed),
                    }
                    let report = Report {
                        rule: firing.rule,
                        func,
                        error: done.err(),
                    };
                    if reports.push(report).is_err() {
                        bump(&mut stats.reports_dropped);
                    }
                }
            });
            stats.store_full = stats.store_full.saturating_add(outcome.store_full);
        }
        for report in &reports {
            self.report(report, now);
        }
    }

    /// Sends a `/device/reaction/<id>` event: `rule`, `function`, `ok`, and `error` when it
    /// failed.
    #[inline(never)]
    fn report(&mut self, report: &Report, now: u64) {
        let seq = self.next_seq();
        let rule_name = self
            .program
            .rules
            .get(report.rule as usize)
            .map(|r| self.program.str(r.name))
            .unwrap_or("");
        let Some(event) = event_mut(&mut self.memory.env, &self.id) else {
            return;
        };
        event.tag.clone_from(&self.reaction_tag);
        event.data.clear();
        event.time = now;
        event.seq = seq;
        event.hops = 1;
        let filled = fill_report(event, rule_name, report);
        if filled.is_err() {
            bump(&mut self.stats.encode_errors);
            return;
        }
        self.send();
    }

    #[inline(never)]
    fn heartbeat(&mut self, now: u64) {
        let hb = Heartbeat {
            source: self.id.clone(),
            seq: self.next_seq(),
            time: now,
        };
        self.memory.env.body = Body::Heartbeat(hb);
        if self.send() {
            bump(&mut self.stats.heartbeats_sent);
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Frames the envelope's body, tagged with the device's key when it has one, and writes
    /// it; returns whether it was written whole.
    #[inline(never)]
    fn send(&mut self) -> bool {
        let AgentMemory { env, tx, .. } = &mut *self.memory;
        tx[0] = 0;
        let signer = self.key.clone().map(Signer::Mac);
        let n = match frame::encode_tagged(&env.body, signer.as_ref(), &mut tx[1..]) {
            Ok(n) => 1 + n,
            Err(e) => {
                log_warn!("envelope not sent: {}", e);
                bump(&mut self.stats.encode_errors);
                return false;
            }
        };
        let written = self
            .uart
            .write_all(&tx[..n])
            .and_then(|()| self.uart.flush());
        match written {
            Ok(()) => true,
            Err(e) => {
                self.uart_error(e.kind());
                false
            }
        }
    }

    fn uart_error(&mut self, kind: embedded_io::ErrorKind) {
        log_warn!("UART error");
        let _ = kind;
        bump(&mut self.stats.uart_errors);
    }
}

/// Resolves every reaction of the program to a device function, once.
fn resolve(program: &Program<'_>) -> Result<Vec<DeviceFn, MAX_REACTIONS>, Error> {
    let mut funcs = Vec::new();
    for (i, r) in program.reactions.iter().enumerate() {
        let index = u16::try_from(i).map_err(|_| Error::TooManyReactions)?;
        let func = DeviceFn::from_key(program.str(r.key))
            .filter(|_| !r.remote && r.target.len == 0)
            .ok_or(Error::UnsupportedReaction(index))?;
        funcs.push(func).map_err(|_| Error::TooManyReactions)?;
    }
    Ok(funcs)
}

/// The pin level a reaction's `state` argument asks for, `None` when it has none.
fn state_arg(
    program: &Program<'_>,
    reaction: &Reaction,
    ctx: &Context<'_>,
) -> Option<Result<bool, Error>> {
    program
        .args_of(reaction)
        .iter()
        .find(|a| program.str(a.name) == "state")
        .map(|a| template_state(program, a.value, ctx))
}

/// Reads a pin level from a template without the core's number parsing (which would bring
/// kilobytes of float tables into flash): a template that is one substitution is read as
/// that value ([`pin_state`]); any other is rendered as text and read as a word. A float
/// inside a longer template cannot make a word, and is refused.
fn template_state(program: &Program<'_>, template: Span, ctx: &Context<'_>) -> Result<bool, Error> {
    const BAD: Error = Error::BadArgument("state");
    let segments = program.segments_of(template);
    let single = match segments {
        [Segment::Value] => ctx.value.cloned(),
        [Segment::Data(name) | Segment::DataOr(name, _)] => {
            ctx.event.get(program.str(*name)).cloned()
        }
        [Segment::Register] => Some(Value::Float(ctx.register)),
        _ => None,
    };
    if let Some(value) = single {
        return pin_state(&value);
    }
    let mut text = Str::new();
    let mut push = |s: &str| text.push_str(s).map_err(|_| BAD);
    for seg in segments {
        match *seg {
            Segment::Lit(r) => push(program.str(r))?,
            Segment::Source => push(&ctx.event.source)?,
            Segment::Tag => push(&ctx.event.tag)?,
            Segment::RuleName => {
                let name = program.rules.get(ctx.rule as usize).map(|r| r.name);
                push(name.map(|n| program.str(n)).unwrap_or(""))?
            }
            Segment::Value | Segment::Data(_) | Segment::DataOr(..) => {
                let value = match *seg {
                    Segment::Data(name) | Segment::DataOr(name, _) => {
                        ctx.event.get(program.str(name))
                    }
                    _ => ctx.value,
                };
                match value {
                    None => {
                        if let Segment::DataOr(_, default) = *seg {
                            push(program.str(default))?
                        }
                    }
                    Some(Value::Str(s)) => push(s)?,
                    Some(Value::Bool(b)) => push(if *b { "true" } else { "false" })?,
                    Some(Value::Int(i)) => push(&int_text(*i))?,
                    Some(Value::Float(_)) => return Err(BAD),
                }
            }
            Segment::Time => push(&int_text(i64::try_from(ctx.event.time).unwrap_or(i64::MAX)))?,
            Segment::Register => return Err(BAD),
        }
    }
    pin_state(&Value::Str(text))
}

fn int_text(i: i64) -> heapless::String<20> {
    let mut s = heapless::String::new();
    let _ = write!(s, "{i}");
    s
}

fn fill_report(event: &mut Event, rule: &str, report: &Report) -> Result<(), Error> {
    event.push("rule", Value::Str(text(format_args!("{rule}"))))?;
    event.push("function", Value::str(report.func.key())?)?;
    event.push("ok", Value::Bool(report.error.is_none()))?;
    if let Some(e) = report.error {
        event.push("error", Value::Str(text(format_args!("{e}"))))?;
    }
    Ok(())
}

/// An empty event from `source`, for the envelope to hold between sends.
fn blank_event(source: &SourceId) -> Event {
    Event {
        tag: Tag::new(),
        source: source.clone(),
        time: 0,
        seq: 0,
        hops: 0,
        data: Vec::new(),
    }
}

/// The envelope's event from `source`, made afresh when the envelope last carried something
/// else.
#[inline(never)]
fn event_mut<'e>(env: &'e mut Envelope, source: &SourceId) -> Option<&'e mut Event> {
    if !matches!(env.body, Body::Event(_)) {
        env.body = Body::Event(blank_event(source));
    }
    match &mut env.body {
        Body::Event(e) => {
            if e.source != *source {
                e.source.clone_from(source);
            }
            Some(e)
        }
        _ => None,
    }
}

/// Formats into a short string value, truncated at [`MAX_STR_LEN`] bytes.
fn text(args: core::fmt::Arguments<'_>) -> Str {
    struct Truncating(Str);
    impl core::fmt::Write for Truncating {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            for c in s.chars() {
                if self.0.len() + c.len_utf8() > MAX_STR_LEN {
                    break;
                }
                let _ = self.0.push(c);
            }
            Ok(())
        }
    }
    let mut t = Truncating(Str::new());
    let _ = t.write_fmt(args);
    t.0
}

fn level(high: bool) -> &'static str {
    if high { "high" } else { "low" }
}

/// What a beacon error looks like in a defmt log.
#[cfg(feature = "defmt")]
fn defmt_str(
    e: &reflex_beacons::BeaconError,
) -> defmt::Debug2Format<'_, reflex_beacons::BeaconError> {
    defmt::Debug2Format(e)
}

#[cfg(not(feature = "defmt"))]
fn defmt_str(e: &reflex_beacons::BeaconError) -> &reflex_beacons::BeaconError {
    e
}
