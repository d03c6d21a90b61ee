//! The conformance suite every `Store` must pass: the same assertions run against etcd, the
//! embedded file and the in-memory fake (see `controller/tests/store_*.rs`).
//!
//! Each check takes a fresh, empty store (or an isolated prefix of a shared one).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;

use super::{KeyValue, Revision, Store, StoreError, WatchEvent, WatchStream};

/// Longest wait for a watch event before a check fails.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The next non-progress event, or a panic naming what was awaited.
pub async fn next_change(stream: &mut WatchStream, what: &str) -> WatchEvent {
    loop {
        match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
            Err(_) => panic!("no watch event within {EVENT_TIMEOUT:?} while waiting for {what}"),
            Ok(None) => panic!("watch ended while waiting for {what}"),
            Ok(Some(Err(e))) => panic!("watch failed while waiting for {what}: {e}"),
            Ok(Some(Ok(WatchEvent::Progress { .. }))) => continue,
            Ok(Some(Ok(event))) => return event,
        }
    }
}

/// Asserts that no change arrives within `quiet`.
pub async fn assert_no_change(stream: &mut WatchStream, quiet: Duration) {
    let deadline = tokio::time::Instant::now() + quiet;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return,
            Ok(Some(Ok(WatchEvent::Progress { .. }))) => continue,
            Ok(other) => panic!("expected no change, got {other:?}"),
        }
    }
}

