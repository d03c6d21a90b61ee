//! The hub: one watcher-fed typed cache per kind, and a feed of changes from which each controller
//! derives the keys to reconcile (its own objects, related objects, Docker events).

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use nanocl_api_types::cargo::v1::Cargo as CargoObject;
use nanocl_api_types::cluster::v1::Cluster as ClusterObject;
use nanocl_api_types::namespace::v1::Namespace as NamespaceObject;
use nanocl_api_types::network::v1::Network as NetworkObject;
use nanocl_api_types::node::v1::Node as NodeObject;
use nanocl_api_types::proxy_rule::v1::ProxyRule as ProxyRuleObject;
use nanocl_api_types::replica::v1::Replica as ReplicaObject;
use nanocl_api_types::secret::v1::Secret as SecretObject;
use nanocl_api_types::{Kind, Resource};
use tokio::sync::{broadcast, mpsc, watch};

use super::deaths::Deaths;
use super::drift::Drifts;
use super::loads::NodeLoads;
use super::plan::labels;
use super::tasks::Tasks;
use super::{events, OwnerFilter};
use crate::backoff::Backoff;
use crate::docker::Docker;
use crate::metrics::Metrics;
use crate::objects::api::ObjectRef;
use crate::objects::{self, UNDECODABLE_REASON};
use crate::runtime::reflector::{self, Entry, Reader};
use crate::runtime::watcher::{self, Event};
use crate::store::{keys, KeyValue, Store};

/// Something changed in a cache.
#[derive(Clone, Debug)]
pub struct Change {
    /// The kind.
    pub kind: Kind,
    /// The store key.
    pub key: String,
    /// Whether a decoded object is there now (`false`: deleted, or undecodable).
    pub exists: bool,
    /// The cluster the object belongs to (see `Cached::cluster`).
    pub cluster: Option<String>,
    /// Only `status` (and the resourceVersion) changed: the object's own controller wrote it
    /// and needs no new reconcile for it.
    pub status_only: bool,
    /// The Cargo a Replica belongs to (also when the Replica was deleted).
    pub cargo: Option<String>,
    /// What the scheduler reads of the object changed (`Cached::placement`), or it came or
    /// went.
    pub placement_changed: bool,
}

/// A kind the hub caches: where its typed cache is, and what other kinds follow of it.
pub trait Cached: Resource {
    /// Its cache in `hub`.
    fn cache(hub: &Hub) -> &Reader<Self>;

    /// The cluster the object belongs to: a Cluster's own name, a Network's or a Cargo's
    /// `spec.cluster` (what the controllers of the kinds under a cluster follow).
    fn cluster(&self) -> Option<&str> {
        None
    }

    /// The Cargo the object belongs to (a Replica's `spec.cargo`).
    fn cargo(&self) -> Option<&str> {
        None
    }

    /// What the scheduler reads of the object, when it is a Node: its labels, whether it is
    /// cordoned, whether it is Ready.
    fn placement(&self) -> Option<String> {
        None
    }
}

impl Cached for NamespaceObject {
    fn cache(hub: &Hub) -> &Reader<Self> {
        &hub.namespaces
    }
}

impl Cached for ClusterObject {
    fn cache(hub: &Hub) -> &Reader<Self> {
        &hub.clusters
    }

    fn cluster(&self) -> Option<&str> {
        Some(&self.metadata.name)
    }
}

impl Cached for NetworkObject {
    fn cache(hub: &Hub) -> &Reader<Self> {
        &hub.networks
    }

    fn cluster(&self) -> Option<&str> {
        Some(&self.spec.cluster)
    }
}

impl Cached for NodeObject {
    fn cache(hub: &Hub) -> &Reader<Self> {
        &hub.nodes
    }

    fn placement(&self) -> Option<String> {
        let ready = self
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| format!("{:?}", c.status));
        Some(format!(
            "{:?}/{}/{ready:?}/{:?}",
            self.metadata.labels,
            self.spec.unschedulable,
            self.status.as_ref().and_then(|s| s.capacity.as_ref())
        ))
    }
}

impl Cached for ReplicaObject {
    fn cache(hub: &Hub) -> &Reader<Self> {
        &hub.replicas
    }

    fn cargo(&self) -> Option<&str> {
        Some(&self.spec.cargo)
    }
}

