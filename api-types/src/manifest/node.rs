//! A YAML document as a tree of nodes that know where they were written, built from parser
//! events with the safety limits enforced while parsing.

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Largest document accepted, in bytes (the API server's body limit).
pub const MAX_DOCUMENT_BYTES: usize = 3 * 1024 * 1024;
/// Deepest nesting of mappings and sequences accepted.
pub const MAX_DEPTH: usize = 64;
/// Most nodes one document may expand to, counting every alias expansion: a defence against
/// "billion laughs" documents that are small on disk and huge in memory.
pub const MAX_NODES: usize = 100_000;

/// Mappings with fewer entries than this are checked for duplicate keys by a linear scan.
const SCAN_LIMIT: usize = 16;

/// A position in a file, 1-based.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

impl From<&Span> for Pos {
    fn from(span: &Span) -> Self {
        Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

/// A value with the position it starts at.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// What the node holds.
    pub value: Value,
    /// Where it starts.
    pub pos: Pos,
}

/// A YAML value resolved with the YAML 1.2 core schema.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// An integer too large for 64 bits, kept as written.
    BigInt(String),
    /// A floating-point number.
    Float(f64),
    /// Any other scalar, or a quoted one.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order, keys unique.
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// Describes the value's type for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::BigInt(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a sequence",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// The value under `key` when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(&k.value, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Levels of collections below and including this node (a scalar is 0). Trees built
    /// here are at most `MAX_DEPTH` deep, which bounds this recursion.
    fn depth(&self) -> usize {
        match &self.value {
            Value::Seq(items) => 1 + items.iter().map(Node::depth).max().unwrap_or(0),
            Value::Map(entries) => 1 + entries.iter().map(|(_, v)| v.depth()).max().unwrap_or(0),
            _ => 0,
        }
    }

    fn count(&self) -> usize {
        1 + match &self.value {
            Value::Seq(items) => items.iter().map(Node::count).sum(),
            Value::Map(entries) => entries.iter().map(|(k, v)| k.count() + v.count()).sum(),
            _ => 0,
        }
    }

    /// The scalar as text, for map keys in paths and messages.
    pub fn key_text(&self) -> String {
        match &self.value {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::BigInt(s) | Value::Str(s) => s.clone(),
            Value::Float(f) => f.to_string(),
            Value::Seq(_) => "[…]".into(),
            Value::Map(_) => "{…}".into(),
        }
    }
}

/// A document of a stream, or the reason it could not be read.
#[derive(Debug)]
pub struct Document {
    /// Where the document starts.
    pub pos: Pos,
    /// The root node; `None` for an empty document.
    pub root: Option<Node>,
}

/// Why a stream could not be read, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where the problem is.
    pub pos: Pos,
    /// What it is.
    pub message: String,
}

/// Whether `text`, written as a plain (unquoted) scalar, would read back as a string.
pub fn plain_reads_as_string(text: &str) -> bool {
    matches!(resolve_plain(text), Value::Str(_))
}

/// Resolves a plain scalar with the YAML 1.2 core schema.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<i64>() {
            Ok(i) => Value::Int(i),
            Err(_) => Value::BigInt(text.to_owned()),
        };
    }
    if let Some(octal) = text.strip_prefix("0o") {
        if !octal.is_empty() && octal.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return i64::from_str_radix(octal, 8)
                .map_or_else(|_| Value::BigInt(text.to_owned()), Value::Int);
        }
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return i64::from_str_radix(hex, 16)
                .map_or_else(|_| Value::BigInt(text.to_owned()), Value::Int);
        }
    }
    if is_core_float(text) {
        if let Ok(f) = text.parse::<f64>() {
            return Value::Float(f);
        }
    }
    Value::Str(text.to_owned())
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_core_float(text: &str) -> bool {
    let s = text.strip_prefix(['-', '+']).unwrap_or(text).as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < s.len() && s[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let int_digits = digits(&mut i);
    let mut frac_digits = 0;
    if i < s.len() && s[i] == b'.' {
        i += 1;
        frac_digits = digits(&mut i);
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if i < s.len() && (s[i] == b'e' || s[i] == b'E') {
        i += 1;
        if i < s.len() && (s[i] == b'-' || s[i] == b'+') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == s.len()
}

/// Maps character offsets (what the parser reports) to byte offsets, moving forward only.
struct ByteOffsets<'a> {
    text: &'a str,
    ascii: bool,
    chars: usize,
    bytes: usize,
}

impl ByteOffsets<'_> {
    fn byte_at(&mut self, char_index: usize) -> usize {
        if self.ascii {
            return char_index;
        }
        while self.chars < char_index && self.bytes < self.text.len() {
            let step = self.text[self.bytes..]
                .chars()
                .next()
                .map_or(1, char::len_utf8);
            self.bytes += step;
            self.chars += 1;
        }
        self.bytes
    }
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
        seen: Option<HashMap<String, Pos>>,
    },
}

