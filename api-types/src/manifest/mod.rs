//! Manifest decoding: multi-document YAML and JSON files into validated v1 objects, every
//! problem reported as `FILE:LINE:COLUMN: field.path: message`.

mod check;
pub mod de;
pub mod node;

use std::fmt;

use serde::de::DeserializeOwned;

use self::node::{Node, Pos, Value};
use crate::node as node_kind;
use crate::object::{AnyObject, Kind, Version};
use crate::path::{FieldPath, Segment};
use crate::validation::{quoted, FieldErrors};
use crate::{cargo, cluster, namespace, network};

/// One object read from a manifest: converted to v1, defaulted and valid.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// The file it came from, as given.
    pub file: String,
    /// Where its document starts.
    pub pos: Pos,
    /// The version it was written in.
    pub version: Version,
    /// The object in the storage version.
    pub object: AnyObject,
}

/// A problem in a manifest, with its location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// The file, as given.
    pub file: String,
    /// Where in the file.
    pub pos: Pos,
    /// The field concerned, when there is one.
    pub field: Option<FieldPath>,
    /// What is wrong.
    pub message: String,
    /// Whether the document could not be read, or was read and is invalid.
    pub class: ErrorClass,
}

/// The two kinds of manifest problems, which the API answers with 400 and 422.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Not readable as an object of a served kind: syntax, types, unknown fields or kinds.
    Malformed,
    /// A well-formed object that fails validation.
    Invalid,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.pos)?;
        match &self.field {
            Some(field) if !field.is_root() => write!(f, "{field}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ManifestError {}

/// Everything read from one file: the valid objects and the errors, in document order.
#[derive(Clone, Debug, Default)]
pub struct Decoded {
    /// Valid objects.
    pub manifests: Vec<Manifest>,
    /// Every problem found.
    pub errors: Vec<ManifestError>,
}

/// How to decode.
#[derive(Clone, Debug)]
pub struct DecodeOptions {
    /// Namespace for namespaced objects that name none.
    pub default_namespace: String,
    /// When set (`nanocl -n NS`), a namespaced object naming another namespace is an error.
    pub required_namespace: Option<String>,
    /// The directory of the file being decoded (absolute): a relative path in it (a
    /// cargo's `build.context`) is resolved against it. `None` (stdin, the API) leaves
    /// such a path relative, and validation refuses it.
    pub base_dir: Option<std::path::PathBuf>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            default_namespace: crate::meta::DEFAULT_NAMESPACE.to_owned(),
            required_namespace: None,
            base_dir: None,
        }
    }
}

/// How a manifest is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// YAML 1.2 (of which JSON is a subset, but a lenient one: `{"a": 1,}` is valid YAML).
    Yaml,
    /// Strict JSON (RFC 8259), one value.
    Json,
}

impl Format {
    /// `*.json` is JSON; so is standard input (`<stdin>`, `-`) that starts with `{`, as kubectl
    /// reads it; everything else is YAML.
    pub fn of(file: &str, text: &[u8]) -> Format {
        let json_ext = std::path::Path::new(file)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let stdin = matches!(file, "<stdin>" | "-");
        let leading_brace = text
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{');
        if json_ext || (stdin && leading_brace) {
            Format::Json
        } else {
            Format::Yaml
        }
    }
}

/// Decodes raw file content (UTF-8), as JSON or YAML by `Format::of`.
pub fn decode_bytes(file: &str, bytes: &[u8], options: &DecodeOptions) -> Decoded {
    decode_bytes_as(file, bytes, Format::of(file, bytes), options)
}

/// Decodes raw content (UTF-8) written in `format`. JSON is first checked strictly (a
/// trailing comma, a comment, single quotes are errors with their line and column), then
/// decoded by the same path as YAML, whose positions are JSON's too.
pub fn decode_bytes_as(
    file: &str,
    bytes: &[u8],
    format: Format,
    options: &DecodeOptions,
) -> Decoded {
    match std::str::from_utf8(bytes) {
        Ok(text) if format == Format::Json => match strict_json(text) {
            Ok(()) => decode_str(file, text, options),
            Err((pos, message)) => Decoded {
                manifests: Vec::new(),
                errors: vec![ManifestError {
                    file: file.to_owned(),
                    pos,
                    field: None,
                    message,
                    class: ErrorClass::Malformed,
                }],
            },
        },
        Ok(text) => decode_str(file, text, options),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            let column =
                String::from_utf8_lossy(valid.rsplit(|b| *b == b'\n').next().unwrap_or(&[]))
                    .chars()
                    .count()
                    + 1;
            Decoded {
                manifests: Vec::new(),
                errors: vec![ManifestError {
                    file: file.to_owned(),
                    pos: Pos { line, column },
                    field: None,
                    message: "not valid UTF-8 text".into(),
                    class: ErrorClass::Malformed,
                }],
            }
        }
    }
}

