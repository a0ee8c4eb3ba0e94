//! Every name a partitioned deployment uses on the NATS server, made in one place from a
//! prefix (default `REFLEX`/`reflex`), so that two deployments can share a server.

/// The names of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// Upper-case prefix of stream and bucket names.
    upper: String,
    /// Lower-case prefix of subjects.
    lower: String,
}

impl Default for Names {
    fn default() -> Self {
        Names::new("reflex")
    }
}

impl Names {
    /// The names under `prefix` (letters, digits, `-` and `_`).
    pub fn new(prefix: &str) -> Names {
        Names {
            upper: prefix.to_ascii_uppercase().replace('-', "_"),
            lower: prefix.to_ascii_lowercase(),
        }
    }

    /// The stream of partition `k`: `REFLEX_EV_P<k>`.
    pub fn events_stream(&self, k: u32) -> String {
        format!("{}_EV_P{k}", self.upper)
    }

    /// The subject of partition `k`'s batches: `reflex.p.<k>`.
    pub fn events_subject(&self, k: u32) -> String {
        format!("{}.p.{k}", self.lower)
    }

    /// The actions stream: `REFLEX_ACT`.
    pub fn actions_stream(&self) -> String {
        format!("{}_ACT", self.upper)
    }

    /// The subjects of the actions stream: `reflex.act.>`.
    pub fn actions_filter(&self) -> String {
        format!("{}.act.>", self.lower)
    }

    /// The subject of actions from partition `k`: `reflex.act.<k>`.
    pub fn actions_subject(&self, k: u32) -> String {
        format!("{}.act.{k}", self.lower)
    }

    /// The lease bucket: `reflex_lease`.
    pub fn lease_bucket(&self) -> String {
        format!("{}_lease", self.lower.replace('-', "_"))
    }

    /// The checkpoint bucket: `reflex_checkpoint`.
    pub fn checkpoint_bucket(&self) -> String {
        format!("{}_checkpoint", self.lower.replace('-', "_"))
    }

    /// The key of partition `k` in the lease and checkpoint buckets: `p<k>`.
    pub fn key(k: u32) -> String {
        format!("p{k}")
    }
}