impl Cached for SecretObject {
    fn cache(hub: &Hub) -> &Reader<Self> {
        &hub.secrets
    }
}

impl Cached for CargoObject {
    fn cache(hub: &Hub) -> &Reader<Self> {
        &hub.cargoes
    }

    fn cluster(&self) -> Option<&str> {
        Some(&self.spec.cluster)
    }
}

impl Cached for ProxyRuleObject {
    fn cache(hub: &Hub) -> &Reader<Self> {
        &hub.proxy_rules
    }

    fn cluster(&self) -> Option<&str> {
        Some(&self.spec.cluster)
    }
}

/// The caches, one typed store per kind, and the change feed.
#[derive(Clone)]
pub struct Hub {
    namespaces: Reader<NamespaceObject>,
    clusters: Reader<ClusterObject>,
    networks: Reader<NetworkObject>,
    secrets: Reader<SecretObject>,
    cargoes: Reader<CargoObject>,
    proxy_rules: Reader<ProxyRuleObject>,
    nodes: Reader<NodeObject>,
    replicas: Reader<ReplicaObject>,
    loads: Arc<NodeLoads>,
    changes: broadcast::Sender<Change>,
    deaths: Deaths,
    drifts: Drifts,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

fn without_status<K: Resource>(object: &K) -> serde_json::Value {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        // A Cargo's `status.build` is the builder's, and the Cargo controller's input (the
        // image to run): its change is no status-only change.
        let build = map.get("status").and_then(|s| s.get("build")).cloned();
        map.remove("status");
        if let Some(build) = build {
            map.insert("build".to_owned(), build);
        }
        if let Some(meta) = map
            .get_mut("metadata")
            .and_then(serde_json::Value::as_object_mut)
        {
            meta.remove("resourceVersion");
        }
    }
    value
}

/// Everything one cache's task needs.
struct Feed<S> {
    store: S,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    changes: broadcast::Sender<Change>,
}

/// Starts the watcher and the cache of `K`, its task tracked in `tasks`.
fn watch_kind<K: Cached, S: Store + Clone>(feed: &Feed<S>, tasks: &mut Tasks) -> Reader<K> {
    watch_indexed(feed, tasks, None)
}

/// `watch_kind`, with `index` kept up to date by the cache's writer.
fn watch_indexed<K: Cached, S: Store + Clone>(
    feed: &Feed<S>,
    tasks: &mut Tasks,
    index: Option<Arc<dyn reflector::Index<K>>>,
) -> Reader<K> {
    let kind = K::KIND;
    let decode: reflector::Decode<K> = Arc::new(|kv: &KeyValue| {
        let object = objects::decode(kv).map_err(|e| e.to_string())?.object;
        K::from_any(object).ok_or_else(|| format!("the stored object is not a {}", K::KIND))
    });
    let (reader, writer) = reflector::cache(decode);
    let writer = match index {
        Some(index) => writer.with_index(index),
        None => writer,
    };
    let Feed {
        store,
        metrics,
        shutdown,
        changes,
    } = feed;
    let (store, metrics, mut shutdown, changes) = (
        store.clone(),
        metrics.clone(),
        shutdown.clone(),
        changes.clone(),
    );
    let mut events = watcher::watcher(store.clone(), keys::kind_prefix(kind, None));
    let cache = reader.clone();
    tasks.spawn(format!("{kind} watcher"), async move {
        loop {
            let event = tokio::select! {
                e = events.next() => match e { Some(e) => e, None => return },
                _ = shutdown.wait_for(|v| *v) => return,
            };
            let touched: Vec<(String, Option<Entry<K>>)> = match &event {
                Event::Restarted(items) => {
                    let mut keys: Vec<String> = cache.keys();
                    keys.extend(items.iter().map(|kv| kv.key.clone()));
                    keys.sort();
                    keys.dedup();
                    keys.into_iter().map(|k| (k, None)).collect()
                }
                Event::Applied(kv) => vec![(kv.key.clone(), cache.entry(&kv.key))],
                Event::Deleted { key, .. } => vec![(key.clone(), cache.entry(key))],
                Event::Failed(failure) => {
                    tracing::warn!(%kind, error = %failure, "the store watch failed");
                    Vec::new()
                }
            };
            writer.apply(&event);
            for (key, before) in touched {
                let now = cache.entry(&key);
                report_undecodable(&store, kind, before.as_ref(), now.as_ref());
                let before = match before {
                    Some(Entry::Object(o)) => Some(o),
                    _ => None,
                };
                let object = match now {
                    Some(Entry::Object(o)) => Some(o),
                    _ => None,
                };
                let status_only = match (&before, &object) {
                    (Some(b), Some(a)) => without_status(&**b) == without_status(&**a),
                    _ => false,
                };
                let placement_changed = match (&before, &object) {
                    (Some(b), Some(a)) => b.placement() != a.placement(),
                    _ => true,
                };
                let _ = changes.send(Change {
                    kind,
                    exists: object.is_some(),
                    cluster: object
                        .as_deref()
                        .and_then(Cached::cluster)
                        .map(str::to_owned),
                    cargo: object
                        .as_deref()
                        .or(before.as_deref())
                        .and_then(Cached::cargo)
                        .map(str::to_owned),
                    key,
                    status_only,
                    placement_changed,
                });
            }
            metrics.set_undecodable(kind, cache.undecodable_count());
        }
    });
    reader
}

