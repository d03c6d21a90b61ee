//! `POST .../cargoes/{name}/exec?command=…[&replica=N][&tty][&stdin][&rows=R&cols=C]`:
//! runs a command in one of the cargo's running replicas over a connection switched to
//! `nanocl-exec` (the framing of `nanocl_client::exec`), and ends with its exit code.

use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use hyper_util::rt::TokioIo;
use nanocl_client::exec::{self as wire, Frame};
use tokio::io::AsyncWriteExt;

use super::handlers::Query;
use super::path::Target;
use super::status::ApiError;
use super::App;
use crate::controllers::plan::labels;
use crate::docker::{Attached, Container, DockerError, Engine, ExecOutput, State};
use crate::store::Store;

/// Starts the command and switches the connection.
pub async fn serve<S: Store + Clone>(
    app: Arc<App<S>>,
    target: &Target,
    name: &str,
    query: &Query,
    headers: &HeaderMap,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response, ApiError> {
    if query.command.is_empty() {
        return Err(ApiError::bad_request(
            "give the command: command=PROGRAM&command=ARG… (nanocl exec cargo NAME -- CMD)",
        ));
    }
    let asked = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(wire::PROTOCOL));
    let Some(upgrade) = upgrade.filter(|_| asked) else {
        return Err(ApiError::bad_request(format!(
            "exec switches the connection: send Connection: Upgrade and Upgrade: {} (nanocl exec does)",
            wire::PROTOCOL
        )));
    };
    let (key, _) = super::cargo_docker::require(&app, target, name, "exec runs").await?;
    let namespace = key.namespace.clone().unwrap_or_default();
    let (docker, _, containers) =
        super::cargo_docker::containers(&app, &key, "exec goes through").await?;
    let container = choose(name, &containers, query.replica)?;
    let attached = docker
        .exec(&container.id, &query.command, query.tty, query.stdin)
        .await
        .map_err(|e| match e {
            DockerError::RequestFailed {
                status: 409,
                message,
                ..
            } => ApiError::conflict(format!(
                "container {} of cargo {name:?} cannot run a command: {message}",
                container.name
            )),
            other => ApiError::unavailable(format!(
                "starting the command in container {} failed: {other}",
                container.name
            )),
        })?;
    if let (true, (Some(rows), Some(cols))) = (query.tty, query.size) {
        // A failed resize leaves the terminal at Docker's default size: not worth failing.
        let _ = docker.resize_exec(&attached.id, rows, cols).await;
    }
    tracing::info!(cargo = name, namespace, container = %container.name, command = ?query.command, "exec");
    tokio::spawn(run(docker, attached, upgrade));
    Ok((
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, "Upgrade"),
            (header::UPGRADE, wire::PROTOCOL),
        ],
    )
        .into_response())
}

/// The container the command runs in: the asked slot's (or the lowest slot's) running
/// container, the newest when a replacement runs beside the container it replaces.
fn choose<'a>(
    cargo: &str,
    containers: &'a [Container],
    replica: Option<u32>,
) -> Result<&'a Container, ApiError> {
    let slot = |c: &Container| {
        c.labels
            .get(labels::SLOT)
            .and_then(|s| s.parse::<u32>().ok())
    };
    // Docker lists the newest first; the stable sort keeps that order within a slot.
    let mut running: Vec<&Container> = containers
        .iter()
        .filter(|c| c.state == State::Running)
        .filter(|c| replica.is_none() || slot(c) == replica)
        .collect();
    running.sort_by_key(|c| slot(c));
    if let Some(c) = running.first() {
        return Ok(c);
    }
    let mut slots: Vec<u32> = containers.iter().filter_map(slot).collect();
    slots.sort_unstable();
    slots.dedup();
    let listed = slots
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    Err(ApiError::conflict(match replica {
        Some(n) if !slots.contains(&n) => format!(
            "cargo {cargo:?} has no replica {n} (its replicas: {})",
            if listed.is_empty() { "none" } else { &listed }
        ),
        Some(n) => format!("replica {n} of cargo {cargo:?} is not running (nanocl get replicas -l cargo={cargo} says why)"),
        None if containers.is_empty() => format!("cargo {cargo:?} has no replica yet"),
        None => format!("no replica of cargo {cargo:?} is running (nanocl get replicas -l cargo={cargo} says why)"),
    }))
}

/// Carries the client's frames to the command and the command's output back, then its exit
/// code.
async fn run(docker: Engine, attached: Attached, upgrade: hyper::upgrade::OnUpgrade) {
    let Ok(upgraded) = upgrade.await else {
        return;
    };
    let (mut from_client, mut to_client) = tokio::io::split(TokioIo::new(upgraded));
    let Attached {
        id,
        mut output,
        mut input,
    } = attached;
    let resizer = docker.clone();
    let exec_id = id.clone();
    let inbound = tokio::spawn(async move {
        while let Ok(Some(frame)) = wire::read(&mut from_client).await {
            match frame {
                Frame::Stdin(bytes) => {
                    if input.write_all(&bytes).await.is_err() || input.flush().await.is_err() {
                        break;
                    }
                }
                Frame::StdinClosed => {
                    let _ = input.shutdown().await;
                }
                Frame::Resize { rows, cols } => {
                    let _ = resizer.resize_exec(&exec_id, rows, cols).await;
                }
                _ => break,
            }
        }
    });
    let mut failed = None;
    while let Some(chunk) = output.next().await {
        let frame = match chunk {
            Ok(ExecOutput::Stdout(b)) => Frame::Stdout(b.to_vec()),
            Ok(ExecOutput::Stderr(b)) => Frame::Stderr(b.to_vec()),
            Err(e) => {
                failed = Some(format!("reading the command's output: {e}"));
                break;
            }
        };
        if wire::write(&mut to_client, &frame).await.is_err() {
            // The client left; the command is Docker's to finish.
            inbound.abort();
            return;
        }
    }
    inbound.abort();
    let last = match failed {
        Some(message) => Frame::Error(message),
        None => exit_frame(&docker, &id).await,
    };
    let _ = wire::write(&mut to_client, &last).await;
    let _ = to_client.shutdown().await;
}

/// The exit code, once Docker has it (the output can end a moment before the exec does).
async fn exit_frame(docker: &Engine, id: &str) -> Frame {
    for _ in 0..50 {
        match docker.exec_exit_code(id).await {
            Ok(Some(code)) => return Frame::Exit(i32::try_from(code).unwrap_or(i32::MAX)),
            Ok(None) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            Err(e) => return Frame::Error(format!("reading the command's exit code: {e}")),
        }
    }
    Frame::Error("the command's output ended but Docker still reports it running".into())
}
