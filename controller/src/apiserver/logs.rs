//! `GET .../cargoes/{name}/log`: the output of every replica, each line prefixed with its
//! replica (`[web-0] ...`), the last `tailLines` of each, then live with `follow=true`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::stream::BoxStream;
use futures::StreamExt;
use nanocl_api_types::{Kind, ObjectKey};
use tokio::sync::mpsc;

use super::handlers::Query;
use super::objects;
use super::path::Target;
use super::status::ApiError;
use super::App;
use crate::controllers::owner::OwnerFilter;
use crate::controllers::plan::labels;
use crate::docker::{Docker, DockerError, Engine};
use crate::store::Store;

/// Streams a cargo's logs.
pub async fn serve<S: Store + Clone>(
    app: Arc<App<S>>,
    target: &Target,
    name: &str,
    query: &Query,
) -> Result<Response, ApiError> {
    if target.kind != Kind::Cargo {
        return Err(ApiError::not_found("logs are served for cargoes only"));
    }
    let namespace = target.namespace.clone().unwrap_or_default();
    let key = ObjectKey {
        kind: Kind::Cargo,
        namespace: Some(namespace.clone()),
        name: name.to_owned(),
    };
    let Some(stored) = objects::read(&app.store, &key).await? else {
        return Err(ApiError::not_found(format!(
            "cargo {name:?} not found in namespace {namespace:?}"
        )));
    };
    if query.build {
        let builds = match &stored.object {
            nanocl_api_types::AnyObject::Cargo(c) => c.spec.container.build.is_some(),
            _ => false,
        };
        if !builds {
            return Err(ApiError::bad_request(format!(
                "cargo {name:?} has no spec.container.build: it runs the image it names, nothing is built"
            )));
        }
        return Ok(build_log(app, &namespace, name, query));
    }
    let docker = Engine::connect().await.map_err(|e| {
        ApiError::unavailable(format!(
            "logs come from Docker, which is not reachable: {e}"
        ))
    })?;
    let instance = crate::controllers::instance_id(&app.store).await?;
    let filter = OwnerFilter::instance(&instance)
        .namespace(&namespace)
        .cargo(name)
        .labels();
    let mut replicas = docker
        .list_containers(&filter)
        .await
        .map_err(|e| ApiError::unavailable(format!("listing the replicas failed: {e}")))?;
    replicas.sort_by_key(|c| {
        c.labels
            .get(labels::SLOT)
            .and_then(|s| s.parse::<u32>().ok())
    });
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(256);
    let streams: Vec<(String, BoxStream<'static, Result<String, DockerError>>)> = replicas
        .iter()
        .map(|r| {
            let slot = r.labels.get(labels::SLOT).cloned().unwrap_or_default();
            (
                format!("[{name}-{slot}] "),
                docker.logs(&r.id, query.follow, query.tail_lines),
            )
        })
        .collect();
    if query.follow {
        // Live: every replica at once, lines as they come.
        for (prefix, output) in streams {
            tokio::spawn(pump(prefix, output, tx.clone(), app.shutdown.clone()));
        }
    } else {
        // A snapshot: replica after replica, in slot order.
        let shutdown = app.shutdown.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            for (prefix, output) in streams {
                if !pump(prefix, output, tx.clone(), shutdown.clone()).await {
                    return;
                }
            }
        });
    }
    drop(tx);
    let body = Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response())
}

/// Copies one replica's output as prefixed lines; `false` once the client is gone.
async fn pump(
    prefix: String,
    mut output: BoxStream<'static, Result<String, DockerError>>,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> bool {
    let mut partial = String::new();
    loop {
        let chunk = tokio::select! {
            c = output.next() => c,
            _ = shutdown.wait_for(|v| *v) => None,
            () = tx.closed() => return false,
        };
        let Some(Ok(text)) = chunk else { break };
        partial.push_str(&text);
        while let Some(end) = partial.find('\n') {
            let line: String = partial.drain(..=end).collect();
            if tx
                .send(Ok(Bytes::from(format!("{prefix}{line}"))))
                .await
                .is_err()
            {
                return false;
            }
        }
    }
    if !partial.is_empty()
        && tx
            .send(Ok(Bytes::from(format!("{prefix}{partial}\n"))))
            .await
            .is_err()
    {
        return false;
    }
    true
}

/// How often a followed build log is read again.
const BUILD_LOG_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// The output of a cargo's latest build (`crate::controllers::build::BuildLog`): the last
/// `tailLines`, then, with `follow`, the lines as they come until the build ends.
fn build_log<S: Store + Clone>(
    app: Arc<App<S>>,
    namespace: &str,
    name: &str,
    query: &Query,
) -> Response {
    use crate::controllers::build::BuildLog;
    let key = BuildLog::key(namespace, name);
    let (follow, tail) = (query.follow, query.tail_lines);
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(256);
    let mut shutdown = app.shutdown.clone();
    tokio::spawn(async move {
        // The absolute index of the next line to send, in the build started at `started`.
        let mut sent: Option<(String, usize)> = None;
        loop {
            let log = match app.store.get(&key).await {
                Ok(Some(kv)) => serde_json::from_slice::<BuildLog>(&kv.value).ok(),
                Ok(None) => None,
                Err(e) => {
                    let _ = tx
                        .send(Ok(Bytes::from(format!(
                            "error: reading the build log: {e}\n"
                        ))))
                        .await;
                    return;
                }
            };
            let done = match &log {
                None if !follow => {
                    let _ = tx.send(Ok(Bytes::from("no build has run yet\n"))).await;
                    return;
                }
                None => false,
                Some(log) => {
                    let total = log.dropped + log.lines.len();
                    let from = match &sent {
                        Some((started, n)) if *started == log.started => *n,
                        // First read (or a new build): the tail of it.
                        _ => {
                            if sent.is_some() {
                                let header = format!("--- a new build: {} ---\n", log.image);
                                if tx.send(Ok(Bytes::from(header))).await.is_err() {
                                    return;
                                }
                            }
                            let keep = tail.map_or(total, |t| (t as usize).min(total));
                            total - keep
                        }
                    };
                    let start = from.saturating_sub(log.dropped).min(log.lines.len());
                    for line in &log.lines[start..] {
                        if tx.send(Ok(Bytes::from(format!("{line}\n")))).await.is_err() {
                            return;
                        }
                    }
                    sent = Some((log.started.clone(), total));
                    log.done
                }
            };
            if !follow || done {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(BUILD_LOG_POLL) => {}
                _ = shutdown.wait_for(|v| *v) => return,
                () = tx.closed() => return,
            }
        }
    });
    let body = Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}