/// The keys of the objects of `reader` in cluster `cluster` of namespace `namespace`.
pub fn in_cluster<K: Cached>(reader: &Reader<K>, namespace: &str, cluster: &str) -> Vec<String> {
    reader
        .list_under(&keys::kind_prefix(K::KIND, Some(namespace)))
        .iter()
        .filter(|o| o.cluster() == Some(cluster))
        .map(|o| ObjectRef::of(&**o).store_key())
        .collect()
}

impl Hub {
    /// Starts a watcher and cache per kind, their tasks tracked in `tasks`.
    ///
    /// A stored value that does not decode stays in the cache as undecodable: it is logged
    /// with its key and error, recorded as an Event, and counted in `/metrics`
    /// (`nanocl_undecodable_objects`), and nothing that depends on it is touched.
    pub fn start<S: Store + Clone>(
        store: S,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
        tasks: &mut Tasks,
    ) -> Hub {
        let (changes, _) = broadcast::channel(4096);
        let feed = Feed {
            store,
            metrics,
            shutdown,
            changes: changes.clone(),
        };
        let loads = Arc::new(NodeLoads::default());
        Hub {
            namespaces: watch_kind(&feed, tasks),
            clusters: watch_kind(&feed, tasks),
            networks: watch_kind(&feed, tasks),
            secrets: watch_kind(&feed, tasks),
            cargoes: watch_kind(&feed, tasks),
            proxy_rules: watch_kind(&feed, tasks),
            nodes: watch_kind(&feed, tasks),
            replicas: watch_indexed(&feed, tasks, Some(loads.clone())),
            loads,
            changes,
            deaths: Deaths::default(),
            drifts: Drifts::default(),
        }
    }

    /// Per node, what the cached Replicas ask for (kept as they change).
    pub fn loads(&self) -> &NodeLoads {
        &self.loads
    }

    /// Every change the caches apply, from now on (the proxy rebuilds its routes on them).
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// What Docker's events said of containers ahead of its listings.
    pub fn deaths(&self) -> &Deaths {
        &self.deaths
    }

    /// The keys of the cargoes with `imagePullPolicy: Always` whose image is `image`.
    fn cargoes_pulling_always(&self, image: &str) -> Vec<String> {
        use nanocl_api_types::cargo::v1::ImagePullPolicy;
        let image = with_tag(image);
        self.cache::<CargoObject>()
            .list()
            .into_iter()
            .filter(|c| {
                c.spec.container.image_pull_policy == Some(ImagePullPolicy::Always)
                    && !c.spec.container.image.is_empty()
                    && with_tag(&c.spec.container.image) == image
            })
            .map(|c| ObjectRef::of(c.as_ref()).store_key())
            .collect()
    }

    /// What Docker's events said was done to our containers behind our back.
    pub fn drifts(&self) -> &Drifts {
        &self.drifts
    }

    /// The typed cache of `K`.
    pub fn cache<K: Cached>(&self) -> &Reader<K> {
        K::cache(self)
    }

