//! API and CLI benchmarks against a real (release) nanocld, per store: `nanocl apply` of a
//! 500-object directory (cold, then a no-op re-apply), `nanocl diff` of it, and watch fan-out
//! to 10 watchers. Prints medians and spreads; run by `make bench`.

use std::path::Path;
use std::time::{Duration, Instant};

use hyper::Method;
use nanocl_client::http::{Client, Host, Lines};
use nanocl_e2e::{Daemon, StoreKind};
use serde_json::json;

const RUNS: usize = 5;

/// 500 objects: 1 namespace, 10 clusters, 40 networks, 449 cargoes, one file each.
fn write_objects(dir: &Path) {
    let _ = std::fs::create_dir_all(dir);
    let mut files = vec![(
        "00-ns.yaml".to_owned(),
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata:\n  name: bench\n".to_owned(),
    )];
    for c in 0..10 {
        files.push((format!("01-cluster-{c}.yaml"), format!("apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata:\n  name: cl-{c}\n  namespace: bench\nspec:\n  variables:\n    DB: db-{c}\n")));
    }
    for n in 0..40 {
        files.push((format!("02-net-{n}.yaml"), format!("apiVersion: nanocl.io/v1\nkind: Network\nmetadata:\n  name: net-{n}\n  namespace: bench\nspec:\n  cluster: cl-{}\n", n % 10)));
    }
    for i in 0..449 {
        files.push((
            format!("03-cargo-{i:03}.yaml"),
            format!(
                "apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata:\n  name: cargo-{i}\n  namespace: bench\n  labels:\n    app: app-{i}\nspec:\n  cluster: cl-{}\n  replicas: 2\n  networks: [net-{}]\n  container:\n    image: busybox:stable\n    env:\n      DB: \"{{{{ vars.DB }}}}\"\n    ports:\n      - containerPort: 8080\n",
                i % 10,
                i % 40
            ),
        ));
    }
    for (name, text) in files {
        let _ = std::fs::write(dir.join(name), text);
    }
}

fn timed(d: &Daemon, args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = d.nanocl(args);
    let elapsed = start.elapsed();
    if !(out.status.success() || (args[0] == "diff" && out.status.code() == Some(1))) {
        println!(
            "  `nanocl {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    elapsed
}

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let n = samples.len();
    if n == 0 {
        return;
    }
    let p99 = samples[((n as f64 - 1.0) * 0.99).round() as usize];
    println!(
        "  {label}: median {:.1} ms (min {:.1}, max {:.1}, p99 {:.1}; n={n})",
        ms(samples[n / 2]),
        ms(samples[0]),
        ms(samples[n - 1]),
        ms(p99)
    );
}

async fn fan_out(d: &Daemon) {
    let host = Host::parse(Some(&d.host)).unwrap_or(Host::Tcp(String::new()));
    let client = Client::new(host);
    let ns =
        json!({"apiVersion": "nanocl.io/v1", "kind": "Namespace", "metadata": {"name": "fan"}});
    let _ = client
        .request(Method::POST, "/apis/nanocl.io/v1/namespaces", Some(&ns))
        .await;
    // Watch from the collection's revision: on the shared dev etcd, revision 1 is long
    // compacted (410 Gone).
    let listed = client
        .request(
            Method::GET,
            "/apis/nanocl.io/v1/namespaces/fan/clusters",
            None,
        )
        .await
        .ok()
        .and_then(|a| a.json().ok());
    let rv = listed
        .as_ref()
        .and_then(|l| l["metadata"]["resourceVersion"].as_str())
        .unwrap_or("0")
        .to_owned();
    let mut watchers = Vec::new();
    for _ in 0..10 {
        let path =
            format!("/apis/nanocl.io/v1/namespaces/fan/clusters?watch=true&resourceVersion={rv}");
        match client.stream(&path).await {
            Ok(Ok(body)) => watchers.push(Lines::new(body)),
            other => {
                let why = match other {
                    Ok(Err(answer)) => answer.error_message(),
                    Err(e) => e.to_string(),
                    Ok(Ok(_)) => String::new(),
                };
                println!("  watch failed to open: {why}");
                return;
            }
        }
    }
    // Each watcher reports when it saw each cluster.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    for mut lines in watchers {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(Some(event)) = lines.next().await {
                if event["type"] == "ADDED" {
                    let name = event["object"]["metadata"]["name"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned();
                    let _ = tx.send((name, Instant::now()));
                }
            }
        });
    }
    drop(tx);
    let mut sent = std::collections::HashMap::new();
    let mut latencies = Vec::new();
    let mut all_ten = Vec::new();
    for i in 0..100 {
        let name = format!("c-{i}");
        let body =
            json!({"apiVersion": "nanocl.io/v1", "kind": "Cluster", "metadata": {"name": name}});
        let start = Instant::now();
        let _ = client
            .request(
                Method::POST,
                "/apis/nanocl.io/v1/namespaces/fan/clusters",
                Some(&body),
            )
            .await;
        sent.insert(name.clone(), start);
        let mut seen = 0;
        while seen < 10 {
            match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
                Ok(Some((n, at))) => {
                    if let Some(s) = sent.get(&n) {
                        latencies.push(at.duration_since(*s));
                        if n == name {
                            seen += 1;
                        }
                    }
                }
                _ => {
                    println!("  a watcher fell silent");
                    return;
                }
            }
        }
        all_ten.push(start.elapsed());
    }
    summary(
        "watch fan-out, create call to event, each of 10 watchers (100 creates)",
        latencies,
    );
    summary(
        "watch fan-out, create call to the 10th watcher's event",
        all_ten,
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let objects = dir.path().join("objects");
    write_objects(&objects);
    let path = objects.display().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("runtime: {e}"));
    for store in [StoreKind::Embedded, StoreKind::Etcd] {
        println!("\n== {store:?} store (release nanocld on a unix socket)");
        let mut cold = Vec::new();
        let mut noop = Vec::new();
        let mut diff = Vec::new();
        for _ in 0..RUNS {
            let d = Daemon::start(store);
            cold.push(timed(&d, &["apply", "-R", "-f", &path]));
            noop.push(timed(&d, &["apply", "-R", "-f", &path]));
            diff.push(timed(&d, &["diff", "-R", "-f", &path]));
        }
        summary("apply 500 objects, cold (whole CLI process)", cold);
        summary("apply 500 objects, no-op re-apply", noop);
        summary("diff 500 objects, no differences", diff);
        let d = Daemon::start(store);
        rt.block_on(fan_out(&d));
    }
}
