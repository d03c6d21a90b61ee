//! `nanocld --deploy-dir DIR`: the deploy-directory sync of `nanocl watch`, run inside the
//! daemon. It is the same code ([`nanocl_client::deploy`]); requests go to the daemon's own API
//! router in process, so they get exactly the validation, defaulting and admission of a
//! request on the socket, without needing one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use nanocl_client::deploy::watch::{self, Report, Timing, Trigger};
use nanocl_client::deploy::{Config, Syncer};
use nanocl_client::http::Answer;
use nanocl_client::transport::Transport;
use nanocl_client::Error;
use serde_json::Value;
use tower::ServiceExt;

use crate::apiserver::App;
use crate::store::Store;

/// Requests served by the daemon's router, in process.
#[derive(Clone, Debug)]
pub struct InProcess {
    router: axum::Router,
}

impl InProcess {
    /// Over `router`.
    pub fn new(router: axum::Router) -> InProcess {
        InProcess { router }
    }
}

impl Transport for InProcess {
    async fn request(
        &self,
        method: axum::http::Method,
        path: &str,
        body: Option<&Value>,
    ) -> nanocl_client::Result<Answer> {
        let build = |e: &dyn std::fmt::Display| Error::RequestBuildFailed(e.to_string());
        let mut request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header(axum::http::header::HOST, "nanocld");
        let bytes = match body {
            Some(v) => {
                request = request.header(axum::http::header::CONTENT_TYPE, "application/json");
                serde_json::to_vec(v).map_err(|e| build(&e))?
            }
            None => Vec::new(),
        };
        let request = request
            .body(axum::body::Body::from(bytes))
            .map_err(|e| build(&e))?;
        let response = match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::Unavailable(format!("reading nanocld's own answer: {e}")))?
            .to_bytes();
        Ok(Answer { status, body })
    }
}

/// What `--deploy-dir` needs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The directories.
    pub dirs: Vec<PathBuf>,
    /// Delete objects whose file was deleted.
    pub prune: bool,
    /// Quiet period before a sync.
    pub debounce: Duration,
}

/// The syncers for the directories, refusing two directories with the same applyset (they
/// would prune each other's objects).
pub fn syncers(options: &Options) -> anyhow::Result<Vec<Syncer>> {
    let mut seen: std::collections::BTreeMap<String, PathBuf> = Default::default();
    let mut syncers = Vec::new();
    for dir in &options.dirs {
        let applyset = nanocl_client::remote::applyset_name(None, Some(dir))
            .map_err(|e| anyhow::anyhow!("--deploy-dir {}: {e}", dir.display()))?;
        if let Some(other) = seen.insert(applyset.clone(), dir.clone()) {
            anyhow::bail!(
                "--deploy-dir {} and {} have the same name, so the same applyset {applyset:?}: \
                 each would prune the other's objects; rename one",
                other.display(),
                dir.display()
            );
        }
        syncers.push(Syncer::new(Config {
            dir: dir.clone(),
            applyset,
            explicit_applyset: false,
            prune: options.prune,
            decode: Default::default(),
        }));
    }
    Ok(syncers)
}

/// Syncs one directory until shutdown, logging each sync and recording it in `/metrics`.
pub async fn run<S: Store>(
    syncer: Syncer,
    api: InProcess,
    app: Arc<App<S>>,
    debounce: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let dir = syncer.config().dir.display().to_string();
    let applyset = syncer.config().applyset.clone();
    tracing::info!(%dir, %applyset, prune = syncer.config().prune, "deploy directory: watching");
    let timing = Timing {
        debounce,
        ..Timing::default()
    };
    let metrics = &app.metrics;
    let result = watch::run(
        syncer,
        &api,
        timing,
        |report| match report {
            Report::Synced(trigger, sync) => {
                metrics.record_deploy_sync(&dir, sync);
                for problem in &sync.problems {
                    tracing::warn!(%dir, "{problem}");
                }
                for notice in &sync.notices {
                    tracing::warn!(%dir, "{notice}");
                }
                for line in &sync.objects {
                    tracing::info!(%dir, "{line}");
                }
                let summary = sync.summary(std::path::Path::new(&dir));
                if trigger == Trigger::Resync && !sync.eventful() {
                    tracing::debug!(%dir, "{summary}");
                } else {
                    tracing::info!(
                        %dir,
                        created = sync.created,
                        configured = sync.configured,
                        unchanged = sync.unchanged,
                        pruned = sync.pruned,
                        invalid = sync.invalid,
                        kept = sync.kept,
                        "{summary}"
                    );
                }
            }
            Report::Missing(path, e) => {
                metrics.record_deploy_failure(&dir);
                tracing::warn!(
                    %dir,
                    "deploy directory {}: {e}; waiting for it (nothing is applied or pruned meanwhile)",
                    path.display()
                );
            }
            Report::Retrying(e, delay) => {
                metrics.record_deploy_failure(&dir);
                tracing::warn!(%dir, retry_in = ?delay, "deploy directory sync failed: {e:#}");
            }
            Report::WatchError(e) => tracing::warn!(%dir, "{e}"),
        },
        shutdown,
    )
    .await;
    if let Err(e) = result {
        tracing::error!(%dir, "deploy directory: {e:#}");
    }
}
