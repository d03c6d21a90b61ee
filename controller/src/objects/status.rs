//! Status by owner: each writer of an object's `status` (the kind's controller today; the
//! autoscaler and the scheduler next) owns some top-level fields and condition types, and
//! patches only those, so none erases another's.

use serde_json::Value;

/// The part of an object's `status` one writer owns: top-level fields and condition types.
/// Each writer (the kind's controller today; the autoscaler and the scheduler next) patches
/// only its own part, so none erases another's.
#[derive(Clone, Copy, Debug)]
pub struct StatusOwner {
    /// Top-level status fields (other than `conditions`) this writer sets or clears.
    pub fields: &'static [&'static str],
    /// Condition types this writer sets or clears.
    pub conditions: &'static [&'static str],
}

/// `status` with `owner`'s part replaced by `patch`'s: owned fields present in `patch` are
/// set, owned fields absent from it removed, owned condition types likewise; everything
/// else is kept as it is.
pub fn merge_status(current: Option<&Value>, owner: &StatusOwner, patch: &Value) -> Value {
    let mut out = current
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for field in owner.fields {
        match patch.get(*field) {
            Some(v) => out.insert((*field).to_owned(), v.clone()),
            None => out.remove(*field),
        };
    }
    let owned = |c: &Value| {
        c.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| owner.conditions.contains(&t))
    };
    let mut conditions: Vec<Value> = out
        .get("conditions")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter(|c| !owned(c)).cloned().collect())
        .unwrap_or_default();
    let mine: Vec<Value> = patch
        .get("conditions")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter(|c| owned(c)).cloned().collect())
        .unwrap_or_default();
    // The owner's conditions first, in its order, then the others' as they were.
    conditions.splice(0..0, mine);
    if conditions.is_empty() {
        out.remove("conditions");
    } else {
        out.insert("conditions".into(), Value::Array(conditions));
    }
    Value::Object(out)
}

/// The status owned by each kind's own controller: all of today's status.
pub mod owners {
    use super::StatusOwner;

    /// The Cargo controller.
    pub const CARGO: StatusOwner = StatusOwner {
        fields: &[
            "observedGeneration",
            "replicas",
            "readyReplicas",
            "updatedReplicas",
            "currentRevision",
            "updateRevision",
            "rollout",
            "revisions",
            "autoscale",
        ],
        conditions: &["Ready", "Progressing", "Degraded"],
    };
    /// The builder (on the leader): what it built for the cargo.
    pub const CARGO_BUILD: StatusOwner = StatusOwner {
        fields: &["build"],
        conditions: &[],
    };
    /// The replica runner of the Replica's node: all of a Replica's status.
    pub const REPLICA: StatusOwner = StatusOwner {
        fields: &[
            "node",
            "container",
            "image",
            "health",
            "restarts",
            "address",
            "serving",
            "phase",
            "ready",
            "containers",
            "specHash",
            "reason",
            "message",
        ],
        conditions: &[],
    };
    /// The ProxyRule controller (on the leader; ACME): the generation it acted on, the
    /// rule's certificates and challenges.
    pub const PROXY_RULE_ACME: StatusOwner = StatusOwner {
        fields: &["observedGeneration", "certificates", "challenges"],
        conditions: &[],
    };
    /// The usage sampler of the Replica's node: what the container used.
    pub const REPLICA_USAGE: StatusOwner = StatusOwner {
        fields: &["usage"],
        conditions: &[],
    };
    /// The Cluster controller.
    pub const CLUSTER: StatusOwner = StatusOwner {
        fields: &["observedGeneration", "subnet"],
        conditions: &["Ready", "Degraded"],
    };
    /// The Network controller.
    pub const NETWORK: StatusOwner = StatusOwner {
        fields: &["observedGeneration", "networkId", "subnet"],
        conditions: &["Ready", "Degraded"],
    };
    /// The Namespace controller.
    pub const NAMESPACE: StatusOwner = StatusOwner {
        fields: &["phase"],
        conditions: &[],
    };
    /// The nanocld of the node itself (the agent): what it reports, and `Ready` while it
    /// keeps its lease.
    pub const NODE_AGENT: StatusOwner = StatusOwner {
        fields: &[
            "addresses",
            "proxyRelay",
            "capacity",
            "dockerVersion",
            "nanoclVersion",
            "lastHeartbeatTime",
        ],
        conditions: &["Ready"],
    };
    /// The Node controller (on the leader): `Ready=False` once the node's lease ran out.
    pub const NODE: StatusOwner = StatusOwner {
        fields: &[],
        conditions: &["Ready"],
    };
}
