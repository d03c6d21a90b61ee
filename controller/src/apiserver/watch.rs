//! `?watch=true`: newline-delimited JSON events, resumable from a resourceVersion, with
//! BOOKMARK events, label selection, and 410 Gone when the history is too old. One
//! implementation for every collection: the objects of a kind and the Events (`Source`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{json, Value};
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

/// How a stored value is shown to a watcher: `None` to leave it out (an Event that does not
/// read, say).
pub type ViewFn = Arc<dyn Fn(&KeyValue) -> Result<Option<objects::View>, ApiError> + Send + Sync>;

/// What a watch streams: the keys under `prefix`, shown by `view`; bookmarks carry
/// `bookmark`'s apiVersion and kind.
#[derive(Clone)]
pub struct Source {
    /// The store prefix.
    pub prefix: String,
    /// How each value is shown.
    pub view: ViewFn,
    /// `{"apiVersion": ..., "kind": ...}` of the bookmarks.
    pub bookmark: Value,
    /// Events as Tables of this kind (`Accept: ...;as=Table`).
    pub table: Option<nanocl_api_types::Kind>,
    /// Whether a Table event carried the column definitions yet.
    pub columns_sent: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// The objects of `target`'s kind (in its namespace, or all), in its version.
    pub fn objects(target: &Target) -> Source {
        let (kind, version) = (target.kind, target.version);
        Source {
            prefix: keys::kind_prefix(kind, target.namespace.as_deref()),
            view: Arc::new(move |kv| objects::view(kv, kind, version).map(Some)),
            bookmark: json!({"apiVersion": version.api_version(), "kind": kind.as_str()}),
            table: None,
            columns_sent: Arc::default(),
        }
    }
}

/// Whether `kv` is selected, and how it is shown (a marker when it cannot be decoded).
fn matches(kv: &KeyValue, source: &Source, query: &Query) -> Result<(bool, Value), ApiError> {
    Ok(match (source.view)(kv)? {
        Some(view) => {
            let selected =
                query.selector.matches(&view.labels) && query.fields.matches(&view.value);
            match source.table {
                // kubectl get -w: each event's object is a Table of one row; the column
                // definitions come with the first only.
                Some(kind) if selected => {
                    let first = !source.columns_sent.swap(true, Ordering::Relaxed);
                    let rv = view.value["metadata"]["resourceVersion"]
                        .as_str()
                        .map(str::to_owned);
                    let table = super::table::table(
                        kind,
                        &[view.value],
                        rv.as_deref(),
                        first,
                        query.whole_object,
                    );
                    (true, table)
                }
                _ => (selected, view.value),
            }
        }
        None => (false, Value::Null),
    })
}

/// Turns one store event into at most one watch line.
fn translate(event: WatchEvent, source: &Source, query: &Query) -> Result<Option<Bytes>, ApiError> {
    match event {
        WatchEvent::Put { kv, prev } => {
            let (now, object) = matches(&kv, source, query)?;
            let before = match &prev {
                Some(p) => Some(matches(p, source, query)?.0),
                None => None,
            };
            let kind = match (before, now) {
                (None | Some(false), true) => "ADDED",
                (Some(true), true) => "MODIFIED",
                // No longer selected: to this watcher it is gone.
                (Some(true), false) => "DELETED",
                (_, false) => return Ok(None),
            };
            Ok(Some(line(kind, object)))
        }
        WatchEvent::Delete {
            prev: Some(prev),
            revision,
            ..
        } => {
            let (selected, mut object) = matches(&prev, source, query)?;
            if !selected {
                return Ok(None);
            }
            object["metadata"]["resourceVersion"] = Value::String(revision.to_string());
            Ok(Some(line("DELETED", object)))
        }
        WatchEvent::Delete { prev: None, .. } => Ok(None),
        WatchEvent::Progress { revision } => {
            let mut bookmark = source.bookmark.clone();
            bookmark["metadata"] = json!({"resourceVersion": revision.to_string()});
            Ok(Some(line("BOOKMARK", bookmark)))
        }
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
    let mut source = Source::objects(&target);
    if query.table {
        source.table = Some(target.kind);
    }
    serve_source(app, source, query).await
}

/// Serves a watch of `source`: the one implementation behind every `?watch=true`.
pub async fn serve_source<S: Store + Clone>(
    app: Arc<App<S>>,
    source: Source,
    query: Query,
) -> Result<Response, ApiError> {
    let prefix = source.prefix.clone();
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
        Some(rv) => {
            // A revision this store has not reached yet was not issued by it (another store,
            // or one wiped since): say so now instead of waiting silently for it.
            let current = app.store.current_revision().await?;
            if rv > current {
                return Err(ApiError::bad_request(format!(
                    "resourceVersion {rv} is newer than this store's current revision {current}: it was not issued by this store; list again and watch from the list's resourceVersion"
                )));
            }
            (Vec::new(), rv)
        }
        None => {
            let listed = app.store.list(&prefix).await?;
            let mut lines = Vec::new();
            for kv in &listed.items {
                let (selected, object) = matches(kv, &source, &query)?;
                if selected {
                    lines.push(line("ADDED", object));
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
                    Some(Ok(event)) => match translate(event, &source, &query) {
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
