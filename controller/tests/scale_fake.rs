//! Scale on the fake runtime, as CI runs it: 1,000 cargoes in 100 namespaces (each with its
//! cluster) reconciled from scratch by the real controllers over `FakeDocker`, on the embedded
//! store and on the dev environment's etcd. What is asserted is behaviour, not speed (the
//! figures are `cargo bench -p nanocl-controller --bench scale`'s): exactly one running
//! replica per cargo, every cargo `Ready`, every cluster its own subnet, and a no-op resync of
//! everything writing nothing to the store.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use nanocl_api_types::manifest::{decode_str, DecodeOptions};
use nanocl_controller::controllers;
use nanocl_controller::docker::{Docker, FakeDocker, State};
use nanocl_controller::objects::{encode, lifecycle};
use nanocl_controller::store::{keys, EmbeddedOptions, EmbeddedStore, Store};
use serde_json::Value;
use support::dev_etcd;

const IMAGE: &str = "nanocl-test/busybox:latest";
const NAMESPACES: usize = 100;
const PER_NAMESPACE: usize = 10;
const CARGOES: usize = NAMESPACES * PER_NAMESPACE;
/// Only a bound against hanging forever; the bench measures the time.
const DEADLINE: Duration = Duration::from_secs(180);

async fn put<S: Store>(store: &S, yaml: &str) {
    let decoded = decode_str("scale.yaml", yaml, &DecodeOptions::default());
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    for m in decoded.manifests {
        let object = lifecycle::created(&m.object).expect("create");
        store
            .create(
                &keys::object_key(&object.key()),
                encode(&object).expect("encode"),
            )
            .await
            .expect("store");
    }
}

fn ready(object: &Value) -> bool {
    object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

async fn stored<S: Store>(store: &S, prefix: &str) -> Vec<Value> {
    store
        .list(prefix)
        .await
        .expect("list")
        .items
        .iter()
        .map(|kv| serde_json::from_slice(&kv.value).expect("json"))
        .collect()
}

async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not reached within {DEADLINE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn thousand_cargoes_should_converge_exactly_and_resync_without_writes<S>(store: S)
where
    S: Store + Clone,
{
    for n in 0..NAMESPACES {
        let mut yaml = format!(
            "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: ns{n}}}\n---\napiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: ns{n}}}\n"
        );
        for c in 0..PER_NAMESPACE {
            yaml.push_str(&format!("---\napiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: c{c}, namespace: ns{n}}}\nspec:\n  cluster: dev\n  container:\n    image: {IMAGE}\n    command: [sleep, \"3600\"]\n"));
        }
        put(&store, &yaml).await;
    }
    let docker = FakeDocker::with_images(&[IMAGE]);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let options = controllers::Options {
        resync: Duration::from_secs(2),
        ..Default::default()
    };
    let run = tokio::spawn(controllers::run(
        store.clone(),
        docker.clone(),
        std::sync::Arc::new(nanocl_controller::metrics::Metrics::default()),
        options,
        shutdown,
    ));
    let managed = ["io.nanocl.managed=true".to_owned()];
    until("a running replica for every cargo", || async {
        docker.count(&managed, State::Running) >= CARGOES
    })
    .await;
    until("every cargo Ready", || async {
        stored(&store, "cargoes/").await.iter().all(ready)
    })
    .await;

    // Exactly one container per cargo, named for it, all running.
    let containers = docker.list_containers(&managed).await.expect("list");
    assert_eq!(containers.len(), CARGOES, "one container per cargo");
    assert!(containers.iter().all(|c| c.state == State::Running));
    let owners: BTreeSet<(String, String)> = containers
        .iter()
        .map(|c| {
            (
                c.labels["io.nanocl.namespace"].clone(),
                c.labels["io.nanocl.cargo"].clone(),
            )
        })
        .collect();
    assert_eq!(owners.len(), CARGOES, "no cargo has two, none has none");
    // Every cluster its own subnet from the pool.
    let clusters = stored(&store, "clusters/").await;
    let subnets: BTreeSet<&str> = clusters
        .iter()
        .filter_map(|c| c["status"]["subnet"].as_str())
        .collect();
    assert_eq!(subnets.len(), NAMESPACES, "{clusters:?}");

    // Statuses and Events settle; then two full resyncs write nothing.
    let mut before = store.current_revision().await.expect("revision");
    let mut quiet = false;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let now = store.current_revision().await.expect("revision");
        if now == before {
            quiet = true;
            break;
        }
        before = now;
    }
    assert!(
        quiet,
        "the store kept being written with nothing to change (revision {before})"
    );
    let calls_before = docker.calls().len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        docker.calls().len() > calls_before + CARGOES,
        "the resyncs did run (they list each cargo's containers)"
    );
    assert_eq!(
        store.current_revision().await.expect("revision"),
        before,
        "a no-op resync of {CARGOES} cargoes writes nothing"
    );
    assert_eq!(docker.count(&managed, State::Running), CARGOES);

    let _ = stop.send(true);
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the controllers stop")
        .expect("join")
        .expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_thousand_cargoes_should_converge_exactly_and_resync_without_writes() {
    let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store");
    thousand_cargoes_should_converge_exactly_and_resync_without_writes(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_thousand_cargoes_should_converge_exactly_and_resync_without_writes() {
    let (store, _cleanup) = dev_etcd("scale").await;
    thousand_cargoes_should_converge_exactly_and_resync_without_writes(store).await;
}
