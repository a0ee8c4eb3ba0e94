//! A command's exit status and first line of output.

use std::time::Duration;

use reflex_core::event::Tag;
use reflex_core::host::exec::{self, Failure, FirstLine};
use reflex_core::{Event, Value};

use super::client_tag;
use crate::text::{check_segment, push_str, tag};
use crate::{Beacon, BeaconError, Emit};

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

    fn run(&self) -> Result<FirstLine, BeaconError> {
        exec::first_line(&self.argv, self.timeout).map_err(|f| match f {
            Failure::NotFound => BeaconError::CommandNotFound,
            Failure::NotStarted => BeaconError::CommandNotStarted,
            Failure::TimedOut => BeaconError::CommandTimedOut,
        })
    }
}

impl Beacon for Command {
    fn tag(&self) -> &str {
        &self.tag
    }

    fn sample(&mut self, _now_ms: u64, event: &mut Event) -> Result<Emit, BeaconError> {
        let FirstLine { code, line } = self.run()?;
        event.push("exit", Value::Int(i64::from(code)))?;
        push_str(event, "output", &line)?;
        if let Some(x) = parse_value(&line) {
            event.push("value", Value::Float(x))?;
        }
        Ok(Emit::Event)
    }
}

/// The line as a finite number, if it is one.
fn parse_value(line: &str) -> Option<f64> {
    line.parse::<f64>().ok().filter(|x| x.is_finite())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

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
    fn values() {
        assert_eq!(parse_value("-3e2"), Some(-300.0));
        assert_eq!(parse_value("NaN"), None);
        assert_eq!(parse_value("12 apples"), None);
    }
}
