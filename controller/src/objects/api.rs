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
use super::{admission, Unreadable};
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

/// A list of one kind, as `Api::list` reads it.
#[derive(Debug)]
pub struct Listed<K> {
    /// The objects that decode.
    pub items: Vec<K>,
    /// The stored values that do not, named and with why.
    pub undecodable: Vec<Unreadable>,
    /// The store's revision the list was read at.
    pub revision: Revision,
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
    replace_any_at(store, current, next).await.map(|_| ())
}

/// `replace_any`, answering the store revision written (`None`: nothing was, or the object
/// was removed).
pub async fn replace_any_at<S: Store>(
    store: &S,
    current: &AnyObject,
    next: &AnyObject,
) -> Result<Option<Revision>, ObjectError> {
    let key = keys::object_key(&current.key());
    let expected = revision_of(current);
    admission::check_proxy_rule(store, next).await?;
    admission::check_policy(store, next).await?;
    match lifecycle::replaced(next, current, expected)? {
        Replacement::Unchanged => Ok(None),
        Replacement::Store(next) => {
            let kv = store.update(&key, encode(&next)?, expected).await?;
            Ok(Some(kv.mod_revision))
        }
        Replacement::Remove(_) => {
            store.delete(&key, Some(expected)).await?;
            Ok(None)
        }
    }
}

/// Creates `object` by the lifecycle's rules (its namespace must exist and not be
/// terminating; uid, timestamps and generation are set here), and returns what was stored.
/// With `dry_run`, everything is checked and nothing written.
pub async fn create_any<S: Store>(
    store: &S,
    object: &AnyObject,
    dry_run: bool,
) -> Result<AnyObject, ObjectError> {
    admission::check_create(store, object).await?;
    admission::check_proxy_rule(store, object).await?;
    admission::check_policy(store, object).await?;
    let object = lifecycle::created(object)?;
    let key = keys::object_key(&object.key());
    if dry_run {
        if let Some(current) = store.get(&key).await? {
            return Err(StoreError::AlreadyExists {
                key,
                current: Box::new(current),
            }
            .into());
        }
        return Ok(object);
    }
    let kv = store.create(&key, encode(&object)?).await?;
    Ok(decode(&kv)?.object)
}

