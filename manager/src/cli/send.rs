//! `reflex send`: one event to the Manager's events socket.

use std::time::Duration;

use std::path::Path;

use reflex_core::auth::{self, Signer, keyfile};
use reflex_core::host::socket::SocketSpec;
use reflex_core::wire::{Body, MAX_ENVELOPE_LEN};
use reflex_core::{Event, Value};

use crate::Error;
use crate::error::TrustError;

/// How long `reflex send` waits at most, by default, for a Manager to take its event.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// The value of one `key=value` field: text in double quotes is a string as it is within
/// them (`"007"`, `"1.10"`, `"true"`); anything else is read by [`Value::parse`].
pub fn field_value(text: &str) -> Result<Value, reflex_core::Error> {
    match text
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        Some(inner) => Value::str(inner),
        None => Value::parse(text),
    }
}

/// Builds the event `tag` from `source` with `key=value` fields, values read by
/// [`field_value`] (integer, float, bool, else string; a string when double-quoted). A key
/// given twice is an error.
pub fn build_event(
    tag: &str,
    fields: &[String],
    source: &str,
    now_ms: u64,
) -> Result<Event, Error> {
    let mut e = Event::new(tag, "").map_err(|err| Error::core(format!("tag `{tag}`"), err))?;
    e.source = reflex_core::event::make_source(source)
        .map_err(|err| Error::core(format!("source `{source}`"), err))?;
    e.time = now_ms;
    e.seq = reflex_core::host::clock::now_us();
    for field in fields {
        let (key, text) = field
            .split_once('=')
            .ok_or_else(|| Error::NotAField(field.clone()))?;
        if key.is_empty() {
            return Err(Error::NotAField(field.clone()));
        }
        if e.get(key).is_some() {
            return Err(Error::DuplicateField(key.to_string()));
        }
        let value =
            field_value(text).map_err(|err| Error::core(format!("value of `{key}`"), err))?;
        e.push(key, value)
            .map_err(|err| Error::core(format!("field `{key}`"), err))?;
    }
    Ok(e)
}

/// The signer of a key file: an Ed25519 secret key (an agent's) or a device's HMAC key.
pub fn signer(path: &Path) -> Result<Signer, Error> {
    let key = keyfile::read(path).map_err(TrustError::File)?;
    let signer = key.signer().map_err(|source| TrustError::Unusable {
        path: path.to_owned(),
        source,
    })?;
    Ok(signer)
}

/// This host's name as a source id, cut to [`reflex_core::event::MAX_SOURCE_LEN`] bytes
/// (`localhost` when it cannot be read).
pub(super) fn hostname() -> String {
    let name = reflex_core::host::sys::hostname().unwrap_or_else(|| "localhost".to_owned());
    reflex_core::text::clip(&name, reflex_core::event::MAX_SOURCE_LEN).to_owned()
}

/// Pushes `event` to `to`, tagged by `signer` (unsigned when `None`), waiting at most
/// `timeout` for a Manager to take it: [`Error::NotDelivered`] when no connection to one is
/// made by then (the event is queued only on a connection that completed its handshake, and
/// the same time is left for it to leave).
pub fn send(
    event: &Event,
    signer: Option<&Signer>,
    to: &str,
    timeout: Duration,
) -> Result<(), Error> {
    let mut buf = vec![0u8; MAX_ENVELOPE_LEN];
    let n = auth::encode(&Body::Event(event.clone()), signer, &mut buf)
        .map_err(|e| Error::core("event", e))?;
    let ctx = zmq::Context::new();
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // Queue only on a connection that is up: with none, the send times out.
    let push = SocketSpec::new(zmq::PUSH, "events")
        .linger_ms(ms)
        .send_timeout_ms(ms)
        .immediate()
        .connect(&ctx, to)?;
    match push.send(&buf[..n], 0) {
        Ok(()) => {}
        Err(zmq::Error::EAGAIN) => {
            return Err(Error::NotDelivered {
                to: to.to_string(),
                seconds: timeout.as_secs_f64(),
            });
        }
        Err(e) => {
            return Err(Error::Transfer {
                what: "send",
                socket: "events",
                source: e,
            });
        }
    }
    drop(push);
    drop(ctx);
    Ok(())
}

/// Arguments of `reflex send`.
#[derive(Debug, Clone, clap::Args)]
pub struct SendArgs {
    /// The event's tag, e.g. `/client/load/web-1`.
    #[arg(value_name = "TAG", allow_hyphen_values = true)]
    pub tag: String,
    /// Fields as `key=value`; values read as integer, float, `true`/`false`, else string. A
    /// value in double quotes is a string: `version='"1.10"'`. A key may appear once.
    #[arg(value_name = "KEY=VALUE")]
    pub fields: Vec<String>,
    /// Seconds to wait for a Manager to take the event; exit 1 when none does.
    #[arg(long, value_name = "SECONDS", default_value_t = TIMEOUT.as_secs_f64())]
    pub timeout: f64,
    /// The event's source. Default: this host's name.
    #[arg(long, value_name = "ID")]
    pub source: Option<String>,
    /// The Manager's events socket.
    #[arg(long, value_name = "ENDPOINT", default_value = crate::daemon::DEFAULT_EVENTS)]
    pub to: String,
    /// Sign the event with this key file: the source's Ed25519 secret key (`ID.key`) or a
    /// device's HMAC key (`ID.mac`). Unsigned without it.
    #[arg(long, value_name = "PATH")]
    pub key: Option<std::path::PathBuf>,
}

/// Runs `reflex send`: exit status 0 once the event is handed to a Manager, 1 with a message
/// when the event is invalid or no Manager takes it within `--timeout`.
pub fn main(args: &SendArgs) -> std::process::ExitCode {
    let source = args.source.clone().unwrap_or_else(hostname);
    let Some(timeout) = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|t| !t.is_zero())
    else {
        eprintln!("reflex send: --timeout must be a positive number of seconds");
        return std::process::ExitCode::FAILURE;
    };
    let result = args
        .key
        .as_deref()
        .map(signer)
        .transpose()
        .and_then(|signer| {
            let e = build_event(
                &args.tag,
                &args.fields,
                &source,
                reflex_core::host::clock::now_ms(),
            )?;
            send(&e, signer.as_ref(), &args.to, timeout)
        });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reflex send: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_event_example() {
        use reflex_core::Value;
        let e = build_event(
            "/client/load/web-1",
            &["load_avg=23.5".into(), "up=true".into()],
            "web-1",
            1,
        )
        .unwrap();
        assert_eq!(e.get("load_avg"), Some(&Value::Float(23.5)));
        assert!(build_event("no-slash", &[], "h", 1).is_err());
        assert!(build_event("/t", &["novalue".into()], "h", 1).is_err());
    }

    #[test]
    fn duplicates_are_refused_and_quotes_make_strings() {
        let e = build_event("/t", &["x=1".into(), "x=2".into()], "h", 1).unwrap_err();
        assert_eq!(e.to_string(), "field `x` is given more than once");
        let fields = [
            r#"code="007""#,
            r#"v="1.10""#,
            "n=007",
            r#"q=""#,
            r#"empty="""#,
        ];
        let fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        let e = build_event("/t", &fields, "h", 1).unwrap();
        assert_eq!(e.get("code"), Some(&Value::str("007").unwrap()));
        assert_eq!(e.get("v"), Some(&Value::str("1.10").unwrap()));
        assert_eq!(e.get("n"), Some(&Value::Int(7)));
        assert_eq!(e.get("q"), Some(&Value::str("\"").unwrap()));
        assert_eq!(e.get("empty"), Some(&Value::str("").unwrap()));
    }
}
