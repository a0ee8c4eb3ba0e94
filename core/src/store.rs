//! Per-rule, per-group register state behind a storage trait: firmware keeps it in a
//! fixed-capacity map ([`FixedStore`]), the Manager in a bounded hash map (`MapStore`, with
//! the `std` feature).

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::register::Window;

/// Longest group key (a source id, a tag or a field's value as text), in bytes.
pub const MAX_GROUP_LEN: usize = crate::event::MAX_TAG_LEN;

/// A group key.
pub type GroupKey = heapless::String<MAX_GROUP_LEN>;

/// The state of one rule for one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slot {
    /// The rule's register.
    pub window: Window,
    /// The rule's combined condition at its last evaluation (edge firing re-arms when false).
    pub active: bool,
    /// When the rule last fired for this group, in milliseconds.
    pub last_fired: Option<u64>,
    /// The register value at the previous evaluation (for `rules.simple.changed`).
    pub previous: Option<f64>,
}

impl Slot {
    /// A fresh slot with an empty window of `period_ms`.
    pub fn new(period_ms: u32) -> Slot {
        Slot {
            window: Window::new(period_ms),
            active: false,
            last_fired: None,
            previous: None,
        }
    }
}

/// Where the engine keeps slots.
pub trait Store {
    /// The slot of `rule` for `group`, if there is one.
    fn slot(&self, rule: u32, group: &str) -> Option<&Slot>;
    /// The slot of `rule` for `group`, made with `Slot::new(period_ms)` when missing, or
    /// [`Error::StoreFull`].
    fn slot_mut(&mut self, rule: u32, group: &str, period_ms: u32) -> Result<&mut Slot, Error>;
}

fn key(rule: u32, group: &str) -> Option<(u32, GroupKey)> {
    let mut g = GroupKey::new();
    g.push_str(group).ok()?;
    Some((rule, g))
}

/// A store of at most `N` slots (`N` a power of two) in a fixed-capacity map: no allocation.
#[derive(Default)]
pub struct FixedStore<const N: usize> {
    map: heapless::index_map::FnvIndexMap<(u32, GroupKey), Slot, N>,
}

impl<const N: usize> FixedStore<N> {
    /// An empty store; `const`, so firmware can keep one in a `static`.
    pub const fn new() -> Self {
        FixedStore {
            map: heapless::index_map::FnvIndexMap::new(),
        }
    }

    /// Number of slots in use.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no slot is in use.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl<const N: usize> Store for FixedStore<N> {
    fn slot(&self, rule: u32, group: &str) -> Option<&Slot> {
        self.map.get(&key(rule, group)?)
    }

    fn slot_mut(&mut self, rule: u32, group: &str, period_ms: u32) -> Result<&mut Slot, Error> {
        let k = key(rule, group).ok_or(Error::StoreFull)?;
        if !self.map.contains_key(&k) {
            self.map
                .insert(k.clone(), Slot::new(period_ms))
                .map_err(|_| Error::StoreFull)?;
        }
        self.map.get_mut(&k).ok_or(Error::StoreFull)
    }
}

#[cfg(any(test, feature = "std"))]
pub use map::MapStore;

#[cfg(any(test, feature = "std"))]
mod map {
    extern crate std;
    use std::collections::HashMap;
    use std::string::{String, ToString};

    use super::{Slot, Store};
    use crate::Error;

    /// A hash-map store bounded to `limit` slots, so that a flood of new sources cannot grow
    /// memory without bound (the `std` feature). Lookups borrow the group key: no allocation
    /// per event once a slot exists.
    #[derive(Debug, Clone, Default)]
    pub struct MapStore {
        rules: std::vec::Vec<HashMap<String, Slot>>,
        len: usize,
        limit: usize,
    }

    impl MapStore {
        /// An empty store of at most `limit` slots.
        pub fn new(limit: usize) -> Self {
            MapStore {
                rules: std::vec::Vec::new(),
                len: 0,
                limit,
            }
        }

        /// Number of slots in use.
        pub fn len(&self) -> usize {
            self.len
        }

        /// Whether no slot is in use.
        pub fn is_empty(&self) -> bool {
            self.len == 0
        }

        /// Every slot, for snapshots.
        pub fn iter(&self) -> impl Iterator<Item = (u32, &str, &Slot)> {
            self.rules
                .iter()
                .enumerate()
                .flat_map(|(r, groups)| groups.iter().map(move |(g, s)| (r as u32, g.as_str(), s)))
        }

        /// Puts a slot back (restoring a snapshot), within the limit.
        pub fn insert(&mut self, rule: u32, group: &str, slot: Slot) -> Result<(), Error> {
            let exists = self.slot(rule, group).is_some();
            if !exists && self.len >= self.limit {
                return Err(Error::StoreFull);
            }
            self.groups_mut(rule).insert(group.to_string(), slot);
            if !exists {
                self.len += 1;
            }
            Ok(())
        }

        /// Keeps the slots whose rule `renumber` maps to a new rule number (after a reload),
        /// renumbering them; drops the others.
        pub fn renumber(&mut self, mut renumber: impl FnMut(u32) -> Option<u32>) {
            let old = core::mem::take(&mut self.rules);
            self.len = 0;
            for (r, groups) in old.into_iter().enumerate() {
                if let Some(n) = renumber(r as u32) {
                    self.len += groups.len();
                    *self.groups_mut(n) = groups;
                }
            }
        }

        fn groups_mut(&mut self, rule: u32) -> &mut HashMap<String, Slot> {
            let r = rule as usize;
            if self.rules.len() <= r {
                self.rules.resize_with(r + 1, HashMap::new);
            }
            &mut self.rules[r]
        }
    }

    impl Store for MapStore {
        fn slot(&self, rule: u32, group: &str) -> Option<&Slot> {
            self.rules.get(rule as usize)?.get(group)
        }

        fn slot_mut(&mut self, rule: u32, group: &str, period_ms: u32) -> Result<&mut Slot, Error> {
            if self.slot(rule, group).is_none() {
                if self.len >= self.limit {
                    return Err(Error::StoreFull);
                }
                self.len += 1;
                self.groups_mut(rule)
                    .insert(group.to_string(), Slot::new(period_ms));
            }
            self.groups_mut(rule).get_mut(group).ok_or(Error::StoreFull)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(store: &mut impl Store) {
        assert!(store.slot(0, "web-1").is_none());
        store.slot_mut(0, "web-1", 1000).unwrap().active = true;
        assert!(store.slot(0, "web-1").unwrap().active);
        assert!(store.slot(1, "web-1").is_none());
        store.slot_mut(0, "web-2", 1000).unwrap();
        assert_eq!(
            store.slot_mut(1, "web-3", 1000).unwrap_err(),
            Error::StoreFull
        );
        // Existing slots stay reachable when full.
        assert!(store.slot_mut(0, "web-1", 1000).unwrap().active);
    }

    #[test]
    fn fixed_store_is_bounded() {
        // FnvIndexMap needs a power of two; use 2 so the third insert fails.
        exercise(&mut FixedStore::<2>::new());
    }

    #[test]
    fn map_store_is_bounded() {
        exercise(&mut MapStore::new(2));
    }
}
