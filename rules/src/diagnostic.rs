//! What can be wrong with a rulebook, and where: [`Error`] says what, [`Diagnostic`] adds
//! `file:line:col`, [`Errors`] is every diagnostic of one compilation.

use std::fmt;

/// Everything that can be wrong with a rulebook. Each message says what is wrong and, where
/// it helps, what would be right; [`Diagnostic`] adds where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read.
    #[error("cannot read: {0}")]
    Io(String),
    /// A directory holds no rulebook file.
    #[error("no *.yml or *.yaml file in this directory")]
    NoRulebookFiles,
    /// The YAML parser refused the text.
    #[error("YAML syntax error: {0}")]
    Syntax(String),
    /// A file holds more than one YAML document.
    #[error("a rulebook file holds one YAML document; split the others into their own files")]
    MultipleDocuments,
    /// Maps and lists nest deeper than [`crate::yaml::MAX_DEPTH`].
    #[error("nesting deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// Aliases (`*name`) expand the document past [`crate::yaml::MAX_NODES`] nodes.
    #[error("aliases expand the document past {max} nodes")]
    TooManyNodes {
        /// The limit.
        max: usize,
    },
    /// A map holds the same key twice.
    #[error("duplicate key `{key}` (first at {first})")]
    DuplicateKey {
        /// The key.
        key: String,
        /// Where it was first given, `line:col`.
        first: String,
    },
    /// A key that means nothing where it is.
    #[error("unknown key `{key}` in {context}{}; valid keys: {valid}", maybe(.suggestion))]
    UnknownKey {
        /// The key.
        key: String,
        /// The closest valid key, if one is close.
        suggestion: Option<String>,
        /// What holds it, e.g. "rule `load_avg`".
        context: String,
        /// The keys that are valid there.
        valid: String,
    },
    /// A required key is absent.
    #[error("{context} has no `{key}:`; {hint}")]
    MissingKey {
        /// The key.
        key: &'static str,
        /// What lacks it.
        context: String,
        /// What to add.
        hint: &'static str,
    },
    /// A value of the wrong YAML type.
    #[error("`{what}` must be {expected}, found {found}")]
    WrongType {
        /// The key (or the role of the node).
        what: String,
        /// What it must be.
        expected: &'static str,
        /// What it is.
        found: &'static str,
    },
    /// A value of the right type but out of its range or set.
    #[error("`{what}` {problem}")]
    BadValue {
        /// The key.
        what: String,
        /// What is wrong, e.g. "must be greater than 0".
        problem: String,
    },
    /// A tag glob that no tag can match or that exceeds a capacity.
    #[error("tag glob `{glob}` {problem}")]
    BadGlob {
        /// The glob.
        glob: String,
        /// What is wrong.
        problem: String,
    },
    /// A name longer than a capacity of the core.
    #[error("{what} `{name}` is {len} bytes long; at most {max} fit")]
    TooLong {
        /// What the name is ("field name", "argument name"...).
        what: &'static str,
        /// The name.
        name: String,
        /// Its length in bytes.
        len: usize,
        /// The capacity.
        max: usize,
    },
    /// A count over a capacity of the core.
    #[error("{what}: {count} exceeds the limit of {max}")]
    TooMany {
        /// What is counted.
        what: String,
        /// How many there are.
        count: usize,
        /// The capacity.
        max: usize,
    },
    /// A function key that resolves to nothing.
    #[error("unknown {role} function `{key}`{}", did_you_mean(.suggestions, .valid))]
    UnknownFunction {
        /// `rule`, `register` or `reaction`.
        role: &'static str,
        /// The key as written.
        key: String,
        /// Close matches, closest first.
        suggestions: Vec<String>,
        /// Every valid key, listed when there is no close match and the list is short.
        valid: Vec<String>,
    },
    /// A reaction key that is neither a built-in nor a plugin.
    #[error(
        "unknown reaction `{key}`: no built-in and no plugin `{plugin}` in the plugin directories{}",
        did_you_mean(.suggestions, NONE)
    )]
    UnknownReaction {
        /// The key as written.
        key: String,
        /// Where a plugin for it would live, relative to a plugin directory.
        plugin: String,
        /// Close matches among the catalog's keys.
        suggestions: Vec<String>,
    },
    /// The compiled tables failed the core's own check (a compiler defect, not a rulebook
    /// one).
    #[error("compiled rulebook is inconsistent: {0}")]
    Invalid(String),
    /// A reaction key without the shape `reactions.<module>.<function>`.
    #[error(
        "`{key}` is not a reaction key; reaction keys look like `reactions.<module>.<function>`"
    )]
    NotAReactionKey {
        /// The key.
        key: String,
    },
    /// A list item that must be a map with exactly one key.
    #[error("{what}")]
    NotSingleKey {
        /// What the item must look like.
        what: &'static str,
    },
    /// A threshold that does not fit the rule function.
    #[error("`{func}` {problem}")]
    Threshold {
        /// The rule function's key.
        func: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
    /// A rule name defined twice.
    #[error(
        "rule `{name}` is already defined at {first}; rule names are unique across the rulebook"
    )]
    DuplicateRule {
        /// The name.
        name: String,
        /// Where it was first defined, `file:line:col`.
        first: String,
    },
    /// An unknown chain operator.
    #[error("unknown chain operator `{op}`; valid: AND, OR, AND_NOT, NOT")]
    ChainOp {
        /// The operator as written.
        op: String,
    },
    /// A chain names a rule that does not exist.
    #[error("chain refers to unknown rule `{name}`{}", did_you_mean(.suggestions, NONE))]
    DanglingChain {
        /// The name.
        name: String,
        /// Close matches among the rulebook's rule names.
        suggestions: Vec<String>,
    },
    /// A chain to a rule whose registers are grouped otherwise: the two group keys of one
    /// event never name the same group, so the link can never hold as meant.
    #[error(
        "chain from `{rule}` (group_by: {rule_group}) to `{other}` (group_by: {other_group}) can never line up: \
         a chained rule is read for the same group, so both need the same group_by, or the other `group_by: none`"
    )]
    ChainGroupMismatch {
        /// The rule that owns the chain.
        rule: String,
        /// Its group_by, as written.
        rule_group: String,
        /// The chained rule.
        other: String,
        /// Its group_by, as written.
        other_group: String,
    },
    /// Rules whose chains reach themselves.
    #[error("chain cycle: {}", .cycle.join(" -> "))]
    ChainCycle {
        /// The rules of the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },
    /// A `{{ ... }}` placeholder that names nothing.
    #[error("unknown placeholder `{{{{ {name} }}}}`{}", did_you_mean(.suggestions, crate::template::PLACEHOLDERS))]
    UnknownPlaceholder {
        /// The text between the braces, trimmed.
        name: String,
        /// Close matches.
        suggestions: Vec<String>,
    },
    /// A placeholder's `| ...` is not `default('TEXT')`.
    #[error(
        "`{{{{ {text} }}}}`: after `|` only `default('TEXT')` may follow (quoted, single or \
         double quotes)"
    )]
    BadPlaceholderFilter {
        /// The text between the braces.
        text: String,
    },
    /// `default` on a placeholder other than a data field.
    #[error("`default` applies to `event.data.NAME` only, not to `{name}`")]
    DefaultOnlyForData {
        /// The placeholder's name.
        name: String,
    },
    /// A `{{` without its `}}`.
    #[error("unclosed `{{{{` in template `{text}`")]
    UnclosedPlaceholder {
        /// The template.
        text: String,
    },
    /// A built-in reaction lacks a required argument.
    #[error("`{reaction}` needs the argument `{arg}`")]
    MissingArg {
        /// The reaction key.
        reaction: &'static str,
        /// The argument.
        arg: &'static str,
    },
    /// A built-in reaction given an argument it does not take.
    #[error("`{reaction}` takes no argument `{arg}`{}", did_you_mean(.suggestions, .valid))]
    UnknownArg {
        /// The reaction key.
        reaction: &'static str,
        /// The argument as written.
        arg: String,
        /// Close matches.
        suggestions: Vec<String>,
        /// Every argument it takes.
        valid: Vec<String>,
    },
}