fn v(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// Create stores a new key once; a second create is refused with the current value.
pub async fn create_should_refuse_an_existing_key<S: Store>(store: &S) {
    store
        .writable()
        .await
        .expect("a store with room is writable");
    let kv = store.create("things/a", v("1")).await.expect("create");
    assert_eq!(kv.key, "things/a");
    assert_eq!(kv.value, v("1"));
    assert!(kv.mod_revision > 0);
    assert_eq!(kv.create_revision, kv.mod_revision);
    assert_eq!(store.get("things/a").await.expect("get"), Some(kv.clone()));
    match store.create("things/a", v("2")).await {
        Err(StoreError::AlreadyExists { key, current }) => {
            assert_eq!(key, "things/a");
            assert_eq!(*current, kv);
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        store.get("things/a").await.expect("get").map(|kv| kv.value),
        Some(v("1"))
    );
    assert_eq!(store.get("things/missing").await.expect("get"), None);
}

/// Update needs the current revision; a stale one gets Conflict with the current value.
pub async fn update_should_require_the_current_revision<S: Store>(store: &S) {
    let first = store.create("things/u", v("1")).await.expect("create");
    let second = store
        .update("things/u", v("2"), first.mod_revision)
        .await
        .expect("update");
    assert!(second.mod_revision > first.mod_revision);
    assert_eq!(second.create_revision, first.create_revision);
    match store.update("things/u", v("3"), first.mod_revision).await {
        Err(StoreError::Conflict {
            key,
            expected,
            current,
        }) => {
            assert_eq!(key, "things/u");
            assert_eq!(expected, first.mod_revision);
            assert_eq!(current.map(|c| *c), Some(second.clone()));
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(store.get("things/u").await.expect("get"), Some(second));
    for expected in [1, 0] {
        // 0 is the "revision" of a missing key in etcd: update must still not create it.
        match store.update("things/none", v("1"), expected).await {
            Err(StoreError::NotFound { key }) => assert_eq!(key, "things/none"),
            other => panic!("expected NotFound for revision {expected}, got {other:?}"),
        }
    }
    assert_eq!(store.get("things/none").await.expect("get"), None);
}

/// Delete with a revision needs it current; without one it deletes whatever is there.
pub async fn delete_should_require_the_current_revision<S: Store>(store: &S) {
    let first = store.create("things/d", v("1")).await.expect("create");
    let second = store
        .update("things/d", v("2"), first.mod_revision)
        .await
        .expect("update");
    match store.delete("things/d", Some(first.mod_revision)).await {
        Err(StoreError::Conflict { current, .. }) => {
            assert_eq!(current.map(|c| *c), Some(second.clone()))
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    let deleted = store
        .delete("things/d", Some(second.mod_revision))
        .await
        .expect("delete");
    assert_eq!(deleted.prev, second);
    assert!(deleted.revision > second.mod_revision);
    assert_eq!(store.get("things/d").await.expect("get"), None);
    assert!(matches!(
        store.delete("things/d", None).await,
        Err(StoreError::NotFound { .. })
    ));

    store.create("things/e", v("1")).await.expect("create");
    let gone = store
        .delete("things/e", None)
        .await
        .expect("unconditional delete");
    assert_eq!(gone.prev.value, v("1"));
}

/// List returns exactly the keys under a prefix, sorted, with the read's revision.
pub async fn list_should_return_the_prefix_sorted_with_its_revision<S: Store>(store: &S) {
    for key in ["list/b", "list/a", "listx/c", "lis/d"] {
        store.create(key, v(key)).await.expect("create");
    }
    let last = store.create("list/c", v("list/c")).await.expect("create");
    let list = store.list("list/").await.expect("list");
    let keys: Vec<&str> = list.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, vec!["list/a", "list/b", "list/c"]);
    assert!(list.revision >= last.mod_revision);
    assert_eq!(store.list("nothing/").await.expect("list").items, vec![]);
}

/// Every write takes the next revision of one counter shared by all keys.
pub async fn revisions_should_increase_across_keys<S: Store>(store: &S) {
    let mut last = 0;
    for i in 0..10 {
        let kv = store
            .create(&format!("rev/{i}"), v("x"))
            .await
            .expect("create");
        assert!(
            kv.mod_revision > last,
            "revision {} after {last}",
            kv.mod_revision
        );
        last = kv.mod_revision;
        // Others may write to the same store (etcd is shared by the suite): at least ours.
        let current = store.current_revision().await.expect("current revision");
        assert!(
            current >= last,
            "current revision {current} before our write {last}"
        );
    }
}

/// A watch from the list's revision sees create, update and delete in order, with the
/// previous values, and nothing from other prefixes.
pub async fn watch_should_deliver_changes_in_order_with_previous_values<S: Store>(store: &S) {
    let start = store.list("w/").await.expect("list").revision;
    let mut stream = store.watch("w/", start).await.expect("watch");
    let created = store.create("w/a", v("1")).await.expect("create");
    store
        .create("other/a", v("x"))
        .await
        .expect("create elsewhere");
    let updated = store
        .update("w/a", v("2"), created.mod_revision)
        .await
        .expect("update");
    let deleted = store.delete("w/a", None).await.expect("delete");

    assert_eq!(
        next_change(&mut stream, "the create").await,
        WatchEvent::Put {
            kv: created.clone(),
            prev: None
        }
    );
    assert_eq!(
        next_change(&mut stream, "the update").await,
        WatchEvent::Put {
            kv: updated.clone(),
            prev: Some(created)
        }
    );
    assert_eq!(
        next_change(&mut stream, "the delete").await,
        WatchEvent::Delete {
            key: "w/a".into(),
            revision: deleted.revision,
            prev: Some(updated)
        }
    );
    assert_no_change(&mut stream, Duration::from_millis(300)).await;
}

/// A watch from a past revision replays exactly the changes after it, then goes live.
pub async fn watch_should_replay_history_after_a_revision<S: Store>(store: &S) {
    let a = store.create("h/a", v("1")).await.expect("create");
    let b = store
        .update("h/a", v("2"), a.mod_revision)
        .await
        .expect("update");
    let c = store.create("h/b", v("3")).await.expect("create");
    let mut stream = store.watch("h/", a.mod_revision).await.expect("watch");
    assert_eq!(
        next_change(&mut stream, "the update").await.revision(),
        b.mod_revision
    );
    assert_eq!(
        next_change(&mut stream, "the second create")
            .await
            .revision(),
        c.mod_revision
    );
    let d = store.create("h/c", v("4")).await.expect("create");
    assert_eq!(
        next_change(&mut stream, "the live create").await.revision(),
        d.mod_revision
    );
}

/// Dropping a watch and resuming from the last delivered revision loses nothing and repeats
/// nothing.
pub async fn watch_should_resume_without_gap_or_duplicate<S: Store>(store: &S) {
    let start = store.list("r/").await.expect("list").revision;
    let mut stream = store.watch("r/", start).await.expect("watch");
    let mut written = Vec::new();
    for i in 0..5 {
        written.push(
            store
                .create(&format!("r/{i}"), v("x"))
                .await
                .expect("create")
                .mod_revision,
        );
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next_change(&mut stream, "an early event").await.revision());
    }
    drop(stream);
    for i in 5..10 {
        written.push(
            store
                .create(&format!("r/{i}"), v("x"))
                .await
                .expect("create")
                .mod_revision,
        );
    }
    let mut resumed = store
        .watch("r/", *seen.last().expect("three seen"))
        .await
        .expect("watch again");
    while seen.len() < written.len() {
        seen.push(
            next_change(&mut resumed, "a resumed event")
                .await
                .revision(),
        );
    }
    assert_eq!(seen, written);
    assert_no_change(&mut resumed, Duration::from_millis(300)).await;
}

/// After `compact`, a watch from before the compacted revision is `Gone`; from after, it works.
pub async fn watch_should_be_gone_after_compaction<S: Store>(store: &S) {
    let a = store.create("c/a", v("1")).await.expect("create");
    let b = store
        .update("c/a", v("2"), a.mod_revision)
        .await
        .expect("update");
    let c = store
        .update("c/a", v("3"), b.mod_revision)
        .await
        .expect("update");
    store.compact(c.mod_revision).await.expect("compact");
    // Gone comes from `watch` itself, before any stream: the API answers 410, not 200.
    let outcome = store.watch("c/", a.mod_revision).await.map(|_| "a stream");
    match outcome {
        Err(StoreError::Gone { requested, oldest }) => {
            assert_eq!(requested, a.mod_revision);
            assert!(
                oldest >= b.mod_revision,
                "oldest {oldest} must be past the compacted history"
            );
        }
        other => panic!("expected Gone, got {other:?}"),
    }
    let mut stream = store
        .watch("c/", c.mod_revision)
        .await
        .expect("watch from the compaction point");
    let d = store
        .update("c/a", v("4"), c.mod_revision)
        .await
        .expect("update");
    assert_eq!(
        next_change(&mut stream, "a change after compaction")
            .await
            .revision(),
        d.mod_revision
    );
}

/// Concurrent read-modify-write loops on one key: every increment lands exactly once.
pub async fn concurrent_writers_should_never_lose_an_update<S: Store + Clone>(store: &S) {
    const WRITERS: usize = 4;
    const INCREMENTS: usize = 15;
    store.create("counter", v("0")).await.expect("create");
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut wins = Vec::new();
            while wins.len() < INCREMENTS {
                let kv = store.get("counter").await.expect("get").expect("present");
                let n: usize = String::from_utf8_lossy(&kv.value)
                    .parse()
                    .expect("a number");
                match store
                    .update("counter", (n + 1).to_string().into_bytes(), kv.mod_revision)
                    .await
                {
                    Ok(new) => wins.push(new.mod_revision),
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => panic!("update failed: {e}"),
                }
            }
            wins
        }));
    }
    let mut revisions = Vec::new();
    for task in tasks {
        revisions.extend(task.await.expect("writer task"));
    }
    let total = revisions.len();
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(revisions.len(), total, "two writers won the same revision");
    let kv = store.get("counter").await.expect("get").expect("present");
    assert_eq!(
        String::from_utf8_lossy(&kv.value),
        (WRITERS * INCREMENTS).to_string()
    );
    assert_eq!(Some(&kv.mod_revision), revisions.last());
}

