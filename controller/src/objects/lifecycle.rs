//! The lifecycle rules, once, for every writer (the API's handlers, the controllers, the
//! namespace cascade): what a create, a replace and a delete store.
//!
//! - create: a new `uid`, `creationTimestamp`, `generation: 1`; no `resourceVersion`,
//!   `deletionTimestamp` or `status`;
//! - replace: the writer's spec, labels, annotations and finalizers; the stored `uid`,
//!   `creationTimestamp`, `deletionTimestamp` and `status`; `generation` bumped only when
//!   the spec changed; a deleting object whose last finalizer goes is removed;
//! - delete: with finalizers, marked (`deletionTimestamp`) and left to its controllers;
//!   without, removed.

use nanocl_api_types::cargo::v1::is_command_annotation;
use nanocl_api_types::AnyObject;
use serde_json::Value;

use super::{now, ObjectError};
use crate::store::Revision;

fn to_value(object: &AnyObject) -> Result<Value, ObjectError> {
    serde_json::to_value(object).map_err(|e| ObjectError::EncodeFailed {
        key: object.key().to_string(),
        message: e.to_string(),
    })
}

fn from_value(value: Value, key: &str) -> Result<AnyObject, ObjectError> {
    AnyObject::from_v1_value(value).map_err(|e| ObjectError::EncodeFailed {
        key: key.to_owned(),
        message: e.to_string(),
    })
}

/// `object` with the status of `source` (none when `source` has none).
pub fn with_status_of(object: &AnyObject, source: &AnyObject) -> Result<AnyObject, ObjectError> {
    let key = object.key().to_string();
    let mut value = to_value(object)?;
    let status = to_value(source)?.get("status").cloned();
    if let Some(map) = value.as_object_mut() {
        match status {
            Some(s) => map.insert("status".into(), s),
            None => map.remove("status"),
        };
    }
    from_value(value, &key)
}

/// The spec of `object`, to tell whether a replace changed it.
fn spec_of(object: &AnyObject) -> Result<Value, ObjectError> {
    Ok(to_value(object)?
        .get("spec")
        .cloned()
        .unwrap_or(Value::Null))
}

/// What a create stores.
pub fn created(object: &AnyObject) -> Result<AnyObject, ObjectError> {
    let key = object.key().to_string();
    let mut value = to_value(object)?;
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
    }
    let mut object = from_value(value, &key)?;
    let meta = object.metadata_mut();
    meta.uid = Some(uuid::Uuid::new_v4().to_string());
    meta.creation_timestamp = Some(now());
    meta.generation = Some(1);
    meta.resource_version = None;
    meta.deletion_timestamp = None;
    Ok(object)
}

/// What a replace of `current` (stored at `revision`) by `next` does.
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "made once per write and matched at once; boxing would only add an allocation"
)]
pub enum Replacement {
    /// Nothing changes: no write.
    Unchanged,
    /// Store this.
    Store(AnyObject),
    /// The object was being deleted and its last finalizer is gone: remove it. (The object
    /// as it was last, for the answer.)
    Remove(AnyObject),
}

