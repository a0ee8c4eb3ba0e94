//! Who the Manager believes, and what it signs with.
//!
//! * `--key PATH`: the Manager's Ed25519 secret key; every action is signed with it, except
//!   an action for one device with a key in `--trust`, which is tagged with that device's HMAC
//!   key (a device checks an HMAC tag cheaply; it cannot afford to verify a signature).
//! * `--trust DIR`: the allow-list of senders. `DIR/<id>.pub` is the Ed25519 public key of the
//!   agent `<id>`, `DIR/<id>.mac` the HMAC key of the device `<id>` (mode 0600). Every
//!   message on the events socket (event, result, heartbeat) must come from a listed source,
//!   carry a valid tag made with that source's key, and be fresh (see [`Trust::check`]).
//! * `--insecure`: lab mode. Messages from sources without a key are accepted unchecked
//!   (those with a key are still checked), and actions are unsigned unless `--key` is given.
//!   Without `--key` and `--trust` the Manager refuses to start unless `--insecure` is given.
//!
//! Messages that fail are dropped and counted by reason (`unauthenticated`, `bad_signature`,
//! `unknown_source`, `replay`, `stale`), and logged once per source and reason.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use reflex_core::auth::{
    self, AuthError, KeyKind, MacKey, ReplayWindow, Signer, Verifier, keyfile,
};
use reflex_core::wire::{Body, Decoded};

use crate::Error;
use crate::error::TrustError;
use crate::metrics::DropReason;

/// How far the time of a message from an agent (Ed25519) may be from the Manager's clock, in
/// milliseconds, in either direction. Devices count time from boot and are not checked.
pub const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;
/// Most (source, reason) pairs logged individually; past that, further ones are only counted.
pub const MAX_LOGGED: usize = 10_000;

/// One allow-listed source.
#[derive(Debug)]
struct Source {
    verifier: Verifier,
    window: ReplayWindow,
}

impl Source {
    /// Whether the source's messages carry a wall-clock time (agents do, devices do not).
    fn has_clock(&self) -> bool {
        !matches!(self.verifier, Verifier::Mac(_))
    }
}

/// The allow-list of senders and their replay windows.
#[derive(Debug, Default)]
pub struct Trust {
    sources: HashMap<String, Source>,
    insecure: bool,
    /// Whether the sources whose windows moved are noted, for persistence.
    tracking: bool,
    /// Sources whose window moved since [`Trust::take_moved`] was last called.
    moved: HashSet<String>,
    logged: HashSet<(String, DropReason)>,
    logged_full: bool,
}

impl Trust {
    /// An empty allow-list: nothing is accepted, unless `insecure`, when everything is.
    pub fn new(insecure: bool) -> Trust {
        Trust {
            insecure,
            ..Trust::default()
        }
    }

