//! The reflector: a cache of decoded objects kept by one writer from watcher events, read
//! cheaply by many (`Arc` snapshots).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use super::watcher::Event;
use crate::store::KeyValue;

/// Turns a stored value into the cached type (`None`: skip it, e.g. unreadable).
pub type Decode<T> = Arc<dyn Fn(&KeyValue) -> Option<T> + Send + Sync>;

/// Read side of the cache.
pub struct Reader<T> {
    objects: Arc<RwLock<HashMap<String, Arc<T>>>>,
    ready: watch::Receiver<bool>,
}

impl<T> Clone for Reader<T> {
    fn clone(&self) -> Self {
        Reader {
            objects: self.objects.clone(),
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

/// The single writer.
pub struct Writer<T> {
    objects: Arc<RwLock<HashMap<String, Arc<T>>>>,
    ready: watch::Sender<bool>,
    decode: Decode<T>,
}

impl<T> std::fmt::Debug for Writer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

/// A new, empty cache.
pub fn cache<T>(decode: Decode<T>) -> (Reader<T>, Writer<T>) {
    let objects = Arc::new(RwLock::new(HashMap::new()));
    let (ready_tx, ready_rx) = watch::channel(false);
    (
        Reader {
            objects: objects.clone(),
            ready: ready_rx,
        },
        Writer {
            objects,
            ready: ready_tx,
            decode,
        },
    )
}

impl<T> Writer<T> {
    /// Applies one watcher event.
    pub fn apply(&self, event: &Event) {
        let mut objects = self
            .objects
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match event {
            Event::Restarted(items) => {
                *objects = items
                    .iter()
                    .filter_map(|kv| (self.decode)(kv).map(|o| (kv.key.clone(), Arc::new(o))))
                    .collect();
                let _ = self.ready.send(true);
            }
            Event::Applied(kv) => match (self.decode)(kv) {
                Some(o) => {
                    objects.insert(kv.key.clone(), Arc::new(o));
                }
                None => {
                    objects.remove(&kv.key);
                }
            },
            Event::Deleted { key, .. } => {
                objects.remove(key);
            }
        }
    }
}

impl<T> Reader<T> {
    /// The object at `key`.
    pub fn get(&self, key: &str) -> Option<Arc<T>> {
        self.objects
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Every cached key.
    pub fn keys(&self) -> Vec<String> {
        self.objects
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// Every cached object.
    pub fn list(&self) -> Vec<Arc<T>> {
        self.objects
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
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

    #[tokio::test]
    async fn reflector_should_follow_restart_apply_and_delete() {
        let decode: Decode<String> = Arc::new(|kv: &KeyValue| {
            String::from_utf8(kv.value.clone())
                .ok()
                .filter(|s| s != "skip")
        });
        let (mut reader, writer) = cache(decode);
        writer.apply(&Event::Restarted(vec![kv("a", "1"), kv("b", "skip")]));
        reader.wait_ready().await;
        assert_eq!(reader.get("a").as_deref(), Some(&"1".to_owned()));
        assert_eq!(reader.get("b"), None, "undecodable values are not cached");
        writer.apply(&Event::Applied(kv("a", "2")));
        assert_eq!(reader.get("a").as_deref(), Some(&"2".to_owned()));
        writer.apply(&Event::Deleted {
            key: "a".into(),
            prev: None,
        });
        assert!(reader.keys().is_empty());
        writer.apply(&Event::Restarted(vec![kv("c", "3")]));
        assert_eq!(
            reader.keys(),
            vec!["c".to_owned()],
            "a restart replaces everything"
        );
    }
}
