//! Host-side rendering of reaction arguments: text of any length and typed JSON values, for
//! reactions the Manager performs itself. (Actions for Actors are rendered by the core's
//! bounded [`Program::render_value`] instead, since they must fit the wire format.)
//!
//! A template that is a single substitution keeps the substituted value's type (a float
//! register stays a number, a string field a string); any other template is rendered as text
//! and then read like the command line reads values: integer, float, `true`/`false`, else a
//! string.

use reflex_core::host::plugin::{PluginInput, float_json, value_json};
use reflex_core::program::{Context, Program, Reaction, Segment, Span};
use serde_json::Value as Json;

/// Renders a template as text, without a length limit.
pub fn text(program: &Program<'_>, template: Span, ctx: &Context<'_>) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = program.render(template, ctx, &mut out);
    out
}

/// Renders a template as a typed JSON value (see the module documentation). An empty
/// template (a YAML null) is JSON `null`.
pub fn typed(program: &Program<'_>, template: Span, ctx: &Context<'_>) -> Json {
    match program.segments_of(template) {
        [] => Json::Null,
        [Segment::Value] => ctx.value.map(value_json).unwrap_or(Json::Null),
        [Segment::Data(name)] => ctx
            .event
            .get(program.str(*name))
            .map(value_json)
            .unwrap_or(Json::Null),
        [Segment::DataOr(name, default)] => match ctx.event.get(program.str(*name)) {
            Some(v) => value_json(v),
            None => parse_text(program.str(*default)),
        },
        [Segment::Register] => float_json(ctx.register),
        [Segment::Time] => Json::from(ctx.event.time),
        [Segment::Source | Segment::Tag | Segment::RuleName] => {
            Json::String(text(program, template, ctx))
        }
        _ => parse_text(&text(program, template, ctx)),
    }
}

/// Reads text the way the command line reads values: integer, finite float, `true`/`false`,
/// else a string.
pub fn parse_text(text: &str) -> Json {
    if let Ok(i) = text.parse::<i64>() {
        return Json::from(i);
    }
    if let Ok(f) = text.parse::<f64>() {
        if f.is_finite() {
            return float_json(f);
        }
    }
    match text {
        "true" => Json::Bool(true),
        "false" => Json::Bool(false),
        _ => Json::String(text.to_string()),
    }
}

/// One rendered argument.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgValue {
    /// Dotted name (`data.host` for `data: {host: ...}`).
    pub name: String,
    /// One item of a list named `name`.
    pub item: bool,
    /// The rendered text.
    pub text: String,
    /// The typed value.
    pub value: Json,
}

/// A reaction's rendered arguments, in rulebook order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args {
    /// Every argument; list items one by one.
    pub items: Vec<ArgValue>,
}

impl Args {
    /// Renders every argument of `reaction`.
    pub fn render(program: &Program<'_>, reaction: &Reaction, ctx: &Context<'_>) -> Args {
        let items = program
            .args_of(reaction)
            .iter()
            .map(|a| ArgValue {
                name: program.str(a.name).to_string(),
                item: a.item,
                text: text(program, a.value, ctx),
                value: typed(program, a.value, ctx),
            })
            .collect();
        Args { items }
    }

    /// The text of the first argument named `name`.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.text.as_str())
    }

    /// The texts of every argument named `name`, in order (the items of a list).
    pub fn list(&self, name: &str) -> Vec<&str> {
        self.items
            .iter()
            .filter(|a| a.name == name)
            .map(|a| a.text.as_str())
            .collect()
    }

    /// The argument `name` as a positive number of seconds, if given and valid.
    pub fn seconds(&self, name: &str) -> Option<std::time::Duration> {
        let s: f64 = self.text(name)?.trim().parse().ok()?;
        (s.is_finite() && s > 0.0).then(|| std::time::Duration::from_secs_f64(s.min(1e9)))
    }

    /// The arguments under `prefix.` (the map argument `prefix`), with the prefix removed.
    pub fn under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a ArgValue)> {
        self.items.iter().filter_map(move |a| {
            let rest = a.name.strip_prefix(prefix)?.strip_prefix('.')?;
            Some((rest, a))
        })
    }

    /// The map argument `prefix` as a JSON object, or `None` when no argument is under it.
    pub fn map_json(&self, prefix: &str) -> Option<Json> {
        let mut under = self.under(prefix).peekable();
        under.peek()?;
        Some(nest(under))
    }

    /// Every argument as one JSON object: dotted names nest, list items make arrays.
    #[cfg(test)]
    pub fn to_json(&self) -> Json {
        nest(self.items.iter().map(|a| (a.name.as_str(), a)))
    }
}

