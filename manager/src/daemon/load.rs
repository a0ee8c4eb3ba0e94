//! Loading a rulebook: compiled against the catalog of its plugin directories, validated, and
//! its reactions resolved, at start and at every reload alike.

use std::path::Path;

use reflex_rules::{Catalog, Compiled};

use crate::Error;
use crate::reactions::Table;

use super::config::Config;

/// Compiles the rulebook against the catalog of its plugin directories, and resolves its
/// reactions.
pub fn load(config: &Config) -> Result<(Compiled, Catalog, Table), Error> {
    let dirs = if config.plugins.is_empty() {
        vec![reflex_rules::default_plugin_dir(&config.rules)]
    } else {
        config.plugins.clone()
    };
    let catalog = Catalog::with_plugins(&dirs);
    let (compiled, table) = compile_with_table(&config.rules, &catalog)?;
    Ok((compiled, catalog, table))
}

/// Compiles the rulebook at `rules` against `catalog`, as a reload does: the program must
/// validate and every local reaction have a handler.
pub fn compile(rules: &Path, catalog: &Catalog) -> Result<Compiled, Error> {
    compile_with_table(rules, catalog).map(|(compiled, _)| compiled)
}

fn compile_with_table(rules: &Path, catalog: &Catalog) -> Result<(Compiled, Table), Error> {
    let compiled = reflex_rules::compile_path(rules, catalog)?;
    compiled
        .program()
        .validate()
        .map_err(|e| Error::core("compiled rulebook", e))?;
    let table = Table::build(catalog, &compiled.program())?;
    Ok((compiled, table))
}
