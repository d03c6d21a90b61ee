//! `GET .../cargoes/{name}/log`: the output of every replica, each line prefixed with its
//! replica (`[web-0] ...`), the last `tailLines` of each, then live with `follow=true`;
//! `replica=N`: one replica's.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::stream::BoxStream;
use futures::StreamExt;
use nanocl_api_types::ObjectKey;
use tokio::sync::mpsc;

use super::handlers::Query;
use super::objects;
use super::path::Target;
use super::status::ApiError;
use super::App;
use crate::controllers::plan::labels;
use crate::docker::{Container, Docker, DockerError, Engine, LogOptions};
use crate::store::Store;

/// Streams a cargo's logs.
pub async fn serve<S: Store + Clone>(
    app: Arc<App<S>>,
    target: &Target,
    name: &str,
    query: &Query,
) -> Result<Response, ApiError> {
    let (key, stored) = super::cargo_docker::require(&app, target, name, "logs are served").await?;
    let namespace = key.namespace.clone().unwrap_or_default();
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
    let (docker, mut filter, mut replicas) =
        super::cargo_docker::containers(&app, &key, "logs come from").await?;
    replicas.sort_by_key(slot_of);
    // `replica=N`: that replica only (and, following, the containers that replace it).
    if let Some(slot) = query.replica {
        filter.push(format!("{}={slot}", labels::SLOT));
        let slots: Vec<String> = replicas
            .iter()
            .filter_map(slot_of)
            .map(|s| s.to_string())
            .collect();
        replicas.retain(|c| slot_of(c) == Some(slot));
        if replicas.is_empty() && !query.follow {
            return Err(ApiError::not_found(format!(
                "cargo {name:?} has no replica {slot} (its replicas: {})",
                if slots.is_empty() {
                    "none".to_owned()
                } else {
                    slots.join(", ")
                }
            )));
        }
    }
    let since = match (query.since_seconds, query.since_time) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give sinceSeconds or sinceTime, not both",
            ))
        }
        (Some(seconds), None) => Some(unix_now().saturating_sub(seconds)),
        (None, Some(time)) => Some(
            time.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        ),
        (None, None) => None,
    };
    let options = LogOptions {
        follow: query.follow,
        tail: query.tail_lines,
        since: since.and_then(|s| i64::try_from(s).ok()),
        timestamps: query.timestamps,
    };
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(256);
    if query.follow {
        tokio::spawn(follow(
            app.clone(),
            docker,
            Followed {
                key,
                filter,
                options,
                first: replicas,
            },
            tx,
        ));
    } else {
        // A snapshot: replica after replica, in slot order.
        let shutdown = app.shutdown.clone();
        let streams: Vec<_> = replicas
            .iter()
            .map(|r| (prefix(name, r), docker.logs(&r.id, &options)))
            .collect();
        tokio::spawn(async move {
            for (prefix, output) in streams {
                if !pump(prefix, output, tx.clone(), shutdown.clone()).await {
                    return;
                }
            }
        });
    }
    let body = Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response())
}

fn slot_of(c: &Container) -> Option<u32> {
    c.labels
        .get(labels::SLOT)
        .and_then(|s| s.parse::<u32>().ok())
}

