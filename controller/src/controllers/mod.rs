//! The controllers: they converge Docker toward the objects in the store.
//!
//! One cache per kind (watcher → reflector), a hub that tells every controller what changed,
//! and one runner per kind. Docker events and related objects are triggers; a periodic
//! resync and a garbage collector cover anything a trigger missed.

pub mod acme;
pub mod autoscale;
pub mod build;
pub mod cargo;
pub mod cluster;
pub mod deaths;
pub mod drift;
pub mod events;
pub mod hub;
pub mod loads;
pub mod namespace;
pub mod network;
pub mod node;
pub mod owner;
pub mod plan;
pub mod replicas;
pub mod rollout;
pub mod scheduler;
pub mod secrets;
pub mod subnets;
pub mod tasks;
pub mod usage;
pub mod write;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use nanocl_api_types::Kind;
use tokio::sync::watch;

pub use self::owner::OwnerFilter;

use self::hub::Hub;
use self::tasks::{TaskEnded, Tasks};
use crate::docker::{Docker, DockerError};
use crate::metrics::Metrics;
use crate::objects::api::ObjectRef;
use crate::runtime::runner::{self, Action, Transient};
use crate::store::{Revision, Store, StoreError};
use nanocl_api_types::replica::v1::Replica as ReplicaObject;

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
    /// Crash-loop bookkeeping of the replica runner.
    pub restarts: replicas::Restarts,
    /// The subnets of the networks nanocl creates.
    pub pool: subnets::Pool,
    /// The leader's Replica writes its cache has not yet seen.
    pub expected: Expected,
    /// The autoscaler's recent recommendations, by cargo key (its scale-down window).
    pub windows: std::sync::Mutex<HashMap<String, autoscale::Window>>,
    /// What `/metrics` shows.
    pub metrics: Arc<Metrics>,
    /// The node whose Docker `docker` is, when it is one (where images are built).
    pub node: Option<String>,
    /// Where the replica runner writes containers' secret files (bound read-only).
    pub secret_files: std::path::PathBuf,
    /// This nanocld's API as other nodes reach it (`--advertise-url`), if it has one.
    pub advertise: Option<String>,
    /// Mutual TLS towards other nodes' nanocld (their `/images/export`), when this one has
    /// `--tls-*`.
    pub peer_tls: Option<Arc<rustls::ClientConfig>>,
    /// The node's proxy (its data plane): what the replica runner drains a container
    /// through before removing it.
    pub proxy: crate::proxy::Plane,
    /// The ACME issuer of ProxyRules' certificates (on the leader).
    pub acme: acme::Acme,
}

/// The Replica writes of the leader that its cache has not yet seen: the store revision of
/// each, by key. An update decided on a cache behind its own writes could start more
/// replacements than `maxSurge` allows (the Kubernetes controllers' "expectations").
#[derive(Debug, Default)]
pub struct Expected(std::sync::Mutex<HashMap<String, (Revision, tokio::time::Instant)>>);

/// How long a write is waited for in the cache before it is given up on (the object may
/// have gone meanwhile).
const EXPECTATION_TTL: Duration = Duration::from_secs(5);

