//! Running a program: no shell, a timeout, bounded captured output.
//!
//! The program runs in its own process group; when the timeout expires the whole group is
//! killed, so a program that started children of its own leaves none behind. [`run`] keeps
//! its standard output then its standard error, at most [`MAX_CAPTURE`] bytes in all;
//! [`first_line`] keeps the first line of its standard output only, as the command beacon
//! reports it. [`kill_all`] kills the groups of every program still running, for a shutdown.
//!
//! The Actor's commands and plugins, the Manager's `reactions.exec.run` and plugins and the
//! command beacon all run through here, so they share its exit codes: the exit status,
//! `128 + N` when signal `N` ended the program, [`CODE_TIMED_OUT`], [`CODE_NOT_FOUND`] and
//! [`CODE_NOT_STARTED`].

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::sys::{self, Signal};
use crate::text::clip;

/// Most bytes of a command's output kept: its standard output first, then as much of its
/// standard error as fits. The rest is read and discarded, so the command never blocks on a
/// full pipe.
pub const MAX_CAPTURE: usize = 64 * 1024;
/// The exit code reported for a command killed at its timeout (as `timeout(1)` does).
pub const CODE_TIMED_OUT: i32 = 124;
/// The exit code reported for a program that exists but could not be started (including a
/// working directory that cannot be entered).
pub const CODE_NOT_STARTED: i32 = 126;
/// The exit code reported for a program that was not found.
pub const CODE_NOT_FOUND: i32 = 127;

/// How long to wait for a killed command's output pipes to close.
const GRACE: Duration = Duration::from_millis(500);

/// Process groups of the commands running now, so that [`kill_all`] can end them.
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// What became of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Its exit status; `128 + N` when killed by signal N; [`CODE_TIMED_OUT`],
    /// [`CODE_NOT_FOUND`] or [`CODE_NOT_STARTED`].
    pub code: i32,
    /// Whether it was killed at its timeout.
    pub timed_out: bool,
    /// Standard output then standard error, lossily decoded as UTF-8, at most
    /// [`MAX_CAPTURE`] bytes. Starts with a note when the command timed out or could not
    /// start.
    pub output: String,
    /// Whether output was cut at [`MAX_CAPTURE`].
    pub truncated: bool,
}

impl Outcome {
    /// Whether the command ran to completion with status 0.
    pub fn ok(&self) -> bool {
        self.code == 0 && !self.timed_out
    }
}

/// Kills the process group of every command [`run`] is running now (on shutdown). Each of
/// those runs then returns as its pipes close.
pub fn kill_all() {
    let groups = RUNNING
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for pgid in groups {
        kill_group(pgid);
    }
}

/// Runs `argv` (program then arguments, each one argv entry, no shell) in `cwd` (the current
/// directory when `None`) with `stdin` as its standard input (none when `None`), and kills it
/// after `timeout`.
///
/// ```
/// use std::path::Path;
/// use std::time::Duration;
/// use reflex_core::host::exec::run;
/// let out = run(&["echo", "; rm -rf /"], None, None, Duration::from_secs(5));
/// assert!(out.ok());
/// assert_eq!(out.output, "; rm -rf /\n");
/// let out = run(&["pwd"], Some(Path::new("/")), None, Duration::from_secs(5));
/// assert_eq!(out.output, "/\n");
/// ```
pub fn run<S: AsRef<str>>(
    argv: &[S],
    cwd: Option<&Path>,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Outcome {
    let ran = match execute(argv, cwd, stdin, timeout, Keep::All) {
        Ok(ran) => ran,
        Err(not_run) => return not_run,
    };
    let mut output = String::new();
    if ran.timed_out {
        output.push_str(&format!(
            "timed out after {} s and was killed\n",
            timeout.as_secs_f64()
        ));
    }
    let (mut captured, out_cut) = ran.stdout;
    let (err, err_cut) = ran.stderr;
    let room = MAX_CAPTURE.saturating_sub(output.len() + captured.len());
    let mut truncated = out_cut || err_cut || err.len() > room;
    captured.extend_from_slice(&err[..err.len().min(room)]);
    output.push_str(&String::from_utf8_lossy(&captured));
    let kept = clip(&output, MAX_CAPTURE).len();
    truncated |= kept < output.len();
    output.truncate(kept);
    Outcome {
        code: ran.code,
        timed_out: ran.timed_out,
        output,
        truncated,
    }
}

/// Most bytes of the first line [`first_line`] reads before trimming.
pub const MAX_FIRST_LINE: usize = 1024;

/// What [`first_line`] reports of a program that ran to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstLine {
    /// Its exit status, or `128 + N` when signal N ended it.
    pub code: i32,
    /// The first line of its standard output (at most [`MAX_FIRST_LINE`] bytes of it),
    /// lossily decoded as UTF-8 and trimmed; empty when it printed nothing.
    pub line: String,
}

