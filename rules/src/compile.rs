//! YAML rulebook to [`Compiled`] tables, collecting every error on the way.
//!
//! The walk is one pass over each file's marked tree, appending records to the tables; chains
//! are resolved once every file has been read, since they may name rules of any file.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use reflex_core::event::{MAX_TAG_LEN, check_tag};
use reflex_core::loader;
use reflex_core::program::{
    Arg, ChainLink, ChainOp, Entry, Fire, GroupBy, IndexSlot, MAX_CHAIN, Reaction, Rule, Segment,
    Span, StrRef,
};
use reflex_core::register::RegisterFn;
use reflex_core::rule::RuleFn;
use reflex_core::value::{MAX_NAME_LEN, MAX_STR_LEN};
use reflex_core::wire::MAX_ARGS;

use crate::catalog::{ACTOR_MODULE, ArgKind, Catalog, builtin_args};
use crate::compiled::Compiled;
use crate::diagnostic::{Diagnostic, Error, Errors};
use crate::template::{self, Piece};
use crate::yaml::{self, Kind, Node, Pos};

/// The keys of a rule.
pub const RULE_KEYS: [&str; 10] = [
    "rule",
    "register",
    "threshold",
    "period",
    "field",
    "group_by",
    "fire",
    "cooldown",
    "reactions",
    "chain",
];

/// The keys of a tag entry.
pub const ENTRY_KEYS: [&str; 1] = ["rules"];

/// The register function used when a rule names none ([`RegisterFn::Last`]).
pub const DEFAULT_REGISTER: &str = "register.aggregate.last";

/// The window used when a rule gives no `period`, in seconds.
pub const DEFAULT_PERIOD_S: u32 = 60;

/// Largest rulebook file read, in bytes; a larger one is refused with the limit.
pub const MAX_RULEBOOK_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Reads one rulebook file: only a regular file (not a device such as `/dev/zero`, nor a FIFO,
/// which would block), and at most [`MAX_RULEBOOK_FILE_BYTES`], even if it grows meanwhile.
fn read_rulebook_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file; a rulebook is a file or a directory of files",
        ));
    }
    let too_large = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "larger than {MAX_RULEBOOK_FILE_BYTES} bytes, the most a rulebook file may hold"
            ),
        )
    };
    if meta.len() > MAX_RULEBOOK_FILE_BYTES {
        return Err(too_large());
    }
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_RULEBOOK_FILE_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_RULEBOOK_FILE_BYTES {
        return Err(too_large());
    }
    Ok(text)
}

/// Compiles a rulebook file, or every `*.yml` / `*.yaml` file directly inside a directory
/// (sorted by name, merged into one rulebook). Every error is reported, not just the first.
/// Only regular files are read, each at most [`MAX_RULEBOOK_FILE_BYTES`].
pub fn compile_path(path: &Path, catalog: &Catalog) -> Result<Compiled, Errors> {
    let shown = path.display().to_string();
    let io = |file: String, e: std::io::Error| {
        Errors(vec![Diagnostic {
            file,
            line: 1,
            col: 1,
            error: Error::Io(e.to_string()),
        }])
    };
    let meta = std::fs::metadata(path).map_err(|e| io(shown.clone(), e))?;
    let files = if meta.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| io(shown.clone(), e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
            .collect();
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        if files.is_empty() {
            return Err(Errors(vec![Diagnostic {
                file: shown,
                line: 1,
                col: 1,
                error: Error::NoRulebookFiles,
            }]));
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut sources = Vec::with_capacity(files.len());
    let mut errors = Vec::new();
    for f in files {
        let name = f.display().to_string();
        match read_rulebook_file(&f) {
            Ok(text) => sources.push((name, text)),
            Err(e) => errors.extend(io(name, e).0),
        }
    }
    if !errors.is_empty() {
        return Err(Errors(errors));
    }
    compile_sources(&sources, catalog)
}

/// Compiles rulebook text; `name` is the file name used in diagnostics.
///
/// ```
/// use reflex_rules::{compile_str, Catalog};
/// let err = compile_str("x.yml", "/a/*:\n  rules: []\n  rulez: []\n", &Catalog::builtin());
/// assert_eq!(
///     err.unwrap_err().to_string(),
///     "x.yml:3:3: unknown key `rulez` in tag entry `/a/*` (did you mean `rules`?); valid keys: rules"
/// );
/// ```
pub fn compile_str(name: &str, text: &str, catalog: &Catalog) -> Result<Compiled, Errors> {
    compile_sources(&[(name.to_string(), text.to_string())], catalog)
}

/// Compiles several files as one rulebook.
fn compile_sources(sources: &[(String, String)], catalog: &Catalog) -> Result<Compiled, Errors> {
    let mut c = Compiler::new(catalog);
    let parsed: Vec<yaml::Parsed> = sources.iter().map(|(_, text)| yaml::parse(text)).collect();
    for (i, ((name, _), p)) in sources.iter().zip(&parsed).enumerate() {
        c.file = i;
        c.out.files.push(name.clone());
        for (pos, e) in &p.errors {
            c.error(*pos, e.clone());
        }
        if let Some(root) = &p.root {
            c.rulebook(root);
        }
    }
    c.resolve_chains();
    c.finish()
}

/// A chain link before its rule name is resolved.
struct PendingLink {
    op: ChainOp,
    name: String,
    file: usize,
    pos: Pos,
}

/// A place in the rulebook: file index and position.
type Place = (usize, Pos);

/// A resolved chain link: operator, target rule, and where it was written.
type Link = (ChainOp, usize, usize, Pos);

/// The compiler's state: the tables being built and the errors found so far.
struct Compiler<'c> {
    catalog: &'c Catalog,
    out: Compiled,
    pool: HashMap<String, StrRef>,
    /// The file being compiled, index into `out.files`.
    file: usize,
    errors: Vec<(usize, Pos, Error)>,
    /// Rule name to rule index.
    names: HashMap<String, usize>,
    /// Per rule: its chain as written, and (when it has one) where the rule is named.
    pending: Vec<(Vec<PendingLink>, Option<Place>)>,
}

/// The keys of a map, checked against the valid ones: unknown keys are reported, and the
/// values of the valid ones returned in `valid`'s order.
fn fields<'n, const N: usize>(
    c: &mut Compiler<'_>,
    map: &'n [(Node, Node)],
    valid: &[&str; N],
    context: &str,
) -> [Option<&'n Node>; N] {
    let mut found = [None; N];
    for (k, v) in map {
        match k.scalar().and_then(|s| valid.iter().position(|x| *x == s)) {
            Some(i) => {
                if found[i].is_none() {
                    found[i] = Some(v);
                }
            }
            None => c.error(
                k.pos,
                Error::UnknownKey {
                    key: k.scalar().unwrap_or("?").to_string(),
                    suggestion: k.scalar().and_then(|key| {
                        loader::closest(key, valid.iter().copied())
                            .first()
                            .map(|s| s.to_string())
                    }),
                    context: context.to_string(),
                    valid: valid.join(", "),
                },
            ),
        }
    }
    found
}

