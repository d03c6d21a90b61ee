//! The reflector: a cache of decoded objects kept by one writer from watcher events, read
//! cheaply by many (`Arc` snapshots).
//!
//! A stored value that cannot be decoded (a field this version does not know, written by a
//! newer nanocld or left by a downgrade) is cached as `Undecodable`, never dropped: the key
//! exists, and whoever asks "is there an object here?" (the garbage collector) hears yes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use super::watcher::Event;
use crate::store::{KeyValue, Revision};

/// Turns a stored value into the cached type, or says why it cannot.
pub type Decode<T> = Arc<dyn Fn(&KeyValue) -> Result<T, String> + Send + Sync>;

/// A stored value that did not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undecodable {
    /// Its store key.
    pub key: String,
    /// Its revision.
    pub revision: Revision,
    /// Why it could not be decoded.
    pub error: String,
}

/// What the cache holds for a key.
#[derive(Debug)]
pub enum Entry<T> {
    /// The decoded object.
    Object(Arc<T>),
    /// A value that exists but cannot be decoded.
    Undecodable(Arc<Undecodable>),
}

impl<T> Clone for Entry<T> {
    fn clone(&self) -> Self {
        match self {
            Entry::Object(o) => Entry::Object(o.clone()),
            Entry::Undecodable(u) => Entry::Undecodable(u.clone()),
        }
    }
}

// Ordered, so that the objects of one namespace are one range (`list_under`).
type Map<T> = Arc<RwLock<BTreeMap<String, Entry<T>>>>;

/// Read side of the cache.
pub struct Reader<T> {
    objects: Map<T>,
    /// How many entries are undecodable (kept by the writer, so that counting them for
    /// `/metrics` after every event is not a scan of the cache).
    undecodable: Arc<AtomicUsize>,
    ready: watch::Receiver<bool>,
}

impl<T> Clone for Reader<T> {
    fn clone(&self) -> Self {
        Reader {
            objects: self.objects.clone(),
            undecodable: self.undecodable.clone(),
            ready: self.ready.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Reader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("ready", &*self.ready.borrow())
            .finish()
    }
}

/// A tally the writer keeps as objects come and go, so that a reader needing a sum over the
/// whole cache (the replicas on each node) does not scan it.
pub trait Index<T>: Send + Sync {
    /// `object` entered the cache.
    fn add(&self, object: &T);
    /// `object` left the cache (deleted, replaced by a newer version, or undecodable now).
    fn remove(&self, object: &T);
    /// The cache is rebuilt from scratch: forget everything.
    fn clear(&self);
}

/// The single writer.
pub struct Writer<T> {
    objects: Map<T>,
    undecodable: Arc<AtomicUsize>,
    ready: watch::Sender<bool>,
    decode: Decode<T>,
    index: Option<Arc<dyn Index<T>>>,
}

impl<T> std::fmt::Debug for Writer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

/// A new, empty cache.
pub fn cache<T>(decode: Decode<T>) -> (Reader<T>, Writer<T>) {
    let objects = Arc::new(RwLock::new(BTreeMap::new()));
    let undecodable = Arc::new(AtomicUsize::new(0));
    let (ready_tx, ready_rx) = watch::channel(false);
    (
        Reader {
            objects: objects.clone(),
            undecodable: undecodable.clone(),
            ready: ready_rx,
        },
        Writer {
            objects,
            undecodable,
            ready: ready_tx,
            decode,
            index: None,
        },
    )
}

impl<T> Writer<T> {
    /// Keeps `index` up to date with every event this writer applies from now on (set it
    /// before the first).
    pub fn with_index(mut self, index: Arc<dyn Index<T>>) -> Self {
        self.index = Some(index);
        self
    }

    fn index_entry(&self, entry: Option<&Entry<T>>, added: bool) {
        if let (Some(index), Some(Entry::Object(o))) = (&self.index, entry) {
            if added {
                index.add(o);
            } else {
                index.remove(o);
            }
        }
    }

    fn entry(&self, kv: &KeyValue) -> Entry<T> {
        match (self.decode)(kv) {
            Ok(o) => Entry::Object(Arc::new(o)),
            Err(error) => Entry::Undecodable(Arc::new(Undecodable {
                key: kv.key.clone(),
                revision: kv.mod_revision,
                error,
            })),
        }
    }

