//! Deploy-directory benchmarks against a real (release) nanocld: the time from saving a file to
//! the change being stored and to its container converged, over 20 edits each, through
//! `nanocl watch` and through `nanocld --deploy-dir`; and the cost of a sync of a 500-file
//! directory that changed nothing, per store. Prints medians and spreads; run by `make bench`.

use std::path::Path;
use std::time::{Duration, Instant};

use hyper::Method;
use nanocl_client::deploy::{Config, Syncer};
use nanocl_client::http::{Client, Host, Lines};
use nanocl_e2e::docker::docker;
use nanocl_e2e::{test_image, Daemon, StoreKind, WatchProcess};

const EDITS: usize = 20;

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let n = samples.len();
    if n == 0 {
        println!("  {label}: no samples");
        return;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  {label}: median {:.1} ms (min {:.1}, max {:.1}; n={n})",
        ms(samples[n / 2]),
        ms(samples[0]),
        ms(samples[n - 1]),
    );
}

fn base(ns: &str) -> String {
    format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n"
    )
}

fn cargo(ns: &str, name: &str, rev: usize) -> String {
    format!(
        "apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  cluster: dev\n  container:\n    image: {}\n    command: [sleep, \"3600\"]\n    env: {{REV: \"{rev}\"}}\n",
        test_image()
    )
}

fn client(d: &Daemon) -> Client {
    Client::new(Host::parse(Some(&d.host)).unwrap_or(Host::Tcp(String::new())))
}

