//! A serde `Deserializer` over [`Node`]s that reports each error with the field path and the
//! position of the innermost node it concerns.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use super::node::{Node, Pos, Value};
use crate::path::FieldPath;

/// A decoding error, located once the innermost node that failed is known.
#[derive(Debug)]
pub struct DeError {
    /// What went wrong.
    pub message: String,
    /// Where, once known.
    pub location: Option<(FieldPath, Pos)>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: humanize(&msg.to_string()),
            location: None,
        }
    }
}

/// Rewrites serde's Rust type names (`i32`, `a map`) into the words of YAML users.
fn humanize(message: &str) -> String {
    const INTEGERS: [&str; 8] = ["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64"];
    if let Some(rest) = message.strip_prefix("invalid value: integer `") {
        if let Some((number, expected)) = rest.split_once("`, expected ") {
            if INTEGERS.contains(&expected) {
                return format!("integer {number} is out of range");
            }
        }
    }
    for ty in INTEGERS {
        if let Some(head) = message.strip_suffix(&format!("expected {ty}")) {
            return format!("{head}expected an integer");
        }
    }
    message
        .replace("expected f64", "expected a number")
        .replace("expected a map", "expected a mapping")
        .replace("invalid type: map,", "invalid type: mapping,")
}

impl DeError {
    fn at(mut self, path: &FieldPath, pos: Pos) -> Self {
        if self.location.is_none() {
            self.location = Some((path.clone(), pos));
        }
        self
    }
}

/// Deserializes `T` from `node`, whose path in the document is `path`.
pub fn from_node<T: de::DeserializeOwned>(node: &Node, path: &FieldPath) -> Result<T, DeError> {
    T::deserialize(NodeDeserializer { node, path })
}

struct NodeDeserializer<'a> {
    node: &'a Node,
    path: &'a FieldPath,
}

impl NodeDeserializer<'_> {
    fn locate(&self, e: DeError) -> DeError {
        e.at(self.path, self.node.pos)
    }

    fn fail(&self, message: String) -> DeError {
        DeError {
            message,
            location: Some((self.path.clone(), self.node.pos)),
        }
    }
}

static EMPTY: Vec<Node> = Vec::new();
static EMPTY_MAP: Vec<(Node, Node)> = Vec::new();

impl<'de> de::Deserializer<'de> for NodeDeserializer<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::BigInt(text) => {
                return Err(self.fail(format!("integer {text} is out of range")));
            }
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_str(s),
            Value::Seq(items) => visitor.visit_seq(SeqAccess::new(items, self.path)),
            Value::Map(entries) => visitor.visit_map(MapAccess::new(entries, self.path)),
        };
        result.map_err(|e| self.locate(e))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.value {
            Value::Null => visitor.visit_none().map_err(|e| self.locate(e)),
            _ => {
                let (path, pos) = (self.path, self.node.pos);
                visitor.visit_some(self).map_err(|e| e.at(path, pos))
            }
        }
    }

    // An empty value (`labels:` with nothing after it) is an empty collection, as kubectl reads it.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.value {
            Value::Null => visitor
                .visit_seq(SeqAccess::new(&EMPTY, self.path))
                .map_err(|e| self.locate(e)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.value {
            Value::Null => visitor
                .visit_map(MapAccess::new(&EMPTY_MAP, self.path))
                .map_err(|e| self.locate(e)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let (path, pos) = (self.path, self.node.pos);
        visitor
            .visit_newtype_struct(self)
            .map_err(|e| e.at(path, pos))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Str(s) => visitor
                .visit_enum(s.as_str().into_deserializer())
                .map_err(|e: DeError| self.locate(e)),
            other => Err(self.fail(format!(
                "invalid type: {}, expected a string",
                other.type_name()
            ))),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Str(s) => visitor.visit_str(s).map_err(|e| self.locate(e)),
            other => Err(self.fail(format!(
                "invalid key: {}, expected a field name",
                other.type_name()
            ))),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple tuple_struct
    }
}

struct SeqAccess<'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
    path: &'a FieldPath,
}

impl<'a> SeqAccess<'a> {
    fn new(items: &'a [Node], path: &'a FieldPath) -> Self {
        SeqAccess {
            items: items.iter().enumerate(),
            path,
        }
    }
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            None => Ok(None),
            Some((i, node)) => {
                let path = self.path.index(i);
                seed.deserialize(NodeDeserializer { node, path: &path })
                    .map(Some)
            }
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapAccess<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    path: &'a FieldPath,
    value: Option<(&'a Node, FieldPath)>,
}

impl<'a> MapAccess<'a> {
    fn new(entries: &'a [(Node, Node)], path: &'a FieldPath) -> Self {
        MapAccess {
            entries: entries.iter(),
            path,
            value: None,
        }
    }
}

impl<'de> de::MapAccess<'de> for MapAccess<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.entries.next() {
            None => Ok(None),
            Some((key, value)) => {
                let path = self.path.key(key.key_text());
                let k = seed.deserialize(NodeDeserializer {
                    node: key,
                    path: &path,
                })?;
                self.value = Some((value, path));
                Ok(Some(k))
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        match self.value.take() {
            Some((node, path)) => seed.deserialize(NodeDeserializer { node, path: &path }),
            None => Err(de::Error::custom("value requested before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}