    /// Loads every `<id>.pub` and `<id>.mac` of `dir`. Files starting with `.` are skipped; a
    /// secret Ed25519 key, a file of another kind, an exposed `.mac` file or an id that is
    /// not a valid source id is an error. So is, as ssh's StrictModes, a directory or a key
    /// file that users other than its owner may write: a sticky bit does not excuse the
    /// directory, since a file anyone adds to it is a key the Manager would trust.
    pub fn load(dir: &Path, insecure: bool) -> Result<Trust, Error> {
        let mut trust = Trust::new(insecure);
        check_trust_dir(dir)?;
        let entries = std::fs::read_dir(dir)
            .map_err(|e| Error::io(format!("read the trust directory {}", dir.display()), e))?;
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
                continue;
            };
            if file.starts_with('.') || !path.is_file() {
                continue;
            }
            if file
                .rsplit_once('.')
                .is_some_and(|(_, ext)| ext == crate::http::tokens::TOKEN_EXT)
            {
                // HTTP bearer tokens, read by the HTTP endpoints.
                continue;
            }
            let kinds = [KeyKind::Ed25519Public, KeyKind::Mac];
            let Some((id, expected)) = file.rsplit_once('.').and_then(|(id, ext)| {
                let kind = kinds.into_iter().find(|k| k.extension() == ext)?;
                Some((id, kind))
            }) else {
                return Err(TrustError::NotATrustFile(path).into());
            };
            reflex_core::id::check_id(id).map_err(|source| TrustError::BadTrustName {
                path: path.clone(),
                id: id.to_owned(),
                source,
            })?;
            let key = keyfile::read(&path).map_err(TrustError::File)?;
            if key.kind != expected {
                return Err(TrustError::WrongKind {
                    path,
                    found: key.kind,
                    expected,
                }
                .into());
            }
            let verifier = key.verifier().map_err(|source| TrustError::Unusable {
                path: path.clone(),
                source,
            })?;
            if trust.sources.contains_key(id) {
                return Err(TrustError::BothKinds {
                    dir: dir.to_owned(),
                    id: id.to_owned(),
                }
                .into());
            }
            trust.sources.insert(
                id.to_owned(),
                Source {
                    verifier,
                    window: ReplayWindow::new(),
                },
            );
        }
        Ok(trust)
    }

    #[cfg(test)]
    /// Allow-lists `id` with `verifier` (replacing a key it had).
    pub fn insert(&mut self, id: &str, verifier: Verifier) {
        self.sources.insert(
            id.to_owned(),
            Source {
                verifier,
                window: ReplayWindow::new(),
            },
        );
    }

    /// Starts noting the sources whose replay window moves, for [`Trust::take_moved`], after
    /// restoring the highest sequence numbers kept by an earlier run (`highest`, by source):
    /// a listed source then accepts only numbers above its kept one. Kept numbers of sources
    /// no longer listed are ignored. Returns how many windows were restored.
    pub fn persist_windows(&mut self, highest: &HashMap<String, u64>) -> usize {
        self.tracking = true;
        let mut restored = 0;
        for (id, source) in &mut self.sources {
            if let Some(&h) = highest.get(id) {
                source.window = ReplayWindow::after(h);
                restored += 1;
            }
        }
        restored
    }

    /// The highest sequence number accepted from each source whose window moved since the
    /// last call.
    pub fn take_moved(&mut self) -> Vec<(String, u64)> {
        let moved = std::mem::take(&mut self.moved);
        moved
            .into_iter()
            .filter_map(|id| {
                let h = self.sources.get(&id)?.window.highest()?;
                Some((id, h))
            })
            .collect()
    }

    /// How many sources are allow-listed.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// Whether messages from sources without a key are accepted.
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// The HMAC keys of the allow-listed devices, by id: actions for one of them are tagged
    /// with its key.
    pub fn device_keys(&self) -> HashMap<String, MacKey> {
        self.sources
            .iter()
            .filter_map(|(id, s)| match &s.verifier {
                Verifier::Mac(k) => Some((id.clone(), k.clone())),
                _ => None,
            })
            .collect()
    }

    /// Checks one message from the events socket, which [`reflex_core::wire::decode`] read from
    /// `bytes`, at `now_ms` by the Manager's clock. In order:
    ///
    /// 1. a source without a key: accepted in insecure mode; otherwise `unauthenticated` when
    ///    the message has no tag, `unknown_source` when it has one;
    /// 2. the tag must verify with the source's key: `unauthenticated` without a tag,
    ///    `bad_signature` with a wrong one;
    /// 3. an agent's message must be within [`MAX_CLOCK_SKEW_MS`] of `now_ms`: else `stale`;
    /// 4. its sequence number must pass the source's [`ReplayWindow`]: else `replay`.
    ///
    /// Only a message that passes all of them moves the window. The first refusal of each
    /// source and reason is logged.
    pub fn check(
        &mut self,
        decoded: &Decoded,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<(), DropReason> {
        let body = &decoded.envelope.body;
        let verdict = self.verdict(decoded, bytes, now_ms);
        if let Err((reason, why)) = &verdict {
            self.log_once(body, *reason, why);
        }
        verdict.map_err(|(reason, _)| reason)
    }

    fn verdict(
        &mut self,
        decoded: &Decoded,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<(), (DropReason, String)> {
        let body = &decoded.envelope.body;
        let Some(source) = self.sources.get_mut(body.source()) else {
            return if self.insecure {
                Ok(())
            } else if decoded.envelope.auth.is_empty() {
                Err((DropReason::Unauthenticated, "no authentication tag".into()))
            } else {
                Err((DropReason::UnknownSource, "no key for this source".into()))
            };
        };
        match auth::verify(decoded, bytes, &source.verifier) {
            Ok(()) => {}
            Err(AuthError::Unauthenticated) => {
                return Err((DropReason::Unauthenticated, "no authentication tag".into()));
            }
            Err(AuthError::BadTag) => {
                return Err((
                    DropReason::BadSignature,
                    "the tag does not verify with this source's key".into(),
                ));
            }
        }
        if source.has_clock() && body.time().abs_diff(now_ms) > MAX_CLOCK_SKEW_MS {
            return Err((
                DropReason::Stale,
                format!(
                    "its time is {} s away from this host's clock (at most {} s allowed)",
                    body.time().abs_diff(now_ms) / 1000,
                    MAX_CLOCK_SKEW_MS / 1000
                ),
            ));
        }
        let before = source.window.highest();
        source
            .window
            .accept(body.seq())
            .map_err(|r| (DropReason::Replay, format!("seq {}: {r}", body.seq())))?;
        if self.tracking && source.window.highest() != before && !self.moved.contains(body.source())
        {
            self.moved.insert(body.source().to_owned());
        }
        Ok(())
    }

    fn log_once(&mut self, body: &Body, reason: DropReason, why: &str) {
        let key = (body.source().to_owned(), reason);
        if self.logged.contains(&key) {
            return;
        }
        if self.logged.len() >= MAX_LOGGED {
            if !self.logged_full {
                self.logged_full = true;
                tracing::warn!(
                    "refusals from more than {MAX_LOGGED} sources: further ones are only counted"
                );
            }
            return;
        }
        tracing::warn!(
            source = ?body.source(),
            kind = %body.kind(),
            reason = reason.as_str(),
            "dropping a message: {why} (logged once per source and reason; counted in \
             reflex_events_dropped_total)"
        );
        self.logged.insert(key);
    }
}

/// Refuses a trust directory that users other than its owner may write, with the `chmod` that
/// fixes it.
fn check_trust_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(dir)
        .map_err(|e| Error::io(format!("read the trust directory {}", dir.display()), e))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(TrustError::OpenTrustDir {
            dir: dir.to_owned(),
            mode,
        }
        .into());
    }
    Ok(())
}

