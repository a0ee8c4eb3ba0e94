//! `reactions.log.print`: writes a line to the Manager's log.
//!
//! Arguments: `message` (default: a one-line description of the firing), `level` (`trace`,
//! `debug`, `info` (default), `warn` or `error`).

use super::{Builtin, Handler, Job, Outcome};

/// The registration of `reactions.log.print`.
pub const BUILTIN: Builtin = Builtin {
    key: "reactions.log.print",
    make: || Box::new(Print),
};

/// Logs a message.
pub struct Print;

/// The default message: which rule fired on which event, with its values.
pub fn describe(job: &Job) -> String {
    let value = job
        .value
        .as_ref()
        .map(|v| v.to_string())
        .unwrap_or_default();
    format!(
        "rule {} fired on {} from {}: value={} register={}",
        job.rule, job.event.tag, job.event.source, value, job.register
    )
}

impl Handler for Print {
    fn perform(&self, job: &Job) -> Outcome {
        let message = match job.args.text("message") {
            Some(m) => m.to_string(),
            None => describe(job),
        };
        let (rule, source) = (job.rule.as_str(), job.event.source.as_str());
        match job.args.text("level").unwrap_or("info") {
            "trace" => tracing::trace!(rule, source, "{message}"),
            "debug" => tracing::debug!(rule, source, "{message}"),
            "warn" => tracing::warn!(rule, source, "{message}"),
            "error" => tracing::error!(rule, source, "{message}"),
            _ => tracing::info!(rule, source, "{message}"),
        }
        Outcome::ok(message)
    }
}