/// Deletes `current` as the API does, if the lifecycle's rules allow it (see
/// `admission::check_delete`): marked when it has finalizers, removed otherwise. Answers the
/// object as it is now (marked), or as it was last (removed). With `dry_run`, nothing is
/// written.
pub async fn delete_any<S: Store>(
    store: &S,
    current: &AnyObject,
    dry_run: bool,
) -> Result<AnyObject, ObjectError> {
    admission::check_delete(store, &current.key(), Some(current)).await?;
    let key = keys::object_key(&current.key());
    let expected = revision_of(current);
    match lifecycle::deleted(current) {
        Deletion::AlreadyMarked => Ok(current.clone()),
        Deletion::Mark(marked) if dry_run => Ok(marked),
        Deletion::Mark(marked) => {
            let kv = store.update(&key, encode(&marked)?, expected).await?;
            Ok(decode(&kv)?.object)
        }
        Deletion::Remove => {
            if !dry_run {
                store.delete(&key, Some(expected)).await?;
            }
            Ok(current.clone())
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

    /// `replace`, answering the store revision written (`None`: nothing was written, or the
    /// object was removed), so that a controller can tell when its cache has seen it.
    pub async fn replace_returning(
        &self,
        current: &K,
        next: &K,
    ) -> Result<Option<Revision>, ObjectError> {
        replace_any_at(
            &self.store,
            &current.clone().into_any(),
            &next.clone().into_any(),
        )
        .await
    }

    /// `delete`, answering the store revision of the deletion mark (`None` when the object
    /// was removed at once).
    pub async fn delete_returning(&self, current: &K) -> Result<Option<Revision>, ObjectError> {
        let after = delete_any(&self.store, &current.clone().into_any(), false).await?;
        let before = revision_of(&current.clone().into_any());
        let now = revision_of(&after);
        Ok((now > before).then_some(now))
    }

    /// Every object of `K` (in `namespace`, when given), and what could not be decoded,
    /// named: an unreadable object is reported, never silently left out.
    pub async fn list(&self, namespace: Option<&str>) -> Result<Listed<K>, ObjectError> {
        let listed = self
            .store
            .list(&keys::kind_prefix(K::KIND, namespace))
            .await?;
        let mut out = Listed {
            items: Vec::with_capacity(listed.items.len()),
            undecodable: Vec::new(),
            revision: listed.revision,
        };
        for kv in &listed.items {
            match decode(kv).map(|s| K::from_any(s.object)) {
                Ok(Some(object)) => out.items.push(object),
                Ok(None) => {
                    out.undecodable
                        .push(Unreadable::of(K::KIND, kv, format!("not a {}", K::KIND)))
                }
                Err(ObjectError::Undecodable { message, .. }) => {
                    out.undecodable.push(Unreadable::of(K::KIND, kv, message))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Creates `object` (see `create_any`) and returns what was stored.
    pub async fn create(&self, object: &K) -> Result<K, ObjectError> {
        let stored = create_any(&self.store, &object.clone().into_any(), false).await?;
        K::from_any(stored).ok_or_else(|| ObjectError::EncodeFailed {
            key: ObjectRef::of(object).store_key(),
            message: format!("the stored object is not a {}", K::KIND),
        })
    }

    /// Deletes `current` (see `delete_any`).
    pub async fn delete(&self, current: &K) -> Result<(), ObjectError> {
        delete_any(&self.store, &current.clone().into_any(), false).await?;
        Ok(())
    }

    /// Adds finalizer `name`: the object as stored now, with it (`None` when it was there
    /// already and nothing was written).
    pub async fn add_finalizer(&self, object: &K, name: &str) -> Result<Option<K>, ObjectError> {
        if object.meta().finalizers.iter().any(|f| f == name) {
            return Ok(None);
        }
        let mut next = object.clone();
        next.meta_mut().finalizers.push(name.to_owned());
        let current = object.clone().into_any();
        let key = keys::object_key(&current.key());
        let expected = revision_of(&current);
        match lifecycle::replaced(&next.into_any(), &current, expected)? {
            Replacement::Store(next) => {
                let kv = self.store.update(&key, encode(&next)?, expected).await?;
                let stored = decode(&kv)?.object;
                K::from_any(stored)
                    .map(Some)
                    .ok_or_else(|| ObjectError::EncodeFailed {
                        key,
                        message: format!("the stored object is not a {}", K::KIND),
                    })
            }
            Replacement::Unchanged | Replacement::Remove(_) => Ok(None),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::admission::Refusal;
    use crate::store::{EmbeddedOptions, EmbeddedStore};
    use nanocl_api_types::cargo::v1::Cargo;
    use nanocl_api_types::manifest::{decode_str, DecodeOptions};
    use nanocl_api_types::namespace::v1::Namespace;

    fn decoded<K: Resource>(yaml: &str) -> K {
        let decoded = decode_str("t.yaml", yaml, &DecodeOptions::default());
        assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
        K::from_any(decoded.manifests[0].object.clone()).expect("the kind asked for")
    }

    fn cargo(name: &str) -> Cargo {
        decoded(&format!(
            "apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: {name}, namespace: prod}}\nspec:\n  cluster: dev\n  container: {{image: busybox:stable}}\n"
        ))
    }

    #[tokio::test]
    async fn create_and_list_should_follow_the_lifecycle_and_name_what_does_not_decode() {
        let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store");
        let cargoes: Api<Cargo, _> = Api::new(store.clone());
        let namespaces: Api<Namespace, _> = Api::new(store.clone());
        match cargoes.create(&cargo("web")).await {
            Err(ObjectError::Refused(Refusal::NamespaceMissing { namespace })) => {
                assert_eq!(namespace, "prod")
            }
            other => panic!("a cargo needs its namespace first, got {other:?}"),
        }
        namespaces
            .create(&decoded(
                "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {name: prod}\n",
            ))
            .await
            .expect("namespace");
        let web = cargoes.create(&cargo("web")).await.expect("cargo");
        assert_eq!(web.metadata.generation, Some(1));
        assert!(web.metadata.uid.is_some() && web.metadata.resource_version.is_some());
        assert!(matches!(
            cargoes.create(&cargo("web")).await,
            Err(ObjectError::Store(StoreError::AlreadyExists { .. }))
        ));
        // A value this version cannot decode (a field from a newer writer) is listed by name.
        store
            .create(
                "cargoes/prod/newer",
                br#"{"apiVersion":"nanocl.io/v1","kind":"Cargo","metadata":{"name":"newer"},"spec":{"cluster":"dev","container":{"image":"x"},"fromTheFuture":1}}"#.to_vec(),
            )
            .await
            .expect("raw");
        let listed = cargoes.list(Some("prod")).await.expect("list");
        assert_eq!(
            listed
                .items
                .iter()
                .map(|c| c.metadata.name.as_str())
                .collect::<Vec<_>>(),
            vec!["web"]
        );
        assert_eq!(listed.undecodable.len(), 1);
        assert_eq!(listed.undecodable[0].name, "newer");
        assert!(
            listed.undecodable[0].error.contains("fromTheFuture"),
            "{}",
            listed.undecodable[0].error
        );
        // And the namespace, holding both, is not deleted out from under them.
        let prod = namespaces
            .get(&ObjectRef::new(None, "prod"))
            .await
            .expect("get")
            .expect("present");
        match namespaces.delete(&prod).await {
            Err(ObjectError::Refused(Refusal::NamespaceNotEmpty { held, .. })) => {
                assert_eq!(held, vec!["2 cargoes"])
            }
            other => panic!("refused, got {other:?}"),
        }
    }
}