impl<'c> Compiler<'c> {
    fn new(catalog: &'c Catalog) -> Self {
        Compiler {
            catalog,
            out: Compiled {
                strings: String::new(),
                entries: Vec::new(),
                index: Vec::new(),
                prefix_lens: [0; 2],
                prefix_table: Vec::new(),
                entry_rules: Vec::new(),
                rules: Vec::new(),
                chain: Vec::new(),
                dependents: Vec::new(),
                reactions: Vec::new(),
                args: Vec::new(),
                segments: Vec::new(),
                files: Vec::new(),
                rule_sources: Vec::new(),
            },
            pool: HashMap::new(),
            file: 0,
            errors: Vec::new(),
            names: HashMap::new(),
            pending: Vec::new(),
        }
    }

    fn error(&mut self, pos: Pos, error: Error) {
        self.errors.push((self.file, pos, error));
    }

    fn wrong_type(&mut self, node: &Node, what: &str, expected: &'static str) {
        self.error(
            node.pos,
            Error::WrongType {
                what: what.to_string(),
                expected,
                found: node.describe(),
            },
        );
    }

    /// Interns a string in the pool.
    fn str(&mut self, s: &str) -> StrRef {
        if let Some(r) = self.pool.get(s) {
            return *r;
        }
        let r = StrRef {
            start: to_u32(self.out.strings.len()),
            len: to_u32(s.len()),
        };
        self.out.strings.push_str(s);
        self.pool.insert(s.to_string(), r);
        r
    }

    /// A string scalar, or a wrong-type error.
    fn string<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n str> {
        let s = node.string();
        if s.is_none() {
            self.wrong_type(node, what, "a string");
        }
        s
    }

    /// A number of seconds (`> 0`, or `>= 0` with `zero_ok`) as milliseconds.
    fn millis(&mut self, node: &Node, what: &str, zero_ok: bool) -> Option<u32> {
        let Some(secs) = node.number() else {
            self.wrong_type(node, what, "a number of seconds");
            return None;
        };
        let ms = (secs * 1000.0).round();
        let problem = if secs < 0.0 || (!zero_ok && ms < 1.0) {
            Some(if zero_ok {
                "must be 0 or more seconds".to_string()
            } else {
                "must be at least 0.001 seconds".to_string()
            })
        } else if ms > f64::from(u32::MAX) {
            Some(format!("must be at most {} seconds", u32::MAX / 1000))
        } else {
            None
        };
        if let Some(problem) = problem {
            self.error(
                node.pos,
                Error::BadValue {
                    what: what.to_string(),
                    problem,
                },
            );
            return None;
        }
        Some(ms as u32)
    }

    /// A name that must fit [`MAX_NAME_LEN`].
    fn name(&mut self, pos: Pos, what: &'static str, name: &str) -> bool {
        if name.len() > MAX_NAME_LEN {
            self.error(
                pos,
                Error::TooLong {
                    what,
                    name: name.to_string(),
                    len: name.len(),
                    max: MAX_NAME_LEN,
                },
            );
            return false;
        }
        true
    }

    /// The top level: tag globs to entries.
    fn rulebook(&mut self, root: &Node) {
        if root.is_null() {
            return;
        }
        let Some(map) = root.map() else {
            self.wrong_type(root, "rulebook", "a map of tag globs to `rules:`");
            return;
        };
        for (k, v) in map {
            let Some(glob) = self.string(k, "tag glob") else {
                continue;
            };
            self.check_glob(k.pos, glob);
            self.entry(glob, k.pos, v);
        }
    }

    fn check_glob(&mut self, pos: Pos, glob: &str) {
        let problem = if !(glob.starts_with('/') || glob.starts_with('*')) {
            Some("must start with `/` (every tag does) or `*`".to_string())
        } else if glob.len() > MAX_TAG_LEN {
            Some(format!(
                "is {} bytes long; tags hold at most {MAX_TAG_LEN}",
                glob.len()
            ))
        } else if glob.chars().any(char::is_control) {
            Some("holds a control character".to_string())
        } else {
            None
        };
        if let Some(problem) = problem {
            self.error(
                pos,
                Error::BadGlob {
                    glob: glob.to_string(),
                    problem,
                },
            );
        }
    }

