//! `Cluster` in `nanocl.io/v1`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{Condition, Object};
use crate::path::FieldPath;
use crate::template;
use crate::validation::FieldErrors;

/// A Cluster: variables shared by its cargoes, a default network, and the cargoes it runs.
pub type Cluster = Object<ClusterSpec, ClusterStatus>;

/// What a Cluster should be.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSpec {
    /// Variables cargoes of this cluster reference as `{{ vars.NAME }}` in their environment.
    /// Names: letters, digits and '_', not starting with a digit.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// The nodes this cluster's cargoes may run on, as a label selector over the nodes'
    /// labels, written as kubectl writes one (`zone=eu,disk!=hdd`, `tier in (a,b)`,
    /// `gpu`); default every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<String>,
}

/// What nanocl observed of a Cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterStatus {
    /// The `metadata.generation` the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The subnet of the cluster's default Docker network (from nanocld's network pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// `Ready`, `Progressing`, `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Checks a Cluster.
pub fn validate(cluster: &Cluster) -> FieldErrors {
    let mut errors = FieldErrors::new();
    cluster
        .metadata
        .validate(&FieldPath::keys("metadata"), true, &mut errors);
    let vars = FieldPath::keys("spec.variables");
    for (name, value) in &cluster.spec.variables {
        let path = vars.key(name.clone());
        errors.check(&path, template::variable_name(name));
        if value.contains('\0') {
            errors.push(path, "must not contain a NUL character");
        }
    }
    if let Some(nodes) = &cluster.spec.nodes {
        errors.check(
            &FieldPath::keys("spec.nodes"),
            crate::selector::Selector::parse(nodes).map(|_| ()),
        );
    }
    errors
}