/// Checks that `text` is exactly one strict JSON value.
fn strict_json(text: &str) -> Result<(), (Pos, String)> {
    if text.trim().is_empty() {
        // Reported by the decoder as "no objects found: the file is empty".
        return Ok(());
    }
    match serde_json::from_str::<serde::de::IgnoredAny>(text) {
        Ok(_) => Ok(()),
        Err(e) => {
            let full = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let mut what = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
            // serde_json reports `{"a": 1,}` as "key must be a string" at the `}`: say what
            // the person wrote.
            let before = text
                .lines()
                .nth(e.line().saturating_sub(1))
                .map(|l| {
                    l.chars()
                        .take(e.column().saturating_sub(1))
                        .collect::<String>()
                })
                .unwrap_or_default();
            let previous = before.trim_end().chars().last().or_else(|| {
                text.lines()
                    .take(e.line().saturating_sub(1))
                    .flat_map(|l| l.trim_end().chars().last())
                    .last()
            });
            if previous == Some(',')
                && matches!(what.as_str(), "key must be a string" | "expected value")
            {
                what = "trailing comma".to_owned();
            }
            Err((
                Pos {
                    line: e.line().max(1),
                    column: e.column().max(1),
                },
                format!("invalid JSON: {what}"),
            ))
        }
    }
}

/// Decodes every document of `text`, collecting the valid objects and every error.
pub fn decode_str(file: &str, text: &str, options: &DecodeOptions) -> Decoded {
    let mut decoded = Decoded::default();
    let (documents, syntax_error) = node::parse_stream(text);
    let mut any_document = false;
    for document in documents {
        let Some(root) = document.root else { continue };
        if root.value == Value::Null {
            continue;
        }
        any_document = true;
        match decode_document(&root, options) {
            Ok((version, object)) => decoded.manifests.push(Manifest {
                file: file.to_owned(),
                pos: document.pos,
                version,
                object,
            }),
            Err(errors) => {
                decoded
                    .errors
                    .extend(
                        errors
                            .into_iter()
                            .map(|(field, pos, message, class)| ManifestError {
                                file: file.to_owned(),
                                pos,
                                field,
                                message,
                                class,
                            }),
                    )
            }
        }
    }
    if let Some(e) = syntax_error {
        decoded.errors.push(ManifestError {
            file: file.to_owned(),
            pos: e.pos,
            field: None,
            message: e.message,
            class: ErrorClass::Malformed,
        });
    } else if !any_document {
        decoded.errors.push(ManifestError {
            file: file.to_owned(),
            pos: Pos { line: 1, column: 1 },
            field: None,
            message: "no objects found: the file is empty".into(),
            class: ErrorClass::Malformed,
        });
    }
    decoded
}

type LocatedErrors = Vec<(Option<FieldPath>, Pos, String, ErrorClass)>;