    /// Applies one watcher event.
    pub fn apply(&self, event: &Event) {
        let mut objects = self
            .objects
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bad = |e: &Entry<T>| usize::from(matches!(e, Entry::Undecodable(_)));
        match event {
            Event::Restarted(items) => {
                *objects = items
                    .iter()
                    .map(|kv| (kv.key.clone(), self.entry(kv)))
                    .collect();
                if let Some(index) = &self.index {
                    index.clear();
                    for entry in objects.values() {
                        self.index_entry(Some(entry), true);
                    }
                }
                let count = objects.values().map(bad).sum();
                self.undecodable.store(count, Ordering::Relaxed);
                let _ = self.ready.send(true);
            }
            Event::Applied(kv) => {
                let entry = self.entry(kv);
                let added = bad(&entry);
                self.index_entry(Some(&entry), true);
                let old = objects.insert(kv.key.clone(), entry);
                self.index_entry(old.as_ref(), false);
                self.adjust(added, old.as_ref().map_or(0, bad));
            }
            Event::Deleted { key, .. } => {
                let old = objects.remove(key);
                self.index_entry(old.as_ref(), false);
                self.adjust(0, old.as_ref().map_or(0, bad));
            }
            Event::Failed(_) => {}
        }
    }
}

impl<T> Writer<T> {
    fn adjust(&self, added: usize, removed: usize) {
        if added > removed {
            self.undecodable
                .fetch_add(added - removed, Ordering::Relaxed);
        } else if removed > added {
            self.undecodable
                .fetch_sub(removed - added, Ordering::Relaxed);
        }
    }
}

impl<T> Reader<T> {
    /// How many values could not be decoded (what `undecodable().len()` says, without the
    /// scan).
    pub fn undecodable_count(&self) -> usize {
        self.undecodable.load(Ordering::Relaxed)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry<T>>> {
        self.objects
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The decoded object at `key` (`None` when absent or undecodable: see `entry`).
    pub fn get(&self, key: &str) -> Option<Arc<T>> {
        match self.read().get(key) {
            Some(Entry::Object(o)) => Some(o.clone()),
            _ => None,
        }
    }

    /// What is stored at `key`, decoded or not.
    pub fn entry(&self, key: &str) -> Option<Entry<T>> {
        self.read().get(key).cloned()
    }

    /// Whether anything, decodable or not, is stored at `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.read().contains_key(key)
    }

    /// Every cached key, the undecodable ones included.
    pub fn keys(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Every decoded object.
    pub fn list(&self) -> Vec<Arc<T>> {
        self.list_under("")
    }

    /// Every decoded object whose key starts with `prefix` (one namespace's: a range, not a
    /// scan of the whole cache).
    pub fn list_under(&self, prefix: &str) -> Vec<Arc<T>> {
        self.read()
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(_, e)| match e {
                Entry::Object(o) => Some(o.clone()),
                Entry::Undecodable(_) => None,
            })
            .collect()
    }

    /// Every value that could not be decoded.
    pub fn undecodable(&self) -> Vec<Arc<Undecodable>> {
        let mut out: Vec<_> = self
            .read()
            .values()
            .filter_map(|e| match e {
                Entry::Undecodable(u) => Some(u.clone()),
                Entry::Object(_) => None,
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Waits until the first list has been applied.
    pub async fn wait_ready(&mut self) {
        let _ = self.ready.wait_for(|r| *r).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            create_revision: 1,
            mod_revision: 1,
        }
    }

    /// Values are strings; `bad` does not decode.
    fn strings() -> Decode<String> {
        Arc::new(|kv: &KeyValue| {
            String::from_utf8(kv.value.clone())
                .ok()
                .filter(|s| s != "bad")
                .ok_or_else(|| "unreadable".to_owned())
        })
    }

    #[tokio::test]
    async fn reflector_should_follow_restart_apply_and_delete() {
        let decode = strings();
        let (mut reader, writer) = cache(decode);
        writer.apply(&Event::Restarted(vec![kv("a", "1"), kv("b", "bad")]));
        reader.wait_ready().await;
        assert_eq!(reader.get("a").as_deref(), Some(&"1".to_owned()));
        assert_eq!(reader.get("b"), None, "an undecodable value is no object");
        assert!(reader.contains("b"), "but it is not absent either");
        assert_eq!(
            reader
                .undecodable()
                .iter()
                .map(|u| (u.key.as_str(), u.error.as_str()))
                .collect::<Vec<_>>(),
            vec![("b", "unreadable")]
        );
        assert_eq!(reader.undecodable_count(), 1);
        writer.apply(&Event::Applied(kv("a", "bad")));
        assert!(
            reader.contains("a") && reader.get("a").is_none(),
            "an update this version cannot read keeps the key"
        );
        assert_eq!(reader.undecodable_count(), 2, "counted without a scan");
        writer.apply(&Event::Applied(kv("a", "2")));
        assert_eq!(reader.get("a").as_deref(), Some(&"2".to_owned()));
        assert_eq!(reader.undecodable_count(), 1, "readable again");
        writer.apply(&Event::Deleted {
            key: "a".into(),
            prev: None,
        });
        assert_eq!(reader.keys(), vec!["b".to_owned()]);
        writer.apply(&Event::Deleted {
            key: "b".into(),
            prev: None,
        });
        assert_eq!(reader.undecodable_count(), 0);
        writer.apply(&Event::Restarted(vec![kv("b", "bad"), kv("c", "3")]));
        assert_eq!(reader.undecodable_count(), 1, "recounted at a restart");
        writer.apply(&Event::Restarted(vec![kv("c", "3")]));
        assert_eq!(
            reader.keys(),
            vec!["c".to_owned()],
            "a restart replaces everything"
        );
    }

    #[tokio::test]
    async fn list_under_should_return_one_namespace_and_no_neighbour() {
        let decode = strings();
        let (reader, writer) = cache(decode);
        writer.apply(&Event::Restarted(vec![
            kv("cargoes/a/x", "1"),
            kv("cargoes/a/y", "bad"),
            kv("cargoes/ab/z", "2"),
            kv("cargoes/a/z", "3"),
            kv("cargoes/b/w", "4"),
        ]));
        let under: Vec<String> = reader
            .list_under("cargoes/a/")
            .iter()
            .map(|s| (**s).clone())
            .collect();
        assert_eq!(under, vec!["1".to_owned(), "3".to_owned()]);
        assert!(reader.list_under("cargoes/c/").is_empty());
    }
}
