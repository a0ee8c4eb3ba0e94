//! Process and service liveness, from `/proc/<pid>/comm` and an optional pid file.

use std::path::{Path, PathBuf};

use reflex_core::event::Tag;
use reflex_core::{Event, Value};

use super::client_tag;
use crate::text::push_str;
use crate::{Beacon, BeaconError, Emit};

/// The kernel keeps the first 15 bytes of a process name in `comm`.
const COMM_LEN: usize = 15;

/// Reports whether a process is running, under `/client/service/<source>`:
///
/// * `running`: without a pid file, whether at least one process has this name; with one,
///   whether the pid it holds is alive and has this name (so a reused pid does not count);
/// * `count`: how many processes have this name (integer);
/// * `name`: the configured name (string), so that several process beacons on one host can be
///   told apart.
///
/// The name is matched exactly against `/proc/<pid>/comm`, the program name the kernel keeps
/// (its first 15 bytes: longer names are compared on those). Zombies do not count.
///
/// ```
/// use reflex_beacons::host::Process;
/// use reflex_beacons::{Beacon, Emit};
/// use reflex_core::{Event, Value};
///
/// let mut p = Process::new("web-1", "no-such-daemon", None).unwrap();
/// let mut event = Event::new(p.tag(), "web-1").unwrap();
/// assert_eq!(p.sample(0, &mut event), Ok(Emit::Event));
/// assert_eq!(event.get("running"), Some(&Value::Bool(false)));
/// assert_eq!(event.get("count"), Some(&Value::Int(0)));
/// ```
#[derive(Debug)]
pub struct Process {
    tag: Tag,
    name: String,
    pidfile: Option<PathBuf>,
    proc_root: PathBuf,
}

impl Process {
    /// A process beacon for the host `source_id`, watching processes named `name`, and if
    /// given, the pid in `pidfile`.
    pub fn new(
        source_id: &str,
        name: &str,
        pidfile: Option<&Path>,
    ) -> Result<Process, BeaconError> {
        if name.is_empty() || name.contains(['/', '\n', '\0']) {
            return Err(BeaconError::InvalidConfig(
                "the process name must be a program name, without '/'",
            ));
        }
        Ok(Process {
            tag: client_tag("service", source_id)?,
            name: name.to_owned(),
            pidfile: pidfile.map(Path::to_path_buf),
            proc_root: PathBuf::from("/proc"),
        })
    }

    /// The same beacon over another `/proc` (a test fixture).
    #[cfg(test)]
    fn with_proc_root(mut self, root: impl Into<PathBuf>) -> Process {
        self.proc_root = root.into();
        self
    }

    /// The bytes `comm` shows for this name.
    fn comm_key(&self) -> &[u8] {
        let b = self.name.as_bytes();
        &b[..b.len().min(COMM_LEN)]
    }

    /// Whether the process `pid` is alive (not a zombie) and has this name.
    fn is_ours(&self, pid: &str) -> bool {
        let dir = self.proc_root.join(pid);
        let Ok(comm) = std::fs::read(dir.join("comm")) else {
            return false;
        };
        if comm.strip_suffix(b"\n").unwrap_or(&comm) != self.comm_key() {
            return false;
        }
        // The process may exit between the two reads: then it is not running.
        std::fs::read_to_string(dir.join("stat"))
            .ok()
            .and_then(|s| process_state(&s))
            .is_some_and(|state| !matches!(state, 'Z' | 'X' | 'x'))
    }

    fn count(&self) -> Result<i64, BeaconError> {
        let entries =
            std::fs::read_dir(&self.proc_root).map_err(|_| BeaconError::Unreadable("/proc"))?;
        let mut n = 0;
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(pid) = file_name.to_str().filter(|s| is_pid(s)) else {
                continue;
            };
            if self.is_ours(pid) {
                n += 1;
            }
        }
        Ok(n)
    }

    fn pidfile_alive(&self, pidfile: &Path) -> bool {
        std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|text| parse_pid(&text))
            .is_some_and(|pid| self.is_ours(&pid.to_string()))
    }
}

impl Beacon for Process {
    fn tag(&self) -> &str {
        &self.tag
    }

    fn sample(&mut self, _now_ms: u64, event: &mut Event) -> Result<Emit, BeaconError> {
        let count = self.count()?;
        let running = match &self.pidfile {
            Some(pidfile) => self.pidfile_alive(pidfile),
            None => count > 0,
        };
        event.push("running", Value::Bool(running))?;
        event.push("count", Value::Int(count))?;
        push_str(event, "name", &self.name)?;
        Ok(Emit::Event)
    }
}

fn is_pid(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The pid in a pid file's text: its first line, a positive integer.
fn parse_pid(text: &str) -> Option<u32> {
    text.lines()
        .next()?
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|p| *p > 0)
}