/// A burst of concurrent writes (what the embedded store commits together): each that
/// succeeds gets its own revision, one that fails its precondition fails alone, and a watch
/// sees exactly the successful ones, in revision order.
pub async fn a_burst_of_writes_should_each_get_a_revision_and_fail_alone<S: Store + Clone>(
    store: &S,
) {
    let taken = store.create("burst/taken", v("x")).await.expect("create");
    let before = store.current_revision().await.expect("revision");
    let mut watch = store.watch("burst/", before).await.expect("watch");
    let mut tasks = Vec::new();
    for i in 0..48 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            match i % 3 {
                0 | 1 => store
                    .create(&format!("burst/k{i:02}"), v("new"))
                    .await
                    .map(|kv| Some(kv.mod_revision)),
                _ if i % 2 == 0 => match store.create("burst/taken", v("again")).await {
                    Err(StoreError::AlreadyExists { .. }) => Ok(None),
                    other => panic!("a create of a taken key must fail alone, got {other:?}"),
                },
                _ => match store
                    .update("burst/taken", v("stale"), taken.mod_revision - 1)
                    .await
                {
                    Err(StoreError::Conflict { .. }) => Ok(None),
                    other => panic!("a stale update must fail alone, got {other:?}"),
                },
            }
        }));
    }
    let mut revisions = Vec::new();
    for task in tasks {
        if let Some(r) = task.await.expect("task").expect("write") {
            revisions.push(r);
        }
    }
    revisions.sort_unstable();
    assert_eq!(revisions.len(), 32, "every create of a new key succeeded");
    let mut unique = revisions.clone();
    unique.dedup();
    assert_eq!(unique, revisions, "two writes got the same revision");
    assert!(revisions[0] > before);
    let mut seen = Vec::new();
    for _ in 0..32 {
        match next_change(&mut watch, "the burst's puts").await {
            WatchEvent::Put { kv, prev: None } => seen.push(kv.mod_revision),
            other => panic!("only the new keys change, got {other:?}"),
        }
    }
    assert_eq!(
        seen, revisions,
        "the watch delivers them all, in revision order"
    );
    assert_no_change(&mut watch, Duration::from_millis(300)).await;
    let kv = store
        .get("burst/taken")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(kv.value, v("x"), "the failed writes changed nothing");
}

