//! A partition's checkpoint: its register slots (windows, armed edges, cooldowns) with the
//! stream sequence they cover, stored at key `p<k>` of the checkpoint bucket and written
//! only by compare-and-swap on the revision the owner last wrote or read, so a fenced former
//! owner cannot overwrite a newer owner's checkpoint.
//!
//! Layout: a fixed header of little-endian integers, so other tools can read the summary
//! without this crate — `[version u8][seq u64][events u64][actions u64][digest u64][slots
//! u64]` — then `postcard(Vec<(rule name, group, Slot)>)` sorted by rule name and group.
//! `digest` is the wrapping sum over slots of `fnv1a64(postcard(rule, group, slot))`: the
//! digests of partitions add up to the digest of one Manager holding all their slots.

use reflex_core::program::Program;
use reflex_core::store::{MapStore, Slot};

use super::partition::fnv1a64;

/// Version byte of checkpoints this build writes and reads.
pub const CHECKPOINT_VERSION: u8 = 1;
/// Bytes of the header.
pub const HEADER_LEN: usize = 41;

/// What a checkpoint holds besides the slots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// The last stream sequence whose events are in the slots (0: none).
    pub seq: u64,
    /// Events evaluated in the partition up to `seq`.
    pub events: u64,
    /// Actions published for them.
    pub actions: u64,
    /// The slots' digest.
    pub digest: u64,
    /// Slots held.
    pub slots: u64,
}

impl Summary {
    /// The summary at the head of checkpoint `bytes`.
    pub fn read(bytes: &[u8]) -> Option<Summary> {
        if bytes.len() < HEADER_LEN || bytes[0] != CHECKPOINT_VERSION {
            return None;
        }
        let n = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[1 + 8 * i..9 + 8 * i]);
            u64::from_le_bytes(b)
        };
        Some(Summary {
            seq: n(0),
            events: n(1),
            actions: n(2),
            digest: n(3),
            slots: n(4),
        })
    }
}

/// The slot digest term of one slot.
fn term(rule: &str, group: &str, slot: &Slot) -> u64 {
    postcard::to_allocvec(&(rule, group, slot))
        .map(|b| fnv1a64(&b))
        .unwrap_or(0)
}

/// The checkpoint of `store` (slots numbered by `program`) covering `summary`'s counters;
/// fills in the digest and slot count.
pub fn encode(program: &Program<'_>, store: &MapStore, summary: &mut Summary) -> Vec<u8> {
    let mut slots: Vec<(&str, &str, &Slot)> = store
        .iter()
        .filter_map(|(r, g, s)| {
            let rule = program.rules.get(r as usize)?;
            Some((program.str(rule.name), g, s))
        })
        .collect();
    slots.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    summary.digest = slots
        .iter()
        .fold(0u64, |d, (r, g, s)| d.wrapping_add(term(r, g, s)));
    summary.slots = slots.len() as u64;
    let mut out = Vec::with_capacity(HEADER_LEN + slots.len() * 64);
    out.push(CHECKPOINT_VERSION);
    for n in [
        summary.seq,
        summary.events,
        summary.actions,
        summary.digest,
        summary.slots,
    ] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.extend(postcard::to_allocvec(&slots).unwrap_or_default());
    out
}

/// The store and summary of checkpoint `bytes` for `program`, with at most `limit` slots;
/// slots of rules no longer in the rulebook are dropped. `None` when the bytes are damaged.
pub fn decode(program: &Program<'_>, bytes: &[u8], limit: usize) -> Option<(MapStore, Summary)> {
    let summary = Summary::read(bytes)?;
    let slots: Vec<(String, String, Slot)> = postcard::from_bytes(&bytes[HEADER_LEN..]).ok()?;
    let mut store = MapStore::new(limit);
    for (rule, group, slot) in slots {
        let found = program
            .rules
            .iter()
            .position(|r| program.str(r.name) == rule);
        if let Some(i) = found {
            let _ = store.insert(i as u32, &group, slot);
        }
    }
    Some((store, summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reflex_core::engine;
    use reflex_core::event::Event;
    use reflex_core::value::Value;
    use reflex_rules::{Catalog, compile_str};

    const BOOK: &str = r#"
/client/load/*:
  rules:
    - load_avg:
        rule: rules.simple.gt
        threshold: 20
        reactions:
          - reactions.actor.run:
              argv: [uptime]
"#;

    #[test]
    fn checkpoints_round_trip_and_digests_add_up() {
        let compiled = compile_str("t.yml", BOOK, &Catalog::builtin()).unwrap();
        let program = compiled.program();
        let mut all = MapStore::new(100);
        let mut parts = [MapStore::new(100), MapStore::new(100)];
        for i in 0..20 {
            let mut e = Event::new("/client/load/h", &format!("h{i}")).unwrap();
            e.push("load_avg", Value::Float(f64::from(i))).unwrap();
            engine::evaluate(&program, &mut all, &e, 1000, |_| {});
            engine::evaluate(&program, &mut parts[i as usize % 2], &e, 1000, |_| {});
        }
        let mut s_all = Summary::default();
        let bytes = encode(&program, &all, &mut s_all);
        let mut sum = 0u64;
        for p in &parts {
            let mut s = Summary {
                seq: 7,
                ..Summary::default()
            };
            let b = encode(&program, p, &mut s);
            let (restored, read) = decode(&program, &b, 100).unwrap();
            assert_eq!(read, s);
            assert_eq!(restored.len(), p.len());
            sum = sum.wrapping_add(s.digest);
        }
        assert_eq!(sum, s_all.digest);
        assert_eq!(s_all.slots, 20);
        assert_eq!(Summary::read(&bytes), Some(s_all));
        assert!(decode(&program, &bytes[..HEADER_LEN + 3], 100).is_none());
        assert!(decode(&program, &[9; 50], 100).is_none());
    }
}
