//! Object metadata, the generic object envelope and status conditions shared by every kind.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::path::FieldPath;
use crate::validation::{self, FieldErrors};

/// The namespace objects land in when none is given.
pub const DEFAULT_NAMESPACE: &str = "global";

/// Label and annotation keys under this prefix are reserved for nanocl.
pub const RESERVED_PREFIX: &str = "nanocl.io/";

/// Metadata every object carries. `name` is the user's; `uid`, `resourceVersion`,
/// `generation`, `creationTimestamp` and `deletionTimestamp` are set by the server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// Name of the object, unique per kind and namespace: a DNS-1123 label (lowercase letters,
    /// digits and '-', at most 63 characters).
    #[serde(default)]
    pub name: String,
    /// Namespace of the object (`global` when omitted). Not allowed on a Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels used to select objects, e.g. with `nanocl get -l app=web`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Free-form notes for tools and people; not used for selection.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Unique id assigned by the server when the object is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Opaque version of the stored object, used for optimistic concurrency: an update must
    /// carry the version it read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Incremented by the server each time the spec changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// When the server created the object (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// When deletion was requested (RFC 3339); the object goes once its finalizers are done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    /// Cleanup steps that must finish before the object is removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    /// Which manager set which fields with server-side apply (`kubectl apply
    /// --server-side`), kept by the server. An update that leaves it out keeps it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_fields: Vec<ManagedFieldsEntry>,
}

/// The fields one manager set, as Kubernetes records them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManagedFieldsEntry {
    /// Who: the apply's `fieldManager` (`kubectl` for kubectl).
    #[serde(default)]
    pub manager: String,
    /// `Apply`.
    #[serde(default)]
    pub operation: String,
    /// The API version the fields were applied in.
    #[serde(default)]
    pub api_version: String,
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// `FieldsV1`.
    #[serde(default)]
    pub fields_type: String,
    /// The fields, as `{"f:spec": {"f:replicas": {}}}`.
    #[serde(default, rename = "fieldsV1")]
    pub fields_v1: serde_json::Value,
    /// The subresource applied to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
}

impl ObjectMeta {
    /// Checks name, labels and annotations, recording errors under `path`.
    pub fn validate(&self, path: &FieldPath, namespaced: bool, errors: &mut FieldErrors) {
        let name_path = path.key("name");
        if self.name.is_empty() {
            errors.push(name_path, "required: every object needs a name");
        } else {
            errors.check(&name_path, validation::dns1123_label(&self.name));
        }
        match (&self.namespace, namespaced) {
            (Some(ns), true) => errors.check(&path.key("namespace"), validation::dns1123_label(ns)),
            (Some(_), false) => errors.push(
                path.key("namespace"),
                "a Namespace is not inside a namespace: remove this field",
            ),
            (None, _) => {}
        }
        let labels = path.key("labels");
        for (key, value) in &self.labels {
            errors.check(&labels.key(key.clone()), validation::qualified_key(key));
            errors.check(&labels.key(key.clone()), validation::label_value(value));
        }
        let annotations = path.key("annotations");
        for key in self.annotations.keys() {
            errors.check(
                &annotations.key(key.clone()),
                validation::qualified_key(key),
            );
        }
        let total: usize = self
            .annotations
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum();
        if total > 256 * 1024 {
            errors.push(
                annotations,
                format!("annotations may hold at most 256 KiB in all, got {total} bytes"),
            );
        }
    }
}

/// Whether a condition holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet.
    Unknown,
}

/// One observation about an object, as Kubernetes conditions: `Ready`, `Progressing`,
/// `Degraded`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// `Ready`, `Progressing` or `Degraded`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// A CamelCase word a program can branch on, e.g. `ClusterNotFound`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// A sentence for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When `status` last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The `metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The envelope of every object: `apiVersion`, `kind`, `metadata`, `spec` and `status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(bound = "Spec: JsonSchema + Default + Serialize, Status: JsonSchema")]
pub struct Object<Spec, Status> {
    /// `nanocl.io/v1` or `nanocl.io/v1alpha1`.
    pub api_version: String,
    /// The kind of object, e.g. `Cargo`.
    pub kind: String,
    /// Name, namespace, labels and server-set fields.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What the user wants.
    #[serde(default)]
    pub spec: Spec,
    /// What nanocl observed; written by controllers, ignored on apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

impl<Spec, Status> Object<Spec, Status> {
    /// An object of `api_version`/`kind` named `name` in `namespace` with `spec`.
    pub fn new(
        api_version: &str,
        kind: &str,
        name: impl Into<String>,
        namespace: Option<&str>,
        spec: Spec,
    ) -> Self {
        Self {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            metadata: ObjectMeta {
                name: name.into(),
                namespace: namespace.map(str::to_owned),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        }
    }
}