/// The position of the deepest node on `path` that exists in the document.
pub fn locate(root: &Node, path: &FieldPath) -> Pos {
    let mut node = root;
    for segment in path.segments() {
        let next = match (segment, &node.value) {
            (Segment::Key(key), Value::Map(entries)) => entries
                .iter()
                .find(|(k, _)| &k.key_text() == key)
                .map(|(_, v)| v),
            (Segment::Index(i), Value::Seq(items)) => items.get(*i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    node.pos
}

fn header_string(root: &Node, field: &str) -> Result<(String, Pos), LocatedErrors> {
    match root.get(field) {
        None => Err(vec![(
            None,
            root.pos,
            format!("missing field `{field}`: every object needs apiVersion and kind, e.g. apiVersion: nanocl.io/v1 and kind: Cargo"), ErrorClass::Malformed)]),
        Some(Node { value: Value::Str(s), pos }) => Ok((s.clone(), *pos)),
        Some(other) => Err(vec![(
            Some(FieldPath::keys(field)),
            other.pos,
            format!("invalid type: {}, expected a string", other.value.type_name()), ErrorClass::Malformed)]),
    }
}

fn served_versions() -> String {
    Version::ALL
        .iter()
        .map(|v| v.api_version())
        .collect::<Vec<_>>()
        .join(", ")
}

fn served_kinds(version: Version) -> String {
    Kind::ALL
        .iter()
        .filter(|k| k.served_in(version))
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn decode_document(
    root: &Node,
    options: &DecodeOptions,
) -> Result<(Version, AnyObject), LocatedErrors> {
    if !matches!(root.value, Value::Map(_)) {
        return Err(vec![(
            None,
            root.pos,
            format!(
                "expected an object (a mapping with apiVersion, kind, metadata and spec), found {}",
                root.value.type_name()
            ),
            ErrorClass::Malformed,
        )]);
    }
    let (api_version, version_pos) = header_string(root, "apiVersion")?;
    let (kind_name, kind_pos) = header_string(root, "kind")?;
    let version = Version::from_api_version(&api_version).ok_or_else(|| {
        let hint = if Version::ALL.iter().any(|v| v.name() == api_version) {
            format!(" (did you mean nanocl.io/{api_version}?)")
        } else {
            String::new()
        };
        vec![(
            Some(FieldPath::keys("apiVersion")),
            version_pos,
            format!(
                "unknown apiVersion {}{hint}: served versions are {}",
                quoted(&api_version),
                served_versions()
            ),
            ErrorClass::Malformed,
        )]
    })?;
    let kind = Kind::from_kind_field(&kind_name).ok_or_else(|| {
        let hint = Kind::ALL
            .iter()
            .find(|k| {
                k.as_str().eq_ignore_ascii_case(&kind_name)
                    || k.plural() == kind_name.to_ascii_lowercase()
            })
            .map(|k| format!(" (did you mean {k}?)"))
            .unwrap_or_default();
        vec![(
            Some(FieldPath::keys("kind")),
            kind_pos,
            format!(
                "unknown kind {}{hint} in {}: served kinds are {}",
                quoted(&kind_name),
                version.api_version(),
                served_kinds(version)
            ),
            ErrorClass::Malformed,
        )]
    })?;

    if !kind.served_in(version) {
        return Err(vec![(
            Some(FieldPath::keys("apiVersion")),
            version_pos,
            format!(
                "kind {kind} is served only in {}: write apiVersion: {}",
                Version::V1.api_version(),
                Version::V1.api_version()
            ),
            ErrorClass::Malformed,
        )]);
    }
    let mut object = convert_to_v1(root, version, kind)?;
    object.apply_defaults(&options.default_namespace);
    if let (crate::AnyObject::Cargo(cargo), Some(dir)) = (&mut object, &options.base_dir) {
        crate::cargo::v1::resolve_context(cargo, dir);
    }
    let mut errors = object.validate();
    if let (Some(required), Some(actual)) = (&options.required_namespace, &object.key().namespace) {
        if required != actual {
            errors.push(
                FieldPath::keys("metadata.namespace"),
                format!(
                    "the object is in namespace {} but the command was given --namespace {}",
                    quoted(actual),
                    quoted(required)
                ),
            );
        }
    }
    if !errors.is_empty() {
        return Err(locate_all(root, kind, version, errors));
    }
    Ok((version, object))
}

/// `root` as a `T`; when serde refuses it, every shape error the kind's schema finds (serde
/// stops at the first), else serde's.
fn typed<T: DeserializeOwned>(
    root: &Node,
    version: Version,
    kind: Kind,
) -> Result<T, LocatedErrors> {
    de::from_node(root, &FieldPath::root()).map_err(|e| {
        let all = crate::schema::schema(version, kind)
            .map(|schema| check::check(root, &schema))
            .unwrap_or_default();
        if !all.is_empty() {
            return all
                .into_iter()
                .map(|(path, pos, message)| (Some(path), pos, message, ErrorClass::Malformed))
                .collect();
        }
        let (path, pos) = e.location.unwrap_or_else(|| (FieldPath::root(), root.pos));
        vec![(Some(path), pos, e.message, ErrorClass::Malformed)]
    })
}

fn convert_to_v1(root: &Node, version: Version, kind: Kind) -> Result<AnyObject, LocatedErrors> {
    // Conversion errors already name the fields as written in the source version.
    let converted = |r: Result<AnyObject, FieldErrors>| {
        r.map_err(|errors| locate_all(root, kind, Version::V1, errors))
    };
    match (version, kind) {
        (Version::V1, Kind::Namespace) => Ok(AnyObject::Namespace(typed::<
            namespace::v1::Namespace,
        >(root, version, kind)?)),
        (Version::V1, Kind::Cluster) => Ok(AnyObject::Cluster(typed::<cluster::v1::Cluster>(
            root, version, kind,
        )?)),
        (Version::V1, Kind::Network) => Ok(AnyObject::Network(typed::<network::v1::Network>(
            root, version, kind,
        )?)),
        (Version::V1, Kind::Cargo) => Ok(AnyObject::Cargo(typed::<cargo::v1::Cargo>(
            root, version, kind,
        )?)),
        (Version::V1, Kind::Node) => Ok(AnyObject::Node(typed::<node_kind::v1::Node>(
            root, version, kind,
        )?)),
        (Version::V1, Kind::Replica) => Ok(AnyObject::Replica(
            typed::<crate::replica::v1::Replica>(root, version, kind)?,
        )),
        (Version::V1, Kind::Secret) => Ok(AnyObject::Secret(typed::<crate::secret::v1::Secret>(
            root, version, kind,
        )?)),
        (Version::V1, Kind::ProxyRule) => Ok(AnyObject::ProxyRule(typed::<
            crate::proxy_rule::v1::ProxyRule,
        >(root, version, kind)?)),
        // Refused before conversion (`Kind::served_in`).
        (
            Version::V1alpha1,
            kind @ (Kind::Node | Kind::Replica | Kind::Secret | Kind::ProxyRule),
        ) => Err(vec![(
            Some(FieldPath::keys("apiVersion")),
            root.pos,
            format!("kind {kind} is served only in nanocl.io/v1"),
            ErrorClass::Malformed,
        )]),
        (Version::V1alpha1, Kind::Namespace) => {
            Ok(AnyObject::Namespace(namespace::v1alpha1::to_v1(typed::<
                namespace::v1alpha1::Namespace,
            >(
                root, version, kind,
            )?)))
        }
        (Version::V1alpha1, Kind::Network) => {
            Ok(AnyObject::Network(network::v1alpha1::to_v1(typed::<
                network::v1alpha1::Network,
            >(
                root, version, kind,
            )?)))
        }
        (Version::V1alpha1, Kind::Cluster) => converted(
            cluster::v1alpha1::to_v1(typed::<cluster::v1alpha1::Cluster>(root, version, kind)?)
                .map(AnyObject::Cluster),
        ),
        (Version::V1alpha1, Kind::Cargo) => converted(
            cargo::v1alpha1::to_v1(typed::<cargo::v1alpha1::Cargo>(root, version, kind)?)
                .map(AnyObject::Cargo),
        ),
    }
}

fn locate_all(root: &Node, kind: Kind, version: Version, errors: FieldErrors) -> LocatedErrors {
    errors
        .into_iter()
        .map(|e| {
            let path = AnyObject::source_path(kind, version, &e.path);
            let pos = locate(root, &path);
            (Some(path), pos, e.message, ErrorClass::Invalid)
        })
        .collect()
}

#[cfg(test)]
mod tests;
