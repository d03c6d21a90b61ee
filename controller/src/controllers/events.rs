//! Recording events: one per (object, reason), counted on repeat; old ones are collected.

use std::time::{Duration, SystemTime};

use nanocl_api_types::event::{event_name, Event, ObjectReference};
use nanocl_api_types::meta::ObjectMeta;
use nanocl_api_types::{AnyObject, ObjectKey};

use crate::objects::now;
use crate::store::{Store, StoreError};

/// Events older than this are removed by the garbage collector.
pub const RETENTION: Duration = Duration::from_secs(3600);

/// Store prefix of events: `events/{ns}/{name}`.
pub fn key(namespace: &str, name: &str) -> String {
    format!("events/{namespace}/{name}")
}

/// Records that `reason` happened to `object`. Never fails the caller: events are
/// informational, so a store error is logged, not returned.
pub async fn record<S: Store>(
    store: &S,
    object: &AnyObject,
    warning: bool,
    reason: &str,
    message: impl Into<String>,
) {
    record_for(store, &object.key(), warning, reason, message).await;
}

/// Records that `reason` happened to the object at `object` (which may not even decode).
pub async fn record_for<S: Store>(
    store: &S,
    object: &ObjectKey,
    warning: bool,
    reason: &str,
    message: impl Into<String>,
) {
    let message = message.into();
    // A Namespace's events are in itself; those of other cluster-scoped kinds (Nodes) in
    // the default namespace, as Kubernetes keeps a node's in `default`.
    let namespace = match (&object.namespace, object.kind) {
        (Some(ns), _) => ns.clone(),
        (None, nanocl_api_types::Kind::Namespace) => object.name.clone(),
        (None, _) => nanocl_api_types::meta::DEFAULT_NAMESPACE.to_owned(),
    };
    let name = event_name(object.kind.as_str(), &object.name, reason);
    let key = key(&namespace, &name);
    let result: Result<(), StoreError> = async {
        match store.get(&key).await? {
            Some(kv) => {
                let mut event: Event = serde_json::from_slice(&kv.value).unwrap_or_default();
                event.said(&message, &now());
                let bytes = serde_json::to_vec(&event).unwrap_or_default();
                match store.update(&key, bytes, kv.mod_revision).await {
                    Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            None => {
                let event = Event {
                    api_version: nanocl_api_types::V1.to_owned(),
                    kind: "Event".into(),
                    metadata: ObjectMeta {
                        name,
                        namespace: Some(namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    involved_object: ObjectReference {
                        kind: object.kind.as_str().to_owned(),
                        namespace: object.namespace.clone(),
                        name: object.name.clone(),
                    },
                    type_: if warning { "Warning" } else { "Normal" }.into(),
                    reason: reason.to_owned(),
                    message: message.clone(),
                    count: 1,
                    first_timestamp: now(),
                    last_timestamp: now(),
                    messages: vec![nanocl_api_types::event::EventMessage {
                        message: message.clone(),
                        count: 1,
                        last_timestamp: now(),
                    }],
                };
                let bytes = serde_json::to_vec(&event).unwrap_or_default();
                match store.create(&key, bytes).await {
                    Ok(_) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        }
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, %reason, "could not record an event");
    }
}

/// Removes events last seen more than `RETENTION` ago.
pub async fn collect<S: Store>(store: &S) -> Result<(), StoreError> {
    let cutoff = SystemTime::now() - RETENTION;
    for kv in store.list("events/").await?.items {
        let Ok(event) = serde_json::from_slice::<Event>(&kv.value) else {
            continue;
        };
        let old = humantime::parse_rfc3339(&event.last_timestamp).map_or(true, |t| t < cutoff);
        if old {
            let _ = store.delete(&kv.key, Some(kv.mod_revision)).await;
        }
    }
    Ok(())
}
