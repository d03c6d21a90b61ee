//! Controller benchmarks against the real dockerd, side by side in one run:
//! - time from `nanocl apply` to N replicas running, N = 1, 10, 50, against raw parallel
//!   Docker create+start of N containers (the physical limit) and `docker service create
//!   --replicas N` in Docker Swarm;
//! - self-heal time after `docker kill` and after `docker rm -f` (median of 10);
//! - nanocld CPU and memory at idle with 50 cargoes.
//!
//! Swarm is initialised on loopback for the comparison and left again at the end (only if
//! this benchmark initialised it). Images are referenced by ID there, so no registry is asked.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{CreateContainerOptions, EventsOptions, RemoveContainerOptions};
use futures::StreamExt;
use nanocl_e2e::{test_image, Daemon, StoreKind};

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn running_count(label: &str) -> usize {
    docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label={label}"),
        "--filter",
        "status=running",
    ])
    .lines()
    .count()
}

fn wait_running(label: &str, n: usize, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if running_count(label) >= n {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn manifests(ns: &str, cargoes: &[(String, u32)]) -> String {
    let mut out = format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\napiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n"
    );
    for (name, replicas) in cargoes {
        out.push_str(&format!(
            "---\napiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  cluster: dev\n  replicas: {replicas}\n  container:\n    image: {}\n    command: [sleep, \"3600\"]\n",
            test_image()
        ));
    }
    out
}

fn cleanup_label(label: &str) {
    for id in docker(&["ps", "-aq", "--filter", &format!("label={label}")]).lines() {
        docker(&["rm", "-f", id]);
    }
    for id in docker(&["network", "ls", "-q", "--filter", &format!("label={label}")]).lines() {
        docker(&["network", "rm", id]);
    }
}

fn nanocl_apply(d: &Daemon, yaml: &str) -> Instant {
    let file = d.dir.path().join("bench.yaml");
    std::fs::write(&file, yaml).expect("write");
    let start = Instant::now();
    let out = d.nanocl(&["apply", "-f", &file.display().to_string()]);
    if !out.status.success() {
        println!("apply failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    start
}

async fn raw_docker(n: usize) -> Duration {
    let Ok(client) = bollard::Docker::connect_with_local_defaults() else {
        return Duration::ZERO;
    };
    let Ok(client) = client.negotiate_version().await else {
        return Duration::ZERO;
    };
    let label = format!("nanocl-bench-raw-{}", std::process::id());
    // Connected and negotiated above: only creating and starting is timed.
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let client = client.clone();
            let label = label.clone();
            tokio::spawn(async move {
                let body = ContainerCreateBody {
                    image: Some(test_image()),
                    cmd: Some(vec!["sleep".into(), "3600".into()]),
                    labels: Some(HashMap::from([("io.nanocl.bench".to_owned(), label)])),
                    ..Default::default()
                };
                let options = CreateContainerOptions {
                    name: Some(format!("nanocl-bench-raw-{i}-{}", std::process::id())),
                    ..Default::default()
                };
                if let Ok(created) = client.create_container(Some(options), body).await {
                    let _ = client
                        .start_container(
                            &created.id,
                            None::<bollard::query_parameters::StartContainerOptions>,
                        )
                        .await;
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed();
    let ids = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=io.nanocl.bench={label}"),
    ]);
    for id in ids.lines() {
        let _ = client
            .remove_container(
                id,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
    }
    elapsed
}

fn swarm(n: usize, round: usize, image_id: &str) -> Option<Duration> {
    // A fresh name per round: the tasks of a removed service linger for a moment.
    let name = format!("nanocl-bench-{}-{n}-{round}", std::process::id());
    let start = Instant::now();
    let out = Command::new("docker")
        .args([
            "service",
            "create",
            "--detach",
            "--name",
            &name,
            "--replicas",
            &n.to_string(),
            "--label",
            "nanocl-bench=1",
            image_id,
            "sleep",
            "3600",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        println!("  swarm: {}", String::from_utf8_lossy(&out.stderr).trim());
        return None;
    }
    let ok = wait_running(
        &format!("com.docker.swarm.service.name={name}"),
        n,
        Duration::from_secs(120),
    );
    let elapsed = start.elapsed();
    docker(&["service", "rm", &name]);
    ok.map(|_| elapsed)
}

async fn heal_time(label_filter: String, action: &str, container: &str) -> Option<Duration> {
    let client = bollard::Docker::connect_with_local_defaults()
        .ok()?
        .negotiate_version()
        .await
        .ok()?;
    let mut filters = HashMap::new();
    filters.insert("label".to_owned(), vec![label_filter]);
    filters.insert("event".to_owned(), vec!["start".to_owned()]);
    let mut events = client.events(Some(EventsOptions {
        filters: Some(filters),
        ..Default::default()
    }));
    // Make sure the subscription is live before acting.
    let first = tokio::time::timeout(Duration::from_millis(300), events.next()).await;
    drop(first);
    // Through the API, not the docker CLI: the CLI's own start-up would dominate the figure.
    let start = Instant::now();
    if action == "rm" {
        let _ = client
            .remove_container(
                container,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
    } else {
        let _ = client
            .kill_container(
                container,
                None::<bollard::query_parameters::KillContainerOptions>,
            )
            .await;
    }
    match tokio::time::timeout(Duration::from_secs(30), events.next()).await {
        Ok(Some(Ok(_))) => Some(start.elapsed()),
        _ => None,
    }
}

fn proc_stat(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ticks, rss))
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("runtime: {e}"));
    let image_id = docker(&["image", "inspect", "-f", "{{.Id}}", &test_image()]);
    let we_started_swarm = docker(&["info", "-f", "{{.Swarm.LocalNodeState}}"]) != "active";
    if we_started_swarm {
        docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
    }

    println!("\n== apply → N replicas running (median of 3), against raw Docker and Swarm");
    println!(
        "  {:>3}  {:>14}  {:>14}  {:>14}",
        "N", "nanocl apply", "raw create+start", "swarm service"
    );
    for n in [1usize, 10, 50] {
        let mut ours = Vec::new();
        let mut raw = Vec::new();
        let mut sw = Vec::new();
        for round in 0..3 {
            let d = Daemon::start_with_controllers(StoreKind::Embedded);
            let ns = format!("bench{n}r{round}p{}", std::process::id() % 10000);
            let label = format!("io.nanocl.namespace={ns}");
            let start = nanocl_apply(&d, &manifests(&ns, &[("app".into(), n as u32)]));
            if wait_running(&label, n, Duration::from_secs(120)).is_some() {
                ours.push(start.elapsed());
            }
            drop(d);
            cleanup_label(&label);
            raw.push(rt.block_on(raw_docker(n)));
            if let Some(t) = swarm(n, round, &image_id) {
                sw.push(t);
            }
        }
        println!(
            "  {n:>3}  {:>14}  {:>14}  {:>14}",
            ms(median(ours)),
            ms(median(raw)),
            if sw.is_empty() {
                "n/a".into()
            } else {
                ms(median(sw))
            }
        );
    }
    if we_started_swarm {
        docker(&["swarm", "leave", "--force"]);
        // Swarm leaves its gateway bridge behind; it was made for this benchmark.
        docker(&["network", "rm", "docker_gwbridge"]);
    }

    println!("\n== self-heal (median of 10; from the Docker API kill/remove call to the replacement's start event)");
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let ns = format!("heal{}", std::process::id() % 100000);
    let label = format!("io.nanocl.namespace={ns}");
    nanocl_apply(&d, &manifests(&ns, &[("app".into(), 2)]));
    wait_running(&label, 2, Duration::from_secs(60));
    for action in ["kill", "rm"] {
        let mut samples = Vec::new();
        for _ in 0..10 {
            let target = docker(&[
                "ps",
                "-q",
                "--filter",
                &format!("label={label}"),
                "--filter",
                "status=running",
            ])
            .lines()
            .next()
            .unwrap_or("")
            .to_owned();
            if let Some(t) = rt.block_on(heal_time(label.clone(), action, &target)) {
                samples.push(t);
            }
            wait_running(&label, 2, Duration::from_secs(30));
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut sorted = samples.clone();
        sorted.sort_unstable();
        println!(
            "  docker {:<7} median {} (min {}, max {}, n={})",
            if action == "rm" { "rm -f" } else { "kill" },
            ms(median(samples)),
            ms(sorted.first().copied().unwrap_or_default()),
            ms(sorted.last().copied().unwrap_or_default()),
            sorted.len()
        );
    }
    drop(d);
    cleanup_label(&label);

    println!("\n== nanocld at idle with 50 cargoes (1 replica each), measured over 20 s");
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let ns = format!("idle{}", std::process::id() % 100000);
    let label = format!("io.nanocl.namespace={ns}");
    let cargoes: Vec<(String, u32)> = (0..50).map(|i| (format!("c{i}"), 1)).collect();
    nanocl_apply(&d, &manifests(&ns, &cargoes));
    wait_running(&label, 50, Duration::from_secs(180));
    std::thread::sleep(Duration::from_secs(5));
    let pid = std::fs::read_dir("/proc")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .map(|c| c.contains("nanocld") && c.contains(&d.dir.path().display().to_string()))
                .unwrap_or(false)
        });
    if let Some(pid) = pid {
        if let Some((t0, _)) = proc_stat(pid) {
            std::thread::sleep(Duration::from_secs(20));
            if let Some((t1, rss)) = proc_stat(pid) {
                let hz = 100.0;
                println!(
                    "  CPU {:.2} % of one core, RSS {:.1} MiB",
                    (t1 - t0) as f64 / hz / 20.0 * 100.0,
                    rss as f64 / 1024.0
                );
            }
        }
    }
    drop(d);
    cleanup_label(&label);
}
