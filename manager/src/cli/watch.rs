//! `reflex watch`: a live, human-readable view of the Manager's watch stream.
//!
//! One line per event; reactions, action results and drop reports get their own shape:
//!
//! ```text
//! 12:00:01.123  /client/load/web-1  web-1  load_avg=23.5 io_avg=1.2
//! 12:00:01.124  REACTION reactions.exec.run  web-1  rule=load_avg ok code=0 output="done"
//! 12:00:01.125  REACTION reactions.actor.run  web-1  rule=load_avg queued code=0 output="queued: action 17 to web-1 (1 copy)" action_id=17
//! 12:00:01.300  RESULT reactions.actor.run  web-1  id=17 ok code=0 output="restarted"
//! 12:01:01.200  EXPIRED reactions.actor.run  web-2  id=18 rule=load_avg sent=true
//! 12:00:02.000  DROP loop  manager  count=3
//! ```
//!
//! With `--json`, one JSON object per line instead ([`json_line`]): the event as it travels
//! (`tag`, `source`, `time`, `seq`, `hops`, `data`) and its `kind`; `reflex replay` reads
//! such a recording back.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use reflex_core::host::socket::{self, SocketError, SocketSpec};
use reflex_core::tag::glob_match;
use reflex_core::wire::{self, Body, MAX_ENVELOPE_LEN};
use reflex_core::{Event, Value};

use crate::Error;
use reflex_core::host::clock::time_of_day;

/// The literal start of a glob (up to its first metacharacter): the subscription prefix, so
/// the socket filters before the glob is checked.
pub fn literal_prefix(glob: &str) -> &str {
    let end = glob.find(['*', '?', '[', '\\']).unwrap_or(glob.len());
    &glob[..end]
}

fn show(v: &Value) -> String {
    match v {
        Value::Str(s)
            if s.is_empty()
                || s.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '=') =>
        {
            format!("{:?}", s.as_str())
        }
        other => other.to_string(),
    }
}

fn fields<'e>(e: &'e Event, skip: &'e [&str]) -> impl Iterator<Item = String> + 'e {
    e.data
        .iter()
        .filter(move |f| !skip.contains(&f.name.as_str()))
        .map(|f| format!("{}={}", f.name, show(&f.value)))
}

/// One line for an event of the watch stream.
pub fn format_event(e: &Event) -> String {
    let time = time_of_day(e.time);
    let tag = e.tag.as_str();
    let flag = |e: &Event| match e.get("ok") {
        Some(Value::Bool(true)) => "ok",
        _ => "FAILED",
    };
    if let Some(rest) = tag.strip_prefix("/reflex/reaction/") {
        let key = format!("reactions.{}", rest.replacen('/', ".", 1));
        let rule = e.get("rule").map(show).unwrap_or_default();
        let more: Vec<String> = fields(e, &["rule", "ok"]).collect();
        // An action's report says it was handed on, not that it ran: its result says that.
        let state = match flag(e) {
            "ok" if e.get("action_id").is_some() => "queued",
            other => other,
        };
        return format!(
            "{time}  REACTION {key}  {}  rule={rule} {state} {}",
            e.source,
            more.join(" ")
        )
        .trim_end()
        .to_string();
    }
    if tag.starts_with("/reflex/result/") {
        let function = e.get("function").map(|v| v.to_string()).unwrap_or_default();
        let id = e.get("id").map(show).unwrap_or_default();
        let more: Vec<String> = fields(e, &["function", "id", "ok"]).collect();
        return format!(
            "{time}  RESULT {function}  {}  id={id} {} {}",
            e.source,
            flag(e),
            more.join(" ")
        )
        .trim_end()
        .to_string();
    }
    if let Some(target) = tag.strip_prefix("/reflex/expired/") {
        let function = e.get("function").map(|v| v.to_string()).unwrap_or_default();
        let more: Vec<String> = fields(e, &["function"]).collect();
        return format!("{time}  EXPIRED {function}  {target}  {}", more.join(" "))
            .trim_end()
            .to_string();
    }
    if let Some(reason) = tag.strip_prefix("/reflex/drop/") {
        let more: Vec<String> = fields(e, &[]).collect();
        return format!("{time}  DROP {reason}  {}  {}", e.source, more.join(" "))
            .trim_end()
            .to_string();
    }
    let more: Vec<String> = fields(e, &[]).collect();
    format!("{time}  {tag}  {}  {}", e.source, more.join(" "))
        .trim_end()
        .to_string()
}

/// What a line of the watch stream shows: `event`, or the Manager's own `reaction`,
/// `result`, `expired` and `drop` reports.
pub fn kind(e: &Event) -> &'static str {
    let tag = e.tag.as_str();
    [
        ("/reflex/reaction/", "reaction"),
        ("/reflex/result/", "result"),
        ("/reflex/expired/", "expired"),
        ("/reflex/drop/", "drop"),
    ]
    .iter()
    .find(|(prefix, _)| tag.starts_with(prefix))
    .map_or("event", |(_, k)| k)
}