    /// One tag entry: `{ rules: [...] }`.
    fn entry(&mut self, glob: &str, key_pos: Pos, body: &Node) {
        let context = format!("tag entry `{glob}`");
        let pattern = self.str(glob);
        let start = self.out.entry_rules.len();
        let rules = match body.map() {
            Some(map) => {
                let [rules] = fields(self, map, &ENTRY_KEYS, &context);
                if rules.is_none() {
                    self.missing(
                        key_pos,
                        "rules",
                        context.clone(),
                        "add `rules:` with a list of rules",
                    );
                }
                rules
            }
            None if body.is_null() => {
                self.missing(
                    key_pos,
                    "rules",
                    context,
                    "add `rules:` with a list of rules",
                );
                None
            }
            None => {
                self.wrong_type(body, glob, "a map with `rules:`");
                None
            }
        };
        if let Some(rules) = rules {
            match rules.seq() {
                Some(items) => {
                    for item in items {
                        if let Some(r) = self.rule_item(item) {
                            self.out.entry_rules.push(r);
                        }
                    }
                }
                None if rules.is_null() => {}
                None => self.wrong_type(rules, "rules", "a list of `- rule_name: {...}` items"),
            }
        }
        let len = self.out.entry_rules.len() - start;
        self.out.entries.push(Entry {
            pattern,
            rules: span(start, len),
        });
    }

    fn missing(&mut self, pos: Pos, key: &'static str, context: String, hint: &'static str) {
        self.error(pos, Error::MissingKey { key, context, hint });
    }

    /// `- rule_name: {...}`: returns the rule's index.
    fn rule_item(&mut self, item: &Node) -> Option<u32> {
        let single = item.map().filter(|m| m.len() == 1);
        let Some([(name_node, body)]) = single else {
            self.error(
                item.pos,
                Error::NotSingleKey {
                    what: "each item of `rules:` is a map with one key, the rule's name: \
                           `- rule_name: {rule: ..., threshold: ...}`",
                },
            );
            return None;
        };
        let name = self.string(name_node, "rule name")?;
        if name.is_empty() {
            self.error(
                name_node.pos,
                Error::BadValue {
                    what: "rule name".into(),
                    problem: "must not be empty".into(),
                },
            );
            return None;
        }
        if let Some(&first) = self.names.get(name) {
            let (file, line, col) = self.out.rule_sources[first];
            self.error(
                name_node.pos,
                Error::DuplicateRule {
                    name: name.to_string(),
                    first: format!("{}:{line}:{col}", self.out.files[file]),
                },
            );
            return None;
        }
        let index = self.out.rules.len();
        self.names.insert(name.to_string(), index);
        self.out
            .rule_sources
            .push((self.file, name_node.pos.line, name_node.pos.col));
        let rule = self.rule(name, name_node.pos, body);
        self.out.rules.push(rule);
        Some(to_u32(index))
    }

    /// A rule's body. Always returns a record (with defaults where the body is wrong) so that
    /// indices stay in step; errors make the compilation fail anyway.
    fn rule(&mut self, name: &str, name_pos: Pos, body: &Node) -> Rule {
        let context = format!("rule `{name}`");
        let map: &[(Node, Node)] = match body.map() {
            Some(m) => m,
            None => {
                if !body.is_null() {
                    self.wrong_type(body, name, "a map of rule settings");
                }
                &[]
            }
        };
        let [
            rule,
            register,
            threshold,
            period,
            field,
            group_by,
            fire,
            cooldown,
            reactions,
            chain,
        ] = fields(self, map, &RULE_KEYS, &context);

        let func = match rule {
            Some(node) => self.function(node, "rule", loader::RULES),
            None => {
                self.missing(
                    name_pos,
                    "rule",
                    context.clone(),
                    "add e.g. `rule: rules.simple.gt`",
                );
                None
            }
        };
        let register = match register {
            Some(node) => self.function(node, "register", loader::REGISTERS),
            None => Some((DEFAULT_REGISTER, RegisterFn::Last)),
        };
        let (lo, hi) = match func {
            Some((key, f)) => self.threshold(key, f, threshold, name_pos),
            None => (0.0, 0.0),
        };
        let period_ms = period
            .and_then(|n| self.millis(n, "period", false))
            .unwrap_or(DEFAULT_PERIOD_S * 1000);
        let cooldown_ms = cooldown
            .and_then(|n| self.millis(n, "cooldown", true))
            .unwrap_or(0);
        let field = match field {
            Some(node) => self.field_name(node, "field").unwrap_or(name),
            None => {
                self.name(name_pos, "field name (the rule's name, by default)", name);
                name
            }
        };
        let field = self.str(field);
        let group_by = match group_by {
            None => GroupBy::Source,
            Some(node) if node.seq().is_some() => match node.seq().unwrap_or(&[]) {
                [first, field] if first.scalar() == Some("source") => {
                    match self.field_name(field, "group_by") {
                        Some(f) => GroupBy::SourceField(self.str(f)),
                        None => GroupBy::Source,
                    }
                }
                _ => {
                    self.error(
                        node.pos,
                        Error::BadValue {
                            what: "group_by".into(),
                            problem: "as a list must be `[source, FIELD]`: one window per \
                                          source and value of FIELD"
                                .into(),
                        },
                    );
                    GroupBy::Source
                }
            },
            Some(node) => match self.field_name(node, "group_by") {
                Some("source") | None => GroupBy::Source,
                Some("tag") => GroupBy::Tag,
                Some("none") => GroupBy::Nothing,
                Some(other) => GroupBy::Field(self.str(other)),
            },
        };
        let fire = match fire.map(|n| (n, n.string())) {
            None | Some((_, Some("edge"))) => Fire::Edge,
            Some((_, Some("always"))) => Fire::Always,
            Some((node, _)) => {
                self.error(
                    node.pos,
                    Error::BadValue {
                        what: "fire".into(),
                        problem: format!(
                            "must be `edge` or `always`, found `{}`",
                            node.scalar().unwrap_or(node.describe())
                        ),
                    },
                );
                Fire::Edge
            }
        };
        let start = self.out.reactions.len();
        if let Some(list) = reactions {
            match list.seq() {
                Some(items) => {
                    for item in items {
                        self.reaction(item);
                    }
                }
                None if list.is_null() => {}
                None => self.wrong_type(
                    list,
                    "reactions",
                    "a list of `- reactions.<module>.<function>: {...}` items",
                ),
            }
        }
        let reactions = span(start, self.out.reactions.len() - start);
        let links = chain.map(|c| self.chain(c)).unwrap_or_default();
        self.pending
            .push((links, chain.map(|_| (self.file, name_pos))));
        let name = self.str(name);
        Rule {
            name,
            field,
            func: func.map_or(RuleFn::Gt, |(_, f)| f),
            lo,
            hi,
            register: register.map_or(RegisterFn::Last, |(_, f)| f),
            period_ms,
            group_by,
            fire,
            cooldown_ms,
            chain: Span::default(),
            dependents: Span::default(),
            reactions,
        }
    }

