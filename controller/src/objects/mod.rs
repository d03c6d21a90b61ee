//! The object layer: typed objects over the byte store, below both the API server and the
//! controllers. Stored form is v1 JSON without `resourceVersion`; the store's `mod_revision`
//! is the `resourceVersion` on every read.
//!
//! A stored value this version cannot decode is an error of its own (`Undecodable`), never
//! "absent": callers that would act on absence (the garbage collector, a cascade) must
//! tell the two apart.

pub mod admission;
pub mod api;
pub mod lifecycle;
pub mod sealing;
pub mod status;

use std::time::SystemTime;

use nanocl_api_types::{AnyObject, Kind, ObjectKey};
use serde_json::Value;

use crate::store::{keys, KeyValue, Revision, Store, StoreError};

/// An object read from the store, with its revision.
#[derive(Clone, Debug)]
pub struct Stored {
    /// The object, `metadata.resourceVersion` filled in.
    pub object: AnyObject,
    /// Its `mod_revision`.
    pub revision: Revision,
}

/// Why an object could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The stored value is not an object this version can read.
    #[error("stored object {key} is unreadable: {message}")]
    Undecodable {
        /// The store key.
        key: String,
        /// The decoder's message.
        message: String,
    },
    /// The object could not be serialized.
    #[error("cannot serialize {key}: {message}")]
    EncodeFailed {
        /// The object.
        key: String,
        /// Why.
        message: String,
    },
    /// A lifecycle rule refused the write (see `admission`).
    #[error(transparent)]
    Refused(#[from] admission::Refusal),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Now, as RFC 3339 (seconds), for the lifecycle timestamps.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Decodes a stored value.
pub fn decode(kv: &KeyValue) -> Result<Stored, ObjectError> {
    let undecodable = |message: String| ObjectError::Undecodable {
        key: kv.key.clone(),
        message,
    };
    let mut value: Value =
        serde_json::from_slice(&kv.value).map_err(|e| undecodable(e.to_string()))?;
    unseal(&mut value).map_err(|e| undecodable(format!("a secret that cannot be opened: {e}")))?;
    let mut object = AnyObject::from_v1_value(value).map_err(|e| undecodable(e.to_string()))?;
    object.metadata_mut().resource_version = Some(kv.mod_revision.to_string());
    Ok(Stored {
        object,
        revision: kv.mod_revision,
    })
}

/// The bytes stored for `object`: v1 JSON without `resourceVersion` (the store keeps that).
pub fn encode(object: &AnyObject) -> Result<Vec<u8>, ObjectError> {
    let mut object = object.clone();
    object.metadata_mut().resource_version = None;
    let failed = |message: String| ObjectError::EncodeFailed {
        key: object.key().to_string(),
        message,
    };
    let mut value = serde_json::to_value(&object).map_err(|e| failed(e.to_string()))?;
    if object.kind() == Kind::Secret {
        seal(&mut value, &sealing_aad(&object.key()));
    }
    serde_json::to_vec(&value).map_err(|e| failed(e.to_string()))
}

/// What a Secret's sealed data is bound to: its kind, namespace and name.
fn sealing_aad(key: &ObjectKey) -> String {
    format!(
        "{}/{}/{}",
        key.kind,
        key.namespace.as_deref().unwrap_or(""),
        key.name
    )
}

/// Replaces a Secret's `spec.data` by `spec.sealed`.
fn seal(value: &mut Value, aad: &str) {
    let Some(spec) = value.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let data = spec
        .remove("data")
        .unwrap_or_else(|| Value::Object(Default::default()));
    let plaintext = data.to_string();
    spec.insert(
        "sealed".into(),
        Value::String(sealing::keyring().seal(aad, plaintext.as_bytes())),
    );
}

/// Puts a sealed Secret's `spec.data` back (anything else is left as it is).
fn unseal(value: &mut Value) -> Result<(), String> {
    if value.get("kind").and_then(Value::as_str) != Some("Secret") {
        return Ok(());
    }
    let Some(sealed) = value["spec"]
        .get("sealed")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        return Ok(());
    };
    let name = value["metadata"]["name"].as_str().unwrap_or_default();
    let namespace = value["metadata"]["namespace"].as_str().unwrap_or_default();
    let aad = format!("Secret/{namespace}/{name}");
    let plaintext = sealing::keyring().open(&aad, &sealed)?;
    let data: Value = serde_json::from_slice(&plaintext)
        .map_err(|_| "its opened data is not the JSON nanocld seals".to_owned())?;
    if let Some(spec) = value.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("sealed");
        spec.insert("data".into(), data);
    }
    Ok(())
}

