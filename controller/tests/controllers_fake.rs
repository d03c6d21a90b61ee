//! The controllers against the in-memory store and `FakeDocker`: fast, deterministic checks of
//! the reconcile loop (the same loop the real-dockerd tests run end to end).

use std::time::Duration;

use nanocl_api_types::manifest::{decode_str, DecodeOptions};
use nanocl_controller::apiserver::objects;
use nanocl_controller::controllers;
use nanocl_controller::docker::{Docker, FakeDocker, State};
use nanocl_controller::store::{keys, EmbeddedOptions, EmbeddedStore, Store};

const IMAGE: &str = "nanocl-test/busybox:latest";

async fn put(store: &EmbeddedStore, yaml: &str) {
    let decoded = decode_str("t.yaml", yaml, &DecodeOptions::default());
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    for mut m in decoded.manifests {
        // As the API server would: every stored object has a generation.
        m.object.metadata_mut().generation = Some(1);
        let key = keys::object_key(&m.object.key());
        let bytes = objects::encode(&m.object).expect("encode");
        match store.get(&key).await.expect("get") {
            Some(kv) => {
                store
                    .update(&key, bytes, kv.mod_revision)
                    .await
                    .expect("update");
            }
            None => {
                store.create(&key, bytes).await.expect("create");
            }
        }
    }
}

async fn running(docker: &FakeDocker) -> Vec<String> {
    let mut names: Vec<String> = docker
        .list_containers(&["io.nanocl.cargo=web".to_owned()])
        .await
        .expect("list")
        .into_iter()
        .filter(|c| c.state == State::Running)
        .map(|c| c.name)
        .collect();
    names.sort();
    names
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn cargo(replicas: u32, image: &str) -> String {
    format!("apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: web}}\nspec:\n  cluster: dev\n  replicas: {replicas}\n  container:\n    image: {image}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controllers_should_converge_heal_and_scale_on_the_fake() {
    let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store");
    let docker = FakeDocker::with_images(&[IMAGE]);
    put(
        &store,
        "apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {name: dev}\n",
    )
    .await;
    put(&store, &cargo(2, IMAGE)).await;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(controllers::run(store.clone(), docker.clone(), shutdown));

    eventually("2 replicas", || async { running(&docker).await.len() == 2 }).await;
    assert!(
        docker
            .calls()
            .iter()
            .any(|c| c == "create_network dev.global"),
        "the cluster's default network first"
    );

    // A killed replica comes back, under the same name.
    let before = running(&docker).await;
    docker.kill(&before[0], 137);
    eventually("the killed replica back", || async {
        running(&docker).await == before
    })
    .await;

    // Scaling and a spec change.
    put(&store, &cargo(3, IMAGE)).await;
    eventually("3 replicas", || async { running(&docker).await.len() == 3 }).await;
    docker.add_image("nanocl-test/busybox:v2");
    put(&store, &cargo(3, "nanocl-test/busybox:v2")).await;
    eventually("3 replicas of the new spec and none of the old", || async {
        let now = running(&docker).await;
        let all = docker
            .list_containers(&["io.nanocl.cargo=web".to_owned()])
            .await
            .expect("list");
        now.len() == 3 && all.len() == 3 && all.iter().all(|c| c.image == "nanocl-test/busybox:v2")
    })
    .await;

    // Status written by the controller, without bumping generation.
    let kv = store
        .get("cargoes/global/web")
        .await
        .expect("get")
        .expect("present");
    let object: serde_json::Value = serde_json::from_slice(&kv.value).expect("json");
    assert_eq!(object["status"]["readyReplicas"], 3, "{object}");
    assert_eq!(
        object["metadata"]["generation"], 1,
        "status writes never bump generation"
    );

    let _ = stop.send(true);
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("controllers stop")
        .expect("joined")
        .expect("ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_docker_should_be_retried_with_backoff_not_given_up() {
    let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store");
    let docker = FakeDocker::with_images(&[IMAGE]);
    docker.fail_next("create_container", "disk full");
    put(
        &store,
        "apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {name: dev}\n",
    )
    .await;
    put(&store, &cargo(1, IMAGE)).await;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(controllers::run(store.clone(), docker.clone(), shutdown));
    eventually("the replica after the failure", || async {
        running(&docker).await.len() == 1
    })
    .await;
    let creates = docker
        .calls()
        .iter()
        .filter(|c| c.starts_with("create_container"))
        .count();
    assert_eq!(
        creates,
        2,
        "one failed attempt, one retry: {:?}",
        docker.calls()
    );
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), run).await;
}
