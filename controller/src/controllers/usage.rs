//! The usage sampler of a node (for the autoscaler): every interval, the replicas of the
//! autoscaled cargoes placed here are read twice, `SPAN` apart (their cgroup files when this
//! host is the engine's, else one-shot Docker stats calls: no long-lived stream per
//! container), and the CPU rate over that span and the memory in use are written to each
//! Replica's status when they changed. Nothing is sampled for cargoes without `autoscale`.
//!
//! The rate is over the last second, not the whole interval: the autoscaler sees load that
//! started a moment ago at its full weight, so it reacts within one interval (plus the span).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use nanocl_api_types::cargo::v1::Cargo as CargoObject;
use nanocl_api_types::replica::v1::{Replica as ReplicaObject, ReplicaUsage};
use tokio::time::Instant;

use super::write::owners;
use super::{OwnerFilter, Shared};
use crate::docker::{Docker, Stats};
use crate::objects::api::Api;
use crate::store::Store;

/// The time between the two reads of one sample.
pub const SPAN: Duration = Duration::from_secs(1);

/// Stats calls made side by side.
const WINDOW: usize = 16;

/// Samples the replicas of node `node` every `every` until `done`.
pub async fn sample_until<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    node: &str,
    every: Duration,
    done: impl std::future::Future<Output = ()>,
) {
    super::every_until(every, done, || sample(shared, node)).await;
}

/// The running replicas of autoscaled cargoes on node `node`, with their container.
fn targets<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    node: &str,
) -> Vec<(Arc<ReplicaObject>, String)> {
    let mut out = Vec::new();
    for cargo in shared.hub.cache::<CargoObject>().list() {
        if cargo.spec.autoscale.is_none() || cargo.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let namespace = cargo.metadata.namespace.clone().unwrap_or_default();
        for r in shared.hub.replicas_of(&namespace, &cargo.metadata.name) {
            if r.spec.node != node || r.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let running = r.status.as_ref().and_then(|s| {
                (s.phase.as_deref() == Some("Running"))
                    .then_some(s.container.clone())
                    .flatten()
            });
            if let Some(container) = running {
                out.push((r, container));
            }
        }
    }
    out
}

/// One read of every container, side by side: what answered, and when.
async fn read<D: Docker>(docker: &D, containers: &[String]) -> HashMap<String, (Stats, Instant)> {
    futures::stream::iter(containers.iter().cloned())
        .map(|c| async move {
            let stats = docker.stats(&c).await;
            (c, stats.map(|s| (s, Instant::now())))
        })
        .buffer_unordered(WINDOW)
        .filter_map(|(c, r)| async move {
            match r {
                Ok(v) => Some((c, v)),
                Err(e) => {
                    tracing::debug!(container = %c, error = %e, "no stats");
                    None
                }
            }
        })
        .collect()
        .await
}

/// One sample of every replica of an autoscaled cargo on this node.
pub async fn sample<S: Store + Clone, D: Docker>(shared: &Shared<S, D>, node: &str) {
    let targets = targets(shared, node);
    if targets.is_empty() {
        return;
    }
    // Full ids (one listing): what the cgroup files are named by.
    let ids: HashMap<String, String> = match shared
        .docker
        .list_containers(&OwnerFilter::instance(&shared.instance).labels())
        .await
    {
        Ok(list) => list.into_iter().map(|c| (c.name, c.id)).collect(),
        Err(e) => {
            tracing::debug!(error = %e, "listing for usage failed");
            return;
        }
    };
    let containers: Vec<String> = targets
        .iter()
        .filter_map(|(_, c)| ids.get(c).cloned())
        .collect();
    let first = read(&shared.docker, &containers).await;
    tokio::time::sleep(SPAN).await;
    let second = read(&shared.docker, &containers).await;
    let api: Api<ReplicaObject, S> = Api::new(shared.store.clone());
    for (r, container) in targets {
        let Some(id) = ids.get(&container) else {
            continue;
        };
        let (Some((a, at)), Some((b, bt))) = (first.get(id), second.get(id)) else {
            continue;
        };
        let wall = bt.duration_since(*at).as_nanos() as f64;
        if wall <= 0.0 {
            continue;
        }
        let cpus = b.cpu_total_ns.saturating_sub(a.cpu_total_ns) as f64 / wall;
        let usage = ReplicaUsage {
            container: container.clone(),
            cpus: (cpus * 1000.0).round() / 1000.0,
            memory: (b.memory_bytes >> 20) << 20,
        };
        if r.status.as_ref().and_then(|s| s.usage.as_ref()) == Some(&usage) {
            continue;
        }
        let value = serde_json::json!({ "usage": usage });
        if let Err(e) = api.patch_status(&r, &owners::REPLICA_USAGE, &value).await {
            tracing::warn!(replica = %r.metadata.name, error = %e, "writing usage failed");
        }
    }
}
