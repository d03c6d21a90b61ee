//! Events: what the controllers did and what went wrong, per object (`nanocl events`,
//! `nanocl describe`). Repeats of one reason on one object are counted, not duplicated.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;

/// The object an event is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// Its kind, e.g. `Cargo`.
    pub kind: String,
    /// Its namespace (none for a Namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

/// One thing that happened to an object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// `nanocl.io/v1`.
    pub api_version: String,
    /// `Event`.
    pub kind: String,
    /// Name (`{kind}.{name}.{reason}`, lowercase) and namespace.
    pub metadata: ObjectMeta,
    /// What it is about.
    pub involved_object: ObjectReference,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    /// A CamelCase word, e.g. `ReplicaCreated`, `CrashLoopBackOff`.
    pub reason: String,
    /// For people.
    pub message: String,
    /// How many times it happened.
    pub count: i64,
    /// When it first happened (RFC 3339).
    pub first_timestamp: String,
    /// When it last happened (RFC 3339).
    pub last_timestamp: String,
}

/// The store key of the event for `reason` on an object: one per (object, reason), so
/// repeats are counted.
pub fn event_name(kind: &str, name: &str, reason: &str) -> String {
    format!(
        "{}.{name}.{}",
        kind.to_ascii_lowercase(),
        reason.to_ascii_lowercase()
    )
}
