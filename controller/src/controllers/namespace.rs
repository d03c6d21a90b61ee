//! The Namespace controller: `Active`, or `Terminating` while everything in it is deleted
//! (behind a finalizer), then the namespace itself.

use std::time::Duration;

use nanocl_api_types::namespace::v1::{NamespacePhase, NamespaceStatus};
use nanocl_api_types::{AnyObject, Kind};

use super::write;
use super::{cached, ReconcileError, Shared};
use crate::docker::Docker;
use crate::objects::now;
use crate::runtime::runner::Action;
use crate::store::{keys, Store, StoreError};

/// Reconciles one Namespace (`namespaces/{name}`).
pub async fn reconcile<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    key: &str,
) -> Result<Action, ReconcileError> {
    let Some(object) = cached(&shared.hub, Kind::Namespace, key) else {
        return Ok(Action::AwaitChange);
    };
    let AnyObject::Namespace(ns) = &*object else {
        return Ok(Action::AwaitChange);
    };
    let name = ns.metadata.name.clone();
    if ns.metadata.deletion_timestamp.is_some() {
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
        let mut remaining = 0;
        // Cargoes first, then networks, then clusters: each kind's controller cleans up
        // its Docker objects behind its finalizer.
        for kind in [Kind::Cargo, Kind::Network, Kind::Cluster] {
            for child in shared.hub.reader(kind).list() {
                if child.metadata().namespace.as_deref() != Some(&name) {
                    continue;
                }
                remaining += 1;
                if child.metadata().deletion_timestamp.is_some() {
                    continue;
                }
                let rv = child
                    .metadata()
                    .resource_version
                    .as_deref()
                    .and_then(|r| r.parse().ok());
                let result = if child.metadata().finalizers.is_empty() {
                    shared
                        .store
                        .delete(&keys::object_key(&child.key()), rv)
                        .await
                        .map(|_| ())
                } else {
                    let mut marked = (*child).clone();
                    marked.metadata_mut().deletion_timestamp = Some(now());
                    write::update(&shared.store, &marked).await
                };
                match result {
                    Ok(()) | Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if remaining > 0 {
            return Ok(Action::Requeue(Duration::from_millis(500)));
        }
        write::release(&shared.store, &object).await?;
        return Ok(Action::AwaitChange);
    }
    if write::ensure_finalizer(&shared.store, &object).await? {
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
