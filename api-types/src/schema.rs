//! JSON Schemas for every kind and version, generated from the types with schemars.

use schemars::{schema_for, JsonSchema, Schema};
use serde_json::{json, Value};

use crate::object::{Kind, Version};
use crate::{cargo, cluster, namespace, network};

fn finish<T: JsonSchema>(version: Version, kind: Kind) -> Value {
    let schema: Schema = schema_for!(T);
    let mut value = schema.to_value();
    if let Some(obj) = value.as_object_mut() {
        obj.insert(
            "$id".into(),
            json!(format!(
                "https://nanocl.io/schemas/{}/{}.json",
                version.name(),
                kind.as_str().to_ascii_lowercase()
            )),
        );
        obj.insert(
            "title".into(),
            json!(format!("{} ({})", kind.as_str(), version.api_version())),
        );
        if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
            if let Some(p) = props.get_mut("apiVersion").and_then(Value::as_object_mut) {
                p.insert("const".into(), json!(version.api_version()));
            }
            if let Some(p) = props.get_mut("kind").and_then(Value::as_object_mut) {
                p.insert("const".into(), json!(kind.as_str()));
            }
        }
    }
    value
}

/// The schema of `kind` in `version`.
pub fn schema(version: Version, kind: Kind) -> Value {
    match (version, kind) {
        (Version::V1, Kind::Namespace) => finish::<namespace::v1::Namespace>(version, kind),
        (Version::V1, Kind::Cluster) => finish::<cluster::v1::Cluster>(version, kind),
        (Version::V1, Kind::Network) => finish::<network::v1::Network>(version, kind),
        (Version::V1, Kind::Cargo) => finish::<cargo::v1::Cargo>(version, kind),
        (Version::V1alpha1, Kind::Namespace) => {
            finish::<namespace::v1alpha1::Namespace>(version, kind)
        }
        (Version::V1alpha1, Kind::Cluster) => finish::<cluster::v1alpha1::Cluster>(version, kind),
        (Version::V1alpha1, Kind::Network) => finish::<network::v1alpha1::Network>(version, kind),
        (Version::V1alpha1, Kind::Cargo) => finish::<cargo::v1alpha1::Cargo>(version, kind),
    }
}

/// Every schema with its path under `manifests/`: `schemas/{version}/{kind}.json`.
pub fn all() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for version in Version::ALL {
        for kind in Kind::ALL {
            out.push((
                format!(
                    "schemas/{}/{}.json",
                    version.name(),
                    kind.as_str().to_ascii_lowercase()
                ),
                schema(version, kind),
            ));
        }
    }
    out
}
