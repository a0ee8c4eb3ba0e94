//! The loader: every pluggable function has a key `<role>.<module>.<function>`, resolved once
//! at load time; the hot path works on the resolved enums and indices.
//!
//! Register and rule functions are built in (they must run on devices). Reactions are resolved
//! by the host against its own catalog; [`closest`] gives every resolver the same
//! did-you-mean suggestions.

use crate::register::RegisterFn;
use crate::rule::RuleFn;

/// The built-in register functions.
pub const REGISTERS: &[(&str, RegisterFn)] = &[
    ("register.aggregate.avg", RegisterFn::Avg),
    ("register.aggregate.min", RegisterFn::Min),
    ("register.aggregate.max", RegisterFn::Max),
    ("register.aggregate.sum", RegisterFn::Sum),
    ("register.aggregate.count", RegisterFn::Count),
    ("register.aggregate.rate", RegisterFn::Rate),
    ("register.aggregate.last", RegisterFn::Last),
    ("register.aggregate.delta", RegisterFn::Delta),
];

/// The built-in rule functions.
pub const RULES: &[(&str, RuleFn)] = &[
    ("rules.simple.gt", RuleFn::Gt),
    ("rules.simple.ge", RuleFn::Ge),
    ("rules.simple.lt", RuleFn::Lt),
    ("rules.simple.le", RuleFn::Le),
    ("rules.simple.eq", RuleFn::Eq),
    ("rules.simple.ne", RuleFn::Ne),
    ("rules.simple.between", RuleFn::Between),
    ("rules.simple.outside", RuleFn::Outside),
    ("rules.simple.changed", RuleFn::Changed),
];

/// Resolves a register key such as `register.aggregate.avg`.
///
/// ```
/// use reflex_core::{loader, register::RegisterFn};
/// assert_eq!(loader::register("register.aggregate.avg"), Some(RegisterFn::Avg));
/// assert_eq!(loader::register("register.aggregate.mean"), None);
/// ```
pub fn register(key: &str) -> Option<RegisterFn> {
    REGISTERS.iter().find(|(k, _)| *k == key).map(|(_, f)| *f)
}

/// Resolves a rule key such as `rules.simple.gt`.
pub fn rule(key: &str) -> Option<RuleFn> {
    RULES.iter().find(|(k, _)| *k == key).map(|(_, f)| *f)
}

/// Whether `key` has the shape `<role>.<module>.<function>` with the given role.
pub fn has_role(key: &str, role: &str) -> bool {
    let mut parts = key.split('.');
    parts.next() == Some(role)
        && parts.next().is_some_and(|m| !m.is_empty())
        && parts.next().is_some_and(|f| !f.is_empty())
        && parts.next().is_none()
}

/// Up to three candidates closest to `key` by edit distance (within a third of its length,
/// at least 2), closest first.
///
/// ```
/// use reflex_core::loader;
/// let keys = loader::REGISTERS.iter().map(|(k, _)| *k);
/// assert_eq!(loader::closest("register.aggregate.agv", keys)[0], "register.aggregate.avg");
/// ```
pub fn closest<'k>(
    key: &str,
    candidates: impl Iterator<Item = &'k str>,
) -> heapless::Vec<&'k str, 3> {
    let limit = (key.len() / 3).max(2);
    let mut best: heapless::Vec<(usize, &'k str), 3> = heapless::Vec::new();
    for c in candidates {
        let d = distance(key, c, limit);
        if d > limit {
            continue;
        }
        let at = best
            .iter()
            .position(|(bd, _)| d < *bd)
            .unwrap_or(best.len());
        if at < 3 {
            if best.is_full() {
                best.pop();
            }
            let _ = best.insert(at, (d, c));
        }
    }
    best.iter().map(|(_, c)| *c).collect()
}

/// Levenshtein distance over bytes, giving up (returning `limit + 1`) past `limit`; keys
/// longer than 64 bytes are compared on their first 64.
fn distance(a: &str, b: &str, limit: usize) -> usize {
    const W: usize = 64;
    let a = &a.as_bytes()[..a.len().min(W)];
    let b = &b.as_bytes()[..b.len().min(W)];
    if a.len().abs_diff(b.len()) > limit {
        return limit + 1;
    }
    let mut prev = [0usize; W + 1];
    let mut cur = [0usize; W + 1];
    for (j, p) in prev.iter_mut().enumerate().take(b.len() + 1) {
        *p = j;
    }
    for i in 1..=a.len() {
        cur[0] = i;
        let mut row_min = cur[0];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            row_min = row_min.min(cur[j]);
        }
        if row_min > limit {
            return limit + 1;
        }
        core::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_every_builtin() {
        for (k, f) in REGISTERS {
            assert_eq!(register(k), Some(*f));
        }
        for (k, f) in RULES {
            assert_eq!(rule(k), Some(*f));
        }
        assert_eq!(rule("rules.simple.gte"), None);
    }

    #[test]
    fn roles() {
        assert!(has_role("reactions.cloud.scale_up", "reactions"));
        assert!(!has_role("reactions.cloud", "reactions"));
        assert!(!has_role("reactions.a.b.c", "reactions"));
        assert!(!has_role("rules.simple.gt", "reactions"));
    }

    #[test]
    fn did_you_mean() {
        let keys = RULES.iter().map(|(k, _)| *k);
        let c = closest("rules.simple.gte", keys);
        assert!(c.contains(&"rules.simple.gt"));
        assert!(c.contains(&"rules.simple.ge"));
        assert!(closest("nothing.like.it.at.all", RULES.iter().map(|(k, _)| *k)).is_empty());
    }
}
