//! The Namespace controller: `Active`, or `Terminating` while everything in it is deleted
//! (behind a finalizer), then the namespace itself.

use std::time::Duration;

use nanocl_api_types::namespace::v1::{NamespacePhase, NamespaceStatus};

use super::hub::Cached;
use super::write;
use super::{ReconcileError, Shared, FINALIZER};
use crate::docker::Docker;
use crate::objects::api::{delete_any, Api};
use crate::objects::ObjectError;
use crate::runtime::finalizer::{finalizer, Event};
use crate::runtime::reflector::Reader;
use crate::runtime::runner::Action;
use crate::store::{keys, Store, StoreError};
use nanocl_api_types::cargo::v1::Cargo as CargoObject;
use nanocl_api_types::cluster::v1::Cluster as ClusterObject;
use nanocl_api_types::namespace::v1::Namespace as NamespaceObject;
use nanocl_api_types::network::v1::Network as NetworkObject;
use nanocl_api_types::proxy_rule::v1::ProxyRule as ProxyRuleObject;
use nanocl_api_types::replica::v1::Replica as ReplicaObject;
use nanocl_api_types::secret::v1::Secret as SecretObject;
use nanocl_api_types::Resource as _;

/// Reconciles one Namespace (`namespaces/{name}`).
pub async fn reconcile<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    key: &str,
) -> Result<Action, ReconcileError> {
    let Some(ns) = shared.hub.get_key::<NamespaceObject>(key) else {
        return Ok(Action::AwaitChange);
    };
    let api = Api::new(shared.store.clone());
    finalizer(&api, FINALIZER, ns, |event| reconcile_event(shared, event)).await
}

/// `Apply` converges Docker toward the namespace; `Cleanup` removes what it owns (`AwaitChange`
/// when done, which releases the finalizer).
async fn reconcile_event<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    event: Event<NamespaceObject>,
) -> Result<Action, ReconcileError> {
    let (ns, deleting) = event.into_parts();
    let ns: &NamespaceObject = &ns;
    let object = ns.clone().into_any();
    let name = ns.metadata.name.clone();
    if deleting {
        let phase = NamespaceStatus {
            phase: Some(NamespacePhase::Terminating),
        };
        write::patch_status(
            &shared.store,
            &object,
            &write::owners::NAMESPACE,
            serde_json::to_value(&phase).unwrap_or_default(),
        )
        .await?;
        // Cargoes first, then networks, then clusters: each kind's controller cleans up
        // its Docker objects behind its finalizer.
        let remaining = cascade(shared, shared.hub.cache::<ProxyRuleObject>(), &name).await?
            + cascade(shared, shared.hub.cache::<CargoObject>(), &name).await?
            + cascade(shared, shared.hub.cache::<ReplicaObject>(), &name).await?
            + cascade(shared, shared.hub.cache::<NetworkObject>(), &name).await?
            + cascade(shared, shared.hub.cache::<ClusterObject>(), &name).await?
            + cascade(shared, shared.hub.cache::<SecretObject>(), &name).await?;
        if remaining > 0 {
            return Ok(Action::Requeue(Duration::from_millis(500)));
        }
        // Its Events go with it: a namespace made again with the name starts afresh.
        let prefix = super::events::key(&name, "");
        for kv in shared.store.list(&prefix).await?.items {
            match shared.store.delete(&kv.key, Some(kv.mod_revision)).await {
                Ok(_) | Err(StoreError::NotFound { .. } | StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(Action::AwaitChange);
    }
    let active = NamespaceStatus {
        phase: Some(NamespacePhase::Active),
    };
    write::patch_status(
        &shared.store,
        &object,
        &write::owners::NAMESPACE,
        serde_json::to_value(&active).unwrap_or_default(),
    )
    .await?;
    Ok(Action::AwaitChange)
}

/// Deletes every object of `cache` in namespace `namespace` as the API would (marked for its
/// controller, or removed), and what no controller can read as the API removes it (its
/// Docker objects then go with the garbage collector): the namespace must empty. Answers how
/// many were still there.
async fn cascade<S: Store + Clone, D: Docker, K: Cached>(
    shared: &Shared<S, D>,
    cache: &Reader<K>,
    namespace: &str,
) -> Result<usize, ReconcileError> {
    let mut remaining = 0;
    for child in cache.list() {
        if child.meta().namespace.as_deref() != Some(namespace) {
            continue;
        }
        remaining += 1;
        match delete_any(&shared.store, &K::clone(&child).into_any(), false).await {
            Ok(_)
            | Err(ObjectError::Store(StoreError::Conflict { .. } | StoreError::NotFound { .. })) => {
            }
            Err(e) => return Err(e.into()),
        }
    }
    for unreadable in cache.undecodable() {
        let in_namespace = keys::parse_object_key(K::KIND, &unreadable.key)
            .is_some_and(|k| k.namespace.as_deref() == Some(namespace));
        if !in_namespace {
            continue;
        }
        remaining += 1;
        match shared
            .store
            .delete(&unreadable.key, Some(unreadable.revision))
            .await
        {
            Ok(_) | Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(remaining)
}
