//! Typed objects over the byte store: v1 JSON in, `resourceVersion` from the store's
//! `mod_revision` on the way out.

use nanocl_api_types::{AnyObject, ObjectKey};

use super::status::ApiError;
use crate::store::{keys, KeyValue, Revision, Store};

/// An object read from the store, with its revision.
#[derive(Clone, Debug)]
pub struct Stored {
    /// The object, `metadata.resourceVersion` filled in.
    pub object: AnyObject,
    /// Its `mod_revision`.
    pub revision: Revision,
}

/// Decodes a stored value.
pub fn decode(kv: &KeyValue) -> Result<Stored, ApiError> {
    let mut object = AnyObject::from_stored(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is unreadable: {e}", kv.key)))?;
    object.metadata_mut().resource_version = Some(kv.mod_revision.to_string());
    Ok(Stored {
        object,
        revision: kv.mod_revision,
    })
}

/// The bytes stored for `object`: v1 JSON without `resourceVersion` (the store keeps that).
pub fn encode(object: &AnyObject) -> Result<Vec<u8>, ApiError> {
    let mut object = object.clone();
    object.metadata_mut().resource_version = None;
    serde_json::to_vec(&object)
        .map_err(|e| ApiError::internal(format!("cannot serialize the object: {e}")))
}

/// Reads one object.
pub async fn read<S: Store>(store: &S, key: &ObjectKey) -> Result<Option<Stored>, ApiError> {
    match store.get(&keys::object_key(key)).await? {
        None => Ok(None),
        Some(kv) => decode(&kv).map(Some),
    }
}