impl Expected {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Revision, tokio::time::Instant)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether one of `replicas` (as cached) is older than what was written to it.
    pub fn behind(&self, replicas: &[Arc<ReplicaObject>]) -> bool {
        let mut map = self.lock();
        if map.is_empty() {
            return false;
        }
        let now = tokio::time::Instant::now();
        map.retain(|_, (_, at)| now.duration_since(*at) < EXPECTATION_TTL);
        let mut behind = false;
        for r in replicas {
            let key = ObjectRef::of(&**r).store_key();
            if let Some((want, _)) = map.get(&key) {
                let have: Revision = r
                    .metadata
                    .resource_version
                    .as_deref()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if have >= *want {
                    map.remove(&key);
                } else {
                    behind = true;
                }
            }
        }
        behind
    }

    fn remember(&self, key: String, revision: Revision) {
        self.lock()
            .insert(key, (revision, tokio::time::Instant::now()));
    }

    /// Records a write to `r`; as `cargo::written`: `true` when it went through, `false`
    /// when someone wrote first or it is gone.
    pub fn note(
        &self,
        r: &ReplicaObject,
        result: Result<Option<Revision>, crate::objects::ObjectError>,
    ) -> Result<bool, ReconcileError> {
        use crate::objects::ObjectError;
        match result {
            Ok(Some(revision)) => {
                self.remember(ObjectRef::of(r).store_key(), revision);
                Ok(true)
            }
            Ok(None) => Ok(true),
            Err(ObjectError::Store(StoreError::Conflict { .. } | StoreError::NotFound { .. })) => {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Records a Replica just created (as stored).
    pub fn created(&self, stored: &ReplicaObject) {
        if let Some(revision) = stored
            .metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse().ok())
        {
            self.remember(ObjectRef::of(stored).store_key(), revision);
        }
    }
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
#[derive(Clone, Debug)]
pub struct Options {
    /// Every object is reconciled again this often.
    pub resync: Duration,
    /// Docker objects whose owner is gone are collected this often (and at start).
    pub gc_interval: Duration,
    /// Where the subnets of Cluster and Network bridges come from (`--network-pool`).
    pub network_pool: subnets::Pool,
    /// How often a node samples the CPU and memory of autoscaled replicas
    /// (`--metrics-interval`).
    pub metrics_interval: Duration,
    /// A node to register and run replicas for in the same process, on the same caches
    /// (`run` as one host: what the tests and benchmarks start). nanocld runs its node apart
    /// (`run_node`), since it runs whether or not this process leads.
    pub local_node: Option<crate::agent::Config>,
    /// The node whose Docker the controllers use, when this host runs one (images are
    /// built there); `local_node`'s when there is one.
    pub node: Option<String>,
    /// Where containers' secret files are written (default: a directory of the system's
    /// temp dir for this store instance).
    pub secret_files: Option<std::path::PathBuf>,
    /// This nanocld's API as other nodes reach it (`--advertise-url`): where they fetch
    /// the images built here.
    pub advertise: Option<String>,
    /// Mutual TLS towards other nodes' nanocld (`--tls-*`).
    pub peer_tls: Option<Arc<rustls::ClientConfig>>,
    /// Where ProxyRules' ACME certificates come from (`--acme-*`).
    pub acme: acme::Config,
    /// Where the node's proxy runs.
    pub proxy: crate::proxy::Mode,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            resync: Duration::from_secs(60),
            gc_interval: Duration::from_secs(30),
            network_pool: subnets::Pool::default(),
            metrics_interval: DEFAULT_METRICS_INTERVAL,
            local_node: Some(crate::agent::Config {
                node: "local".into(),
                labels: Default::default(),
                addresses: Vec::new(),
                proxy_relay: None,
                ttl: Duration::from_secs(10),
                identity: "local".into(),
                check: crate::agent::CHECK,
            }),
            node: None,
            secret_files: None,
            advertise: None,
            peer_tls: None,
            acme: acme::Config::default(),
            proxy: crate::proxy::Mode::default(),
        }
    }
}

/// Default `--metrics-interval`, as the Kubernetes HPA's sync period.
pub const DEFAULT_METRICS_INTERVAL: Duration = Duration::from_secs(15);

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

/// What `start` set up: the shared state and the tasks (the caches' watchers so far), which
/// stop on `stop_tasks`.
struct Started<S, D> {
    shared: Arc<Shared<S, D>>,
    tasks: Tasks,
    stop_tasks: watch::Sender<bool>,
    tasks_shutdown: watch::Receiver<bool>,
}

/// Reads the store's identity and fills the caches; `None` when `shutdown` came first (the
/// tasks already stopped).
async fn start<S: Store + Clone, D: Docker>(
    store: S,
    docker: D,
    metrics: &Arc<Metrics>,
    options: &Options,
    node_tasks: bool,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<Started<S, D>>, RunError> {
    let instance = instance_id(&store).await?;
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
        () = stopped(shutdown) => {
            let _ = stop_tasks.send(true);
            tasks.join_all().await;
            return Ok(None);
        }
    }
    tracing::debug!(%instance, "caches filled");
    let instance_for_files = instance.clone();
    let shared = Arc::new(Shared {
        store,
        docker,
        instance,
        hub,
        restarts: replicas::Restarts::default(),
        pool: options.network_pool,
        expected: Expected::default(),
        windows: Default::default(),
        metrics: metrics.clone(),
        node: options
            .local_node
            .as_ref()
            .map(|n| n.node.clone())
            .or_else(|| options.node.clone()),
        advertise: options.advertise.clone(),
        peer_tls: options.peer_tls.clone(),
        proxy: if node_tasks {
            crate::proxy::Plane::start(&options.proxy, metrics)
        } else {
            crate::proxy::Plane::None
        },
        acme: acme::Acme::new(options.acme.clone()),
        secret_files: options.secret_files.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("nanocl-secret-files-{instance_for_files}"))
        }),
    });
    Ok(Some(Started {
        shared,
        tasks,
        stop_tasks,
        tasks_shutdown,
    }))
}

