/// The compiled rulebook (1 file, 1 tag entry, 1 rule, 2 reactions).
pub static LOAD_SIMPLE: reflex_core::program::Program<'static> = reflex_core::program::Program {
    strings: "/client/load/*load_avg/reconfig/lbtagdata.turn_down_the_hosereactions.eventer.fire_eventmachine_idreactions.cloud.scale_up",
    entries: &[
        reflex_core::program::Entry { pattern: reflex_core::program::StrRef { start: 0, len: 14 }, rules: reflex_core::program::Span { start: 0, len: 1 } },
    ],
    index: &[
        reflex_core::program::IndexSlot { prefix: reflex_core::program::StrRef { start: 0, len: 13 }, entry: 0, literal: false },
    ],
    prefix_lens: [0x2000, 0x0],
    prefix_table: &[
        4294967295,
        4294967295,
        4294967295,
        0,
    ],
    entry_rules: &[
        0,
    ],
    rules: &[
        reflex_core::program::Rule { name: reflex_core::program::StrRef { start: 14, len: 8 }, field: reflex_core::program::StrRef { start: 14, len: 8 }, func: reflex_core::rule::RuleFn::Gt, lo: 20.0, hi: 20.0, register: reflex_core::register::RegisterFn::Avg, period_ms: 10000, group_by: reflex_core::program::GroupBy::Source, fire: reflex_core::program::Fire::Edge, cooldown_ms: 0, chain: reflex_core::program::Span { start: 0, len: 0 }, dependents: reflex_core::program::Span { start: 0, len: 0 }, reactions: reflex_core::program::Span { start: 0, len: 2 } },
    ],
    chain: &[],
    dependents: &[],
    reactions: &[
        reflex_core::program::Reaction { key: reflex_core::program::StrRef { start: 60, len: 28 }, func: 0, remote: false, target: reflex_core::program::Span { start: 0, len: 0 }, args: reflex_core::program::Span { start: 0, len: 2 } },
        reflex_core::program::Reaction { key: reflex_core::program::StrRef { start: 98, len: 24 }, func: 6, remote: false, target: reflex_core::program::Span { start: 2, len: 0 }, args: reflex_core::program::Span { start: 2, len: 1 } },
    ],
    args: &[
        reflex_core::program::Arg { name: reflex_core::program::StrRef { start: 34, len: 3 }, item: false, value: reflex_core::program::Span { start: 0, len: 1 } },
        reflex_core::program::Arg { name: reflex_core::program::StrRef { start: 37, len: 23 }, item: false, value: reflex_core::program::Span { start: 1, len: 1 } },
        reflex_core::program::Arg { name: reflex_core::program::StrRef { start: 88, len: 10 }, item: false, value: reflex_core::program::Span { start: 2, len: 1 } },
    ],
    segments: &[
        reflex_core::program::Segment::Lit(reflex_core::program::StrRef { start: 22, len: 12 }),
        reflex_core::program::Segment::Source,
        reflex_core::program::Segment::Source,
    ],
};
