//! The device's register store: `N` slots in a plain array, made by a `const fn` so it can
//! sit in a `static` without ever being built on the stack.

use reflex_core::Error;
use reflex_core::store::{GroupKey, Slot, Store};

/// One rule and group's slot.
#[derive(Debug, Clone)]
struct Entry {
    rule: u32,
    group: GroupKey,
    slot: Slot,
}

/// A register store of at most `N` slots (one per rule and group pair), found by a linear
/// scan: a device holds a handful. A new pair beyond `N` is [`Error::StoreFull`], which the
/// engine counts.
///
/// ```
/// use reflex_agent_embedded::SlotStore;
/// use reflex_core::store::Store;
/// static EMPTY: SlotStore<4> = SlotStore::new(); // const: built at compile time
/// let mut store = SlotStore::<1>::new();
/// store.slot_mut(0, "dev-1", 10_000).unwrap();
/// assert!(store.slot_mut(1, "dev-1", 10_000).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct SlotStore<const N: usize> {
    /// Unused capacity is uninitialised, so a `static` store takes no flash for its image.
    entries: heapless::Vec<Entry, N>,
}

impl<const N: usize> Default for SlotStore<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> SlotStore<N> {
    /// An empty store.
    pub const fn new() -> Self {
        SlotStore {
            entries: heapless::Vec::new(),
        }
    }

    /// Empties the store, in place.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Number of slots in use.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no slot is in use.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, rule: u32, group: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.rule == rule && e.group == group)
    }
}

impl<const N: usize> Store for SlotStore<N> {
    fn slot(&self, rule: u32, group: &str) -> Option<&Slot> {
        let i = self.position(rule, group)?;
        self.entries.get(i).map(|e| &e.slot)
    }

    fn slot_mut(&mut self, rule: u32, group: &str, period_ms: u32) -> Result<&mut Slot, Error> {
        let i = match self.position(rule, group) {
            Some(i) => i,
            None => {
                let mut key = GroupKey::new();
                key.push_str(group).map_err(|_| Error::StoreFull)?;
                let entry = Entry {
                    rule,
                    group: key,
                    slot: Slot::new(period_ms),
                };
                self.entries.push(entry).map_err(|_| Error::StoreFull)?;
                self.entries.len() - 1
            }
        };
        self.entries
            .get_mut(i)
            .map(|e| &mut e.slot)
            .ok_or(Error::StoreFull)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_keyed_by_rule_and_group() {
        let mut s = SlotStore::<2>::new();
        assert!(s.slot(0, "a").is_none());
        s.slot_mut(0, "a", 1000).unwrap().active = true;
        assert!(s.slot(0, "a").unwrap().active);
        assert!(s.slot(1, "a").is_none());
        s.slot_mut(1, "a", 1000).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.slot_mut(0, "b", 1000).unwrap_err(), Error::StoreFull);
        assert!(s.slot_mut(0, "a", 1000).unwrap().active);
        let long = "x".repeat(reflex_core::store::MAX_GROUP_LEN + 1);
        assert_eq!(
            SlotStore::<1>::new().slot_mut(0, &long, 1).unwrap_err(),
            Error::StoreFull
        );
    }
}
