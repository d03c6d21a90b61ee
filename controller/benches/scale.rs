//! Scale on the fake runtime: N cargoes (default 10,000) in N/10 namespaces, each with its
//! cluster, reconciled from scratch by the real controllers over `FakeDocker` (no dockerd:
//! what is measured is nanocl's own cost), first on the embedded store in memory, then on the
//! dev environment's etcd (under a unique prefix, removed at the end). Prints the time to N
//! running replicas, the memory the controllers and their caches hold per object (live heap
//! bytes freed when they stop, counted by the allocator: the store's and the fake's own
//! memory are not nanocl's controllers), and what a no-op resync of everything costs (store
//! writes, CPU).
//!
//! `cargo bench -p nanocl-controller --bench scale -- 2000` for a smaller run; `-- embedded`,
//! `-- file` (the embedded store in a file, as nanocld runs it) or `-- etcd` for one store;
//! `-- reasons` to count the writes by kind and `Ready` reason (slows the run down).

use std::alloc::System;
use std::time::{Duration, Instant};

use cap::Cap;
use nanocl_api_types::manifest::{decode_str, DecodeOptions};
use nanocl_controller::controllers;
use nanocl_controller::docker::{FakeDocker, State};
use nanocl_controller::objects::{encode, lifecycle};
use nanocl_controller::store::{
    keys, EmbeddedOptions, EmbeddedStore, EtcdOptions, EtcdStore, Store,
};

/// The system allocator, counting the bytes live.
#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

fn live_kib() -> f64 {
    ALLOCATOR.allocated() as f64 / 1024.0
}

const IMAGE: &str = "nanocl-test/busybox:latest";

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn cpu_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let fields: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

