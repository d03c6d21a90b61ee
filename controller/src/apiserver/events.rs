//! `GET /apis/nanocl.io/{version}/[namespaces/{ns}/]events`: the events the controllers
//! recorded, as a list or (`watch=true`) a stream. Read-only.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use nanocl_api_types::event::Event;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::handlers::Query;
use super::status::ApiError;
use super::App;
use crate::store::{KeyValue, Store, WatchEvent};

/// `Some(namespace)` (`None`: every namespace) when `path` addresses the events.
pub fn parse(path: &str) -> Option<Option<String>> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["apis", "nanocl.io", "v1" | "v1alpha1", "events"] => Some(None),
        ["apis", "nanocl.io", "v1" | "v1alpha1", "namespaces", ns, "events"] => {
            Some(Some((*ns).to_owned()))
        }
        _ => None,
    }
}

fn event_of(kv: &KeyValue) -> Option<Value> {
    let mut event: Value =
        serde_json::to_value(serde_json::from_slice::<Event>(&kv.value).ok()?).ok()?;
    event["metadata"]["resourceVersion"] = json!(kv.mod_revision.to_string());
    Some(event)
}

/// Lists or watches events.
pub async fn serve<S: Store + Clone>(
    app: Arc<App<S>>,
    namespace: Option<String>,
    query: &Query,
) -> Result<Response, ApiError> {
    let prefix = namespace.map_or_else(|| "events/".to_owned(), |ns| format!("events/{ns}/"));
    let listed = app.store.list(&prefix).await?;
    let mut items: Vec<Value> = listed.items.iter().filter_map(event_of).collect();
    items.sort_by(|a, b| {
        a["lastTimestamp"]
            .as_str()
            .cmp(&b["lastTimestamp"].as_str())
    });
    if !query.watch {
        let list = json!({
            "apiVersion": "nanocl.io/v1",
            "kind": "EventList",
            "metadata": {"resourceVersion": listed.revision.to_string()},
            "items": items,
        });
        return Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            list.to_string() + "\n",
        )
            .into_response());
    }
    let after = match query.resource_version.as_deref() {
        Some(rv) if rv != "0" && !rv.is_empty() => rv.parse().unwrap_or(listed.revision),
        _ => listed.revision,
    };
    let initial: Vec<Value> = if after == listed.revision {
        items
    } else {
        Vec::new()
    };
    let mut stream = app.store.watch(&prefix, after).await?;
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let mut shutdown = app.shutdown.clone();
    tokio::spawn(async move {
        let line = |kind: &str, object: Value| {
            Bytes::from(json!({"type": kind, "object": object}).to_string() + "\n")
        };
        for event in initial {
            if tx.send(Ok(line("ADDED", event))).await.is_err() {
                return;
            }
        }
        loop {
            let next = tokio::select! {
                n = stream.next() => n,
                _ = shutdown.wait_for(|v| *v) => return,
                () = tx.closed() => return,
            };
            let out = match next {
                Some(Ok(WatchEvent::Put { kv, prev })) => event_of(&kv)
                    .map(|e| line(if prev.is_some() { "MODIFIED" } else { "ADDED" }, e)),
                Some(Ok(WatchEvent::Delete {
                    prev: Some(prev), ..
                })) => event_of(&prev).map(|e| line("DELETED", e)),
                Some(Ok(_)) => None,
                Some(Err(e)) => {
                    let _ = tx
                        .send(Ok(line("ERROR", ApiError::from(e).to_json())))
                        .await;
                    return;
                }
                None => return,
            };
            if let Some(out) = out {
                tokio::select! {
                    sent = tx.send(Ok(out)) => if sent.is_err() { return },
                    _ = shutdown.wait_for(|v| *v) => return,
                }
            }
        }
    });
    let body = Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}
