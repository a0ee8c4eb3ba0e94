//! The allow-list: which actions an Actor performs. Nothing is allowed unless listed.
//!
//! An Actor executes what the bus tells it, which is remote execution, so the allow-list is
//! written as narrowly as the operator means it:
//!
//! * `run`: argv patterns. An action's argv is allowed when some pattern has the same length,
//!   the same program (`argv[0]`, compared exactly), and every later element matches the
//!   pattern's element as a glob ([`reflex_core::tag::glob_match`]). Two further rules keep a
//!   templated value from changing a command's meaning: a value starting with `-` matches only
//!   a pattern element that itself starts with `-` (a value never becomes an extra flag), and a
//!   value holding a `..` path component matches only a pattern element equal to it (a
//!   wildcard never climbs out of a directory).
//! * `fire_event`: tag globs the Actor may fire events under.
//! * `plugins`: names of the plugins (`reactions.actor.<name>`) it may run.
//!
//! ```
//! use reflex_agent::allow::{AllowList, ArgvPattern};
//! let allow = AllowList {
//!     run: vec![ArgvPattern::new(["/usr/bin/touch", "/tmp/reflex-*"]).unwrap()],
//!     ..AllowList::default()
//! };
//! assert!(allow.check_run(&["/usr/bin/touch", "/tmp/reflex-a"]).is_ok());
//! assert!(allow.check_run(&["/usr/bin/touch", "-d", "/tmp/reflex-a"]).is_err());
//! assert!(allow.check_run(&["/usr/bin/touch", "/tmp/reflex-/../../etc/passwd"]).is_err());
//! assert!(allow.check_run(&["touch", "/tmp/reflex-a"]).is_err());
//! ```

use std::fmt;

use reflex_core::tag::glob_match;
use serde::Deserialize;

/// The allow-list of an Actor: the `allow` section of `agent.yml`. The default allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AllowList {
    /// Argv patterns for `reactions.actor.run`.
    pub run: Vec<ArgvPattern>,
    /// Tag globs for `reactions.actor.fire_event`.
    pub fire_event: Vec<TagGlob>,
    /// Plugin names: `backup` allows `reactions.actor.backup`.
    pub plugins: Vec<PluginName>,
}

/// One `allow.run` entry: a program and a glob for each of its arguments.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct ArgvPattern(Vec<String>);

/// One `allow.fire_event` entry: a tag glob such as `/client/**` or `/ops/restart/*`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub struct TagGlob(String);

/// One `allow.plugins` entry: a plugin's name, one path segment of letters, digits, `_` and
/// `-`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub struct PluginName(String);

/// Why an allow-list entry is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// An `allow.run` entry without a program.
    #[error("an allow.run entry needs at least the program, as in [\"df\", \"-h\"]")]
    NoProgram,
    /// An `allow.run` entry whose program is empty.
    #[error("an allow.run entry's program is empty")]
    EmptyProgram,
    /// An `allow.fire_event` entry that is not a tag glob.
    #[error(
        "allow.fire_event entry {0:?} must be a tag glob starting with '/', such as \"/ops/*\""
    )]
    NotATagGlob(String),
    /// An `allow.plugins` entry that is not a plugin name.
    #[error(
        "allow.plugins entry {0:?} must be a plugin name (letters, digits, '_', '-'), such as \
         \"backup\" for reactions.actor.backup"
    )]
    NotAPluginName(String),
}

/// Why an argv does not match one `allow.run` pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum Mismatch {
    /// Another number of elements.
    #[error("has {got} elements, the pattern {want}")]
    Length { got: usize, want: usize },
    /// Another program.
    #[error("another program")]
    Program,
    /// An argument that does not match its glob.
    #[error("argument {index} {why}")]
    Argument { index: usize, why: &'static str },
}

/// Why an action was not allowed; the text goes back to the Manager in the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ArgvPattern {
    /// A pattern from its elements: the program, then one glob per argument.
    ///
    /// Errors: an empty pattern or an empty program.
    pub fn new<S: AsRef<str>>(
        elements: impl IntoIterator<Item = S>,
    ) -> Result<ArgvPattern, EntryError> {
        ArgvPattern::try_from(
            elements
                .into_iter()
                .map(|s| s.as_ref().to_owned())
                .collect::<Vec<_>>(),
        )
    }

    /// The pattern's elements.
    pub fn elements(&self) -> &[String] {
        &self.0
    }

    /// Checks `argv` against this pattern; `Err` says which element does not match and why.
    fn check<S: AsRef<str>>(&self, argv: &[S]) -> Result<(), Mismatch> {
        if argv.len() != self.0.len() {
            return Err(Mismatch::Length {
                got: argv.len(),
                want: self.0.len(),
            });
        }
        if argv[0].as_ref() != self.0[0] {
            return Err(Mismatch::Program);
        }
        for (index, (value, pattern)) in argv.iter().zip(&self.0).enumerate().skip(1) {
            let value = value.as_ref();
            if let Err(why) = element_matches(pattern, value) {
                return Err(Mismatch::Argument { index, why });
            }
        }
        Ok(())
    }
}

