//! Plugins: an executable at `<plugins>/reactions/<module>/<function>` is the reaction
//! `reactions.<module>.<function>`.
//!
//! It runs without a shell, with the one plugin input of [`reflex_core::host::plugin`] on
//! stdin, for at most `timeout` seconds (default 10). Its exit status and output (stdout then
//! stderr, at most 64 KiB) are the reaction's result, with the codes of
//! [`reflex_core::host::exec`].

use std::path::PathBuf;
use std::time::Duration;

use reflex_core::host::exec;
use reflex_core::host::plugin::PluginInput;

use super::{Handler, Job, Outcome};

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

    /// What the plugin reads on stdin for `job`: core's one plugin input, with the firing.
    pub fn input(job: &Job) -> Vec<u8> {
        let mut input = PluginInput::new();
        for a in &job.args.items {
            input.arg(&a.name, a.item, a.value.clone());
        }
        input.firing(&job.event, &job.rule, job.register, job.value.as_ref());
        input.to_bytes()
    }
}

impl Handler for Plugin {
    fn perform(&self, job: &Job) -> Outcome {
        let input = Plugin::input(job);
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
