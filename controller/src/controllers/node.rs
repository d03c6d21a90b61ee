//! The Node controller (on the leader): a node whose lease has run out is `Ready=False`.
//!
//! Each nanocld keeps a key `meta/node-leases/{node}` alive on a store lease (`crate::agent`);
//! the store deletes it when the lease expires. This controller follows those keys (their
//! watch is one of its triggers) and marks the node lost; the node's own nanocld sets `Ready`
//! back to `True` when it registers again.

use futures::stream::BoxStream;
use futures::StreamExt;
use nanocl_api_types::meta::ConditionStatus;
use nanocl_api_types::node::v1::Node as NodeObject;
use nanocl_api_types::Resource as _;

use super::hub::Hub;
use super::write::{self, condition};
use super::{ReconcileError, Shared};
use crate::docker::Docker;
use crate::objects::api::ObjectRef;
use crate::runtime::runner::Action;
use crate::runtime::watcher::{self, Event};
use crate::store::Store;

/// Where the nodes' lease keys live.
pub const LEASE_PREFIX: &str = "meta/node-leases/";

/// Reason of `Ready=False` for a node whose lease ran out.
pub const NODE_LOST: &str = "NodeLost";

/// The lease key of node `name`.
pub fn lease_key(name: &str) -> String {
    format!("{LEASE_PREFIX}{name}")
}

/// Reconciles one Node (`nodes/{name}`).
pub async fn reconcile<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    key: &str,
) -> Result<Action, ReconcileError> {
    let Some(node) = shared.hub.get_key::<NodeObject>(key) else {
        return Ok(Action::AwaitChange);
    };
    let name = &node.metadata.name;
    if shared.store.get(&lease_key(name)).await?.is_some() {
        // Alive: `Ready` is its own nanocld's to report.
        return Ok(Action::AwaitChange);
    }
    let previous = node.status.clone().unwrap_or_default().conditions;
    let lost_already = previous
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::False);
    if lost_already {
        return Ok(Action::AwaitChange);
    }
    let message = "the node's nanocld has not renewed its lease: it is stopped, paused or cut off from the store";
    let object = (*node).clone().into_any();
    // The Event first: whoever sees the node NotReady finds why.
    tracing::warn!(node = %name, "node lost: its lease ran out");
    super::events::record(&shared.store, &object, true, NODE_LOST, message).await;
    write::patch_status(
        &shared.store,
        &object,
        &write::owners::NODE,
        serde_json::json!({
            "conditions": [condition("Ready", false, NODE_LOST, message, node.metadata.generation, &previous)]
        }),
    )
    .await?;
    Ok(Action::AwaitChange)
}

/// The Node keys to reconcile as lease keys come and go (all of them after a re-list).
pub fn lease_triggers<S: Store + Clone>(store: S, hub: Hub) -> BoxStream<'static, String> {
    watcher::watcher(store, LEASE_PREFIX.to_owned())
        .flat_map(move |event| {
            let keys: Vec<String> = match event {
                Event::Restarted(_) => hub.keys(nanocl_api_types::Kind::Node),
                Event::Applied(kv) => node_key(&kv.key).into_iter().collect(),
                Event::Deleted { key, .. } => node_key(&key).into_iter().collect(),
                Event::Failed(_) => Vec::new(),
            };
            futures::stream::iter(keys)
        })
        .boxed()
}

fn node_key(lease_key: &str) -> Option<String> {
    let name = lease_key.strip_prefix(LEASE_PREFIX)?;
    Some(ObjectRef::<NodeObject>::new(None, name).store_key())
}