impl TryFrom<Vec<String>> for ArgvPattern {
    type Error = EntryError;

    fn try_from(elements: Vec<String>) -> Result<ArgvPattern, EntryError> {
        match elements.first() {
            None => Err(EntryError::NoProgram),
            Some(p) if p.is_empty() => Err(EntryError::EmptyProgram),
            Some(_) => Ok(ArgvPattern(elements)),
        }
    }
}

impl TagGlob {
    /// The glob.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TagGlob {
    type Error = EntryError;

    fn try_from(glob: String) -> Result<TagGlob, EntryError> {
        if !glob.starts_with('/') {
            return Err(EntryError::NotATagGlob(glob));
        }
        Ok(TagGlob(glob))
    }
}

impl PluginName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PluginName {
    type Error = EntryError;

    fn try_from(name: String) -> Result<PluginName, EntryError> {
        if is_plugin_name(&name) {
            Ok(PluginName(name))
        } else {
            Err(EntryError::NotAPluginName(name))
        }
    }
}

/// Whether `name` can be a plugin name: one non-empty path segment of ASCII letters, digits,
/// `_` and `-`, not starting with `-`.
pub fn is_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl AllowList {
    /// Whether `argv` may be run: `Ok` when some `run` pattern matches it, else the reason.
    pub fn check_run<S: AsRef<str>>(&self, argv: &[S]) -> Result<(), Refusal> {
        if argv.is_empty() {
            return Err(Refusal("no argv given".into()));
        }
        let program = argv[0].as_ref();
        if let Some(bad) = argv.iter().position(|a| a.as_ref().contains('\0')) {
            return Err(Refusal(format!("argument {bad} holds a NUL byte")));
        }
        let mut closest = None;
        for pattern in &self.run {
            match pattern.check(argv) {
                Ok(()) => return Ok(()),
                Err(why) if pattern.0.len() == argv.len() && pattern.0[0] == program => {
                    closest.get_or_insert(why);
                }
                Err(_) => {}
            }
        }
        Err(Refusal(match closest {
            Some(why) => format!("not allowed: {program}: {why}"),
            None => format!(
                "not allowed: no allow.run entry for {program} with {} arguments",
                argv.len() - 1
            ),
        }))
    }

    /// Whether events may be fired under `tag`.
    pub fn check_fire_event(&self, tag: &str) -> Result<(), Refusal> {
        if self.fire_event.iter().any(|g| glob_match(&g.0, tag)) {
            Ok(())
        } else {
            Err(Refusal(format!(
                "not allowed: no allow.fire_event glob matches {tag}"
            )))
        }
    }

    /// Whether the plugin `name` (the last part of `reactions.actor.<name>`) may run.
    pub fn check_plugin(&self, name: &str) -> Result<(), Refusal> {
        if self.plugins.iter().any(|p| p.0 == name) {
            Ok(())
        } else {
            Err(Refusal(format!(
                "not allowed: plugin {name} is not in allow.plugins"
            )))
        }
    }

    /// Whether nothing at all is allowed.
    pub fn is_empty(&self) -> bool {
        self.run.is_empty() && self.fire_event.is_empty() && self.plugins.is_empty()
    }
}

