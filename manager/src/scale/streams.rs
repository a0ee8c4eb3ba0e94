//! Creating (or finding) the streams and buckets of a deployment; every process does it at
//! start, and the server keeps the first definition.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use super::ScaleError;
use super::names::Names;

/// How long the server remembers message ids to drop repeats: a replay after a takeover must
/// end within it (checkpoint interval + takeover + replay).
pub const DEDUP_WINDOW: Duration = Duration::from_secs(120);

/// The buckets a process uses.
pub struct Buckets {
    /// Leases, `p<k>` → [`super::lease::Lease`].
    pub lease: kv::Store,
    /// Checkpoints, `p<k>` → [`super::checkpoint`] bytes.
    pub checkpoint: kv::Store,
}

/// Creates the streams of `partitions` partitions, the actions stream and the buckets.
pub async fn ensure(
    js: &jetstream::Context,
    names: &Names,
    partitions: u32,
) -> Result<Buckets, ScaleError> {
    for k in 0..partitions {
        js.get_or_create_stream(stream::Config {
            name: names.events_stream(k),
            subjects: vec![names.events_subject(k)],
            duplicate_window: DEDUP_WINDOW,
            ..Default::default()
        })
        .await
        .map_err(|e| ScaleError::nats(format!("create stream {}", names.events_stream(k)), e))?;
    }
    js.get_or_create_stream(stream::Config {
        name: names.actions_stream(),
        subjects: vec![names.actions_filter()],
        duplicate_window: DEDUP_WINDOW,
        ..Default::default()
    })
    .await
    .map_err(|e| ScaleError::nats("create the actions stream", e))?;
    let lease = bucket(js, names.lease_bucket()).await?;
    let checkpoint = bucket(js, names.checkpoint_bucket()).await?;
    Ok(Buckets { lease, checkpoint })
}

async fn bucket(js: &jetstream::Context, name: String) -> Result<kv::Store, ScaleError> {
    // The bucket's stream is made here rather than by the client's bucket helper, whose
    // request Debian's nats-server 2.9 answers in a form the client does not parse.
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        discard: stream::DiscardPolicy::New,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        ..Default::default()
    })
    .await
    .map_err(|e| ScaleError::nats(format!("create bucket {name}"), e))?;
    js.get_key_value(name.clone())
        .await
        .map_err(|e| ScaleError::nats(format!("open bucket {name}"), e))
}
