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
    /// Its distinct messages, oldest first, each with how many times it was said (the 10
    /// most recent: `message` and `count` sum them up, the latest and the total).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<EventMessage>,
}

/// One distinct message of an event, and how often it was said.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventMessage {
    /// The message.
    pub message: String,
    /// How many times.
    pub count: i64,
    /// When last (RFC 3339).
    pub last_timestamp: String,
}

/// Most distinct messages an event keeps.
pub const MAX_MESSAGES: usize = 10;

impl Event {
    /// Records `message` once more, said at `at`.
    pub fn said(&mut self, message: &str, at: &str) {
        if self.messages.is_empty() && !self.message.is_empty() {
            // An event from before `messages`: its last message stands for all its count.
            self.messages.push(EventMessage {
                message: self.message.clone(),
                count: self.count.max(1),
                last_timestamp: self.last_timestamp.clone(),
            });
        }
        let mut entry = match self.messages.iter().position(|m| m.message == message) {
            Some(i) => self.messages.remove(i),
            None => EventMessage {
                message: message.to_owned(),
                count: 0,
                last_timestamp: String::new(),
            },
        };
        entry.count += 1;
        entry.last_timestamp = at.to_owned();
        self.messages.push(entry);
        if self.messages.len() > MAX_MESSAGES {
            let extra = self.messages.len() - MAX_MESSAGES;
            self.messages.drain(..extra);
        }
        self.count += 1;
        self.message = message.to_owned();
        self.last_timestamp = at.to_owned();
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_messages_should_each_be_counted() {
        let mut e = Event::default();
        e.said("removed container a", "t1");
        e.said("removed container b", "t2");
        e.said("removed container a", "t3");
        assert_eq!(e.count, 3);
        assert_eq!(e.message, "removed container a");
        let seen: Vec<(&str, i64)> = e
            .messages
            .iter()
            .map(|m| (m.message.as_str(), m.count))
            .collect();
        assert_eq!(
            seen,
            [("removed container b", 1), ("removed container a", 2)]
        );
        for i in 0..20 {
            e.said(&format!("m{i}"), "t");
        }
        assert_eq!(e.messages.len(), MAX_MESSAGES);
        assert_eq!(e.count, 23);
    }
}