/// What a replace of `current` by `next` stores (see the module's rules).
pub fn replaced(
    next: &AnyObject,
    current: &AnyObject,
    revision: Revision,
) -> Result<Replacement, ObjectError> {
    let mut object = with_status_of(next, current)?;
    // `rollout restart|pause|resume` and `build` change what runs as a spec change does: the generation
    // tells a waiting `rollout status` when the controller has seen them.
    let rollout = |o: &AnyObject| -> Vec<(String, String)> {
        o.metadata()
            .annotations
            .iter()
            .filter(|(k, _)| is_command_annotation(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let spec_changed =
        spec_of(&object)? != spec_of(current)? || rollout(&object) != rollout(current);
    {
        let old = current.metadata();
        let meta = object.metadata_mut();
        meta.uid = old.uid.clone();
        meta.creation_timestamp = old.creation_timestamp.clone();
        meta.deletion_timestamp = old.deletion_timestamp.clone();
        meta.generation = Some(old.generation.unwrap_or(1) + i64::from(spec_changed));
        meta.resource_version = Some(revision.to_string());
        // An update that leaves them out keeps who applied what.
        if meta.managed_fields.is_empty() {
            meta.managed_fields = old.managed_fields.clone();
        }
    }
    if &object == current {
        return Ok(Replacement::Unchanged);
    }
    if object.metadata().deletion_timestamp.is_some() && object.metadata().finalizers.is_empty() {
        return Ok(Replacement::Remove(object));
    }
    Ok(Replacement::Store(object))
}

/// What a delete of `current` does.
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "made once per write and matched at once; boxing would only add an allocation"
)]
pub enum Deletion {
    /// It has finalizers: store it marked, for its controllers to finish.
    Mark(AnyObject),
    /// It has finalizers and is marked already: nothing to write.
    AlreadyMarked,
    /// No finalizer: remove it now.
    Remove,
}

/// What a delete of `current` does (see the module's rules).
pub fn deleted(current: &AnyObject) -> Deletion {
    let meta = current.metadata();
    if meta.finalizers.is_empty() {
        return Deletion::Remove;
    }
    if meta.deletion_timestamp.is_some() {
        return Deletion::AlreadyMarked;
    }
    let mut marked = current.clone();
    marked.metadata_mut().deletion_timestamp = Some(now());
    Deletion::Mark(marked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanocl_api_types::manifest::{decode_str, DecodeOptions};

    fn cargo(replicas: u32) -> AnyObject {
        let decoded = decode_str(
            "c.yaml",
            &format!("apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: web}}\nspec:\n  cluster: dev\n  replicas: {replicas}\n  container: {{image: busybox:stable}}\n"),
            &DecodeOptions::default(),
        );
        decoded.manifests[0].object.clone()
    }

    #[test]
    fn a_replace_should_bump_generation_only_when_the_spec_changes() {
        let stored = created(&cargo(1)).expect("create");
        assert_eq!(stored.metadata().generation, Some(1));
        assert!(stored.metadata().uid.is_some());
        let mut current = stored.clone();
        current.metadata_mut().resource_version = Some("7".into());
        let mut relabelled = cargo(1);
        relabelled
            .metadata_mut()
            .labels
            .insert("tier".into(), "front".into());
        let Replacement::Store(next) = replaced(&relabelled, &current, 7).expect("replace") else {
            panic!("a label change is stored");
        };
        assert_eq!(
            next.metadata().generation,
            Some(1),
            "labels are not the spec"
        );
        assert_eq!(next.metadata().uid, stored.metadata().uid, "uid kept");
        let Replacement::Store(next) = replaced(&cargo(3), &current, 7).expect("replace") else {
            panic!("a spec change is stored");
        };
        assert_eq!(next.metadata().generation, Some(2));
        assert_eq!(
            replaced(&stored, &current, 7).expect("replace"),
            Replacement::Unchanged
        );
    }

    #[test]
    fn a_delete_should_mark_what_has_finalizers_and_remove_the_rest() {
        let mut object = created(&cargo(1)).expect("create");
        assert_eq!(deleted(&object), Deletion::Remove);
        object
            .metadata_mut()
            .finalizers
            .push("nanocl.io/controller".into());
        let Deletion::Mark(marked) = deleted(&object) else {
            panic!("marked");
        };
        assert!(marked.metadata().deletion_timestamp.is_some());
        assert_eq!(deleted(&marked), Deletion::AlreadyMarked);
        // The controller removes its finalizer: the object goes.
        let mut released = marked.clone();
        released.metadata_mut().finalizers.clear();
        assert!(matches!(
            replaced(&released, &marked, 9).expect("replace"),
            Replacement::Remove(_)
        ));
    }
}
