//! A compiled rulebook for devices: postcard bytes for
//! [`ProgramBuf::from_bytes`](reflex_core::program::ProgramBuf::from_bytes), or Rust source
//! for a firmware build script to put in flash as a `static`.

use std::fmt::Write;

use reflex_core::program::{GroupBy, Segment, Span, StrRef};

use crate::compiled::Compiled;

const P: &str = "reflex_core::program";

impl Compiled {
    /// The program as postcard bytes, loadable with
    /// [`ProgramBuf::from_bytes`](reflex_core::program::ProgramBuf::from_bytes).
    ///
    /// ```
    /// use reflex_core::program::ProgramBuf;
    /// use reflex_rules::{compile_str, Catalog};
    /// let yaml = "/t:\n  rules:\n    - up:\n        rule: rules.simple.eq\n        threshold: 0\n";
    /// let bytes = compile_str("t.yml", yaml, &Catalog::builtin()).unwrap().to_postcard();
    /// let buf = ProgramBuf::<64, 4>::from_bytes(&bytes).unwrap();
    /// assert_eq!(buf.view().rules.len(), 1);
    /// ```
    pub fn to_postcard(&self) -> Vec<u8> {
        // Serializing plain records into a growable buffer has no failure path.
        postcard::to_allocvec(&self.program()).expect("postcard into a Vec cannot fail")
    }

    /// The program as Rust source defining
    /// `pub static NAME: reflex_core::program::Program<'static>`, every table a literal
    /// array and every path fully qualified, for a firmware build script to `include!`.
    pub fn to_rust_source(&self, name: &str) -> String {
        let p = self.program();
        let mut s = String::new();
        let _ = writeln!(s, "/// The compiled rulebook ({}).", self.summary());
        let _ = writeln!(
            s,
            "pub static {name}: {P}::Program<'static> = {P}::Program {{"
        );
        let _ = writeln!(s, "    strings: {:?},", p.strings);
        table(&mut s, "entries", p.entries, |e| {
            format!(
                "{P}::Entry {{ pattern: {}, rules: {} }}",
                str_ref(e.pattern),
                span(e.rules)
            )
        });
        table(&mut s, "index", p.index, |i| {
            format!(
                "{P}::IndexSlot {{ prefix: {}, entry: {}, literal: {} }}",
                str_ref(i.prefix),
                i.entry,
                i.literal
            )
        });
        let _ = writeln!(
            s,
            "    prefix_lens: [{:#x}, {:#x}],",
            p.prefix_lens[0], p.prefix_lens[1]
        );
        table(&mut s, "prefix_table", p.prefix_table, |b| b.to_string());
        table(&mut s, "entry_rules", p.entry_rules, |r| r.to_string());
        table(&mut s, "rules", p.rules, |r| {
            let group_by = match r.group_by {
                GroupBy::Field(f) => format!("{P}::GroupBy::Field({})", str_ref(f)),
                GroupBy::SourceField(f) => format!("{P}::GroupBy::SourceField({})", str_ref(f)),
                other => format!("{P}::GroupBy::{other:?}"),
            };
            format!(
                "{P}::Rule {{ name: {}, field: {}, func: reflex_core::rule::RuleFn::{:?}, \
                 lo: {:?}, hi: {:?}, register: reflex_core::register::RegisterFn::{:?}, \
                 period_ms: {}, group_by: {group_by}, fire: {P}::Fire::{:?}, cooldown_ms: {}, \
                 chain: {}, dependents: {}, reactions: {} }}",
                str_ref(r.name),
                str_ref(r.field),
                r.func,
                r.lo,
                r.hi,
                r.register,
                r.period_ms,
                r.fire,
                r.cooldown_ms,
                span(r.chain),
                span(r.dependents),
                span(r.reactions)
            )
        });
        table(&mut s, "chain", p.chain, |c| {
            format!(
                "{P}::ChainLink {{ op: {P}::ChainOp::{:?}, rule: {} }}",
                c.op, c.rule
            )
        });
        table(&mut s, "dependents", p.dependents, |r| r.to_string());
        table(&mut s, "reactions", p.reactions, |r| {
            format!(
                "{P}::Reaction {{ key: {}, func: {}, remote: {}, target: {}, args: {} }}",
                str_ref(r.key),
                r.func,
                r.remote,
                span(r.target),
                span(r.args)
            )
        });
        table(&mut s, "args", p.args, |a| {
            format!(
                "{P}::Arg {{ name: {}, item: {}, value: {} }}",
                str_ref(a.name),
                a.item,
                span(a.value)
            )
        });
        table(&mut s, "segments", p.segments, |seg| match *seg {
            Segment::Lit(r) => format!("{P}::Segment::Lit({})", str_ref(r)),
            Segment::Data(r) => format!("{P}::Segment::Data({})", str_ref(r)),
            Segment::DataOr(name, default) => format!(
                "{P}::Segment::DataOr({}, {})",
                str_ref(name),
                str_ref(default)
            ),
            other => format!("{P}::Segment::{other:?}"),
        });
        s.push_str("};\n");
        s
    }
}

/// `    name: &[\n        item,\n    ],`
fn table<T>(s: &mut String, name: &str, items: &[T], item: impl Fn(&T) -> String) {
    if items.is_empty() {
        let _ = writeln!(s, "    {name}: &[],");
        return;
    }
    let _ = writeln!(s, "    {name}: &[");
    for i in items {
        let _ = writeln!(s, "        {},", item(i));
    }
    let _ = writeln!(s, "    ],");
}

fn str_ref(r: StrRef) -> String {
    format!("{P}::StrRef {{ start: {}, len: {} }}", r.start, r.len)
}

fn span(r: Span) -> String {
    format!("{P}::Span {{ start: {}, len: {} }}", r.start, r.len)
}
