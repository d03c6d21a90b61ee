//! Scheduling at scale: 1,000 simulated nodes and 10,000 replicas (1,000 cargoes of 10, in 100
//! namespaces), placed by the real controllers (the leader's Cargo controller and scheduler)
//! and acknowledged by simulated agents, through the dev environment's etcd (under a unique
//! prefix, removed at the end) and, for comparison, the embedded store in memory.
//!
//! A simulated node is a Node object reporting `Ready` and a lease key bound to a lease this
//! process keeps alive, as an agent's would be. A simulated agent acknowledges each Replica
//! placed on a node by writing its status as a runner does (running, ready, the cargo's spec
//! hash). Prints the time to every Replica placed, to every one acknowledged, and to every
//! cargo reporting 10/10 ready; the spread (fewest and most replicas on one node); the
//! memory the controllers hold per object.
//!
//! `cargo bench -p nanocl-controller --bench schedule -- 200 2000` for 200 nodes and 2,000
//! replicas; `-- etcd` or `-- embedded` for one store.

use std::alloc::System;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cap::Cap;
use futures::StreamExt;
use nanocl_api_types::cargo::v1::Cargo;
use nanocl_api_types::cluster::v1::Cluster;
use nanocl_api_types::manifest::{decode_str, DecodeOptions};
use nanocl_api_types::replica::v1::{Replica, ReplicaStatus};
use nanocl_api_types::{AnyObject, Resource};
use nanocl_controller::controllers::{self, node::lease_key, plan, write::owners};
use nanocl_controller::docker::FakeDocker;
use nanocl_controller::objects::api::patch_status_any;
use nanocl_controller::objects::{decode, encode, lifecycle};
use nanocl_controller::store::{
    keys, EmbeddedOptions, EmbeddedStore, EtcdOptions, EtcdStore, Store, WatchEvent,
};

/// The system allocator, counting the bytes live.
#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

fn live_kib() -> f64 {
    ALLOCATOR.allocated() as f64 / 1024.0
}

const IMAGE: &str = "nanocl-test/busybox:latest";
const PER_CARGO: usize = 10;

fn decoded(yaml: &str) -> Vec<AnyObject> {
    let decoded = decode_str("schedule.yaml", yaml, &DecodeOptions::default());
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    decoded
        .manifests
        .into_iter()
        .map(|m| lifecycle::created(&m.object).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

async fn put<S: Store>(store: &S, object: &AnyObject) {
    let bytes = encode(object).unwrap_or_else(|e| panic!("{e}"));
    store
        .create(&keys::object_key(&object.key()), bytes)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Writes `count` Ready nodes, their lease keys on one lease kept alive by a task (stopped
/// with the returned sender).
async fn simulate_nodes<S: Store + Clone>(
    store: &S,
    count: usize,
) -> tokio::sync::watch::Sender<bool> {
    let lease = store
        .grant_lease(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("lease: {e}"));
    let writes: Vec<_> = (0..count)
        .map(|i| {
            let store = store.clone();
            async move {
                let name = format!("node-{i:04}");
                store
                    .create_with_lease(&lease_key(&name), b"{\"identity\":\"bench\"}".to_vec(), lease)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                let mut node = decoded(&format!(
                    "apiVersion: nanocl.io/v1\nkind: Node\nmetadata: {{name: {name}, labels: {{zone: z{}}}}}\n",
                    i % 3
                ))
                .remove(0);
                if let AnyObject::Node(n) = &mut node {
                    n.status = Some(serde_json::from_value(serde_json::json!({
                        "capacity": {"cpus": 8, "memoryBytes": 34359738368u64},
                        "conditions": [{"type": "Ready", "status": "True", "reason": "NodeReady"}],
                    })).unwrap_or_else(|e| panic!("{e}")));
                }
                put(&store, &node).await;
            }
        })
        .collect();
    futures::stream::iter(writes)
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let store = store.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(2)) => {
                    let _ = store.keep_alive(lease).await;
                }
                () = async { let _ = stopped.wait_for(|v| *v).await; } => {
                    let _ = store.revoke_lease(lease).await;
                    return;
                }
            }
        }
    });
    stop
}

