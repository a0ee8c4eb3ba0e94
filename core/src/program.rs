//! A compiled rulebook: flat tables of plain records that refer to each other by index.
//!
//! The `rules` crate compiles YAML into these tables; the Manager lends them to the engine as
//! a [`Program`] view, and firmware keeps them in flash as `static` arrays (or loads them from
//! postcard bytes into a [`ProgramBuf`]). Nothing here allocates, and every index is checked by
//! [`Program::validate`] before an engine trusts it.

use core::fmt::{self, Write};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::event::Event;
use crate::register::RegisterFn;
use crate::rule::RuleFn;
use crate::value::{Str, Value};

/// A string in [`Program::strings`]: `start..start+len` (byte offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StrRef {
    /// Byte offset of the first byte.
    pub start: u32,
    /// Length in bytes.
    pub len: u32,
}

/// A run of records in another table: `start..start+len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Span {
    /// Index of the first record.
    pub start: u32,
    /// Number of records.
    pub len: u32,
}

impl Span {
    /// The span as a `Range<usize>`.
    pub fn range(self) -> core::ops::Range<usize> {
        self.start as usize..self.start as usize + self.len as usize
    }
}

/// One tag-glob entry of the rulebook and the rules listed under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The tag glob.
    pub pattern: StrRef,
    /// Indices into [`Program::entry_rules`].
    pub rules: Span,
}

/// One slot of the tag index: an entry's literal prefix (the pattern up to its first glob
/// metacharacter). Slots are sorted by prefix bytes; see [`crate::tag::TagIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexSlot {
    /// The literal prefix, a leading part of the entry's pattern.
    pub prefix: StrRef,
    /// The entry, index into [`Program::entries`].
    pub entry: u32,
    /// The whole pattern is literal: a tag matches exactly when it equals the prefix.
    pub literal: bool,
}

/// What a register's group key is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupBy {
    /// The event's source (the default: one window per originating host).
    Source,
    /// The event's tag.
    Tag,
    /// A data field's value.
    Field(StrRef),
    /// The event's source and a data field's value (`group_by: [source, FIELD]`): one window
    /// per host and, say, service.
    SourceField(StrRef),
    /// One window for all events.
    Nothing,
}

/// When a rule whose condition holds fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fire {
    /// When the condition becomes true; re-armed when it becomes false (the default).
    Edge,
    /// On every event that satisfies it.
    Always,
}

/// How a chain link combines with the condition so far (left to right).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChainOp {
    /// `so_far && other`.
    And,
    /// `so_far || other`.
    Or,
    /// `so_far && !other` (`NOT` in a rulebook means the same).
    AndNot,
}

/// One link of a rule's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    /// How it combines.
    pub op: ChainOp,
    /// The other rule, index into [`Program::rules`].
    pub rule: u32,
}

/// One rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// The rule's name.
    pub name: StrRef,
    /// The event field it reads.
    pub field: StrRef,
    /// The comparison.
    pub func: RuleFn,
    /// The threshold, or the low bound of `[lo, hi]`.
    pub lo: f64,
    /// The high bound of `[lo, hi]` (equal to `lo` for a single threshold).
    pub hi: f64,
    /// The register's aggregate.
    pub register: RegisterFn,
    /// The register's sliding window, in milliseconds.
    pub period_ms: u32,
    /// What the register is grouped by.
    pub group_by: GroupBy,
    /// Firing policy.
    pub fire: Fire,
    /// Least time between two firings of this rule for one group, in milliseconds (0: none).
    pub cooldown_ms: u32,
    /// Indices into [`Program::chain`].
    pub chain: Span,
    /// Indices into [`Program::dependents`]: the rules whose condition reads this rule's
    /// through their chains, directly or through other chained rules.
    pub dependents: Span,
    /// Indices into [`Program::reactions`].
    pub reactions: Span,
}

/// One reaction of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    /// The full key, e.g. `reactions.eventer.fire_event`.
    pub key: StrRef,
    /// The function's number in the reaction catalog the program was compiled against.
    pub func: u16,
    /// Performed by Actors through the Publisher rather than locally.
    pub remote: bool,
    /// Template of the Actor id glob (into [`Program::segments`]); empty means all Actors.
    pub target: Span,
    /// Indices into [`Program::args`].
    pub args: Span,
}

