//! The etcd store: the conformance suite against the dev environment's etcd (each test under
//! its own prefix, removed afterwards), and against private etcd processes the tests that
//! compact, pause (SIGSTOP) or kill etcd.

mod support;

use std::time::Duration;

use futures::StreamExt;
use nanocl_controller::store::conformance;
use nanocl_controller::store::{EtcdOptions, EtcdStore, Store, StoreError, WatchEvent};
use proptest::prelude::*;
use support::{dev_etcd, dev_etcd_options, EtcdProcess, PrefixCleanup};

nanocl_controller::store_conformance_tests!(dev_etcd("store"));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_should_be_gone_after_a_real_compaction() {
    // Compaction is global to an etcd, so this test gets one of its own.
    let etcd = EtcdProcess::start().await;
    let store = EtcdStore::connect(etcd.options("/nanocl"))
        .await
        .expect("connect");
    conformance::watch_should_be_gone_after_compaction(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_should_be_stored_under_the_prefix_as_json_values() {
    let (store, _cleanup) = dev_etcd("store").await;
    store
        .create("namespaces/demo", br#"{"kind":"Namespace"}"#.to_vec())
        .await
        .expect("create");
    let raw = EtcdStore::connect(nanocl_controller::store::EtcdOptions {
        prefix: String::new(),
        ..dev_etcd_options("raw")
    })
    .await
    .expect("connect");
    let list = raw.list("").await.expect("list everything");
    assert!(
        list.items
            .iter()
            .any(|kv| kv.key.ends_with("store/namespaces/demo")
                && kv.value == br#"{"kind":"Namespace"}"#),
        "etcdctl get --prefix shows the key under the prefix"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_should_page_through_more_than_one_page_consistently() {
    let store = EtcdStore::connect(nanocl_controller::store::EtcdOptions {
        page_size: 7,
        ..dev_etcd_options("paged")
    })
    .await
    .expect("connect");
    let _cleanup2 = PrefixCleanup(store.clone());
    for i in 0..30 {
        store
            .create(&format!("p/{i:02}"), vec![b'x'; 10])
            .await
            .expect("create");
    }
    let list = store.list("p/").await.expect("list");
    let keys: Vec<String> = list.items.iter().map(|kv| kv.key.clone()).collect();
    let expected: Vec<String> = (0..30).map(|i| format!("p/{i:02}")).collect();
    assert_eq!(keys, expected);
}

#[tokio::test]
async fn an_etcd_not_listening_should_be_said_in_a_sentence() {
    // A port nothing listens on: bound, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let options = EtcdOptions {
        timeout: Duration::from_secs(1),
        ..EtcdOptions::new(vec![format!("127.0.0.1:{port}")])
    };
    let outcome = match EtcdStore::connect(options).await {
        Ok(store) => store.get("a").await.map(|_| ()),
        Err(e) => Err(e),
    };
    let Err(e) = outcome else {
        panic!("nothing listens on {port}");
    };
    assert!(e.is_transient(), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("etcd is not reachable (Connection refused")
            && text.contains("is it running at the --store address?"),
        "{text}"
    );
    assert!(!text.contains("tonic"), "no library internals: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_should_fail_at_their_deadline_when_etcd_is_stopped() {
    let etcd = EtcdProcess::start().await;
    let store = EtcdStore::connect(etcd.options("/nanocl"))
        .await
        .expect("connect");
    store.create("a", b"1".to_vec()).await.expect("create");
    etcd.signal("STOP");
    let outcome = tokio::time::timeout(Duration::from_secs(20), store.get("a")).await;
    let create =
        tokio::time::timeout(Duration::from_secs(20), store.create("b", b"2".to_vec())).await;
    etcd.signal("CONT");
    match outcome {
        Ok(Err(StoreError::DeadlineExceeded { op: "get", .. }))
        | Ok(Err(StoreError::EtcdRequestFailed { .. }))
        | Ok(Err(StoreError::EtcdUnreachable { .. })) => {}
        other => panic!("expected a deadline error from get, got {other:?}"),
    }
    assert!(
        matches!(create, Ok(Err(e)) if e.is_transient()),
        "create must fail, not hang"
    );
    // Once etcd runs again the same store works.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match store.get("a").await {
            Ok(Some(kv)) => {
                assert_eq!(kv.value, b"1");
                break;
            }
            other => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "etcd did not come back: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_should_resume_after_etcd_is_killed_and_restarted() {
    let mut etcd = EtcdProcess::start().await;
    let store = EtcdStore::connect(etcd.options("/nanocl"))
        .await
        .expect("connect");
    let start = store.list("w/").await.expect("list").revision;
    let mut stream = store.watch("w/", start).await.expect("watch");
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        acknowledged.push(
            store
                .create(&format!("w/{i:02}"), b"x".to_vec())
                .await
                .expect("create")
                .mod_revision,
        );
    }
    etcd.signal("KILL");
    // Writes while etcd is down fail; none of them is acknowledged.
    for i in 20..25 {
        assert!(store
            .create(&format!("w/{i:02}"), b"x".to_vec())
            .await
            .is_err());
    }
    etcd.restart().await;
    let mut written = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while written < 20 {
        match store
            .create(&format!("w/{:02}", 25 + written), b"x".to_vec())
            .await
        {
            Ok(kv) => {
                acknowledged.push(kv.mod_revision);
                written += 1;
            }
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "etcd did not come back: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let mut seen = Vec::new();
    while seen.len() < acknowledged.len() {
        seen.push(
            conformance::next_change(&mut stream, "an acknowledged write")
                .await
                .revision(),
        );
    }
    assert_eq!(
        seen, acknowledged,
        "every acknowledged write exactly once, in order"
    );
    for i in 0..20 {
        assert!(
            store
                .get(&format!("w/{i:02}"))
                .await
                .expect("get")
                .is_some(),
            "w/{i:02} survived"
        );
    }
    conformance::assert_no_change(&mut stream, Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_events_should_not_run_ahead_of_changes() {
    let (store, _cleanup) = dev_etcd("store").await;
    let start = store.list("b/").await.expect("list").revision;
    let mut stream = store.watch("b/", start).await.expect("watch");
    let kv = store.create("b/a", b"1".to_vec()).await.expect("create");
    let mut saw_change = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
            Ok(Some(Ok(WatchEvent::Progress { revision }))) => {
                if revision >= kv.mod_revision {
                    assert!(
                        saw_change,
                        "a bookmark past the write came before the write itself"
                    );
                    return;
                }
            }
            Ok(Some(Ok(_))) => saw_change = true,
            other => panic!("watch failed: {other:?}"),
        }
    }
    panic!("no progress event within 10 s");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_should_match_the_model(ops in support::model_ops(30)) {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let (store, _cleanup) = dev_etcd("store").await;
            conformance::check_against_model(&store, "m/", &ops).await;
        });
    }
}