    /// The cached object at `at`, `None` when absent or undecodable (see `exists`).
    pub fn get<K: Cached>(&self, at: &ObjectRef<K>) -> Option<Arc<K>> {
        self.cache::<K>().get(&at.store_key())
    }

    /// The cached object at store key `key` of `K` (a key as the runner hands it).
    pub fn get_key<K: Cached>(&self, key: &str) -> Option<Arc<K>> {
        self.get(&ObjectRef::<K>::parse(key)?)
    }

    /// Whether anything is stored at `at`, decodable or not: what the garbage collector asks
    /// before it removes what belongs to it.
    pub fn exists<K: Cached>(&self, at: &ObjectRef<K>) -> bool {
        self.cache::<K>().contains(&at.store_key())
    }

    /// Every cached key of `kind`, the undecodable ones included.
    pub fn keys(&self, kind: Kind) -> Vec<String> {
        match kind {
            Kind::Namespace => self.namespaces.keys(),
            Kind::Cluster => self.clusters.keys(),
            Kind::Network => self.networks.keys(),
            Kind::Secret => self.secrets.keys(),
            Kind::Cargo => self.cargoes.keys(),
            Kind::ProxyRule => self.proxy_rules.keys(),
            Kind::Node => self.nodes.keys(),
            Kind::Replica => self.replicas.keys(),
        }
    }

    /// Waits until every cache holds its first list.
    pub async fn wait_ready(&self) {
        self.namespaces.clone().wait_ready().await;
        self.clusters.clone().wait_ready().await;
        self.networks.clone().wait_ready().await;
        self.secrets.clone().wait_ready().await;
        self.cargoes.clone().wait_ready().await;
        self.proxy_rules.clone().wait_ready().await;
        self.nodes.clone().wait_ready().await;
        self.replicas.clone().wait_ready().await;
    }

    /// The Replicas of cargo `cargo` in `namespace`, by slot.
    pub fn replicas_of(&self, namespace: &str, cargo: &str) -> Vec<Arc<ReplicaObject>> {
        let mut out: Vec<Arc<ReplicaObject>> = self
            .replicas
            .list_under(&keys::kind_prefix(Kind::Replica, Some(namespace)))
            .into_iter()
            .filter(|r| r.spec.cargo == cargo)
            .collect();
        out.sort_by_key(|r| r.spec.slot);
        out
    }