/// Why [`first_line`] has no line to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The program was not found.
    NotFound,
    /// The program exists but could not be started.
    NotStarted,
    /// The program, or what it started, outlived the timeout and its group was killed.
    TimedOut,
}

/// Runs `argv` as [`run`] does, without standard input, and keeps only the first line of its
/// standard output; its standard error is discarded. The line is complete at its newline, so
/// the rest of the output is read and dropped and never holds the program on a full pipe.
///
/// ```
/// use std::time::Duration;
/// use reflex_core::host::exec::first_line;
/// let out = first_line(&["printf", " 12.5 \\nmore"], Duration::from_secs(5)).unwrap();
/// assert_eq!((out.code, out.line.as_str()), (0, "12.5"));
/// ```
pub fn first_line<S: AsRef<str>>(argv: &[S], timeout: Duration) -> Result<FirstLine, Failure> {
    let ran = execute(argv, None, None, timeout, Keep::FirstLine).map_err(|not_run| {
        if not_run.code == CODE_NOT_FOUND {
            Failure::NotFound
        } else {
            Failure::NotStarted
        }
    })?;
    if ran.timed_out || ran.output_outlived {
        return Err(Failure::TimedOut);
    }
    Ok(FirstLine {
        code: ran.code,
        line: String::from_utf8_lossy(&ran.stdout.0).trim().to_owned(),
    })
}

/// Which output a program's run keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Standard output and standard error, each up to [`MAX_CAPTURE`] bytes.
    All,
    /// The first line of standard output; standard error goes nowhere.
    FirstLine,
}

/// A program that was started, once it and its output are done.
struct Ran {
    /// Its exit code, [`CODE_TIMED_OUT`] when it was killed at the timeout.
    code: i32,
    timed_out: bool,
    /// Whether its output was still open at the timeout (a child held the pipe), so the
    /// group was killed to end it.
    output_outlived: bool,
    /// What was kept of standard output, and whether some was dropped.
    stdout: (Vec<u8>, bool),
    /// Likewise for standard error (empty with [`Keep::FirstLine`]).
    stderr: (Vec<u8>, bool),
}

