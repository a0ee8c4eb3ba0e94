//! The compiler reports errors on any input and never panics: arbitrary text, and arbitrary
//! mutations of a valid rulebook.

use proptest::prelude::*;
use reflex_rules::{Catalog, compile_str};

const SEED: &str = include_str!("../examples/load.yml");
const EXTRA: &str = include_str!("../examples/service.yml");

/// Compiles and, when that succeeds, checks what a successful compile promises.
fn check(text: &str) {
    if let Ok(c) = compile_str("p.yml", text, &Catalog::builtin()) {
        assert!(c.program().validate().is_ok());
        let _ = c.to_postcard();
        let _ = c.to_rust_source("P");
    }
}

/// One edit of a text: delete a range, insert a snippet, duplicate or drop a line.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    DuplicateLine(usize),
    DropLine(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let snippet = prop_oneof![
        "[ :\\-\\[\\]{}'\"#&*!|>,\n\t]{1,4}",
        "[a-z_.]{1,12}",
        Just("{{ ".to_string()),
        Just("- OR: load_avg\n".to_string()),
        Just("threshold: [1, 2]".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("\n---\n".to_string()),
        Just("target: ".to_string()),
        "-?[0-9]{1,12}(\\.[0-9]+)?(e[0-9]{1,3})?",
    ];
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), snippet).prop_map(|(a, s)| Edit::Insert(a, s)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        any::<usize>().prop_map(Edit::DropLine),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    match edit {
        Edit::Delete(at, n) => {
            let at = at % (chars.len() + 1);
            let end = (at + n).min(chars.len());
            chars[..at].iter().chain(&chars[end..]).collect()
        }
        Edit::Insert(at, s) => {
            let at = at % (chars.len() + 1);
            let mut out: String = chars[..at].iter().collect();
            out.push_str(s);
            out.extend(&chars[at..]);
            out
        }
        Edit::DuplicateLine(i) if !lines.is_empty() => {
            let i = i % lines.len();
            lines.insert(i, lines[i]);
            lines.concat()
        }
        Edit::DropLine(i) if !lines.is_empty() => {
            lines.remove(i % lines.len());
            lines.concat()
        }
        _ => text.to_string(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text(text in "\\PC{0,300}") {
        check(&text);
    }

    #[test]
    fn yaml_flavoured_text(text in "[ a-z/_.*:\\-\\[\\]{}'\"#&!|>,0-9\n]{0,300}") {
        check(&text);
    }

    #[test]
    fn mutated_rulebook(edits in proptest::collection::vec(edit(), 1..6), both in any::<bool>()) {
        let mut text = if both { format!("{SEED}{EXTRA}") } else { SEED.to_string() };
        for e in &edits {
            text = apply(&text, e);
        }
        check(&text);
    }
}

#[test]
fn hostile_shapes() {
    check(&"[".repeat(100_000));
    check(&"- ".repeat(10_000));
    check(&format!("{}x", "a:\n ".repeat(5_000)));
    // Exponential aliases are cut off, not expanded.
    let mut bomb = String::from("a: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let e = compile_str("b.yml", &bomb, &Catalog::builtin()).unwrap_err();
    assert!(
        e.to_string()
            .contains("aliases expand the document past 2000000 nodes"),
        "{e}"
    );
    check("");
    check("~");
    check("\u{feff}");
}

#[test]
fn aliases_are_expanded() {
    let text = "/a/*:\n  rules:\n    - a:\n        rule: rules.simple.gt\n        threshold: 1\n        reactions: &log\n          - reactions.log.print:\n              message: hi\n    - b:\n        rule: rules.simple.lt\n        threshold: 1\n        reactions: *log\n";
    let c = compile_str("a.yml", text, &Catalog::builtin()).unwrap();
    assert_eq!(c.summary().reactions, 2);
}

#[test]
fn empty_files_are_empty_rulebooks() {
    for text in ["", "# nothing yet\n", "~\n"] {
        let c = compile_str("e.yml", text, &Catalog::builtin()).unwrap();
        assert_eq!(
            c.summary().to_string(),
            "1 file, 0 tag entries, 0 rules, 0 reactions"
        );
    }
}