/// Reads every document of `text`. Stops at the first syntax error or exceeded limit, keeping
/// the documents read before it.
pub fn parse_stream(text: &str) -> (Vec<Document>, Option<SyntaxError>) {
    let mut docs = Vec::new();
    let mut builder = Builder::new(text);
    let mut parser = Parser::new_from_str(text);
    loop {
        let (event, span) = match parser.next_event() {
            None => break,
            Some(Ok(ev)) => ev,
            Some(Err(e)) => {
                let m = e.marker();
                let pos = Pos {
                    line: m.line(),
                    column: m.col() + 1,
                };
                let message = if e.info() == "recursion limit exceeded" {
                    "nesting is too deep: more than 255 levels".to_owned()
                } else {
                    format!("invalid YAML: {}", e.info())
                };
                return (docs, Some(SyntaxError { pos, message }));
            }
        };
        match builder.on_event(event, &span) {
            Ok(Some(doc)) => docs.push(doc),
            Ok(None) => {}
            Err(e) => return (docs, Some(e)),
        }
        if builder.finished {
            break;
        }
    }
    (docs, None)
}

struct Builder<'a> {
    offsets: ByteOffsets<'a>,
    doc_pos: Pos,
    doc_start_byte: usize,
    stack: Vec<Frame>,
    root: Option<Node>,
    /// Anchored nodes with their depth, so an alias cannot nest past `MAX_DEPTH`.
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
    finished: bool,
}

impl<'a> Builder<'a> {
    fn new(text: &'a str) -> Self {
        Builder {
            offsets: ByteOffsets {
                text,
                ascii: text.is_ascii(),
                chars: 0,
                bytes: 0,
            },
            doc_pos: Pos { line: 1, column: 1 },
            doc_start_byte: 0,
            stack: Vec::new(),
            root: None,
            anchors: HashMap::new(),
            nodes: 0,
            finished: false,
        }
    }

