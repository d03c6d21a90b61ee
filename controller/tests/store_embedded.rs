//! The embedded store: the conformance suite on a real file and in memory, history trimming,
//! the model-based property test, durability across `kill -9`, and the lock against a second
//! process.

mod support;

use std::io::{BufRead, BufReader};
use std::time::Duration;

use nanocl_controller::store::conformance;
use nanocl_controller::store::{EmbeddedOptions, EmbeddedStore, Store, StoreError};
use proptest::prelude::*;

fn options() -> EmbeddedOptions {
    EmbeddedOptions {
        progress_interval: Duration::from_millis(200),
        ..EmbeddedOptions::default()
    }
}

async fn on_disk() -> (EmbeddedStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(&dir.path().join("store.redb"), options()).expect("open");
    (store, dir)
}

mod file {
    use super::*;
    nanocl_controller::store_conformance_tests!(on_disk());

    #[tokio::test]
    async fn watch_should_be_gone_after_compaction() {
        let (store, _dir) = on_disk().await;
        conformance::watch_should_be_gone_after_compaction(&store).await;
    }
}

mod memory {
    use super::*;
    async fn in_memory() -> (EmbeddedStore, ()) {
        (EmbeddedStore::in_memory(options()).expect("in memory"), ())
    }
    nanocl_controller::store_conformance_tests!(in_memory());

    #[tokio::test]
    async fn watch_should_be_gone_after_compaction() {
        let (store, ()) = in_memory().await;
        conformance::watch_should_be_gone_after_compaction(&store).await;
    }
}

#[tokio::test]
async fn bounded_history_should_answer_gone_for_trimmed_revisions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(
        &dir.path().join("store.redb"),
        EmbeddedOptions {
            history: 5,
            ..options()
        },
    )
    .expect("open");
    let first = store.create("t/0", b"x".to_vec()).await.expect("create");
    for i in 1..10 {
        store
            .create(&format!("t/{i}"), b"x".to_vec())
            .await
            .expect("create");
    }
    match store.watch("t/", first.mod_revision).await {
        Err(StoreError::Gone { requested, oldest }) => {
            assert_eq!(requested, first.mod_revision);
            assert_eq!(
                oldest,
                first.mod_revision + 4,
                "the last 5 of 10 events are kept"
            );
        }
        other => panic!("expected Gone, got {:?}", other.map(|_| "a stream")),
    }
    let mut stream = store
        .watch("t/", first.mod_revision + 4)
        .await
        .expect("watch within history");
    for i in 5..10 {
        let event = conformance::next_change(&mut stream, "a kept event").await;
        assert_eq!(event.revision(), first.mod_revision + i);
    }
}

#[tokio::test]
async fn a_reopened_file_should_keep_data_revision_and_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.redb");
    let (a, b) = {
        let store = EmbeddedStore::open(&path, options()).expect("open");
        let a = store.create("k/a", b"1".to_vec()).await.expect("create");
        let b = store
            .update("k/a", b"2".to_vec(), a.mod_revision)
            .await
            .expect("update");
        (a, b)
    };
    let store = EmbeddedStore::open(&path, options()).expect("reopen");
    assert_eq!(store.get("k/a").await.expect("get"), Some(b.clone()));
    let c = store.create("k/b", b"3".to_vec()).await.expect("create");
    assert_eq!(
        c.mod_revision,
        b.mod_revision + 1,
        "the revision counter survives"
    );
    let mut stream = store.watch("k/", a.mod_revision).await.expect("watch");
    assert_eq!(
        conformance::next_change(&mut stream, "the update")
            .await
            .revision(),
        b.mod_revision
    );
}

