//! Golden tests of the compiler's diagnostics: exact message, line and column.

use std::path::PathBuf;

use reflex_rules::{Catalog, Error, compile_path, compile_str};

fn catalog() -> Catalog {
    Catalog::with_plugins(&[PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/plugins"
    ))])
}

/// Every diagnostic of compiling `text` as `t.yml`, one string each.
fn errors(text: &str) -> Vec<String> {
    match compile_str("t.yml", text, &catalog()) {
        Ok(c) => panic!("compiled: {}", c.summary()),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

/// A rulebook with one rule `r` on `/t/*` whose body is `body` (indented by 8).
fn rule(body: &str) -> String {
    let mut s = String::from("/t/*:\n  rules:\n    - r:\n");
    for line in body.lines() {
        s.push_str("        ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

#[test]
fn unknown_rule_key() {
    assert_eq!(
        errors(&rule("rule: rules.simple.gt\nthreshold: 1\ntreshold: 2")),
        [
            "t.yml:6:9: unknown key `treshold` in rule `r` (did you mean `threshold`?); valid \
             keys: rule, register, threshold, period, field, group_by, fire, cooldown, reactions, \
             chain"
        ]
    );
}

#[test]
fn unknown_top_and_entry_keys() {
    assert_eq!(
        errors("/t/*:\n  rule:\n    - r: {}\n"),
        [
            "t.yml:1:1: tag entry `/t/*` has no `rules:`; add `rules:` with a list of rules",
            "t.yml:2:3: unknown key `rule` in tag entry `/t/*` (did you mean `rules`?); valid \
             keys: rules",
        ]
    );
}

#[test]
fn wrong_type_for_threshold() {
    assert_eq!(
        errors(&rule("rule: rules.simple.gt\nthreshold: '20'")),
        ["t.yml:5:20: `threshold` must be a number, found a string"]
    );
    assert_eq!(
        errors(&rule("rule: rules.simple.gt\nthreshold: [1, 2]")),
        ["t.yml:5:20: `rules.simple.gt` takes one number, not a list"]
    );
    assert_eq!(
        errors(&rule("rule: rules.simple.between\nthreshold: 3")),
        ["t.yml:5:20: `rules.simple.between` needs `threshold: [lo, hi]`, a list of two numbers"]
    );
    assert_eq!(
        errors(&rule("rule: rules.simple.outside\nthreshold: [9, 1]")),
        ["t.yml:5:20: `threshold` low bound 9 is above high bound 1"]
    );
    assert_eq!(
        errors(&rule("rule: rules.simple.changed\nthreshold: 3")),
        ["t.yml:5:20: `rules.simple.changed` takes no threshold; remove `threshold:`"]
    );
    assert_eq!(
        errors(&rule("rule: rules.simple.lt")),
        ["t.yml:3:7: `rules.simple.lt` needs `threshold:`, a number"]
    );
}

#[test]
fn missing_rule_function() {
    assert_eq!(
        errors(&rule("threshold: 1")),
        ["t.yml:3:7: rule `r` has no `rule:`; add e.g. `rule: rules.simple.gt`"]
    );
}

#[test]
fn unknown_function_did_you_mean() {
    assert_eq!(
        errors(&rule("rule: rules.simple.gte\nthreshold: 1")),
        [
            "t.yml:4:15: unknown rule function `rules.simple.gte`; did you mean `rules.simple.gt`, \
             `rules.simple.ge` or `rules.simple.lt`?"
        ]
    );
    assert_eq!(
        errors(&rule(
            "rule: rules.simple.gt\nthreshold: 1\nregister: register.aggregate.mean"
        )),
        [
            "t.yml:6:19: unknown register function `register.aggregate.mean`; did you mean \
             `register.aggregate.min`, `register.aggregate.max` or `register.aggregate.avg`?"
        ]
    );
    assert_eq!(
        errors(&rule("rule: nothing.like.it.whatsoever\nthreshold: 1")),
        [
            "t.yml:4:15: unknown rule function `nothing.like.it.whatsoever`; valid: \
             rules.simple.gt, rules.simple.ge, rules.simple.lt, rules.simple.le, rules.simple.eq, \
             rules.simple.ne, rules.simple.between, rules.simple.outside, rules.simple.changed"
        ]
    );
}

#[test]
fn unknown_reaction_did_you_mean() {
    let text = rule(
        "rule: rules.simple.gt\nthreshold: 1\nreactions:\n  - reactions.cloud.scale_upp:\n      machine_id: originating_host\n  - reactions.loggg.print:\n  - scale_up:",
    );
    assert_eq!(
        errors(&text),
        [
            "t.yml:7:13: unknown reaction `reactions.cloud.scale_upp`: no built-in and no plugin \
             `reactions/cloud/scale_upp` in the plugin directories; did you mean \
             `reactions.cloud.scale_up`?",
            "t.yml:9:13: unknown reaction `reactions.loggg.print`: no built-in and no plugin \
             `reactions/loggg/print` in the plugin directories; did you mean `reactions.log.print`?",
            "t.yml:10:13: `scale_up` is not a reaction key; reaction keys look like \
             `reactions.<module>.<function>`",
        ]
    );
    // Without the plugin directory, the seed's plugin reaction is unknown.
    let e = compile_str("t.yml", &text, &Catalog::builtin()).unwrap_err();
    assert!(e.0[0].to_string().ends_with("in the plugin directories"));
}

#[test]
fn dangling_chain() {
    let text = "/t/*:\n  rules:\n    - load_avg:\n        rule: rules.simple.gt\n        threshold: 1\n        chain:\n          - OR: io_agv\n    - io_avg:\n        rule: rules.simple.gt\n        threshold: 1\n";
    assert_eq!(
        errors(text),
        ["t.yml:7:17: chain refers to unknown rule `io_agv`; did you mean `io_avg`?"]
    );
}

#[test]
fn chain_cycle() {
    let text = "/t/*:\n  rules:\n    - a:\n        rule: rules.simple.gt\n        threshold: 1\n        chain:\n          - AND: b\n    - b:\n        rule: rules.simple.gt\n        threshold: 1\n        chain:\n          - NOT: c\n    - c:\n        rule: rules.simple.gt\n        threshold: 1\n        chain:\n          - OR: a\n    - d:\n        rule: rules.simple.gt\n        threshold: 1\n        chain:\n          - OR: d\n";
    assert_eq!(
        errors(text),
        [
            "t.yml:17:17: chain cycle: a -> b -> c -> a",
            "t.yml:22:17: chain cycle: d -> d",
        ]
    );
}

#[test]
fn chain_across_group_keys_that_never_line_up() {
    let text = "/t/*:\n  rules:\n    - a:\n        rule: rules.simple.gt\n        threshold: 1\n        chain:\n          - OR: b\n          - AND: c\n          - AND: d\n    - b:\n        rule: rules.simple.gt\n        threshold: 1\n        group_by: tag\n    - c:\n        rule: rules.simple.gt\n        threshold: 1\n        group_by: none\n    - d:\n        rule: rules.simple.gt\n        threshold: 1\n        group_by: source\n";
    // `b` groups by tag: refused at its link. `c` (none) and `d` (source, like `a`) line up.
    assert_eq!(
        errors(text),
        [
            "t.yml:7:17: chain from `a` (group_by: source) to `b` (group_by: tag) can never line \
             up: a chained rule is read for the same group, so both need the same group_by, or \
             the other `group_by: none`"
        ]
    );
}

#[test]
fn chain_too_long() {
    let mut text = String::from("/t/*:\n  rules:\n");
    for i in 0..18 {
        text.push_str(&format!(
            "    - r{i}:\n        rule: rules.simple.gt\n        threshold: 1\n"
        ));
        if i < 17 {
            text.push_str(&format!("        chain:\n          - OR: r{}\n", i + 1));
        }
    }
    let e = errors(&text);
    assert_eq!(
        e,
        ["t.yml:3:7: chain links reached from rule `r0`: 17 exceeds the limit of 16"]
    );
}

#[test]
fn bad_chain_items() {
    assert_eq!(
        errors(&rule(
            "rule: rules.simple.gt\nthreshold: 1\nchain:\n  - XOR: r\n  - r"
        )),
        [
            "t.yml:7:13: unknown chain operator `XOR`; valid: AND, OR, AND_NOT, NOT",
            "t.yml:8:13: each item of `chain:` is a map with one key, the operator: `- OR: \
             rule_name` (AND, OR, AND_NOT, NOT)",
        ]
    );
}

#[test]
fn duplicate_rule_name() {
    let text = "/a/*:\n  rules:\n    - r:\n        rule: rules.simple.gt\n        threshold: 1\n/b/*:\n  rules:\n    - r:\n        rule: rules.simple.lt\n        threshold: 1\n";
    assert_eq!(
        errors(text),
        [
            "t.yml:8:7: rule `r` is already defined at t.yml:3:7; rule names are unique across \
             the rulebook"
        ]
    );
}

#[test]
fn duplicate_rule_name_across_files() {
    let dir = std::env::temp_dir().join(format!("reflex-rules-dup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let body =
        "/a/*:\n  rules:\n    - same:\n        rule: rules.simple.gt\n        threshold: 1\n";
    std::fs::write(dir.join("1.yml"), body).unwrap();
    std::fs::write(dir.join("2.yaml"), body).unwrap();
    std::fs::write(dir.join("ignored.txt"), "not yaml: [").unwrap();
    let e = compile_path(&dir, &catalog()).unwrap_err();
    let first = dir.join("1.yml").display().to_string();
    let second = dir.join("2.yaml").display().to_string();
    assert_eq!(
        e.to_string(),
        format!(
            "{second}:3:7: rule `same` is already defined at {first}:3:7; rule names are \
             unique across the rulebook"
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn duplicate_key() {
    assert_eq!(
        errors(&rule("rule: rules.simple.gt\nthreshold: 1\nthreshold: 2")),
        ["t.yml:6:9: duplicate key `threshold` (first at 5:9)"]
    );
}

#[test]
fn capacity_field_name_too_long() {
    let long = "f".repeat(33);
    assert_eq!(
        errors(&rule(&format!(
            "rule: rules.simple.gt\nthreshold: 1\nfield: {long}"
        ))),
        [format!(
            "t.yml:6:16: field name `{long}` is 33 bytes long; at most 32 fit"
        )]
    );
    // The default field is the rule's name, which must fit too.
    let text = format!(
        "/t/*:\n  rules:\n    - {long}:\n        rule: rules.simple.gt\n        threshold: 1\n"
    );
    assert_eq!(
        errors(&text),
        [format!(
            "t.yml:3:7: field name (the rule's name, by default) `{long}` is 33 bytes long; at \
             most 32 fit"
        )]
    );
}

#[test]
fn capacity_too_many_args() {
    let argv: Vec<String> = (0..17).map(|i| i.to_string()).collect();
    let text = rule(&format!(
        "rule: rules.simple.gt\nthreshold: 1\nreactions:\n  - reactions.exec.run:\n      argv: [{}]",
        argv.join(", ")
    ));
    assert_eq!(
        errors(&text),
        [
            "t.yml:7:13: arguments of `reactions.exec.run` (list items count one each): 17 \
             exceeds the limit of 16"
        ]
    );
}

#[test]
fn capacity_remote_argument_text() {
    let long = "x".repeat(65);
    let text = rule(&format!(
        "rule: rules.simple.gt\nthreshold: 1\nreactions:\n  - reactions.actor.run:\n      argv: [echo, {long}]\n  - reactions.exec.run:\n      argv: [echo, {long}]"
    ));
    assert_eq!(
        errors(&text),
        [
            "t.yml:8:28: `argv` holds 65 bytes of text; values sent to Actors or put in events \
             hold at most 64"
        ]
    );
}

#[test]
fn bad_glob() {
    assert_eq!(
        errors("client/*:\n  rules: []\n"),
        ["t.yml:1:1: tag glob `client/*` must start with `/` (every tag does) or `*`"]
    );
    let long = format!("/{}", "a".repeat(96));
    assert_eq!(
        errors(&format!("{long}:\n  rules: []\n")),
        [format!(
            "t.yml:1:1: tag glob `{long}` is 97 bytes long; tags hold at most 96"
        )]
    );
}

#[test]
fn bad_template() {
    let text = rule(
        "rule: rules.simple.gt\nthreshold: 1\nreactions:\n  - reactions.log.print:\n      message: 'load {{ event.sorce }}'\n  - reactions.log.print:\n      message: 'load {{ value'",
    );
    assert_eq!(
        errors(&text),
        [
            "t.yml:8:24: unknown placeholder `{{ event.sorce }}`; did you mean `event.source`?",
            "t.yml:10:24: unclosed `{{` in template `load {{ value`",
        ]
    );
}

#[test]
fn missing_required_reaction_arg() {
    let text = rule(
        "rule: rules.simple.gt\nthreshold: 1\nreactions:\n  - reactions.eventer.fire_event:\n      data: {x: 1}\n  - reactions.actor.run:\n  - reactions.http.post:\n      url: http://example.invalid/hook\n      json: text",
    );
    assert_eq!(
        errors(&text),
        [
            "t.yml:7:13: `reactions.eventer.fire_event` needs the argument `tag`",
            "t.yml:9:13: `reactions.actor.run` needs the argument `argv`",
            "t.yml:12:21: `json` must be a map, found a string",
        ]
    );
}

#[test]
fn bad_builtin_args() {
    let text = rule(
        "rule: rules.simple.gt\nthreshold: 1\nreactions:\n  - reactions.log.print:\n      level: loud\n      mesage: hi\n  - reactions.exec.run:\n      argv: []\n      timeout: 0\n  - reactions.eventer.fire_event:\n      tag: no/slash",
    );
    assert_eq!(
        errors(&text),
        [
            "t.yml:8:22: `level` must be one of trace, debug, info, warn, error, found `loud`",
            "t.yml:9:15: `reactions.log.print` takes no argument `mesage`; did you mean `message`?",
            "t.yml:11:21: `argv` must not be empty",
            "t.yml:12:24: `timeout` must be at least 0.001 seconds",
            "t.yml:14:20: `tag` is not a valid tag: tag must start with '/' and hold no control \
             characters",
        ]
    );
}

#[test]
fn bad_rule_settings() {
    let text = rule(
        "rule: rules.simple.gt\nthreshold: 1\nperiod: 0\ncooldown: -1\nfire: sometimes\ngroup_by: ''\nreactions: {}",
    );
    assert_eq!(
        errors(&text),
        [
            "t.yml:6:17: `period` must be at least 0.001 seconds",
            "t.yml:7:19: `cooldown` must be 0 or more seconds",
            "t.yml:8:15: `fire` must be `edge` or `always`, found `sometimes`",
            "t.yml:9:19: `group_by` must not be empty",
            "t.yml:10:20: `reactions` must be a list of `- reactions.<module>.<function>: {...}` \
             items, found a map",
        ]
    );
    assert_eq!(
        errors(&rule(
            "rule: rules.simple.gt\nthreshold: 1\nperiod: 5000000"
        )),
        ["t.yml:6:17: `period` must be at most 4294967 seconds"]
    );
}

#[test]
fn yaml_syntax_error() {
    assert_eq!(
        errors("/t/*:\n  rules: [\n    - r: {}\n"),
        ["t.yml:3:5: YAML syntax error: \"-\" is only valid inside a block"]
    );
    assert_eq!(
        errors("/t/*:\n\trules: []\n"),
        ["t.yml:2:2: YAML syntax error: tabs disallowed within this context (block indentation)"]
    );
}

#[test]
fn structural_errors() {
    assert_eq!(
        errors("- a\n- b\n"),
        ["t.yml:1:1: `rulebook` must be a map of tag globs to `rules:`, found a list"]
    );
    assert_eq!(
        errors("/a: {rules: []}\n---\n/b: {rules: []}\n"),
        [
            "t.yml:2:1: a rulebook file holds one YAML document; split the others into their own files"
        ]
    );
    assert_eq!(
        errors("/t/*:\n  rules:\n    - r\n    - a: {}\n      b: {}\n"),
        [
            "t.yml:3:7: each item of `rules:` is a map with one key, the rule's name: `- \
             rule_name: {rule: ..., threshold: ...}`",
            "t.yml:4:7: each item of `rules:` is a map with one key, the rule's name: `- \
             rule_name: {rule: ..., threshold: ...}`",
        ]
    );
    let deep = format!("/t/*:\n  rules: {}{}\n", "[".repeat(70), "]".repeat(70));
    assert_eq!(errors(&deep), ["t.yml:2:72: nesting deeper than 64 levels"]);
}

#[test]
fn every_error_at_once() {
    let text = "/t/*:\n  rules:\n    - a:\n        rule: rules.simple.gtt\n        threshold: x\n    - b:\n        rule: rules.simple.gt\n        threshold: 1\n        colour: red\n        chain:\n          - OR: zz\n";
    let e = compile_str("t.yml", text, &catalog()).unwrap_err();
    assert_eq!(e.len(), 3);
    assert!(matches!(e.0[0].error, Error::UnknownFunction { .. }));
    assert!(matches!(e.0[1].error, Error::UnknownKey { .. }));
    assert!(matches!(e.0[2].error, Error::DanglingChain { .. }));
}

#[test]
fn io_errors() {
    let missing = PathBuf::from("/nonexistent/rules.yml");
    let e = compile_path(&missing, &catalog()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/rules.yml:1:1: cannot read: ")
    );
    let dir = std::env::temp_dir().join(format!("reflex-rules-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let e = compile_path(&dir, &catalog()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:1:1: no *.yml or *.yaml file in this directory",
            dir.display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