    /// A string naming an event field (for `field` and `group_by`).
    fn field_name<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n str> {
        let s = self.string(node, what)?;
        if s.is_empty() {
            self.error(
                node.pos,
                Error::BadValue {
                    what: what.to_string(),
                    problem: "must not be empty".into(),
                },
            );
            return None;
        }
        self.name(node.pos, "field name", s).then_some(s)
    }

    /// Resolves a rule or register key.
    fn function<T: Copy>(
        &mut self,
        node: &Node,
        role: &'static str,
        table: &'static [(&'static str, T)],
    ) -> Option<(&'static str, T)> {
        let key = self.string(node, role)?;
        if let Some(found) = table.iter().find(|(k, _)| *k == key) {
            return Some(*found);
        }
        let keys = table.iter().map(|(k, _)| *k);
        self.error(
            node.pos,
            Error::UnknownFunction {
                role,
                key: key.to_string(),
                suggestions: loader::closest(key, keys.clone())
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                valid: keys.map(String::from).collect(),
            },
        );
        None
    }

    /// The threshold as `(lo, hi)`, checked against what the function takes.
    fn threshold(
        &mut self,
        key: &'static str,
        f: RuleFn,
        node: Option<&Node>,
        at: Pos,
    ) -> (f64, f64) {
        let problem = |problem| Error::Threshold { func: key, problem };
        if !f.takes_threshold() {
            if let Some(n) = node {
                self.error(n.pos, problem("takes no threshold; remove `threshold:`"));
            }
            return (0.0, 0.0);
        }
        let Some(node) = node else {
            let p = if f.takes_range() {
                "needs `threshold: [lo, hi]`"
            } else {
                "needs `threshold:`, a number"
            };
            self.error(at, problem(p));
            return (0.0, 0.0);
        };
        if f.takes_range() {
            let pair = node.seq().filter(|s| s.len() == 2);
            let Some([a, b]) = pair else {
                self.error(
                    node.pos,
                    problem("needs `threshold: [lo, hi]`, a list of two numbers"),
                );
                return (0.0, 0.0);
            };
            let (Some(lo), Some(hi)) = (self.number(a, "threshold"), self.number(b, "threshold"))
            else {
                return (0.0, 0.0);
            };
            if lo > hi {
                self.error(
                    node.pos,
                    Error::BadValue {
                        what: "threshold".into(),
                        problem: format!("low bound {lo} is above high bound {hi}"),
                    },
                );
            }
            return (lo, hi);
        }
        if node.seq().is_some() {
            self.error(node.pos, problem("takes one number, not a list"));
            return (0.0, 0.0);
        }
        let v = self.number(node, "threshold").unwrap_or(0.0);
        (v, v)
    }

    /// A threshold: a number, or a boolean as 1 or 0 (as events' booleans are read).
    fn number(&mut self, node: &Node, what: &str) -> Option<f64> {
        let n = node.number().or(match node.describe() {
            "a boolean" => Some(if node.scalar() == Some("true") {
                1.0
            } else {
                0.0
            }),
            _ => None,
        });
        if n.is_none() {
            self.wrong_type(node, what, "a number");
        }
        n
    }

    /// `chain:` items, before resolution.
    fn chain(&mut self, node: &Node) -> Vec<PendingLink> {
        let Some(items) = node.seq() else {
            if !node.is_null() {
                self.wrong_type(node, "chain", "a list of `- OR: rule_name` items");
            }
            return Vec::new();
        };
        let mut links = Vec::new();
        for item in items {
            let single = item.map().filter(|m| m.len() == 1);
            let Some([(op_node, name_node)]) = single else {
                self.error(
                    item.pos,
                    Error::NotSingleKey {
                        what: "each item of `chain:` is a map with one key, the operator: \
                               `- OR: rule_name` (AND, OR, AND_NOT, NOT)",
                    },
                );
                continue;
            };
            let op = match op_node.scalar() {
                Some("AND") => ChainOp::And,
                Some("OR") => ChainOp::Or,
                Some("AND_NOT" | "NOT") => ChainOp::AndNot,
                other => {
                    self.error(
                        op_node.pos,
                        Error::ChainOp {
                            op: other.unwrap_or(op_node.describe()).to_string(),
                        },
                    );
                    continue;
                }
            };
            if let Some(name) = self.string(name_node, "chain rule name") {
                links.push(PendingLink {
                    op,
                    name: name.to_string(),
                    file: self.file,
                    pos: name_node.pos,
                });
            }
        }
        links
    }

    /// One reaction item: `- reactions.<module>.<function>: {args}`.
    fn reaction(&mut self, item: &Node) {
        let (key_node, args) = match &item.kind {
            Kind::Map(m) if m.len() == 1 => (&m[0].0, Some(&m[0].1)),
            Kind::Scalar { .. } if item.string().is_some() => (item, None),
            _ => {
                self.error(
                    item.pos,
                    Error::NotSingleKey {
                        what: "each reaction is a map with one key: \
                               `- reactions.<module>.<function>: {arguments}`",
                    },
                );
                return;
            }
        };
        let Some(key) = self.string(key_node, "reaction") else {
            return;
        };
        if !loader::has_role(key, "reactions") {
            self.error(
                key_node.pos,
                Error::NotAReactionKey {
                    key: key.to_string(),
                },
            );
            return;
        }
        let Some(func) = self.catalog.index_of(key) else {
            let keys = self.catalog.keys().iter().map(String::as_str);
            let (module, function) = module_function(key);
            self.error(
                key_node.pos,
                Error::UnknownReaction {
                    key: key.to_string(),
                    plugin: format!("reactions/{module}/{function}"),
                    suggestions: loader::closest(key, keys)
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                },
            );
            return;
        };
        let Ok(func) = u16::try_from(func) else {
            self.error(
                key_node.pos,
                Error::TooMany {
                    what: "reactions in the catalog".into(),
                    count: func + 1,
                    max: usize::from(u16::MAX) + 1,
                },
            );
            return;
        };
        let map: &[(Node, Node)] = match args {
            None => &[],
            Some(a) if a.is_null() => &[],
            Some(a) => match a.map() {
                Some(m) => m,
                None => {
                    self.wrong_type(a, key, "a map of arguments");
                    return;
                }
            },
        };
        let mut remote = module_function(key).0 == ACTOR_MODULE;
        let mut target = None;
        let mut flat: Vec<(String, bool, &Node)> = Vec::new();
        for (k, v) in map {
            let Some(name) = self.string(k, "argument name") else {
                continue;
            };
            if name == "target" {
                if v.scalar().is_none() {
                    self.wrong_type(v, "target", "an Actor id or glob");
                } else {
                    target = Some(v);
                    remote = true;
                }
                continue;
            }
            if let Some((builtin, specs)) = builtin_args(key) {
                match specs.iter().find(|s| s.name == name) {
                    Some(spec) => self.check_arg(spec.kind, name, v),
                    None => {
                        let valid: Vec<&str> =
                            specs.iter().map(|s| s.name).chain(["target"]).collect();
                        self.error(
                            k.pos,
                            Error::UnknownArg {
                                reaction: builtin,
                                arg: name.to_string(),
                                suggestions: loader::closest(name, valid.iter().copied())
                                    .iter()
                                    .map(|s| s.to_string())
                                    .collect(),
                                valid: valid.iter().map(|s| s.to_string()).collect(),
                            },
                        );
                        continue;
                    }
                }
            }
            self.flatten(name.to_string(), v, false, &mut flat);
        }
        if let Some((builtin, specs)) = builtin_args(key) {
            for spec in specs.iter().filter(|s| s.required) {
                let given = map.iter().any(|(k, _)| k.scalar() == Some(spec.name));
                if !given {
                    self.error(
                        key_node.pos,
                        Error::MissingArg {
                            reaction: builtin,
                            arg: spec.name,
                        },
                    );
                }
            }
        }
        if flat.len() > MAX_ARGS {
            self.error(
                key_node.pos,
                Error::TooMany {
                    what: format!("arguments of `{key}` (list items count one each)"),
                    count: flat.len(),
                    max: MAX_ARGS,
                },
            );
        }
        let target = match (target, remote) {
            (Some(node), _) => self.template(node),
            (None, true) => {
                let all = self.str("*");
                self.out.segments.push(Segment::Lit(all));
                span(self.out.segments.len() - 1, 1)
            }
            (None, false) => span(self.out.segments.len(), 0),
        };
        let mut args = Vec::with_capacity(flat.len());
        for (name, item, node) in flat {
            if !self.name(node.pos, "argument name", &name) {
                continue;
            }
            let value = self.template(node);
            let event_data = builtin_args(key).is_some_and(|(_, specs)| {
                specs.iter().any(|s| {
                    s.kind == ArgKind::EventData
                        && name.split('.').next() == Some(s.name)
                        && name.len() > s.name.len()
                })
            });
            if remote || event_data {
                self.check_wire_text(node.pos, &name, value);
            }
            let name = self.str(&name);
            args.push(Arg { name, item, value });
        }
        let start = self.out.args.len();
        self.out.args.extend(args);
        let key = self.str(key);
        self.out.reactions.push(Reaction {
            key,
            func,
            remote,
            target,
            args: span(start, self.out.args.len() - start),
        });
    }

    /// An argument sent to Actors, like an event's data value, is a string of at most
    /// [`MAX_STR_LEN`] bytes: its literal text alone, defaults included, must fit.
    fn check_wire_text(&mut self, pos: Pos, name: &str, template: Span) {
        let p = self.out.program();
        let len: usize = p
            .segments_of(template)
            .iter()
            .map(|s| match s {
                Segment::Lit(r) | Segment::DataOr(_, r) => r.len as usize,
                _ => 0,
            })
            .sum();
        if len > MAX_STR_LEN {
            self.error(
                pos,
                Error::BadValue {
                    what: name.to_string(),
                    problem: format!(
                        "holds {len} bytes of text; values sent to Actors or put in events \
                         hold at most {MAX_STR_LEN}"
                    ),
                },
            );
        }
    }

    /// Checks a built-in reaction's argument against its shape.
    fn check_arg(&mut self, kind: ArgKind, name: &str, v: &Node) {
        match kind {
            ArgKind::Text | ArgKind::Tag | ArgKind::OneOf(_) => {
                if v.scalar().is_none() {
                    self.wrong_type(v, name, "a single value");
                    return;
                }
                if is_template(v) {
                    return;
                }
                let text = v.scalar().unwrap_or_default();
                let problem = match kind {
                    ArgKind::OneOf(words) if !words.contains(&text) => Some(format!(
                        "must be one of {}, found `{text}`",
                        words.join(", ")
                    )),
                    ArgKind::Tag => check_tag(text)
                        .err()
                        .map(|e| format!("is not a valid tag: {e}")),
                    _ => None,
                };
                if let Some(problem) = problem {
                    self.error(
                        v.pos,
                        Error::BadValue {
                            what: name.to_string(),
                            problem,
                        },
                    );
                }
            }
            ArgKind::Seconds => {
                self.millis(v, name, false);
            }
            ArgKind::List => match v.seq() {
                Some([]) => self.error(
                    v.pos,
                    Error::BadValue {
                        what: name.to_string(),
                        problem: "must not be empty".into(),
                    },
                ),
                Some(_) => {}
                None => self.wrong_type(v, name, "a list"),
            },
            ArgKind::Map | ArgKind::EventData => {
                if v.map().is_none() {
                    self.wrong_type(v, name, "a map");
                }
            }
        }
    }

    /// Flattens an argument value into `(dotted name, list item, scalar)` triples.
    fn flatten<'n>(
        &mut self,
        name: String,
        v: &'n Node,
        in_list: bool,
        out: &mut Vec<(String, bool, &'n Node)>,
    ) {
        match &v.kind {
            Kind::Scalar { .. } => out.push((name, in_list, v)),
            Kind::Map(_) | Kind::Seq(_) if in_list => {
                self.wrong_type(v, &name, "a list of single values")
            }
            Kind::Seq(items) => {
                for item in items {
                    self.flatten(name.clone(), item, true, out);
                }
            }
            Kind::Map(entries) => {
                for (k, item) in entries {
                    if let Some(key) = self.string(k, "argument name") {
                        self.flatten(format!("{name}.{key}"), item, false, out);
                    }
                }
            }
        }
    }

    /// Compiles a scalar into template segments.
    fn template(&mut self, node: &Node) -> Span {
        let start = self.out.segments.len();
        let Kind::Scalar { text, plain } = &node.kind else {
            return span(start, 0);
        };
        if node.is_null() {
            return span(start, 0);
        }
        match template::parse(text, *plain) {
            Ok(pieces) => {
                for p in pieces {
                    let seg = match p {
                        Piece::Lit(s) => Segment::Lit(self.str(&s)),
                        Piece::Source => Segment::Source,
                        Piece::Tag => Segment::Tag,
                        Piece::Value => Segment::Value,
                        Piece::Data(s) => Segment::Data(self.str(&s)),
                        Piece::Register => Segment::Register,
                        Piece::RuleName => Segment::RuleName,
                        Piece::Time => Segment::Time,
                        Piece::DataOr(name, default) => {
                            Segment::DataOr(self.str(&name), self.str(&default))
                        }
                    };
                    self.out.segments.push(seg);
                }
            }
            Err(e) => self.error(node.pos, e),
        }
        span(start, self.out.segments.len() - start)
    }

    /// Resolves chain names, refuses cycles and over-long chains, and fills the chain table.
    fn resolve_chains(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        let mut graph: Vec<Vec<Link>> = Vec::with_capacity(pending.len());
        for (links, _) in &pending {
            let mut out = Vec::new();
            for l in links {
                match self.names.get(&l.name) {
                    Some(&target) => out.push((l.op, target, l.file, l.pos)),
                    None => {
                        let names = self.names.keys().map(String::as_str);
                        let suggestions = loader::closest(&l.name, names)
                            .iter()
                            .map(|s| s.to_string())
                            .collect();
                        self.errors.push((
                            l.file,
                            l.pos,
                            Error::DanglingChain {
                                name: l.name.clone(),
                                suggestions,
                            },
                        ));
                    }
                }
            }
            graph.push(out);
        }
        self.check_chain_groups(&graph);
        let in_cycle = self.find_cycles(&graph);
        let reach = chain_reach(&graph, &in_cycle);
        for (r, ((_, chain_at), links)) in pending.iter().zip(&graph).enumerate() {
            let over = reach[r].filter(|&count| count > MAX_CHAIN);
            if let (Some(count), Some((file, pos))) = (over, chain_at) {
                let name = self.out.program().str(self.out.rules[r].name).to_string();
                self.errors.push((
                    *file,
                    *pos,
                    Error::TooMany {
                        what: format!("chain links reached from rule `{name}`"),
                        count,
                        max: MAX_CHAIN,
                    },
                ));
            }
            let start = self.out.chain.len();
            self.out
                .chain
                .extend(links.iter().map(|&(op, target, _, _)| ChainLink {
                    op,
                    rule: to_u32(target),
                }));
            self.out.rules[r].chain = span(start, links.len());
        }
        if !in_cycle.contains(&true) {
            self.fill_dependents(&graph);
        }
    }

    /// Refuses chain links whose two rules group their registers differently: the link is
    /// read for the event's group of the owner, which the other rule's registers never hold.
    /// A link to a `group_by: none` rule reads its one window and always lines up.
    fn check_chain_groups(&mut self, graph: &[Vec<Link>]) {
        let p = self.out.program();
        let mut found = Vec::new();
        for (r, links) in graph.iter().enumerate() {
            let (a, name) = (&self.out.rules[r], p.str(self.out.rules[r].name));
            for &(_, t, file, pos) in links {
                let b = &self.out.rules[t];
                let same = match (a.group_by, b.group_by) {
                    (_, GroupBy::Nothing) => true,
                    (GroupBy::Field(x), GroupBy::Field(y))
                    | (GroupBy::SourceField(x), GroupBy::SourceField(y)) => p.str(x) == p.str(y),
                    (x, y) => x == y,
                };
                if !same {
                    let written = |g: GroupBy| match g {
                        GroupBy::Source => "source".to_string(),
                        GroupBy::Tag => "tag".to_string(),
                        GroupBy::Nothing => "none".to_string(),
                        GroupBy::Field(f) => p.str(f).to_string(),
                        GroupBy::SourceField(f) => format!("[source, {}]", p.str(f)),
                    };
                    found.push((
                        file,
                        pos,
                        Error::ChainGroupMismatch {
                            rule: name.to_string(),
                            rule_group: written(a.group_by),
                            other: p.str(b.name).to_string(),
                            other_group: written(b.group_by),
                        },
                    ));
                }
            }
        }
        self.errors.extend(found);
    }

    /// Fills every rule's dependents: the rules whose chains reach it, directly or through
    /// other chained rules, in rule order. Only called on an acyclic chain graph.
    fn fill_dependents(&mut self, graph: &[Vec<Link>]) {
        let n = graph.len();
        // reached[r]: the rules r's chain reaches, by depth-first search from r.
        let mut dependents: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (r, _) in graph.iter().enumerate() {
            let mut seen = vec![false; n];
            let mut stack: Vec<usize> = graph[r].iter().map(|&(_, t, _, _)| t).collect();
            while let Some(t) = stack.pop() {
                if std::mem::replace(&mut seen[t], true) || t == r {
                    continue;
                }
                dependents[t].push(to_u32(r));
                stack.extend(graph[t].iter().map(|&(_, u, _, _)| u));
            }
        }
        for (t, deps) in dependents.into_iter().enumerate() {
            let start = self.out.dependents.len();
            self.out.dependents.extend(deps);
            self.out.rules[t].dependents = span(start, self.out.dependents.len() - start);
        }
    }

    /// Reports every distinct cycle once; returns which rules reach a cycle.
    fn find_cycles(&mut self, graph: &[Vec<Link>]) -> Vec<bool> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Open,
            Done,
        }
        let n = graph.len();
        let mut mark = vec![Mark::New; n];
        let mut bad = vec![false; n];
        let mut seen: HashSet<Vec<usize>> = HashSet::new();
        for root in 0..n {
            if mark[root] != Mark::New {
                continue;
            }
            // Iterative depth-first search: (rule, next link to follow).
            let mut stack = vec![(root, 0usize)];
            mark[root] = Mark::Open;
            while let Some(top) = stack.last_mut() {
                let (r, next) = *top;
                if let Some(&(_, t, file, pos)) = graph[r].get(next) {
                    top.1 += 1;
                    match mark[t] {
                        Mark::New => {
                            mark[t] = Mark::Open;
                            stack.push((t, 0));
                        }
                        Mark::Open => {
                            let from = stack.iter().position(|&(s, _)| s == t).unwrap_or(0);
                            let cycle: Vec<usize> = stack[from..].iter().map(|&(s, _)| s).collect();
                            let mut key = cycle.clone();
                            key.sort_unstable();
                            for &s in &cycle {
                                bad[s] = true;
                            }
                            if seen.insert(key) {
                                let p = self.out.program();
                                let mut names: Vec<String> = cycle
                                    .iter()
                                    .map(|&s| p.str(self.out.rules[s].name).to_string())
                                    .collect();
                                names.push(names[0].clone());
                                self.errors
                                    .push((file, pos, Error::ChainCycle { cycle: names }));
                            }
                        }
                        Mark::Done => bad[r] |= bad[t],
                    }
                } else {
                    mark[r] = Mark::Done;
                    stack.pop();
                    if let Some(&(parent, _)) = stack.last() {
                        bad[parent] |= bad[r];
                    }
                }
            }
        }
        bad
    }

    /// Builds the tag index, checks the result, and hands it out, or every error found.
    fn finish(mut self) -> Result<Compiled, Errors> {
        let mut slots = vec![
            IndexSlot {
                prefix: StrRef::default(),
                entry: 0,
                literal: false,
            };
            self.out.entries.len()
        ];
        match reflex_core::tag::build_index(&self.out.strings, &self.out.entries, &mut slots) {
            Some(lens) => {
                let mut table = vec![0; reflex_core::tag::prefix_table_len(slots.len())];
                // The length comes from prefix_table_len, which build_prefix_table accepts.
                let built =
                    reflex_core::tag::build_prefix_table(&self.out.strings, &slots, &mut table);
                debug_assert!(built);
                self.out.index = slots;
                self.out.prefix_lens = lens;
                self.out.prefix_table = table;
            }
            // Only a glob over the length limit makes this fail, and that is reported already.
            None if !self.errors.is_empty() => {}
            None => self.errors.push((
                0,
                Pos { line: 1, col: 1 },
                Error::TooMany {
                    what: "bytes of a tag glob's literal prefix".into(),
                    count: 128,
                    max: 127,
                },
            )),
        }
        if self.errors.is_empty() {
            if let Err(e) = self.out.program().validate() {
                self.errors
                    .push((0, Pos { line: 1, col: 1 }, Error::Invalid(e.to_string())));
            }
        }
        if self.errors.is_empty() {
            return Ok(self.out);
        }
        let mut errors = self.errors;
        errors.sort_by_key(|(file, pos, _)| (*file, *pos));
        let files = &self.out.files;
        Err(Errors(
            errors
                .into_iter()
                .map(|(file, pos, error)| Diagnostic {
                    file: files.get(file).cloned().unwrap_or_default(),
                    line: pos.line,
                    col: pos.col,
                    error,
                })
                .collect(),
        ))
    }
}

