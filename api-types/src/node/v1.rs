//! `Node` in `nanocl.io/v1` (the only version it is served in).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{Condition, Object};
use crate::path::FieldPath;
use crate::validation::FieldErrors;

/// A Node: cluster-scoped; one Docker host, written by the nanocld that runs on it (its
/// `--node` name, its `--node-label` labels). Its liveness is a store lease that nanocld
/// keeps alive: a node whose lease runs out is `Ready=False`.
pub type Node = Object<NodeSpec, NodeStatus>;

/// What users set on a Node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    /// No new replicas are placed on this node (`nanocl cordon`); those running stay.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unschedulable: bool,
}

/// What a node offers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeCapacity {
    /// CPUs Docker reports on the host.
    pub cpus: u32,
    /// Memory Docker reports on the host, in bytes.
    pub memory_bytes: u64,
}

/// What the node's nanocld reported, and what the controllers concluded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeStatus {
    /// The host's addresses (`--node-address`, else those of its network interfaces).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Where this node's proxy takes the connections of the other nodes' proxies to its
    /// replicas (`IP:PORT`: the node's first address and `--proxy-relay-port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_relay: Option<String>,
    /// CPUs and memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<NodeCapacity>,
    /// The Docker Engine's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_version: Option<String>,
    /// The node's nanocld version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nanocl_version: Option<String>,
    /// When the node's nanocld last wrote this status (it renews its lease more often
    /// without writing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<String>,
    /// `Ready`: `True` while the node's nanocld keeps its lease alive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Checks a Node.
pub fn validate(node: &Node) -> FieldErrors {
    let mut errors = FieldErrors::new();
    node.metadata
        .validate(&FieldPath::keys("metadata"), false, &mut errors);
    errors
}
