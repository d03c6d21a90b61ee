//! The finalizer helper, in the shape of kube-runtime's `finalizer(api, name, obj, reconcile)`:
//! one place that knows the deletion protocol, so no controller writes it by hand.
//!
//! - the object is being deleted and carries the finalizer: `Cleanup`, then the finalizer is
//!   removed (and the object goes, when it was the last);
//! - the object is being deleted without it: nothing left to do;
//! - the object lacks the finalizer: it is added, then `Apply` runs at once on the object as
//!   stored (kube-runtime waits for the write's own event instead: a round trip through the
//!   watch and the queue for every new object; the event's reconcile that follows finds
//!   nothing to do);
//! - otherwise: `Apply`.

use std::future::Future;
use std::sync::Arc;

use nanocl_api_types::Resource;

use super::runner::Action;
use crate::objects::api::Api;
use crate::objects::ObjectError;
use crate::store::Store;

/// What the reconcile is asked to do.
#[derive(Debug)]
pub enum Event<K> {
    /// Converge toward the object.
    Apply(Arc<K>),
    /// The object is being deleted: remove what it owns.
    Cleanup(Arc<K>),
}

impl<K> Event<K> {
    /// The object, and whether it is being deleted (`Cleanup`).
    pub fn into_parts(self) -> (Arc<K>, bool) {
        match self {
            Event::Apply(o) => (o, false),
            Event::Cleanup(o) => (o, true),
        }
    }
}

/// Runs `reconcile` for `object` under finalizer `name`.
pub async fn finalizer<K, S, F, Fut, E>(
    api: &Api<K, S>,
    name: &str,
    object: Arc<K>,
    reconcile: F,
) -> Result<Action, E>
where
    K: Resource,
    S: Store,
    F: FnOnce(Event<K>) -> Fut,
    Fut: Future<Output = Result<Action, E>>,
    E: From<ObjectError>,
{
    let has = object.meta().finalizers.iter().any(|f| f == name);
    match (object.meta().deletion_timestamp.is_some(), has) {
        (true, true) => {
            let action = reconcile(Event::Cleanup(object.clone())).await?;
            if action != Action::AwaitChange {
                // Cleanup is not finished (e.g. containers still stopping): come back.
                return Ok(action);
            }
            api.remove_finalizer(&object, name).await?;
            Ok(Action::AwaitChange)
        }
        (true, false) => Ok(Action::AwaitChange),
        (false, false) => match api.add_finalizer(&object, name).await? {
            Some(stored) => reconcile(Event::Apply(Arc::new(stored))).await,
            None => reconcile(Event::Apply(object)).await,
        },
        (false, true) => reconcile(Event::Apply(object)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::api::ObjectRef;
    use crate::objects::{decode, encode};
    use crate::store::{EmbeddedOptions, EmbeddedStore};
    use nanocl_api_types::cargo::v1::Cargo;
    use nanocl_api_types::manifest::{decode_str, DecodeOptions};
    use std::sync::{Arc, Mutex};

    const NAME: &str = "nanocl.io/controller";

    async fn stored(store: &EmbeddedStore) -> Cargo {
        let decoded = decode_str(
            "c.yaml",
            "apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {name: web}\nspec:\n  cluster: dev\n  container: {image: busybox:stable}\n",
            &DecodeOptions::default(),
        );
        let object =
            crate::objects::lifecycle::created(&decoded.manifests[0].object).expect("create");
        let kv = store
            .create("cargoes/global/web", encode(&object).expect("encode"))
            .await
            .expect("store");
        Cargo::from_any(decode(&kv).expect("decode").object).expect("a cargo")
    }

    async fn run(
        api: &Api<Cargo, EmbeddedStore>,
        object: Cargo,
        seen: &Arc<Mutex<Vec<String>>>,
    ) -> Action {
        let seen = seen.clone();
        finalizer(api, NAME, Arc::new(object), |event| async move {
            seen.lock().unwrap().push(match event {
                Event::Apply(_) => "apply".to_owned(),
                Event::Cleanup(_) => "cleanup".to_owned(),
            });
            Ok::<_, ObjectError>(Action::AwaitChange)
        })
        .await
        .expect("finalizer")
    }

    #[tokio::test]
    async fn the_finalizer_should_be_added_then_apply_then_cleanup_then_the_object_goes() {
        let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store");
        let api: Api<Cargo, _> = Api::new(store.clone());
        let at = ObjectRef::<Cargo>::new(Some("global"), "web");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let object = stored(&store).await;
        run(&api, object, &seen).await;
        let object = api.get(&at).await.expect("get").expect("present");
        assert_eq!(object.metadata.finalizers, vec![NAME], "added");
        assert_eq!(
            *seen.lock().unwrap(),
            vec!["apply"],
            "and applied in the same reconcile, on the object as stored"
        );
        run(&api, object.clone(), &seen).await;
        api.delete(&object).await.expect("delete marks it");
        let marked = api
            .get(&at)
            .await
            .expect("get")
            .expect("still there, marked");
        assert!(marked.metadata.deletion_timestamp.is_some());
        run(&api, marked, &seen).await;
        assert_eq!(*seen.lock().unwrap(), vec!["apply", "apply", "cleanup"]);
        assert!(
            api.get(&at).await.expect("get").is_none(),
            "gone with its last finalizer"
        );
    }
}
