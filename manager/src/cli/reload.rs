//! `reflex reload`: asks a running Manager to reload its rulebook, over its metrics endpoint
//! (and prints the outcome) or with SIGHUP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::Error;
use crate::daemon::DEFAULT_METRICS;
use crate::daemon::reload::ANSWER_WITHIN;

/// Arguments of `reflex reload`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReloadArgs {
    /// Send SIGHUP to this process id (the outcome is in the Manager's log).
    #[arg(long, value_name = "PID", conflicts_with_all = ["state", "metrics"])]
    pub pid: Option<u32>,
    /// Send SIGHUP to the Manager whose `--state` is DIR (it writes `DIR/manager.pid`).
    #[arg(long, value_name = "DIR", conflicts_with = "metrics")]
    pub state: Option<PathBuf>,
    /// Ask the Manager whose metrics endpoint is HOST:PORT, and print the outcome (the
    /// default).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics: Option<String>,
    /// The admin token file (`admin.token` in the Manager's --trust directory), required by a
    /// Manager that has a trust directory.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["pid", "state"])]
    pub token: Option<PathBuf>,
}

/// Runs `reflex reload`: exit 0 when the reload was asked for (signal) or done (metrics), 1
/// when it was refused or the Manager cannot be reached.
pub fn main(args: &ReloadArgs) -> ExitCode {
    let result = match (&args.pid, &args.state) {
        (Some(pid), _) => hangup(*pid),
        (None, Some(dir)) => crate::state::read_pid(dir).and_then(hangup),
        (None, None) => read_token(args.token.as_deref()).and_then(|token| {
            over_http(
                args.metrics.as_deref().unwrap_or(DEFAULT_METRICS),
                token.as_deref(),
            )
        }),
    };
    match result {
        Ok(text) => {
            println!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("reflex reload: {}", e.to_string().trim_end());
            ExitCode::FAILURE
        }
    }
}

fn hangup(pid: u32) -> Result<String, Error> {
    use reflex_core::host::sys::{self, Signal};
    sys::signal(pid, Signal::Hangup).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidInput {
            Error::io(format!("signal process {pid}"), e)
        } else {
            Error::io(format!("send SIGHUP to process {pid}"), e)
        }
    })?;
    Ok(format!(
        "sent SIGHUP to {pid}; the Manager logs the outcome (`rulebook reloaded` or the errors)"
    ))
}

/// The token of `path`, trimmed.
fn read_token(path: Option<&std::path::Path>) -> Result<Option<String>, Error> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("read the token {}", path.display()), e))?;
    Ok(Some(text.trim().to_string()))
}

fn over_http(addr: &str, token: Option<&str>) -> Result<String, Error> {
    let what = || format!("ask the Manager at {addr} to reload");
    let mut s = TcpStream::connect(addr).map_err(|e| Error::io(what(), e))?;
    let _ = s.set_read_timeout(Some(ANSWER_WITHIN + Duration::from_secs(5)));
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    s.write_all(
        format!(
            "POST /reload HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .map_err(|e| Error::io(what(), e))?;
    let mut text = String::new();
    s.read_to_string(&mut text)
        .map_err(|e| Error::io(what(), e))?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let ok = head
        .lines()
        .next()
        .is_some_and(|l| l.split(' ').nth(1) == Some("200"));
    if ok {
        Ok(body.to_string())
    } else {
        Err(Error::io(
            what(),
            std::io::Error::other(if body.is_empty() { head } else { body }.to_string()),
        ))
    }
}
