//! `Replica` in `nanocl.io/v1` (the only version it is served in).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::cargo::v1::ContainerSpec;
use crate::meta::Object;
use crate::path::FieldPath;
use crate::validation::{self, FieldErrors};

/// A Replica: slot `slot` of Cargo `cargo` (same namespace), placed on node `node`. The
/// scheduler (the leading nanocld) creates one per slot and moves it when its node is lost,
/// cordoned for a drain, or no longer eligible; the agent of `node` runs its container and
/// reports it here. The placement is durable, so a restarted leader changes nothing that
/// is already right. Written by nanocl, not by users: the API refuses creating or
/// replacing one; deleting one makes the scheduler place its slot again.
pub type Replica = Object<ReplicaSpec, ReplicaStatus>;

/// Where a slot runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaSpec {
    /// The Cargo this replica belongs to.
    pub cargo: String,
    /// The replica ordinal (`io.nanocl.slot` on its container).
    pub slot: u32,
    /// The node whose agent runs it.
    pub node: String,
    /// The cargo revision it runs (`io.nanocl.revision` on its container when created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u32>,
    /// The hash of `template`'s rendered container (`io.nanocl.spec-hash`), which tells the
    /// revision it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// What it runs: the container of one revision of the cargo, its variables rendered.
    /// Absent on a Replica written before revisions existed: it runs the cargo's spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<ReplicaTemplate>,
    /// Seconds its container must run (and be healthy) before it counts as ready, and the
    /// container it replaces goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<u32>,
}

/// The container one replica runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaTemplate {
    /// The cargo's container with the cluster variables substituted.
    pub container: ContainerSpec,
    /// The cargo's networks (empty: the cluster's default network).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    /// The `rollout restart` that made this revision, if one did (a label on the container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_at: Option<String>,
}

/// What the agent of the replica's node observed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaStatus {
    /// The node that wrote this status (a report from a node the replica has since left
    /// does not count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The container's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The image its container was created from, as the spec names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Docker's health of its container (`starting`, `healthy`, `unhealthy`), when it has
    /// a health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// How many times its container was started again after it stopped (a new container
    /// starts at 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restarts: u32,
    /// Its container's IPv4 address on the cargo's first network, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Where the node's proxy sends the replica's traffic: the address of its ready
    /// container — during a replacement, the container being replaced until its successor is
    /// ready (a new container gets traffic only once ready, the old one keeps it until then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<String>,
    /// `Pending` (no container yet), `Running`, `Stopped` (exited or not started) or
    /// `Failed` (it cannot run: `reason` says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Running the current spec, and healthy when it has a health check.
    #[serde(default)]
    pub ready: bool,
    /// How many containers the slot has on the node (more than one while a replacement
    /// runs beside the container it replaces).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub containers: u32,
    /// The hash of the container spec it runs (`io.nanocl.spec-hash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
    /// A CamelCase word when something is wrong (`CrashLoopBackOff`, `PortInUse`,
    /// `ImagePullBackOff`, `NetworkNotReady`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A sentence for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What its container used at the last sample (cargoes with `spec.autoscale` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ReplicaUsage>,
}

/// One sample of a replica's resource use, taken by its node's agent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaUsage {
    /// The container measured.
    pub container: String,
    /// CPUs busy on average since the previous sample (1.0 = one CPU), to 3 decimals.
    pub cpus: f64,
    /// Memory in use, page cache left out, in bytes (to the MiB).
    pub memory: u64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The name of slot `slot`'s Replica: `{cargo}-{slot}`, or, when that would be longer than
/// a name may be (63), the cargo's name cut short with a hash of the whole.
pub fn name(cargo: &str, slot: u32) -> String {
    let full = format!("{cargo}-{slot}");
    if full.len() <= 63 {
        return full;
    }
    // FNV-1a: stable across builds and platforms.
    let hash = cargo.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let suffix = format!("-{:08x}-{slot}", hash & 0xffff_ffff);
    let keep = 63 - suffix.len();
    let cut = cargo[..keep].trim_end_matches('-');
    format!("{cut}{suffix}")
}

/// Checks a Replica.
pub fn validate(replica: &Replica) -> FieldErrors {
    let mut errors = FieldErrors::new();
    replica
        .metadata
        .validate(&FieldPath::keys("metadata"), true, &mut errors);
    errors.check(
        &FieldPath::keys("spec.cargo"),
        validation::dns1123_label(&replica.spec.cargo),
    );
    errors.check(
        &FieldPath::keys("spec.node"),
        validation::dns1123_label(&replica.spec.node),
    );
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_should_be_short_enough_and_distinct() {
        assert_eq!(name("web", 3), "web-3");
        let long = "a".repeat(63);
        let n = name(&long, 999);
        assert!(n.len() <= 63, "{n}");
        assert!(validation::dns1123_label(&n).is_ok(), "{n}");
        assert_ne!(n, name(&format!("{}b", &long[..62]), 999));
    }
}
