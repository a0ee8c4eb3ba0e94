//! Tag globs with fnmatch semantics, and the index that finds the entries matching a tag.
//!
//! Globs: `*` matches any run of bytes (including `/`), `?` any one byte, `[abc]`, `[a-z]` and
//! `[!abc]` (or `[^abc]`) a byte in (or not in) the set, and `\x` the byte `x` itself. An
//! unclosed `[` matches a literal `[`.

use crate::program::{Entry, IndexSlot, Program, StrRef};

/// Whether `tag` matches the glob `pattern`.
///
/// ```
/// use reflex_core::tag::glob_match;
/// assert!(glob_match("/client/load/*", "/client/load/web-1"));
/// assert!(glob_match("/disk/[!t]*", "/disk/sda"));
/// assert!(!glob_match("/client/?", "/client/ab"));
/// ```
pub fn glob_match(pattern: &str, tag: &str) -> bool {
    let p = pattern.as_bytes();
    let t = tag.as_bytes();
    let (mut pi, mut ti) = (0, 0);
    // Where to resume after the most recent `*`: (pattern index after it, tag index).
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi + 1, ti));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class(p, pi, t[ti]) {
                        if matched {
                            pi = next;
                            ti += 1;
                            continue;
                        }
                    } else if t[ti] == b'[' {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
                b'\\' if pi + 1 < p.len() => {
                    if p[pi + 1] == t[ti] {
                        pi += 2;
                        ti += 1;
                        continue;
                    }
                }
                c => {
                    if c == t[ti] {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
            }
        }
        // Mismatch: let the last `*` swallow one more byte, or fail.
        match star {
            Some((sp, st)) => {
                pi = sp;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Matches byte `c` against the class starting at `p[start] == b'['`. Returns whether it
/// matched and the index after the class, or `None` when the class is not closed.
fn class(p: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let mut lo = *p.get(i)?;
        if lo == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if lo == b'\\' {
            i += 1;
            lo = *p.get(i)?;
        }
        i += 1;
        let mut hi = lo;
        if p.get(i) == Some(&b'-') && p.get(i + 1).is_some_and(|&n| n != b']') {
            hi = *p.get(i + 1)?;
            if hi == b'\\' {
                i += 1;
                hi = *p.get(i + 1)?;
            }
            i += 2;
        }
        if lo <= c && c <= hi {
            matched = true;
        }
    }
}

/// Length of the literal prefix of a glob: the bytes before its first metacharacter
/// (`*`, `?`, `[`, `\`). Equal to the pattern's length when it has none.
pub fn literal_prefix_len(pattern: &str) -> usize {
    pattern
        .bytes()
        .position(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
        .unwrap_or(pattern.len())
}

/// Fills `slots` (exactly one per entry) with the tag index of `entries` and returns the
/// prefix-length bitmap for [`Program::prefix_lens`]. Patterns are taken from `strings`.
/// Returns `None` when `slots` has the wrong length or a prefix is 128 bytes or longer.
pub fn build_index(strings: &str, entries: &[Entry], slots: &mut [IndexSlot]) -> Option<[u64; 2]> {
    if slots.len() != entries.len() {
        return None;
    }
    let mut lens = [0u64; 2];
    for (i, (e, slot)) in entries.iter().zip(slots.iter_mut()).enumerate() {
        let start = e.pattern.start as usize;
        let pattern = strings.get(start..start + e.pattern.len as usize)?;
        let len = literal_prefix_len(pattern);
        if len >= 128 {
            return None;
        }
        lens[len / 64] |= 1 << (len % 64);
        *slot = IndexSlot {
            prefix: StrRef {
                start: e.pattern.start,
                len: len as u32,
            },
            entry: i as u32,
            literal: len == pattern.len(),
        };
    }
    let key = |s: &IndexSlot| {
        let start = s.prefix.start as usize;
        &strings.as_bytes()[start..start + s.prefix.len as usize]
    };
    slots.sort_unstable_by(|a, b| key(a).cmp(key(b)).then(a.entry.cmp(&b.entry)));
    Some(lens)
}

/// Marks an empty element of [`Program::prefix_table`].
pub const EMPTY_BUCKET: u32 = u32::MAX;

/// FNV-1a, 32 bits: one multiply per byte, and incremental, so the hashes of every prefix of
/// a tag come from one pass over it.
const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

fn fnv(h: u32, byte: u8) -> u32 {
    (h ^ u32::from(byte)).wrapping_mul(FNV_PRIME)
}

/// The length of the prefix table for `slots` index slots: the smallest power of two larger
/// than twice their number (so at most half full), or zero for no slots.
pub const fn prefix_table_len(slots: usize) -> usize {
    if slots == 0 {
        0
    } else {
        (slots * 2 + 1).next_power_of_two()
    }
}

/// Fills `table` (length from [`prefix_table_len`], or any power of two larger than the
/// number of distinct prefixes) with the hash table of a sorted index. Returns `false` when
/// `table` has an unusable length.
pub fn build_prefix_table(strings: &str, slots: &[IndexSlot], table: &mut [u32]) -> bool {
    let prefix = |s: &IndexSlot| {
        let start = s.prefix.start as usize;
        strings
            .as_bytes()
            .get(start..start + s.prefix.len as usize)
            .unwrap_or(&[])
    };
    if !table.len().is_power_of_two() {
        return slots.is_empty() && table.is_empty();
    }
    table.fill(EMPTY_BUCKET);
    let mask = table.len() - 1;
    let mut placed = 0usize;
    for (i, slot) in slots.iter().enumerate() {
        if i > 0 && prefix(&slots[i - 1]) == prefix(slot) {
            continue;
        }
        placed += 1;
        if placed >= table.len() {
            return false;
        }
        let mut b = prefix(slot).iter().fold(FNV_OFFSET, |h, &c| fnv(h, c)) as usize & mask;
        while table[b] != EMPTY_BUCKET {
            b = (b + 1) & mask;
        }
        table[b] = i as u32;
    }
    true
}

/// The entries of a program that match a tag, found without trying every entry.
///
/// For each length `n` at which some entry's literal prefix ends, the run of slots whose prefix
/// equals the tag's first `n` bytes is found through the prefix hash table (one pass of
/// hashing over the tag serves every `n`), or by binary search when the program has no table;
/// only those entries' globs are tried. The cost grows with the number of distinct prefix
/// lengths and with the entries sharing the tag's prefixes, not with the size of the rulebook.
pub struct TagIndex<'p> {
    program: Program<'p>,
}

impl<'p> TagIndex<'p> {
    /// The index of a (validated) program.
    pub fn new(program: Program<'p>) -> Self {
        TagIndex { program }
    }

    /// Calls `found` with the index of every entry whose pattern matches `tag`, in no
    /// particular order (each entry at most once).
    pub fn for_each_match(&self, tag: &str, mut found: impl FnMut(u32)) {
        let p = &self.program;
        let tag_bytes = tag.as_bytes();
        let key = |s: &IndexSlot| p.str(s.prefix).as_bytes();
        let mut hash = FNV_OFFSET;
        for n in 0..=tag_bytes.len().min(127) {
            if n > 0 {
                hash = fnv(hash, tag_bytes[n - 1]);
            }
            if p.prefix_lens[n / 64] & (1 << (n % 64)) == 0 {
                continue;
            }
            let want = &tag_bytes[..n];
            let Some(mut i) = self.first_slot(want, hash) else {
                continue;
            };
            while let Some(slot) = p.index.get(i) {
                if key(slot) != want {
                    break;
                }
                i += 1;
                let matched = if slot.literal {
                    n == tag_bytes.len()
                } else {
                    let pattern = p.entries.get(slot.entry as usize).map(|e| p.str(e.pattern));
                    pattern.is_some_and(|pat| glob_match(pat.get(n..).unwrap_or(""), &tag[n..]))
                };
                if matched {
                    found(slot.entry);
                }
            }
        }
    }

    /// The first slot whose prefix is `want` (whose hash is `hash`), if any.
    fn first_slot(&self, want: &[u8], hash: u32) -> Option<usize> {
        let p = &self.program;
        let key = |s: &IndexSlot| p.str(s.prefix).as_bytes();
        let table = p.prefix_table;
        if table.is_empty() {
            let i = p.index.partition_point(|s| key(s) < want);
            return p.index.get(i).filter(|s| key(s) == want).map(|_| i);
        }
        let mask = table.len() - 1;
        let mut b = hash as usize & mask;
        for _ in 0..table.len() {
            let at = table[b];
            if at == EMPTY_BUCKET {
                return None;
            }
            if p.index.get(at as usize).is_some_and(|s| key(s) == want) {
                return Some(at as usize);
            }
            b = (b + 1) & mask;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fnmatch_cases() {
        let yes = [
            ("*", ""),
            ("*", "/a/b"),
            ("/a/*", "/a/"),
            ("/a/*/c", "/a/b/x/c"),
            ("/a?c", "/abc"),
            ("/[abc]x", "/bx"),
            ("/[a-c]x", "/bx"),
            ("/[!a-c]x", "/dx"),
            ("/[^a]x", "/bx"),
            ("/[]]x", "/]x"),
            ("/[!]]x", "/ax"),
            ("/\\*", "/*"),
            ("/[", "/["),
            ("/[ab", "/[ab"),
            ("/a-[x-]", "/a--"),
            ("**/b", "/a/b"),
        ];
        for (p, t) in yes {
            assert!(glob_match(p, t), "{p} should match {t}");
        }
        let no = [
            ("/a/*", "/b/c"),
            ("/a?c", "/ac"),
            ("/[abc]x", "/dx"),
            ("/[!a-c]x", "/bx"),
            ("/\\*", "/x"),
            ("/a", "/ab"),
            ("/ab", "/a"),
        ];
        for (p, t) in no {
            assert!(!glob_match(p, t), "{p} should not match {t}");
        }
    }

    /// Reference matcher: plain recursion over the same grammar.
    fn reference(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') => (0..=t.len()).any(|k| reference(&p[1..], &t[k..])),
            Some(b'?') => !t.is_empty() && reference(&p[1..], &t[1..]),
            Some(b'\\') if p.len() > 1 => t.first() == Some(&p[1]) && reference(&p[2..], &t[1..]),
            Some(b'[') => {
                // Parse the class like fnmatch.
                let mut i = 1;
                let neg = matches!(p.get(i), Some(b'!' | b'^'));
                if neg {
                    i += 1;
                }
                let mut set = std::vec::Vec::new();
                let mut first = true;
                let closed = loop {
                    let Some(&c) = p.get(i) else { break None };
                    if c == b']' && !first {
                        break Some(i + 1);
                    }
                    first = false;
                    let mut lo = c;
                    if lo == b'\\' {
                        i += 1;
                        match p.get(i) {
                            Some(&x) => lo = x,
                            None => break None,
                        }
                    }
                    i += 1;
                    let mut hi = lo;
                    if p.get(i) == Some(&b'-') && p.get(i + 1).is_some_and(|&n| n != b']') {
                        hi = p[i + 1];
                        if hi == b'\\' {
                            i += 1;
                            match p.get(i + 1) {
                                Some(&x) => hi = x,
                                None => break None,
                            }
                        }
                        i += 2;
                    }
                    set.push((lo, hi));
                };
                match closed {
                    Some(next) => match t.first() {
                        Some(&c) => {
                            let hit = set.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                            hit != neg && reference(&p[next..], &t[1..])
                        }
                        None => false,
                    },
                    None => t.first() == Some(&b'[') && reference(&p[1..], &t[1..]),
                }
            }
            Some(&c) => t.first() == Some(&c) && reference(&p[1..], &t[1..]),
        }
    }

    fn glob_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("*".to_string()),
                Just("?".to_string()),
                Just("/".to_string()),
                Just("[ab]".to_string()),
                Just("[!b-c]".to_string()),
                Just("\\a".to_string()),
                Just("[".to_string()),
                "[abc/]{1,3}",
            ],
            0..8,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn matches_reference(p in glob_strategy(), t in "[abc/\\[*]{0,10}") {
            prop_assert_eq!(glob_match(&p, &t), reference(p.as_bytes(), t.as_bytes()));
        }

        #[test]
        fn index_finds_exactly_the_matching_entries(
            patterns in proptest::collection::vec(glob_strategy(), 1..20),
            tag in "/[abc/]{0,8}",
        ) {
            let mut strings = String::new();
            let entries: Vec<Entry> = patterns.iter().map(|p| {
                let e = Entry {
                    pattern: StrRef { start: strings.len() as u32, len: p.len() as u32 },
                    rules: Default::default(),
                };
                strings.push_str(p);
                e
            }).collect();
            let mut slots = vec![IndexSlot { prefix: StrRef::default(), entry: 0, literal: false }; entries.len()];
            let lens = build_index(&strings, &entries, &mut slots).unwrap();
            let mut table = vec![0; prefix_table_len(slots.len())];
            prop_assert!(build_prefix_table(&strings, &slots, &mut table));
            let want: Vec<u32> = patterns.iter().enumerate()
                .filter(|(_, p)| glob_match(p, &tag)).map(|(i, _)| i as u32).collect();
            // With the hash table, and with binary search alone.
            for prefix_table in [&table[..], &[]] {
                let program = Program {
                    strings: &strings, entries: &entries, index: &slots, prefix_lens: lens,
                    prefix_table, entry_rules: &[], rules: &[], chain: &[], dependents: &[], reactions: &[],
                    args: &[], segments: &[],
                };
                prop_assert!(program.validate().is_ok());
                let mut got = Vec::new();
                TagIndex::new(program).for_each_match(&tag, |e| got.push(e));
                got.sort();
                prop_assert_eq!(&got, &want);
            }
        }
    }
}
