//! `Cluster` in `nanocl.io/v1alpha1`: variables as a `KEY=VALUE` list.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::v1;
use crate::conversion::{self, from_key_value_list, to_key_value_list};
use crate::meta::Object;
use crate::path::{FieldPath, Segment};
use crate::validation::FieldErrors;

/// A Cluster as v1alpha1 writes it.
pub type Cluster = Object<ClusterSpec, v1::ClusterStatus>;

/// What a Cluster should be, in the legacy flat shape.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSpec {
    /// Variables as `NAME=VALUE` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vars: Vec<String>,
}

/// v1 fields a v1alpha1 Cluster cannot express.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stash {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    variables: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nodes: Option<String>,
}

/// v1alpha1 → v1; errors name v1alpha1 fields.
pub fn to_v1(obj: Cluster) -> Result<v1::Cluster, FieldErrors> {
    let mut errors = FieldErrors::new();
    let mut metadata = obj.metadata;
    let stash: Stash = conversion::take_v1_fields(&mut metadata, &mut errors);
    let mut variables =
        from_key_value_list(&obj.spec.vars, &FieldPath::keys("spec.vars"), &mut errors);
    if let Some(stashed) = stash.variables {
        if !variables.is_empty() {
            errors.push(
                FieldPath::keys("spec.vars"),
                "set both here and in the v1 fields annotation: keep one",
            );
        }
        variables = stashed;
    }
    errors.into_result()?;
    Ok(Object {
        api_version: crate::V1.to_owned(),
        kind: obj.kind,
        metadata,
        spec: v1::ClusterSpec {
            variables,
            nodes: stash.nodes,
        },
        status: obj.status,
    })
}

/// v1 → v1alpha1, lossless.
pub fn from_v1(obj: v1::Cluster) -> Cluster {
    let mut metadata = obj.metadata;
    let mut stash = Stash {
        nodes: obj.spec.nodes,
        ..Stash::default()
    };
    let vars = match to_key_value_list(&obj.spec.variables) {
        Some(list) => list,
        None => {
            stash.variables = Some(obj.spec.variables);
            Vec::new()
        }
    };
    conversion::stash_v1_fields(&mut metadata, &stash);
    Object {
        api_version: crate::V1ALPHA1.to_owned(),
        kind: obj.kind,
        metadata,
        spec: ClusterSpec { vars },
        status: obj.status,
    }
}

/// Where a v1 field path was written in a v1alpha1 document.
pub fn source_path(v1_path: &FieldPath) -> FieldPath {
    match v1_path.segments() {
        [Segment::Key(spec), Segment::Key(vars), ..] if spec == "spec" && vars == "variables" => {
            FieldPath::keys("spec.vars")
        }
        _ => v1_path.clone(),
    }
}
