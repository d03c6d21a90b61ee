//! The served kinds and versions, and `AnyObject`: one object of any kind in the storage version.

use std::fmt;

use serde::Serialize;

use crate::meta::{ObjectMeta, DEFAULT_NAMESPACE, RESERVED_PREFIX};
use crate::path::FieldPath;
use crate::validation::FieldErrors;
use crate::{cargo, cluster, conversion, namespace, network, node, proxy_rule, replica, secret};

/// The API group of every nanocl kind.
pub const GROUP: &str = "nanocl.io";
/// The storage version.
pub const V1: &str = "nanocl.io/v1";
/// The legacy flat version, still served.
pub const V1ALPHA1: &str = "nanocl.io/v1alpha1";

/// A kind of object nanocl serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A name under which everything is stored.
    Namespace,
    /// An environment with variables, networks and cargoes.
    Cluster,
    /// A Docker network in a cluster.
    Network,
    /// Named values for cargoes and builds, encrypted at rest (served in v1 only).
    Secret,
    /// A replicable container.
    Cargo,
    /// Listeners of the node proxy and the cargoes behind them (served in v1 only).
    ProxyRule,
    /// A Docker host of nanocl (served in v1 only).
    Node,
    /// One slot of a Cargo and its node (served in v1 only; written by nanocl).
    Replica,
}

impl Kind {
    /// Every kind, in the order objects are applied (containers last).
    pub const ALL: [Kind; 8] = [
        Kind::Namespace,
        Kind::Cluster,
        Kind::Network,
        Kind::Secret,
        Kind::Cargo,
        Kind::ProxyRule,
        Kind::Node,
        Kind::Replica,
    ];

    /// The kind as written in `kind:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Cluster => "Cluster",
            Kind::Network => "Network",
            Kind::Secret => "Secret",
            Kind::Cargo => "Cargo",
            Kind::ProxyRule => "ProxyRule",
            Kind::Node => "Node",
            Kind::Replica => "Replica",
        }
    }

    /// The plural used in API paths and store keys.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Cluster => "clusters",
            Kind::Network => "networks",
            Kind::Secret => "secrets",
            Kind::Cargo => "cargoes",
            Kind::ProxyRule => "proxyrules",
            Kind::Node => "nodes",
            Kind::Replica => "replicas",
        }
    }

    /// The short name accepted by the CLI.
    pub fn short(self) -> &'static str {
        match self {
            Kind::Namespace => "ns",
            Kind::Cluster => "cl",
            Kind::Network => "net",
            Kind::Secret => "sec",
            Kind::Cargo => "cg",
            Kind::ProxyRule => "pr",
            Kind::Node => "no",
            Kind::Replica => "rp",
        }
    }

    /// Whether objects of this kind live inside a namespace.
    pub fn namespaced(self) -> bool {
        !matches!(self, Kind::Namespace | Kind::Node)
    }

    /// Whether the kind is served in `version` (`Node` is new in v1: v1alpha1 serves only
    /// the four original kinds).
    pub fn served_in(self, version: Version) -> bool {
        version == Version::V1
            || !matches!(
                self,
                Kind::Node | Kind::Replica | Kind::Secret | Kind::ProxyRule
            )
    }

    /// The kind exactly as written in a manifest's `kind:`.
    pub fn from_kind_field(value: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == value)
    }

    /// The kind as typed on a command line: singular, plural or short form, any case.
    pub fn from_cli(value: &str) -> Option<Kind> {
        let lower = value.to_ascii_lowercase();
        Kind::ALL.into_iter().find(|k| {
            lower == k.as_str().to_ascii_lowercase() || lower == k.plural() || lower == k.short()
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A served API version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// `nanocl.io/v1`, the storage version.
    V1,
    /// `nanocl.io/v1alpha1`, the legacy flat version.
    V1alpha1,
}

impl Version {
    /// Every served version, storage version first.
    pub const ALL: [Version; 2] = [Version::V1, Version::V1alpha1];

    /// The `apiVersion` string.
    pub fn api_version(self) -> &'static str {
        match self {
            Version::V1 => V1,
            Version::V1alpha1 => V1ALPHA1,
        }
    }

    /// The version part alone, as in API paths (`v1`).
    pub fn name(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V1alpha1 => "v1alpha1",
        }
    }

    /// Parses an `apiVersion` string.
    pub fn from_api_version(value: &str) -> Option<Version> {
        Version::ALL.into_iter().find(|v| v.api_version() == value)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.api_version())
    }
}