/// Starts `argv` in its own process group, feeds it `stdin`, waits for it and its output
/// until `timeout`, killing the group then. A program that could not start is the
/// [`Outcome`] to report.
fn execute<S: AsRef<str>>(
    argv: &[S],
    cwd: Option<&Path>,
    stdin: Option<&[u8]>,
    timeout: Duration,
    keep: Keep,
) -> Result<Ran, Outcome> {
    let Some((program, args)) = argv.split_first() else {
        return Err(not_started(CODE_NOT_STARTED, "empty argv".into()));
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
        .stderr(match keep {
            Keep::All => Stdio::piped(),
            Keep::FirstLine => Stdio::null(),
        })
        .process_group(0);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let deadline = Instant::now() + timeout;
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Err(spawn_failed(program, cwd, &e)),
    };
    // The group id is the child's pid: it was started with `process_group(0)`.
    let pgid = child.id();
    let _running = Running::register(pgid);
    let kill = || kill_group(pgid);
    if let (Some(input), Some(pipe)) = (stdin, child.stdin.take()) {
        feed(pipe, input);
    }
    let stdout = capture(child.stdout.take(), keep);
    let stderr = capture(child.stderr.take(), Keep::All);

    let (status, timed_out) = wait(&mut child, deadline, kill);
    // A program that exited may have left children holding its pipes: wait for them until the
    // deadline, then kill the group.
    let mut output_outlived = false;
    let mut collect = |rx: mpsc::Receiver<(Vec<u8>, bool)>| -> (Vec<u8>, bool) {
        let left = deadline.saturating_duration_since(Instant::now());
        rx.recv_timeout(left).unwrap_or_else(|_| {
            output_outlived = true;
            kill();
            rx.recv_timeout(GRACE).unwrap_or_default()
        })
    };
    let stdout = collect(stdout);
    let stderr = collect(stderr);
    let code = if timed_out {
        CODE_TIMED_OUT
    } else {
        status.map_or(-1, exit_code)
    };
    Ok(Ran {
        code,
        timed_out,
        output_outlived,
        stdout,
        stderr,
    })
}

/// The outcome of a command that could not be spawned.
fn spawn_failed(program: &str, cwd: Option<&Path>, e: &std::io::Error) -> Outcome {
    if let Some(dir) = cwd.filter(|d| !d.is_dir()) {
        return not_started(
            CODE_NOT_STARTED,
            format!(
                "cannot run {program}: working directory {}: {e}",
                dir.display()
            ),
        );
    }
    if e.kind() == std::io::ErrorKind::NotFound {
        not_started(CODE_NOT_FOUND, format!("cannot run {program}: not found"))
    } else {
        not_started(CODE_NOT_STARTED, format!("cannot run {program}: {e}"))
    }
}

fn not_started(code: i32, output: String) -> Outcome {
    Outcome {
        code,
        timed_out: false,
        output,
        truncated: false,
    }
}

/// A process group in [`RUNNING`] for as long as this lives.
struct Running(u32);

impl Running {
    fn register(pgid: u32) -> Running {
        RUNNING
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(pgid);
        Running(pgid)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = running.iter().position(|&p| p == self.0) {
            running.swap_remove(i);
        }
    }
}

/// Writes `input` to the command's standard input, then closes it. An input that fits the
/// pipe's buffer is written at once; a larger one is written on a thread, so a command that
/// does not read it cannot hold us past the timeout. A command that exits without reading is
/// not an error of ours.
fn feed(mut pipe: ChildStdin, input: &[u8]) {
    if input.len() <= libc::PIPE_BUF {
        let _ = pipe.write_all(input);
        return;
    }
    let input = input.to_vec();
    // Without a thread the pipe is dropped: the command sees its input end at once.
    let _ = thread::Builder::new()
        .name("reflex-feed".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let _ = pipe.write_all(&input);
        });
}

