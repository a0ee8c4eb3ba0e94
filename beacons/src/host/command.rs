//! A command's exit status and first line of output.

use std::io::{ErrorKind, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdout, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reflex_core::event::Tag;
use reflex_core::{Event, Value};

use super::client_tag;
use crate::text::{check_segment, push_str, tag};
use crate::{Beacon, BeaconError, Emit};

/// How much of the first line is kept before trimming and truncating to the string capacity.
const FIRST_LINE_MAX: usize = 1024;

/// Runs a command and reports its result, under `/client/cmd/<name>/<source>`:
///
/// * `exit`: the exit status (integer); 128 + the signal number when a signal ended it, as in
///   a shell;
/// * `output`: the first line of its standard output, trimmed, truncated to the string
///   capacity at a character boundary (string; empty when there is no output);
/// * `value`: that line as a number, when it is one (float; absent otherwise).
///
/// The command runs without a shell: `argv[0]` is the program (looked up in `PATH`), the rest
/// its arguments. Standard input and standard error are discarded. It runs in its own process
/// group; if it has not finished within the timeout, the group is killed and the sample fails
/// with [`BeaconError::CommandTimedOut`]. A sample blocks until the command ends.
///
/// ```
/// use std::time::Duration;
/// use reflex_beacons::host::Command;
/// use reflex_beacons::{Beacon, Emit};
/// use reflex_core::{Event, Value};
///
/// let argv = vec!["echo".to_string(), "42".to_string()];
/// let mut cmd = Command::new("web-1", "answer", argv, Duration::from_secs(5)).unwrap();
/// assert_eq!(cmd.tag(), "/client/cmd/answer/web-1");
/// let mut event = Event::new(cmd.tag(), "web-1").unwrap();
/// assert_eq!(cmd.sample(0, &mut event), Ok(Emit::Event));
/// assert_eq!(event.get("exit"), Some(&Value::Int(0)));
/// assert_eq!(event.get("value"), Some(&Value::Float(42.0)));
/// ```
#[derive(Debug)]
pub struct Command {
    tag: Tag,
    argv: Vec<String>,
    timeout: Duration,
}

impl Command {
    /// A command beacon for the host `source_id`; `name` is the tag segment that names it.
    pub fn new(
        source_id: &str,
        name: &str,
        argv: Vec<String>,
        timeout: Duration,
    ) -> Result<Command, BeaconError> {
        check_segment(name, "the command name must be one non-empty tag segment")?;
        if argv.first().is_none_or(|p| p.is_empty()) {
            return Err(BeaconError::InvalidConfig("argv must name a program"));
        }
        if timeout.is_zero() {
            return Err(BeaconError::InvalidConfig("timeout_s must be positive"));
        }
        // Checks the source id, then builds the longer tag.
        client_tag("cmd", source_id)?;
        Ok(Command {
            tag: tag(format_args!("/client/cmd/{name}/{source_id}"))?,
            argv,
            timeout,
        })
    }

    fn run(&self) -> Result<(ExitStatus, String), BeaconError> {
        let mut child = std::process::Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound => BeaconError::CommandNotFound,
                _ => BeaconError::CommandNotStarted,
            })?;
        let deadline = Instant::now() + self.timeout;
        let Some(stdout) = child.stdout.take() else {
            kill(&mut child);
            return Err(BeaconError::CommandNotStarted);
        };
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::Builder::new()
            .name("reflex-cmd-output".into())
            .spawn(move || first_line(stdout, &tx));
        if reader.is_err() {
            kill(&mut child);
            return Err(BeaconError::CommandNotStarted);
        }
        // The first line arrives at a newline or at the end of output, whichever comes first.
        let line = match rx.recv_timeout(self.timeout) {
            Ok(line) => line,
            Err(_) => {
                kill(&mut child);
                return Err(BeaconError::CommandTimedOut);
            }
        };
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Ok((status, line)),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(None) => {
                    kill(&mut child);
                    return Err(BeaconError::CommandTimedOut);
                }
                Err(_) => {
                    kill(&mut child);
                    return Err(BeaconError::CommandNotStarted);
                }
            }
        }
    }
}

impl Beacon for Command {
    fn tag(&self) -> &str {
        &self.tag
    }

    fn sample(&mut self, _now_ms: u64, event: &mut Event) -> Result<Emit, BeaconError> {
        let (status, line) = self.run()?;
        event.push("exit", Value::Int(exit_code(status)))?;
        push_str(event, "output", &line)?;
        if let Some(x) = parse_value(&line) {
            event.push("value", Value::Float(x))?;
        }
        Ok(Emit::Event)
    }
}