/// The cargo's REV, generation, observed generation and readiness.
async fn cargo_state(client: &Client, ns: &str, name: &str) -> (String, i64, i64, bool) {
    let path = format!("/apis/nanocl.io/v1/namespaces/{ns}/cargoes/{name}");
    let Ok(answer) = client.request(Method::GET, &path, None).await else {
        return Default::default();
    };
    let v = answer.json().unwrap_or_default();
    let ready = v["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    });
    (
        v["spec"]["container"]["env"]["REV"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        v["metadata"]["generation"].as_i64().unwrap_or(0),
        v["status"]["observedGeneration"].as_i64().unwrap_or(0),
        ready,
    )
}

/// Saves 20 edits of one cargo; for each, the time until a watch on the API sees it stored,
/// and until its controller reports it converged (observed and Ready: the new replica runs).
async fn save_to_stored_and_converged(
    d: &Daemon,
    dir: &Path,
    ns: &str,
) -> (Vec<Duration>, Vec<Duration>) {
    let client = client(d);
    let mut stored = Vec::new();
    let mut converged = Vec::new();
    let file = dir.join("web.yaml");
    for rev in 1..=EDITS {
        let path = format!("/apis/nanocl.io/v1/namespaces/{ns}/cargoes?watch=true");
        let Ok(Ok(body)) = client.stream(&path).await else {
            println!("  cannot open a watch");
            break;
        };
        let mut lines = Lines::new(body);
        // Skip the initial state: wait until the current REV is seen.
        let want = rev.to_string();
        let saved = Instant::now();
        let _ = std::fs::write(&file, cargo(ns, "web", rev));
        let deadline = saved + Duration::from_secs(20);
        loop {
            match tokio::time::timeout_at(deadline.into(), lines.next()).await {
                Ok(Ok(Some(event))) => {
                    if event["object"]["spec"]["container"]["env"]["REV"] == want.as_str() {
                        stored.push(saved.elapsed());
                        break;
                    }
                }
                _ => {
                    println!("  edit {rev}: not stored within 20 s");
                    break;
                }
            }
        }
        loop {
            let (r, generation, observed, ready) = cargo_state(&client, ns, "web").await;
            if r == want && observed >= generation && ready {
                converged.push(saved.elapsed());
                break;
            }
            if saved.elapsed() > Duration::from_secs(60) {
                println!("  edit {rev}: not converged within 60 s");
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Let the old replica's removal finish before the next edit.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    (stored, converged)
}

fn cleanup(ns: &str) {
    let ids = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=io.nanocl.namespace={ns}"),
    ]);
    for id in ids.lines() {
        docker(&["rm", "-f", id]);
    }
}

fn latency(rt: &tokio::runtime::Runtime, daemon_mode: bool) {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let dir = tmp.path().join("deploy");
    let _ = std::fs::create_dir_all(&dir);
    let ns = format!(
        "wbench{}{}",
        u8::from(daemon_mode),
        std::process::id() % 10000
    );
    let _ = std::fs::write(dir.join("base.yaml"), base(&ns));
    let _ = std::fs::write(dir.join("web.yaml"), cargo(&ns, "web", 0));
    let dir_arg = dir.display().to_string();
    let (d, watch) = if daemon_mode {
        let d = Daemon::start_with(StoreKind::Embedded, &["--deploy-dir", &dir_arg]);
        (d, None)
    } else {
        let d = Daemon::start_with_controllers(StoreKind::Embedded);
        let w = WatchProcess::start(&d, &[&dir_arg]);
        w.wait_sync(1, Duration::from_secs(30));
        (d, Some(w))
    };
    // Wait for the first replica.
    rt.block_on(async {
        let client = client(&d);
        for _ in 0..600 {
            let (_, g, o, ready) = cargo_state(&client, &ns, "web").await;
            if ready && o >= g && g > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let (stored, converged) = rt.block_on(save_to_stored_and_converged(&d, &dir, &ns));
    let how = if daemon_mode {
        "nanocld --deploy-dir"
    } else {
        "nanocl watch"
    };
    summary(&format!("{how}: save → stored"), stored);
    summary(&format!("{how}: save → converged"), converged);
    drop(watch);
    let _ = d.nanocl(&["delete", "namespace", &ns, "--wait"]);
    drop(d);
    cleanup(&ns);
}

/// 500 files: a namespace, 9 clusters and 490 cargoes.
fn write_500(dir: &Path) {
    let _ = std::fs::create_dir_all(dir.join("cargoes"));
    let _ = std::fs::write(
        dir.join("namespace.yaml"),
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {name: sync500}\n",
    );
    for c in 0..9 {
        let _ = std::fs::write(
            dir.join(format!("cluster-{c}.yaml")),
            format!("apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: cl-{c}, namespace: sync500}}\nspec:\n  variables: {{DB: db-{c}}}\n"),
        );
    }
    for i in 0..490 {
        let _ = std::fs::write(
            dir.join(format!("cargoes/cargo-{i:03}.yaml")),
            format!("apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata:\n  name: cargo-{i}\n  namespace: sync500\nspec:\n  cluster: cl-{}\n  replicas: 2\n  container:\n    image: busybox:stable\n    env: {{DB: \"{{{{ vars.DB }}}}\"}}\n", i % 9),
        );
    }
}

fn no_change_sync(rt: &tokio::runtime::Runtime, store: StoreKind) {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let dir = tmp.path().join("sync500");
    write_500(&dir);
    let d = Daemon::start(store);
    let client = client(&d);
    let mut syncer = Syncer::new(Config {
        dir: dir.clone(),
        applyset: "sync500".into(),
        explicit_applyset: false,
        prune: true,
        decode: Default::default(),
    });
    let samples = rt.block_on(async {
        match syncer.sync(&client).await {
            Ok(first) => println!(
                "  first sync ({store:?}): {} created in {:.0} ms",
                first.created,
                first.elapsed.as_secs_f64() * 1000.0
            ),
            Err(e) => {
                println!("  first sync failed: {e:?}");
                return Vec::new();
            }
        }
        let mut samples = Vec::new();
        for _ in 0..20 {
            let start = Instant::now();
            match syncer.sync(&client).await {
                Ok(r) if r.unchanged == 500 => samples.push(start.elapsed()),
                other => println!("  unexpected sync: {other:?}"),
            }
        }
        samples
    });
    summary(
        &format!("no-change sync of 500 files, {store:?} store (read, decode, list, compare)"),
        samples,
    );
    let mut once = Vec::new();
    let dir_arg = dir.display().to_string();
    for _ in 0..5 {
        let start = Instant::now();
        let out = d.nanocl(&["watch", &dir_arg, "--once", "--applyset", "sync500"]);
        if out.status.success() {
            once.push(start.elapsed());
        }
    }
    summary(
        &format!("`nanocl watch --once` of the same, whole process, {store:?} store"),
        once,
    );
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("runtime: {e}"));
    println!("\n== deploy directory: save → stored / converged ({EDITS} edits, debounce 400 ms, embedded store, real dockerd)");
    latency(&rt, false);
    latency(&rt, true);
    println!("\n== deploy directory: cost of a sync that changes nothing (20 syncs)");
    no_change_sync(&rt, StoreKind::Embedded);
    no_change_sync(&rt, StoreKind::Etcd);
}