/// Reads a pipe to its end on a thread. With [`Keep::All`] it keeps the first [`MAX_CAPTURE`]
/// bytes and sends them, saying whether some were dropped, at the end; with
/// [`Keep::FirstLine`] it sends the first line (without its newline, at most
/// [`MAX_FIRST_LINE`] bytes) as soon as it is complete, then drains the rest.
fn capture(
    pipe: Option<impl Read + Send + 'static>,
    keep: Keep,
) -> mpsc::Receiver<(Vec<u8>, bool)> {
    let (tx, rx) = mpsc::sync_channel(1);
    let Some(mut pipe) = pipe else {
        let _ = tx.send((Vec::new(), false));
        return rx;
    };
    let spawned = thread::Builder::new()
        .name("reflex-capture".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut kept = Vec::new();
            let mut dropped = false;
            let mut sent = false;
            let mut buf = [0u8; 4096];
            loop {
                let n = match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                if sent {
                    continue;
                }
                let data = &buf[..n];
                match keep {
                    Keep::All => {
                        let room = MAX_CAPTURE - kept.len();
                        dropped |= n > room;
                        kept.extend_from_slice(&data[..n.min(room)]);
                    }
                    Keep::FirstLine => {
                        let end = data.iter().position(|&b| b == b'\n');
                        let take = end.unwrap_or(n).min(MAX_FIRST_LINE - kept.len());
                        kept.extend_from_slice(&data[..take]);
                        if end.is_some() || kept.len() >= MAX_FIRST_LINE {
                            let _ = tx.send((std::mem::take(&mut kept), false));
                            sent = true;
                        }
                    }
                }
            }
            if !sent {
                let _ = tx.send((kept, dropped));
            }
        });
    if spawned.is_err() {
        // No thread: the pipe is dropped, the command sees a closed pipe.
        let (tx, rx) = mpsc::sync_channel(1);
        let _ = tx.send((
            b"(output not captured: cannot start a thread)\n".to_vec(),
            false,
        ));
        return rx;
    }
    rx
}

/// Waits for the child until `deadline`, killing its process group then (or as soon as its
/// status cannot be had). Returns its status (`None` when it could not be had) and whether it
/// was killed at the deadline.
fn wait(child: &mut Child, deadline: Instant, kill: impl Fn()) -> (Option<ExitStatus>, bool) {
    // Short commands are common: check often at first, then less often.
    let mut step = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (Some(status), false),
            Ok(None) => {}
            Err(_) => {
                kill();
                return (child.wait().ok(), false);
            }
        }
        let now = Instant::now();
        if now >= deadline {
            kill();
            return (child.wait().ok(), true);
        }
        thread::sleep(step.min(deadline - now));
        step = (step * 2).min(Duration::from_millis(20));
    }
}