/// Identifies an object: kind, namespace (none for a Namespace) and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// The kind.
    pub kind: Kind,
    /// The namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(
                f,
                "{}/{} (namespace {ns})",
                self.kind.as_str().to_ascii_lowercase(),
                self.name
            ),
            None => write!(
                f,
                "{}/{}",
                self.kind.as_str().to_ascii_lowercase(),
                self.name
            ),
        }
    }
}

/// One object of any kind, in the storage version (v1).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
#[allow(
    clippy::large_enum_variant,
    reason = "objects are decoded once and moved rarely; boxing would burden every match"
)]
pub enum AnyObject {
    /// A Namespace.
    Namespace(namespace::v1::Namespace),
    /// A Cluster.
    Cluster(cluster::v1::Cluster),
    /// A Network.
    Network(network::v1::Network),
    /// A Secret.
    Secret(secret::v1::Secret),
    /// A Cargo.
    Cargo(cargo::v1::Cargo),
    /// A ProxyRule.
    ProxyRule(proxy_rule::v1::ProxyRule),
    /// A Node.
    Node(node::v1::Node),
    /// A Replica.
    Replica(replica::v1::Replica),
}

impl AnyObject {
    /// The object's kind.
    pub fn kind(&self) -> Kind {
        match self {
            AnyObject::Namespace(_) => Kind::Namespace,
            AnyObject::Cluster(_) => Kind::Cluster,
            AnyObject::Network(_) => Kind::Network,
            AnyObject::Secret(_) => Kind::Secret,
            AnyObject::Cargo(_) => Kind::Cargo,
            AnyObject::ProxyRule(_) => Kind::ProxyRule,
            AnyObject::Node(_) => Kind::Node,
            AnyObject::Replica(_) => Kind::Replica,
        }
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            AnyObject::Namespace(o) => &o.metadata,
            AnyObject::Cluster(o) => &o.metadata,
            AnyObject::Network(o) => &o.metadata,
            AnyObject::Secret(o) => &o.metadata,
            AnyObject::Cargo(o) => &o.metadata,
            AnyObject::ProxyRule(o) => &o.metadata,
            AnyObject::Node(o) => &o.metadata,
            AnyObject::Replica(o) => &o.metadata,
        }
    }

    /// The object's metadata, mutable.
    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            AnyObject::Namespace(o) => &mut o.metadata,
            AnyObject::Cluster(o) => &mut o.metadata,
            AnyObject::Network(o) => &mut o.metadata,
            AnyObject::Secret(o) => &mut o.metadata,
            AnyObject::Cargo(o) => &mut o.metadata,
            AnyObject::ProxyRule(o) => &mut o.metadata,
            AnyObject::Node(o) => &mut o.metadata,
            AnyObject::Replica(o) => &mut o.metadata,
        }
    }

    /// The object's key.
    pub fn key(&self) -> ObjectKey {
        let kind = self.kind();
        let meta = self.metadata();
        ObjectKey {
            kind,
            namespace: if kind.namespaced() {
                Some(
                    meta.namespace
                        .clone()
                        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
                )
            } else {
                None
            },
            name: meta.name.clone(),
        }
    }

    /// Fills in every default: the namespace (`default_namespace` when none is written), then
    /// the kind's own defaults.
    pub fn apply_defaults(&mut self, default_namespace: &str) {
        if self.kind().namespaced() {
            self.metadata_mut()
                .namespace
                .get_or_insert_with(|| default_namespace.to_owned());
        }
        match self {
            AnyObject::Namespace(_)
            | AnyObject::Cluster(_)
            | AnyObject::Node(_)
            | AnyObject::Replica(_) => {}
            AnyObject::Network(o) => network::v1::apply_defaults(o),
            AnyObject::Secret(o) => secret::v1::apply_defaults(o),
            AnyObject::Cargo(o) => cargo::v1::apply_defaults(o),
            AnyObject::ProxyRule(o) => proxy_rule::v1::apply_defaults(o),
        }
    }

    /// Checks the object, collecting every problem with its v1 field path.
    pub fn validate(&self) -> FieldErrors {
        let mut errors = match self {
            AnyObject::Namespace(o) => namespace::v1::validate(o),
            AnyObject::Cluster(o) => cluster::v1::validate(o),
            AnyObject::Network(o) => network::v1::validate(o),
            AnyObject::Secret(o) => secret::v1::validate(o),
            AnyObject::Cargo(o) => cargo::v1::validate(o),
            AnyObject::ProxyRule(o) => proxy_rule::v1::validate(o),
            AnyObject::Node(o) => node::v1::validate(o),
            AnyObject::Replica(o) => replica::v1::validate(o),
        };
        // The conversion annotation only exists on v1alpha1 objects; on a v1 object it would be
        // silently ignored, which is worse than an error.
        let annotations = FieldPath::keys("metadata.annotations");
        if self
            .metadata()
            .annotations
            .contains_key(conversion::V1_FIELDS_ANNOTATION)
        {
            errors.push(
                annotations.key(conversion::V1_FIELDS_ANNOTATION),
                "reserved for conversion from nanocl.io/v1alpha1: remove it",
            );
        }
        for key in self.metadata().labels.keys() {
            if key.starts_with(RESERVED_PREFIX) && key != crate::APPLYSET_LABEL {
                errors.push(
                    FieldPath::keys("metadata.labels").key(key.clone()),
                    format!("keys under \"{RESERVED_PREFIX}\" are reserved for nanocl"),
                );
            }
        }
        errors
    }

    /// The object in `version`, as JSON.
    pub fn to_version(&self, version: Version) -> Result<serde_json::Value, serde_json::Error> {
        match (self, version) {
            (_, Version::V1) => serde_json::to_value(self),
            (AnyObject::Namespace(o), Version::V1alpha1) => {
                serde_json::to_value(namespace::v1alpha1::from_v1(o.clone()))
            }
            (AnyObject::Cluster(o), Version::V1alpha1) => {
                serde_json::to_value(cluster::v1alpha1::from_v1(o.clone()))
            }
            (AnyObject::Network(o), Version::V1alpha1) => {
                serde_json::to_value(network::v1alpha1::from_v1(o.clone()))
            }
            (AnyObject::Cargo(o), Version::V1alpha1) => {
                serde_json::to_value(cargo::v1alpha1::from_v1(o.clone()))
            }
            (AnyObject::Secret(_), Version::V1alpha1) => Err(serde::ser::Error::custom(
                "Secret is served only in nanocl.io/v1",
            )),
            (AnyObject::ProxyRule(_), Version::V1alpha1) => Err(serde::ser::Error::custom(
                "ProxyRule is served only in nanocl.io/v1",
            )),
            (AnyObject::Node(_), Version::V1alpha1) => Err(serde::ser::Error::custom(
                "Node is served only in nanocl.io/v1",
            )),
            (AnyObject::Replica(_), Version::V1alpha1) => Err(serde::ser::Error::custom(
                "Replica is served only in nanocl.io/v1",
            )),
        }
    }

    /// Reads an object stored as v1 JSON (trusted: written by the server after validation).
    pub fn from_stored(bytes: &[u8]) -> Result<AnyObject, serde_json::Error> {
        let value: serde_json::Value = serde_json::from_slice(bytes)?;
        Self::from_v1_value(value)
    }

    /// Reads a v1 object from JSON, dispatching on its `kind`.
    pub fn from_v1_value(value: serde_json::Value) -> Result<AnyObject, serde_json::Error> {
        use serde::de::Error;
        let kind = value
            .get("kind")
            .and_then(serde_json::Value::as_str)
            .and_then(Kind::from_kind_field)
            .ok_or_else(|| serde_json::Error::custom("stored object has no known kind"))?;
        Ok(match kind {
            Kind::Namespace => AnyObject::Namespace(serde_json::from_value(value)?),
            Kind::Cluster => AnyObject::Cluster(serde_json::from_value(value)?),
            Kind::Network => AnyObject::Network(serde_json::from_value(value)?),
            Kind::Secret => AnyObject::Secret(serde_json::from_value(value)?),
            Kind::Cargo => AnyObject::Cargo(serde_json::from_value(value)?),
            Kind::ProxyRule => AnyObject::ProxyRule(serde_json::from_value(value)?),
            Kind::Node => AnyObject::Node(serde_json::from_value(value)?),
            Kind::Replica => AnyObject::Replica(serde_json::from_value(value)?),
        })
    }

    /// Where a v1 field path of this object was written in a document of `version`.
    pub fn source_path(kind: Kind, version: Version, v1_path: &FieldPath) -> FieldPath {
        match (kind, version) {
            (Kind::Cargo, Version::V1alpha1) => cargo::v1alpha1::source_path(v1_path),
            (Kind::Cluster, Version::V1alpha1) => cluster::v1alpha1::source_path(v1_path),
            _ => v1_path.clone(),
        }
    }
}
