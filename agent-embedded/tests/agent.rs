//! The device agent on the host: an in-memory UART, a mock pin, a rulebook compiled with the
//! real compiler.

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;

use embedded_hal_mock::eh1::digital::{Mock as PinMock, State, Transaction};
use reflex_agent_embedded::{
    Agent, AgentMemory, CODE_UNKNOWN_FUNCTION, Clock, DEVICE_KEYS, Error, MAX_DEVICE_ENVELOPE_LEN,
    MacKey, Scheduled, TX_FRAME_LEN,
};
use reflex_beacons::device::{Sensor, SensorRead, Uptime};
use reflex_beacons::{BeaconError, Schedule};
use reflex_core::auth::{self, AuthError, Signer, Verifier};
use reflex_core::event::{MAX_FIELDS, MAX_SOURCE_LEN, MAX_TAG_LEN};
use reflex_core::frame::{self, EnvelopeDeframer, MAX_ENVELOPE_FRAME_LEN};
use reflex_core::value::{MAX_NAME_LEN, MAX_STR_LEN};
use reflex_core::wire::{self, Action, Body, Envelope, MAX_AUTH_LEN};
use reflex_core::{Event, Value};
use reflex_rules::{Catalog, Compiled, compile_str};

/// A UART over two byte queues: what the test puts in `rx` the agent reads; what the agent
/// writes lands in `tx`.
#[derive(Default)]
struct MemUart {
    rx: VecDeque<u8>,
    tx: Vec<u8>,
}

impl embedded_io::ErrorType for MemUart {
    type Error = core::convert::Infallible;
}

impl embedded_io::Read for MemUart {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(self.rx.len());
        for (slot, b) in buf.iter_mut().zip(self.rx.drain(..n)) {
            *slot = b;
        }
        Ok(n)
    }
}

impl embedded_io::ReadReady for MemUart {
    fn read_ready(&mut self) -> Result<bool, Self::Error> {
        Ok(!self.rx.is_empty())
    }
}

impl embedded_io::Write for MemUart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.tx.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// A clock the test moves.
#[derive(Clone, Default)]
struct TestClock(Rc<Cell<u64>>);

impl TestClock {
    fn set(&self, ms: u64) {
        self.0.set(ms);
    }
}

impl Clock for TestClock {
    fn now_ms(&mut self) -> u64 {
        self.0.get()
    }
}

/// A sensor whose next reading the test sets.
#[derive(Clone, Default)]
struct Dial(Rc<Cell<f32>>);

impl SensorRead for Dial {
    type Error = BeaconError;
    fn read(&mut self) -> Result<f32, BeaconError> {
        Ok(self.0.get())
    }
}

/// A catalog with the device reactions, the way firmware build scripts make it.
fn device_catalog() -> Catalog {
    Catalog::builtin().with_keys(DEVICE_KEYS)
}

