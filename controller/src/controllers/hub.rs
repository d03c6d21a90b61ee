//! The hub: one watcher-fed cache per kind, and a feed of changes from which each controller
//! derives the keys to reconcile (its own objects, related objects, Docker events).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use nanocl_api_types::{AnyObject, Kind};
use tokio::sync::{broadcast, mpsc, watch};

use super::plan::labels;
use super::tasks::Tasks;
use super::{events, OwnerFilter};
use crate::backoff::Backoff;
use crate::docker::Docker;
use crate::metrics::Metrics;
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
    /// The object now (`None`: deleted).
    pub object: Option<Arc<AnyObject>>,
    /// Only `status` (and the resourceVersion) changed: the object's own controller wrote it
    /// and needs no new reconcile for it.
    pub status_only: bool,
}

/// The caches and the change feed.
#[derive(Clone)]
pub struct Hub {
    readers: HashMap<Kind, Reader<AnyObject>>,
    changes: broadcast::Sender<Change>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

fn without_status(object: &AnyObject) -> serde_json::Value {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
        if let Some(meta) = map
            .get_mut("metadata")
            .and_then(serde_json::Value::as_object_mut)
        {
            meta.remove("resourceVersion");
        }
    }
    value
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
        let mut readers = HashMap::new();
        for kind in Kind::ALL {
            let decode: reflector::Decode<AnyObject> = Arc::new(|kv: &KeyValue| {
                objects::decode(kv)
                    .map(|s| s.object)
                    .map_err(|e| e.to_string())
            });
            let (reader, writer) = reflector::cache(decode);
            readers.insert(kind, reader.clone());
            let changes = changes.clone();
            let mut shutdown = shutdown.clone();
            let mut events = watcher::watcher(store.clone(), keys::kind_prefix(kind, None));
            let store = store.clone();
            let metrics = metrics.clone();
            tasks.spawn(format!("{kind} watcher"), async move {
                loop {
                    let event = tokio::select! {
                        e = events.next() => match e { Some(e) => e, None => return },
                        _ = shutdown.wait_for(|v| *v) => return,
                    };
                    let touched: Vec<(String, Option<Entry<AnyObject>>)> = match &event {
                        Event::Restarted(items) => {
                            let mut keys: Vec<String> = reader.keys();
                            keys.extend(items.iter().map(|kv| kv.key.clone()));
                            keys.sort();
                            keys.dedup();
                            keys.into_iter().map(|k| (k, None)).collect()
                        }
                        Event::Applied(kv) => vec![(kv.key.clone(), reader.entry(&kv.key))],
                        Event::Deleted { key, .. } => vec![(key.clone(), reader.entry(key))],
                        Event::Failed(failure) => {
                            tracing::warn!(%kind, error = %failure, "the store watch failed");
                            Vec::new()
                        }
                    };
                    writer.apply(&event);
                    for (key, before) in touched {
                        let now = reader.entry(&key);
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
                            (Some(b), Some(a)) => without_status(b) == without_status(a),
                            _ => false,
                        };
                        let _ = changes.send(Change {
                            kind,
                            key,
                            object,
                            status_only,
                        });
                    }
                    metrics.set_undecodable(kind, reader.undecodable().len());
                }
            });
        }
        Hub { readers, changes }
    }

    /// Whether anything is stored at `key` of `kind`, decodable or not: what the garbage
    /// collector asks before it removes what belongs to that key.
    pub fn exists(&self, kind: Kind, key: &str) -> bool {
        self.reader(kind).contains(key)
    }

    /// The cache of `kind`.
    pub fn reader(&self, kind: Kind) -> Reader<AnyObject> {
        self.readers.get(&kind).cloned().unwrap_or_else(|| {
            // Every kind has a cache; an empty one is a safe answer for the impossible case.
            let decode: reflector::Decode<AnyObject> =
                Arc::new(|_: &KeyValue| Err("no cache".to_owned()));
            reflector::cache(decode).0
        })
    }

    /// Waits until every cache holds its first list.
    pub async fn wait_ready(&self) {
        for reader in self.readers.values() {
            let mut r = reader.clone();
            r.wait_ready().await;
        }
    }

    /// Keys of `kind` whose object satisfies `pick`.
    fn keys_where(&self, kind: Kind, pick: impl Fn(&AnyObject) -> bool) -> Vec<String> {
        let reader = self.reader(kind);
        reader
            .keys()
            .into_iter()
            .filter(|k| reader.get(k).is_some_and(|o| pick(&o)))
            .collect()
    }

    /// The keys `kind`'s controller should reconcile, as changes happen.
    pub fn triggers<D: Docker>(
        &self,
        kind: Kind,
        docker: D,
        instance: String,
    ) -> BoxStream<'static, String> {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let mut feed = self.changes.subscribe();
        // Everything that exists now, first: a controller that starts after its objects (a
        // restarted nanocld) must not wait for a change or the periodic resync. Subscribed
        // above, so nothing falls between.
        for key in self.reader(kind).keys() {
            let _ = tx.send(key);
        }
        let hub = self.clone();
        let sender = tx.clone();
        tokio::spawn(async move {
            loop {
                let change = match feed.recv().await {
                    Ok(c) => c,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        for key in hub.reader(kind).keys() {
                            let _ = sender.send(key);
                        }
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                for key in hub.related(kind, &change) {
                    if sender.send(key).is_err() {
                        return;
                    }
                }
            }
        });
        if kind == Kind::Cargo {
            let hub = self.clone();
            tokio::spawn(async move { forward_docker_events(hub, docker, instance, tx).await });
        }
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
    }

    /// Which keys of `kind` a change concerns.
    fn related(&self, kind: Kind, change: &Change) -> Vec<String> {
        if change.kind == kind {
            return if change.status_only {
                Vec::new()
            } else {
                vec![change.key.clone()]
            };
        }
        let Some(object) = change.object.as_ref() else {
            // Deletions of other kinds matter to parents waiting for their children.
            return match (kind, change.key.split('/').collect::<Vec<_>>().as_slice()) {
                (Kind::Namespace, [_, ns, _]) => vec![format!("namespaces/{ns}")],
                _ => Vec::new(),
            };
        };
        // Across kinds a status change matters: a cluster whose network became ready is what
        // its cargoes were waiting for.
        let ns = object.metadata().namespace.clone().unwrap_or_default();
        match (kind, &**object) {
            (Kind::Cargo, AnyObject::Cluster(cl)) => {
                let name = cl.metadata.name.clone();
                self.keys_where(Kind::Cargo, |o| matches!(o, AnyObject::Cargo(c) if c.spec.cluster == name && c.metadata.namespace.as_deref() == Some(&ns)))
            }
            (Kind::Cargo, AnyObject::Network(n)) => {
                let cluster = n.spec.cluster.clone();
                self.keys_where(Kind::Cargo, |o| matches!(o, AnyObject::Cargo(c) if c.spec.cluster == cluster && c.metadata.namespace.as_deref() == Some(&ns)))
            }
            (Kind::Network, AnyObject::Cluster(cl)) => {
                let name = cl.metadata.name.clone();
                self.keys_where(Kind::Network, |o| matches!(o, AnyObject::Network(n) if n.spec.cluster == name && n.metadata.namespace.as_deref() == Some(&ns)))
            }
            _ => Vec::new(),
        }
    }
}

/// Logs, records as an Event and so reports a key that became undecodable (or a new
/// undecodable revision of it); says so once when it can be read again.
fn report_undecodable<S: Store + Clone>(
    store: &S,
    kind: Kind,
    before: Option<&Entry<AnyObject>>,
    now: Option<&Entry<AnyObject>>,
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
        for key in hub.reader(Kind::Cargo).keys() {
            if tx.send(key).is_err() {
                return;
            }
        }
        while let Some(event) = events.next().await {
            let Ok(event) = event else { break };
            tracing::debug!(action = %event.action, id = %event.id, "docker event");
            backoff.reset();
            if let (Some(ns), Some(cargo)) = (
                event.labels.get(labels::NAMESPACE),
                event.labels.get(labels::CARGO),
            ) {
                let key = format!("cargoes/{ns}/{cargo}");
                if tx.send(key.clone()).is_err() {
                    return;
                }
                // Docker announces `die` a moment before its container list says "exited":
                // look again shortly after, so a dead replica is not taken for a live one.
                if matches!(event.action.as_str(), "die" | "kill" | "stop" | "oom") {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        for delay in [20, 100, 500, 2000] {
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
        tokio::time::sleep(backoff.next_delay()).await;
    }
}
