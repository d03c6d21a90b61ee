//! The controllers: they converge Docker toward the objects in the store.
//!
//! One cache per kind (watcher → reflector), a hub that tells every controller what changed,
//! and one runner per kind. Docker events and related objects are triggers; a periodic
//! resync and a garbage collector cover anything a trigger missed.

pub mod cargo;
pub mod cluster;
pub mod deaths;
pub mod events;
pub mod hub;
pub mod namespace;
pub mod network;
pub mod node;
pub mod owner;
pub mod plan;
pub mod subnets;
pub mod tasks;
pub mod write;

use std::sync::Arc;
use std::time::Duration;

use nanocl_api_types::Kind;
use tokio::sync::watch;

pub use self::owner::OwnerFilter;

use self::hub::Hub;
use self::tasks::{TaskEnded, Tasks};
use crate::docker::{Docker, DockerError};
use crate::metrics::Metrics;
use crate::runtime::runner::{self, Action, Transient};
use crate::store::{Store, StoreError};

/// Finalizer every controlled object carries until its Docker objects are gone.
pub const FINALIZER: &str = "nanocl.io/controller";

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Docker failed.
    #[error("docker: {0}")]
    Docker(#[from] DockerError),
}

impl From<crate::objects::ObjectError> for ReconcileError {
    fn from(e: crate::objects::ObjectError) -> Self {
        match e {
            crate::objects::ObjectError::Store(e) => ReconcileError::Store(e),
            // Not readable (or not writable) by this version: a store record problem, retried
            // like one, and reported by the hub.
            other => ReconcileError::Store(StoreError::RecordCorrupt {
                what: other.to_string(),
            }),
        }
    }
}

impl Transient for ReconcileError {
    fn is_transient(&self) -> bool {
        match self {
            ReconcileError::Store(e) => {
                e.is_transient() || matches!(e, StoreError::Conflict { .. })
            }
            ReconcileError::Docker(e) => e.is_transient(),
        }
    }
}

/// What every reconcile shares.
pub struct Shared<S, D> {
    /// The store.
    pub store: S,
    /// Docker.
    pub docker: D,
    /// This nanocld's store identity, on every Docker object it creates.
    pub instance: String,
    /// The caches and change feed.
    pub hub: Hub,
    /// Crash-loop bookkeeping of the cargo controller.
    pub restarts: cargo::Restarts,
    /// The subnets of the networks nanocl creates.
    pub pool: subnets::Pool,
}

impl<S, D> std::fmt::Debug for Shared<S, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

/// The store's identity: created once, kept forever (`meta/instance`).
pub async fn instance_id<S: Store>(store: &S) -> Result<String, StoreError> {
    if let Some(kv) = store.get("meta/instance").await? {
        return Ok(String::from_utf8_lossy(&kv.value).into_owned());
    }
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    match store.create("meta/instance", id.clone().into_bytes()).await {
        Ok(_) => Ok(id),
        Err(StoreError::AlreadyExists { current, .. }) => {
            Ok(String::from_utf8_lossy(&current.value).into_owned())
        }
        Err(e) => Err(e),
    }
}

/// Runner settings for the controllers.
pub fn runner_config() -> runner::Config {
    runner::Config {
        concurrency: 16,
        backoff_initial: Duration::from_millis(200),
        backoff_max: Duration::from_secs(30),
        resync: Some(Duration::from_secs(60)),
        panics: None,
    }
}

/// How often the controllers look at everything again, whatever happened.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Every object is reconciled again this often.
    pub resync: Duration,
    /// Docker objects whose owner is gone are collected this often (and at start).
    pub gc_interval: Duration,
    /// Where the subnets of Cluster and Network bridges come from (`--network-pool`).
    pub network_pool: subnets::Pool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            resync: Duration::from_secs(60),
            gc_interval: Duration::from_secs(30),
            network_pool: subnets::Pool::default(),
        }
    }
}