/// `[web-0] `: the cargo's name and the replica's slot, before each of its lines.
fn prefix(cargo: &str, c: &Container) -> String {
    let slot = c.labels.get(labels::SLOT).map_or("?", String::as_str);
    format!("[{cargo}-{slot}] ")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How often a followed cargo's containers are listed again, to follow replacements.
const FOLLOW_RELIST: std::time::Duration = std::time::Duration::from_secs(1);

/// What `follow` follows.
struct Followed {
    key: ObjectKey,
    filter: Vec<String>,
    options: LogOptions,
    /// The containers listed when the request came.
    first: Vec<Container>,
}

/// `logs -f`: every replica at once, lines as they come, and the replicas that replace them
/// as they appear (from their first line), each change said in a `---` line. Ends when the
/// cargo is deleted, the client leaves or nanocld shuts down.
async fn follow<S: Store + Clone>(
    app: Arc<App<S>>,
    docker: Engine,
    what: Followed,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let cargo = what.key.name.clone();
    let say = |line: String| {
        let tx = tx.clone();
        async move { tx.send(Ok(Bytes::from(line))).await.is_ok() }
    };
    // Per container: its pump while one runs; when its output was last read to the end (a
    // container started again is read from then on).
    let mut pumps: std::collections::HashMap<String, tokio::task::JoinHandle<bool>> =
        std::collections::HashMap::new();
    let mut ended: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let start = |c: &Container, options: LogOptions| {
        tokio::spawn(pump(
            prefix(&cargo, c),
            docker.logs(&c.id, &options),
            tx.clone(),
            app.shutdown.clone(),
        ))
    };
    for c in &what.first {
        pumps.insert(c.id.clone(), start(c, what.options.clone()));
    }
    let mut shutdown = app.shutdown.clone();
    let mut known: std::collections::HashMap<String, Container> =
        what.first.into_iter().map(|c| (c.id.clone(), c)).collect();
    loop {
        tokio::select! {
            () = tokio::time::sleep(FOLLOW_RELIST) => {}
            _ = shutdown.wait_for(|v| *v) => break,
            () = tx.closed() => break,
        }
        // Pumps that ended: their container stopped (or went).
        let done: Vec<String> = pumps
            .iter()
            .filter(|(_, h)| h.is_finished())
            .map(|(id, _)| id.clone())
            .collect();
        for id in done {
            pumps.remove(&id);
            ended.insert(id, unix_now());
        }
        match objects::read(&app.store, &what.key).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                say(format!("--- cargo {cargo:?} was deleted ---\n")).await;
                break;
            }
            // The store not answering for a moment is no reason to stop.
            Err(_) => continue,
        }
        let Ok(mut now) = docker.list_containers(&what.filter).await else {
            continue;
        };
        now.sort_by_key(slot_of);
        let listed: std::collections::HashSet<String> = now.iter().map(|c| c.id.clone()).collect();
        for (id, c) in &known {
            if !listed.contains(id) && ended.remove(id).is_some() {
                let line = format!(
                    "{}--- container {} was removed ---\n",
                    prefix(&cargo, c),
                    c.name
                );
                if !say(line).await {
                    return;
                }
            }
        }
        known.retain(|id, _| listed.contains(id));
        for c in now {
            if pumps.contains_key(&c.id) {
                continue;
            }
            let running = c.state == crate::docker::State::Running;
            let options = match (known.contains_key(&c.id), ended.get(&c.id)) {
                // A new container not started yet: once it is.
                (false, _) if c.state == crate::docker::State::Created => continue,
                // A new container: all of it, from its first line.
                (false, _) => {
                    let line = format!(
                        "{}--- following {}, a new container of this replica ---\n",
                        prefix(&cargo, &c),
                        c.name
                    );
                    if !say(line).await {
                        return;
                    }
                    LogOptions {
                        follow: true,
                        tail: None,
                        since: None,
                        timestamps: what.options.timestamps,
                    }
                }
                // Read to its end, and started again: what came since.
                (true, Some(at)) if running => {
                    let line = format!("{}--- {} started again ---\n", prefix(&cargo, &c), c.name);
                    if !say(line).await {
                        return;
                    }
                    LogOptions {
                        follow: true,
                        tail: None,
                        since: i64::try_from(*at).ok(),
                        timestamps: what.options.timestamps,
                    }
                }
                _ => continue,
            };
            ended.remove(&c.id);
            pumps.insert(c.id.clone(), start(&c, options));
            known.insert(c.id.clone(), c);
        }
    }
    for handle in pumps.into_values() {
        handle.abort();
    }
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
