//! The controllers against the in-memory store and `FakeDocker`: fast, deterministic checks of
//! the reconcile loop (the same loop the real-dockerd tests run end to end).

use std::time::Duration;

use nanocl_api_types::manifest::{decode_str, DecodeOptions};
use nanocl_controller::apiserver::objects;
use nanocl_controller::controllers;
use nanocl_controller::docker::{Docker, FakeDocker, State};
use nanocl_controller::store::{keys, EmbeddedOptions, EmbeddedStore, Store, StoreError};

const IMAGE: &str = "nanocl-test/busybox:latest";

async fn put(store: &EmbeddedStore, yaml: &str) {
    let decoded = decode_str("t.yaml", yaml, &DecodeOptions::default());
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    for mut m in decoded.manifests {
        // As the API server would: every stored object has a generation.
        m.object.metadata_mut().generation = Some(1);
        let key = keys::object_key(&m.object.key());
        let bytes = objects::encode(&m.object).expect("encode");
        // The controllers write status and finalizers meanwhile: retry on a conflict.
        loop {
            let written = match store.get(&key).await.expect("get") {
                Some(kv) => store
                    .update(&key, bytes.clone(), kv.mod_revision)
                    .await
                    .map(drop),
                None => store.create(&key, bytes.clone()).await.map(drop),
            };
            match written {
                Ok(()) => break,
                Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => continue,
                Err(e) => panic!("put {key}: {e}"),
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

/// Stores the cluster `dev` and the cargo `web` of `replicas`, and starts the controllers.
async fn start_on(
    store: &EmbeddedStore,
    docker: &FakeDocker,
    replicas: u32,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<Result<(), controllers::RunError>>,
) {
    put(
        store,
        "apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {name: dev}\n",
    )
    .await;
    put(store, &cargo(replicas, IMAGE)).await;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(controllers::run(
        store.clone(),
        docker.clone(),
        Default::default(),
        Default::default(),
        shutdown,
    ));
    (stop, run)
}

fn cargo(replicas: u32, image: &str) -> String {
    format!("apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: web}}\nspec:\n  cluster: dev\n  replicas: {replicas}\n  container:\n    image: {image}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controllers_should_converge_heal_and_scale_on_the_fake() {
    let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store");
    let docker = FakeDocker::with_images(&[IMAGE]);
    let (stop, run) = start_on(&store, &docker, 2).await;

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

    // Killed again, and Docker's listing still says "running" (as dockerd's does for a
    // moment after `die`): the event alone heals it.
    let before = running(&docker).await;
    let restarts = |calls: Vec<String>| {
        calls
            .iter()
            .filter(|c| c.starts_with("start_container"))
            .count()
    };
    let started = restarts(docker.calls());
    docker.kill_ahead_of_the_listing(&before[1], 137);
    eventually(
        "the replica killed behind the listing started again",
        || async { restarts(docker.calls()) > started },
    )
    .await;
    assert_eq!(running(&docker).await, before);

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

    // Status written by the controller (from the node's reports, a moment after the
    // containers), without bumping generation.
    let object = || async {
        let kv = store
            .get("cargoes/global/web")
            .await
            .expect("get")
            .expect("present");
        serde_json::from_slice::<serde_json::Value>(&kv.value).expect("json")
    };
    eventually("3 ready in the status", || async {
        object().await["status"]["readyReplicas"] == 3
    })
    .await;
    let object = object().await;
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
    let (stop, run) = start_on(&store, &docker, 1).await;
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

/// Stores `key` again with an extra field under `spec.container`, as a newer nanocld (or a
/// downgrade) would leave it: this version cannot decode it.
async fn store_with_an_unknown_field(store: &EmbeddedStore, key: &str) {
    loop {
        let kv = store.get(key).await.expect("get").expect("present");
        let mut value: serde_json::Value = serde_json::from_slice(&kv.value).expect("json");
        value["spec"]["container"]["futureField"] = serde_json::json!({"from": "a newer nanocld"});
        let bytes = serde_json::to_vec(&value).expect("json");
        match store.update(key, bytes, kv.mod_revision).await {
            Ok(_) => return,
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => panic!("update {key}: {e}"),
        }
    }
}

async fn call(router: &axum::Router, method: &str, path: &str) -> (u16, serde_json::Value) {
    use tower::ServiceExt;
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .body(axum::body::Body::empty())
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("answer");
    let status = response.status().as_u16();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_cargo_should_keep_its_containers_be_reported_listed_and_deletable() {
    let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store");
    nanocl_controller::apiserver::ensure_default_namespace(&store)
        .await
        .expect("global");
    let docker = FakeDocker::with_images(&[IMAGE]);
    put(
        &store,
        "apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {name: dev}\n",
    )
    .await;
    put(&store, &cargo(1, IMAGE)).await;
    // Resyncs and garbage collection every 100 ms: many of each in the waits below.
    let options = controllers::Options {
        resync: Duration::from_millis(100),
        gc_interval: Duration::from_millis(100),
        ..Default::default()
    };
    let metrics = std::sync::Arc::new(nanocl_controller::metrics::Metrics::default());
    let start = |shutdown| {
        tokio::spawn(controllers::run(
            store.clone(),
            docker.clone(),
            metrics.clone(),
            options.clone(),
            shutdown,
        ))
    };
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let run = start(shutdown);
    eventually("1 replica", || async { running(&docker).await.len() == 1 }).await;
    let before = running(&docker).await;

    store_with_an_unknown_field(&store, "cargoes/global/web").await;
    eventually("the undecodable cargo counted in /metrics", || async {
        metrics
            .render("embedded")
            .contains("nanocl_undecodable_objects{kind=\"Cargo\"} 1")
    })
    .await;
    eventually("an Undecodable event", || async {
        store
            .list("events/global/")
            .await
            .expect("list")
            .items
            .iter()
            .any(|kv| String::from_utf8_lossy(&kv.value).contains("\"reason\":\"Undecodable\""))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        running(&docker).await,
        before,
        "through resyncs and GC passes"
    );

    // A restart: the first list already holds the undecodable cargo.
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), run).await;
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let run = start(shutdown);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(running(&docker).await, before, "and after a restart");
    assert!(
        !docker
            .calls()
            .iter()
            .any(|c| c.starts_with("remove_container")),
        "nothing was removed: {:?}",
        docker.calls()
    );

    // The API lists it, marked, beside the others, and it can be deleted.
    let (app_stop, app_shutdown) = tokio::sync::watch::channel(false);
    let app = std::sync::Arc::new(nanocl_controller::apiserver::App {
        store: store.clone(),
        metrics: metrics.clone(),
        shutdown: app_shutdown,
        store_kind: "embedded",
        docker: None,
        audit: None,
    });
    let router = nanocl_controller::apiserver::router(app);
    put(&store, &cargo(1, IMAGE).replace("name: web", "name: other")).await;
    let (code, list) = call(
        &router,
        "GET",
        "/apis/nanocl.io/v1/namespaces/global/cargoes",
    )
    .await;
    assert_eq!(code, 200, "{list}");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{list}");
    let web = items
        .iter()
        .find(|i| i["metadata"]["name"] == "web")
        .expect("web listed");
    assert_eq!(
        web["status"]["conditions"][0]["reason"], "Undecodable",
        "{web}"
    );
    assert!(
        web["status"]["conditions"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("futureField")),
        "names the field it cannot read: {web}"
    );
    let (code, one) = call(
        &router,
        "GET",
        "/apis/nanocl.io/v1/namespaces/global/cargoes/web",
    )
    .await;
    assert_eq!(
        (code, &one["status"]["conditions"][0]["reason"]),
        (200, &"Undecodable".into())
    );
    let (code, deleted) = call(
        &router,
        "DELETE",
        "/apis/nanocl.io/v1/namespaces/global/cargoes/web",
    )
    .await;
    assert_eq!(code, 200, "{deleted}");
    assert!(store
        .get("cargoes/global/web")
        .await
        .expect("get")
        .is_none());
    // Deleted on purpose: now its replica goes.
    eventually("the deleted cargo's replica removed", || async {
        running(&docker).await.is_empty()
    })
    .await;
    let _ = app_stop.send(true);
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_down_should_record_one_event_for_all_it_removed() {
    let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store");
    let docker = FakeDocker::with_images(&[IMAGE]);
    let (stop, run) = start_on(&store, &docker, 12).await;
    eventually("12 replicas", || async {
        running(&docker).await.len() == 12
    })
    .await;
    put(&store, &cargo(2, IMAGE)).await;
    eventually("2 replicas", || async {
        docker
            .list_containers(&["io.nanocl.cargo=web".to_owned()])
            .await
            .expect("list")
            .len()
            == 2
    })
    .await;
    let kept = running(&docker).await;
    assert!(
        kept.iter()
            .all(|n| n.starts_with("web-0-") || n.starts_with("web-1-")),
        "the lowest slots stay: {kept:?}"
    );
    let removal = || async {
        store
            .list("events/global/")
            .await
            .expect("events")
            .items
            .iter()
            .filter_map(|kv| serde_json::from_slice::<serde_json::Value>(&kv.value).ok())
            .find(|e| e["reason"] == "ReplicasRemoved")
    };
    eventually("the removal's event", || async {
        removal().await.is_some()
    })
    .await;
    let removed = removal().await.expect("found");
    assert_eq!(
        removed["count"], 1,
        "one event for the whole scale-down: {removed}"
    );
    let message = removed["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("removed 10 containers: web-11-") && message.ends_with(" and 7 more"),
        "{message}"
    );
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), run).await;
}

/// The Ready condition of node `name`: (status, reason).
async fn node_ready(store: &EmbeddedStore, name: &str) -> (String, String) {
    let Some(kv) = store.get(&format!("nodes/{name}")).await.expect("get") else {
        return Default::default();
    };
    let node: serde_json::Value = serde_json::from_slice(&kv.value).expect("json");
    nanocl_e2e::condition(&node["status"], "Ready")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_should_register_go_not_ready_when_its_lease_ends_and_come_back() {
    use nanocl_controller::agent;
    let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store");
    let docker = FakeDocker::with_images(&[IMAGE]);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let (registered_tx, mut registered) = tokio::sync::watch::channel(false);
    let config = agent::Config {
        node: "host-1".into(),
        labels: [("zone".to_owned(), "a".to_owned())].into(),
        addresses: vec!["10.0.0.1".into()],
        proxy_relay: None,
        ttl: Duration::from_secs(1),
        identity: "host-1/1".into(),
        check: Duration::from_millis(200),
    };
    let agent_task = tokio::spawn(agent::run(
        store.clone(),
        docker.clone(),
        config,
        registered_tx,
        shutdown.clone(),
    ));
    tokio::time::timeout(Duration::from_secs(10), registered.wait_for(|r| *r))
        .await
        .expect("registered in time")
        .expect("the agent runs");
    let controllers = tokio::spawn(controllers::run(
        store.clone(),
        docker.clone(),
        Default::default(),
        Default::default(),
        shutdown.clone(),
    ));
    eventually("host-1 Ready", || async {
        node_ready(&store, "host-1").await == ("True".into(), "NodeReady".into())
    })
    .await;
    let kv = store
        .get("nodes/host-1")
        .await
        .expect("get")
        .expect("the node");
    let node: serde_json::Value = serde_json::from_slice(&kv.value).expect("json");
    assert_eq!(node["metadata"]["labels"]["zone"], "a");
    assert_eq!(node["status"]["capacity"]["cpus"], 2);
    assert_eq!(node["status"]["capacity"]["memoryBytes"], 8u64 << 30);
    assert_eq!(node["status"]["dockerVersion"], "fake");
    assert_eq!(node["status"]["addresses"][0], "10.0.0.1");

    // A Node without a nanocld keeping its lease (registered by hand, or its host gone):
    // NotReady, NodeLost, with an Event.
    put(
        &store,
        "apiVersion: nanocl.io/v1\nkind: Node\nmetadata: {name: host-2}\n",
    )
    .await;
    eventually("host-2 NotReady", || async {
        node_ready(&store, "host-2").await == ("False".into(), "NodeLost".into())
    })
    .await;
    let events = store.list("events/global/").await.expect("events");
    assert!(
        events
            .items
            .iter()
            .any(|kv| String::from_utf8_lossy(&kv.value).contains("NodeLost")),
        "a NodeLost event"
    );
    assert_eq!(
        node_ready(&store, "host-1").await.0,
        "True",
        "host-1 untouched"
    );

    // host-1's lease ended under it (its process paused past the TTL, say): the controller
    // marks it lost, the agent registers again and it is Ready again.
    let lease_key = "meta/node-leases/host-1";
    store
        .delete(lease_key, None)
        .await
        .expect("the lease key goes");
    eventually("host-1 NotReady", || async {
        node_ready(&store, "host-1").await.0 == "False"
    })
    .await;
    // The agent reads its lease key back, finds it gone, and registers again.
    eventually("host-1 Ready again", || async {
        node_ready(&store, "host-1").await.0 == "True"
            && store.get(lease_key).await.expect("get").is_some()
    })
    .await;
    // Its Node deleted (`nanocl delete node`): the agent registers it again.
    store
        .delete("nodes/host-1", None)
        .await
        .expect("the node goes");
    eventually("host-1 registered again", || async {
        node_ready(&store, "host-1").await.0 == "True"
    })
    .await;
    let _ = stop.send(true);
    let _ = agent_task.await.expect("no panic");
    let _ = controllers.await.expect("no panic");
    assert_eq!(
        store.get(lease_key).await.expect("get"),
        None,
        "a stopped agent leaves no lease key"
    );
}

/// Runs node `name`'s agent and replica runner on `docker`, until `shutdown`.
fn start_node(
    store: &EmbeddedStore,
    docker: &FakeDocker,
    name: &str,
    labels: &[(&str, &str)],
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    use nanocl_controller::agent;
    let config = agent::Config {
        node: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        addresses: Vec::new(),
        proxy_relay: None,
        ttl: Duration::from_secs(1),
        identity: format!("{name}/1"),
        check: Duration::from_millis(200),
    };
    let (store, docker, name) = (store.clone(), docker.clone(), name.to_owned());
    tokio::spawn(async move {
        let (registered, _) = tokio::sync::watch::channel(false);
        let options = controllers::Options {
            local_node: None,
            ..Default::default()
        };
        let metrics = std::sync::Arc::new(nanocl_controller::metrics::Metrics::default());
        let agent = agent::run(
            store.clone(),
            docker.clone(),
            config,
            registered,
            shutdown.clone(),
        );
        let runner = controllers::run_node(store, docker, name, metrics, options, shutdown);
        let _ = tokio::join!(agent, runner);
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_should_spread_follow_their_selector_and_move_off_a_lost_node() {
    let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store");
    let (a, b) = (
        FakeDocker::with_images(&[IMAGE]),
        FakeDocker::with_images(&[IMAGE]),
    );
    let (stop_a, shutdown_a) = tokio::sync::watch::channel(false);
    let (stop_all, shutdown) = tokio::sync::watch::channel(false);
    let node_a = start_node(&store, &a, "node-a", &[("zone", "a")], shutdown_a);
    let node_b = start_node(&store, &b, "node-b", &[("zone", "b")], shutdown.clone());
    // Both registered and Ready before anything is placed: nothing rebalances later.
    for node in ["node-a", "node-b"] {
        eventually(&format!("{node} Ready"), || async {
            node_ready(&store, node).await.0 == "True"
        })
        .await;
    }
    put(
        &store,
        "apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {name: dev}\n",
    )
    .await;
    put(&store, &cargo(4, IMAGE)).await;
    put(&store, &format!("apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: zoned}}\nspec:\n  cluster: dev\n  replicas: 2\n  placement: {{nodeSelector: {{zone: b}}}}\n  container:\n    image: {IMAGE}\n")).await;
    let leader = tokio::spawn(controllers::run(
        store.clone(),
        FakeDocker::with_images(&[IMAGE]),
        Default::default(),
        controllers::Options {
            local_node: None,
            ..Default::default()
        },
        shutdown.clone(),
    ));
    let on = |docker: &FakeDocker, cargo: &str| {
        docker.count(&[format!("io.nanocl.cargo={cargo}")], State::Running)
    };
    eventually("web spread 2/2", || async {
        on(&a, "web") == 2 && on(&b, "web") == 2
    })
    .await;
    eventually("zoned on node-b only", || async {
        on(&b, "zoned") == 2 && on(&a, "zoned") == 0
    })
    .await;
    let labels = a
        .list_containers(&["io.nanocl.cargo=web".to_owned()])
        .await
        .expect("list");
    assert!(
        labels
            .iter()
            .all(|c| c.labels.get("io.nanocl.node").map(String::as_str) == Some("node-a")),
        "each container names its node"
    );

    // node-a stops (its lease revoked): its replicas move to node-b; its containers stay
    // where they are (nothing reaches a lost node).
    let _ = stop_a.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), node_a).await;
    eventually("web's 4 on node-b", || async { on(&b, "web") == 4 }).await;
    eventually("web counts its 4 ready replicas", || async {
        let kv = store
            .get("cargoes/global/web")
            .await
            .expect("get")
            .expect("present");
        let o: serde_json::Value = serde_json::from_slice(&kv.value).expect("json");
        o["status"]["readyReplicas"] == 4 && o["status"]["replicas"] == 4
    })
    .await;

    // node-a back: what moved away is removed from it.
    let (_stop_a2, shutdown_a2) = tokio::sync::watch::channel(false);
    let node_a2 = start_node(&store, &a, "node-a", &[("zone", "a")], shutdown_a2);
    eventually("node-a's moved replicas removed", || async {
        a.list_containers(&["io.nanocl.cargo=web".to_owned()])
            .await
            .expect("list")
            .is_empty()
    })
    .await;
    assert_eq!(on(&b, "web"), 4, "exactly 4, on node-b");

    let _ = stop_all.send(true);
    node_a2.abort();
    let _ = tokio::time::timeout(Duration::from_secs(10), leader).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), node_b).await;
}

/// The calls listing cargo `cargo`'s containers (those of the node's runner, and of the
/// scheduler's placement when it looks).
fn listings_of(docker: &FakeDocker, cargo: &str) -> usize {
    let label = format!("io.nanocl.cargo={cargo}");
    docker
        .calls()
        .iter()
        .filter(|c| c.starts_with("list_containers ") && c.contains(&label))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cargo_should_wake_the_node_runner_only_once_its_replicas_are_placed() {
    let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store");
    let docker = FakeDocker::with_images(&[IMAGE]);
    let (stop, run) = start_on(&store, &docker, 1).await;
    eventually("the first cargo's replica", || async {
        running(&docker).await.len() == 1
    })
    .await;
    // A cargo of no replica: its creation and its finalizer's write are changes of the
    // cargo, and nothing of it is placed on the node.
    put(&store, &cargo(0, IMAGE).replace("name: web", "name: idle")).await;
    let finalized = || async {
        let kv = store.get("cargoes/global/idle").await.expect("get");
        kv.and_then(|kv| serde_json::from_slice::<serde_json::Value>(&kv.value).ok())
            .is_some_and(|c| {
                c["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty())
            })
    };
    eventually("the idle cargo's finalizer", finalized).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        listings_of(&docker, "idle"),
        0,
        "the node's runner listed a cargo with nothing placed on it: {:?}",
        docker.calls()
    );
    // Placed once it has a replica: the Replica's creation wakes the runner.
    put(&store, &cargo(2, IMAGE).replace("name: web", "name: idle")).await;
    eventually("the idle cargo's 2 replicas", || async {
        docker
            .list_containers(&["io.nanocl.cargo=idle".to_owned()])
            .await
            .expect("list")
            .len()
            == 2
    })
    .await;
    // Its deletion goes through as before: the containers go.
    store
        .delete("cargoes/global/idle", None)
        .await
        .expect("delete");
    eventually("the idle cargo's containers gone", || async {
        docker
            .list_containers(&["io.nanocl.cargo=idle".to_owned()])
            .await
            .expect("list")
            .is_empty()
    })
    .await;
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_placed_during_a_window_of_creations_should_join_it() {
    let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store");
    let docker = FakeDocker::with_images(&[IMAGE]);
    let (stop, run) = start_on(&store, &docker, 1).await;
    eventually("the first replica", || async {
        running(&docker).await.len() == 1
    })
    .await;
    let creations = |docker: &FakeDocker| {
        docker
            .calls()
            .iter()
            .filter(|c| c.starts_with("create_container web-"))
            .count()
    };
    // A first scale-up whose starts dockerd holds: its window stays open...
    docker.hold_starts();
    put(&store, &cargo(5, IMAGE)).await;
    eventually("the 4 new creations in flight", || async {
        creations(&docker) == 5
    })
    .await;
    // ...and a second one placed meanwhile joins it instead of waiting for it to drain.
    put(&store, &cargo(9, IMAGE)).await;
    eventually("the 8 new creations in flight", || async {
        creations(&docker) == 9
    })
    .await;
    docker.release_starts();
    eventually("9 replicas", || async { running(&docker).await.len() == 9 }).await;
    let created: Vec<String> = store
        .list("events/global/")
        .await
        .expect("events")
        .items
        .iter()
        .filter_map(|kv| serde_json::from_slice::<serde_json::Value>(&kv.value).ok())
        .filter(|e| e["reason"] == "ReplicasCreated")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        created.contains(&"created replica(s) 1, 2, 3, 4, 5, 6, 7, 8".to_owned()),
        "one window for both scale-ups: {created:?}"
    );
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), run).await;
}
