//! Partition ownership: the key `p<k>` of the lease bucket holds `owner renewed_ms
//! expires_ms`. The owner renews it with a compare-and-swap on the revision it last wrote; a
//! standby takes a key that is missing or whose expiry has passed, with a compare-and-swap on
//! the revision it read, so of two standbys only one wins. An owner that cannot renew, or that
//! notices its lease ran out on its own clock (it was frozen), stops touching the partition:
//! it is fenced. Checkpoint writes are compare-and-swapped too (see `checkpoint.rs`), because
//! a frozen owner's in-flight renewal can pass after a standby read the key.

use async_nats::jetstream::kv;
use bytes::Bytes;

use super::ScaleError;

/// One lease's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Who holds it.
    pub owner: String,
    /// When it was last renewed, ms since the Unix epoch.
    pub renewed_ms: u64,
    /// When it runs out, ms since the Unix epoch.
    pub expires_ms: u64,
}

impl Lease {
    /// The value's bytes.
    pub fn encode(&self) -> Bytes {
        Bytes::from(format!(
            "{} {} {}",
            self.owner, self.renewed_ms, self.expires_ms
        ))
    }

    /// A lease from stored bytes; `None` when they are not one.
    pub fn decode(bytes: &[u8]) -> Option<Lease> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.split(' ');
        let owner = parts.next()?.to_string();
        let renewed_ms = parts.next()?.parse().ok()?;
        let expires_ms = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(Lease {
            owner,
            renewed_ms,
            expires_ms,
        })
    }
}

/// What a standby found when it tried to take a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// It holds the lease now at this revision; the former lease, if there was one.
    Won(u64, Option<Lease>),
    /// Someone else holds it.
    Held(Lease),
}

/// Tries to take `key` for `me` until `now_ms + ttl_ms`.
pub async fn take(
    bucket: &kv::Store,
    key: &str,
    me: &str,
    now_ms: u64,
    ttl_ms: u64,
) -> Result<Taken, ScaleError> {
    let mine = Lease {
        owner: me.to_string(),
        renewed_ms: now_ms,
        expires_ms: now_ms + ttl_ms,
    };
    let entry = bucket
        .entry(key)
        .await
        .map_err(|e| ScaleError::nats(format!("read lease {key}"), e))?;
    let (revision, former) = match entry {
        Some(e) if e.operation == kv::Operation::Put => {
            let former = Lease::decode(&e.value);
            if let Some(l) = &former {
                if l.expires_ms > now_ms {
                    return Ok(Taken::Held(l.clone()));
                }
            }
            (Some(e.revision), former)
        }
        Some(e) => (Some(e.revision), None),
        None => (None, None),
    };
    let written = match revision {
        Some(r) => bucket
            .update(key, mine.encode(), r)
            .await
            .map_err(|e| e.to_string()),
        None => bucket
            .create(key, mine.encode())
            .await
            .map_err(|e| e.to_string()),
    };
    match written {
        Ok(r) => Ok(Taken::Won(r, former)),
        // Another standby won the race: read who on the next round.
        Err(_) => Ok(Taken::Held(Lease {
            owner: "?".into(),
            renewed_ms: now_ms,
            expires_ms: now_ms,
        })),
    }
}

/// Renews `key` for `me` at `revision`; the new revision, or `None` when it was lost.
pub async fn renew(
    bucket: &kv::Store,
    key: &str,
    me: &str,
    revision: u64,
    now_ms: u64,
    ttl_ms: u64,
) -> Option<u64> {
    let mine = Lease {
        owner: me.to_string(),
        renewed_ms: now_ms,
        expires_ms: now_ms + ttl_ms,
    };
    bucket.update(key, mine.encode(), revision).await.ok()
}

/// Gives `key` up at `revision` (a clean stop): a standby takes it on its next round.
pub async fn release(bucket: &kv::Store, key: &str, me: &str, revision: u64, now_ms: u64) {
    let gone = Lease {
        owner: me.to_string(),
        renewed_ms: now_ms,
        expires_ms: 0,
    };
    let _ = bucket.update(key, gone.encode(), revision).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_round_trip_and_garbage_is_none() {
        let l = Lease {
            owner: "m-a-12".into(),
            renewed_ms: 5,
            expires_ms: 2005,
        };
        assert_eq!(Lease::decode(&l.encode()), Some(l));
        assert_eq!(Lease::decode(b"x 1"), None);
        assert_eq!(Lease::decode(b"x 1 2 3"), None);
        assert_eq!(Lease::decode(&[0xff, 0x20]), None);
    }
}
