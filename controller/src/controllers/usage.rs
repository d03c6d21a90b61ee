//! The usage sampler of a node (for the autoscaler): every interval, one Docker stats call
//! per replica of an autoscaled cargo placed here (one-shot, no long-lived stream per
//! container), the CPU rate from the difference with the previous sample, written to the
//! Replica's status when it changed. Nothing is sampled for cargoes without `autoscale`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use nanocl_api_types::cargo::v1::Cargo as CargoObject;
use nanocl_api_types::replica::v1::{Replica as ReplicaObject, ReplicaUsage};
use tokio::time::Instant;

use super::write::owners;
use super::Shared;
use crate::docker::Docker;
use crate::objects::api::Api;
use crate::store::Store;

/// The previous sample of each container: CPU time used, and when.
type Previous = HashMap<String, (u64, Instant)>;

/// Samples the replicas of node `node` every `every` until `done`.
pub async fn sample_until<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    node: &str,
    every: Duration,
    done: impl std::future::Future<Output = ()>,
) {
    let previous = Mutex::new(Previous::new());
    super::every_until(every, done, || async {
        let mut last = std::mem::take(
            &mut *previous
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        sample(shared, node, &mut last).await;
        *previous
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = last;
    })
    .await;
}

/// One pass: samples every running replica of an autoscaled cargo on this node; `previous`
/// keeps only the containers seen now.
pub async fn sample<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    node: &str,
    previous: &mut Previous,
) {
    let api: Api<ReplicaObject, S> = Api::new(shared.store.clone());
    let mut seen = Previous::new();
    for cargo in shared.hub.cache::<CargoObject>().list() {
        if cargo.spec.autoscale.is_none() || cargo.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let namespace = cargo.metadata.namespace.clone().unwrap_or_default();
        for r in shared.hub.replicas_of(&namespace, &cargo.metadata.name) {
            if r.spec.node != node || r.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let Some(status) = r.status.as_ref() else {
                continue;
            };
            let (Some(container), Some("Running")) =
                (status.container.as_deref(), status.phase.as_deref())
            else {
                continue;
            };
            let stats = match shared.docker.stats(container).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%container, error = %e, "no stats");
                    continue;
                }
            };
            let now = Instant::now();
            seen.insert(container.to_owned(), (stats.cpu_total_ns, now));
            // A CPU rate needs two samples of the same container.
            let Some((cpu_before, at)) = previous.get(container).copied() else {
                continue;
            };
            let wall = now.duration_since(at).as_nanos() as f64;
            if wall <= 0.0 {
                continue;
            }
            let cpus = stats.cpu_total_ns.saturating_sub(cpu_before) as f64 / wall;
            let usage = ReplicaUsage {
                container: container.to_owned(),
                cpus: (cpus * 1000.0).round() / 1000.0,
                memory: (stats.memory_bytes >> 20) << 20,
            };
            if status.usage.as_ref() == Some(&usage) {
                continue;
            }
            let value = serde_json::json!({ "usage": usage });
            if let Err(e) = api.patch_status(&r, &owners::REPLICA_USAGE, &value).await {
                tracing::warn!(replica = %r.metadata.name, error = %e, "writing usage failed");
            }
        }
    }
    *previous = seen;
}
