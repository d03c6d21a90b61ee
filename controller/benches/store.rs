//! Store benchmarks, per backend: sequential and concurrent write throughput, get and list
//! latency with 10,000 objects, watch latency from write to event, and the embedded file size
//! for 10,000 cargoes. A plain harness: it prints a table of medians and p99s (criterion's
//! model of one timed closure does not fit watch latency or throughput under concurrency).
//!
//! etcd: the dev environment's (`make dev-env`), under a unique prefix removed at the end.

use std::time::{Duration, Instant};

use futures::StreamExt;
use nanocl_api_types::cargo::v1::{CargoSpec, ContainerSpec, PortSpec};
use nanocl_api_types::meta::Object;
use nanocl_controller::store::{
    EmbeddedOptions, EmbeddedStore, EtcdOptions, EtcdStore, Store, WatchEvent,
};

const OBJECTS: usize = 10_000;

/// A realistic stored cargo: the JSON of a defaulted v1 object (about 700 bytes).
fn cargo_json(i: usize) -> Vec<u8> {
    let mut cargo: nanocl_api_types::cargo::v1::Cargo = Object::new(
        "nanocl.io/v1",
        "Cargo",
        format!("cargo-{i}"),
        Some("bench"),
        CargoSpec {
            cluster: "dev".into(),
            replicas: Some(3),
            networks: vec!["front".into(), "back".into()],
            placement: None,
            update: None,
            revision_history_limit: None,
            autoscale: None,
            container: ContainerSpec {
                image: format!("registry.example.com/team/app-{i}:v1"),
                args: vec!["--port".into(), "8080".into()],
                env: [(
                    "DATABASE_URL".to_owned(),
                    "postgres://{{ vars.DB }}/app".into(),
                )]
                .into(),
                ports: vec![PortSpec {
                    container_port: 8080,
                    ..PortSpec::default()
                }],
                ..ContainerSpec::default()
            },
        },
    );
    nanocl_api_types::cargo::v1::apply_defaults(&mut cargo);
    cargo.metadata.uid = Some(format!("00000000-0000-4000-8000-{i:012}"));
    cargo
        .metadata
        .labels
        .insert("app".into(), format!("app-{i}"));
    serde_json::to_vec(&cargo).unwrap_or_default()
}

struct Stats(Vec<Duration>);

impl Stats {
    fn percentile(&mut self, p: f64) -> Duration {
        self.0.sort_unstable();
        let idx = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0.get(idx).copied().unwrap_or_default()
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

async fn bench<S: Store + Clone>(name: &str, store: S) {
    println!("\n== {name}");
    // Sequential writes: 3 rounds of 500, to show the spread.
    let mut rounds = Vec::new();
    for round in 0..3 {
        let start = Instant::now();
        for i in 0..500 {
            if let Err(e) = store
                .create(&format!("seq/{round}/{i}"), cargo_json(i))
                .await
            {
                println!("sequential write failed: {e}");
                return;
            }
        }
        rounds.push(500.0 / start.elapsed().as_secs_f64());
    }
    rounds.sort_by(f64::total_cmp);
    println!(
        "sequential writes: median {:.0} ops/s (3 rounds of 500: {:.0}..{:.0})",
        rounds[1], rounds[0], rounds[2]
    );

    // Concurrent writes: 16 writers, 3 rounds of 1,600; also fills the 10,000-object set.
    let mut rounds = Vec::new();
    let mut written = 0;
    for round in 0..3 {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..16 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..100 {
                    let n = round * 1600 + w * 100 + i;
                    let _ = store
                        .create(&format!("objects/{n:05}"), cargo_json(n))
                        .await;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        written += 1600;
        rounds.push(1600.0 / start.elapsed().as_secs_f64());
    }
    rounds.sort_by(f64::total_cmp);
    println!(
        "concurrent writes (16 writers): median {:.0} ops/s (3 rounds of 1,600: {:.0}..{:.0})",
        rounds[1], rounds[0], rounds[2]
    );
    // Fill up to 10,000 objects, concurrently.
    let mut tasks = Vec::new();
    for w in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = written + w;
            while n < OBJECTS {
                let _ = store
                    .create(&format!("objects/{n:05}"), cargo_json(n))
                    .await;
                n += 16;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }

    let mut gets = Stats(Vec::new());
    for i in 0..2000 {
        let key = format!("objects/{:05}", (i * 7919) % OBJECTS);
        let start = Instant::now();
        let _ = store.get(&key).await;
        gets.0.push(start.elapsed());
    }
    println!(
        "get (of 10,000): median {}, p99 {}",
        ms(gets.percentile(0.5)),
        ms(gets.percentile(0.99))
    );

    let mut lists = Stats(Vec::new());
    let mut count = 0;
    for _ in 0..11 {
        let start = Instant::now();
        if let Ok(list) = store.list("objects/").await {
            count = list.items.len();
        }
        lists.0.push(start.elapsed());
    }
    println!(
        "list of {count} objects: median {}, p99 {}",
        ms(lists.percentile(0.5)),
        ms(lists.percentile(0.99))
    );

    let start_rev = store.list("lat/").await.map(|l| l.revision).unwrap_or(0);
    let Ok(mut stream) = store.watch("lat/", start_rev).await else {
        println!("watch failed");
        return;
    };
    let mut latency = Stats(Vec::new());
    for i in 0..500 {
        let start = Instant::now();
        if store
            .create(&format!("lat/{i}"), cargo_json(i))
            .await
            .is_err()
        {
            continue;
        }
        loop {
            match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
                Ok(Some(Ok(WatchEvent::Put { .. }))) => break,
                Ok(Some(Ok(_))) => continue,
                other => {
                    println!("watch broke: {other:?}");
                    return;
                }
            }
        }
        latency.0.push(start.elapsed());
    }
    println!(
        "watch latency, write call to event (500 writes): median {}, p99 {}",
        ms(latency.percentile(0.5)),
        ms(latency.percentile(0.99))
    );
}

async fn cleanup(store: &EtcdStore) {
    if let Ok(list) = store.list("").await {
        for kv in list.items {
            let _ = store.delete(&kv.key, None).await;
        }
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            println!("no temp dir: {e}");
            return;
        }
    };
    let path = dir.path().join("store.redb");
    match EmbeddedStore::open(&path, EmbeddedOptions::default()) {
        Ok(store) => {
            bench("embedded (redb file, fsync per write)", store).await;
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            println!(
                "embedded file size with 10,000 cargoes (+1,500 others, 10,000-event history): {:.1} MiB",
                size as f64 / 1048576.0
            );
        }
        Err(e) => println!("embedded store: {e}"),
    }

    let prefix = format!("/nanocl-bench-{}", std::process::id());
    let endpoint = std::env::var("NANOCL_TEST_ETCD").unwrap_or_else(|_| "127.0.0.1:23790".into());
    let options = EtcdOptions {
        prefix,
        ..EtcdOptions::new(vec![endpoint.clone()])
    };
    match EtcdStore::connect(options).await {
        Ok(store) => {
            bench(
                &format!("etcd ({endpoint}, dev environment)"),
                store.clone(),
            )
            .await;
            cleanup(&store).await;
        }
        Err(e) => println!("etcd at {endpoint}: {e}"),
    }
}
