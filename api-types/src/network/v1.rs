//! `Network` in `nanocl.io/v1`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{Condition, Object};
use crate::path::FieldPath;
use crate::validation::{self, quoted, FieldErrors};

/// A Network: a Docker network in a cluster, e.g. `front` or `back`.
pub type Network = Object<NetworkSpec, NetworkStatus>;

/// The network driver used when none is given.
pub const DEFAULT_DRIVER: &str = "bridge";

/// What a Network should be.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkSpec {
    /// The Cluster (in the same namespace) this network belongs to. Required.
    #[serde(default)]
    pub cluster: String,
    /// Docker network driver (default `bridge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// When true, containers on this network cannot reach outside it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    /// Subnet in CIDR notation, e.g. `10.42.0.0/16`; Docker picks one when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
}

/// What nanocl observed of a Network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkStatus {
    /// The `metadata.generation` the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The Docker network's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_id: Option<String>,
    /// The Docker network's subnet: `spec.subnet`, or one from nanocld's network pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// `Ready`, `Progressing`, `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Fills in defaults: driver `bridge`.
pub fn apply_defaults(network: &mut Network) {
    if network.spec.driver.is_none() {
        network.spec.driver = Some(DEFAULT_DRIVER.to_owned());
    }
}

/// Checks a Network.
pub fn validate(network: &Network) -> FieldErrors {
    let mut errors = FieldErrors::new();
    network
        .metadata
        .validate(&FieldPath::keys("metadata"), true, &mut errors);
    let spec = &network.spec;
    let cluster = FieldPath::keys("spec.cluster");
    if spec.cluster.is_empty() {
        errors.push(cluster, "required: the cluster this network belongs to");
    } else {
        errors.check(&cluster, validation::dns1123_label(&spec.cluster));
    }
    if let Some(driver) = &spec.driver {
        let ok = !driver.is_empty()
            && driver.len() <= 128
            && driver.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'-' | b'_' | b'.' | b'/' | b':')
            });
        if !ok {
            errors.push(
                FieldPath::keys("spec.driver"),
                format!(
                    "invalid driver {}: a Docker network driver name such as \"bridge\"",
                    quoted(driver)
                ),
            );
        }
    }
    if let Some(subnet) = &spec.subnet {
        errors.check(&FieldPath::keys("spec.subnet"), validation::cidr(subnet));
    }
    errors
}