/// Kills process group `pgid` (a program and whatever it started that stayed in its group).
/// A group already gone is no error: there is nothing left to kill.
fn kill_group(pgid: u32) {
    let _ = sys::signal_group(pgid, Signal::Kill);
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

    /// [`kill_all`] kills every command of this process: the tests run one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[test]
    fn status_and_output() {
        let _serial = serial();
        let out = run(
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            None,
            None,
            LONG,
        );
        assert_eq!(out.code, 3);
        assert!(!out.ok());
        assert_eq!(out.output, "out\nerr\n");
        assert!(run(&["true"], None, None, LONG).ok());
    }

    #[test]
    fn missing_program() {
        let _serial = serial();
        let out = run(&["/nonexistent/reflex-test"], None, None, LONG);
        assert_eq!(out.code, CODE_NOT_FOUND);
        assert!(out.output.contains("not found"), "{}", out.output);
        assert_eq!(run::<&str>(&[], None, None, LONG).code, CODE_NOT_STARTED);
    }

    #[test]
    fn stdin_is_passed() {
        let _serial = serial();
        let out = run(&["cat"], None, Some(b"{\"args\":{}}"), LONG);
        assert!(out.ok());
        assert_eq!(out.output, "{\"args\":{}}");
    }

    #[test]
    fn large_stdin_is_passed() {
        let _serial = serial();
        let input = vec![b'x'; 300_000];
        let out = run(&["wc", "-c"], None, Some(&input), LONG);
        assert!(out.ok());
        assert_eq!(out.output.trim(), "300000");
    }

    #[test]
    fn unread_stdin_does_not_outlast_the_timeout() {
        let _serial = serial();
        let start = Instant::now();
        let input = vec![b'x'; 1 << 20];
        let out = run(
            &["sleep", "30"],
            None,
            Some(&input),
            Duration::from_millis(300),
        );
        assert!(out.timed_out);
        assert!(start.elapsed() < Duration::from_secs(15));
    }

    #[test]
    fn working_directory() {
        let _serial = serial();
        let out = run(&["pwd"], Some(Path::new("/")), None, LONG);
        assert_eq!(out.output, "/\n");
        let out = run(
            &["pwd"],
            Some(Path::new("/nonexistent/reflex-dir")),
            None,
            LONG,
        );
        assert_eq!(out.code, CODE_NOT_STARTED);
        assert!(out.output.contains("working directory"), "{}", out.output);
    }

    #[test]
    fn timeout_kills_the_group() {
        let _serial = serial();
        let start = Instant::now();
        let out = run(
            &["sh", "-c", "sleep 30 & echo started; sleep 30"],
            None,
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
    fn kill_all_ends_running_commands() {
        let _serial = serial();
        let start = Instant::now();
        let runner = thread::spawn(|| run(&["sh", "-c", "sleep 30 & sleep 30"], None, None, LONG));
        while RUNNING.lock().unwrap().is_empty() {
            assert!(start.elapsed() < Duration::from_secs(10), "never started");
            thread::sleep(Duration::from_millis(5));
        }
        kill_all();
        let out = runner.join().unwrap();
        assert_eq!(out.code, 128 + 9);
        assert!(!out.timed_out);
        assert!(start.elapsed() < Duration::from_secs(15));
    }

    #[test]
    fn output_is_bounded() {
        let _serial = serial();
        let out = run(&["sh", "-c", "head -c 200000 /dev/zero"], None, None, LONG);
        assert!(out.ok());
        assert_eq!(out.output.len(), MAX_CAPTURE);
        assert!(out.truncated);
        // Standard error fills what standard output left, and no more.
        let out = run(
            &[
                "sh",
                "-c",
                "head -c 60000 /dev/zero; head -c 10000 /dev/zero >&2",
            ],
            None,
            None,
            LONG,
        );
        assert_eq!(out.output.len(), MAX_CAPTURE);
        assert!(out.truncated);
        let out = run(&["echo", "short"], None, None, LONG);
        assert!(!out.truncated);
    }

    #[test]
    fn invalid_utf8_stays_bounded() {
        let _serial = serial();
        // Each invalid byte decodes to a three-byte replacement character.
        let out = run(
            &["sh", "-c", "head -c 100000 /dev/zero | tr '\\0' '\\377'"],
            None,
            None,
            LONG,
        );
        assert!(out.output.len() <= MAX_CAPTURE);
        assert!(out.truncated);
    }

    #[test]
    fn first_line_only() {
        let _serial = serial();
        let out = first_line(&["sh", "-c", "echo ' a b '; echo second; exit 4"], LONG).unwrap();
        assert_eq!(
            out,
            FirstLine {
                code: 4,
                line: "a b".into()
            }
        );
        let out = first_line(&["sh", "-c", "echo err >&2"], LONG).unwrap();
        assert_eq!(out.line, "");
        // A large output is drained, so the program is never blocked on it.
        let out = first_line(&["sh", "-c", "head -c 1000000 /dev/zero; echo"], LONG).unwrap();
        assert_eq!(out.code, 0);
        assert!(out.line.len() <= MAX_FIRST_LINE);
        assert_eq!(
            first_line(&["/nonexistent/reflex-test"], LONG),
            Err(Failure::NotFound)
        );
        assert_eq!(first_line(&["/"], LONG), Err(Failure::NotStarted));
        let short = Duration::from_millis(300);
        assert_eq!(
            first_line(&["sh", "-c", "echo 1; sleep 30"], short),
            Err(Failure::TimedOut)
        );
    }

    #[test]
    fn signals_are_128_plus() {
        let _serial = serial();
        let out = run(&["sh", "-c", "kill -9 $$"], None, None, LONG);
        assert_eq!(out.code, 128 + 9);
    }
}
