//! The watcher: list, then watch from the list's revision; re-list when the history is gone
//! or the watch fails (after a backoff). An explicit state machine: `Empty → Watching → Empty`.

use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;

use crate::backoff::Backoff;
use crate::store::{KeyValue, Revision, Store, StoreError, WatchEvent, WatchStream};

/// What the watcher reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A (re-)list: the complete current set, replacing anything known before.
    Restarted(Vec<KeyValue>),
    /// A key was created or updated.
    Applied(KeyValue),
    /// A key was deleted; `prev` is its last value.
    Deleted {
        /// The key.
        key: String,
        /// The value before the delete.
        prev: Option<KeyValue>,
    },
}

enum State {
    /// Nothing known: list next.
    Empty,
    /// Listed at some revision; streaming changes after it.
    Watching {
        stream: WatchStream,
        revision: Revision,
    },
}

/// Watches every key under `prefix`, forever, surviving store failures.
pub fn watcher<S: Store + Clone>(store: S, prefix: String) -> BoxStream<'static, Event> {
    let backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    futures::stream::unfold(
        (store, prefix, State::Empty, backoff),
        |(store, prefix, mut state, mut backoff)| async move {
            loop {
                match state {
                    State::Empty => {
                        let listed = match store.list(&prefix).await {
                            Ok(l) => l,
                            Err(e) => {
                                tracing::warn!(%prefix, error = %e, "list failed; retrying");
                                tokio::time::sleep(backoff.next_delay()).await;
                                continue;
                            }
                        };
                        match store.watch(&prefix, listed.revision).await {
                            Ok(stream) => {
                                backoff.reset();
                                let event = Event::Restarted(listed.items);
                                let next = State::Watching {
                                    stream,
                                    revision: listed.revision,
                                };
                                return Some((event, (store, prefix, next, backoff)));
                            }
                            Err(e) => {
                                tracing::warn!(%prefix, error = %e, "watch failed; re-listing");
                                tokio::time::sleep(backoff.next_delay()).await;
                                state = State::Empty;
                            }
                        }
                    }
                    State::Watching {
                        mut stream,
                        revision,
                    } => match stream.next().await {
                        Some(Ok(WatchEvent::Put { kv, .. })) => {
                            let revision = kv.mod_revision;
                            return Some((
                                Event::Applied(kv),
                                (store, prefix, State::Watching { stream, revision }, backoff),
                            ));
                        }
                        Some(Ok(WatchEvent::Delete {
                            key,
                            revision,
                            prev,
                        })) => {
                            return Some((
                                Event::Deleted { key, prev },
                                (store, prefix, State::Watching { stream, revision }, backoff),
                            ));
                        }
                        Some(Ok(WatchEvent::Progress { revision: r })) => {
                            state = State::Watching {
                                stream,
                                revision: r.max(revision),
                            };
                        }
                        Some(Err(StoreError::Gone { .. })) => {
                            tracing::info!(%prefix, revision, "watch history gone; re-listing");
                            state = State::Empty;
                        }
                        Some(Err(e)) => {
                            tracing::warn!(%prefix, error = %e, "watch broke; re-listing");
                            tokio::time::sleep(backoff.next_delay()).await;
                            state = State::Empty;
                        }
                        None => {
                            tokio::time::sleep(backoff.next_delay()).await;
                            state = State::Empty;
                        }
                    },
                }
            }
        },
    )
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EmbeddedOptions, EmbeddedStore};

    #[tokio::test]
    async fn watcher_should_list_then_stream_changes() {
        let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store");
        store.create("x/a", b"1".to_vec()).await.expect("create");
        let mut events = watcher(store.clone(), "x/".into());
        match events.next().await {
            Some(Event::Restarted(items)) => assert_eq!(
                items.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(),
                vec!["x/a"]
            ),
            other => panic!("expected Restarted, got {other:?}"),
        }
        let b = store.create("x/b", b"2".to_vec()).await.expect("create");
        assert_eq!(events.next().await, Some(Event::Applied(b.clone())));
        store.delete("x/b", None).await.expect("delete");
        assert_eq!(
            events.next().await,
            Some(Event::Deleted {
                key: "x/b".into(),
                prev: Some(b)
            })
        );
    }

    #[tokio::test]
    async fn watcher_should_deliver_every_change_of_a_burst() {
        let store = EmbeddedStore::in_memory(EmbeddedOptions {
            history: 2,
            ..EmbeddedOptions::default()
        })
        .expect("store");
        let mut events = watcher(store.clone(), "x/".into());
        assert_eq!(events.next().await, Some(Event::Restarted(vec![])));
        // A burst written faster than the watcher reads, with a history shorter than the
        // burst: every key arrives, as a change or in a re-list.
        for i in 0..10 {
            store
                .create(&format!("x/{i}"), b"v".to_vec())
                .await
                .expect("create");
        }
        let mut seen = std::collections::BTreeSet::new();
        while seen.len() < 10 {
            match events.next().await {
                Some(Event::Applied(kv)) => {
                    seen.insert(kv.key);
                }
                Some(Event::Restarted(items)) => seen.extend(items.into_iter().map(|kv| kv.key)),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}
