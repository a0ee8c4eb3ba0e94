//! The reactions a rulebook may use: the built-ins, and plugins found on disk.
//!
//! A plugin is an executable file at `<dir>/reactions/<module>/<function>`; it is the reaction
//! `reactions.<module>.<function>`. A reaction's number ([`reflex_core::program::Reaction::func`])
//! is its index in [`Catalog::keys`]: built-ins first, in the order of [`LOCAL_BUILTINS`] then
//! [`ACTOR_BUILTINS`], then plugins sorted by key.

use std::path::{Path, PathBuf};

/// Built-in reactions performed by the Manager itself.
pub const LOCAL_BUILTINS: &[&str] = &[
    "reactions.eventer.fire_event",
    "reactions.exec.run",
    "reactions.http.post",
    "reactions.log.print",
];

/// Built-in reactions performed by Actors (module `actor`: always remote).
pub const ACTOR_BUILTINS: &[&str] = &["reactions.actor.run", "reactions.actor.fire_event"];

/// The module whose reactions are always performed by Actors.
pub const ACTOR_MODULE: &str = "actor";

/// What shape a built-in reaction's argument has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// One templated scalar.
    Text,
    /// A number of seconds, greater than 0.
    Seconds,
    /// A non-empty list of templated scalars.
    List,
    /// A map of templated values (flattened to dotted names).
    Map,
}

/// One argument a built-in reaction takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgSpec {
    /// Its name.
    pub name: &'static str,
    /// Its shape.
    pub kind: ArgKind,
    /// Whether the reaction needs it.
    pub required: bool,
}

const fn arg(name: &'static str, kind: ArgKind, required: bool) -> ArgSpec {
    ArgSpec {
        name,
        kind,
        required,
    }
}

/// The arguments of every built-in reaction. Plugins take any arguments.
pub const BUILTIN_ARGS: &[(&str, &[ArgSpec])] = &[
    (
        "reactions.eventer.fire_event",
        &[
            arg("tag", ArgKind::Text, true),
            arg("data", ArgKind::Map, false),
        ],
    ),
    (
        "reactions.exec.run",
        &[
            arg("argv", ArgKind::List, true),
            arg("timeout", ArgKind::Seconds, false),
            arg("cwd", ArgKind::Text, false),
        ],
    ),
    (
        "reactions.http.post",
        &[
            arg("url", ArgKind::Text, true),
            arg("body", ArgKind::Map, false),
            arg("json", ArgKind::Map, false),
            arg("headers", ArgKind::Map, false),
            arg("timeout", ArgKind::Seconds, false),
        ],
    ),
    (
        "reactions.log.print",
        &[
            arg("message", ArgKind::Text, false),
            arg("level", ArgKind::Text, false),
        ],
    ),
    (
        "reactions.actor.run",
        &[
            arg("argv", ArgKind::List, true),
            arg("timeout", ArgKind::Seconds, false),
        ],
    ),
    (
        "reactions.actor.fire_event",
        &[
            arg("tag", ArgKind::Text, true),
            arg("data", ArgKind::Map, false),
        ],
    ),
];

/// The levels `reactions.log.print` accepts.
pub const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error"];

/// The argument list of a built-in reaction, or `None` for a plugin.
pub fn builtin_args(key: &str) -> Option<(&'static str, &'static [ArgSpec])> {
    BUILTIN_ARGS.iter().find(|(k, _)| *k == key).copied()
}

/// The reaction keys that exist, and where each plugin lives.
///
/// ```
/// use reflex_rules::Catalog;
/// let c = Catalog::builtin();
/// assert_eq!(c.index_of("reactions.eventer.fire_event"), Some(0));
/// assert!(c.plugin_path("reactions.log.print").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    keys: Vec<String>,
    /// One per key: the executable of a plugin, `None` for a built-in.
    paths: Vec<Option<PathBuf>>,
}

impl Catalog {
    /// The built-in reactions only.
    pub fn builtin() -> Catalog {
        let keys: Vec<String> = LOCAL_BUILTINS
            .iter()
            .chain(ACTOR_BUILTINS)
            .map(|k| k.to_string())
            .collect();
        let paths = vec![None; keys.len()];
        Catalog { keys, paths }
    }

    /// The built-ins plus every executable `<dir>/reactions/<module>/<function>` of the given
    /// directories. A key found twice keeps its first definition: built-ins win over plugins,
    /// earlier directories over later ones. Missing or unreadable directories add nothing.
    pub fn with_plugins(dirs: &[PathBuf]) -> Catalog {
        let mut catalog = Catalog::builtin();
        let mut found: Vec<(String, PathBuf)> = Vec::new();
        for dir in dirs {
            for (key, path) in scan(dir) {
                if !catalog.keys.contains(&key) && !found.iter().any(|(k, _)| *k == key) {
                    found.push((key, path));
                }
            }
        }
        found.sort();
        for (key, path) in found {
            catalog.keys.push(key);
            catalog.paths.push(Some(path));
        }
        catalog
    }