/// One templated argument of a reaction. Nested maps are flattened to dotted names
/// (`data.host`); a list is several args of the same name with `item` set, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arg {
    /// Dotted name.
    pub name: StrRef,
    /// This is one item of a list named `name`.
    pub item: bool,
    /// The template, indices into [`Program::segments`].
    pub value: Span,
}

/// One piece of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Segment {
    /// Literal text.
    Lit(StrRef),
    /// The event's source (`originating_host`, `{{ event.source }}`).
    Source,
    /// The event's tag (`tag`, `{{ event.tag }}`).
    Tag,
    /// The value the rule read from the event (`value`, `{{ value }}`).
    Value,
    /// A data field of the event (`{{ event.data.NAME }}`); empty when absent.
    Data(StrRef),
    /// The rule's register value (`{{ register.value }}`).
    Register,
    /// The rule's name (`{{ rule.name }}`).
    RuleName,
    /// The event's time in milliseconds (`{{ event.time }}`).
    Time,
    /// A data field of the event, or the given text when the event lacks it
    /// (`{{ event.data.NAME | default('TEXT') }}`). An argument holding one is never refused
    /// for rendering empty.
    DataOr(StrRef, StrRef),
}

/// Upper bound on a rule's chain evaluation, whatever a (validated) program says.
pub const MAX_CHAIN: usize = 16;

/// A compiled rulebook, borrowed. All indices are into the tables of the same program.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Program<'a> {
    /// Every string of the program, concatenated.
    pub strings: &'a str,
    /// Tag-glob entries, in rulebook order.
    pub entries: &'a [Entry],
    /// The tag index: one slot per entry, sorted by prefix.
    pub index: &'a [IndexSlot],
    /// Bit `n` set when some slot's prefix is `n` bytes long (`n` < 128).
    pub prefix_lens: [u64; 2],
    /// Open-addressing hash table over the distinct prefixes of [`Program::index`]: each
    /// element is the index of the first slot of a run of equal prefixes, or
    /// [`crate::tag::EMPTY_BUCKET`]. Its length is zero (binary search is used instead) or a
    /// power of two larger than the number of distinct prefixes. See
    /// [`crate::tag::build_prefix_table`].
    pub prefix_table: &'a [u32],
    /// Rule indices listed by the entries.
    pub entry_rules: &'a [u32],
    /// All rules.
    pub rules: &'a [Rule],
    /// All chain links.
    pub chain: &'a [ChainLink],
    /// Rule indices listed as the dependents of rules (see [`Rule::dependents`]).
    pub dependents: &'a [u32],
    /// All reactions.
    pub reactions: &'a [Reaction],
    /// All reaction arguments.
    pub args: &'a [Arg],
    /// All template segments.
    pub segments: &'a [Segment],
}

/// What a template is rendered against.
#[derive(Debug, Clone, Copy)]
pub struct Context<'e> {
    /// The event that made the rule fire.
    pub event: &'e Event,
    /// The rule, index into [`Program::rules`].
    pub rule: u32,
    /// The value the rule read from the event, if it had one.
    pub value: Option<&'e Value>,
    /// The rule's register value; NaN when its window is empty (it fired through its
    /// chain), which renders as nothing.
    pub register: f64,
}

