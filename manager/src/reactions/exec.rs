//! `reactions.exec.run`: runs a program on the Manager's host.
//!
//! Arguments: `argv` (required list: the program and its arguments, each templated value one
//! argument; no shell), `timeout` (seconds, default 10: the program's process group is killed
//! then), `cwd` (optional working directory). Stdout then stderr, at most 64 KiB, are the
//! output; the exit status is the code (`128 + N` when killed by signal `N`, 124 on timeout,
//! 127 when the program is not found, 126 when it cannot be started). See
//! [`reflex_core::host::exec`], which runs it.

use std::path::Path;
use std::time::Duration;

use reflex_core::host::exec;

use super::{Builtin, Handler, Job, Outcome};

/// The registration of `reactions.exec.run`.
pub const BUILTIN: Builtin = Builtin {
    key: "reactions.exec.run",
    make: || Box::new(Run),
};

/// Default timeout of a program.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a program.
pub struct Run;

impl Handler for Run {
    fn perform(&self, job: &Job) -> Outcome {
        let argv = job.args.list("argv");
        if argv.is_empty() {
            return Outcome::failed(-1, "no `argv` argument");
        }
        let timeout = job.args.seconds("timeout").unwrap_or(DEFAULT_TIMEOUT);
        let cwd = job
            .args
            .text("cwd")
            .filter(|c| !c.is_empty())
            .map(Path::new);
        let done = exec::run(&argv, cwd, None, timeout);
        Outcome {
            ok: done.ok(),
            code: done.code,
            output: done.output,
            emit: None,
        }
    }
}
