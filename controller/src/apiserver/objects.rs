//! The object layer as the API server sees it: `crate::objects` with its errors as `Status`
//! answers.

use std::collections::BTreeMap;

use nanocl_api_types::{AnyObject, Kind, ObjectKey, Version};
use serde_json::Value;

use super::status::ApiError;
use crate::objects::admission::Refusal;
pub use crate::objects::Stored;
use crate::objects::{self, ObjectError, Unreadable};
use crate::store::{KeyValue, Store};

impl From<ObjectError> for ApiError {
    fn from(e: ObjectError) -> Self {
        match e {
            ObjectError::Store(e) => e.into(),
            ObjectError::Refused(refusal) => {
                let message = refusal.to_string();
                match refusal {
                    Refusal::NamespaceMissing { .. } => ApiError::not_found(message),
                    Refusal::NamespaceTerminating { .. } => {
                        ApiError::namespace_terminating(message)
                    }
                    Refusal::NamespaceNotEmpty { .. } => ApiError::conflict(message),
                    Refusal::GlobalNamespace => ApiError::forbidden(message),
                }
            }
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// Decodes a stored value.
pub fn decode(kv: &KeyValue) -> Result<Stored, ApiError> {
    Ok(objects::decode(kv)?)
}

/// The bytes stored for `object`.
pub fn encode(object: &AnyObject) -> Result<Vec<u8>, ApiError> {
    Ok(objects::encode(object)?)
}

/// Reads one object.
pub async fn read<S: Store>(store: &S, key: &ObjectKey) -> Result<Option<Stored>, ApiError> {
    Ok(objects::read(store, key).await?)
}

/// A stored value as a client sees it: the object in the path's version or, when this
/// nanocld cannot decode it, a marker that names it and says why (never an error that hides
/// the objects beside it), with the labels selectors match on.
#[derive(Clone, Debug)]
pub struct View {
    /// What is sent.
    pub value: Value,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// The view of `kv`, a stored object of `kind`.
pub fn view(kv: &KeyValue, kind: Kind, version: Version) -> Result<View, ApiError> {
    match objects::decode(kv) {
        Ok(stored) => Ok(View {
            labels: stored.object.metadata().labels.clone(),
            value: stored
                .object
                .to_version(version)
                .map_err(|e| ApiError::internal(format!("cannot convert to {version}: {e}")))?,
        }),
        Err(ObjectError::Undecodable { message, .. }) => {
            let unreadable = Unreadable::of(kind, kv, message);
            let labels = unreadable
                .metadata
                .get("labels")
                .and_then(|l| serde_json::from_value(l.clone()).ok())
                .unwrap_or_default();
            Ok(View {
                value: unreadable.list_item(version.api_version()),
                labels,
            })
        }
        Err(e) => Err(e.into()),
    }
}