const RULES: &str = "
/device/sensor/temp/*:
  rules:
    - temp_c:
        rule: rules.simple.gt
        register: register.aggregate.last
        threshold: 30
        period: 10
        reactions:
          - reactions.device.set_pin:
              state: on
";

fn compile(yaml: &str) -> Compiled {
    compile_str("device.yml", yaml, &device_catalog()).unwrap_or_else(|e| panic!("{e}"))
}

type TestAgent<'p> = Agent<'p, MemUart, PinMock, TestClock, 4>;

fn agent<'p>(compiled: &'p Compiled, pin: &PinMock, clock: &TestClock) -> TestAgent<'p> {
    // Leaked: a test's agent lives as long as the test, like firmware's lives forever.
    let memory = Box::leak(Box::new(AgentMemory::new()));
    Agent::new(
        "dev-1",
        MemUart::default(),
        pin.clone(),
        clock.clone(),
        compiled.program(),
        memory,
    )
    .unwrap()
}

/// Decodes every frame the agent wrote, and checks there was nothing else on the line.
fn sent(agent: &mut TestAgent<'_>) -> Vec<Body> {
    let bytes = std::mem::take(&mut agent.uart_mut().tx);
    let mut deframer = EnvelopeDeframer::new();
    let mut out = Vec::new();
    for b in bytes {
        if let Some(frame) = deframer.push(b) {
            let payload = frame.expect("the agent writes intact frames");
            out.push(wire::decode(payload).unwrap().envelope.body);
        }
    }
    out
}

fn framed(body: impl Into<Body>) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_ENVELOPE_FRAME_LEN];
    let n = frame::encode_envelope(&Envelope::new(body), &mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn set_pin(id: u64, target: &str, state: &str) -> Action {
    let mut a = Action::new(id, "reactions.device.set_pin", target).unwrap();
    a.push_arg("state", Value::str(state).unwrap()).unwrap();
    a
}

fn results(bodies: &[Body]) -> Vec<(u64, bool, i32, String)> {
    bodies
        .iter()
        .filter_map(|b| match b {
            Body::Result(r) => Some((r.id, r.ok, r.code, r.output.to_string())),
            _ => None,
        })
        .collect()
}

fn events(bodies: &[Body]) -> Vec<&Event> {
    bodies
        .iter()
        .filter_map(|b| match b {
            Body::Event(e) => Some(e),
            _ => None,
        })
        .collect()
}

#[test]
fn beacon_events_go_up_framed_with_heartbeats() {
    let compiled = compile(RULES);
    let pin = PinMock::new(&[Transaction::set(State::Low)]);
    let clock = TestClock::default();
    let mut agent = agent(&compiled, &pin, &clock);
    let mut uptime = Uptime::new("dev-1").unwrap();
    let mut beacons = [Scheduled::new(&mut uptime, Schedule::every(1_000))];

    clock.set(0);
    let idle = agent.poll(&mut beacons);
    assert_eq!(idle, 1_000);
    clock.set(1_000);
    agent.poll(&mut beacons);
    let bodies = sent(&mut agent);
    let kinds: Vec<_> = bodies.iter().map(|b| b.kind().as_str()).collect();
    assert_eq!(kinds, ["event", "heartbeat", "event"]);
    let evs = events(&bodies);
    assert_eq!(evs[1].tag.as_str(), "/device/uptime/dev-1");
    assert_eq!(evs[1].source.as_str(), "dev-1");
    assert_eq!(evs[1].get("uptime_s"), Some(&Value::Int(1)));
    assert_eq!(evs[1].time, 1_000);
    // One sequence for everything the device sends.
    let seqs: Vec<u64> = bodies.iter().map(Body::seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(agent.stats().events_sent, 2);
    assert_eq!(agent.stats().heartbeats_sent, 1);
    pin.clone().done();
}

#[test]
fn actions_round_trip() {
    let compiled = compile(RULES);
    let pin = PinMock::new(&[
        Transaction::set(State::Low),
        Transaction::set(State::High),
        Transaction::set(State::Low),
    ]);
    let clock = TestClock::default();
    let mut agent = agent(&compiled, &pin, &clock);

    let mut line = Vec::new();
    line.extend(framed(set_pin(10, "dev-1", "on")));
    // For another device: ignored, not answered.
    line.extend(framed(set_pin(11, "dev-2", "off")));
    // A retry of action 10: answered again, not performed again.
    line.extend(framed(set_pin(10, "dev-1", "on")));
    line.extend(framed(
        Action::new(12, "reactions.device.toggle_pin", "*").unwrap(),
    ));
    line.extend(framed(
        Action::new(13, "reactions.actor.run", "dev-1").unwrap(),
    ));
    line.extend(framed(set_pin(14, "dev-1", "sideways")));
    agent.uart_mut().rx.extend(line);
    agent.poll(&mut []);

    let bodies = sent(&mut agent);
    let got = results(&bodies);
    assert_eq!(
        got,
        [
            (10, true, 0, "pin high".to_string()),
            (10, true, 0, "action 10 already handled".to_string()),
            (12, true, 0, "pin low".to_string()),
            (
                13,
                false,
                CODE_UNKNOWN_FUNCTION,
                "unknown function reactions.actor.run".to_string()
            ),
            (
                14,
                false,
                1,
                "missing or invalid argument `state`".to_string()
            ),
        ]
    );
    for b in &bodies {
        if let Body::Result(r) = b {
            assert_eq!(r.source.as_str(), "dev-1");
        }
    }
    let stats = agent.stats();
    assert_eq!(
        (
            stats.actions_ok,
            stats.actions_failed,
            stats.actions_duplicate,
            stats.ignored
        ),
        (2, 2, 1, 1)
    );
    assert!(!agent.pin_is_high());
    pin.clone().done();
}

#[test]
fn a_rule_fires_on_the_device_and_is_reported() {
    let compiled = compile(RULES);
    let pin = PinMock::new(&[Transaction::set(State::Low), Transaction::set(State::High)]);
    let clock = TestClock::default();
    let mut agent = agent(&compiled, &pin, &clock);
    let dial = Dial::default();
    let mut sensor = Sensor::new(dial.clone(), "temp", "temp_c", "dev-1").unwrap();
    let mut beacons = [Scheduled::new(&mut sensor, Schedule::every(100))];

    dial.0.set(20.0);
    agent.poll(&mut beacons);
    clock.set(100);
    dial.0.set(35.0);
    agent.poll(&mut beacons);
    // Edge firing: still hot, no second firing.
    clock.set(200);
    agent.poll(&mut beacons);
    assert!(agent.pin_is_high());

    let bodies = sent(&mut agent);
    let evs = events(&bodies);
    let tags: Vec<&str> = evs.iter().map(|e| e.tag.as_str()).collect();
    assert_eq!(
        tags,
        [
            "/device/sensor/temp/dev-1",
            "/device/sensor/temp/dev-1",
            "/device/reaction/dev-1",
            "/device/sensor/temp/dev-1",
        ]
    );
    let report = evs[2];
    assert_eq!(report.get("rule"), Some(&Value::str("temp_c").unwrap()));
    assert_eq!(
        report.get("function"),
        Some(&Value::str("reactions.device.set_pin").unwrap())
    );
    assert_eq!(report.get("ok"), Some(&Value::Bool(true)));
    assert_eq!(report.get("error"), None);
    assert_eq!(report.hops, 1);
    let stats = agent.stats();
    assert_eq!(
        (
            stats.rules_fired,
            stats.reactions_ok,
            stats.reactions_failed
        ),
        (1, 1, 0)
    );
    pin.clone().done();
}

#[test]
fn a_failing_reaction_is_reported_not_ok() {
    let compiled = compile(
        "
/device/sensor/temp/*:
  rules:
    - temp_c:
        rule: rules.simple.gt
        threshold: 30
        fire: always
        reactions:
          - reactions.device.set_pin:
              state: '{{ event.data.missing }}'
          - reactions.device.toggle_pin: {}
",
    );
    let pin = PinMock::new(&[Transaction::set(State::Low), Transaction::set(State::High)]);
    let clock = TestClock::default();
    let mut agent = agent(&compiled, &pin, &clock);
    let dial = Dial(Rc::new(Cell::new(40.0)));
    let mut sensor = Sensor::new(dial, "temp", "temp_c", "dev-1").unwrap();
    agent.poll(&mut [Scheduled::new(&mut sensor, Schedule::every(100))]);
    let bodies = sent(&mut agent);
    let reports: Vec<_> = events(&bodies)
        .into_iter()
        .filter(|e| e.tag.as_str() == "/device/reaction/dev-1")
        .map(|e| (e.get("function").unwrap().to_string(), e.get("ok").cloned()))
        .collect();
    assert_eq!(
        reports,
        [
            (
                "reactions.device.set_pin".to_string(),
                Some(Value::Bool(false))
            ),
            (
                "reactions.device.toggle_pin".to_string(),
                Some(Value::Bool(true))
            ),
        ]
    );
    assert_eq!(agent.stats().reactions_failed, 1);
    pin.clone().done();
}

#[test]
fn garbage_on_the_line_is_ignored_and_counted() {
    let compiled = compile(RULES);
    let pin = PinMock::new(&[Transaction::set(State::Low), Transaction::set(State::High)]);
    let clock = TestClock::default();
    let mut agent = agent(&compiled, &pin, &clock);

    let good = framed(set_pin(1, "dev-1", "high"));
    let mut flipped = framed(set_pin(2, "dev-1", "low"));
    flipped[7] ^= 0x10;
    let truncated = framed(set_pin(3, "dev-1", "low"));
    let mut line = Vec::new();
    // Noise before anything, joined mid-frame.
    line.extend_from_slice(&[0x42, 0x13, 0x99, 0x00]);
    line.extend_from_slice(&flipped);
    // A truncated frame runs into the next frame's bytes: both are lost.
    line.extend_from_slice(&truncated[..truncated.len() / 2]);
    line.push(0);
    // A frame with a valid CRC that is not an envelope.
    let mut junk = vec![0u8; 32];
    let n = frame::encode(b"not an envelope", &mut junk).unwrap();
    line.extend_from_slice(&junk[..n]);
    // An event: not for the device to act on.
    line.extend(framed(Event::new("/elsewhere", "host").unwrap()));
    line.extend_from_slice(&good);
    // Trailing noise with no delimiter yet.
    line.extend_from_slice(&[0xFF; 5]);
    agent.uart_mut().rx.extend(line);
    agent.poll(&mut []);
    agent.poll(&mut []);

    let got = results(&sent(&mut agent));
    assert_eq!(got, [(1, true, 0, "pin high".to_string())]);
    let s = agent.stats();
    assert_eq!(s.frames.frames_ok, 3);
    assert!(
        s.frames.crc_errors + s.frames.cobs_errors + s.frames.too_short >= 2,
        "{s:?}"
    );
    assert_eq!(s.decode_errors, 1);
    assert_eq!(s.ignored, 1);
    assert_eq!(s.actions_ok, 1);
    pin.clone().done();
}

#[test]
fn a_flood_does_not_starve_the_beacons() {
    let compiled = compile(RULES);
    let pin = PinMock::new(&[Transaction::set(State::Low)]);
    let clock = TestClock::default();
    let mut agent = agent(&compiled, &pin, &clock);
    agent
        .uart_mut()
        .rx
        .extend(std::iter::repeat_n(0x55, 10_000));
    let mut uptime = Uptime::new("dev-1").unwrap();
    agent.poll(&mut [Scheduled::new(&mut uptime, Schedule::every(1_000))]);
    assert_eq!(agent.stats().events_sent, 1);
    assert_eq!(
        agent.uart_mut().rx.len(),
        10_000 - reflex_agent_embedded::RX_BUDGET
    );
    pin.clone().done();
}

#[test]
fn the_rulebook_and_the_id_are_checked_at_start() {
    let clock = TestClock::default();
    // The agent refuses before touching the pin: no expectation, checked up front.
    let pin = PinMock::new(&[]);
    pin.clone().done();
    let host = compile(
        "
/device/sensor/temp/*:
  rules:
    - temp_c:
        rule: rules.simple.gt
        threshold: 30
        reactions:
          - reactions.device.set_pin:
              state: on
          - reactions.log.print:
              message: hot
",
    );
    let new = |program, id: &str| {
        let mut memory = AgentMemory::<4>::new();
        Agent::new(
            id,
            MemUart::default(),
            pin.clone(),
            clock.clone(),
            program,
            &mut memory,
        )
        .err()
    };
    assert_eq!(
        new(host.program(), "dev-1"),
        Some(Error::UnsupportedReaction(1))
    );
    let targeted = compile(
        "
/device/sensor/temp/*:
  rules:
    - temp_c:
        rule: rules.simple.gt
        threshold: 30
        reactions:
          - reactions.device.toggle_pin:
              target: other-device
",
    );
    assert_eq!(
        new(targeted.program(), "dev-1"),
        Some(Error::UnsupportedReaction(0))
    );
    let ok = compile(RULES);
    for bad in ["", "a/b", "a b", "dev-*", &"x".repeat(MAX_SOURCE_LEN + 1)] {
        assert_eq!(new(ok.program(), bad), Some(Error::InvalidId), "{bad:?}");
    }
}

#[test]
fn the_largest_event_fits_the_transmit_buffer() {
    let long = |n: usize| "x".repeat(n);
    let mut e = Event::new(
        &format!("/{}", long(MAX_TAG_LEN - 1)),
        &long(MAX_SOURCE_LEN),
    )
    .unwrap();
    e.time = u64::MAX;
    e.seq = u64::MAX;
    e.hops = u8::MAX;
    for i in 0..MAX_FIELDS {
        let name = format!("{i}{}", long(MAX_NAME_LEN - 1));
        e.push(&name, Value::str(&long(MAX_STR_LEN)).unwrap())
            .unwrap();
    }
    let mut env = Envelope::new(e);
    let mut buf = vec![0u8; 4096];
    let plain = wire::encode(&env, &mut buf).unwrap();
    env.set_auth(&[0xAB; MAX_AUTH_LEN]).unwrap();
    let signed = wire::encode(&env, &mut buf).unwrap();
    assert_eq!((plain, signed), (947, 1011));
    assert!(signed <= MAX_DEVICE_ENVELOPE_LEN);
    let mut tx = [0u8; TX_FRAME_LEN];
    frame::encode_envelope(&env, &mut tx).unwrap();
}

#[test]
fn memory_is_fixed_and_small() {
    let agent = std::mem::size_of::<TestAgent<'static>>();
    let memory = std::mem::size_of::<AgentMemory<4>>();
    // The agent itself moves freely; the kilobytes are in the memory it borrows.
    assert!(agent < 1024, "{agent}");
    // Deframer (2 KiB), transmit buffer (1 KiB), one envelope (2 KiB) and four slots.
    assert!(memory < 9 * 1024, "{memory}");
}

#[test]
fn the_device_reads_actions_as_the_wire_writes_them() {
    use reflex_agent_embedded::downlink::{self, DeviceAction, Downlink, MAX_DEVICE_ARGS};
    use reflex_core::wire::{MAX_KEY_LEN, MAX_TARGET_LEN};

    let long = |n: usize| "x".repeat(n);
    let values = [
        Value::Int(i64::MIN),
        Value::Float(-0.5),
        Value::Bool(true),
        Value::str(&long(MAX_STR_LEN)).unwrap(),
    ];
    for nargs in 0..=MAX_DEVICE_ARGS {
        for auth in [&[][..], &[7u8; MAX_AUTH_LEN][..]] {
            let mut a = Action::new(
                u64::MAX - nargs as u64,
                &long(MAX_KEY_LEN),
                &long(MAX_TARGET_LEN),
            )
            .unwrap();
            a.source = reflex_core::event::make_source(&long(MAX_SOURCE_LEN)).unwrap();
            (a.seq, a.time, a.expires) = (u64::MAX, 1_700_000_000_000, 0);
            for i in 0..nargs {
                a.push_arg(&long(MAX_NAME_LEN), values[i % values.len()].clone())
                    .unwrap();
            }
            let mut env = Envelope::new(a.clone());
            env.set_auth(auth).unwrap();
            let mut buf = vec![0u8; 4096];
            let n = wire::encode(&env, &mut buf).unwrap();
            assert!(n <= reflex_agent_embedded::MAX_DOWNLINK_LEN, "{n}");
            let Ok(Downlink::Action(got)) = downlink::decode(&buf[..n]) else {
                panic!("{nargs} args");
            };
            let expected = DeviceAction {
                id: a.id,
                source: a.source.clone(),
                seq: a.seq,
                time: a.time,
                expires: a.expires,
                target: a.target.clone(),
                function: a.function.clone(),
                args: a.args.iter().cloned().collect(),
                hops: a.hops,
            };
            assert_eq!(got, expected);
            // Every cut is an error, never a panic.
            for cut in 0..n {
                assert!(downlink::decode(&buf[..cut]).is_err());
            }
        }
    }
    // One argument too many: refused.
    let mut a = Action::new(1, "reactions.device.set_pin", "dev-1").unwrap();
    for _ in 0..=MAX_DEVICE_ARGS {
        a.push_arg("state", Value::Bool(true)).unwrap();
    }
    let mut buf = vec![0u8; 4096];
    let n = wire::encode(&Envelope::new(a), &mut buf).unwrap();
    assert_eq!(
        downlink::decode(&buf[..n]),
        Err(reflex_core::Error::Malformed)
    );
    // Other kinds are recognised and left alone.
    let n = wire::encode(&Envelope::new(Event::new("/t", "h").unwrap()), &mut buf).unwrap();
    assert_eq!(downlink::decode(&buf[..n]), Ok(Downlink::Other));
    buf[0] = 9;
    assert_eq!(
        downlink::decode(&buf[..n]),
        Err(reflex_core::Error::UnsupportedVersion(9))
    );
}

#[test]
fn an_action_too_large_for_the_device_is_counted() {
    let compiled = compile(RULES);
    let pin = PinMock::new(&[Transaction::set(State::Low), Transaction::set(State::High)]);
    let clock = TestClock::default();
    let mut agent = agent(&compiled, &pin, &clock);
    let mut big = set_pin(1, "dev-1", "on");
    for _ in 0..10 {
        big.push_arg("padding", Value::str(&"p".repeat(MAX_STR_LEN)).unwrap())
            .unwrap();
    }
    let mut line = framed(big);
    line.extend(framed(set_pin(2, "dev-1", "on")));
    agent.uart_mut().rx.extend(line);
    // RX_BUDGET bytes a poll.
    for _ in 0..4 {
        agent.poll(&mut []);
    }
    assert_eq!(
        results(&sent(&mut agent)),
        [(2, true, 0, "pin high".to_string())]
    );
    assert_eq!(agent.stats().frames.too_long, 1);
    pin.clone().done();
}

const KEY: [u8; 32] = [7; 32];

fn keyed_agent<'p>(compiled: &'p Compiled, pin: &PinMock, clock: &TestClock) -> TestAgent<'p> {
    agent(compiled, pin, clock).with_key(Some(MacKey::from_bytes(KEY)), 3)
}

/// `body` framed as the Manager sends it to a device with a key: tagged with `key`.
fn framed_tagged(body: impl Into<Body>, key: [u8; 32]) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_ENVELOPE_FRAME_LEN];
    let signer = Signer::Mac(MacKey::from_bytes(key));
    let n = frame::encode_tagged(&body.into(), Some(&signer), &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// Every frame the agent wrote, checked with `verifier`: the bodies and the verdicts.
fn sent_checked(
    agent: &mut TestAgent<'_>,
    verifier: &Verifier,
) -> Vec<(Body, Result<(), AuthError>)> {
    let bytes = std::mem::take(&mut agent.uart_mut().tx);
    let mut deframer = EnvelopeDeframer::new();
    let mut out = Vec::new();
    for b in bytes {
        if let Some(frame) = deframer.push(b) {
            let payload = frame.expect("the agent writes intact frames");
            let d = wire::decode(payload).unwrap();
            let verdict = auth::verify(&d, payload, verifier);
            out.push((d.envelope.body, verdict));
        }
    }
    out
}

#[test]
fn with_a_key_everything_sent_is_tagged() {
    let compiled = compile(RULES);
    let pin = PinMock::new(&[
        Transaction::set(State::Low),
        Transaction::set(State::High),
        Transaction::set(State::Low),
    ]);
    let clock = TestClock::default();
    let mut agent = keyed_agent(&compiled, &pin, &clock);
    let dial = Dial::default();
    let mut sensor = Sensor::new(dial.clone(), "temp", "temp_c", "dev-1").unwrap();
    let mut beacons = [Scheduled::new(&mut sensor, Schedule::every(100))];

    // An event and a heartbeat; then a rule firing and its report; then an action's result.
    dial.0.set(20.0);
    agent.poll(&mut beacons);
    clock.set(100);
    dial.0.set(35.0);
    agent.poll(&mut beacons);
    agent
        .uart_mut()
        .rx
        .extend(framed_tagged(set_pin(10, "dev-1", "off"), KEY));
    agent.poll(&mut []);

    let good = Verifier::Mac(MacKey::from_bytes(KEY));
    let checked = sent_checked(&mut agent, &good);
    let kinds: Vec<_> = checked.iter().map(|(b, _)| b.kind().as_str()).collect();
    assert_eq!(kinds, ["event", "heartbeat", "event", "event", "result"]);
    assert!(checked.iter().all(|(_, v)| v.is_ok()), "{checked:?}");
    assert!(results(&[checked[4].0.clone()])[0].1);
    // The sequence starts at the boot's number in the high half and keeps growing.
    let seqs: Vec<u64> = checked.iter().map(|(b, _)| b.seq()).collect();
    assert_eq!(
        seqs,
        [
            (3 << 32) + 1,
            (3 << 32) + 2,
            (3 << 32) + 3,
            (3 << 32) + 4,
            (3 << 32) + 5
        ]
    );

    // Another key does not verify them.
    clock.set(200);
    agent.poll(&mut beacons);
    let other = Verifier::Mac(MacKey::from_bytes([8; 32]));
    let checked = sent_checked(&mut agent, &other);
    assert!(!checked.is_empty());
    assert!(checked.iter().all(|(_, v)| *v == Err(AuthError::BadTag)));
    pin.clone().done();
}

#[test]
fn with_a_key_only_tagged_fresh_actions_are_performed() {
    let compiled = compile(RULES);
    let pin = PinMock::new(&[
        Transaction::set(State::Low),
        Transaction::set(State::High),
        Transaction::set(State::Low),
    ]);
    let clock = TestClock::default();
    let mut agent = keyed_agent(&compiled, &pin, &clock);
    let action = |id: u64, seq: u64, state: &str, time: u64, expires: u64| {
        let mut a = set_pin(id, "dev-1", state);
        a.seq = seq;
        a.time = time;
        a.expires = expires;
        a
    };
    const T: u64 = 1_700_000_000_000;

    let mut line = Vec::new();
    // Untagged, and tagged with another key: refused, not answered.
    line.extend(framed(action(1, 100, "on", T, T + 30_000)));
    line.extend(framed_tagged(action(2, 101, "on", T, T + 30_000), [8; 32]));
    // Tagged with the device's key: performed.
    let good = framed_tagged(action(3, 102, "on", T, T + 30_000), KEY);
    line.extend(good.clone());
    // The same bytes again (a retry): answered again, not performed again.
    line.extend(good);
    // Another action with a sequence number seen already: a replay, refused.
    line.extend(framed_tagged(action(4, 102, "off", T, T + 30_000), KEY));
    // Expired by the Manager's time learnt from action 3: refused.
    line.extend(framed_tagged(
        action(5, 103, "off", T - 60_000, T - 30_000),
        KEY,
    ));
    // A fresh one: performed.
    line.extend(framed_tagged(action(6, 104, "off", T + 1, T + 30_000), KEY));
    agent.uart_mut().rx.extend(line);
    // A poll reads at most RX_BUDGET bytes.
    while !agent.uart_mut().rx.is_empty() {
        agent.poll(&mut []);
    }

    let checked = sent_checked(&mut agent, &Verifier::Mac(MacKey::from_bytes(KEY)));
    assert!(checked.iter().all(|(_, v)| v.is_ok()));
    let bodies: Vec<Body> = checked.into_iter().map(|(b, _)| b).collect();
    let got: Vec<(u64, bool)> = results(&bodies).iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(got, [(3, true), (3, true), (6, true)]);
    let s = agent.stats();
    assert_eq!(
        (
            s.actions_refused,
            s.actions_stale,
            s.actions_ok,
            s.actions_duplicate
        ),
        (2, 2, 2, 1)
    );
    assert!(!agent.pin_is_high());

    // Later, by the device's clock, action 6's expiry has passed at the Manager too.
    clock.set(40_000);
    let late = framed_tagged(action(7, 105, "on", T + 1, T + 30_000), KEY);
    agent.uart_mut().rx.extend(late);
    agent.poll(&mut []);
    assert!(results(&sent(&mut agent)).is_empty());
    assert_eq!(agent.stats().actions_stale, 3);
    pin.clone().done();
}

#[test]
fn without_a_key_actions_are_not_checked() {
    let compiled = compile(RULES);
    let pin = PinMock::new(&[Transaction::set(State::Low), Transaction::set(State::High)]);
    let clock = TestClock::default();
    let mut agent = agent(&compiled, &pin, &clock).with_key(None, 0);
    // Lab mode: a tag is not looked at, and nothing sent carries one.
    let line = framed_tagged(set_pin(1, "dev-1", "on"), [8; 32]);
    agent.uart_mut().rx.extend(line);
    agent.poll(&mut []);
    let checked = sent_checked(&mut agent, &Verifier::Mac(MacKey::from_bytes(KEY)));
    assert!(
        checked
            .iter()
            .all(|(_, v)| *v == Err(AuthError::Unauthenticated))
    );
    assert_eq!(
        results(&checked.into_iter().map(|(b, _)| b).collect::<Vec<_>>()).len(),
        1
    );
    assert_eq!(agent.stats().actions_refused, 0);
    pin.clone().done();
}
