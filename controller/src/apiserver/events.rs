//! `GET /apis/nanocl.io/{version}/[namespaces/{ns}/]events`: the events the controllers
//! recorded, as a list or (`watch=true`) a stream. Read-only.

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use nanocl_api_types::event::Event;
use serde_json::{json, Value};

use super::handlers::Query;
use super::objects::View;
use super::status::ApiError;
use super::watch::{self, Source};
use super::App;
use crate::store::{KeyValue, Store};

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

/// An Event as shown in lists and watches, with its labels for selectors.
fn view(kv: &KeyValue) -> Option<View> {
    let value = event_of(kv)?;
    let labels = value["metadata"]
        .get("labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    Some(View { value, labels })
}

/// Lists or watches events. The watch is the shared one (`watch::serve_source`): label
/// selectors, resourceVersion checks, bookmarks and shutdown behave as for objects.
pub async fn serve<S: Store + Clone>(
    app: Arc<App<S>>,
    namespace: Option<String>,
    query: &Query,
) -> Result<Response, ApiError> {
    let prefix = namespace.map_or_else(|| "events/".to_owned(), |ns| format!("events/{ns}/"));
    if query.watch {
        let source = Source {
            prefix,
            view: Arc::new(|kv| Ok(view(kv))),
            bookmark: json!({"apiVersion": "nanocl.io/v1", "kind": "Event"}),
            table: None,
            columns_sent: Arc::default(),
        };
        return watch::serve_source(app, source, query.clone()).await;
    }
    let listed = app.store.list(&prefix).await?;
    let mut items: Vec<Value> = listed
        .items
        .iter()
        .filter_map(view)
        .filter(|v| query.selector.matches(&v.labels))
        .map(|v| v.value)
        .collect();
    items.sort_by(|a, b| {
        a["lastTimestamp"]
            .as_str()
            .cmp(&b["lastTimestamp"].as_str())
    });
    let list = json!({
        "apiVersion": "nanocl.io/v1",
        "kind": "EventList",
        "metadata": {"resourceVersion": listed.revision.to_string()},
        "items": items,
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        list.to_string() + "\n",
    )
        .into_response())
}
