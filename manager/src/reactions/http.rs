//! `reactions.http.post`: posts JSON to a webhook (Slack, a chat bot, an HTTP API).
//!
//! Arguments: `url` (required), `json` or `body` (a map: the JSON body; default
//! `{"rule", "tag", "source", "value", "register", "data"}`), `headers` (a map of header
//! names to values), `timeout` (seconds, default 5). A 2xx answer is success; the code is
//! the HTTP status (124 on timeout, -1 when no answer came), the output the answer's body (at
//! most 64 KiB) or the error.

use std::io::Read;
use std::time::Duration;

use reflex_core::host::exec::{CODE_TIMED_OUT, MAX_CAPTURE};

use super::{Builtin, Handler, Job, Outcome};
use reflex_core::host::plugin::{event_json, value_json};

/// The registration of `reactions.http.post`.
pub const BUILTIN: Builtin = Builtin {
    key: "reactions.http.post",
    make: || Box::new(Post::new()),
};

/// Default timeout of a request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Posts JSON.
pub struct Post {
    agent: ureq::Agent,
}

impl Post {
    /// A poster with its own connection pool.
    pub fn new() -> Post {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(DEFAULT_TIMEOUT))
            .user_agent(concat!("reflex/", env!("CARGO_PKG_VERSION")))
            .build();
        Post {
            agent: config.into(),
        }
    }

    /// The body posted for `job`.
    pub fn body(job: &Job) -> serde_json::Value {
        if let Some(body) = job
            .args
            .map_json("json")
            .or_else(|| job.args.map_json("body"))
        {
            return body;
        }
        let event = event_json(&job.event);
        serde_json::json!({
            "rule": job.rule,
            "tag": job.event.tag.as_str(),
            "source": job.event.source.as_str(),
            "value": job.value.as_ref().map(value_json),
            "register": value_json(&reflex_core::Value::Float(job.register)),
            "data": event["data"],
        })
    }
}

impl Default for Post {
    fn default() -> Self {
        Post::new()
    }
}

impl Handler for Post {
    fn perform(&self, job: &Job) -> Outcome {
        let Some(url) = job.args.text("url") else {
            return Outcome::failed(-1, "no `url` argument");
        };
        let timeout = job.args.seconds("timeout").unwrap_or(DEFAULT_TIMEOUT);
        let mut request = self
            .agent
            .post(url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header("content-type", "application/json");
        for (name, arg) in job.args.under("headers") {
            request = request.header(name, arg.text.as_str());
        }
        match request.send(Post::body(job).to_string()) {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let mut body = Vec::new();
                let _ = response
                    .body_mut()
                    .as_reader()
                    .take(MAX_CAPTURE as u64)
                    .read_to_end(&mut body);
                let text = String::from_utf8_lossy(&body).into_owned();
                Outcome {
                    ok: (200..300).contains(&status),
                    code: i32::from(status),
                    output: text,
                    emit: None,
                }
            }
            Err(ureq::Error::Timeout(t)) => {
                Outcome::failed(CODE_TIMED_OUT, format!("POST {url}: timeout ({t})"))
            }
            Err(e) => Outcome::failed(-1, format!("POST {url}: {e}")),
        }
    }
}
