//! `Namespace` in `nanocl.io/v1`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::Object;
use crate::path::FieldPath;
use crate::validation::FieldErrors;

/// A Namespace: cluster-scoped; its name prefixes everything stored in it.
pub type Namespace = Object<NamespaceSpec, NamespaceStatus>;

/// A Namespace has nothing to configure yet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceSpec {}

/// Lifecycle of a Namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum NamespacePhase {
    /// In use.
    Active,
    /// Being deleted together with everything in it.
    Terminating,
}

/// What nanocl observed of a Namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceStatus {
    /// `Active` or `Terminating`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<NamespacePhase>,
}

/// Checks a Namespace.
pub fn validate(ns: &Namespace) -> FieldErrors {
    let mut errors = FieldErrors::new();
    ns.metadata
        .validate(&FieldPath::keys("metadata"), false, &mut errors);
    errors
}
