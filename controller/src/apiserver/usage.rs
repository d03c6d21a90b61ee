//! `GET .../cargoes/{name}/usage`: what each running replica of a cargo uses now (CPU over
//! half a second, memory), for `nanocl top`. Read from this nanocld's Docker on demand;
//! nothing is stored.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;
use tokio::time::Instant;

use super::path::Target;
use super::status::ApiError;
use super::App;
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
    let (key, _) = super::cargo_docker::require(&app, target, name, "usage is served").await?;
    let namespace = key.namespace.clone().unwrap_or_default();
    let (docker, _, listed) =
        super::cargo_docker::containers(&app, &key, "usage comes from").await?;
    let mut running: Vec<_> = listed
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
