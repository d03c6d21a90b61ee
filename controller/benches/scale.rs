//! Scale on the fake runtime: N cargoes (default 10,000) in N/10 namespaces, each with its
//! cluster, reconciled from scratch by the real controllers over the in-memory embedded store
//! and `FakeDocker` (no dockerd: what is measured is nanocl's own cost). Prints the time to
//! N running replicas, nanocld's memory per object, and what a no-op resync of everything
//! costs (store writes, CPU).
//!
//! `cargo bench -p nanocl-controller --bench scale -- 2000` for a smaller run.

use std::time::{Duration, Instant};

use nanocl_api_types::manifest::{decode_str, DecodeOptions};
use nanocl_controller::controllers;
use nanocl_controller::docker::{Docker, FakeDocker, State};
use nanocl_controller::objects::{encode, lifecycle};
use nanocl_controller::store::{keys, EmbeddedOptions, EmbeddedStore, Store};

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

async fn put(store: &EmbeddedStore, yaml: &str) {
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
    docker
        .list_containers(&["io.nanocl.managed=true".to_owned()])
        .await
        .map(|cs| cs.iter().filter(|c| c.state == State::Running).count())
        .unwrap_or(0)
}

fn main() {
    let cargoes: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let namespaces = cargoes.div_ceil(10);
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("runtime: {e}"));
    rt.block_on(async {
        let store = EmbeddedStore::in_memory(EmbeddedOptions::default())
            .unwrap_or_else(|e| panic!("store: {e}"));
        let docker = FakeDocker::with_images(&[IMAGE]);
        let rss_empty = rss_kib();
        let written = Instant::now();
        for n in 0..namespaces {
            let mut yaml = format!(
                "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: ns{n}}}\n---\napiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: ns{n}}}\n"
            );
            for c in 0..10.min(cargoes - n * 10) {
                yaml.push_str(&format!("---\napiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: c{c}, namespace: ns{n}}}\nspec:\n  cluster: dev\n  container:\n    image: {IMAGE}\n    command: [sleep, \"3600\"]\n"));
            }
            put(&store, &yaml).await;
        }
        let objects = namespaces * 2 + cargoes;
        println!(
            "\n== {cargoes} cargoes in {namespaces} namespaces ({objects} objects), fake runtime, embedded store in memory"
        );
        println!("  written to the store in {:.1} s", written.elapsed().as_secs_f64());
        let rss_stored = rss_kib();
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let options = controllers::Options {
            resync: Duration::from_secs(20),
            ..Default::default()
        };
        let metrics = std::sync::Arc::new(nanocl_controller::metrics::Metrics::default());
        let start = Instant::now();
        let run = tokio::spawn(controllers::run(
            store.clone(),
            docker.clone(),
            metrics,
            options,
            shutdown,
        ));
        let limit = Duration::from_secs(600);
        while running(&docker).await < cargoes && start.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let converged = start.elapsed();
        let up = running(&docker).await;
        println!(
            "  {up}/{cargoes} replicas running after {:.1} s (goal < 10 s)",
            converged.as_secs_f64()
        );
        // Statuses written, events settled.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let rss = rss_kib();
        println!(
            "  memory: {:.1} MiB in all, {:.2} KiB per object for the caches and controllers (goal < 10 KiB; the store's and the fake's own memory not counted: {:.1} MiB before the controllers started)",
            rss as f64 / 1024.0,
            rss.saturating_sub(rss_stored) as f64 / objects as f64,
            rss_stored.saturating_sub(rss_empty) as f64 / 1024.0,
        );
        // A resync of everything (every 20 s): what it writes and costs.
        let before = store.current_revision().await.unwrap_or(0);
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
        let _ = stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(30), run).await;
    });
}