/// Kills the command's process group (it may have started children) and reaps it.
#[allow(unsafe_code)]
fn kill(child: &mut Child) {
    if let Ok(pgid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill has no memory-safety preconditions; the negative pid names the process
        // group the child leads (it was spawned with process_group(0) and is not yet reaped).
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Reads the first line of the output (at most [`FIRST_LINE_MAX`] bytes of it), sends it as
/// soon as it is complete, then drains the rest so that the command never blocks on a full
/// pipe.
fn first_line(mut out: ChildStdout, tx: &mpsc::Sender<String>) {
    let mut line = Vec::new();
    let mut sent = false;
    let mut chunk = [0u8; 4096];
    loop {
        let n = match out.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if sent {
            continue;
        }
        let data = &chunk[..n];
        let end = data.iter().position(|b| *b == b'\n');
        let take = end.unwrap_or(n).min(FIRST_LINE_MAX - line.len());
        line.extend_from_slice(&data[..take]);
        if end.is_some() || line.len() >= FIRST_LINE_MAX {
            let _ = tx.send(String::from_utf8_lossy(&line).trim().to_owned());
            sent = true;
        }
    }
    if !sent {
        let _ = tx.send(String::from_utf8_lossy(&line).trim().to_owned());
    }
}

fn exit_code(status: ExitStatus) -> i64 {
    match (status.code(), status.signal()) {
        (Some(code), _) => i64::from(code),
        (None, Some(signal)) => 128 + i64::from(signal),
        (None, None) => -1,
    }
}

/// The line as a finite number, if it is one.
fn parse_value(line: &str) -> Option<f64> {
    line.parse::<f64>().ok().filter(|x| x.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reflex_core::value::MAX_STR_LEN;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn run(words: &[&str], timeout_ms: u64) -> Result<Event, BeaconError> {
        let mut c = Command::new("h", "t", argv(words), Duration::from_millis(timeout_ms))?;
        let mut e = Event::new(c.tag(), "h").unwrap();
        assert_eq!(c.sample(0, &mut e)?, Emit::Event);
        Ok(e)
    }

    fn s(text: &str) -> Option<Value> {
        Some(Value::str(text).unwrap())
    }

    #[test]
    fn first_line_exit_and_value() {
        let e = run(
            &["sh", "-c", "printf ' 12.5 \\nsecond line\\n'; exit 3"],
            5_000,
        )
        .unwrap();
        assert_eq!(e.get("exit"), Some(&Value::Int(3)));
        assert_eq!(e.get("output").cloned(), s("12.5"));
        assert_eq!(e.get("value"), Some(&Value::Float(12.5)));
        let e = run(&["echo", "all good"], 5_000).unwrap();
        assert_eq!(e.get("exit"), Some(&Value::Int(0)));
        assert_eq!(e.get("output").cloned(), s("all good"));
        assert_eq!(e.get("value"), None);
        let e = run(&["true"], 5_000).unwrap();
        assert_eq!(e.get("output").cloned(), s(""));
        let e = run(&["echo", "inf"], 5_000).unwrap();
        assert_eq!(e.get("value"), None);
    }

    #[test]
    fn no_shell_expansion() {
        let e = run(&["echo", "$HOME", "*"], 5_000).unwrap();
        assert_eq!(e.get("output").cloned(), s("$HOME *"));
    }

    #[test]
    fn long_and_invalid_output_is_truncated_safely() {
        let e = run(
            &["sh", "-c", "printf 'é%.0s' $(seq 100); printf '\\377\\n'"],
            5_000,
        )
        .unwrap();
        let Some(Value::Str(out)) = e.get("output") else {
            panic!("{e:?}")
        };
        assert!(out.len() <= MAX_STR_LEN && out.len() >= MAX_STR_LEN - 1);
        assert!(out.chars().all(|c| c == 'é'));
        // A large output does not block the command.
        let e = run(&["sh", "-c", "head -c 1000000 /dev/zero; echo"], 10_000).unwrap();
        assert_eq!(e.get("exit"), Some(&Value::Int(0)));
    }

    #[test]
    fn signals_and_errors() {
        let e = run(&["sh", "-c", "kill -9 $$"], 5_000).unwrap();
        assert_eq!(e.get("exit"), Some(&Value::Int(137)));
        assert_eq!(
            run(&["/no/such/program"], 1_000).unwrap_err(),
            BeaconError::CommandNotFound
        );
        assert_eq!(
            run(&["/"], 1_000).unwrap_err(),
            BeaconError::CommandNotStarted
        );
    }

    #[test]
    fn timeout_kills_the_group() {
        let started = Instant::now();
        // The background sleep keeps the pipe open; the group kill ends it too.
        let err = run(&["sh", "-c", "sleep 30 & sleep 30"], 300).unwrap_err();
        assert_eq!(err, BeaconError::CommandTimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
        // Output first, then hanging: still a timeout.
        let err = run(&["sh", "-c", "echo 1; sleep 30"], 300).unwrap_err();
        assert_eq!(err, BeaconError::CommandTimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn bad_configuration() {
        let t = Duration::from_secs(1);
        for (name, words) in [
            ("t", &[][..]),
            ("t", &[""][..]),
            ("a/b", &["true"][..]),
            ("", &["true"][..]),
        ] {
            assert!(
                matches!(
                    Command::new("h", name, argv(words), t),
                    Err(BeaconError::InvalidConfig(_))
                ),
                "{name:?} {words:?}"
            );
        }
        assert!(Command::new("h", "t", argv(&["true"]), Duration::ZERO).is_err());
    }

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
        assert_eq!(parse_value("-3e2"), Some(-300.0));
        assert_eq!(parse_value("NaN"), None);
        assert_eq!(parse_value("12 apples"), None);
    }
}