/// A future that resolves once `tasks_shutdown` is true, for each task.
fn stop_signal(
    tasks_shutdown: &watch::Receiver<bool>,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    let s = tasks_shutdown.clone();
    move || {
        let mut s = s.clone();
        Box::pin(async move {
            let _ = s.wait_for(|v| *v).await;
        })
    }
}

/// Waits for shutdown or for a task to end (an error), then stops and joins every task.
async fn supervise(
    mut tasks: Tasks,
    stop_tasks: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RunError> {
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

/// Runs every controller until `shutdown` flips (and, with `options.local_node`, that
/// node's agent and replica runner too, on the same caches). Every long-lived task is
/// tracked: if one ends before shutdown, the others are stopped and the error says which
/// one, so nanocld exits non-zero (and its supervisor restarts it) rather than run with a
/// frozen cache.
pub async fn run<S: Store + Clone, D: Docker>(
    store: S,
    docker: D,
    metrics: Arc<Metrics>,
    options: Options,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RunError> {
    // The scheduler writes Replicas into the namespaces of their cargoes; `global` is one.
    crate::objects::ensure_default_namespace(&store).await?;
    tracing::info!("controllers starting");
    let Some(Started {
        shared,
        mut tasks,
        stop_tasks,
        tasks_shutdown,
    }) = start(
        store,
        docker,
        &metrics,
        &options,
        options.local_node.is_some(),
        &mut shutdown,
    )
    .await?
    else {
        return Ok(());
    };
    let stop = stop_signal(&tasks_shutdown);
    if let Some(config) = options.local_node.clone() {
        let (store, docker, done) = (
            shared.store.clone(),
            shared.docker.clone(),
            tasks_shutdown.clone(),
        );
        let (registered, _) = watch::channel(false);
        let node = config.node.clone();
        tasks.spawn("node agent", async move {
            if let Err(e) = crate::agent::run(store, docker, config, registered, done).await {
                tracing::error!(error = %e, "the node agent stopped");
            }
        });
        spawn_node_tasks(&shared, &node, &metrics, &options, &stop, &mut tasks);
    }
    for kind in Kind::ALL {
        // Replicas are the scheduler's output (the Cargo controller) and the node runners'
        // input: no controller of their own. ProxyRules are the node proxies' input; their
        // controller obtains their ACME certificates.
        if matches!(kind, Kind::Replica) {
            continue;
        }
        let shared = shared.clone();
        let done = stop();
        let config = runner::Config {
            panics: Some(metrics.reconcile_panics(kind)),
            resync: Some(options.resync),
            ..runner_config()
        };
        tasks.spawn(format!("{kind} controller"), async move {
            let mut triggers = shared.hub.triggers(kind);
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
                        Kind::Secret => secrets::reconcile(&shared, &key).await,
                        Kind::Cargo => cargo::reconcile(&shared, &key).await,
                        Kind::Node => node::reconcile(&shared, &key).await,
                        Kind::ProxyRule => acme::reconcile(&shared, &key).await,
                        Kind::Replica => Ok(Action::AwaitChange),
                    };
                    result
                }
            };
            runner::run(triggers, keys, reconcile, config, done).await;
        });
    }
    {
        // The build queue: a runner of its own, so a long build never holds a slot of the
        // controllers; each build stops on shutdown.
        let shared = shared.clone();
        let done = stop();
        let stop_build = stop_signal(&tasks_shutdown);
        let config = runner::Config {
            concurrency: build::CONCURRENCY,
            panics: Some(metrics.reconcile_panics(Kind::Cargo)),
            resync: Some(options.resync),
            ..runner_config()
        };
        tasks.spawn("builder", async move {
            let builds = Arc::new(build::Builds::default());
            let triggers = shared.hub.triggers(Kind::Cargo);
            let keys = {
                let shared = shared.clone();
                move || shared.hub.keys(Kind::Cargo)
            };
            let reconcile = move |key: String| {
                let (shared, builds, stopped) = (shared.clone(), builds.clone(), stop_build());
                async move { build::reconcile(&shared, &builds, &key, stopped).await }
            };
            runner::run(triggers, keys, reconcile, config, done).await;
        });
    }
    {
        let shared = shared.clone();
        let done = stop();
        tasks.spawn("store garbage collector", async move {
            cargo::collect_store_garbage_until(&shared, options.gc_interval, done).await;
        });
    }
    supervise(tasks, stop_tasks, shutdown).await
}