/// Opens the file again, waiting out the old store's lease thread, which may hold it for a
/// moment after the store is dropped.
async fn reopen(path: &std::path::Path) -> EmbeddedStore {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        match EmbeddedStore::open(path, options()) {
            Ok(store) => return store,
            Err(StoreError::StoreLocked { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("reopen: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_should_survive_a_reopen_with_a_full_ttl_then_expire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.redb");
    let lease = {
        let store = EmbeddedStore::open(&path, options()).expect("open");
        let lease = store
            .grant_lease(Duration::from_secs(2))
            .await
            .expect("grant");
        store
            .create_with_lease("leased/a", b"1".to_vec(), lease)
            .await
            .expect("create");
        lease
    };
    let store = reopen(&path).await;
    assert!(
        store.get("leased/a").await.expect("get").is_some(),
        "a reopened store keeps its leases and their keys"
    );
    store.keep_alive(lease).await.expect("the lease lives on");
    let start = store.current_revision().await.expect("revision");
    let mut stream = store.watch("leased/", start).await.expect("watch");
    match conformance::next_change(&mut stream, "the expiry").await {
        nanocl_controller::store::WatchEvent::Delete { key, .. } => assert_eq!(key, "leased/a"),
        other => panic!("expected the delete, got {other:?}"),
    }
    // A lease granted after the reopen does not reuse the old ID.
    let next = store
        .grant_lease(Duration::from_secs(2))
        .await
        .expect("grant");
    assert!(
        next > lease,
        "lease IDs are never reused: {next} after {lease}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_should_match_the_model(ops in support::model_ops(40)) {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let (store, _dir) = on_disk().await;
            conformance::check_against_model(&store, "m/", &ops).await;
        });
    }
}

/// Child role: writes keys forever, printing each acknowledged revision.
#[tokio::test]
async fn child_writer() {
    if std::env::var(support::CHILD_ROLE).as_deref() != Ok("writer") {
        return;
    }
    let path = std::env::var("NANOCL_TEST_CHILD_ARG").expect("path");
    let store = EmbeddedStore::open(path.as_ref(), options()).expect("open");
    for i in 0.. {
        let kv = store
            .create(&format!("ack/{i:06}"), i.to_string().into_bytes())
            .await
            .expect("create");
        println!("ACK {i} {}", kv.mod_revision);
    }
}

#[test]
fn acknowledged_writes_should_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.redb");
    let mut child = support::spawn_child("child_writer", "writer", &path);
    let stdout = child.stdout.take().expect("piped");
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("line");
        // libtest prints "test child_writer ... " before the test's own first line.
        if let Some(rest) = line.split_once("ACK ").map(|(_, rest)| rest) {
            let (i, rev) = rest.split_once(' ').expect("ACK i rev");
            acked.push((
                i.parse::<u64>().expect("i"),
                rev.parse::<i64>().expect("rev"),
            ));
            if acked.len() == 200 {
                break;
            }
        }
    }
    child.kill().expect("kill -9");
    child.wait().expect("reaped");

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let store = EmbeddedStore::open(&path, options()).expect("reopen after kill -9");
        for (i, rev) in &acked {
            let kv = store
                .get(&format!("ack/{i:06}"))
                .await
                .expect("get")
                .expect("acknowledged write present");
            assert_eq!(kv.mod_revision, *rev);
        }
        let list = store.list("ack/").await.expect("list");
        assert!(list.items.len() >= acked.len());
    });
}

/// Child role: opens the store and waits to be killed.
#[tokio::test]
async fn child_holder() {
    if std::env::var(support::CHILD_ROLE).as_deref() != Ok("holder") {
        return;
    }
    let path = std::env::var("NANOCL_TEST_CHILD_ARG").expect("path");
    let _store = EmbeddedStore::open(path.as_ref(), options()).expect("open");
    println!("HOLDING");
    tokio::time::sleep(Duration::from_secs(120)).await;
}

#[test]
fn a_second_process_should_get_a_clear_error_naming_the_file_and_holder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.redb");
    let mut child = support::spawn_child("child_holder", "holder", &path);
    let stdout = child.stdout.take().expect("piped");
    let holding = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.ends_with("HOLDING"));
    assert!(holding, "the child opened the store");
    let err = EmbeddedStore::open(&path, options()).expect_err("the file is held");
    let message = err.to_string();
    assert!(matches!(err, StoreError::StoreLocked { .. }), "{err:?}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(
        message.contains(&format!("process {}", child.id())),
        "{message}"
    );
    child.kill().expect("kill");
    child.wait().expect("reaped");
    EmbeddedStore::open(&path, options()).expect("free again once the holder is gone");
}
