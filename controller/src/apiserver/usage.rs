//! `GET .../cargoes/{name}/usage`: what each running replica of a cargo uses now (CPU over
//! half a second, memory), for `nanocl top`. Read from this nanocld's Docker on demand;
//! nothing is stored.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use nanocl_api_types::{Kind, ObjectKey};
use serde_json::json;
use tokio::time::Instant;

use super::objects;
use super::path::Target;
use super::status::ApiError;
use super::App;
use crate::controllers::owner::OwnerFilter;
use crate::controllers::plan::labels;
use crate::docker::{Docker, Engine, State};
use crate::store::Store;

/// The time between the two reads of a sample.
const SPAN: Duration = Duration::from_millis(500);

/// Reads every running replica of the cargo twice, `SPAN` apart.
pub async fn serve<S: Store + Clone>(
    app: Arc<App<S>>,
    target: &Target,
    name: &str,
) -> Result<Response, ApiError> {
    if target.kind != Kind::Cargo {
        return Err(ApiError::not_found("usage is served for cargoes only"));
    }
    let namespace = target.namespace.clone().unwrap_or_default();
    let key = ObjectKey {
        kind: Kind::Cargo,
        namespace: Some(namespace.clone()),
        name: name.to_owned(),
    };
    if objects::read(&app.store, &key).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "cargo {name:?} not found in namespace {namespace:?}"
        )));
    }
    let docker = Engine::connect().await.map_err(|e| {
        ApiError::unavailable(format!(
            "usage comes from Docker, which is not reachable: {e}"
        ))
    })?;
    let instance = crate::controllers::instance_id(&app.store).await?;
    let filter = OwnerFilter::instance(&instance)
        .namespace(&namespace)
        .cargo(name)
        .labels();
    let mut running: Vec<_> = docker
        .list_containers(&filter)
        .await
        .map_err(|e| ApiError::unavailable(format!("listing the replicas failed: {e}")))?
        .into_iter()
        .filter(|c| c.state == State::Running)
        .collect();
    running.sort_by_key(|c| {
        c.labels
            .get(labels::SLOT)
            .and_then(|s| s.parse::<u32>().ok())
    });
    let read = |docker: Engine, id: String| async move {
        let stats = docker.stats(&id).await.ok();
        (id, stats.map(|s| (s, Instant::now())))
    };
    let ids: Vec<String> = running.iter().map(|c| c.id.clone()).collect();
    let first: std::collections::HashMap<_, _> = futures::stream::iter(ids.clone())
        .map(|id| read(docker.clone(), id))
        .buffer_unordered(16)
        .collect()
        .await;
    tokio::time::sleep(SPAN).await;
    let second: std::collections::HashMap<_, _> = futures::stream::iter(ids)
        .map(|id| read(docker.clone(), id))
        .buffer_unordered(16)
        .collect()
        .await;
    let items: Vec<serde_json::Value> = running
        .iter()
        .filter_map(|c| {
            let (a, at) = first.get(&c.id)?.as_ref()?;
            let (b, bt) = second.get(&c.id)?.as_ref()?;
            #[allow(
                clippy::cast_precision_loss,
                reason = "a CPU rate shown to the millicore"
            )]
            let cpus = b.cpu_total_ns.saturating_sub(a.cpu_total_ns) as f64
                / bt.duration_since(*at).as_nanos().max(1) as f64;
            Some(json!({
                "slot": c.labels.get(labels::SLOT).and_then(|s| s.parse::<u32>().ok()),
                "node": c.labels.get(labels::NODE),
                "container": c.name,
                "cpus": (cpus * 1000.0).round() / 1000.0,
                "memoryBytes": b.memory_bytes,
            }))
        })
        .collect();
    let body = json!({
        "kind": "CargoUsage",
        "cargo": name,
        "namespace": namespace,
        "items": items,
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string() + "\n",
    )
        .into_response())
}
