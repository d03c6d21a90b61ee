//! `?watch=true`: newline-delimited JSON events, resumable from a resourceVersion, with
//! BOOKMARK events, label selection, and 410 Gone when the history is too old.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use nanocl_api_types::AnyObject;
use serde_json::json;
use tokio::sync::mpsc;

use super::handlers::Query;
use super::objects;
use super::path::Target;
use super::status::ApiError;
use super::App;
use crate::store::{keys, KeyValue, Revision, Store, WatchEvent};

fn line(kind: &str, object: serde_json::Value) -> Bytes {
    Bytes::from(json!({"type": kind, "object": object}).to_string() + "\n")
}

fn object_line(kind: &str, object: &AnyObject, target: &Target) -> Result<Bytes, ApiError> {
    let value = object
        .to_version(target.version)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(line(kind, value))
}

fn matches(kv: &KeyValue, query: &Query) -> Result<(bool, AnyObject), ApiError> {
    let stored = objects::decode(kv)?;
    Ok((
        query.selector.matches(&stored.object.metadata().labels),
        stored.object,
    ))
}

/// Turns one store event into at most one watch line.
fn translate(event: WatchEvent, target: &Target, query: &Query) -> Result<Option<Bytes>, ApiError> {
    match event {
        WatchEvent::Put { kv, prev } => {
            let (now, object) = matches(&kv, query)?;
            let before = match &prev {
                Some(p) => Some(matches(p, query)?.0),
                None => None,
            };
            let kind = match (before, now) {
                (None | Some(false), true) => "ADDED",
                (Some(true), true) => "MODIFIED",
                // No longer selected: to this watcher it is gone.
                (Some(true), false) => "DELETED",
                (_, false) => return Ok(None),
            };
            object_line(kind, &object, target).map(Some)
        }
        WatchEvent::Delete {
            prev: Some(prev),
            revision,
            ..
        } => {
            let (selected, mut object) = matches(&prev, query)?;
            if !selected {
                return Ok(None);
            }
            object.metadata_mut().resource_version = Some(revision.to_string());
            object_line("DELETED", &object, target).map(Some)
        }
        WatchEvent::Delete { prev: None, .. } => Ok(None),
        WatchEvent::Progress { revision } => Ok(Some(line(
            "BOOKMARK",
            json!({
                "apiVersion": target.version.api_version(),
                "kind": target.kind.as_str(),
                "metadata": {"resourceVersion": revision.to_string()},
            }),
        ))),
    }
}

fn error_line(e: &ApiError) -> Bytes {
    line("ERROR", e.to_json())
}

/// Serves a watch until the client goes away, the store fails, or nanocld shuts down.
pub async fn serve<S: Store + Clone>(
    app: Arc<App<S>>,
    target: Target,
    query: Query,
) -> Result<Response, ApiError> {
    let prefix = keys::kind_prefix(target.kind, target.namespace.as_deref());
    let from: Option<Revision> = match query.resource_version.as_deref() {
        None | Some("" | "0") => None,
        Some(rv) => Some(rv.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "resourceVersion {rv:?} is not one this server issued"
            ))
        })?),
    };
    // Without a revision: the current objects as ADDED, then changes after the list.
    let (initial, after) = match from {
        Some(rv) => (Vec::new(), rv),
        None => {
            let listed = app.store.list(&prefix).await?;
            let mut lines = Vec::new();
            for kv in &listed.items {
                let (selected, object) = matches(kv, &query)?;
                if selected {
                    lines.push(object_line("ADDED", &object, &target)?);
                }
            }
            (lines, listed.revision)
        }
    };
    // A revision older than the history answers 410 before any event is sent.
    let mut stream = app.store.watch(&prefix, after).await?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let mut shutdown = app.shutdown.clone();
    let task_app = app.clone();
    task_app.metrics.watchers.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        let app = task_app;
        'serve: {
            for l in initial {
                tokio::select! {
                    sent = tx.send(Ok(l)) => if sent.is_err() { break 'serve },
                    _ = shutdown.changed() => break 'serve,
                }
            }
            loop {
                let next = tokio::select! {
                    next = stream.next() => next,
                    _ = shutdown.changed() => break 'serve,
                    () = tx.closed() => break 'serve,
                };
                let out = match next {
                    None => break 'serve,
                    Some(Ok(event)) => match translate(event, &target, &query) {
                        Ok(Some(l)) => l,
                        Ok(None) => continue,
                        Err(e) => error_line(&e),
                    },
                    Some(Err(e)) => {
                        let _ = tx.send(Ok(error_line(&ApiError::from(e)))).await;
                        break 'serve;
                    }
                };
                // A client that stops reading must not hold the task (or shutdown).
                tokio::select! {
                    sent = tx.send(Ok(out)) => if sent.is_err() { break 'serve },
                    _ = shutdown.changed() => break 'serve,
                }
            }
        }
        app.metrics.watchers.fetch_sub(1, Ordering::Relaxed);
    });
    let mut rx = rx;
    let body = Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}
