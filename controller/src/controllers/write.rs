//! How controllers write status: their own part of it (`patch_status`, by owner), and
//! conditions that keep their transition time. Finalizers and deletion go through
//! `objects::api` and `runtime::finalizer`.

use nanocl_api_types::meta::{Condition, ConditionStatus};
use nanocl_api_types::AnyObject;
use serde_json::Value;

use crate::objects::now;
pub use crate::objects::status::{merge_status, owners, StatusOwner};
use crate::store::{Store, StoreError};

/// Writes `owner`'s part of the status (see `objects::api::patch_status_any`).
pub async fn patch_status<S: Store>(
    store: &S,
    object: &AnyObject,
    owner: &StatusOwner,
    patch: Value,
) -> Result<(), StoreError> {
    match crate::objects::api::patch_status_any(store, object, owner, &patch).await {
        Ok(()) => Ok(()),
        Err(crate::objects::ObjectError::Store(e)) => Err(e),
        Err(e) => Err(StoreError::RecordCorrupt {
            what: e.to_string(),
        }),
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
    use crate::store::{keys, EmbeddedOptions, EmbeddedStore};
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