/// Per rule: how many chain links its evaluation follows, counting the links of the rules it
/// reaches (`None` for rules that reach a cycle).
fn chain_reach(graph: &[Vec<Link>], bad: &[bool]) -> Vec<Option<usize>> {
    let n = graph.len();
    let mut reach: Vec<Option<usize>> = vec![None; n];
    for root in 0..n {
        if bad[root] || reach[root].is_some() {
            continue;
        }
        let mut stack = vec![(root, false)];
        while let Some((r, expanded)) = stack.pop() {
            if reach[r].is_some() {
                continue;
            }
            if expanded {
                let total = graph[r].iter().fold(0usize, |acc, &(_, t, _, _)| {
                    acc.saturating_add(1).saturating_add(reach[t].unwrap_or(0))
                });
                reach[r] = Some(total);
            } else {
                stack.push((r, true));
                for &(_, t, _, _) in &graph[r] {
                    if reach[t].is_none() {
                        stack.push((t, false));
                    }
                }
            }
        }
    }
    reach
}

/// Whether a scalar holds a substitution (a bare word or a placeholder).
fn is_template(v: &Node) -> bool {
    match &v.kind {
        Kind::Scalar { text, plain } => match template::parse(text, *plain) {
            Ok(pieces) => pieces.iter().any(|p| !matches!(p, Piece::Lit(_))),
            Err(_) => true,
        },
        _ => false,
    }
}

