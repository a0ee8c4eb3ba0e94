//! A small YAML tree that remembers where every node and every key was written.
//!
//! Built from yaml-rust2's marked event parser (serde_yaml keeps no positions). Only what a
//! rulebook needs: maps (in document order), lists and scalars, each with a 1-based line and
//! column. Anchors and aliases are expanded; nesting and alias expansion are bounded so that
//! hostile input cannot exhaust the stack or memory.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::diagnostic::Error;

/// Deepest nesting of maps and lists accepted.
pub const MAX_DEPTH: usize = 64;
/// Most nodes one file may expand to (aliases included).
pub const MAX_NODES: usize = 2_000_000;

/// A place in a file: line and column, both from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub col: u32,
}

impl Pos {
    fn of(m: Marker) -> Pos {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Pos {
            line: clamp(m.line()).max(1),
            col: clamp(m.col()).saturating_add(1),
        }
    }
}

/// A node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where it starts.
    pub pos: Pos,
    /// What it holds.
    pub kind: Kind,
}

/// What a node holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Key/value pairs in document order (keys are nodes too, with their own positions).
    Map(Vec<(Node, Node)>),
    /// Items in order.
    Seq(Vec<Node>),
    /// A scalar's text, and whether it was written plain (unquoted, not a block scalar).
    Scalar {
        /// The text.
        text: String,
        /// Written plain: unquoted and not a block scalar.
        plain: bool,
    },
}

impl Node {
    /// "a map", "a list", "a number"... for messages.
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            Kind::Map(_) => "a map",
            Kind::Seq(_) => "a list",
            Kind::Scalar { .. } if self.is_null() => "nothing",
            Kind::Scalar { .. } if self.number().is_some() => "a number",
            Kind::Scalar { text, plain: true } if matches!(text.as_str(), "true" | "false") => {
                "a boolean"
            }
            Kind::Scalar { .. } => "a string",
        }
    }

    /// The scalar's text, whatever its YAML type.
    pub fn scalar(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The scalar's text when it is a string (not null, not a number, not a boolean).
    pub fn string(&self) -> Option<&str> {
        match self.describe() {
            "a string" => self.scalar(),
            _ => None,
        }
    }

    /// A plain `~`, `null` or empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The value of a plain numeric scalar (YAML core schema: decimal, `0x`, `0o`, floats;
    /// infinities and NaN are not numbers here).
    pub fn number(&self) -> Option<f64> {
        let Kind::Scalar { text, plain: true } = &self.kind else {
            return None;
        };
        let t = text.as_str();
        let (neg, digits) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let radix = |prefix: &str, radix: u32| {
            digits
                .strip_prefix(prefix)
                .and_then(|d| i64::from_str_radix(d, radix).ok())
                .map(|v| if neg { -(v as f64) } else { v as f64 })
        };
        if let Some(v) = radix("0x", 16).or_else(|| radix("0o", 8)) {
            return Some(v);
        }
        let numeric = !digits.is_empty()
            && digits.bytes().any(|b| b.is_ascii_digit())
            && digits
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
        if !numeric {
            return None;
        }
        t.parse::<f64>().ok().filter(|v| v.is_finite())
    }

    /// The map's entries.
    pub fn map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The list's items.
    pub fn seq(&self) -> Option<&[Node]> {
        match &self.kind {
            Kind::Seq(s) => Some(s),
            _ => None,
        }
    }
}

/// The outcome of parsing one file.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The document's root; `None` for an empty file or when parsing failed.
    pub root: Option<Node>,
    /// Problems found (a syntax error ends parsing; duplicate keys do not).
    pub errors: Vec<(Pos, Error)>,
}

/// A map or list being built.
struct Frame {
    pos: Pos,
    anchor: usize,
    /// Nodes inside it so far, itself included.
    size: usize,
    /// Deepest nesting inside it so far, itself included.
    depth: usize,
    items: Vec<Node>,
    map: bool,
}

/// A finished node with its size and depth, kept for aliases.
#[derive(Clone)]
struct Anchored {
    node: Node,
    size: usize,
    depth: usize,
}

