//! `reflex send`: one event to the Manager's events socket.

use std::time::Duration;

use std::path::Path;

use reflex_core::auth::{self, Signer, keyfile};
use reflex_core::host::socket::SocketSpec;
use reflex_core::wire::{Body, MAX_ENVELOPE_LEN};
use reflex_core::{Event, Value};

use crate::Error;
use crate::error::TrustError;

/// How long `reflex send` waits at most for its event to leave.
pub const LINGER: Duration = Duration::from_secs(2);

/// Builds the event `tag` from `source` with `key=value` fields, values read by
/// [`Value::parse`] (integer, float, bool, else string).
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
        let value =
            Value::parse(text).map_err(|err| Error::core(format!("value of `{key}`"), err))?;
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
/// [`LINGER`] for it to leave.
pub fn send(event: &Event, signer: Option<&Signer>, to: &str) -> Result<(), Error> {
    let mut buf = vec![0u8; MAX_ENVELOPE_LEN];
    let n = auth::encode(&Body::Event(event.clone()), signer, &mut buf)
        .map_err(|e| Error::core("event", e))?;
    let ctx = zmq::Context::new();
    let push = SocketSpec::new(zmq::PUSH, "events")
        .linger_ms(LINGER.as_millis() as i32)
        .connect(&ctx, to)?;
    push.send(&buf[..n], zmq::DONTWAIT)
        .map_err(|e| Error::Transfer {
            what: "send",
            socket: "events",
            source: e,
        })?;
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
    /// Fields as `key=value`; values read as integer, float, `true`/`false`, else string.
    #[arg(value_name = "KEY=VALUE")]
    pub fields: Vec<String>,
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

/// Runs `reflex send`: exit status 0 once the event is handed over, 1 with a message when
/// the event is invalid or cannot be sent.
pub fn main(args: &SendArgs) -> std::process::ExitCode {
    let source = args.source.clone().unwrap_or_else(hostname);
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
            send(&e, signer.as_ref(), &args.to)
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
}