/// The state letter of `/proc/<pid>/stat`: `pid (comm) S ...`, where comm may hold spaces
/// and parentheses, so the state follows the last `)`.
fn process_state(stat: &str) -> Option<char> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.trim_start().chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn fake_proc(label: &str, procs: &[(&str, &str, char)]) -> PathBuf {
        let root = std::env::temp_dir().join(format!(
            "reflex-beacons-proc-{}-{label}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("self")).unwrap();
        fs::write(root.join("uptime"), "1.0 1.0\n").unwrap();
        for (pid, comm, state) in procs {
            let dir = root.join(pid);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
            fs::write(dir.join("stat"), format!("{pid} ({comm}) {state} 1 2 3\n")).unwrap();
        }
        root
    }

    fn fields(p: &mut Process) -> (Option<Value>, Option<Value>) {
        let mut e = Event::new(p.tag(), "h").unwrap();
        assert_eq!(p.sample(0, &mut e), Ok(Emit::Event));
        (e.get("running").cloned(), e.get("count").cloned())
    }

    #[test]
    fn counts_processes_by_comm() {
        let root = fake_proc(
            "count",
            &[
                ("10", "nginx", 'S'),
                ("11", "nginx", 'R'),
                ("12", "nginx", 'Z'),
                ("13", "postgres", 'S'),
                ("14", "a-very-long-pro", 'S'),
                ("15", "ngin", 'S'),
            ],
        );
        let mut p = Process::new("h", "nginx", None)
            .unwrap()
            .with_proc_root(&root);
        assert_eq!(p.tag(), "/client/service/h");
        assert_eq!(
            fields(&mut p),
            (Some(Value::Bool(true)), Some(Value::Int(2)))
        );
        // Names longer than comm are compared on their first 15 bytes.
        let mut p = Process::new("h", "a-very-long-program-name", None)
            .unwrap()
            .with_proc_root(&root);
        assert_eq!(
            fields(&mut p),
            (Some(Value::Bool(true)), Some(Value::Int(1)))
        );
        let mut p = Process::new("h", "redis", None)
            .unwrap()
            .with_proc_root(&root);
        assert_eq!(
            fields(&mut p),
            (Some(Value::Bool(false)), Some(Value::Int(0)))
        );
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn pidfile_decides_running() {
        let root = fake_proc("pidfile", &[("20", "sshd", 'S'), ("21", "bash", 'S')]);
        let pidfile = root.join("sshd.pid");
        let mut p = Process::new("h", "sshd", Some(&pidfile))
            .unwrap()
            .with_proc_root(&root);
        // No pid file yet: not running, though a process has the name.
        assert_eq!(
            fields(&mut p),
            (Some(Value::Bool(false)), Some(Value::Int(1)))
        );
        fs::write(&pidfile, "20\n").unwrap();
        assert_eq!(fields(&mut p).0, Some(Value::Bool(true)));
        // A reused pid with another name does not count.
        fs::write(&pidfile, "21\n").unwrap();
        assert_eq!(fields(&mut p).0, Some(Value::Bool(false)));
        fs::write(&pidfile, "garbage").unwrap();
        assert_eq!(fields(&mut p).0, Some(Value::Bool(false)));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn parsers_take_odd_input() {
        assert_eq!(parse_pid("123\n"), Some(123));
        assert_eq!(parse_pid("  42  \nextra"), Some(42));
        for bad in ["", "0", "-1", "abc", "99999999999"] {
            assert_eq!(parse_pid(bad), None, "{bad:?}");
        }
        assert_eq!(process_state("1 (systemd) S 0 1"), Some('S'));
        assert_eq!(process_state("7 (a) b) (c) Z 1"), Some('Z'));
        assert_eq!(process_state("no parenthesis"), None);
        assert_eq!(process_state("1 (x)"), None);
        assert!(is_pid("123") && !is_pid("self") && !is_pid(""));
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["", "a/b", "x\0"] {
            assert!(matches!(
                Process::new("h", bad, None),
                Err(BeaconError::InvalidConfig(_))
            ));
        }
    }

    #[test]
    fn live_finds_this_test_process() {
        let comm = fs::read_to_string("/proc/self/comm").unwrap();
        let mut p = Process::new("test-host", comm.trim_end(), None).unwrap();
        let (running, count) = fields(&mut p);
        assert_eq!(running, Some(Value::Bool(true)));
        assert!(matches!(count, Some(Value::Int(n)) if n >= 1));
        // And with a pid file naming this process.
        let pidfile =
            std::env::temp_dir().join(format!("reflex-beacons-{}.pid", std::process::id()));
        fs::write(&pidfile, format!("{}\n", std::process::id())).unwrap();
        let mut p = Process::new("test-host", comm.trim_end(), Some(&pidfile)).unwrap();
        assert_eq!(fields(&mut p).0, Some(Value::Bool(true)));
        fs::remove_file(pidfile).unwrap();
    }
}
