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
                    Refusal::ProxyRuleConflict { field, .. }
                    | Refusal::PolicyViolation { field, .. } => {
                        // The cause says the field once.
                        let why = message
                            .strip_prefix(&format!("{field}: "))
                            .unwrap_or(&message)
                            .to_owned();
                        ApiError::invalid(
                            message.clone(),
                            vec![crate::apiserver::status::Cause {
                                field,
                                message: why,
                            }],
                        )
                    }
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
            value: shown(&stored.object)
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

/// `object` as the API shows it: a Secret's values replaced by
/// `<hidden: N bytes, digest D>` (a keyed digest: equal values show equal digests, and a
/// changed value a new one, but nothing about the value itself).
pub fn shown(object: &AnyObject) -> std::borrow::Cow<'_, AnyObject> {
    let AnyObject::Secret(secret) = object else {
        return std::borrow::Cow::Borrowed(object);
    };
    let mut secret = secret.clone();
    for (key, value) in &mut secret.spec.data {
        let bytes = secret_value(value);
        let _ = key;
        *value = format!(
            "{}{} bytes, digest {}>",
            nanocl_api_types::secret::v1::HIDDEN_PREFIX,
            bytes.len(),
            crate::objects::sealing::keyring().digest(&bytes)
        );
    }
    std::borrow::Cow::Owned(AnyObject::Secret(secret))
}

fn secret_value(base64: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(base64)
        .unwrap_or_default()
}
