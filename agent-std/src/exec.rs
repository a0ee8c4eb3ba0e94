//! Running a command: no shell, a timeout, bounded captured output.
//!
//! The command runs in its own process group; when the timeout expires the whole group is
//! killed, so a command that started children of its own leaves none behind. Its standard
//! output then its standard error, at most [`MAX_CAPTURE`] bytes of each, are its output.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Most bytes kept of a command's standard output, and of its standard error. The rest is read
/// and discarded, so the command never blocks on a full pipe.
pub const MAX_CAPTURE: usize = 64 * 1024;
/// The exit code reported for a command killed at its timeout (as `timeout(1)` does).
pub const CODE_TIMED_OUT: i32 = 124;
/// The exit code reported for a program that exists but could not be started.
pub const CODE_NOT_STARTED: i32 = 126;
/// The exit code reported for a program that was not found.
pub const CODE_NOT_FOUND: i32 = 127;

/// How long to wait for a killed command's output pipes to close.
const GRACE: Duration = Duration::from_millis(500);

/// What became of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Its exit status; `128 + N` when killed by signal N; [`CODE_TIMED_OUT`],
    /// [`CODE_NOT_FOUND`] or [`CODE_NOT_STARTED`].
    pub code: i32,
    /// Whether it was killed at its timeout.
    pub timed_out: bool,
    /// Standard output then standard error, lossily decoded as UTF-8. Starts with a note when
    /// the command timed out or could not start.
    pub output: String,
}

impl Outcome {
    /// Whether the command ran to completion with status 0.
    pub fn ok(&self) -> bool {
        self.code == 0 && !self.timed_out
    }
}

/// Runs `argv` (program then arguments, each one argv entry, no shell) with `stdin` as its
/// standard input (none when `None`), and kills it after `timeout`.
///
/// ```
/// use std::time::Duration;
/// use reflex_agent::exec::run;
/// let out = run(&["echo", "; rm -rf /"], None, Duration::from_secs(5));
/// assert!(out.ok());
/// assert_eq!(out.output, "; rm -rf /\n");
/// ```
pub fn run<S: AsRef<str>>(argv: &[S], stdin: Option<&[u8]>, timeout: Duration) -> Outcome {
    let Some((program, args)) = argv.split_first() else {
        return not_started(CODE_NOT_STARTED, "empty argv".into());
    };
    let program = program.as_ref();
    let mut cmd = Command::new(program);
    cmd.args(args.iter().map(AsRef::as_ref))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return not_started(CODE_NOT_FOUND, format!("cannot run {program}: not found"));
        }
        Err(e) => return not_started(CODE_NOT_STARTED, format!("cannot run {program}: {e}")),
    };
    let deadline = Instant::now() + timeout;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // Small inputs fit the pipe's buffer; a program that exits without reading is not an
        // error of ours.
        let _ = pipe.write_all(input);
    }
    let stdout = capture(child.stdout.take());
    let stderr = capture(child.stderr.take());

    let (status, timed_out) = wait(&mut child, deadline);
    let mut output = String::new();
    if timed_out {
        output.push_str(&format!(
            "timed out after {} s and was killed\n",
            timeout.as_secs_f64()
        ));
    }
    // A command that exited may have left children holding its pipes: wait for them until the
    // deadline, then kill the group.
    let collect = |rx: mpsc::Receiver<Vec<u8>>| -> Vec<u8> {
        let left = deadline.saturating_duration_since(Instant::now());
        rx.recv_timeout(left).unwrap_or_else(|_| {
            kill_group(&child);
            rx.recv_timeout(GRACE).unwrap_or_default()
        })
    };
    let out = collect(stdout);
    let err = collect(stderr);
    output.push_str(&String::from_utf8_lossy(&out));
    output.push_str(&String::from_utf8_lossy(&err));
    let code = if timed_out {
        CODE_TIMED_OUT
    } else {
        status.map_or(-1, exit_code)
    };
    Outcome {
        code,
        timed_out,
        output,
    }
}

fn not_started(code: i32, output: String) -> Outcome {
    Outcome {
        code,
        timed_out: false,
        output,
    }
}

/// Reads a pipe to its end on a thread, keeping the first [`MAX_CAPTURE`] bytes.
fn capture(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::sync_channel(1);
    let Some(mut pipe) = pipe else {
        let _ = tx.send(Vec::new());
        return rx;
    };
    let spawned = thread::Builder::new()
        .name("reflex-capture".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut kept = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let room = MAX_CAPTURE - kept.len();
                        kept.extend_from_slice(&buf[..n.min(room)]);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = tx.send(kept);
        });
    if spawned.is_err() {
        // No thread: the pipe is dropped, the command sees a closed pipe.
        let (tx, rx) = mpsc::sync_channel(1);
        let _ = tx.send(b"(output not captured: cannot start a thread)\n".to_vec());
        return rx;
    }
    rx
}

/// Waits for the child until `deadline`, killing its process group then. Returns its status
/// (`None` when it could not be had) and whether it was killed at the deadline.
fn wait(child: &mut Child, deadline: Instant) -> (Option<ExitStatus>, bool) {
    // Short commands are common: check often at first, then less often.
    let mut step = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (Some(status), false),
            Ok(None) => {}
            Err(_) => return (None, false),
        }
        let now = Instant::now();
        if now >= deadline {
            kill_group(child);
            return (child.wait().ok(), true);
        }
        thread::sleep(step.min(deadline - now));
        step = (step * 2).min(Duration::from_millis(50));
    }
}

/// Kills the child's process group (the child and whatever it started that stayed in it).
fn kill_group(child: &Child) {
    let Ok(pgid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours. The group id is the
    // child's pid (it was started with `process_group(0)`); the group exists while any of its
    // members does.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => -1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(20);

    #[test]
    fn status_and_output() {
        let out = run(&["sh", "-c", "echo out; echo err >&2; exit 3"], None, LONG);
        assert_eq!(out.code, 3);
        assert!(!out.ok());
        assert_eq!(out.output, "out\nerr\n");
        assert!(run(&["true"], None, LONG).ok());
    }

    #[test]
    fn missing_program() {
        let out = run(&["/nonexistent/reflex-test"], None, LONG);
        assert_eq!(out.code, CODE_NOT_FOUND);
        assert!(out.output.contains("not found"), "{}", out.output);
        assert_eq!(run::<&str>(&[], None, LONG).code, CODE_NOT_STARTED);
    }

    #[test]
    fn stdin_is_passed() {
        let out = run(&["cat"], Some(b"{\"args\":{}}"), LONG);
        assert!(out.ok());
        assert_eq!(out.output, "{\"args\":{}}");
    }

    #[test]
    fn timeout_kills_the_group() {
        let start = Instant::now();
        let out = run(
            &["sh", "-c", "sleep 30 & echo started; sleep 30"],
            None,
            Duration::from_millis(300),
        );
        assert!(out.timed_out);
        assert_eq!(out.code, CODE_TIMED_OUT);
        assert!(out.output.starts_with("timed out"), "{}", out.output);
        assert!(out.output.contains("started"), "{}", out.output);
        // The background sleep held the pipe; killing the group released it.
        assert!(start.elapsed() < Duration::from_secs(15));
    }

    #[test]
    fn output_is_bounded() {
        let out = run(&["sh", "-c", "head -c 200000 /dev/zero"], None, LONG);
        assert!(out.ok());
        assert_eq!(out.output.len(), MAX_CAPTURE);
    }

    #[test]
    fn signals_are_128_plus() {
        let out = run(&["sh", "-c", "kill -9 $$"], None, LONG);
        assert_eq!(out.code, 128 + 9);
    }
}