/// The replica runner of node `node` and its Docker garbage collector, into `tasks`.
fn spawn_node_tasks<S: Store + Clone, D: Docker>(
    shared: &Arc<Shared<S, D>>,
    node: &str,
    metrics: &Arc<Metrics>,
    options: &Options,
    stop: &impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    tasks: &mut Tasks,
) {
    let config = runner::Config {
        panics: Some(metrics.reconcile_panics(Kind::Replica)),
        resync: Some(options.resync),
        ..runner_config()
    };
    {
        let (shared, node, done) = (shared.clone(), node.to_owned(), stop());
        tasks.spawn("replica runner", async move {
            let triggers = shared.hub.node_triggers(
                shared.docker.clone(),
                shared.instance.clone(),
                node.clone(),
            );
            let keys = {
                let shared = shared.clone();
                move || shared.hub.keys(Kind::Cargo)
            };
            let reconcile = move |key: String| {
                let (shared, node) = (shared.clone(), node.clone());
                async move { replicas::reconcile(&shared, &node, &key).await }
            };
            runner::run(triggers, keys, reconcile, config, done).await;
        });
    }
    let (shared_, every, done, node_) =
        (shared.clone(), options.gc_interval, stop(), node.to_owned());
    tasks.spawn("garbage collector", async move {
        replicas::collect_garbage_until(&shared_, &node_, every, done).await;
    });
    let (shared_proxy, node_proxy) = (shared.clone(), node.to_owned());
    let (shared, every, done, node) = (
        shared.clone(),
        options.metrics_interval,
        stop(),
        node.to_owned(),
    );
    tasks.spawn("usage sampler", async move {
        usage::sample_until(&shared, &node, every, done).await;
    });
    let (hub, store, node, metrics, plane, done) = (
        shared_proxy.hub.clone(),
        shared_proxy.store.clone(),
        node_proxy,
        metrics.clone(),
        shared_proxy.proxy.clone(),
        stop(),
    );
    tasks.spawn("proxy", async move {
        crate::proxy::run(hub, store, node, metrics, plane, done).await;
    });
}

/// Runs node `node`'s replica runner (the containers of the Replicas placed on it) on
/// Docker `docker`, with caches of its own, until `shutdown`: what every nanocld with the
/// agent role runs, leading or not.
pub async fn run_node<S: Store + Clone, D: Docker>(
    store: S,
    docker: D,
    node: String,
    metrics: Arc<Metrics>,
    options: Options,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RunError> {
    tracing::info!(%node, "replica runner starting");
    let Some(Started {
        shared,
        mut tasks,
        stop_tasks,
        tasks_shutdown,
    }) = start(store, docker, &metrics, &options, true, &mut shutdown).await?
    else {
        return Ok(());
    };
    let stop = stop_signal(&tasks_shutdown);
    spawn_node_tasks(&shared, &node, &metrics, &options, &stop, &mut tasks);
    supervise(tasks, stop_tasks, shutdown).await
}

/// Runs `pass` at once and then every `every`, until `done`.
pub async fn every_until<F, Fut>(
    every: Duration,
    done: impl std::future::Future<Output = ()>,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    tokio::pin!(done);
    let mut tick = tokio::time::interval(every);
    // A pass longer than `every` is followed by a whole interval, not a burst of passes.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut done => return,
            _ = tick.tick() => pass().await,
        }
    }
}

/// Resolves once `shutdown` is true (without holding its lock across an await).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|v| *v).await;
}

/// Docker's "network has active endpoints": the network is still in use.
pub fn in_use(e: &DockerError) -> bool {
    matches!(e, DockerError::NetworkInUse { .. })
}