/// An idle watch gets progress events (bookmarks) at or past the last write.
pub async fn idle_watch_should_get_progress_events<S: Store>(store: &S) {
    let kv = store.create("p/a", v("1")).await.expect("create");
    let mut stream = store.watch("p/", kv.mod_revision).await.expect("watch");
    let progress = tokio::time::timeout(EVENT_TIMEOUT, async {
        match stream.next().await {
            Some(Ok(WatchEvent::Progress { revision })) => revision,
            Some(Ok(other)) => panic!("unexpected change {other:?}"),
            Some(Err(e)) => panic!("watch failed: {e}"),
            None => panic!("watch ended"),
        }
    })
    .await
    .expect("a progress event in time");
    assert!(progress >= kv.mod_revision);
}

/// One operation of the model-based test.
#[derive(Clone, Debug)]
pub enum ModelOp {
    /// Create key `k{0}`.
    Create(u8, u8),
    /// Update key `k{0}` with the current revision (`true`) or a stale one.
    Update(u8, u8, bool),
    /// Delete key `k{0}` with the current revision, a stale one, or none.
    Delete(u8, Option<bool>),
    /// Get key `k{0}`.
    Get(u8),
    /// List everything.
    List,
}

/// Runs `ops` against `store` and an in-memory model, checking every outcome, and finally
/// that a watch opened at the start delivered exactly the model's successful writes in order.
pub async fn check_against_model<S: Store>(store: &S, prefix: &str, ops: &[ModelOp]) {
    let start = store.list(prefix).await.expect("list").revision;
    let mut stream = store.watch(prefix, start).await.expect("watch");
    let mut model: BTreeMap<String, KeyValue> = BTreeMap::new();
    let mut log: Vec<(String, Option<Vec<u8>>, Revision)> = Vec::new();
    let mut last_revision = start;
    for op in ops {
        match op {
            ModelOp::Create(k, val) => {
                let key = format!("{prefix}k{k}");
                let result = store.create(&key, vec![*val]).await;
                match (model.get(&key), result) {
                    (None, Ok(kv)) => {
                        assert!(kv.mod_revision > last_revision);
                        last_revision = kv.mod_revision;
                        log.push((key.clone(), Some(kv.value.clone()), kv.mod_revision));
                        model.insert(key, kv);
                    }
                    (Some(existing), Err(StoreError::AlreadyExists { current, .. })) => {
                        assert_eq!(&*current, existing)
                    }
                    (m, r) => panic!("create {key}: model {m:?}, store {r:?}"),
                }
            }
            ModelOp::Update(k, val, fresh) => {
                let key = format!("{prefix}k{k}");
                let current = model.get(&key).cloned();
                let expected = match (&current, fresh) {
                    (Some(kv), true) => kv.mod_revision,
                    (Some(kv), false) => kv.mod_revision - 1,
                    (None, _) => last_revision,
                };
                let result = store.update(&key, vec![*val], expected).await;
                match (current, result) {
                    (Some(prev), Ok(kv)) if *fresh => {
                        assert!(kv.mod_revision > last_revision);
                        assert_eq!(kv.create_revision, prev.create_revision);
                        last_revision = kv.mod_revision;
                        log.push((key.clone(), Some(kv.value.clone()), kv.mod_revision));
                        model.insert(key, kv);
                    }
                    (Some(prev), Err(StoreError::Conflict { current, .. })) if !*fresh => {
                        assert_eq!(current.map(|c| *c), Some(prev));
                    }
                    (None, Err(StoreError::NotFound { .. })) => {}
                    (m, r) => panic!("update {key} (fresh {fresh}): model {m:?}, store {r:?}"),
                }
            }
            ModelOp::Delete(k, fresh) => {
                let key = format!("{prefix}k{k}");
                let current = model.get(&key).cloned();
                let expected = match (&current, fresh) {
                    (Some(kv), Some(true)) => Some(kv.mod_revision),
                    (Some(kv), Some(false)) => Some(kv.mod_revision - 1),
                    (None, Some(_)) => Some(last_revision),
                    (_, None) => None,
                };
                let result = store.delete(&key, expected).await;
                match (current, result) {
                    (Some(prev), Ok(deleted)) if *fresh != Some(false) => {
                        assert_eq!(deleted.prev, prev);
                        assert!(deleted.revision > last_revision);
                        last_revision = deleted.revision;
                        log.push((key.clone(), None, deleted.revision));
                        model.remove(&key);
                    }
                    (Some(prev), Err(StoreError::Conflict { current, .. }))
                        if *fresh == Some(false) =>
                    {
                        assert_eq!(current.map(|c| *c), Some(prev));
                    }
                    (None, Err(StoreError::NotFound { .. })) => {}
                    (m, r) => panic!("delete {key} ({fresh:?}): model {m:?}, store {r:?}"),
                }
            }
            ModelOp::Get(k) => {
                let key = format!("{prefix}k{k}");
                assert_eq!(
                    store.get(&key).await.expect("get").as_ref(),
                    model.get(&key),
                    "get {key}"
                );
            }
            ModelOp::List => {
                let list = store.list(prefix).await.expect("list");
                let expected: Vec<&KeyValue> = model.values().collect();
                assert_eq!(list.items.iter().collect::<Vec<_>>(), expected);
                assert!(list.revision >= last_revision);
            }
        }
    }
    for (key, value, revision) in &log {
        match next_change(&mut stream, "a logged write").await {
            WatchEvent::Put { kv, .. } => {
                assert_eq!(
                    (&kv.key, Some(&kv.value), kv.mod_revision),
                    (key, value.as_ref(), *revision)
                );
            }
            WatchEvent::Delete {
                key: k,
                revision: r,
                ..
            } => {
                assert_eq!((&k, None, r), (key, value.as_ref(), *revision));
            }
            WatchEvent::Progress { .. } => unreachable!("next_change skips progress"),
        }
    }
    assert_no_change(&mut stream, Duration::from_millis(100)).await;
}

