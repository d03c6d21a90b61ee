//! Every shape error of a document at once. serde stops at the first error; when it does,
//! the document is walked against its kind's JSON Schema (the one `manifests/schemas/`
//! holds, generated from the same types), which reports every wrong type, unknown field
//! and unknown variant, each where it was written, in the words of YAML (no Rust type
//! names), with "did you mean" for a misspelt or misplaced field.
//!
//! The walk only adds errors when serde already failed: a document serde accepts is never
//! refused by it, and when the walk finds nothing, serde's own error is reported.

use serde_json::{Map, Value as Json};

use super::node::{Node, Pos, Value};
use crate::path::FieldPath;

/// One problem: the field, where it was written, what is wrong.
pub type Problem = (FieldPath, Pos, String);

/// The problems of `root` against `schema` (a schemars root schema with `$defs`), in
/// document order.
pub fn check(root: &Node, schema: &Json) -> Vec<Problem> {
    let empty = Map::new();
    let defs = schema
        .get("$defs")
        .and_then(Json::as_object)
        .unwrap_or(&empty);
    let mut checker = Checker {
        defs,
        problems: Vec::new(),
    };
    checker.node(root, schema, &FieldPath::root(), None);
    let mut problems = checker.problems;
    problems.sort_by_key(|(_, pos, _)| *pos);
    problems
}

struct Checker<'a> {
    defs: &'a Map<String, Json>,
    problems: Vec<Problem>,
}

/// The object one level up, for "did you mean" of a field written one level too deep.
#[derive(Clone, Copy)]
struct Parent<'s> {
    path: &'s FieldPath,
    schema: &'s Json,
}

