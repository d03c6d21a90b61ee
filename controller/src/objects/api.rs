//! `Api<K>`: typed reads and writes of one kind over the store, the role `kube::Api<K>` plays,
//! for the controllers (and the scheduler and autoscaler after them). Keys are `ObjectRef<K>`,
//! not strings; every write is a compare-and-swap on the object's `resourceVersion` and
//! follows the lifecycle rules of `lifecycle`.

use std::fmt;
use std::marker::PhantomData;

use nanocl_api_types::{AnyObject, ObjectKey, Resource};
use serde_json::Value;

use super::lifecycle::{self, Deletion, Replacement};
use super::status::{merge_status, StatusOwner};
use super::{decode, encode, ObjectError};
use crate::store::{keys, Revision, Store, StoreError};

/// A typed reference to one object of kind `K`.
pub struct ObjectRef<K> {
    /// Its namespace (`None` for a Namespace).
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for ObjectRef<K> {
    fn clone(&self) -> Self {
        ObjectRef {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> PartialEq for ObjectRef<K> {
    fn eq(&self, other: &Self) -> bool {
        self.namespace == other.namespace && self.name == other.name
    }
}

impl<K> Eq for ObjectRef<K> {}

impl<K: Resource> fmt::Debug for ObjectRef<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectRef<{}>({self})", K::KIND)
    }
}

impl<K: Resource> fmt::Display for ObjectRef<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.store_key())
    }
}

impl<K: Resource> ObjectRef<K> {
    /// `name` in `namespace` (ignored for cluster-scoped kinds).
    pub fn new(namespace: Option<&str>, name: &str) -> Self {
        ObjectRef {
            namespace: namespace
                .filter(|_| K::KIND.namespaced())
                .map(str::to_owned),
            name: name.to_owned(),
            kind: PhantomData,
        }
    }

    /// The reference to `object`.
    pub fn of(object: &K) -> Self {
        let meta = object.meta();
        Self::new(meta.namespace.as_deref(), &meta.name)
    }

    /// The reference stored at `key`, if it is a key of `K`.
    pub fn parse(key: &str) -> Option<Self> {
        let parsed = keys::parse_object_key(K::KIND, key)?;
        Some(Self::new(parsed.namespace.as_deref(), &parsed.name))
    }

    /// The untyped key.
    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            kind: K::KIND,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// Where it is stored.
    pub fn store_key(&self) -> String {
        keys::object_key(&self.key())
    }
}

/// Typed access to the objects of kind `K`.
pub struct Api<K, S> {
    store: S,
    kind: PhantomData<fn() -> K>,
}