    /// The keys `kind`'s controller should reconcile, as changes happen.
    pub fn triggers(&self, kind: Kind) -> BoxStream<'static, String> {
        self.triggers_with(kind, None::<(crate::docker::FakeDocker, String, String)>)
    }

    /// The Cargo keys a node's replica runner should reconcile: changes of the objects, and
    /// the events of this node's Docker (`docker`, its objects of store `instance`).
    pub fn node_triggers<D: Docker>(
        &self,
        docker: D,
        instance: String,
        node: String,
    ) -> BoxStream<'static, String> {
        self.triggers_with(Kind::Cargo, Some((docker, instance, node)))
    }

    fn triggers_with<D: Docker>(
        &self,
        kind: Kind,
        docker_events: Option<(D, String, String)>,
    ) -> BoxStream<'static, String> {
        let node = docker_events.as_ref().map(|(_, _, node)| node.clone());
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let mut feed = self.changes.subscribe();
        // Everything that exists now, first: a controller that starts after its objects (a
        // restarted nanocld) must not wait for a change or the periodic resync. Subscribed
        // above, so nothing falls between.
        for key in self.keys(kind) {
            let _ = tx.send(key);
        }
        let hub = self.clone();
        let sender = tx.clone();
        // Both tasks end with the stream: they hold the hub (every cache), so a controller
        // that stops must not leave them waiting for a change or a Docker event.
        tokio::spawn(async move {
            loop {
                let received = tokio::select! {
                    received = feed.recv() => received,
                    () = sender.closed() => return,
                };
                let change = match received {
                    Ok(c) => c,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        for key in hub.keys(kind) {
                            let _ = sender.send(key);
                        }
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                for key in hub.related(kind, &change) {
                    if node
                        .as_deref()
                        .is_some_and(|node| !hub.concerns_node(&change, &key, node))
                    {
                        continue;
                    }
                    if sender.send(key).is_err() {
                        return;
                    }
                }
            }
        });
        if let Some((docker, instance, _)) = docker_events {
            let hub = self.clone();
            let (unlabelled, owner, to) = (docker.clone(), instance.clone(), tx.clone());
            let images = hub.clone();
            tokio::spawn(async move { forward_docker_events(hub, docker, instance, tx).await });
            tokio::spawn(async move { forward_unlabelled(images, unlabelled, owner, to).await });
        }
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
    }

    /// Whether `change` (which concerns cargo `key`) can ask anything of node `node`'s
    /// runner. A change of the cargo itself, or of its cluster, network or secret, cannot
    /// while none of the cargo's Replicas is placed on the node: the Replicas' own changes
    /// (placed, moved, deleted) trigger it. This spares a new cargo's runner the reconciles
    /// its creation and finalizer writes would start before its Replicas exist, each a
    /// container list that the real one would wait for. A deletion, a cargo being deleted
    /// or one this nanocld cannot decode always goes through.
    fn concerns_node(&self, change: &Change, key: &str, node: &str) -> bool {
        if change.kind == Kind::Replica || !change.exists {
            return true;
        }
        let Some(at) = ObjectRef::<CargoObject>::parse(key) else {
            return true;
        };
        let Some(cargo) = self.get(&at) else {
            return true;
        };
        if cargo.metadata.deletion_timestamp.is_some() {
            return true;
        }
        let namespace = cargo.metadata.namespace.as_deref().unwrap_or_default();
        self.replicas_of(namespace, &cargo.metadata.name)
            .iter()
            .any(|r| r.spec.node == node)
    }

    /// Which keys of `kind` a change concerns.
    fn related(&self, kind: Kind, change: &Change) -> Vec<String> {
        match (kind, change.kind) {
            // A Replica placed, moved, gone or reporting: its Cargo (the scheduler counts
            // it, the node's runner runs it).
            (Kind::Cargo, Kind::Replica) => {
                let (namespace, _) = keys::split_object_key(change.kind, &change.key);
                return match (namespace, &change.cargo) {
                    (Some(ns), Some(cargo)) => {
                        vec![ObjectRef::<CargoObject>::new(Some(&ns), cargo).store_key()]
                    }
                    _ => Vec::new(),
                };
            }
            // A node came, went, was cordoned or relabelled: every cargo may place anew.
            (Kind::Cargo, Kind::Node) if change.placement_changed => {
                return self.cargoes.keys();
            }
            _ => {}
        }
        if change.kind == kind {
            return if change.status_only {
                Vec::new()
            } else {
                vec![change.key.clone()]
            };
        }
        let (namespace, _) = keys::split_object_key(change.kind, &change.key);
        let Some(namespace) = namespace else {
            return Vec::new();
        };
        // A secret that changed, came or went: the cargoes of its namespace that use it.
        if (kind, change.kind) == (Kind::Cargo, Kind::Secret) {
            let (_, name) = keys::split_object_key(change.kind, &change.key);
            return self
                .cargoes
                .list()
                .into_iter()
                .filter(|c| {
                    c.metadata.namespace.as_deref() == Some(namespace.as_str())
                        && super::secrets::referenced(&c.spec.container).contains(&name)
                })
                .map(|c| ObjectRef::of(&*c).store_key())
                .collect();
        }
        if !change.exists {
            // Deletions of other kinds matter to parents waiting for their children.
            return match kind {
                Kind::Namespace => {
                    vec![ObjectRef::<NamespaceObject>::new(None, &namespace).store_key()]
                }
                _ => Vec::new(),
            };
        }
        // Across kinds a status change matters: a cluster whose network became ready is what
        // its cargoes were waiting for.
        let Some(cluster) = change.cluster.as_deref() else {
            return Vec::new();
        };
        match (kind, change.kind) {
            (Kind::Cargo, Kind::Cluster | Kind::Network) => {
                in_cluster(&self.cargoes, &namespace, cluster)
            }
            (Kind::Network, Kind::Cluster) => in_cluster(&self.networks, &namespace, cluster),
            _ => Vec::new(),
        }
    }
}

