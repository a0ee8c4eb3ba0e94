//! Running a program for a reaction: no shell, its own process group, a timeout after which
//! the whole group is killed, and stdout and stderr captured up to a bound.

use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Most bytes of output kept: stdout first, then stderr.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// The code reported when a program was killed at its timeout (as GNU `timeout` does).
pub const TIMEOUT_CODE: i32 = 124;

/// How a program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
    /// It ran past its timeout and its process group was killed.
    TimedOut,
}

impl Exit {
    /// Whether it exited with status 0.
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }

    /// One number for results: the exit status, `-N` for signal `N`, [`TIMEOUT_CODE`] for a
    /// timeout.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => -s,
            Exit::TimedOut => TIMEOUT_CODE,
        }
    }
}

/// What a finished program left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// How it ended.
    pub exit: Exit,
    /// Stdout then stderr, at most [`MAX_OUTPUT`] bytes, decoded lossily.
    pub output: String,
    /// Whether output was cut at [`MAX_OUTPUT`].
    pub truncated: bool,
}

/// Process groups of the programs running now, so that shutdown can end them.
static RUNNING: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Kills every program still running (on Manager shutdown).
pub fn kill_all() {
    let groups = RUNNING.lock().map(|g| g.clone()).unwrap_or_default();
    for pgid in groups {
        kill_group(pgid);
    }
}

fn kill_group(pgid: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Runs `argv` (no shell) in `cwd`, feeding `stdin`, for at most `timeout`.
///
/// Errors: only when the program cannot be started (not found, not executable, bad `cwd`).
///
/// ```
/// use std::time::Duration;
/// use reflex_manager::child::{run, Exit};
/// let done = run(&["echo", "hello"], None, None, Duration::from_secs(5)).unwrap();
/// assert_eq!(done.exit, Exit::Code(0));
/// assert_eq!(done.output, "hello\n");
/// ```
pub fn run(
    argv: &[&str],
    cwd: Option<&Path>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> io::Result<Finished> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty argv"))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let deadline = Instant::now() + timeout;
    let mut child = cmd.spawn()?;
    let pgid = child.id() as i32;
    if let Ok(mut g) = RUNNING.lock() {
        g.push(pgid);
    }

    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        });
    }
    let (tx, rx) = mpsc::channel();
    for (n, pipe) in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(pipe) = pipe {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = tx.send((n, read_bounded(pipe, MAX_OUTPUT)));
            });
        }
    }
    drop(tx);

    let mut pause = Duration::from_millis(1);
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                kill_group(pgid);
                timed_out = true;
                break child.wait().ok();
            }
            Ok(None) => {
                std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(_) => {
                kill_group(pgid);
                break child.wait().ok();
            }
        }
    };

    // The pipes close when every process holding them is gone: wait for that until the
    // deadline, then kill the group (left-behind children holding the pipes) and wait briefly.
    let mut outputs: [(Vec<u8>, bool); 2] = Default::default();
    let mut got = 0;
    let mut killed = timed_out;
    while got < 2 {
        let wait = if killed {
            Duration::from_secs(1)
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        match rx.recv_timeout(wait) {
            Ok((n, out)) => {
                outputs[n] = out;
                got += 1;
            }
            Err(mpsc::RecvTimeoutError::Timeout) if !killed => {
                kill_group(pgid);
                killed = true;
            }
            Err(_) => break,
        }
    }
    if let Ok(mut g) = RUNNING.lock() {
        g.retain(|&p| p != pgid);
    }

    let exit = if timed_out {
        Exit::TimedOut
    } else {
        match status {
            Some(s) => match (s.code(), s.signal()) {
                (Some(c), _) => Exit::Code(c),
                (None, Some(sig)) => Exit::Signal(sig),
                (None, None) => Exit::Code(-1),
            },
            None => Exit::Code(-1),
        }
    };
    let [(mut out, t1), (err, t2)] = outputs;
    let room = MAX_OUTPUT.saturating_sub(out.len());
    let truncated = t1 || t2 || err.len() > room;
    out.extend_from_slice(&err[..err.len().min(room)]);
    Ok(Finished {
        exit,
        output: String::from_utf8_lossy(&out).into_owned(),
        truncated,
    })
}

/// Reads everything, keeping at most `limit` bytes; says whether some were dropped.
fn read_bounded(mut r: impl Read, limit: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut truncated = false;
    loop {
        match r.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                let room = limit.saturating_sub(kept.len());
                if n > room {
                    truncated = true;
                }
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    (kept, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_stderr() {
        let done = run(
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            None,
            None,
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(done.exit, Exit::Code(3));
        assert_eq!(done.output, "out\nerr\n");
        assert!(!done.exit.success());
    }

    #[test]
    fn stdin_cwd_and_missing_programs() {
        let done = run(
            &["cat"],
            None,
            Some(b"fed".to_vec()),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(done.output, "fed");
        let done = run(&["pwd"], Some(Path::new("/")), None, Duration::from_secs(5)).unwrap();
        assert_eq!(done.output, "/\n");
        assert!(
            run(
                &["/nonexistent/program"],
                None,
                None,
                Duration::from_secs(1)
            )
            .is_err()
        );
        assert!(run(&[], None, None, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn timeout_kills_the_group() {
        let start = Instant::now();
        let done = run(
            &["sh", "-c", "sleep 30 & sleep 30"],
            None,
            None,
            Duration::from_millis(200),
        )
        .unwrap();
        assert_eq!(done.exit, Exit::TimedOut);
        assert_eq!(done.exit.code(), TIMEOUT_CODE);
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn output_is_bounded() {
        let done = run(
            &["head", "-c", "100000", "/dev/zero"],
            None,
            None,
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(done.output.len(), MAX_OUTPUT);
        assert!(done.truncated);
    }
}