impl<'a> Checker<'a> {
    /// `schema` with `$ref`s followed.
    fn resolve<'s>(&self, mut schema: &'s Json) -> &'s Json
    where
        'a: 's,
    {
        for _ in 0..16 {
            let Some(name) = schema
                .get("$ref")
                .and_then(Json::as_str)
                .and_then(|r| r.strip_prefix("#/$defs/"))
            else {
                break;
            };
            match self.defs.get(name) {
                Some(def) => schema = def,
                None => break,
            }
        }
        schema
    }

    fn push(&mut self, path: &FieldPath, pos: Pos, message: String) {
        self.problems.push((path.clone(), pos, message));
    }

    fn node(&mut self, node: &Node, schema: &Json, path: &FieldPath, parent: Option<Parent<'_>>) {
        let schema = self.resolve(schema);
        if let Some(branches) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Json::as_array)
        {
            self.any_of(node, schema, branches, path, parent);
            return;
        }
        if let Some(constant) = schema.get("const") {
            let same = match (&node.value, constant) {
                (Value::Str(s), Json::String(c)) => s == c,
                (Value::Bool(b), Json::Bool(c)) => b == c,
                (Value::Int(i), Json::Number(c)) => c.as_i64() == Some(*i),
                _ => false,
            };
            if !same {
                let message = format!("invalid value: {}, expected `{constant}`", got(&node.value));
                self.push(path, node.pos, message);
            }
            return;
        }
        if let Some(variants) = schema.get("enum").and_then(Json::as_array) {
            let known = variants.iter().any(|v| match (&node.value, v) {
                (Value::Str(s), Json::String(w)) => s == w,
                (Value::Null, Json::Null) => true,
                _ => false,
            });
            if !known {
                let names: Vec<String> = variants
                    .iter()
                    .filter_map(Json::as_str)
                    .map(|v| format!("`{v}`"))
                    .collect();
                let message = match &node.value {
                    Value::Str(s) => {
                        format!("unknown value `{s}`, expected one of {}", names.join(", "))
                    }
                    _ => format!(
                        "invalid type: {}, expected one of {}",
                        got(&node.value),
                        names.join(", ")
                    ),
                };
                self.push(path, node.pos, message);
            }
            return;
        }
        let types = types(schema);
        if types.is_empty() {
            return;
        }
        let fits = |t: &str| types.contains(&t);
        match &node.value {
            Value::Null if fits("null") || fits("object") || fits("array") => {}
            Value::Bool(_) if fits("boolean") => {}
            Value::Int(i) if fits("integer") || fits("number") => {
                // The ranges validation would check, had decoding got that far.
                let min = schema.get("minimum").and_then(Json::as_f64);
                let max = schema.get("maximum").and_then(Json::as_f64);
                #[allow(
                    clippy::cast_precision_loss,
                    reason = "a range check of a manifest integer"
                )]
                let v = *i as f64;
                if min.is_some_and(|m| v < m) || max.is_some_and(|m| v > m) {
                    let message = match (min, max) {
                        (Some(a), Some(b)) => format!("must be between {a} and {b}, got {i}"),
                        (Some(a), None) => format!("must be at least {a}, got {i}"),
                        (None, Some(b)) => format!("must be at most {b}, got {i}"),
                        (None, None) => String::new(),
                    };
                    self.push(path, node.pos, message);
                }
            }
            Value::BigInt(text) if fits("integer") || fits("number") => {
                self.push(path, node.pos, format!("integer {text} is out of range"));
            }
            Value::Float(_) if fits("number") => {}
            Value::Str(_) if fits("string") => {}
            Value::Seq(items) if fits("array") => {
                if let Some(item) = schema.get("items") {
                    for (i, n) in items.iter().enumerate() {
                        self.node(n, item, &path.index(i), None);
                    }
                }
            }
            Value::Map(entries) if fits("object") => {
                self.mapping(node, entries, schema, path, parent)
            }
            other => {
                let message = format!(
                    "invalid type: {}, expected {}",
                    got(other),
                    self.describe(schema, 0)
                );
                self.push(path, node.pos, message);
            }
        }
    }

    fn any_of(
        &mut self,
        node: &Node,
        schema: &Json,
        branches: &[Json],
        path: &FieldPath,
        parent: Option<Parent<'_>>,
    ) {
        let mut outcomes = Vec::new();
        for branch in branches {
            let mut sub = Checker {
                defs: self.defs,
                problems: Vec::new(),
            };
            sub.node(node, branch, path, parent);
            if sub.problems.is_empty() {
                return;
            }
            outcomes.push((branch, sub.problems));
        }
        // Named values (an enum with documented variants): which ones there are.
        let constants: Option<Vec<String>> = branches
            .iter()
            .map(|b| self.resolve(b))
            .filter(|b| types(b) != ["null"])
            .map(|b| {
                b.get("const")
                    .and_then(Json::as_str)
                    .map(|c| format!("`{c}`"))
            })
            .collect();
        if let Some(names) = constants.filter(|n| !n.is_empty()) {
            let message = match &node.value {
                Value::Str(s) => {
                    format!("unknown value `{s}`, expected one of {}", names.join(", "))
                }
                other => format!(
                    "invalid type: {}, expected one of {}",
                    got(other),
                    names.join(", ")
                ),
            };
            self.push(path, node.pos, message);
            return;
        }
        // An optional value (`X` or null): what is wrong with it as an `X`.
        let (non_null, nulls): (Vec<_>, Vec<_>) = outcomes
            .into_iter()
            .partition(|(b, _)| types(self.resolve(b)) != ["null"]);
        if let ([(_, problems)], [_]) = (non_null.as_slice(), nulls.as_slice()) {
            self.problems.extend(problems.iter().cloned());
            return;
        }
        // The branch of the node's own shape (a mapping for an object, text for a string)
        // says what is wrong inside it; otherwise, what was expected.
        let shaped: Vec<_> = non_null
            .into_iter()
            .filter(|(b, _)| {
                let t = types(self.resolve(b));
                match &node.value {
                    Value::Map(_) => t.contains(&"object"),
                    Value::Seq(_) => t.contains(&"array"),
                    Value::Str(_) => t.contains(&"string") || self.resolve(b).get("enum").is_some(),
                    _ => false,
                }
            })
            .collect();
        if let [(_, problems)] = shaped.as_slice() {
            self.problems.extend(problems.iter().cloned());
            return;
        }
        let message = format!(
            "invalid type: {}, expected {}",
            got(&node.value),
            self.describe(schema, 0)
        );
        self.push(path, node.pos, message);
    }

    fn mapping(
        &mut self,
        node: &Node,
        entries: &[(Node, Node)],
        schema: &Json,
        path: &FieldPath,
        parent: Option<Parent<'_>>,
    ) {
        let empty = Map::new();
        let properties = schema
            .get("properties")
            .and_then(Json::as_object)
            .unwrap_or(&empty);
        let additional = schema.get("additionalProperties");
        for (key, value) in entries {
            let Value::Str(name) = &key.value else {
                self.push(
                    path,
                    key.pos,
                    format!("a key must be text, got {}", got(&key.value)),
                );
                continue;
            };
            let field = path.key(name.clone());
            if let Some(property) = properties.get(name) {
                let here = Parent { path, schema };
                self.node(value, property, &field, Some(here));
            } else {
                match additional {
                    Some(Json::Bool(false)) => {
                        let message = self.unknown(name, properties, path, parent);
                        self.push(&field, key.pos, message);
                    }
                    Some(inner @ Json::Object(_)) => self.node(value, inner, &field, None),
                    _ => {}
                }
            }
        }
        let _ = node;
    }

    /// "unknown field `x`, expected one of …", with a "did you mean" when the field is
    /// misspelt (edit distance 2 or less) or belongs one level down or up.
    fn unknown(
        &self,
        name: &str,
        properties: &Map<String, Json>,
        path: &FieldPath,
        parent: Option<Parent<'_>>,
    ) -> String {
        let expected: Vec<String> = properties.keys().map(|k| format!("`{k}`")).collect();
        let list = if expected.is_empty() {
            "there are no fields here".to_owned()
        } else {
            format!("expected one of {}", expected.join(", "))
        };
        let hint = self.hint(name, properties, path, parent);
        match hint {
            Some(h) => format!("unknown field `{name}` (did you mean `{h}`?), {list}"),
            None => format!("unknown field `{name}`, {list}"),
        }
    }

    fn hint(
        &self,
        name: &str,
        properties: &Map<String, Json>,
        path: &FieldPath,
        parent: Option<Parent<'_>>,
    ) -> Option<String> {
        // Misspelt here.
        let mut close: Vec<(usize, &String)> = properties
            .keys()
            .map(|k| {
                (
                    distance(&name.to_ascii_lowercase(), &k.to_ascii_lowercase()),
                    k,
                )
            })
            .filter(|(d, _)| *d <= 2)
            .collect();
        close.sort();
        if let Some((best, k)) = close.first() {
            if close.iter().filter(|(d, _)| d == best).count() == 1 {
                return Some((*k).clone());
            }
        }
        // Abbreviated or spelt out (`environment` for `env`): one starts the other.
        let lower = name.to_ascii_lowercase();
        let prefixed: Vec<&String> = properties
            .keys()
            .filter(|k| {
                let k = k.to_ascii_lowercase();
                k.len() >= 3 && lower.len() >= 3 && (lower.starts_with(&k) || k.starts_with(&lower))
            })
            .collect();
        if let [only] = prefixed.as_slice() {
            return Some((*only).clone());
        }
        // Written one level too high: a field of one of this object's fields.
        for (child, schema) in properties {
            let resolved = self.object_of(schema);
            if resolved
                .and_then(|s| s.get("properties"))
                .and_then(Json::as_object)
                .is_some_and(|p| p.contains_key(name))
            {
                return Some(path.key(child.clone()).key(name.to_owned()).to_string());
            }
        }
        // Written one level too deep: a field of the object above.
        if let Some(parent) = parent {
            if self
                .resolve(parent.schema)
                .get("properties")
                .and_then(Json::as_object)
                .is_some_and(|p| p.contains_key(name))
            {
                return Some(parent.path.key(name.to_owned()).to_string());
            }
        }
        None
    }

    /// The object schema `schema` stands for, through `$ref` and an `anyOf` with null.
    fn object_of<'s>(&self, schema: &'s Json) -> Option<&'s Json>
    where
        'a: 's,
    {
        let schema = self.resolve(schema);
        if types(schema).contains(&"object") {
            return Some(schema);
        }
        schema
            .get("anyOf")
            .and_then(Json::as_array)?
            .iter()
            .map(|b| self.resolve(b))
            .find(|b| types(b).contains(&"object"))
    }

    /// What a value of `schema` is, in words.
    fn describe(&self, schema: &Json, depth: usize) -> String {
        let schema = self.resolve(schema);
        if let Some(branches) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Json::as_array)
        {
            let mut words: Vec<String> = branches
                .iter()
                .filter(|b| types(self.resolve(b)) != ["null"])
                .map(|b| self.describe(b, depth + 1))
                .collect();
            words.dedup();
            return words.join(" or ");
        }
        if let Some(variants) = schema.get("enum").and_then(Json::as_array) {
            let names: Vec<String> = variants
                .iter()
                .filter_map(Json::as_str)
                .map(|v| format!("`{v}`"))
                .collect();
            return format!("one of {}", names.join(", "));
        }
        if let Some(constant) = schema.get("const") {
            return format!(
                "`{}`",
                constant
                    .as_str()
                    .map_or_else(|| constant.to_string(), str::to_owned)
            );
        }
        let words: Vec<String> = types(schema)
            .into_iter()
            .filter(|t| *t != "null")
            .map(|t| match t {
                "object" => match schema.get("properties").and_then(Json::as_object) {
                    Some(p) if !p.is_empty() => {
                        let names: Vec<&str> = p.keys().map(String::as_str).take(8).collect();
                        let more = if p.len() > 8 { ", …" } else { "" };
                        format!("a mapping with {}{more}", names.join(", "))
                    }
                    _ => match schema.get("additionalProperties") {
                        Some(inner @ Json::Object(_)) if depth < 2 => {
                            format!("a mapping of names to {}", self.describe(inner, depth + 1))
                        }
                        _ => "a mapping".to_owned(),
                    },
                },
                "array" => match schema.get("items") {
                    Some(item) if depth < 2 => {
                        format!("a list (of {})", self.describe(item, depth + 1))
                    }
                    _ => "a list".to_owned(),
                },
                "string" => "a string".to_owned(),
                "integer" => "an integer".to_owned(),
                "number" => "a number".to_owned(),
                "boolean" => "a boolean".to_owned(),
                other => other.to_owned(),
            })
            .collect();
        words.join(" or ")
    }
}

/// The JSON types `schema` allows (none: anything).
fn types(schema: &Json) -> Vec<&str> {
    match schema.get("type") {
        Some(Json::String(t)) => vec![t.as_str()],
        Some(Json::Array(ts)) => ts.iter().filter_map(Json::as_str).collect(),
        _ => Vec::new(),
    }
}

/// What the document holds, for a message.
fn got(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Int(i) => format!("integer `{i}`"),
        Value::BigInt(text) => format!("integer `{text}`"),
        Value::Float(f) => format!("floating point `{f}`"),
        Value::Str(s) => format!("string {s:?}"),
        Value::Seq(_) => "a list".to_owned(),
        Value::Map(_) => "a mapping".to_owned(),
    }
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::distance;

    #[test]
    fn distance_should_count_edits() {
        assert_eq!(distance("enviroment", "env"), 7);
        assert_eq!(distance("replica", "replicas"), 1);
        assert_eq!(distance("imagee", "image"), 1);
        assert_eq!(distance("", "ab"), 2);
    }
}