/// Logs, records as an Event and so reports a key that became undecodable (or a new
/// undecodable revision of it); says so once when it can be read again.
fn report_undecodable<S: Store + Clone, K>(
    store: &S,
    kind: Kind,
    before: Option<&Entry<K>>,
    now: Option<&Entry<K>>,
) {
    match (before, now) {
        (Some(Entry::Undecodable(old)), Some(Entry::Undecodable(new)))
            if old.revision == new.revision => {}
        (_, Some(Entry::Undecodable(u))) => {
            tracing::error!(
                key = %u.key,
                revision = u.revision,
                error = %u.error,
                "a stored object cannot be decoded; it is left as it is, and so are its containers and networks"
            );
            let Some(object) = keys::parse_object_key(kind, &u.key) else {
                return;
            };
            let (store, message) = (store.clone(), format!("this nanocld cannot decode the stored object: {}; its Docker objects are left as they are", u.error));
            tokio::spawn(async move {
                events::record_for(&store, &object, true, UNDECODABLE_REASON, message).await;
            });
        }
        (Some(Entry::Undecodable(u)), Some(Entry::Object(_))) => {
            tracing::info!(key = %u.key, "a stored object that could not be decoded is readable again");
        }
        _ => {}
    }
}

/// The Docker events label filters do not reach (`Docker::unlabelled_events`): a container
/// disconnected from a network triggers its Cargo when the container is ours (inspected to
/// know); an image tagged, pulled or loaded triggers the cargoes with `imagePullPolicy:
/// Always` that name it. The periodic resync covers a gap in this stream.
async fn forward_unlabelled<D: Docker>(
    hub: Hub,
    docker: D,
    instance: String,
    tx: mpsc::UnboundedSender<String>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        let mut events = docker.unlabelled_events();
        loop {
            let event = tokio::select! {
                event = events.next() => event,
                () = tx.closed() => return,
            };
            let Some(Ok(event)) = event else { break };
            backoff.reset();
            let keys = if event.kind == "image" {
                let Some(name) = event.labels.get("name") else {
                    continue;
                };
                hub.cargoes_pulling_always(name)
            } else {
                let Some(container) = event.labels.get("container") else {
                    continue;
                };
                let Ok(Some(c)) = docker.inspect_container(container).await else {
                    continue;
                };
                match (
                    c.labels.get(labels::INSTANCE) == Some(&instance),
                    c.labels.get(labels::NAMESPACE),
                    c.labels.get(labels::CARGO),
                ) {
                    (true, Some(ns), Some(cargo)) => {
                        vec![ObjectRef::<CargoObject>::new(Some(ns), cargo).store_key()]
                    }
                    _ => continue,
                }
            };
            for key in keys {
                if tx.send(key).is_err() {
                    return;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => {}
            () = tx.closed() => return,
        }
    }
}

/// `name:latest` for a name without a tag or digest, as Docker reads it.
fn with_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

/// Docker events are triggers: each maps to its Cargo by label. After any gap (the stream
/// ended) every cargo is reconciled, since events may have been missed.
async fn forward_docker_events<D: Docker>(
    hub: Hub,
    docker: D,
    instance: String,
    tx: mpsc::UnboundedSender<String>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let filters = OwnerFilter::instance(&instance).labels();
    loop {
        let mut events = docker.events(&filters);
        for key in hub.keys(Kind::Cargo) {
            if tx.send(key).is_err() {
                return;
            }
        }
        loop {
            let event = tokio::select! {
                event = events.next() => event,
                () = tx.closed() => return,
            };
            let Some(Ok(event)) = event else { break };
            tracing::debug!(action = %event.action, id = %event.id, "docker event");
            backoff.reset();
            hub.deaths.record(&event);
            hub.drifts.record(&event);
            if let (Some(ns), Some(cargo)) = (
                event.labels.get(labels::NAMESPACE),
                event.labels.get(labels::CARGO),
            ) {
                let key = ObjectRef::<CargoObject>::new(Some(ns), cargo).store_key();
                if tx.send(key.clone()).is_err() {
                    return;
                }
                // The event itself is what heals (the cargo controller reads listings
                // through `Deaths`); a look shortly after is only a safety net.
                if matches!(event.action.as_str(), "die" | "kill" | "stop" | "oom") {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        for delay in [500, 2000] {
                            tokio::time::sleep(Duration::from_millis(delay)).await;
                            if tx.send(key.clone()).is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        }
        tracing::warn!("the Docker event stream ended; re-listing and subscribing again");
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => {}
            () = tx.closed() => return,
        }
    }
}