impl<'a> Program<'a> {
    /// A string of the program. Out-of-range references give `""` (a validated program has
    /// none).
    pub fn str(&self, r: StrRef) -> &'a str {
        let start = r.start as usize;
        self.strings
            .get(start..start.saturating_add(r.len as usize))
            .unwrap_or("")
    }

    /// The rules listed under an entry.
    pub fn rules_of(&self, entry: &Entry) -> &'a [u32] {
        self.entry_rules.get(entry.rules.range()).unwrap_or(&[])
    }

    /// A rule's reactions.
    pub fn reactions_of(&self, rule: &Rule) -> &'a [Reaction] {
        self.reactions.get(rule.reactions.range()).unwrap_or(&[])
    }

    /// A rule's chain links.
    pub fn chain_of(&self, rule: &Rule) -> &'a [ChainLink] {
        self.chain.get(rule.chain.range()).unwrap_or(&[])
    }

    /// The rules whose chains read `rule`'s condition, directly or through other chained
    /// rules, in rule order: the rules to evaluate again when `rule`'s register changes.
    pub fn dependents_of(&self, rule: &Rule) -> &'a [u32] {
        self.dependents.get(rule.dependents.range()).unwrap_or(&[])
    }

    /// A reaction's arguments.
    pub fn args_of(&self, reaction: &Reaction) -> &'a [Arg] {
        self.args.get(reaction.args.range()).unwrap_or(&[])
    }

    /// A template's segments.
    pub fn segments_of(&self, template: Span) -> &'a [Segment] {
        self.segments.get(template.range()).unwrap_or(&[])
    }

    /// Finds a rule by name (load time only: the hot path uses indices).
    pub fn rule_named(&self, name: &str) -> Option<u32> {
        self.rules
            .iter()
            .position(|r| self.str(r.name) == name)
            .map(|i| i as u32)
    }

    /// Checks that every reference stays inside the program's tables, that chains are short
    /// and that the index is sorted, so that evaluation can trust them. A program from an
    /// untrusted source (postcard bytes) must pass this first.
    pub fn validate(&self) -> Result<(), Error> {
        let strings = self.strings.len();
        let s_ok = |r: StrRef| {
            (r.start as usize)
                .checked_add(r.len as usize)
                .is_some_and(|end| {
                    end <= strings && self.strings.get(r.start as usize..end).is_some()
                })
        };
        let span_ok = |s: Span, len: usize| {
            (s.start as usize)
                .checked_add(s.len as usize)
                .is_some_and(|end| end <= len)
        };
        let seg_ok = |t: Span| {
            span_ok(t, self.segments.len())
                && self.segments[t.range()].iter().all(|s| match s {
                    Segment::Lit(r) | Segment::Data(r) => s_ok(*r),
                    Segment::DataOr(name, default) => s_ok(*name) && s_ok(*default),
                    _ => true,
                })
        };
        if self.index.len() != self.entries.len() {
            return Err(Error::ProgramCorrupt);
        }
        for e in self.entries {
            if !s_ok(e.pattern) || !span_ok(e.rules, self.entry_rules.len()) {
                return Err(Error::ProgramCorrupt);
            }
        }
        if self
            .entry_rules
            .iter()
            .any(|&r| r as usize >= self.rules.len())
        {
            return Err(Error::ProgramCorrupt);
        }
        for (i, slot) in self.index.iter().enumerate() {
            if !s_ok(slot.prefix) || slot.entry as usize >= self.entries.len() {
                return Err(Error::ProgramCorrupt);
            }
            let len = slot.prefix.len as usize;
            if len >= 128 || self.prefix_lens[len / 64] & (1 << (len % 64)) == 0 {
                return Err(Error::ProgramCorrupt);
            }
            if i > 0 && self.str(self.index[i - 1].prefix) > self.str(slot.prefix) {
                return Err(Error::ProgramCorrupt);
            }
        }
        let table = self.prefix_table.len();
        if table != 0 && (!table.is_power_of_two() || table <= self.distinct_prefixes()) {
            return Err(Error::ProgramCorrupt);
        }
        for &b in self.prefix_table {
            if b != crate::tag::EMPTY_BUCKET {
                let first = self.index.get(b as usize).ok_or(Error::ProgramCorrupt)?;
                let prev = (b as usize)
                    .checked_sub(1)
                    .map(|p| self.str(self.index[p].prefix));
                if prev == Some(self.str(first.prefix)) {
                    return Err(Error::ProgramCorrupt);
                }
            }
        }
        for r in self.rules {
            let group_ok = match r.group_by {
                GroupBy::Field(f) | GroupBy::SourceField(f) => s_ok(f),
                _ => true,
            };
            if !s_ok(r.name)
                || !s_ok(r.field)
                || !group_ok
                || !span_ok(r.chain, self.chain.len())
                || r.chain.len as usize > MAX_CHAIN
                || !span_ok(r.dependents, self.dependents.len())
                || !span_ok(r.reactions, self.reactions.len())
            {
                return Err(Error::ProgramCorrupt);
            }
        }
        if self
            .chain
            .iter()
            .map(|c| c.rule)
            .chain(self.dependents.iter().copied())
            .any(|r| r as usize >= self.rules.len())
        {
            return Err(Error::ProgramCorrupt);
        }
        for re in self.reactions {
            if !s_ok(re.key) || !seg_ok(re.target) || !span_ok(re.args, self.args.len()) {
                return Err(Error::ProgramCorrupt);
            }
        }
        for a in self.args {
            if !s_ok(a.name) || !seg_ok(a.value) {
                return Err(Error::ProgramCorrupt);
            }
        }
        Ok(())
    }

    /// Number of distinct prefixes in the (sorted) index.
    pub fn distinct_prefixes(&self) -> usize {
        self.index
            .iter()
            .enumerate()
            .filter(|(i, s)| *i == 0 || self.str(self.index[i - 1].prefix) != self.str(s.prefix))
            .count()
    }

    /// Renders a template as text.
    pub fn render(&self, template: Span, ctx: &Context<'_>, out: &mut impl Write) -> fmt::Result {
        for seg in self.segments_of(template) {
            match *seg {
                Segment::Lit(r) => out.write_str(self.str(r))?,
                Segment::Source => out.write_str(&ctx.event.source)?,
                Segment::Tag => out.write_str(&ctx.event.tag)?,
                Segment::Value => {
                    if let Some(v) = ctx.value {
                        write!(out, "{v}")?;
                    }
                }
                Segment::Data(name) => {
                    if let Some(v) = ctx.event.get(self.str(name)) {
                        write!(out, "{v}")?;
                    }
                }
                Segment::DataOr(name, default) => match ctx.event.get(self.str(name)) {
                    Some(v) => write!(out, "{v}")?,
                    None => out.write_str(self.str(default))?,
                },
                Segment::Register => {
                    if ctx.register.is_finite() {
                        write!(out, "{}", ctx.register)?
                    }
                }
                Segment::RuleName => {
                    let name = self.rules.get(ctx.rule as usize).map(|r| r.name);
                    out.write_str(name.map(|n| self.str(n)).unwrap_or(""))?
                }
                Segment::Time => write!(out, "{}", ctx.event.time)?,
            }
        }
        Ok(())
    }

    /// Renders a template as a typed value: a template that is one substitution keeps that
    /// value's type (the register value stays a float, a data field its own type); anything
    /// else is rendered as text and parsed like the CLI parses values (int, float, bool, else
    /// string).
    pub fn render_value(&self, template: Span, ctx: &Context<'_>) -> Result<Value, Error> {
        match self.segments_of(template) {
            [Segment::Value] => Ok(ctx.value.cloned().unwrap_or(Value::Str(Str::new()))),
            [Segment::Data(name)] => Ok(ctx
                .event
                .get(self.str(*name))
                .cloned()
                .unwrap_or(Value::Str(Str::new()))),
            [Segment::DataOr(name, default)] => match ctx.event.get(self.str(*name)) {
                Some(v) => Ok(v.clone()),
                None => Value::parse(self.str(*default)),
            },
            [Segment::Register] if ctx.register.is_finite() => Ok(Value::Float(ctx.register)),
            [Segment::Register] => Ok(Value::Str(Str::new())),
            [Segment::Time] => Ok(Value::Int(ctx.event.time as i64)),
            _ => {
                let mut text = Str::new();
                self.render(template, ctx, &mut text)
                    .map_err(|_| Error::StringTooLong)?;
                Value::parse(&text)
            }
        }
    }
}

