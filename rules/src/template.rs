//! Reaction argument templates: a scalar becomes a list of pieces, literal text and
//! substitutions, which the compiler interns as [`reflex_core::program::Segment`]s.
//!
//! A plain (unquoted) scalar that is exactly `originating_host`, `tag` or `value` is that
//! substitution alone. Any other scalar is text in which `{{ placeholder }}` is replaced; see
//! [`PLACEHOLDERS`]. Spaces inside the braces are optional. A data field may name the text
//! that stands in when the event lacks it: `{{ event.data.NAME | default('TEXT') }}` (single
//! or double quotes); an argument holding one is never refused for rendering empty.

use reflex_core::value::MAX_NAME_LEN;

use crate::diagnostic::Error;

/// Every placeholder a template may hold (`NAME` stands for an event field's name).
pub const PLACEHOLDERS: &[&str] = &[
    "event.source",
    "event.tag",
    "event.time",
    "event.data.NAME",
    "value",
    "register.value",
    "rule.name",
];

/// One piece of a template, before interning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Literal text (never empty).
    Lit(String),
    /// The event's source.
    Source,
    /// The event's tag.
    Tag,
    /// The value the rule read.
    Value,
    /// A data field of the event.
    Data(String),
    /// The rule's register value.
    Register,
    /// The rule's name.
    RuleName,
    /// The event's time in milliseconds.
    Time,
    /// A data field of the event, or the text that stands in when the event lacks it.
    DataOr(String, String),
}

/// Splits a scalar into pieces. `plain` says whether it was written unquoted (only then are
/// the bare words substituted).
pub(crate) fn parse(text: &str, plain: bool) -> Result<Vec<Piece>, Error> {
    if plain {
        match text {
            "originating_host" => return Ok(vec![Piece::Source]),
            "tag" => return Ok(vec![Piece::Tag]),
            "value" => return Ok(vec![Piece::Value]),
            _ => {}
        }
    }
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Lit(rest[..open].to_string()));
        }
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(Error::UnclosedPlaceholder {
                text: text.to_string(),
            });
        };
        pieces.push(placeholder(after[..close].trim())?);
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Lit(rest.to_string()));
    }
    Ok(pieces)
}

/// The substitution a placeholder names, with its `| default('TEXT')` when it has one.
fn placeholder(inside: &str) -> Result<Piece, Error> {
    let Some((name, filter)) = inside.split_once('|') else {
        return substitution(inside);
    };
    let name = name.trim();
    let default = default_text(filter.trim()).ok_or_else(|| Error::BadPlaceholderFilter {
        text: inside.to_string(),
    })?;
    match substitution(name)? {
        Piece::Data(field) => Ok(Piece::DataOr(field, default.to_string())),
        _ => Err(Error::DefaultOnlyForData {
            name: name.to_string(),
        }),
    }
}

/// The quoted text of `default('TEXT')` or `default("TEXT")`.
fn default_text(filter: &str) -> Option<&str> {
    let inner = filter
        .strip_prefix("default")?
        .trim_start()
        .strip_prefix('(')?
        .strip_suffix(')')?
        .trim();
    let quote = inner.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let text = inner.strip_prefix(quote)?.strip_suffix(quote)?;
    (!text.contains(quote)).then_some(text)
}

/// The substitution a placeholder's name stands for.
fn substitution(name: &str) -> Result<Piece, Error> {
    Ok(match name {
        "event.source" => Piece::Source,
        "event.tag" => Piece::Tag,
        "event.time" => Piece::Time,
        "value" => Piece::Value,
        "register.value" => Piece::Register,
        "rule.name" => Piece::RuleName,
        _ => match name.strip_prefix("event.data.") {
            Some(field) if is_field_name(field) => {
                if field.len() > MAX_NAME_LEN {
                    return Err(Error::TooLong {
                        what: "field name",
                        name: field.to_string(),
                        len: field.len(),
                        max: MAX_NAME_LEN,
                    });
                }
                Piece::Data(field.to_string())
            }
            _ => {
                let fixed = PLACEHOLDERS
                    .iter()
                    .copied()
                    .filter(|p| !p.ends_with("NAME"));
                let suggestions = reflex_core::loader::closest(name, fixed)
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                return Err(Error::UnknownPlaceholder {
                    name: name.to_string(),
                    suggestions,
                });
            }
        },
    })
}