/// `reactions.<module>.<function>` split.
fn module_function(key: &str) -> (&str, &str) {
    let mut parts = key.splitn(3, '.').skip(1);
    (parts.next().unwrap_or(""), parts.next().unwrap_or(""))
}

fn span(start: usize, len: usize) -> Span {
    Span {
        start: to_u32(start),
        len: to_u32(len),
    }
}

/// Table sizes are bounded far below `u32::MAX` by [`yaml::MAX_NODES`] per file.
fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_rule(body: &str) -> Compiled {
        let text = format!("/t/*:\n  rules:\n    - r: {{{body}}}\n");
        compile_str("t.yml", &text, &Catalog::builtin()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn defaults() {
        let c = one_rule("rule: rules.simple.changed");
        let r = c.program().rules[0];
        assert_eq!(r.register, RegisterFn::Last);
        assert_eq!(r.period_ms, DEFAULT_PERIOD_S * 1000);
        assert_eq!(c.program().str(r.field), "r");
        assert_eq!(r.group_by, GroupBy::Source);
        assert_eq!(r.fire, Fire::Edge);
        assert_eq!(r.cooldown_ms, 0);
        assert_eq!(r.reactions.len, 0);
    }

    #[test]
    fn settings() {
        let c = one_rule(
            "rule: rules.simple.eq, threshold: false, period: 0.25, fire: always, cooldown: 1.5, \
             group_by: disk, reactions: [reactions.log.print]",
        );
        let p = c.program();
        let r = p.rules[0];
        assert_eq!((r.lo, r.hi), (0.0, 0.0));
        assert_eq!(r.period_ms, 250);
        assert_eq!(r.fire, Fire::Always);
        assert_eq!(r.cooldown_ms, 1500);
        assert!(matches!(r.group_by, GroupBy::Field(f) if p.str(f) == "disk"));
        assert_eq!(p.str(p.reactions[0].key), "reactions.log.print");
        assert_eq!(p.reactions[0].func, 3);
        for (word, want) in [("tag", GroupBy::Tag), ("none", GroupBy::Nothing)] {
            let c = one_rule(&format!("rule: rules.simple.changed, group_by: {word}"));
            assert_eq!(c.program().rules[0].group_by, want);
        }
        let c = one_rule("rule: rules.simple.between, threshold: [-1, 0x10]");
        assert_eq!(
            (c.program().rules[0].lo, c.program().rules[0].hi),
            (-1.0, 16.0)
        );
    }

    #[test]
    fn nested_args_flatten_and_quoted_words_stay_literal() {
        let c = one_rule(
            "rule: rules.simple.changed, reactions: [{reactions.http.post: {url: 'http://h/x', \
             json: {text: value, quoted: 'value', n: 3, deep: {a: [tag, b]}}}}]",
        );
        let p = c.program();
        let shown = |segs: &[Segment]| -> String {
            segs.iter()
                .map(|s| match s {
                    Segment::Lit(r) => p.str(*r).to_string(),
                    other => format!("<{other:?}>"),
                })
                .collect()
        };
        let args: Vec<(&str, bool, String)> = p
            .args_of(&p.reactions[0])
            .iter()
            .map(|a| (p.str(a.name), a.item, shown(p.segments_of(a.value))))
            .collect();
        let want = [
            ("url", false, "http://h/x"),
            ("json.text", false, "<Value>"),
            ("json.quoted", false, "value"),
            ("json.n", false, "3"),
            ("json.deep.a", true, "<Tag>"),
            ("json.deep.a", true, "b"),
        ];
        let want: Vec<(&str, bool, String)> = want
            .iter()
            .map(|&(n, i, s)| (n, i, s.to_string()))
            .collect();
        assert_eq!(args, want);
    }
}