/// Parses one YAML document into a [`Node`] tree.
pub fn parse(text: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Anchored> = HashMap::new();
    let mut nodes = 0usize;
    let mut documents = 0;
    loop {
        let (event, mark) = match parser.next_token() {
            Ok(x) => x,
            Err(e) => {
                let pos = Pos::of(*e.marker());
                out.errors.push((pos, Error::Syntax(e.info().to_string())));
                out.root = None;
                return out;
            }
        };
        let pos = Pos::of(mark);
        let done = match event {
            Event::StreamEnd => return out,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    out.errors.push((pos, Error::MultipleDocuments));
                    return out;
                }
                None
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    out.errors.push((pos, Error::TooDeep { max: MAX_DEPTH }));
                    out.root = None;
                    return out;
                }
                stack.push(Frame {
                    pos,
                    anchor,
                    size: 1,
                    depth: 1,
                    items: Vec::new(),
                    map: matches!(event, Event::MappingStart(..)),
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => stack.pop().map(|f| {
                let anchor = f.anchor;
                let a = finish(f, &mut out);
                if anchor > 0 {
                    anchors.insert(anchor, a.clone());
                }
                a
            }),
            Event::Scalar(text, style, anchor, _) => {
                let node = Node {
                    pos,
                    kind: Kind::Scalar {
                        text,
                        plain: style == TScalarStyle::Plain,
                    },
                };
                let a = Anchored {
                    node,
                    size: 1,
                    depth: 0,
                };
                if anchor > 0 {
                    anchors.insert(anchor, a.clone());
                }
                Some(a)
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some(a) => {
                    let mut a = a.clone();
                    a.node.pos = pos;
                    Some(a)
                }
                None => {
                    out.errors
                        .push((pos, Error::Syntax("alias to an unknown anchor".into())));
                    return out;
                }
            },
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => None,
        };
        let Some(done) = done else { continue };
        nodes = nodes.saturating_add(done.size);
        if nodes > MAX_NODES {
            out.errors
                .push((pos, Error::TooManyNodes { max: MAX_NODES }));
            out.root = None;
            return out;
        }
        if stack.len() + done.depth > MAX_DEPTH {
            out.errors.push((pos, Error::TooDeep { max: MAX_DEPTH }));
            out.root = None;
            return out;
        }
        match stack.last_mut() {
            Some(parent) => {
                parent.size = parent.size.saturating_add(done.size);
                parent.depth = parent.depth.max(done.depth + 1);
                parent.items.push(done.node);
            }
            None => out.root = Some(done.node),
        }
    }
}

/// Turns a finished frame into a node, checking a map's keys for duplicates.
fn finish(f: Frame, out: &mut Parsed) -> Anchored {
    let kind = if f.map {
        let mut entries = Vec::with_capacity(f.items.len() / 2);
        let mut it = f.items.into_iter();
        while let Some(k) = it.next() {
            let v = it.next().unwrap_or(Node {
                pos: k.pos,
                kind: Kind::Scalar {
                    text: String::new(),
                    plain: true,
                },
            });
            entries.push((k, v));
        }
        let mut seen: HashMap<&str, Pos> = HashMap::new();
        for (k, _) in &entries {
            let Some(key) = k.scalar() else { continue };
            if let Some(first) = seen.get(key) {
                out.errors.push((
                    k.pos,
                    Error::DuplicateKey {
                        key: key.to_string(),
                        first: format!("{}:{}", first.line, first.col),
                    },
                ));
            } else {
                seen.insert(key, k.pos);
            }
        }
        Kind::Map(entries)
    } else {
        Kind::Seq(f.items)
    };
    // A block map's start mark lies after its first key; the key is where it starts.
    let pos = match &kind {
        Kind::Map(m) => m.first().map_or(f.pos, |(k, _)| k.pos.min(f.pos)),
        _ => f.pos,
    };
    Anchored {
        node: Node { pos, kind },
        size: f.size,
        depth: f.depth,
    }
}
