//! Plugins: an executable at `<plugins>/reactions/<module>/<function>` is the reaction
//! `reactions.<module>.<function>`.
//!
//! It runs without a shell, with the JSON object
//! `{"args": {...}, "event": {...}, "rule": NAME, "register": NUMBER}` on stdin, for at most
//! `timeout` seconds (default 10). Its exit status and output (stdout then stderr, at most
//! 64 KiB) are the reaction's result, with the codes of [`reflex_agent::exec`].

use std::path::PathBuf;
use std::time::Duration;

use reflex_agent::exec;

use super::{Handler, Job, Outcome};
use crate::host::json::{event_json, value_json};

/// Default timeout of a plugin.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A plugin executable.
pub struct Plugin {
    path: PathBuf,
}

impl Plugin {
    /// The plugin at `path`.
    pub fn new(path: PathBuf) -> Plugin {
        Plugin { path }
    }

    /// What the plugin reads on stdin for `job`.
    pub fn input(job: &Job) -> serde_json::Value {
        serde_json::json!({
            "args": job.args.to_json(),
            "event": event_json(&job.event),
            "rule": job.rule,
            "register": value_json(&reflex_core::Value::Float(job.register)),
            "value": job.value.as_ref().map(value_json),
        })
    }
}

impl Handler for Plugin {
    fn perform(&self, job: &Job) -> Outcome {
        let input = Plugin::input(job).to_string().into_bytes();
        let timeout = job.args.seconds("timeout").unwrap_or(DEFAULT_TIMEOUT);
        let Some(program) = self.path.to_str() else {
            return Outcome::failed(-1, "plugin path is not UTF-8");
        };
        let done = exec::run(&[program], None, Some(&input), timeout);
        Outcome {
            ok: done.ok(),
            code: done.code,
            output: done.output,
            emit: None,
        }
    }
}
