//! [`Compiled`]: a validated rulebook in the core's table form, owned.

use std::fmt;
use std::ops::AddAssign;

use reflex_core::program::{Arg, ChainLink, Entry, IndexSlot, Program, Reaction, Rule, Segment};

/// A compiled rulebook: the tables of a [`Program`], owned, plus where each rule was written.
///
/// ```
/// use reflex_rules::{compile_str, Catalog};
/// let yaml = "/client/load/*:\n  rules:\n    - load_avg:\n        rule: rules.simple.gt\n        threshold: 20\n";
/// let compiled = compile_str("load.yml", yaml, &Catalog::builtin()).unwrap();
/// assert_eq!(compiled.rule_names(), ["load_avg"]);
/// assert_eq!(compiled.source_of_rule(0), Some(("load.yml", 3, 7)));
/// assert!(compiled.program().validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    pub(crate) strings: String,
    pub(crate) entries: Vec<Entry>,
    pub(crate) index: Vec<IndexSlot>,
    pub(crate) prefix_lens: [u64; 2],
    pub(crate) prefix_table: Vec<u32>,
    pub(crate) entry_rules: Vec<u32>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) chain: Vec<ChainLink>,
    pub(crate) dependents: Vec<u32>,
    pub(crate) reactions: Vec<Reaction>,
    pub(crate) args: Vec<Arg>,
    pub(crate) segments: Vec<Segment>,
    /// The files compiled, in order.
    pub(crate) files: Vec<String>,
    /// Per rule: index into `files`, line, column of its name.
    pub(crate) rule_sources: Vec<(usize, u32, u32)>,
}

impl Compiled {
    /// The program view the engine runs.
    pub fn program(&self) -> Program<'_> {
        Program {
            strings: &self.strings,
            entries: &self.entries,
            index: &self.index,
            prefix_lens: self.prefix_lens,
            prefix_table: &self.prefix_table,
            entry_rules: &self.entry_rules,
            rules: &self.rules,
            chain: &self.chain,
            dependents: &self.dependents,
            reactions: &self.reactions,
            args: &self.args,
            segments: &self.segments,
        }
    }

    /// Where rule `i` (index into [`Program::rules`]) was defined: file, line, column of its
    /// name.
    pub fn source_of_rule(&self, i: usize) -> Option<(&str, u32, u32)> {
        let &(file, line, col) = self.rule_sources.get(i)?;
        Some((self.files.get(file)?.as_str(), line, col))
    }

    /// The rule names, in [`Program::rules`] order.
    pub fn rule_names(&self) -> Vec<&str> {
        let p = self.program();
        self.rules.iter().map(|r| p.str(r.name)).collect()
    }

    /// The files the rulebook was compiled from, in order.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// What the rulebook holds, counted.
    pub fn summary(&self) -> Summary {
        Summary {
            files: self.files.len(),
            entries: self.entries.len(),
            rules: self.rules.len(),
            reactions: self.reactions.len(),
        }
    }
}

/// Counts of what a rulebook holds; displayed as `3 files, 5 tag entries, 7 rules, 9
/// reactions`. Summaries of several rulebooks add up with `+=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Files read.
    pub files: usize,
    /// Tag-glob entries.
    pub entries: usize,
    /// Rules.
    pub rules: usize,
    /// Reactions.
    pub reactions: usize,
}

impl AddAssign for Summary {
    fn add_assign(&mut self, other: Summary) {
        self.files += other.files;
        self.entries += other.entries;
        self.rules += other.rules;
        self.reactions += other.reactions;
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |count: usize, one: &str, many: &str| {
            format!("{count} {}", if count == 1 { one } else { many })
        };
        write!(
            f,
            "{}, {}, {}, {}",
            n(self.files, "file", "files"),
            n(self.entries, "tag entry", "tag entries"),
            n(self.rules, "rule", "rules"),
            n(self.reactions, "reaction", "reactions"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_and_plurals() {
        let mut s = Summary {
            files: 1,
            entries: 1,
            rules: 1,
            reactions: 0,
        };
        assert_eq!(s.to_string(), "1 file, 1 tag entry, 1 rule, 0 reactions");
        s += s;
        assert_eq!(
            s.to_string(),
            "2 files, 2 tag entries, 2 rules, 0 reactions"
        );
    }
}