/// Whether a stored Secret's value was sealed with an older key than the current one (the
/// leader seals it again).
pub fn needs_resealing(kv: &KeyValue) -> bool {
    serde_json::from_slice::<Value>(&kv.value)
        .ok()
        .and_then(|v| v["spec"]["sealed"].as_str().map(str::to_owned))
        .is_some_and(|s| sealing::keyring().needs_resealing(&s))
}

/// Reads one object.
pub async fn read<S: Store>(store: &S, key: &ObjectKey) -> Result<Option<Stored>, ObjectError> {
    match store.get(&keys::object_key(key)).await? {
        None => Ok(None),
        Some(kv) => decode(&kv).map(Some),
    }
}

/// What can be read of a stored value that does not decode: enough to name it, list it and
/// delete it (its metadata, leniently), and why it does not decode.
#[derive(Clone, Debug, PartialEq)]
pub struct Unreadable {
    /// Its kind (from the key).
    pub kind: Kind,
    /// Its namespace (from the key).
    pub namespace: Option<String>,
    /// Its name (from the key).
    pub name: String,
    /// Its revision.
    pub revision: Revision,
    /// `metadata` as stored, if the value is a JSON object with one.
    pub metadata: Value,
    /// The decoder's message.
    pub error: String,
}

impl Unreadable {
    /// Reads what it can of `kv`, an object key of `kind` whose value did not decode.
    pub fn of(kind: Kind, kv: &KeyValue, error: String) -> Unreadable {
        let (namespace, name) = keys::split_object_key(kind, &kv.key);
        let metadata = serde_json::from_slice::<Value>(&kv.value)
            .ok()
            .and_then(|v| v.get("metadata").cloned())
            .filter(Value::is_object)
            .unwrap_or_else(|| Value::Object(Default::default()));
        Unreadable {
            kind,
            namespace,
            name,
            revision: kv.mod_revision,
            metadata,
            error,
        }
    }

    /// The marker a list answers in place of the object: its `apiVersion`, `kind` and
    /// `metadata` (with `resourceVersion`), and a status that says why it cannot be shown.
    pub fn list_item(&self, api_version: &str) -> Value {
        let mut metadata = self.metadata.clone();
        if let Some(meta) = metadata.as_object_mut() {
            meta.insert("name".into(), Value::String(self.name.clone()));
            if let Some(ns) = &self.namespace {
                meta.insert("namespace".into(), Value::String(ns.clone()));
            }
            meta.insert(
                "resourceVersion".into(),
                Value::String(self.revision.to_string()),
            );
        }
        serde_json::json!({
            "apiVersion": api_version,
            "kind": self.kind.as_str(),
            "metadata": metadata,
            "status": {
                "conditions": [{
                    "type": "Ready",
                    "status": "Unknown",
                    "reason": UNDECODABLE_REASON,
                    "message": format!(
                        "this nanocld cannot decode the stored object ({}); its containers and networks are left as they are. Upgrade nanocld, or delete the object",
                        self.error
                    ),
                }]
            }
        })
    }
}

/// The condition reason (and Event reason) of an object that cannot be decoded.
pub const UNDECODABLE_REASON: &str = "Undecodable";

/// Makes sure the `global` namespace exists.
pub async fn ensure_default_namespace<S: Store>(store: &S) -> Result<(), StoreError> {
    let key = ObjectKey {
        kind: Kind::Namespace,
        namespace: None,
        name: nanocl_api_types::meta::DEFAULT_NAMESPACE.to_owned(),
    };
    if store.get(&keys::object_key(&key)).await?.is_some() {
        return Ok(());
    }
    let mut ns: nanocl_api_types::namespace::v1::Namespace = nanocl_api_types::meta::Object::new(
        nanocl_api_types::V1,
        "Namespace",
        key.name.clone(),
        None,
        Default::default(),
    );
    ns.metadata.uid = Some(uuid::Uuid::new_v4().to_string());
    ns.metadata.creation_timestamp = Some(now());
    ns.metadata.generation = Some(1);
    let bytes = encode(&nanocl_api_types::AnyObject::Namespace(ns)).map_err(|e| {
        StoreError::RecordCorrupt {
            what: e.to_string(),
        }
    })?;
    match store.create(&keys::object_key(&key), bytes).await {
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