/// Arguments as one JSON object, nested as a plugin reads its `args`.
fn nest<'a>(items: impl Iterator<Item = (&'a str, &'a ArgValue)>) -> Json {
    let mut input = PluginInput::new();
    for (name, a) in items {
        input.arg(name, a.item, a.value.clone());
    }
    Json::Object(input.args().clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reflex_core::Event;
    use reflex_core::host::plugin::event_json;
    use reflex_core::host::plugin::json_value;
    use reflex_core::value::Value;

    #[test]
    fn parse_text_example() {
        assert_eq!(parse_text("42"), serde_json::json!(42));
        assert_eq!(parse_text("0.5"), serde_json::json!(0.5));
        assert_eq!(parse_text("true"), serde_json::json!(true));
        assert_eq!(parse_text("web-1"), serde_json::json!("web-1"));
    }

    #[test]
    fn to_json_example() {
        use serde_json::json;
        let arg = |name: &str, item, value| ArgValue {
            name: name.into(),
            item,
            text: String::new(),
            value,
        };
        let args = Args {
            items: vec![
                arg("machine", false, json!("web-1")),
                arg("data.load", false, json!(3.5)),
                arg("argv", true, json!("a")),
                arg("argv", true, json!("b")),
            ],
        };
        assert_eq!(
            args.to_json(),
            json!({"machine": "web-1", "data": {"load": 3.5}, "argv": ["a", "b"]})
        );
    }
    use reflex_core::program::{Arg, Rule, StrRef};
    use serde_json::json;

    struct Fixture {
        strings: String,
        segments: Vec<Segment>,
        args: Vec<Arg>,
    }

    impl Fixture {
        fn s(&mut self, t: &str) -> StrRef {
            let r = StrRef {
                start: self.strings.len() as u32,
                len: t.len() as u32,
            };
            self.strings.push_str(t);
            r
        }

        fn arg(&mut self, name: &str, item: bool, segs: Vec<Segment>) {
            let name = self.s(name);
            let start = self.segments.len() as u32;
            self.segments.extend(segs);
            let len = self.segments.len() as u32 - start;
            self.args.push(Arg {
                name,
                item,
                value: Span { start, len },
            });
        }
    }

    #[test]
    fn single_substitutions_keep_their_type_and_text_is_unbounded() {
        let mut f = Fixture {
            strings: String::new(),
            segments: vec![],
            args: vec![],
        };
        let load = f.s("load_avg");
        let long = "x".repeat(500);
        let lit = f.s(&long);
        let five = f.s("5");
        let dash = f.s("-");
        f.arg("reg", false, vec![Segment::Register]);
        f.arg("v", false, vec![Segment::Data(load)]);
        f.arg("long", false, vec![Segment::Lit(lit), Segment::Source]);
        f.arg("n", false, vec![Segment::Lit(five)]);
        f.arg("host", false, vec![Segment::Source]);
        f.arg("argv", true, vec![Segment::Lit(five)]);
        f.arg(
            "argv",
            true,
            vec![Segment::Source, Segment::Lit(dash), Segment::Value],
        );
        f.arg("missing", false, vec![]);
        let rule_name = f.s("load_avg");
        let rules = [Rule {
            name: rule_name,
            field: rule_name,
            func: reflex_core::rule::RuleFn::Gt,
            lo: 0.0,
            hi: 0.0,
            register: reflex_core::register::RegisterFn::Avg,
            period_ms: 1000,
            group_by: reflex_core::program::GroupBy::Source,
            fire: reflex_core::program::Fire::Edge,
            cooldown_ms: 0,
            chain: Span::default(),
            dependents: Span::default(),
            reactions: Span::default(),
        }];
        let reactions = [Reaction {
            key: StrRef::default(),
            func: 0,
            remote: false,
            target: Span::default(),
            args: Span {
                start: 0,
                len: f.args.len() as u32,
            },
        }];
        let p = Program {
            strings: &f.strings,
            entries: &[],
            index: &[],
            prefix_lens: [0; 2],
            prefix_table: &[],
            entry_rules: &[],
            rules: &rules,
            chain: &[],
            dependents: &[],
            reactions: &reactions,
            args: &f.args,
            segments: &f.segments,
        };
        let mut e = Event::new("/client/load/web-1", "web-1").unwrap();
        e.push("load_avg", Value::Float(31.5)).unwrap();
        let v = Value::Float(31.5);
        let ctx = Context {
            event: &e,
            rule: 0,
            value: Some(&v),
            register: 27.25,
        };
        let args = Args::render(&p, &reactions[0], &ctx);
        assert_eq!(
            args.to_json(),
            json!({
                "reg": 27.25, "v": 31.5, "long": format!("{long}web-1"), "n": 5,
                "host": "web-1", "argv": [5, "web-1-31.5"], "missing": null,
            })
        );
        assert_eq!(args.list("argv"), ["5", "web-1-31.5"]);
        assert_eq!(args.text("host"), Some("web-1"));
        assert_eq!(args.seconds("n"), Some(std::time::Duration::from_secs(5)));
        assert_eq!(args.seconds("host"), None);
        assert_eq!(args.map_json("nothing"), None);
    }

    #[test]
    fn maps_nest_and_values_convert() {
        let arg = |name: &str, item, value| ArgValue {
            name: name.into(),
            item,
            text: String::new(),
            value,
        };
        let args = Args {
            items: vec![
                arg("data.a.b", false, json!(1)),
                arg("data.a.c", true, json!("x")),
                arg("data.a.c", true, json!("y")),
                arg("url", false, json!("http://h")),
            ],
        };
        assert_eq!(
            args.map_json("data"),
            Some(json!({"a": {"b": 1, "c": ["x", "y"]}}))
        );
        assert_eq!(args.under("data").count(), 3);
        assert_eq!(json_value(&json!(3)), Ok(Value::Int(3)));
        assert_eq!(json_value(&json!(0.5)), Ok(Value::Float(0.5)));
        assert!(json_value(&json!("x".repeat(100))).is_err());
        assert!(json_value(&json!([1])).is_err());
        let e = Event::new("/t", "h").unwrap();
        assert_eq!(event_json(&e)["tag"], json!("/t"));
    }
}
