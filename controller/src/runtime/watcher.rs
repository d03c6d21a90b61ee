//! The watcher: list, then watch from the list's revision. A broken stream is resumed from
//! the last revision delivered; only a history that is gone (`Gone`) re-lists. An explicit
//! state machine, kube-runtime's shape: `Empty → Watching ⇄ Resuming`, `→ Empty` on Gone.

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
    /// The store failed; the watcher retries by itself (after a backoff), and says so, so
    /// that its caller can log, count or give up.
    Failed(WatchFailure),
}

/// What went wrong, and what the watcher does about it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WatchFailure {
    /// Listing failed; it is retried.
    #[error("listing {prefix} failed: {message}; retrying")]
    ListFailed {
        /// The watched prefix.
        prefix: String,
        /// The store's error.
        message: String,
    },
    /// The stream broke (or could not be opened); it is resumed after `revision`.
    #[error("watching {prefix} failed after revision {revision}: {message}; resuming")]
    WatchFailed {
        /// The watched prefix.
        prefix: String,
        /// The last revision delivered.
        revision: Revision,
        /// The store's error.
        message: String,
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
    /// Everything up to `revision` was delivered and the stream broke: watch again after it
    /// (kube-runtime's `InitListed`), without a re-list unless the history is gone.
    Resuming { revision: Revision },
}

/// The failure to report for a stream that broke after `revision`, once the backoff has passed.
async fn resume_later(
    prefix: &str,
    revision: Revision,
    message: String,
    backoff: &mut Backoff,
) -> Event {
    tokio::time::sleep(backoff.next_delay()).await;
    Event::Failed(WatchFailure::WatchFailed {
        prefix: prefix.to_owned(),
        revision,
        message,
    })
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
                                let failure = WatchFailure::ListFailed {
                                    prefix: prefix.clone(),
                                    message: e.to_string(),
                                };
                                tokio::time::sleep(backoff.next_delay()).await;
                                let event = Event::Failed(failure);
                                return Some((event, (store, prefix, State::Empty, backoff)));
                            }
                        };
                        // The list is delivered at once; the watch is opened by `Resuming`,
                        // so a failure to open it never throws the list away.
                        backoff.reset();
                        let next = State::Resuming {
                            revision: listed.revision,
                        };
                        return Some((
                            Event::Restarted(listed.items),
                            (store, prefix, next, backoff),
                        ));
                    }
                    State::Resuming { revision } => match store.watch(&prefix, revision).await {
                        Ok(stream) => state = State::Watching { stream, revision },
                        Err(StoreError::Gone { .. }) => {
                            tracing::info!(%prefix, revision, "watch history gone; re-listing");
                            state = State::Empty;
                        }
                        Err(e) => {
                            let event =
                                resume_later(&prefix, revision, e.to_string(), &mut backoff).await;
                            let next = State::Resuming { revision };
                            return Some((event, (store, prefix, next, backoff)));
                        }
                    },
                    State::Watching {
                        mut stream,
                        revision,
                    } => match stream.next().await {
                        Some(Ok(WatchEvent::Put { kv, .. })) => {
                            backoff.reset();
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
                            backoff.reset();
                            return Some((
                                Event::Deleted { key, prev },
                                (store, prefix, State::Watching { stream, revision }, backoff),
                            ));
                        }
                        // A bookmark does not move the resume point: on etcd 3.4 it can run
                        // ahead of events still to come (see `EtcdStore::pump`).
                        Some(Ok(WatchEvent::Progress { .. })) => {
                            state = State::Watching { stream, revision };
                        }
                        Some(Err(StoreError::Gone { .. })) => {
                            tracing::info!(%prefix, revision, "watch history gone; re-listing");
                            state = State::Empty;
                        }
                        Some(Err(e)) => {
                            let event =
                                resume_later(&prefix, revision, e.to_string(), &mut backoff).await;
                            let next = State::Resuming { revision };
                            return Some((event, (store, prefix, next, backoff)));
                        }
                        None => {
                            let message = "the stream ended".to_owned();
                            let event =
                                resume_later(&prefix, revision, message, &mut backoff).await;
                            let next = State::Resuming { revision };
                            return Some((event, (store, prefix, next, backoff)));
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