    fn on_event(&mut self, event: Event<'_>, span: &Span) -> Result<Option<Document>, SyntaxError> {
        let pos = Pos::from(span);
        if !matches!(
            event,
            Event::StreamStart | Event::StreamEnd | Event::DocumentStart(_)
        ) {
            let end = self.offsets.byte_at(span.end.index());
            if end.saturating_sub(self.doc_start_byte) > MAX_DOCUMENT_BYTES {
                return Err(SyntaxError {
                    pos: self.doc_pos,
                    message: format!(
                        "document is larger than the {} MiB limit",
                        MAX_DOCUMENT_BYTES / (1024 * 1024)
                    ),
                });
            }
        }
        match event {
            Event::StreamStart | Event::Nothing => {}
            Event::StreamEnd => self.finished = true,
            Event::DocumentStart(_) => {
                self.doc_pos = pos;
                self.doc_start_byte = self.offsets.byte_at(span.start.index());
                self.root = None;
                self.anchors.clear();
                self.nodes = 0;
            }
            Event::DocumentEnd => {
                return Ok(Some(Document {
                    pos: self.doc_pos,
                    root: self.root.take(),
                }));
            }
            Event::Alias(id) => {
                let (node, depth) = self.anchors.get(&id).cloned().ok_or_else(|| SyntaxError {
                    pos,
                    message: "alias refers to an unknown anchor".into(),
                })?;
                if self.stack.len() + depth > MAX_DEPTH {
                    return Err(SyntaxError {
                        pos,
                        message: format!("nesting is deeper than the limit of {MAX_DEPTH} levels (through aliases)"),
                    });
                }
                let count = node.count();
                self.add_nodes(count, pos)?;
                self.push_node(Node {
                    value: node.value,
                    pos,
                })?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.add_nodes(1, pos)?;
                let value = match tag {
                    Some(tag) if tag.handle == "tag:yaml.org,2002:" || tag.handle == "!!" => {
                        match tag.suffix.as_str() {
                            "str" => Value::Str(text.into_owned()),
                            "null" | "bool" | "int" | "float" => resolve_plain(&text),
                            other => {
                                return Err(SyntaxError {
                                    pos,
                                    message: format!("unsupported tag !!{other}"),
                                })
                            }
                        }
                    }
                    Some(tag) => {
                        return Err(SyntaxError {
                            pos,
                            message: format!("unsupported tag {}{}", tag.handle, tag.suffix),
                        })
                    }
                    None if style == ScalarStyle::Plain => resolve_plain(&text),
                    None => Value::Str(text.into_owned()),
                };
                let node = Node { value, pos };
                if anchor > 0 {
                    self.anchors.insert(anchor, (node.clone(), 0));
                }
                self.push_node(node)?;
            }
            Event::SequenceStart(anchor, ref tag) | Event::MappingStart(anchor, ref tag) => {
                if let Some(tag) = tag {
                    let known = (tag.handle == "!!" || tag.handle == "tag:yaml.org,2002:")
                        && matches!(tag.suffix.as_str(), "seq" | "map");
                    if !known {
                        return Err(SyntaxError {
                            pos,
                            message: format!("unsupported tag {}{}", tag.handle, tag.suffix),
                        });
                    }
                }
                self.add_nodes(1, pos)?;
                if self.stack.len() >= MAX_DEPTH {
                    return Err(SyntaxError {
                        pos,
                        message: format!("nesting is deeper than the limit of {MAX_DEPTH} levels"),
                    });
                }
                self.stack
                    .push(if matches!(event, Event::SequenceStart(..)) {
                        Frame::Seq {
                            pos,
                            anchor,
                            items: Vec::new(),
                        }
                    } else {
                        Frame::Map {
                            pos,
                            anchor,
                            entries: Vec::new(),
                            pending_key: None,
                            seen: None,
                        }
                    });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq { pos, anchor, items }) => (
                        Node {
                            value: Value::Seq(items),
                            pos,
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        pos,
                        anchor,
                        entries,
                        ..
                    }) => (
                        Node {
                            value: Value::Map(entries),
                            pos,
                        },
                        anchor,
                    ),
                    None => {
                        return Err(SyntaxError {
                            pos,
                            message: "invalid YAML: unbalanced collection end".into(),
                        })
                    }
                };
                let (node, anchor) = node;
                if anchor > 0 {
                    let depth = node.depth();
                    self.anchors.insert(anchor, (node.clone(), depth));
                }
                self.push_node(node)?;
            }
        }
        Ok(None)
    }

    fn add_nodes(&mut self, count: usize, pos: Pos) -> Result<(), SyntaxError> {
        self.nodes = self.nodes.saturating_add(count);
        if self.nodes > MAX_NODES {
            return Err(SyntaxError {
                pos,
                message: format!(
                    "document expands to more than {MAX_NODES} values (are aliases expanding exponentially?)"
                ),
            });
        }
        Ok(())
    }

    fn push_node(&mut self, node: Node) -> Result<(), SyntaxError> {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                seen,
                ..
            }) => match pending_key.take() {
                None => {
                    if matches!(node.value, Value::Seq(_) | Value::Map(_)) {
                        return Err(SyntaxError {
                            pos: node.pos,
                            message: "mapping keys must be scalars".into(),
                        });
                    }
                    // Small mappings (nearly all of them) are checked by a scan, which costs
                    // less than hashing; large ones get an index once they grow.
                    let first = if entries.len() < SCAN_LIMIT {
                        entries
                            .iter()
                            .find(|(k, _)| k.value == node.value)
                            .map(|(k, _)| k.pos)
                    } else {
                        let index = seen.get_or_insert_with(|| {
                            entries.iter().map(|(k, _)| (k.key_text(), k.pos)).collect()
                        });
                        match index.entry(node.key_text()) {
                            std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
                            std::collections::hash_map::Entry::Vacant(e) => {
                                e.insert(node.pos);
                                None
                            }
                        }
                    };
                    if let Some(first) = first {
                        return Err(SyntaxError {
                            pos: node.pos,
                            message: format!(
                                "duplicate key {:?} (first defined at line {}, column {})",
                                node.key_text(),
                                first.line,
                                first.column
                            ),
                        });
                    }
                    *pending_key = Some(node);
                }
                Some(key) => entries.push((key, node)),
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        let (mut docs, err) = parse_stream(text);
        assert_eq!(err, None);
        docs.remove(0).root.expect("a root node")
    }

    #[test]
    fn scalars_should_resolve_with_the_core_schema() {
        let node = one(
            "[1, -2, 0x1f, 0o17, 1.5, .inf, true, null, ~, yes, '3', \"x\", 99999999999999999999]",
        );
        let Value::Seq(items) = node.value else {
            panic!("not a sequence")
        };
        let values: Vec<Value> = items.into_iter().map(|n| n.value).collect();
        assert_eq!(
            values,
            vec![
                Value::Int(1),
                Value::Int(-2),
                Value::Int(31),
                Value::Int(15),
                Value::Float(1.5),
                Value::Float(f64::INFINITY),
                Value::Bool(true),
                Value::Null,
                Value::Null,
                Value::Str("yes".into()),
                Value::Str("3".into()),
                Value::Str("x".into()),
                Value::BigInt("99999999999999999999".into()),
            ]
        );
    }

    #[test]
    fn positions_should_be_one_based() {
        let node = one("a: 1\nb:\n  c: x\n");
        let c = node.get("b").and_then(|b| b.get("c")).expect("b.c");
        assert_eq!(c.pos, Pos { line: 3, column: 6 });
    }

    #[test]
    fn duplicate_keys_should_be_refused_where_repeated() {
        let (_, err) = parse_stream("a: 1\nb: 2\na: 3\n");
        let err = err.expect("an error");
        assert_eq!(err.pos, Pos { line: 3, column: 1 });
        assert!(err
            .message
            .contains("duplicate key \"a\" (first defined at line 1, column 1)"));
    }

    #[test]
    fn alias_expansion_should_be_bounded() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let names = ["b", "c", "d", "e", "f", "g", "h", "i"];
        let mut prev = "a";
        for name in names {
            bomb.push_str(&format!("{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
            prev = name;
        }
        let (_, err) = parse_stream(&bomb);
        assert!(err
            .expect("refused")
            .message
            .contains("expands to more than"));
    }

    #[test]
    fn aliases_should_not_nest_past_the_depth_limit() {
        // Each anchor nests the previous one 40 levels deeper: small on disk, thousands of
        // levels once expanded, which would overflow a recursive walk of the tree.
        let mut text = String::new();
        let mut prev: Option<String> = None;
        for i in 0..10 {
            let inner = prev.map_or_else(|| "x".to_owned(), |p| format!("*{p}"));
            text.push_str(&format!(
                "a{i}: &a{i} {}{inner}{}\n",
                "[".repeat(40),
                "]".repeat(40)
            ));
            prev = Some(format!("a{i}"));
        }
        let (_, err) = parse_stream(&text);
        let err = err.expect("refused");
        assert!(err.message.contains("through aliases"), "{}", err.message);
    }

    #[test]
    fn deep_nesting_should_be_refused_early() {
        // Flow collections hit the scanner's own limit before any event reaches the builder.
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        let (_, err) = parse_stream(&deep);
        let err = err.expect("refused");
        assert_eq!(
            err.pos,
            Pos {
                line: 1,
                column: 256
            }
        );
        assert_eq!(err.message, "nesting is too deep: more than 255 levels");
        // Block collections are bounded by the builder.
        let mut block = String::new();
        for depth in 0..100 {
            block.push_str(&" ".repeat(depth));
            block.push_str("a:\n");
        }
        let (_, err) = parse_stream(&block);
        let err = err.expect("refused");
        assert_eq!(
            err.pos,
            Pos {
                line: 65,
                column: 65
            }
        );
        assert_eq!(err.message, "nesting is deeper than the limit of 64 levels");
    }
}