/// Acknowledges every Replica placed after `after`, as the runner of its node would, until
/// `stop`: its status says it runs, ready, with the cargo's spec hash.
fn simulate_agents<S: Store + Clone>(
    store: S,
    after: i64,
    hashes: Arc<HashMap<(String, String), String>>,
    acked: Arc<std::sync::atomic::AtomicUsize>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut events = store
            .watch("replicas/", after)
            .await
            .unwrap_or_else(|e| panic!("watch: {e}"));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Replica>();
        let writer = {
            let (store, acked) = (store.clone(), acked.clone());
            tokio::spawn(async move {
                tokio_stream_of(rx)
                    .map(|replica| {
                        let (store, hashes, acked) = (store.clone(), hashes.clone(), acked.clone());
                        async move {
                            let ns = replica.metadata.namespace.clone().unwrap_or_default();
                            let status = ReplicaStatus {
                                node: Some(replica.spec.node.clone()),
                                container: Some(format!(
                                    "{}-{}",
                                    replica.spec.cargo, replica.spec.slot
                                )),
                                phase: Some("Running".into()),
                                ready: true,
                                containers: 1,
                                spec_hash: hashes.get(&(ns, replica.spec.cargo.clone())).cloned(),
                                reason: None,
                                message: None,
                                usage: None,
                                ..ReplicaStatus::default()
                            };
                            let patch = serde_json::to_value(&status).unwrap_or_default();
                            match patch_status_any(
                                &store,
                                &replica.into_any(),
                                &owners::REPLICA,
                                &patch,
                            )
                            .await
                            {
                                Ok(()) => {
                                    acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                }
                                Err(e) => println!("  ack failed: {e}"),
                            }
                        }
                    })
                    .buffer_unordered(64)
                    .collect::<Vec<()>>()
                    .await;
            })
        };
        loop {
            let event = tokio::select! {
                e = events.next() => e,
                () = async { let _ = stop.wait_for(|v| *v).await; } => break,
            };
            let Some(Ok(WatchEvent::Put { kv, .. })) = event else {
                continue;
            };
            let Ok(stored) = decode(&kv) else { continue };
            let Some(replica) = Replica::from_any(stored.object) else {
                continue;
            };
            let reported = replica
                .status
                .as_ref()
                .is_some_and(|s| s.node.as_deref() == Some(replica.spec.node.as_str()));
            if !reported && replica.metadata.deletion_timestamp.is_none() {
                let _ = tx.send(replica);
            }
        }
        drop(tx);
        let _ = writer.await;
    })
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Counts, from one list: Replicas placed, and cargoes reporting every replica ready.
async fn census<S: Store>(store: &S) -> (usize, usize, BTreeMap<String, usize>) {
    let replicas = store
        .list("replicas/")
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for kv in &replicas {
        if let Ok(stored) = decode(kv) {
            if let Some(r) = Replica::from_any(stored.object) {
                *per_node.entry(r.spec.node).or_default() += 1;
            }
        }
    }
    let cargoes = store
        .list("cargoes/")
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let ready = cargoes
        .iter()
        .filter_map(|kv| decode(kv).ok())
        .filter_map(|s| Cargo::from_any(s.object))
        .filter(|c| {
            c.status
                .as_ref()
                .is_some_and(|s| s.ready_replicas == PER_CARGO as i32)
        })
        .count();
    (replicas.len(), ready, per_node)
}