/// Why the controllers stopped before shutdown.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store failed at start.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A long-lived task ended: its cache or loop would be frozen from now on.
    #[error(transparent)]
    TaskEnded(#[from] TaskEnded),
}

/// Runs every controller until `shutdown` flips. Every long-lived task is tracked: if one
/// ends before shutdown, the others are stopped and the error says which one, so nanocld
/// exits non-zero (and its supervisor restarts it) rather than run with a frozen cache.
pub async fn run<S: Store + Clone, D: Docker>(
    store: S,
    docker: D,
    metrics: Arc<Metrics>,
    options: Options,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RunError> {
    let instance = instance_id(&store).await?;
    tracing::info!(%instance, "controllers starting");
    // The tasks stop on `stop_tasks` (shutdown, or one of them failing).
    let (stop_tasks, tasks_shutdown) = watch::channel(false);
    let mut tasks = Tasks::default();
    let hub = Hub::start(
        store.clone(),
        metrics.clone(),
        tasks_shutdown.clone(),
        &mut tasks,
    );
    tokio::select! {
        () = hub.wait_ready() => {}
        () = stopped(&mut shutdown) => {
            let _ = stop_tasks.send(true);
            tasks.join_all().await;
            return Ok(());
        }
    }
    let shared = Arc::new(Shared {
        store,
        docker,
        instance,
        hub,
        restarts: cargo::Restarts::default(),
        pool: options.network_pool,
    });
    let stop = {
        let s = tasks_shutdown.clone();
        move || {
            let mut s = s.clone();
            async move {
                let _ = s.wait_for(|v| *v).await;
            }
        }
    };
    for kind in Kind::ALL {
        let shared = shared.clone();
        let done = stop();
        let config = runner::Config {
            panics: Some(metrics.reconcile_panics(kind)),
            resync: Some(options.resync),
            ..runner_config()
        };
        tasks.spawn(format!("{kind} controller"), async move {
            let mut triggers =
                shared
                    .hub
                    .triggers(kind, shared.docker.clone(), shared.instance.clone());
            if kind == Kind::Node {
                // A node's liveness is its lease key, outside the objects.
                let leases = node::lease_triggers(shared.store.clone(), shared.hub.clone());
                triggers = futures::StreamExt::boxed(futures::stream::select(triggers, leases));
            }
            let keys = {
                let shared = shared.clone();
                move || shared.hub.keys(kind)
            };
            let reconcile = move |key: String| {
                let shared = shared.clone();
                async move {
                    let result: Result<Action, ReconcileError> = match kind {
                        Kind::Namespace => namespace::reconcile(&shared, &key).await,
                        Kind::Cluster => cluster::reconcile(&shared, &key).await,
                        Kind::Network => network::reconcile(&shared, &key).await,
                        Kind::Cargo => cargo::reconcile(&shared, &key).await,
                        Kind::Node => node::reconcile(&shared, &key).await,
                    };
                    result
                }
            };
            runner::run(triggers, keys, reconcile, config, done).await;
        });
    }
    {
        let shared = shared.clone();
        let done = stop();
        tasks.spawn("garbage collector", async move {
            cargo::collect_garbage_until(&shared, options.gc_interval, done).await;
        });
    }
    let result = tokio::select! {
        () = stopped(&mut shutdown) => Ok(()),
        ended = tasks.next_ended() => match ended {
            Some(ended) => Err(RunError::TaskEnded(ended)),
            None => Ok(()),
        },
    };
    if let Err(e) = &result {
        tracing::error!(error = %e, "stopping the controllers");
    }
    let _ = stop_tasks.send(true);
    tasks.join_all().await;
    result
}

/// Resolves once `shutdown` is true (without holding its lock across an await).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|v| *v).await;
}

/// Docker's "network has active endpoints": the network is still in use.
pub fn in_use(e: &DockerError) -> bool {
    matches!(e, DockerError::NetworkInUse { .. })
}