/// A field name inside a placeholder: non-empty, no spaces, braces or `|`.
fn is_field_name(s: &str) -> bool {
    !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || matches!(c, '{' | '}' | '|'))
}

#[cfg(test)]
mod tests {
    use super::Piece::*;
    use super::*;

    #[test]
    fn bare_words_only_when_plain() {
        assert_eq!(parse("originating_host", true).unwrap(), vec![Source]);
        assert_eq!(parse("tag", true).unwrap(), vec![Tag]);
        assert_eq!(parse("value", true).unwrap(), vec![Value]);
        assert_eq!(parse("tag", false).unwrap(), vec![Lit("tag".into())]);
    }

    #[test]
    fn placeholders_split_text() {
        assert_eq!(
            parse("host {{event.source}} at {{ event.data.load_avg }}!", false).unwrap(),
            vec![
                Lit("host ".into()),
                Source,
                Lit(" at ".into()),
                Data("load_avg".into()),
                Lit("!".into())
            ]
        );
        assert_eq!(
            parse(
                "{{ value }}{{ register.value }}{{ rule.name }}{{ event.time }}{{event.tag}}",
                true
            )
            .unwrap(),
            vec![Value, Register, RuleName, Time, Tag]
        );
        assert_eq!(parse("", true).unwrap(), vec![]);
        assert_eq!(parse("a }} b", true).unwrap(), vec![Lit("a }} b".into())]);
    }

    #[test]
    fn bad_placeholders() {
        let e = parse("x {{ event.sorce }}", true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown placeholder `{{ event.sorce }}`; did you mean `event.source`?"
        );
        assert_eq!(
            parse("{{ nothing_like_it }}", true)
                .unwrap_err()
                .to_string(),
            "unknown placeholder `{{ nothing_like_it }}`; valid: event.source, event.tag, \
             event.time, event.data.NAME, value, register.value, rule.name"
        );
        assert!(matches!(
            parse("x {{ value", true),
            Err(Error::UnclosedPlaceholder { .. })
        ));
        assert!(matches!(
            parse("{{ event.data. }}", true),
            Err(Error::UnknownPlaceholder { .. })
        ));
        let long = format!("{{{{ event.data.{} }}}}", "x".repeat(MAX_NAME_LEN + 1));
        assert!(matches!(parse(&long, true), Err(Error::TooLong { .. })));
    }

    #[test]
    fn data_fields_take_a_default() {
        assert_eq!(
            parse("x{{ event.data.name | default('all') }}", false).unwrap(),
            vec![Lit("x".into()), DataOr("name".into(), "all".into())]
        );
        assert_eq!(
            parse("{{event.data.name|default(\"\")}}", false).unwrap(),
            vec![DataOr("name".into(), String::new())]
        );
        assert_eq!(
            parse("{{ event.data.n | default( 'a b' ) }}", false).unwrap(),
            vec![DataOr("n".into(), "a b".into())]
        );
        for bad in [
            "{{ event.data.n | default(all) }}",
            "{{ event.data.n | default('a) }}",
            "{{ event.data.n | default('a'b') }}",
            "{{ event.data.n | upper }}",
            "{{ event.data.n | }}",
        ] {
            assert!(
                matches!(parse(bad, false), Err(Error::BadPlaceholderFilter { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            parse("{{ value | default('0') }}", false)
                .unwrap_err()
                .to_string(),
            "`default` applies to `event.data.NAME` only, not to `value`"
        );
        assert!(matches!(
            parse("{{ event.dta.n | default('0') }}", false),
            Err(Error::UnknownPlaceholder { .. })
        ));
    }
}