async fn put<S: Store>(store: &S, yaml: &str) {
    let decoded = decode_str("scale.yaml", yaml, &DecodeOptions::default());
    for m in decoded.manifests {
        let object = lifecycle::created(&m.object).unwrap_or_else(|e| panic!("{e}"));
        let bytes = encode(&object).unwrap_or_else(|e| panic!("{e}"));
        store
            .create(&keys::object_key(&object.key()), bytes)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

async fn running(docker: &FakeDocker) -> usize {
    docker.count(&["io.nanocl.managed=true".to_owned()], State::Running)
}

async fn run<S: Store + Clone>(label: &str, store: S, cargoes: usize, reasons: bool) {
    let namespaces = cargoes.div_ceil(10);
    let docker = FakeDocker::with_images(&[IMAGE]);
    let written = Instant::now();
    let mut objects = 0;
    for n in 0..namespaces {
        let mut yaml = format!(
            "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: ns{n}}}\n---\napiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: ns{n}}}\n"
        );
        objects += 2;
        for c in 0..10.min(cargoes - n * 10) {
            yaml.push_str(&format!("---\napiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: c{c}, namespace: ns{n}}}\nspec:\n  cluster: dev\n  container:\n    image: {IMAGE}\n    command: [sleep, \"3600\"]\n"));
            objects += 1;
        }
        put(&store, &yaml).await;
    }
    println!("\n== {cargoes} cargoes in {namespaces} namespaces ({objects} objects), fake runtime, {label}");
    println!(
        "  written to the store in {:.1} s",
        written.elapsed().as_secs_f64()
    );
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let options = controllers::Options {
        resync: Duration::from_secs(20),
        ..Default::default()
    };
    let metrics = std::sync::Arc::new(nanocl_controller::metrics::Metrics::default());
    let first = store.current_revision().await.unwrap_or(0);
    let counts = std::sync::Arc::new(std::sync::Mutex::new(Counts::new()));
    // Decoding every write costs CPU the run needs: only with `-- reasons`.
    let tally = tokio::spawn(count_writes(store.clone(), first, counts.clone(), reasons));
    let start = Instant::now();
    let start_ticks = cpu_ticks();
    let run = tokio::spawn(controllers::run(
        store.clone(),
        docker.clone(),
        metrics,
        options,
        shutdown,
    ));
    let limit = Duration::from_secs(600);
    while running(&docker).await < cargoes && start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let converged = start.elapsed();
    let up = running(&docker).await;
    let busy = (cpu_ticks() - start_ticks) as f64 / 100.0;
    println!(
        "  {up}/{cargoes} replicas running after {:.1} s ({busy:.1} s of CPU: {:.0} % of the 2 cores)",
        converged.as_secs_f64(),
        busy / converged.as_secs_f64() / 2.0 * 100.0
    );
    // Statuses written, events settled.
    tokio::time::sleep(Duration::from_secs(5)).await;
    // A resync of everything (every 20 s): what it writes and costs.
    let before = store.current_revision().await.unwrap_or(0);
    println!(
        "  {} store writes to get there ({:.1} per cargo: finalizers, statuses, Events)",
        before - first,
        (before - first) as f64 / cargoes as f64
    );
    tally.abort();
    if let Some(counts) = counts.lock().ok().filter(|_| reasons) {
        println!("    by kind of key and Ready reason: {counts:?}");
    }
    let ticks = cpu_ticks();
    tokio::time::sleep(Duration::from_secs(45)).await;
    let after = store.current_revision().await.unwrap_or(0);
    let cpu = (cpu_ticks() - ticks) as f64 / 100.0;
    println!(
        "  45 s with two full resyncs: {} store writes, {:.1} s of CPU ({:.1} % of one core)",
        after - before,
        cpu,
        cpu / 45.0 * 100.0
    );
    if after > before {
        // What was written, by kind of key: a resync that changes nothing writes nothing.
        let mut by_prefix: std::collections::BTreeMap<String, usize> = Default::default();
        if let Ok(mut events) = store.watch("", before).await {
            use futures::StreamExt;
            while let Ok(Some(Ok(event))) =
                tokio::time::timeout(Duration::from_secs(2), events.next()).await
            {
                if event.revision() > after {
                    break;
                }
                let key = match &event {
                    nanocl_controller::store::WatchEvent::Put { kv, .. } => kv.key.clone(),
                    nanocl_controller::store::WatchEvent::Delete { key, .. } => key.clone(),
                    _ => continue,
                };
                let prefix = key.split('/').next().unwrap_or("").to_owned();
                *by_prefix.entry(prefix).or_default() += 1;
                if by_prefix.values().sum::<usize>() <= 3 {
                    println!("    e.g. {key}");
                }
            }
        }
        println!("    written: {by_prefix:?}");
    }
    let (live, rss) = (live_kib(), rss_kib());
    let _ = stop.send(true);
    match tokio::time::timeout(Duration::from_secs(30), run).await {
        Ok(Ok(Ok(()))) => {}
        other => println!("  the controllers did not stop cleanly: {other:?}"),
    }
    // Detached tasks (the safety-net retriggers, the fake's event pumps) notice the end.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stopped = live_kib();
    drop(docker);
    let fake = stopped - live_kib();
    drop(store);
    let stored = stopped - fake - live_kib();
    let held = live - stopped;
    println!(
        "  memory: {:.2} KiB per object held by the controllers and their caches ({:.1} MiB, freed when they stop; goal < 10 KiB); the fake's containers {:.1} MiB; the store's client or in-memory database {:.1} MiB; process RSS {:.1} MiB",
        held / objects as f64,
        held / 1024.0,
        fake / 1024.0,
        stored / 1024.0,
        rss as f64 / 1024.0,
    );
}

type Counts = std::collections::BTreeMap<String, usize>;

/// Counts what is written from `from` on into `counts`, by kind of key and, for an object
/// with a `Ready` condition, its reason (runs until aborted).
async fn count_writes<S: Store>(
    store: S,
    from: i64,
    counts: std::sync::Arc<std::sync::Mutex<Counts>>,
    enabled: bool,
) {
    use futures::StreamExt;
    if !enabled {
        return;
    }
    let Ok(mut events) = store.watch("", from).await else {
        return;
    };
    while let Some(Ok(event)) = events.next().await {
        let (key, value) = match &event {
            nanocl_controller::store::WatchEvent::Put { kv, .. } => {
                (kv.key.clone(), Some(&kv.value))
            }
            nanocl_controller::store::WatchEvent::Delete { key, .. } => (key.clone(), None),
            _ => continue,
        };
        let prefix = key.split('/').next().unwrap_or("").to_owned();
        let reason = value
            .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
            .and_then(|v| {
                v.pointer("/status/conditions")?
                    .as_array()?
                    .iter()
                    .find(|c| c["type"] == "Ready")
                    .and_then(|c| c["reason"].as_str().map(str::to_owned))
            })
            .unwrap_or_else(|| {
                if value.is_some() {
                    "-".into()
                } else {
                    "deleted".into()
                }
            });
        if let Ok(mut counts) = counts.lock() {
            *counts.entry(format!("{prefix} {reason}")).or_default() += 1;
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cargoes: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(10_000);
    let reasons = args.iter().any(|a| a == "reasons");
    let only = |name: &str| {
        let named = ["embedded", "file", "etcd"];
        !args.iter().any(|a| named.contains(&a.as_str())) || args.iter().any(|a| a == name)
    };
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("runtime: {e}"));
    rt.block_on(async {
        if only("embedded") {
            let store = EmbeddedStore::in_memory(EmbeddedOptions::default())
                .unwrap_or_else(|e| panic!("store: {e}"));
            run("embedded store in memory (goal < 10 s)", store, cargoes, reasons).await;
        }
        if only("file") {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
            let store = EmbeddedStore::open(&dir.path().join("store.redb"), EmbeddedOptions::default())
                .unwrap_or_else(|e| panic!("store: {e}"));
            run(
                "embedded store in a redb file, as nanocld runs it (fsync per commit; no goal of its own)",
                store,
                cargoes,
                reasons,
            )
            .await;
        }
        if only("etcd") {
            let endpoint =
                std::env::var("NANOCL_TEST_ETCD").unwrap_or_else(|_| "127.0.0.1:23790".into());
            let options = EtcdOptions {
                prefix: format!("/nanocl-scale-{}", std::process::id()),
                ..EtcdOptions::new(vec![endpoint.clone()])
            };
            match EtcdStore::connect(options).await {
                Ok(store) => {
                    run(
                        &format!("etcd at {endpoint} (goal < 30 s)"),
                        store.clone(),
                        cargoes,
                        reasons,
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
    });
}