async fn run<S: Store + Clone>(label: &str, store: S, nodes: usize, replicas: usize) {
    let cargoes = replicas.div_ceil(PER_CARGO);
    let namespaces = cargoes.div_ceil(10);
    println!("\n== {nodes} simulated nodes, {replicas} replicas ({cargoes} cargoes of {PER_CARGO} in {namespaces} namespaces), {label}");
    let instance = controllers::instance_id(&store)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let stop_nodes = simulate_nodes(&store, nodes).await;
    println!(
        "  {nodes} nodes registered in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut hashes = HashMap::new();
    let mut objects = nodes;
    let written = Instant::now();
    for n in 0..namespaces {
        let mut yaml = format!(
            "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: ns{n}}}\n---\napiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: ns{n}}}\n"
        );
        for c in 0..10.min(cargoes - n * 10) {
            yaml.push_str(&format!("---\napiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: c{c}, namespace: ns{n}}}\nspec:\n  cluster: dev\n  replicas: {PER_CARGO}\n  container:\n    image: {IMAGE}\n    command: [sleep, \"3600\"]\n"));
        }
        let objs = decoded(&yaml);
        let cluster = objs.iter().find_map(|o| match o {
            AnyObject::Cluster(c) => Some(c.clone()),
            _ => None,
        });
        for o in &objs {
            if let AnyObject::Cargo(c) = o {
                let cluster: Option<&Cluster> = cluster.as_ref();
                let desired =
                    plan::render(c, cluster, &instance).unwrap_or_else(|e| panic!("{e:?}"));
                hashes.insert((format!("ns{n}"), c.metadata.name.clone()), desired.hash);
            }
            put(&store, o).await;
            objects += 1;
        }
    }
    println!(
        "  objects written in {:.1} s",
        written.elapsed().as_secs_f64()
    );
    let acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let from = store.current_revision().await.unwrap_or(0);
    let agents = simulate_agents(
        store.clone(),
        from,
        Arc::new(hashes),
        acked.clone(),
        shutdown.clone(),
    );
    let options = controllers::Options {
        resync: Duration::from_secs(600),
        local_node: None,
        ..Default::default()
    };
    let metrics = Arc::new(nanocl_controller::metrics::Metrics::default());
    let base = live_kib();
    let start = Instant::now();
    let run = tokio::spawn(controllers::run(
        store.clone(),
        FakeDocker::with_images(&[IMAGE]),
        metrics,
        options,
        shutdown,
    ));
    let limit = Duration::from_secs(300);
    let (mut placed_at, mut acked_at, mut ready_at) = (None, None, None);
    let mut last = (0, 0, BTreeMap::new());
    while start.elapsed() < limit && ready_at.is_none() {
        tokio::time::sleep(Duration::from_millis(250)).await;
        last = census(&store).await;
        if placed_at.is_none() && last.0 >= replicas {
            placed_at = Some(start.elapsed());
        }
        if acked_at.is_none() && acked.load(std::sync::atomic::Ordering::Relaxed) >= replicas {
            acked_at = Some(start.elapsed());
        }
        if last.1 >= cargoes {
            ready_at = Some(start.elapsed());
        }
    }
    let secs = |d: Option<Duration>| {
        d.map_or("not within 300 s".to_owned(), |d| {
            format!("{:.1} s", d.as_secs_f64())
        })
    };
    println!(
        "  every replica placed (a Replica object each) after {}",
        secs(placed_at)
    );
    println!(
        "  every replica acknowledged by its node after {} (goal < 20 s)",
        secs(acked_at)
    );
    println!(
        "  every cargo reporting {PER_CARGO}/{PER_CARGO} ready after {}",
        secs(ready_at)
    );
    let counts: Vec<usize> = last.2.values().copied().collect();
    println!(
        "  spread: {} nodes used, {}..{} replicas per node (even: {:.1})",
        counts.len(),
        counts.iter().min().unwrap_or(&0),
        counts.iter().max().unwrap_or(&0),
        replicas as f64 / nodes as f64
    );
    objects += replicas;
    let held = live_kib() - base;
    println!(
        "  memory: {:.2} KiB per object held by the controllers, their caches and the simulation ({objects} objects, {:.1} MiB)",
        held / objects as f64,
        held / 1024.0
    );
    let _ = stop.send(true);
    let _ = stop_nodes.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(30), run).await;
    let _ = tokio::time::timeout(Duration::from_secs(30), agents).await;
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let numbers: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let nodes = numbers.first().copied().unwrap_or(1_000);
    let replicas = numbers.get(1).copied().unwrap_or(10_000);
    let only = |name: &str| {
        let named = ["embedded", "etcd"];
        !args.iter().any(|a| named.contains(&a.as_str())) || args.iter().any(|a| a == name)
    };
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("runtime: {e}"));
    rt.block_on(async {
        if only("etcd") {
            let endpoint =
                std::env::var("NANOCL_TEST_ETCD").unwrap_or_else(|_| "127.0.0.1:23790".into());
            let options = EtcdOptions {
                prefix: format!("/nanocl-schedule-{}", std::process::id()),
                ..EtcdOptions::new(vec![endpoint.clone()])
            };
            match EtcdStore::connect(options).await {
                Ok(store) => {
                    run(
                        &format!("etcd at {endpoint}"),
                        store.clone(),
                        nodes,
                        replicas,
                    )
                    .await;
                    if let Ok(list) = store.list("").await {
                        for kv in list.items {
                            let _ = store.delete(&kv.key, None).await;
                        }
                    }
                }
                Err(e) => println!("etcd at {endpoint}: {e}"),
            }
        }
        if only("embedded") {
            let store = EmbeddedStore::in_memory(EmbeddedOptions::default())
                .unwrap_or_else(|e| panic!("store: {e}"));
            run("embedded store in memory", store, nodes, replicas).await;
        }
    });
}