/// One JSON line for an event of the watch stream:
/// `{"kind", "tag", "source", "time", "seq", "hops", "data": {...}}`.
pub fn json_line(e: &Event) -> String {
    let mut j = reflex_core::host::plugin::event_json(e);
    if let Some(map) = j.as_object_mut() {
        map.insert("kind".into(), kind(e).into());
    }
    j.to_string()
}

/// How `reflex watch` shows what it receives.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// One JSON object per line ([`json_line`]) instead of text ([`format_event`]).
    pub json: bool,
    /// Say once on stderr that it is waiting when, a second after starting, nothing has
    /// arrived and the connection is not up.
    pub announce_waiting: bool,
}

/// How long `reflex watch` waits for a connection before it says it is waiting.
const WAITING_AFTER: Duration = Duration::from_secs(1);

/// Subscribes to the watch socket at `from` and writes one line per event whose tag matches
/// `glob` (all when `None`) to `out`, flushing each, until `stop` is set or `out` is closed.
pub fn watch(
    from: &str,
    glob: Option<&str>,
    out: &mut impl Write,
    stop: &AtomicBool,
) -> Result<(), Error> {
    watch_with(from, glob, Options::default(), out, stop)
}

/// [`watch`], showing lines as `options` say.
pub fn watch_with(
    from: &str,
    glob: Option<&str>,
    options: Options,
    out: &mut impl Write,
    stop: &AtomicBool,
) -> Result<(), Error> {
    if let Some(g) = glob {
        if !(g.starts_with('/') || g.starts_with(['*', '?', '['])) {
            return Err(Error::BadGlob(g.to_string()));
        }
    }
    let ctx = zmq::Context::new();
    let sub = SocketSpec::new(zmq::SUB, "watch").make(&ctx)?;
    sub.set_subscribe(glob.map(literal_prefix).unwrap_or("").as_bytes())
        .map_err(|source| SocketError::Configure {
            role: "watch",
            option: "SUBSCRIBE",
            source,
        })?;
    // The socket's monitor says when a connection is up.
    let monitor = options
        .announce_waiting
        .then(|| connection_monitor(&ctx, &sub))
        .flatten();
    socket::connect(&sub, from)?;
    let started = Instant::now();
    let mut waiting = monitor.is_some();
    let mut tag = vec![0u8; 256];
    let mut buf = vec![0u8; MAX_ENVELOPE_LEN + 1];
    while !stop.load(Relaxed) {
        if waiting {
            let monitor = monitor.as_ref().expect("a monitor while waiting");
            if monitor.recv_bytes(zmq::DONTWAIT).is_ok() {
                waiting = false;
            } else if started.elapsed() >= WAITING_AFTER {
                eprintln!("reflex watch: waiting for a Manager at {from}");
                waiting = false;
            }
        }
        let mut items = [sub.as_poll_item(zmq::POLLIN)];
        match zmq::poll(&mut items, 200) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(zmq::Error::EINTR) => continue,
            Err(source) => {
                return Err(Error::Transfer {
                    what: "poll",
                    socket: "watch",
                    source,
                });
            }
        }
        loop {
            let n = match sub.recv_into(&mut tag, zmq::DONTWAIT) {
                Ok(n) => n,
                Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => break,
                Err(e) => {
                    return Err(Error::Transfer {
                        what: "receive",
                        socket: "watch",
                        source: e,
                    });
                }
            };
            let _ = n;
            if !sub.get_rcvmore().unwrap_or(false) {
                continue;
            }
            let n = match sub.recv_into(&mut buf, 0) {
                Ok(n) => n,
                Err(_) => break,
            };
            while sub.get_rcvmore().unwrap_or(false) {
                let _ = sub.recv_bytes(0);
            }
            let Ok(d) = wire::decode(&buf[..n.min(buf.len())]) else {
                continue;
            };
            let Body::Event(e) = d.envelope.body else {
                continue;
            };
            if glob.is_some_and(|g| !glob_match(g, &e.tag)) {
                continue;
            }
            waiting = false;
            let line = if options.json {
                json_line(&e)
            } else {
                format_event(&e)
            };
            if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// A PAIR socket that receives a message when `sub` connects, or `None` when the monitor
/// cannot be set up (then nothing is announced).
fn connection_monitor(ctx: &zmq::Context, sub: &zmq::Socket) -> Option<zmq::Socket> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let endpoint = format!(
        "inproc://watch-monitor-{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    sub.monitor(&endpoint, zmq::SocketEvent::CONNECTED as i32)
        .ok()?;
    let pair = ctx.socket(zmq::PAIR).ok()?;
    pair.connect(&endpoint).ok()?;
    Some(pair)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_prefix_example() {
        assert_eq!(literal_prefix("/client/load/*"), "/client/load/");
        assert_eq!(literal_prefix("*"), "");
    }

    #[test]
    fn format_event_example() {
        use reflex_core::{Event, Value};
        let mut e = Event::new("/client/load/web-1", "web-1").unwrap();
        e.push("load_avg", Value::Float(23.5)).unwrap();
        let line = format_event(&e);
        assert!(line.ends_with("  /client/load/web-1  web-1  load_avg=23.5"));
    }

    #[test]
    fn lines_by_kind() {
        let mut r = Event::new("/reflex/reaction/exec/run", "web-1").unwrap();
        r.push("rule", Value::str("load_avg").unwrap()).unwrap();
        r.push("ok", Value::Bool(true)).unwrap();
        r.push("code", Value::Int(0)).unwrap();
        r.push("output", Value::str("two words").unwrap()).unwrap();
        let line = format_event(&r);
        assert!(
            line.ends_with(
                "  REACTION reactions.exec.run  web-1  rule=load_avg ok code=0 output=\"two words\""
            ),
            "{line}"
        );
        let mut res = Event::new("/reflex/result/web-1", "web-1").unwrap();
        res.push("id", Value::Int(5)).unwrap();
        res.push("function", Value::str("reactions.actor.run").unwrap())
            .unwrap();
        res.push("ok", Value::Bool(false)).unwrap();
        res.push("code", Value::Int(2)).unwrap();
        let line = format_event(&res);
        assert!(
            line.ends_with("  RESULT reactions.actor.run  web-1  id=5 FAILED code=2"),
            "{line}"
        );
        let mut q = Event::new("/reflex/reaction/actor/run", "web-1").unwrap();
        q.push("rule", Value::str("load_avg").unwrap()).unwrap();
        q.push("ok", Value::Bool(true)).unwrap();
        q.push("action_id", Value::Int(17)).unwrap();
        let line = format_event(&q);
        assert!(
            line.ends_with(
                "  REACTION reactions.actor.run  web-1  rule=load_avg queued action_id=17"
            ),
            "{line}"
        );
        let mut x = Event::new("/reflex/expired/web-2", "manager").unwrap();
        x.push("id", Value::Int(18)).unwrap();
        x.push("function", Value::str("reactions.actor.run").unwrap())
            .unwrap();
        x.push("rule", Value::str("load_avg").unwrap()).unwrap();
        let line = format_event(&x);
        assert!(
            line.ends_with("  EXPIRED reactions.actor.run  web-2  id=18 rule=load_avg"),
            "{line}"
        );
        let mut d = Event::new("/reflex/drop/loop", "manager").unwrap();
        d.push("count", Value::Int(3)).unwrap();
        assert!(format_event(&d).ends_with("  DROP loop  manager  count=3"));
        assert!(format_event(&Event::new("/x", "h").unwrap()).ends_with("  /x  h"));
    }

    #[test]
    fn json_lines_carry_kind_and_hops() {
        let mut e = Event::new("/reflex/reaction/exec/run", "web-1").unwrap();
        e.hops = 2;
        e.time = 1_000;
        e.push("rule", Value::str("load_avg").unwrap()).unwrap();
        e.push("ok", Value::Bool(true)).unwrap();
        let j: serde_json::Value = serde_json::from_str(&json_line(&e)).unwrap();
        assert_eq!(j["kind"], "reaction");
        assert_eq!(j["hops"], 2);
        assert_eq!(j["time"], 1_000);
        assert_eq!(j["data"]["rule"], "load_avg");
        assert_eq!(kind(&Event::new("/client/x", "h").unwrap()), "event");
    }
}

/// Arguments of `reflex watch`.
#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    /// Show only events whose tag matches this glob (`*`, `?`, `[abc]`), e.g.
    /// `/reflex/reaction/*`.
    #[arg(long, value_name = "GLOB")]
    pub tag: Option<String>,
    /// The Manager's watch socket.
    #[arg(long, value_name = "ENDPOINT", default_value = crate::daemon::DEFAULT_WATCH)]
    pub from: String,
    /// One JSON object per line (`kind`, `tag`, `source`, `time`, `seq`, `hops`, `data`),
    /// the recording `reflex replay` reads.
    #[arg(long)]
    pub json: bool,
}

/// Runs `reflex watch` until interrupted.
pub fn main(args: &WatchArgs) -> std::process::ExitCode {
    let stop = super::stop_on_signals();
    let mut out = std::io::stdout().lock();
    let options = Options {
        json: args.json,
        announce_waiting: true,
    };
    match watch_with(&args.from, args.tag.as_deref(), options, &mut out, &stop) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reflex watch: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
