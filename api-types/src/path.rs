//! Field paths such as `spec.container.ports[1].hostPort`, shared by decoding and validation.

use std::fmt;

/// One step of a [`FieldPath`]: a mapping key or a sequence index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A key of a mapping (a struct field or a map entry).
    Key(String),
    /// An index into a sequence.
    Index(usize),
}

/// The path of a field inside a document, printed the way users write it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// The empty path: the document itself.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// Builds a path from dotted keys, e.g. `FieldPath::parse_keys("spec.container")`.
    pub fn keys(dotted: &str) -> Self {
        Self(
            dotted
                .split('.')
                .filter(|k| !k.is_empty())
                .map(|k| Segment::Key(k.to_owned()))
                .collect(),
        )
    }

    /// This path extended by a key.
    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.into()));
        Self(segments)
    }

    /// This path extended by an index.
    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        Self(segments)
    }

    /// The segments, outermost first.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// Whether this is the root path.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `self` starts with `prefix`.
    pub fn starts_with(&self, prefix: &FieldPath) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// The segments after `prefix`, if `self` starts with it.
    pub fn strip_prefix(&self, prefix: &FieldPath) -> Option<&[Segment]> {
        self.0.strip_prefix(prefix.0.as_slice())
    }

    /// `prefix` followed by `rest`.
    pub fn join(prefix: &FieldPath, rest: &[Segment]) -> Self {
        let mut segments = prefix.0.clone();
        segments.extend_from_slice(rest);
        Self(segments)
    }
}

impl From<Vec<Segment>> for FieldPath {
    fn from(segments: Vec<Segment>) -> Self {
        Self(segments)
    }
}

/// Keys made only of these characters print as `.key`; others print as `["key"]`.
fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if is_plain_key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                Segment::Key(key) => write!(f, "[{key:?}]")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_should_print_like_users_write_it() {
        let p = FieldPath::keys("spec.container")
            .key("ports")
            .index(1)
            .key("hostPort");
        assert_eq!(p.to_string(), "spec.container.ports[1].hostPort");
        let l = FieldPath::keys("metadata.labels").key("nanocl.io/applyset");
        assert_eq!(l.to_string(), "metadata.labels[\"nanocl.io/applyset\"]");
        assert_eq!(FieldPath::root().to_string(), "");
    }
}
