//! The reactions a rulebook may use: the built-ins, and plugins found on disk.
//!
//! A plugin is an executable file at `<dir>/reactions/<module>/<function>`; it is the reaction
//! `reactions.<module>.<function>`. A reaction's number ([`reflex_core::program::Reaction::func`])
//! is its index in [`Catalog::keys`]: the built-ins the Manager and the Actors perform first, in
//! the order of core's table ([`reflex_core::reaction::REACTIONS`]), then plugins sorted by key.

use std::path::{Path, PathBuf};

pub use reflex_core::reaction::{ACTOR_MODULE, ArgKind, ArgSpec, LOG_LEVELS, Performer};

/// The argument list of a built-in reaction (core's table, [`reflex_core::reaction`]), or
/// `None` for a plugin.
pub fn builtin_args(key: &str) -> Option<(&'static str, &'static [ArgSpec])> {
    reflex_core::reaction::find(key).map(|r| (r.key, r.args))
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
        let keys: Vec<String> = reflex_core::reaction::keys_of(Performer::Manager)
            .chain(reflex_core::reaction::keys_of(Performer::Actor))
            .map(str::to_string)
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
        reflex_core::reaction::find(key).is_some_and(|r| r.performer != Performer::Device)
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
        for r in reflex_core::reaction::REACTIONS {
            assert_eq!(
                c.is_builtin(r.key),
                r.performer != Performer::Device,
                "{}",
                r.key
            );
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