    /// This catalog plus `keys` that another part performs and no plugin file stands for,
    /// such as the reactions of a device, sorted, after the plugins. A key already present
    /// keeps its first definition.
    ///
    /// ```
    /// use reflex_rules::Catalog;
    /// let c = Catalog::builtin().with_keys(&["reactions.device.set_pin"]);
    /// assert!(c.index_of("reactions.device.set_pin").is_some());
    /// assert!(c.plugin_path("reactions.device.set_pin").is_none());
    /// ```
    pub fn with_keys(mut self, keys: &[&str]) -> Catalog {
        let mut extra: Vec<String> = keys
            .iter()
            .filter(|k| !self.keys.iter().any(|have| have == *k))
            .map(|k| k.to_string())
            .collect();
        extra.sort();
        extra.dedup();
        self.paths.extend(extra.iter().map(|_| None));
        self.keys.extend(extra);
        self
    }

    /// Every key, in catalog order (a key's index is its reaction number).
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The number of a key.
    pub fn index_of(&self, key: &str) -> Option<usize> {
        self.keys.iter().position(|k| k == key)
    }

    /// The executable of a plugin key (`None` for a built-in or an unknown key).
    pub fn plugin_path(&self, key: &str) -> Option<&Path> {
        self.index_of(key).and_then(|i| self.paths[i].as_deref())
    }

    /// Whether a key is a built-in.
    pub fn is_builtin(&self, key: &str) -> bool {
        LOCAL_BUILTINS.contains(&key) || ACTOR_BUILTINS.contains(&key)
    }
}

/// The plugin directory used when none is given: `plugins/` beside the rulebook (inside it
/// when the rulebook is a directory).
///
/// ```
/// use std::path::Path;
/// use reflex_rules::default_plugin_dir;
/// assert_eq!(default_plugin_dir(Path::new("/etc/reflex/rules.yml")), Path::new("/etc/reflex/plugins"));
/// ```
pub fn default_plugin_dir(rulebook: &Path) -> PathBuf {
    if rulebook.is_dir() {
        rulebook.join("plugins")
    } else {
        rulebook
            .parent()
            .unwrap_or_else(|| Path::new(""))
            .join("plugins")
    }
}

/// Every `(key, path)` of the executables under `<dir>/reactions/*/*`.
fn scan(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    for (module, module_path) in entries(&dir.join("reactions")) {
        if !module_path.is_dir() {
            continue;
        }
        for (function, path) in entries(&module_path) {
            if is_name(&module) && is_name(&function) && is_executable(&path) {
                found.push((format!("reactions.{module}.{function}"), path));
            }
        }
    }
    found
}

/// The UTF-8-named entries of a directory (none when it cannot be read).
fn entries(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    read.filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .collect()
}

/// A module or function name: no dots, not hidden, not empty.
fn is_name(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('.') && !s.contains('.')
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_first_in_order() {
        let c = Catalog::builtin();
        assert_eq!(c.keys().len(), 6);
        assert_eq!(c.index_of("reactions.log.print"), Some(3));
        assert_eq!(c.index_of("reactions.actor.fire_event"), Some(5));
        assert!(c.is_builtin("reactions.actor.run"));
        for (k, _) in BUILTIN_ARGS {
            assert!(c.is_builtin(k));
        }
    }

    #[test]
    fn finds_the_example_plugin() {
        let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/plugins"));
        let c = Catalog::with_plugins(&[dir.clone(), dir]);
        assert_eq!(c.keys().len(), 7);
        assert_eq!(c.index_of("reactions.cloud.scale_up"), Some(6));
        assert!(
            c.plugin_path("reactions.cloud.scale_up")
                .unwrap()
                .ends_with("cloud/scale_up")
        );
        assert_eq!(
            Catalog::with_plugins(&[PathBuf::from("/nonexistent")]),
            Catalog::builtin()
        );
    }

    #[test]
    fn default_dir_beside_the_rulebook() {
        let examples = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"));
        assert_eq!(default_plugin_dir(examples), examples.join("plugins"));
        assert_eq!(
            default_plugin_dir(&examples.join("load.yml")),
            examples.join("plugins")
        );
        assert_eq!(
            default_plugin_dir(Path::new("load.yml")),
            Path::new("plugins")
        );
    }
}