/// ` (did you mean `x`?)`, or nothing.
fn maybe(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// No list of valid values.
const NONE: &[&str] = &[];

/// `; did you mean `a`, `b`?`, or `; valid: a, b` when nothing is close and `valid` is given.
fn did_you_mean<S: AsRef<str>>(suggestions: &[String], valid: &[S]) -> String {
    let list: Vec<String> = suggestions.iter().map(|s| format!("`{s}`")).collect();
    if let Some((last, rest)) = list.split_last() {
        if rest.is_empty() {
            format!("; did you mean {last}?")
        } else {
            format!("; did you mean {} or {last}?", rest.join(", "))
        }
    } else if !valid.is_empty() {
        let valid: Vec<&str> = valid.iter().map(AsRef::as_ref).collect();
        format!("; valid: {}", valid.join(", "))
    } else {
        String::new()
    }
}

/// One error at one place: displayed as `file:line:col: message`. Lines and columns count
/// from 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// The file, as it was named to the compiler.
    pub file: String,
    /// Line, from 1.
    pub line: u32,
    /// Column in characters, from 1.
    pub col: u32,
    /// What is wrong.
    pub error: Error,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.error
        )
    }
}

/// Every diagnostic of a compilation, in file order, then line, then column. Displayed one
/// per line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", display_lines(.0))]
pub struct Errors(pub Vec<Diagnostic>);

fn display_lines(all: &[Diagnostic]) -> String {
    let lines: Vec<String> = all.iter().map(Diagnostic::to_string).collect();
    lines.join("\n")
}

impl Errors {
    /// The diagnostics.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (a compilation never fails with none).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a Errors {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_file_line_col_message() {
        let d = Diagnostic {
            file: "a.yml".into(),
            line: 3,
            col: 7,
            error: Error::ChainCycle {
                cycle: vec!["a".into(), "b".into(), "a".into()],
            },
        };
        assert_eq!(d.to_string(), "a.yml:3:7: chain cycle: a -> b -> a");
        let e = Errors(vec![d.clone(), d]);
        assert_eq!(e.to_string().lines().count(), 2);
    }

    #[test]
    fn suggestions_or_valid_list() {
        assert_eq!(did_you_mean(&["x".into()], &["y"]), "; did you mean `x`?");
        let three = ["a".into(), "b".into(), "c".into()];
        assert_eq!(
            did_you_mean(&three, NONE),
            "; did you mean `a`, `b` or `c`?"
        );
        assert_eq!(did_you_mean(&[], &["y", "z"]), "; valid: y, z");
        assert_eq!(did_you_mean(&[], NONE), "");
    }
}
