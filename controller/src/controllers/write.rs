//! How controllers write objects: status, finalizers, and the final delete, each a
//! compare-and-swap on the object's resourceVersion (a conflict means a newer version exists,
//! whose own event brings another reconcile).

use nanocl_api_types::meta::{Condition, ConditionStatus};
use nanocl_api_types::AnyObject;
use serde_json::Value;

use super::FINALIZER;
use crate::objects::now;
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

/// Writes `owner`'s part of the status (see `merge_status`), unless it is already so. A
/// conflict means someone else wrote meanwhile, perhaps another owner: the object is read
/// again and the patch applied to it, so neither write is lost.
pub async fn patch_status<S: Store>(
    store: &S,
    object: &AnyObject,
    owner: &StatusOwner,
    patch: Value,
) -> Result<(), StoreError> {
    let corrupt = |e: &dyn std::fmt::Display| StoreError::RecordCorrupt {
        what: format!("{}: {e}", object.key()),
    };
    let mut current = object.clone();
    for _ in 0..5 {
        let mut value = serde_json::to_value(&current).map_err(|e| corrupt(&e))?;
        let merged = merge_status(value.get("status"), owner, &patch);
        if value.get("status").unwrap_or(&Value::Null) == &merged
            || (value.get("status").is_none() && merged == Value::Object(Default::default()))
        {
            return Ok(());
        }
        value["status"] = merged;
        let next = AnyObject::from_v1_value(value).map_err(|e| corrupt(&e))?;
        match update(store, &next).await {
            Ok(()) | Err(StoreError::NotFound { .. }) => return Ok(()),
            Err(StoreError::Conflict { .. }) => {
                let key = keys::object_key(&object.key());
                let Some(kv) = store.get(&key).await? else {
                    return Ok(());
                };
                current = match crate::objects::decode(&kv) {
                    Ok(stored) => stored.object,
                    // Unreadable now: leave it alone (see `objects::Unreadable`).
                    Err(_) => return Ok(()),
                };
            }
            Err(e) => return Err(e),
        }
    }
    // Still contended: the next reconcile writes it.
    Ok(())
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
        ],
        conditions: &["Ready", "Progressing", "Degraded"],
    };
    /// The Cluster controller.
    pub const CLUSTER: StatusOwner = StatusOwner {
        fields: &["observedGeneration"],
        conditions: &["Ready", "Degraded"],
    };
    /// The Network controller.
    pub const NETWORK: StatusOwner = StatusOwner {
        fields: &["observedGeneration", "networkId"],
        conditions: &["Ready", "Degraded"],
    };
    /// The Namespace controller.
    pub const NAMESPACE: StatusOwner = StatusOwner {
        fields: &["phase"],
        conditions: &[],
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EmbeddedOptions, EmbeddedStore};
    use nanocl_api_types::manifest::{decode_str, DecodeOptions};
    use serde_json::json;

    /// What a second writer (the autoscaler, say) owns: a field and a condition type.
    const AUTOSCALER: StatusOwner = StatusOwner {
        fields: &[],
        conditions: &["ScalingActive"],
    };

    fn condition_types(status: &Value) -> Vec<&str> {
        status["conditions"]
            .as_array()
            .map(|cs| cs.iter().filter_map(|c| c["type"].as_str()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_status_patch_should_replace_only_what_its_writer_owns() {
        let current = json!({
            "replicas": 2,
            "readyReplicas": 1,
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "ReplicasNotReady"},
                {"type": "ScalingActive", "status": "True", "reason": "CpuAboveTarget"},
            ]
        });
        let patch = json!({
            "replicas": 3,
            "conditions": [{"type": "Ready", "status": "True", "reason": "ReplicasReady"}]
        });
        let merged = merge_status(Some(&current), &owners::CARGO, &patch);
        assert_eq!(merged["replicas"], 3);
        assert!(
            merged.get("readyReplicas").is_none(),
            "an owned field left out is cleared"
        );
        assert_eq!(condition_types(&merged), vec!["Ready", "ScalingActive"]);
        assert_eq!(merged["conditions"][0]["reason"], "ReplicasReady");
        assert_eq!(
            merged["conditions"][1]["reason"], "CpuAboveTarget",
            "kept as it was"
        );
    }

    #[tokio::test]
    async fn a_status_written_by_two_owners_should_keep_both_parts() {
        let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store");
        let decoded = decode_str(
            "c.yaml",
            "apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {name: web}\nspec:\n  cluster: dev\n  container: {image: busybox:stable}\n",
            &DecodeOptions::default(),
        );
        let object = decoded.manifests[0].object.clone();
        let key = keys::object_key(&object.key());
        let kv = store
            .create(&key, crate::objects::encode(&object).expect("encode"))
            .await
            .expect("create");
        // Both writers hold the same (soon stale) copy, as two caches would.
        let stale = crate::objects::decode(&kv).expect("decode").object;
        patch_status(
            &store,
            &stale,
            &owners::CARGO,
            json!({"replicas": 1, "readyReplicas": 1, "conditions": [{"type": "Ready", "status": "True", "reason": "ReplicasReady", "message": ""}]}),
        )
        .await
        .expect("cargo controller");
        patch_status(
            &store,
            &stale,
            &AUTOSCALER,
            json!({"conditions": [{"type": "ScalingActive", "status": "True", "reason": "CpuAboveTarget", "message": ""}]}),
        )
        .await
        .expect("autoscaler, from a stale copy");
        let stored: Value =
            serde_json::from_slice(&store.get(&key).await.expect("get").expect("present").value)
                .expect("json");
        assert_eq!(stored["status"]["readyReplicas"], 1, "{stored}");
        assert_eq!(
            condition_types(&stored["status"]),
            vec!["ScalingActive", "Ready"],
            "{stored}"
        );
    }
}