/// How the Manager authenticates: its signer, its allow-list, and whether it runs insecure.
#[derive(Debug)]
pub struct Security {
    /// What actions are signed with; `None` (insecure only) for unsigned actions.
    pub signer: Option<Signer>,
    /// The allow-list of senders.
    pub trust: Trust,
}

impl Security {
    /// Loads `--key` and `--trust`. Without both, only `insecure` lets the Manager run.
    pub fn load(
        key: Option<&Path>,
        trust: Option<&Path>,
        insecure: bool,
    ) -> Result<Security, Error> {
        if !insecure && (key.is_none() || trust.is_none()) {
            let missing = match (key, trust) {
                (None, None) => "--key and --trust",
                (None, _) => "--key",
                _ => "--trust",
            };
            return Err(TrustError::Missing(missing).into());
        }
        let signer = match key {
            Some(path) => {
                let file = keyfile::read(path).map_err(TrustError::File)?;
                if file.kind != KeyKind::Ed25519Secret {
                    return Err(TrustError::NotASigningKey {
                        path: path.to_owned(),
                        found: file.kind,
                    }
                    .into());
                }
                Some(file.signer().map_err(|source| TrustError::Unusable {
                    path: path.to_owned(),
                    source,
                })?)
            }
            None => None,
        };
        let trust = match trust {
            Some(dir) => Trust::load(dir, insecure)?,
            None => Trust::new(insecure),
        };
        Ok(Security { signer, trust })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reflex_core::Event;
    use reflex_core::auth::{KEY_LEN, SecretKey};
    use reflex_core::wire::{self, MAX_ENVELOPE_LEN};

    fn message(source: &str, seq: u64, time: u64, signer: Option<&Signer>) -> Vec<u8> {
        let mut e = Event::new("/t", source).unwrap();
        e.seq = seq;
        e.time = time;
        let mut buf = [0u8; MAX_ENVELOPE_LEN];
        let n = auth::encode(&Body::Event(e), signer, &mut buf).unwrap();
        buf[..n].to_vec()
    }

    fn check(t: &mut Trust, bytes: &[u8], now: u64) -> Result<(), DropReason> {
        t.check(&wire::decode(bytes).unwrap(), bytes, now)
    }

    #[test]
    fn the_rules_in_order() {
        let now = 1_700_000_000_000;
        let agent = SecretKey::from_seed([1; 32]);
        let device = MacKey::from_bytes([2; 32]);
        let mut t = Trust::new(false);
        t.insert("web-1", Verifier::Ed25519(agent.public()));
        t.insert("node-7", Verifier::Mac(device.clone()));
        let a = Signer::Ed25519(agent);
        let d = Signer::Mac(device);
        let stranger = Signer::Ed25519(SecretKey::from_seed([3; 32]));

        assert_eq!(
            check(&mut t, &message("web-1", 1, now, Some(&a)), now),
            Ok(())
        );
        assert_eq!(
            check(&mut t, &message("web-1", 1, now, Some(&a)), now),
            Err(DropReason::Replay)
        );
        assert_eq!(
            check(&mut t, &message("web-1", 2, now, None), now),
            Err(DropReason::Unauthenticated)
        );
        assert_eq!(
            check(&mut t, &message("web-1", 2, now, Some(&stranger)), now),
            Err(DropReason::BadSignature)
        );
        assert_eq!(
            check(
                &mut t,
                &message("web-1", 2, now - MAX_CLOCK_SKEW_MS - 1, Some(&a)),
                now
            ),
            Err(DropReason::Stale)
        );
        // Refused messages did not move the window.
        assert_eq!(
            check(&mut t, &message("web-1", 2, now, Some(&a)), now),
            Ok(())
        );
        assert_eq!(
            check(&mut t, &message("db-1", 1, now, Some(&stranger)), now),
            Err(DropReason::UnknownSource)
        );
        assert_eq!(
            check(&mut t, &message("db-1", 1, now, None), now),
            Err(DropReason::Unauthenticated)
        );
        // Devices count time from boot: not checked against the clock.
        assert_eq!(
            check(&mut t, &message("node-7", 5, 1234, Some(&d)), now),
            Ok(())
        );
        assert_eq!(
            check(&mut t, &message("node-7", 5, 1234, Some(&d)), now),
            Err(DropReason::Replay)
        );
        assert_eq!(
            check(&mut t, &message("node-7", 6, 1234, Some(&a)), now),
            Err(DropReason::BadSignature)
        );
        assert_eq!(t.device_keys().len(), 1);
    }

    #[test]
    fn insecure_accepts_unknown_sources_but_checks_known_ones() {
        let now = 1_700_000_000_000;
        let agent = SecretKey::from_seed([1; 32]);
        let mut t = Trust::new(true);
        t.insert("web-1", Verifier::Ed25519(agent.public()));
        assert_eq!(check(&mut t, &message("lab", 0, 0, None), now), Ok(()));
        assert_eq!(check(&mut t, &message("lab", 0, 0, None), now), Ok(()));
        assert_eq!(
            check(&mut t, &message("web-1", 1, now, None), now),
            Err(DropReason::Unauthenticated)
        );
    }

    #[test]
    fn loading_the_policy() {
        let e = Security::load(None, None, false).unwrap_err().to_string();
        assert!(
            e.contains("--key and --trust") && e.contains("--insecure"),
            "{e}"
        );
        let s = Security::load(None, None, true).unwrap();
        assert!(s.signer.is_none() && s.trust.is_insecure());

        let dir = std::env::temp_dir().join(format!("reflex-trust-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let keys = dir.join("keys");
        let trusted = dir.join("trust");
        let seed = SecretKey::from_seed([7; KEY_LEN]);
        let (secret, public) = (keys.join("manager.key"), keys.join("manager.pub"));
        let write = |path: &Path, kind, bytes| {
            keyfile::write_new(path, &keyfile::KeyFile { kind, bytes }).unwrap();
        };
        write(&secret, KeyKind::Ed25519Secret, seed.seed());
        write(&public, KeyKind::Ed25519Public, seed.public().to_bytes());
        std::fs::create_dir_all(&trusted).unwrap();
        std::fs::copy(&public, trusted.join("web-1.pub")).unwrap();
        write(&trusted.join("node-7.mac"), KeyKind::Mac, [9; KEY_LEN]);
        let s = Security::load(Some(&secret), Some(&trusted), false).unwrap();
        assert!(s.signer.is_some());
        assert_eq!(s.trust.len(), 2);
        assert_eq!(s.trust.device_keys().len(), 1);
        // The public key is not a signing key; a secret key is not a trusted key.
        assert!(Security::load(Some(&public), Some(&trusted), false).is_err());
        std::fs::copy(&secret, trusted.join("web-2.key")).unwrap();
        let e = Security::load(Some(&secret), Some(&trusted), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("only <id>.pub"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