/// A program held in fixed-capacity tables, for a device that loads a rulebook from postcard
/// bytes (as exported by the `rules` crate) instead of compiling it into flash. `S` is the
/// string pool's capacity in bytes, `N` every table's capacity in records.
#[derive(Debug, Clone, Deserialize)]
pub struct ProgramBuf<const S: usize, const N: usize> {
    strings: heapless::String<S>,
    entries: heapless::Vec<Entry, N>,
    index: heapless::Vec<IndexSlot, N>,
    prefix_lens: [u64; 2],
    prefix_table: heapless::Vec<u32, N>,
    entry_rules: heapless::Vec<u32, N>,
    rules: heapless::Vec<Rule, N>,
    chain: heapless::Vec<ChainLink, N>,
    dependents: heapless::Vec<u32, N>,
    reactions: heapless::Vec<Reaction, N>,
    args: heapless::Vec<Arg, N>,
    segments: heapless::Vec<Segment, N>,
}

impl<const S: usize, const N: usize> ProgramBuf<S, N> {
    /// Decodes and validates postcard bytes. Oversized tables are [`Error::Malformed`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let buf: Self = postcard::from_bytes(bytes).map_err(|_| Error::Malformed)?;
        buf.view().validate()?;
        Ok(buf)
    }

    /// The program.
    pub fn view(&self) -> Program<'_> {
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
}
