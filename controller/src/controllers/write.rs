//! How controllers write objects: status, finalizers, and the final delete, each a
//! compare-and-swap on the object's resourceVersion (a conflict means a newer version exists,
//! whose own event brings another reconcile).

use nanocl_api_types::meta::{Condition, ConditionStatus};
use nanocl_api_types::AnyObject;
use serde_json::Value;

use super::FINALIZER;
use crate::apiserver::handlers::now;
use crate::store::{keys, Store, StoreError};

fn encode(object: &AnyObject) -> Result<Vec<u8>, StoreError> {
    let mut object = object.clone();
    object.metadata_mut().resource_version = None;
    serde_json::to_vec(&object).map_err(|e| StoreError::RecordCorrupt {
        what: format!("{}: {e}", object.key()),
    })
}

fn revision(object: &AnyObject) -> i64 {
    object
        .metadata()
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

/// Writes `object` if its resourceVersion is still current.
pub async fn update<S: Store>(store: &S, object: &AnyObject) -> Result<(), StoreError> {
    store
        .update(
            &keys::object_key(&object.key()),
            encode(object)?,
            revision(object),
        )
        .await
        .map(|_| ())
}

/// Replaces the status, unless it already is `status`.
pub async fn set_status<S: Store>(
    store: &S,
    object: &AnyObject,
    status: Value,
) -> Result<(), StoreError> {
    let mut value = serde_json::to_value(object).map_err(|e| StoreError::RecordCorrupt {
        what: e.to_string(),
    })?;
    if value.get("status") == Some(&status) {
        return Ok(());
    }
    value["status"] = status;
    let next = AnyObject::from_v1_value(value).map_err(|e| StoreError::RecordCorrupt {
        what: e.to_string(),
    })?;
    match update(store, &next).await {
        // Someone else wrote meanwhile: that write's event reconciles again.
        Ok(()) | Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Adds the controller's finalizer; `true` if it was missing (and is now written).
pub async fn ensure_finalizer<S: Store>(store: &S, object: &AnyObject) -> Result<bool, StoreError> {
    if object.metadata().finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(false);
    }
    let mut next = object.clone();
    next.metadata_mut().finalizers.push(FINALIZER.to_owned());
    update(store, &next).await?;
    Ok(true)
}

/// Removes the controller's finalizer; the object goes when it was the last one.
pub async fn release<S: Store>(store: &S, object: &AnyObject) -> Result<(), StoreError> {
    let mut next = object.clone();
    next.metadata_mut().finalizers.retain(|f| f != FINALIZER);
    if next.metadata().finalizers.is_empty() {
        store
            .delete(&keys::object_key(&object.key()), Some(revision(object)))
            .await
            .map(|_| ())
    } else {
        update(store, &next).await
    }
}

/// A condition, keeping the previous transition time when the status did not change.
pub fn condition(
    type_: &str,
    holds: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    previous: &[Condition],
) -> Condition {
    let status = if holds {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    };
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(now);
    Condition {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message: message.into(),
        last_transition_time: Some(since),
        observed_generation: generation,
    }
}