/// Whether one argument `value` matches the pattern element `pattern`; `Err` says why not.
fn element_matches(pattern: &str, value: &str) -> Result<(), &'static str> {
    if value.starts_with('-') && !pattern.starts_with('-') {
        return Err("looks like a flag where the pattern has none");
    }
    if value != pattern && value.split('/').any(|c| c == "..") {
        return Err("holds a '..' path component");
    }
    if !glob_match(pattern, value) {
        return Err("does not match");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(run: &[&[&str]]) -> AllowList {
        AllowList {
            run: run
                .iter()
                .map(|p| ArgvPattern::new(p.iter()).unwrap())
                .collect(),
            ..AllowList::default()
        }
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        let a = AllowList::default();
        assert!(a.is_empty());
        assert!(a.check_run(&["true"]).is_err());
        assert!(a.check_fire_event("/x").is_err());
        assert!(a.check_plugin("backup").is_err());
    }

    #[test]
    fn exact_patterns() {
        let a = allow(&[&["df", "-h"], &["systemctl", "restart", "nginx"]]);
        assert!(a.check_run(&["df", "-h"]).is_ok());
        assert!(a.check_run(&["systemctl", "restart", "nginx"]).is_ok());
        assert!(a.check_run(&["df"]).is_err());
        assert!(a.check_run(&["df", "-h", "/"]).is_err());
        assert!(a.check_run(&["systemctl", "stop", "nginx"]).is_err());
        assert!(
            a.check_run(&["/bin/df", "-h"]).is_err(),
            "the program is compared exactly"
        );
        assert!(a.check_run::<&str>(&[]).is_err());
    }

    #[test]
    fn globs_match_later_elements() {
        let a = allow(&[
            &["/usr/bin/touch", "/tmp/reflex-*"],
            &["systemctl", "restart", "[a-z]*"],
        ]);
        assert!(a.check_run(&["/usr/bin/touch", "/tmp/reflex-x"]).is_ok());
        assert!(a.check_run(&["/usr/bin/touch", "/tmp/other"]).is_err());
        assert!(a.check_run(&["systemctl", "restart", "nginx"]).is_ok());
        assert!(a.check_run(&["systemctl", "restart", "1x"]).is_err());
        // A glob in the program position is literal.
        let g = allow(&[&["*", "x"]]);
        assert!(g.check_run(&["rm", "x"]).is_err());
        assert!(g.check_run(&["*", "x"]).is_ok());
    }

    #[test]
    fn a_value_never_becomes_a_flag() {
        let a = allow(&[&["echo", "*"], &["ls", "-*", "*"]]);
        assert!(a.check_run(&["echo", "hello"]).is_ok());
        let err = a.check_run(&["echo", "-e"]).unwrap_err();
        assert!(err.0.contains("flag"), "{err}");
        assert!(a.check_run(&["echo", "--help"]).is_err());
        // The pattern element starts with '-': flags are what it allows.
        assert!(a.check_run(&["ls", "-la", "/tmp"]).is_ok());
        assert!(a.check_run(&["ls", "-la", "-R"]).is_err());
    }

    #[test]
    fn a_wildcard_never_climbs_out() {
        let a = allow(&[&["cat", "/var/log/*"], &["cd", ".."]]);
        assert!(a.check_run(&["cat", "/var/log/syslog"]).is_ok());
        assert!(a.check_run(&["cat", "/var/log/../../etc/shadow"]).is_err());
        assert!(a.check_run(&["cat", "/var/log/.."]).is_err());
        assert!(
            a.check_run(&["cat", "/var/log/..x"]).is_ok(),
            "only whole components"
        );
        assert!(
            a.check_run(&["cd", ".."]).is_ok(),
            "a literal '..' in the pattern is fine"
        );
    }

    #[test]
    fn shell_syntax_is_just_text() {
        let a = allow(&[&["printf", "%s", "*"]]);
        // Allowed, and it stays one argv entry: no shell ever sees it.
        assert!(a.check_run(&["printf", "%s", "; rm -rf /"]).is_ok());
        assert!(a.check_run(&["printf", "%s", "a\0b"]).is_err());
    }

    #[test]
    fn refusals_name_the_closest_pattern() {
        let a = allow(&[&["systemctl", "restart", "nginx"]]);
        let r = a.check_run(&["systemctl", "restart", "sshd"]).unwrap_err();
        assert_eq!(r.0, "not allowed: systemctl: argument 2 does not match");
        let r = a.check_run(&["reboot"]).unwrap_err();
        assert_eq!(
            r.0,
            "not allowed: no allow.run entry for reboot with 0 arguments"
        );
    }

    #[test]
    fn events_and_plugins() {
        let a = AllowList {
            fire_event: vec![TagGlob::try_from("/ops/*".to_owned()).unwrap()],
            plugins: vec![PluginName::try_from("backup".to_owned()).unwrap()],
            ..AllowList::default()
        };
        assert!(a.check_fire_event("/ops/restart").is_ok());
        assert!(a.check_fire_event("/client/load/x").is_err());
        assert!(a.check_plugin("backup").is_ok());
        assert!(a.check_plugin("backup2").is_err());
        assert!(TagGlob::try_from("ops/*".to_owned()).is_err());
        for bad in ["", "../x", "a/b", "a.b", "-x"] {
            assert!(PluginName::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }
}