/// Revoking a lease deletes exactly its keys (with watch events); the ended lease can no
/// longer be kept alive, revoked or given keys.
pub async fn leased_keys_should_go_when_their_lease_is_revoked<S: Store>(store: &S) {
    let lease = store
        .grant_lease(Duration::from_secs(30))
        .await
        .expect("grant");
    store.keep_alive(lease).await.expect("keep alive");
    let start = store.list("leased/").await.expect("list").revision;
    store
        .create_with_lease("leased/a", v("1"), lease)
        .await
        .expect("create a");
    store
        .create_with_lease("leased/b", v("2"), lease)
        .await
        .expect("create b");
    store.create("leased/c", v("3")).await.expect("create c");
    match store.create_with_lease("leased/a", v("x"), lease).await {
        Err(StoreError::AlreadyExists { .. }) => {}
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    let mut watch = store.watch("leased/", start).await.expect("watch");
    for what in ["put a", "put b", "put c"] {
        assert!(matches!(
            next_change(&mut watch, what).await,
            WatchEvent::Put { .. }
        ));
    }
    store.revoke_lease(lease).await.expect("revoke");
    let mut deleted = Vec::new();
    for what in ["delete of a", "delete of b"] {
        match next_change(&mut watch, what).await {
            WatchEvent::Delete { key, prev, .. } => {
                assert!(prev.is_some(), "the delete carries the value it removed");
                deleted.push(key);
            }
            other => panic!("expected a delete, got {other:?}"),
        }
    }
    deleted.sort();
    assert_eq!(deleted, ["leased/a", "leased/b"]);
    assert_no_change(&mut watch, Duration::from_millis(300)).await;
    let keys: Vec<String> = store
        .list("leased/")
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(keys, ["leased/c"], "the key without the lease stays");
    for outcome in [
        store.keep_alive(lease).await,
        store.revoke_lease(lease).await,
        store
            .create_with_lease("leased/d", v("4"), lease)
            .await
            .map(drop),
    ] {
        match outcome {
            Err(StoreError::LeaseNotFound { lease: l }) => assert_eq!(l, lease),
            other => panic!("expected LeaseNotFound, got {other:?}"),
        }
    }
    assert_eq!(
        store.get("leased/d").await.expect("get"),
        None,
        "nothing stored"
    );
}

/// A lease kept alive keeps its keys, an update keeps a key's lease, and a lease no longer
/// kept alive ends within about its TTL, deleting its keys with watch events.
pub async fn leased_keys_should_go_when_their_lease_expires<S: Store>(store: &S) {
    let lease = store
        .grant_lease(Duration::from_secs(1))
        .await
        .expect("grant");
    let kv = store
        .create_with_lease("expiring/a", v("1"), lease)
        .await
        .expect("create");
    let updated = store
        .update("expiring/a", v("2"), kv.mod_revision)
        .await
        .expect("update");
    let mut watch = store
        .watch("expiring/", updated.mod_revision)
        .await
        .expect("watch");
    // Kept alive over three seconds, more than the TTL (etcd's minimum is 2 s).
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        store.keep_alive(lease).await.expect("keep alive");
    }
    assert_eq!(
        store
            .get("expiring/a")
            .await
            .expect("get")
            .map(|kv| kv.value),
        Some(v("2")),
        "a lease kept alive keeps its keys"
    );
    let stopped = tokio::time::Instant::now();
    match next_change(&mut watch, "the expiry of the lease").await {
        WatchEvent::Delete { key, .. } => assert_eq!(key, "expiring/a"),
        other => panic!("expected the key's delete, got {other:?}"),
    }
    assert!(
        stopped.elapsed() >= Duration::from_millis(900),
        "not before its TTL: {:?}",
        stopped.elapsed()
    );
    assert_eq!(store.get("expiring/a").await.expect("get"), None);
    match store.keep_alive(lease).await {
        Err(StoreError::LeaseNotFound { .. }) => {}
        other => panic!("expected LeaseNotFound, got {other:?}"),
    }
}

/// Generates one `#[tokio::test]` per conformance check. `$make` is an async expression
/// returning `(store, guard)`; the guard (a temp dir, say) lives until the check ends.
#[macro_export]
macro_rules! store_conformance_tests {
    ($make:expr) => {
        $crate::store_conformance_tests!(@each $make;
            create_should_refuse_an_existing_key,
            update_should_require_the_current_revision,
            delete_should_require_the_current_revision,
            list_should_return_the_prefix_sorted_with_its_revision,
            revisions_should_increase_across_keys,
            watch_should_deliver_changes_in_order_with_previous_values,
            watch_should_replay_history_after_a_revision,
            watch_should_resume_without_gap_or_duplicate,
            concurrent_writers_should_never_lose_an_update,
            a_burst_of_writes_should_each_get_a_revision_and_fail_alone,
            idle_watch_should_get_progress_events,
            leased_keys_should_go_when_their_lease_is_revoked,
            leased_keys_should_go_when_their_lease_expires,
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = $make.await;
                $crate::store::conformance::$name(&store).await;
            }
        )*
    };
}