impl<K, S: Clone> Clone for Api<K, S> {
    fn clone(&self) -> Self {
        Api {
            store: self.store.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: Resource, S> fmt::Debug for Api<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Api<{}>", K::KIND)
    }
}

fn revision_of(object: &AnyObject) -> Revision {
    object
        .metadata()
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

/// Writes `next` in place of `current` if `current`'s `resourceVersion` is still the stored
/// one, by the lifecycle's replace rules (a deleting object whose last finalizer is gone is
/// removed). `current` is the copy `next` was made from (a cache's, say): the CAS makes sure
/// the store still holds exactly it.
pub async fn replace_any<S: Store>(
    store: &S,
    current: &AnyObject,
    next: &AnyObject,
) -> Result<(), ObjectError> {
    let key = keys::object_key(&current.key());
    let expected = revision_of(current);
    match lifecycle::replaced(next, current, expected)? {
        Replacement::Unchanged => Ok(()),
        Replacement::Store(next) => {
            store.update(&key, encode(&next)?, expected).await?;
            Ok(())
        }
        Replacement::Remove(_) => {
            store.delete(&key, Some(expected)).await?;
            Ok(())
        }
    }
}

/// Deletes `current` as the API does: marked when it has finalizers, removed otherwise.
pub async fn delete_any<S: Store>(store: &S, current: &AnyObject) -> Result<(), ObjectError> {
    let key = keys::object_key(&current.key());
    let expected = revision_of(current);
    match lifecycle::deleted(current) {
        Deletion::AlreadyMarked => Ok(()),
        Deletion::Mark(marked) => {
            store.update(&key, encode(&marked)?, expected).await?;
            Ok(())
        }
        Deletion::Remove => {
            store.delete(&key, Some(expected)).await?;
            Ok(())
        }
    }
}

/// Writes `owner`'s part of the status of `object` (see `status::merge_status`), unless it
/// is so already. A conflict means someone else wrote meanwhile, perhaps another owner: the
/// object is read again and the patch applied to it, so neither write is lost. An object
/// gone meanwhile, or no longer readable, is left alone.
pub async fn patch_status_any<S: Store>(
    store: &S,
    object: &AnyObject,
    owner: &StatusOwner,
    patch: &Value,
) -> Result<(), ObjectError> {
    let key = keys::object_key(&object.key());
    let encode_failed = |e: &dyn fmt::Display| ObjectError::EncodeFailed {
        key: key.clone(),
        message: e.to_string(),
    };
    let mut current = object.clone();
    for _ in 0..5 {
        let mut value = serde_json::to_value(&current).map_err(|e| encode_failed(&e))?;
        let stored_status = value.get("status").cloned();
        let merged = merge_status(stored_status.as_ref(), owner, patch);
        let empty = Value::Object(Default::default());
        if stored_status.as_ref().unwrap_or(&empty) == &merged {
            return Ok(());
        }
        value["status"] = merged;
        let next = AnyObject::from_v1_value(value).map_err(|e| encode_failed(&e))?;
        match store
            .update(&key, encode(&next)?, revision_of(&current))
            .await
        {
            Ok(_) | Err(StoreError::NotFound { .. }) => return Ok(()),
            Err(StoreError::Conflict { .. }) => match store.get(&key).await? {
                None => return Ok(()),
                Some(kv) => match decode(&kv) {
                    Ok(stored) => current = stored.object,
                    Err(_) => return Ok(()),
                },
            },
            Err(e) => return Err(e.into()),
        }
    }
    // Still contended: the next reconcile writes it.
    Ok(())
}

impl<K: Resource, S: Store> Api<K, S> {
    /// Over `store`.
    pub fn new(store: S) -> Self {
        Api {
            store,
            kind: PhantomData,
        }
    }

    /// The object, `None` when absent; an object that does not decode is an error
    /// (`ObjectError::Undecodable`), never `None`.
    pub async fn get(&self, at: &ObjectRef<K>) -> Result<Option<K>, ObjectError> {
        let Some(kv) = self.store.get(&at.store_key()).await? else {
            return Ok(None);
        };
        let stored = decode(&kv)?;
        K::from_any(stored.object)
            .map(Some)
            .ok_or_else(|| ObjectError::Undecodable {
                key: kv.key.clone(),
                message: format!("not a {}", K::KIND),
            })
    }

    /// Writes `next` in place of `current` (see `replace_any`).
    pub async fn replace(&self, current: &K, next: &K) -> Result<(), ObjectError> {
        replace_any(
            &self.store,
            &current.clone().into_any(),
            &next.clone().into_any(),
        )
        .await
    }

    /// Deletes `current` (see `delete_any`).
    pub async fn delete(&self, current: &K) -> Result<(), ObjectError> {
        delete_any(&self.store, &current.clone().into_any()).await
    }

    /// Adds finalizer `name`; `true` if it was missing (and is now written).
    pub async fn add_finalizer(&self, object: &K, name: &str) -> Result<bool, ObjectError> {
        if object.meta().finalizers.iter().any(|f| f == name) {
            return Ok(false);
        }
        let mut next = object.clone();
        next.meta_mut().finalizers.push(name.to_owned());
        self.replace(object, &next).await?;
        Ok(true)
    }

    /// Removes finalizer `name`; a deleting object goes when it was the last.
    pub async fn remove_finalizer(&self, object: &K, name: &str) -> Result<(), ObjectError> {
        let mut next = object.clone();
        next.meta_mut().finalizers.retain(|f| f != name);
        if next.meta().finalizers.len() == object.meta().finalizers.len() {
            return Ok(());
        }
        self.replace(object, &next).await
    }

    /// Writes `owner`'s part of the status (see `patch_status_any`).
    pub async fn patch_status(
        &self,
        object: &K,
        owner: &StatusOwner,
        patch: &Value,
    ) -> Result<(), ObjectError> {
        patch_status_any(&self.store, &object.clone().into_any(), owner, patch).await
    }
}
