//! Controller benchmarks against the real dockerd, side by side in one run (sections, all by
//! default; name some to run only those: `cargo bench --bench controllers -- heal remove`):
//! - `apply`: time from `nanocl apply` to N replicas running, N = 1, 10, 50, against raw
//!   parallel Docker create+start of N containers (the physical limit) and `docker service
//!   create --replicas N` in Docker Swarm (on the default bridge, and on an overlay network
//!   of its own: Swarm's way to give a service what nanocl's cluster network gives a cargo);
//! - `remove`: deleting a cargo of 50 replicas until none is left, against raw parallel
//!   force-remove of 50 containers;
//! - `scale`: 10 → 50 → 10 replicas, against Swarm's `service scale` (default bridge, its
//!   own overlay, its own bridge);
//! - `heal`: self-heal time after `docker kill` and after `docker rm -f` (median of 10),
//!   against Docker's own restart policy restarting a crashed process, and Swarm
//!   (`--restart-delay 0`) replacing a killed task;
//! - `idle`: nanocld CPU and memory at idle with 50 cargoes;
//! - `failover`: two nanocld on the dev etcd (default TTLs), the leader killed with `kill -9`:
//!   time until the other leads and until a scale issued right after the kill is carried
//!   out (median of 5; the leader is `--role controller`, the survivor `--role all`). No peer in this run: Swarm's
//!   manager failover needs three managers, and its node-down detection is tens of seconds by
//!   its own defaults.
//! - `hostloss`: three agents on daemons of their own and a controller, a cargo of 6 spread
//!   over them, `kill -9` of an agent: time until the other two run all 6 (median of 5,
//!   default node TTL 10 s included), and until the agent, back, has removed the moved ones.
//!
//! - `rollout`: a health-gated rolling update of 10 replicas (healthcheck every 1 s;
//!   nanocl's default maxSurge 1, maxUnavailable 0) and an update to a failing healthcheck
//!   until the automatic rollback completed, against `docker service update
//!   --update-parallelism 1 --update-failure-action rollback` (start-first, as nanocl) with
//!   the same healthcheck in Swarm (median of 3);
//! - `autoscale`: from the moment a replica starts burning its CPU to the autoscaler's first
//!   scale-up decision, at `--metrics-interval` 15 s (the default) and 5 s (median of 3);
//!   and what sampling costs: one one-shot Docker stats call, and nanocld's CPU with 20
//!   idle autoscaled replicas against 20 without autoscale.
//!
//! - `build`: apply → running of a cargo built from a local git repository (a new commit
//!   each round) against `git clone --depth 1 && docker build && docker run -d` by hand
//!   (median of 3); the re-apply of an unchanged commit (no build); a new commit on a
//!   polled branch until its replica runs.
//!
//! Swarm is initialised on loopback for the comparison and left again at the end (only if
//! this benchmark initialised it). Images are referenced by ID there, so no registry is asked.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{CreateContainerOptions, EventsOptions, RemoveContainerOptions};
use futures::StreamExt;
use hyper::Method;
use nanocl_client::http::{Client, Host};
use nanocl_e2e::{test_image, Daemon, StoreKind};

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A Docker API client of its own (with its own runtime), for the counting the waits do:
/// a `docker ps` process every few milliseconds would take the CPU the measured work needs.
fn api() -> &'static (tokio::runtime::Runtime, bollard::Docker) {
    static API: std::sync::OnceLock<(tokio::runtime::Runtime, bollard::Docker)> =
        std::sync::OnceLock::new();
    API.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        let client = rt
            .block_on(async {
                bollard::Docker::connect_with_local_defaults()?
                    .negotiate_version()
                    .await
            })
            .unwrap_or_else(|e| panic!("docker: {e}"));
        (rt, client)
    })
}

/// Containers with `label`, running only or all.
fn count(label: &str, running_only: bool) -> usize {
    let (rt, client) = api();
    let mut filters = HashMap::new();
    filters.insert("label".to_owned(), vec![label.to_owned()]);
    if running_only {
        filters.insert("status".to_owned(), vec!["running".to_owned()]);
    }
    rt.block_on(
        client.list_containers(Some(bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        })),
    )
    .map(|l| l.len())
    .unwrap_or(0)
}

fn running_count(label: &str) -> usize {
    count(label, true)
}

fn wait_running(label: &str, n: usize, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if running_count(label) >= n {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Time from `since` to the `n`th `start` event of a container labelled `label`, by
/// Docker's own clock (`timeNano`; the same host clock as `since`): what every contender of
/// the apply and scale benchmarks is timed by, so none pays for a poll's granularity or the
/// `docker ps` it takes. The events since `since` are replayed, so nothing is missed
/// however late this asks.
fn started(
    label: &str,
    since: std::time::SystemTime,
    n: usize,
    limit: Duration,
) -> Option<Duration> {
    let (rt, client) = api();
    rt.block_on(async {
        tokio::time::timeout(limit, started_in(client, label, since, n))
            .await
            .ok()
            .flatten()
    })
}

/// `started`, on the caller's runtime.
async fn started_in(
    client: &bollard::Docker,
    label: &str,
    since: std::time::SystemTime,
    n: usize,
) -> Option<Duration> {
    let from = since.duration_since(std::time::UNIX_EPOCH).ok()?;
    let mut filters = HashMap::new();
    filters.insert("type".to_owned(), vec!["container".to_owned()]);
    filters.insert("event".to_owned(), vec!["start".to_owned()]);
    filters.insert("label".to_owned(), vec![label.to_owned()]);
    let options = EventsOptions {
        since: Some(format!("{}.{:09}", from.as_secs(), from.subsec_nanos())),
        filters: Some(filters),
        ..Default::default()
    };
    let mut events = client.events(Some(options));
    let mut seen = 0;
    while let Some(Ok(event)) = events.next().await {
        seen += 1;
        if seen >= n {
            let at = u64::try_from(event.time_nano?).ok()?;
            return Some(Duration::from_nanos(at).saturating_sub(from));
        }
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
    nanocl_apply_at(d, yaml).0
}

/// `nanocl_apply`, with the wall-clock time it started too (for `started`).
fn nanocl_apply_at(d: &Daemon, yaml: &str) -> (Instant, std::time::SystemTime) {
    let file = d.dir.path().join("bench.yaml");
    std::fs::write(&file, yaml).expect("write");
    let since = std::time::SystemTime::now();
    let start = Instant::now();
    let out = d.nanocl(&["apply", "-f", &file.display().to_string()]);
    if !out.status.success() {
        println!("apply failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    (start, since)
}

/// `docker rm -f` through the API.
async fn force_remove(client: &bollard::Docker, id: &str) {
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

/// How the raw peer creates its containers.
#[derive(Clone, Copy)]
struct Raw {
    /// Calls in flight at once.
    window: usize,
    /// On a user-defined bridge with an alias and nanocl's labels, as nanocl's replicas are
    /// (`false`: the default bridge).
    like_nanocl: bool,
    /// Containers made (the same way, untimed) before the `n` timed ones: a scale-up.
    before: usize,
    /// One container made and removed (the same way, untimed) first, as nanocl's timed
    /// apply follows a warm-up cargo: the network has had an endpoint, the client a call.
    warm: bool,
}

/// Raw Docker create+start of `n` containers (connected, negotiated and the network made
/// first: only creating and starting is timed), removed afterwards.
async fn raw_docker(n: usize, raw: Raw) -> Duration {
    let Ok(client) = bollard::Docker::connect_with_local_defaults() else {
        return Duration::ZERO;
    };
    let Ok(client) = client.negotiate_version().await else {
        return Duration::ZERO;
    };
    let pid = std::process::id();
    let label = format!("nanocl-bench-raw-{pid}");
    let network = format!("nanocl-bench-raw-{pid}");
    if raw.like_nanocl {
        let _ = client
            .create_network(bollard::models::NetworkCreateRequest {
                name: network.clone(),
                driver: Some("bridge".into()),
                labels: Some(HashMap::from([(
                    "io.nanocl.bench".to_owned(),
                    label.clone(),
                )])),
                ..Default::default()
            })
            .await;
    }
    let batch = |range: std::ops::Range<usize>| {
        let calls = range.map(|i| {
            let (client, label, network) = (client.clone(), label.clone(), network.clone());
            async move {
                let mut labels = HashMap::from([("io.nanocl.bench".to_owned(), label)]);
                let mut body = ContainerCreateBody {
                    image: Some(test_image()),
                    cmd: Some(vec!["sleep".into(), "3600".into()]),
                    ..Default::default()
                };
                if raw.like_nanocl {
                    for (k, v) in [
                        ("io.nanocl.managed", "true"),
                        ("io.nanocl.namespace", "bench"),
                        ("io.nanocl.cargo", "app"),
                        ("io.nanocl.cluster", "dev"),
                        ("io.nanocl.slot", &i.to_string()),
                        ("io.nanocl.spec-hash", "0123456789abcdef"),
                    ] {
                        labels.insert(k.to_owned(), v.to_owned());
                    }
                    body.host_config = Some(bollard::models::HostConfig {
                        network_mode: Some(network.clone()),
                        port_bindings: Some(HashMap::new()),
                        ..Default::default()
                    });
                    body.networking_config = Some(bollard::models::NetworkingConfig {
                        endpoints_config: Some(HashMap::from([(
                            network.clone(),
                            bollard::models::EndpointSettings {
                                aliases: Some(vec!["app".into()]),
                                ..Default::default()
                            },
                        )])),
                    });
                    body.env = Some(Vec::new());
                }
                body.labels = Some(labels);
                let options = CreateContainerOptions {
                    name: Some(format!("nanocl-bench-raw-{i}-{pid}")),
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
            }
        });
        futures::stream::iter(calls)
            .buffer_unordered(raw.window.max(1))
            .collect::<Vec<()>>()
    };
    if raw.warm {
        batch(WARM..WARM + 1).await;
        remove_labelled(&client, &label).await;
    }
    batch(0..raw.before).await;
    // dockerd idle for a moment first, as before every contender: a container made right
    // after another on the same network starts 15–20 ms sooner (measured: 222 ms against
    // 236 ms after 0.5 s, 245 ms after 1.5 s), which nanocl's apply, coming after a pause,
    // never gets.
    tokio::time::sleep(SETTLE).await;
    let since = std::time::SystemTime::now();
    batch(raw.before..raw.before + n).await;
    // Timed like the others: to the last start event.
    let elapsed = tokio::time::timeout(
        Duration::from_secs(30),
        started_in(&client, &format!("io.nanocl.bench={label}"), since, n),
    )
    .await
    .ok()
    .flatten()
    .unwrap_or_default();
    remove_labelled(&client, &label).await;
    if raw.like_nanocl {
        let _ = client.remove_network(&network).await;
    }
    elapsed
}

/// `docker run -d` of one container with nanocl's config (its own bridge network, an alias,
/// the labels) from the docker CLI, after one made and removed the same way: what a user
/// types, as `nanocl apply` is. To its `start` event.
fn docker_run_cli(round: usize) -> Option<Duration> {
    let tag = format!("nanocl-bench-cli-{}-{round}", std::process::id());
    let label = format!("io.nanocl.bench={tag}");
    docker(&["network", "create", "--label", &label, &tag]);
    let run = |name: &str| {
        Command::new("docker")
            .args(["run", "-d", "--name", name, "--network", &tag])
            .args(["--network-alias", "app", "--label", &label])
            .args([
                "--label",
                "io.nanocl.managed=true",
                "--label",
                "io.nanocl.cargo=app",
            ])
            .args([&test_image(), "sleep", "3600"])
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    let warm = run(&format!("{tag}-warm"));
    docker(&["rm", "-f", &format!("{tag}-warm")]);
    // Idle for a moment first, as before every contender (see `raw_docker`).
    std::thread::sleep(SETTLE);
    let since = std::time::SystemTime::now();
    let took = match (warm, run(&tag)) {
        (Some(_), Some(_)) => started(&label, since, 1, Duration::from_secs(30)),
        _ => None,
    };
    docker(&["rm", "-f", &tag]);
    docker(&["network", "rm", &tag]);
    took
}

/// How long dockerd is left idle before a timed operation (the raw peers' after their
/// warm-up too): every contender starts from the same state.
const SETTLE: Duration = Duration::from_millis(500);

/// The index of the raw peers' warm-up container.
const WARM: usize = 1_000_000;

/// Force-removes the raw peer's containers labelled `label`, side by side.
async fn remove_labelled(client: &bollard::Docker, label: &str) {
    let ids = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=io.nanocl.bench={label}"),
    ]);
    let removals = ids.lines().map(|id| force_remove(client, id));
    futures::stream::iter(removals)
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

/// `docker service create` of `n` replicas until the Nth task's start; on Docker's default
/// bridge, or on `network` (one of `Swarm`'s).
fn swarm_create(n: usize, round: usize, image_id: &str, network: Option<&str>) -> Option<Duration> {
    // A fresh name per round: the tasks of a removed service linger for a moment.
    let name = format!(
        "nanocl-bench-{}-{n}-{round}{}",
        std::process::id(),
        if network.is_some() { "-net" } else { "" }
    );
    let since = std::time::SystemTime::now();
    let extra: Vec<&str> = network.map_or_else(Vec::new, |net| vec!["--network", net]);
    let out = swarm_service(&name, n, &extra, image_id).ok()?;
    if !out.status.success() {
        println!("  swarm: {}", String::from_utf8_lossy(&out.stderr).trim());
        return None;
    }
    let elapsed = started(
        &format!("com.docker.swarm.service.name={name}"),
        since,
        n,
        Duration::from_secs(120),
    );
    docker(&["service", "rm", &name]);
    // Swarm removes the tasks' containers in the background: wait, so the next measurement
    // does not share dockerd with that cleanup.
    wait_count(
        &format!("com.docker.swarm.service.name={name}"),
        0,
        Duration::from_secs(120),
    );
    elapsed
}

/// `docker-compose up -d --scale app=N` (Compose v1, Debian's `docker-compose`; `make
/// bench` installs it) until the Nth container's start: the closest peer to nanocl's config
/// (a project network, a user-defined bridge, with the service's name as alias), made with no
/// container first so only the containers are timed, as for the others. `None` without
/// docker-compose.
fn compose_up(n: usize, round: usize) -> Option<Duration> {
    let project = Compose::new(&format!("nbc{}n{n}r{round}", std::process::id()))?;
    project.scale(0)?;
    let since = std::time::SystemTime::now();
    project.scale(n)?;
    started(&project.label(), since, n, Duration::from_secs(120))
}

/// A Compose project of one service `app` (sleepers of the test image), taken down on drop.
struct Compose {
    project: String,
    file: String,
    _dir: tempfile::TempDir,
}

impl Compose {
    fn new(project: &str) -> Option<Compose> {
        let dir = tempfile::tempdir().ok()?;
        let file = dir.path().join("docker-compose.yml");
        std::fs::write(
            &file,
            format!(
                "version: \"3\"\nservices:\n  app:\n    image: {}\n    command: [sleep, \"3600\"]\n",
                test_image()
            ),
        )
        .ok()?;
        Some(Compose {
            project: project.to_owned(),
            file: file.display().to_string(),
            _dir: dir,
        })
    }

    fn run(&self, args: &[&str]) -> Option<std::process::Output> {
        Command::new("docker-compose")
            .args(["-p", &self.project, "-f", &self.file])
            .args(args)
            .output()
            .ok()
    }

    /// `up -d --scale app=N`; `None` (said) when it fails or docker-compose is missing.
    fn scale(&self, n: usize) -> Option<()> {
        let out = self.run(&["up", "-d", "--scale", &format!("app={n}")])?;
        if out.status.success() {
            Some(())
        } else {
            println!("  compose: {}", String::from_utf8_lossy(&out.stderr).trim());
            None
        }
    }

    fn label(&self) -> String {
        format!("com.docker.compose.project={}", self.project)
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = self.run(&["down", "--timeout", "0"]);
    }
}

/// How a replica is taken down for a heal sample.
#[derive(Clone, Copy, PartialEq)]
enum Takedown {
    /// `docker kill` (SIGKILL) through the API.
    Kill,
    /// `docker rm -f` through the API.
    Remove,
    /// The process exits by itself (`kill -USR1 1` run inside: the sample's command traps
    /// USR1 and exits 1), as a crash does; Docker's restart policy ignores API kills.
    Crash,
}

/// One heal: from the takedown call, and from the container's `die` event, to the
/// replacement's `start` event.
#[derive(Clone, Copy)]
struct Heal {
    from_call: Duration,
    from_die: Duration,
}

async fn heal_time(label_filter: String, takedown: Takedown, container: &str) -> Option<Heal> {
    let client = bollard::Docker::connect_with_local_defaults()
        .ok()?
        .negotiate_version()
        .await
        .ok()?;
    let mut filters = HashMap::new();
    filters.insert("label".to_owned(), vec![label_filter]);
    filters.insert(
        "event".to_owned(),
        vec!["start".to_owned(), "die".to_owned()],
    );
    let mut events = client.events(Some(EventsOptions {
        filters: Some(filters),
        ..Default::default()
    }));
    // Make sure the subscription is live before acting.
    let first = tokio::time::timeout(Duration::from_millis(300), events.next()).await;
    drop(first);
    // Through the API, not the docker CLI: the CLI's own start-up would dominate the figure.
    let start = Instant::now();
    match takedown {
        Takedown::Remove => {
            force_remove(&client, container).await;
        }
        Takedown::Kill => {
            let _ = client
                .kill_container(
                    container,
                    None::<bollard::query_parameters::KillContainerOptions>,
                )
                .await;
        }
        Takedown::Crash => {
            let exec = client
                .create_exec(
                    container,
                    bollard::exec::CreateExecOptions {
                        cmd: Some(vec!["kill", "-USR1", "1"]),
                        ..Default::default()
                    },
                )
                .await
                .ok()?;
            let _ = client
                .start_exec(
                    &exec.id,
                    Some(bollard::exec::StartExecOptions {
                        detach: true,
                        ..Default::default()
                    }),
                )
                .await;
        }
    }
    let mut died = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(30), events.next()).await {
            Ok(Some(Ok(e))) => match e.action.as_deref() {
                Some("die") if died.is_none() => died = Some(Instant::now()),
                Some("start") => {
                    let now = Instant::now();
                    return Some(Heal {
                        from_call: now - start,
                        from_die: now - died.unwrap_or(start),
                    });
                }
                _ => {}
            },
            _ => return None,
        }
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

fn count_all(label: &str) -> usize {
    count(label, false)
}

fn wait_count(label: &str, n: usize, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if count_all(label) == n {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// `median (min–max, n=K)` of the samples.
fn spread(samples: &[Duration]) -> String {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    format!(
        "{} ({}–{}, n={})",
        ms(median(sorted.clone())),
        ms(sorted.first().copied().unwrap_or_default()),
        ms(sorted.last().copied().unwrap_or_default()),
        sorted.len()
    )
}

fn ratio(ours: &[Duration], peer: &[Duration]) -> String {
    let (a, b) = (median(ours.to_vec()), median(peer.to_vec()));
    if b.is_zero() {
        return "n/a".into();
    }
    format!("{:.2}×", a.as_secs_f64() / b.as_secs_f64())
}

/// Swarm on loopback for the comparisons, left again afterwards if we started it; with two
/// networks of its own for the peers that do what nanocl's cluster network does.
struct Swarm {
    we_started: bool,
    image_id: String,
    /// An overlay network: Swarm's own way to give a service's tasks a network of their own
    /// where the service's name resolves (nanocl's replicas resolve by alias on their
    /// cluster's bridge).
    overlay: String,
    /// A user-defined bridge network of Swarm scope: the same Docker network work per task as
    /// nanocl's bridge, without Swarm's name resolution (Swarm resolves names on overlays
    /// only).
    bridge: String,
}

impl Swarm {
    fn join() -> Swarm {
        let image_id = docker(&["image", "inspect", "-f", "{{.Id}}", &test_image()]);
        let we_started = docker(&["info", "-f", "{{.Swarm.LocalNodeState}}"]) != "active";
        if we_started {
            docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        }
        let overlay = format!("nanocl-bench-overlay-{}", std::process::id());
        let bridge = format!("nanocl-bench-bridge-{}", std::process::id());
        docker(&["network", "create", "--driver", "overlay", &overlay]);
        docker(&[
            "network", "create", "--driver", "bridge", "--scope", "swarm", &bridge,
        ]);
        Swarm {
            we_started,
            image_id,
            overlay,
            bridge,
        }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        docker(&["network", "rm", &self.overlay]);
        docker(&["network", "rm", &self.bridge]);
        if self.we_started {
            // The routing mesh's sandbox holds an endpoint on the gateway bridge: removed
            // while the swarm is up, the leave does not strand it there (seen once: dockerd
            // kept saying the bridge had an endpoint until it restarted).
            let _ = Command::new("docker")
                .args(["network", "rm", "ingress"])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    use std::io::Write as _;
                    if let Some(mut input) = child.stdin.take() {
                        let _ = input.write_all(b"y\n");
                    }
                    child.wait()
                });
            docker(&["swarm", "leave", "--force"]);
            // Swarm leaves its gateway bridge behind; it was made for this benchmark. Its
            // last endpoint (the ingress sandbox's) goes a moment after the leave.
            let limit = Instant::now() + Duration::from_secs(15);
            while Command::new("docker")
                .args(["network", "inspect", "docker_gwbridge"])
                .output()
                .is_ok_and(|o| o.status.success())
            {
                docker(&["network", "rm", "docker_gwbridge"]);
                if Instant::now() > limit {
                    println!("  swarm: dockerd still says docker_gwbridge has an endpoint after the swarm was left; it holds one of Docker's address pools until dockerd restarts (then: docker network rm docker_gwbridge)");
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

/// The contenders of the apply benchmark, run in a rotating order within each round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ApplyContender {
    NanoclCli,
    NanoclApi,
    RawDefault,
    RawLike8,
    RawLikeAll,
    Swarm,
    SwarmOverlay,
    Compose,
    DockerRunCli,
}

fn bench_apply(rt: &tokio::runtime::Runtime, swarm: &Swarm) {
    println!("\n== apply of a cargo → N replicas running, its cluster already there (median of 15 rounds for 1 replica, whose few hundred ms are the noisiest, of 5 for 10 and 3 for 50; one nanocld per N, long-running as in use, the contenders interleaved in an order rotating every round), against raw Docker (default bridge, all at once; nanocl's exact config: its bridge, alias and labels, at window 8 and all at once), Swarm (default bridge; an overlay network of its own) and Compose (`up --scale`, its project network)");
    println!(
        "  {:>3}  {:>12}  {:>12}  {:>12}  {:>12}  {:>12}  {:>13}  {:>12}  {:>9}  {:>10}  {:>10}",
        "N",
        "nanocl",
        "raw default",
        "raw like/8",
        "raw like/all",
        "swarm",
        "swarm overlay",
        "compose",
        "vs like",
        "vs overlay",
        "vs compose"
    );
    for n in [1usize, 10, 50] {
        use ApplyContender as C;
        let (mut ours, mut raw, mut like8, mut like_all, mut sw, mut sw_overlay, mut compose) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        let (mut our_cpu, mut docker_cpu, mut writes) = (Vec::new(), Vec::new(), Vec::new());
        let mut cli_run = Vec::new();
        let mut ours_api = Vec::new();
        // One nanocld for every round of this size, as a nanocld runs in use: a fresh one per
        // sample measured its first seconds too. The namespace and cluster (its network)
        // first, as the raw peers make their network before the clock starts: only the cargo
        // is timed.
        let d = Daemon::start_with_controllers(StoreKind::Embedded);
        let ns = format!("bench{n}p{}", std::process::id() % 10000);
        let base = d.dir.path().join("base.yaml");
        std::fs::write(&base, manifests(&ns, &[])).expect("write");
        d.nanocl(&["apply", "-f", &base.display().to_string(), "--wait"]);
        // A warm-up cargo of one replica (run, then deleted), as the raw peers make and
        // remove one container first: the first apply to a new nanocld pays its one-off start
        // (first connections, first passes of every code path), 10–20 ms traced.
        let warm = d.dir.path().join("warm.yaml");
        std::fs::write(&warm, manifests(&ns, &[("warm".into(), 1)])).expect("write");
        d.nanocl(&["apply", "-f", &warm.display().to_string(), "--wait"]);
        d.nanocl(&["delete", "cargo", "warm", "-n", &ns, "--wait"]);
        let pid = nanocld_pid(&d);
        let mut order = vec![
            C::NanoclCli,
            C::NanoclApi,
            C::RawDefault,
            C::RawLike8,
            C::RawLikeAll,
            C::Swarm,
            C::SwarmOverlay,
            C::Compose,
        ];
        if n == 1 {
            order.push(C::DockerRunCli);
        }
        let rounds = match n {
            1 => 15,
            10 => 5,
            _ => 3,
        };
        let raw_run = |window: usize, like_nanocl: bool| {
            rt.block_on(raw_docker(
                n,
                Raw {
                    window,
                    like_nanocl,
                    before: 0,
                    warm: true,
                },
            ))
        };
        for round in 0..rounds {
            // Each contender takes its turn at every place of the order: what runs right
            // after a cleanup, or after Swarm, is not always the same one.
            order.rotate_left(if round == 0 { 0 } else { 1 });
            for contender in order.clone() {
                // Whatever the last contender left dockerd doing settles first.
                std::thread::sleep(SETTLE);
                match contender {
                    C::NanoclCli => {
                        let name = format!("app{round}");
                        let label = format!("io.nanocl.cargo={name}");
                        let cpu0 = pid.and_then(proc_stat).map(|(t, _)| t);
                        let docker0 = dockerd_ticks();
                        let rev0 = d.store_revision();
                        let (_, since) =
                            nanocl_apply_at(&d, &manifests(&ns, &[(name.clone(), n as u32)]));
                        if let Some(t) = started(&label, since, n, Duration::from_secs(120)) {
                            ours.push(t);
                            // What nanocld and dockerd spent up to the last start (ticks of
                            // 10 ms), and the store writes: the cost nanocld adds on a host
                            // whose dockerd is CPU-bound.
                            if let (Some(c0), Some(c1)) =
                                (cpu0, pid.and_then(proc_stat).map(|(t, _)| t))
                            {
                                our_cpu.push(Duration::from_millis((c1 - c0) * 10));
                            }
                            if let (Some(t0), Some(t1)) = (docker0, dockerd_ticks()) {
                                docker_cpu.push(Duration::from_millis((t1 - t0) * 10));
                            }
                            if let (Some(r0), Some(r1)) = (rev0, d.store_revision()) {
                                writes.push(r1 - r0);
                            }
                        }
                        d.nanocl(&["delete", "cargo", &name, "-n", &ns, "--wait"]);
                    }
                    C::NanoclApi => {
                        // The same apply through the API from a program (one POST on a fresh
                        // connection, as a client library does), without the CLI process:
                        // the like-for-like peer of the raw Docker API contenders.
                        let name = format!("api{round}");
                        if let Some(since) = rt.block_on(api_apply(&d, &ns, &name, n)) {
                            ours_api.extend(started(
                                &format!("io.nanocl.cargo={name}"),
                                since,
                                n,
                                Duration::from_secs(120),
                            ));
                        }
                        d.nanocl(&["delete", "cargo", &name, "-n", &ns, "--wait"]);
                    }
                    C::RawDefault => raw.push(raw_run(n, false)),
                    C::RawLike8 => like8.push(raw_run(8, true)),
                    C::RawLikeAll => like_all.push(raw_run(n, true)),
                    C::Swarm => sw.extend(swarm_create(n, round, &swarm.image_id, None)),
                    C::SwarmOverlay => sw_overlay.extend(swarm_create(
                        n,
                        round,
                        &swarm.image_id,
                        Some(&swarm.overlay),
                    )),
                    C::Compose => compose.extend(compose_up(n, round)),
                    C::DockerRunCli => cli_run.extend(docker_run_cli(round)),
                }
            }
        }
        drop(d);
        cleanup_label(&format!("io.nanocl.namespace={ns}"));
        // At 1 replica a window of 8 and all at once are the same calls: one peer, sampled
        // twice as often.
        let pooled: Vec<Duration> = like8.iter().chain(&like_all).copied().collect();
        let best_like = if n == 1 {
            &pooled
        } else if median(like8.clone()) <= median(like_all.clone()) {
            &like8
        } else {
            &like_all
        };
        let or_na = |v: &[Duration]| {
            if v.is_empty() {
                "n/a".to_owned()
            } else {
                ms(median(v.to_vec()))
            }
        };
        println!(
            "  {n:>3}  {:>12}  {:>12}  {:>12}  {:>12}  {:>12}  {:>13}  {:>12}  {:>9}  {:>10}  {:>10}",
            ms(median(ours.clone())),
            ms(median(raw)),
            ms(median(like8.clone())),
            ms(median(like_all.clone())),
            or_na(&sw),
            or_na(&sw_overlay),
            or_na(&compose),
            ratio(&ours, best_like),
            ratio(&ours, &sw_overlay),
            ratio(&ours, &compose)
        );
        writes.sort_unstable();
        println!(
            "       spread: nanocl {}  raw like {}{}",
            spread(&ours),
            spread(best_like),
            if n == 1 { " (/8 and /all pooled)" } else { "" }
        );
        println!(
            "       nanocl's run: nanocld CPU {}, dockerd CPU {}, store writes {}",
            ms(median(our_cpu)),
            ms(median(docker_cpu)),
            writes.get(writes.len() / 2).copied().unwrap_or_default()
        );
        println!(
            "       nanocl through the API (a POST from a program, no CLI process): {}  ratio to raw like {}",
            spread(&ours_api),
            ratio(&ours_api, best_like)
        );
        if !cli_run.is_empty() {
            println!(
                "       docker run -d from the CLI, nanocl's config: {}  nanocl apply's ratio to it {}",
                spread(&cli_run),
                ratio(&ours, &cli_run)
            );
        }
    }
}

/// POSTs a cargo of `n` replicas (a fresh client, as a program calling the API) and answers
/// when it was sent, for `started`; `None` if the POST failed (said on stdout).
async fn api_apply(d: &Daemon, ns: &str, name: &str, n: usize) -> Option<std::time::SystemTime> {
    let cargo = serde_json::json!({
        "apiVersion": "nanocl.io/v1",
        "kind": "Cargo",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "cluster": "dev",
            "replicas": n,
            "container": {"image": test_image(), "command": ["sleep", "3600"]},
        },
    });
    let path = format!("/apis/nanocl.io/v1/namespaces/{ns}/cargoes");
    let since = std::time::SystemTime::now();
    let client = Client::new(Host::parse(Some(&d.host)).ok()?);
    match client.request(Method::POST, &path, Some(&cargo)).await {
        Ok(answer) if answer.status.is_success() => {}
        Ok(answer) => {
            println!("  API apply failed: {}", answer.error_message());
            return None;
        }
        Err(e) => {
            println!("  API apply failed: {e}");
            return None;
        }
    }
    Some(since)
}

/// CPU ticks (10 ms) of the host's dockerd so far.
fn dockerd_ticks() -> Option<u64> {
    let pid = std::fs::read_to_string("/var/run/docker.pid").ok()?;
    proc_stat(pid.trim().parse().ok()?).map(|(t, _)| t)
}

/// Creates and starts `n` labelled containers (untimed), then force-removes them all side by
/// side: the time of the removal.
async fn raw_remove(n: usize) -> Option<Duration> {
    let client = bollard::Docker::connect_with_local_defaults()
        .ok()?
        .negotiate_version()
        .await
        .ok()?;
    let label = format!("nanocl-bench-rawrm-{}", std::process::id());
    let mut ids = Vec::new();
    for i in 0..n {
        let body = ContainerCreateBody {
            image: Some(test_image()),
            cmd: Some(vec!["sleep".into(), "3600".into()]),
            labels: Some(HashMap::from([(
                "io.nanocl.bench".to_owned(),
                label.clone(),
            )])),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(format!("nanocl-bench-rawrm-{i}-{}", std::process::id())),
            ..Default::default()
        };
        let created = client.create_container(Some(options), body).await.ok()?;
        let _ = client
            .start_container(
                &created.id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await;
        ids.push(created.id);
    }
    let start = Instant::now();
    let tasks: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let client = client.clone();
            tokio::spawn(async move { force_remove(&client, &id).await })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    Some(start.elapsed())
}

fn bench_remove(rt: &tokio::runtime::Runtime) {
    println!("\n== remove a cargo of 50 replicas until none is left (median of 3), against raw parallel force-remove");
    let mut ours = Vec::new();
    let mut raw = Vec::new();
    for round in 0..3 {
        let d = Daemon::start_with_controllers(StoreKind::Embedded);
        let ns = format!("rm{round}p{}", std::process::id() % 10000);
        let label = format!("io.nanocl.namespace={ns}");
        nanocl_apply(&d, &manifests(&ns, &[("app".into(), 50)]));
        if wait_running(&label, 50, Duration::from_secs(180)).is_some() {
            let start = Instant::now();
            let out = d.nanocl(&["delete", "cargo", "app", "-n", &ns]);
            if !out.status.success() {
                println!("  delete failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            if wait_count(&label, 0, Duration::from_secs(120)).is_some() {
                ours.push(start.elapsed());
            }
        }
        drop(d);
        cleanup_label(&label);
        if let Some(t) = rt.block_on(raw_remove(50)) {
            raw.push(t);
        }
    }
    println!("  nanocl delete cargo  {}", spread(&ours));
    println!("  raw force-remove     {}", spread(&raw));
    println!("  ratio                {}", ratio(&ours, &raw));
}

fn bench_scale(rt: &tokio::runtime::Runtime, swarm: &Swarm) {
    println!("\n== scale 10 → 50 and 50 → 10 (median of 3), against Swarm's service scale (its tasks on the default bridge, on an overlay of the service's own where its name resolves as nanocl's replicas' alias does, on a bridge of its own), and 10 → 50 against raw Docker with nanocl's exact config (its bridge, alias and labels; window 8) and Compose's up --scale");
    let (mut up, mut down, mut raw_up, mut compose_up_times) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Swarm on the default bridge, on an overlay of its own, on a bridge of its own.
    let (mut sw_up, mut sw_down): ([Vec<Duration>; 3], [Vec<Duration>; 3]) = Default::default();
    for round in 0..3 {
        raw_up.push(rt.block_on(raw_docker(
            40,
            Raw {
                window: 8,
                like_nanocl: true,
                before: 10,
                warm: false,
            },
        )));
        let d = Daemon::start_with_controllers(StoreKind::Embedded);
        let ns = format!("sc{round}p{}", std::process::id() % 10000);
        let label = format!("io.nanocl.namespace={ns}");
        nanocl_apply(&d, &manifests(&ns, &[("app".into(), 10)]));
        if wait_running(&label, 10, Duration::from_secs(120)).is_some() {
            let (_, since) = nanocl_apply_at(&d, &manifests(&ns, &[("app".into(), 50)]));
            // The 40 new replicas' starts, timed by Docker's events as Swarm's are.
            if let Some(t) = started(&label, since, 40, Duration::from_secs(180)) {
                up.push(t);
                wait_running(&label, 50, Duration::from_secs(60));
                let start = nanocl_apply(&d, &manifests(&ns, &[("app".into(), 10)]));
                if wait_count(&label, 10, Duration::from_secs(120)).is_some() {
                    down.push(start.elapsed());
                }
            }
        }
        drop(d);
        cleanup_label(&label);

        if let Some(project) = Compose::new(&format!("nbcs{}r{round}", std::process::id())) {
            let label = project.label();
            if project.scale(10).is_some()
                && wait_running(&label, 10, Duration::from_secs(120)).is_some()
            {
                let since = std::time::SystemTime::now();
                if project.scale(50).is_some() {
                    compose_up_times.extend(started(&label, since, 40, Duration::from_secs(180)));
                }
            }
        }
        for (i, network) in [None, Some(&swarm.overlay), Some(&swarm.bridge)]
            .into_iter()
            .enumerate()
        {
            let name = format!("nanocl-bench-scale-{}-{round}-{i}", std::process::id());
            let (up, down) = swarm_scale(&name, network.map(String::as_str), &swarm.image_id);
            sw_up[i].extend(up);
            sw_down[i].extend(down);
        }
    }
    println!("  10 → 50: nanocl {}", spread(&up));
    println!(
        "  10 → 50: raw Docker like nanocl {}  nanocl's ratio to it {}",
        spread(&raw_up),
        ratio(&up, &raw_up)
    );
    println!(
        "  10 → 50: compose up --scale {}  nanocl's ratio to it {}",
        spread(&compose_up_times),
        ratio(&up, &compose_up_times)
    );
    println!("  50 → 10: nanocl {}", spread(&down));
    for (i, what) in ["default bridge", "own overlay", "own bridge"]
        .iter()
        .enumerate()
    {
        println!(
            "  swarm on its {what:<14}  10 → 50 {}  ratio {}   50 → 10 {}  ratio {}",
            spread(&sw_up[i]),
            ratio(&up, &sw_up[i]),
            spread(&sw_down[i]),
            ratio(&down, &sw_down[i])
        );
    }
}

/// A Swarm service of 10 scaled to 50 (until the 40 new tasks' starts) and back to 10
/// (until 10 run); on Docker's default bridge, or on `network`.
fn swarm_scale(
    name: &str,
    network: Option<&str>,
    image_id: &str,
) -> (Option<Duration>, Option<Duration>) {
    let extra: Vec<&str> = network.map_or_else(Vec::new, |net| vec!["--network", net]);
    let created = swarm_service(name, 10, &extra, image_id);
    let service = format!("com.docker.swarm.service.name={name}");
    let (mut up, mut down) = (None, None);
    if created.is_ok_and(|o| o.status.success())
        && wait_running(&service, 10, Duration::from_secs(120)).is_some()
    {
        let since = std::time::SystemTime::now();
        docker(&["service", "scale", "--detach", &format!("{name}=50")]);
        up = started(&service, since, 40, Duration::from_secs(180));
        if up.is_some() {
            wait_running(&service, 50, Duration::from_secs(60));
            let start = Instant::now();
            docker(&["service", "scale", "--detach", &format!("{name}=10")]);
            // Swarm shuts surplus tasks down (their containers stay, exited, as history).
            let limit = Instant::now() + Duration::from_secs(120);
            while running_count(&service) != 10 && Instant::now() < limit {
                std::thread::sleep(Duration::from_millis(20));
            }
            if running_count(&service) == 10 {
                down = Some(start.elapsed());
            }
        }
    }
    docker(&["service", "rm", name]);
    wait_count(&service, 0, Duration::from_secs(60));
    (up, down)
}

/// Docker's restart policy restarting a crashed process: a fresh container each sample (so
/// the policy's backoff starts at its first step), its process made to exit 1 by a signal;
/// from the signal to the restart's start event.
async fn restart_policy_heal(round: usize) -> Option<Heal> {
    let client = bollard::Docker::connect_with_local_defaults()
        .ok()?
        .negotiate_version()
        .await
        .ok()?;
    let name = format!("nanocl-bench-policy-{}-{round}", std::process::id());
    let body = ContainerCreateBody {
        image: Some(test_image()),
        cmd: Some(vec![
            "sh".into(),
            "-c".into(),
            "trap 'exit 1' USR1; sleep 3600 & wait".into(),
        ]),
        labels: Some(HashMap::from([(
            "io.nanocl.bench".to_owned(),
            name.clone(),
        )])),
        host_config: Some(bollard::models::HostConfig {
            restart_policy: Some(bollard::models::RestartPolicy {
                name: Some(bollard::models::RestartPolicyNameEnum::ALWAYS),
                maximum_retry_count: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptions {
        name: Some(name.clone()),
        ..Default::default()
    };
    let id = client.create_container(Some(options), body).await.ok()?.id;
    let _ = client
        .start_container(
            &id,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let took = heal_time(format!("io.nanocl.bench={name}"), Takedown::Crash, &id).await;
    force_remove(&client, &id).await;
    took
}

/// `docker service create --detach` of `replicas` sleepers named `name`, with `extra` flags.
fn swarm_service(
    name: &str,
    replicas: usize,
    extra: &[&str],
    image_id: &str,
) -> std::io::Result<std::process::Output> {
    Command::new("docker")
        .args(["service", "create", "--detach", "--name", name])
        .args([
            "--replicas",
            &replicas.to_string(),
            "--label",
            "nanocl-bench=1",
        ])
        .args(extra)
        .args([image_id, "sleep", "3600"])
        .output()
}

/// Swarm replacing a killed task (`--restart-delay 0`): from the kill to the new task's start.
fn swarm_heal(swarm: &Swarm, rt: &tokio::runtime::Runtime) -> Vec<Heal> {
    let name = format!("nanocl-bench-heal-{}", std::process::id());
    let service = format!("com.docker.swarm.service.name={name}");
    let created = swarm_service(&name, 1, &["--restart-delay", "0s"], &swarm.image_id);
    let mut samples = Vec::new();
    if created.is_ok_and(|o| o.status.success())
        && wait_running(&service, 1, Duration::from_secs(60)).is_some()
    {
        for _ in 0..10 {
            let target = docker(&[
                "ps",
                "-q",
                "--filter",
                &format!("label={service}"),
                "--filter",
                "status=running",
            ]);
            let target = target.lines().next().unwrap_or("").to_owned();
            if let Some(t) = rt.block_on(heal_time(service.clone(), Takedown::Kill, &target)) {
                samples.push(t);
            }
            wait_running(&service, 1, Duration::from_secs(30));
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    docker(&["service", "rm", &name]);
    wait_count(&service, 0, Duration::from_secs(60));
    samples
}

fn bench_heal(rt: &tokio::runtime::Runtime, swarm: &Swarm) {
    println!("\n== self-heal (median of 10; from the Docker API kill/remove call to the replacement's start event)");
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let ns = format!("heal{}", std::process::id() % 100000);
    let label = format!("io.nanocl.namespace={ns}");
    nanocl_apply(&d, &manifests(&ns, &[("app".into(), 2)]));
    wait_running(&label, 2, Duration::from_secs(60));
    let mut ours = Vec::new();
    for takedown in [Takedown::Kill, Takedown::Remove] {
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
            if let Some(t) = rt.block_on(heal_time(label.clone(), takedown, &target)) {
                samples.push(t);
            }
            wait_running(&label, 2, Duration::from_secs(30));
            std::thread::sleep(Duration::from_millis(200));
        }
        ours.push(samples);
    }
    drop(d);
    cleanup_label(&label);
    let policy: Vec<Heal> = (0..10)
        .filter_map(|i| rt.block_on(restart_policy_heal(i)))
        .collect();
    let sw = swarm_heal(swarm, rt);
    let calls = |h: &[Heal]| h.iter().map(|h| h.from_call).collect::<Vec<_>>();
    let dies = |h: &[Heal]| h.iter().map(|h| h.from_die).collect::<Vec<_>>();
    let (kill, rm) = (&ours[0], &ours[1]);
    println!("  (from the call / from the die event)");
    println!(
        "  nanocl, docker kill       {}  /  {}",
        spread(&calls(kill)),
        spread(&dies(kill))
    );
    println!(
        "  nanocl, docker rm -f      {}  /  {}",
        spread(&calls(rm)),
        spread(&dies(rm))
    );
    println!(
        "  Docker restart policy     {}  /  {}  (a crash: exec kill -USR1 1)",
        spread(&calls(&policy)),
        spread(&dies(&policy))
    );
    println!(
        "  Swarm, restart-delay 0    {}  /  {}",
        spread(&calls(&sw)),
        spread(&dies(&sw))
    );
    println!(
        "  ratios from die: kill/policy {}, rm/policy {}; from the call: kill/swarm {}",
        ratio(&dies(kill), &dies(&policy)),
        ratio(&dies(rm), &dies(&policy)),
        ratio(&calls(kill), &calls(&sw))
    );
}

fn bench_idle() {
    println!("\n== nanocld at idle with 50 cargoes (1 replica each), measured over 20 s");
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let ns = format!("idle{}", std::process::id() % 100000);
    let label = format!("io.nanocl.namespace={ns}");
    let cargoes: Vec<(String, u32)> = (0..50).map(|i| (format!("c{i}"), 1)).collect();
    nanocl_apply(&d, &manifests(&ns, &cargoes));
    wait_running(&label, 50, Duration::from_secs(180));
    std::thread::sleep(Duration::from_secs(5));
    if let Some(pid) = nanocld_pid(&d) {
        if let Some((t0, _)) = proc_stat(pid) {
            let before = d.store_revision();
            std::thread::sleep(Duration::from_secs(20));
            let after = d.store_revision();
            if let Some((t1, rss)) = proc_stat(pid) {
                let hz = 100.0;
                println!(
                    "  CPU {:.2} % of one core, RSS {:.1} MiB, store writes {}",
                    (t1 - t0) as f64 / hz / 20.0 * 100.0,
                    rss as f64 / 1024.0,
                    match (before, after) {
                        (Some(b), Some(a)) => (a - b).to_string(),
                        _ => "unknown".into(),
                    }
                );
            }
        }
    }
    drop(d);
    cleanup_label(&label);
}

/// Polls `done` every 50 ms for up to `limit`; the time it took.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn bench_failover() {
    println!("failover: kill -9 of the leading nanocld (--role controller), another (--role all) on the same etcd (default TTLs)");
    let (mut takeover, mut acting) = (Vec::new(), Vec::new());
    for round in 0..5 {
        let ns = format!("bench-failover-{}-{round}", std::process::id());
        let label = format!("io.nanocl.namespace={ns}");
        // The leader runs no replicas (`--role controller`): the scale is the survivor's to
        // place and run, on its own node. (A dead leader that was also an agent would look
        // Ready for its node TTL, and the scheduler could place the new replica there.)
        let mut a = Daemon::start_with(
            StoreKind::Etcd,
            &["--node", "bench-a", "--role", "controller"],
        );
        if wait_for(Duration::from_secs(30), || a.leading() == Some(true)).is_none() {
            println!("  round {round}: a did not lead");
            continue;
        }
        let b = a.start_beside(&["--node", "bench-b"]);
        let ready = wait_for(Duration::from_secs(30), || {
            b.leading() == Some(false) && b.node_ready("bench-b").0 == "True"
        });
        nanocl_apply(&a, &manifests(&ns, &[("web".to_owned(), 1)]));
        if ready.is_none() || wait_running(&label, 1, Duration::from_secs(60)).is_none() {
            println!("  round {round}: not set up");
            continue;
        }
        // Somewhere within a renewal period, as a crash would be.
        std::thread::sleep(Duration::from_millis(300 * round as u64));
        a.kill9();
        let killed = Instant::now();
        let out = b.nanocl(&["-n", &ns, "scale", "cargo", "web", "--replicas", "2"]);
        if !out.status.success() {
            println!("  scale failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let (mut led, mut acted) = (None, None);
        while killed.elapsed() < Duration::from_secs(60) && (led.is_none() || acted.is_none()) {
            if led.is_none() && b.leading() == Some(true) {
                led = Some(killed.elapsed());
            }
            if acted.is_none() && running_count(&label) == 2 {
                acted = Some(killed.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        println!(
            "  round {round}: leading after {}, scale carried out after {}",
            led.map_or("-".into(), ms),
            acted.map_or("-".into(), ms),
        );
        takeover.extend(led);
        acting.extend(acted);
        let _ = b.nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "60s"]);
        drop(b);
        drop(a);
        cleanup_label(&label);
    }
    println!("  new leader leading:          {}", spread(&takeover));
    println!(
        "  new leader acting (scale):   {}   goal < 5 s",
        spread(&acting)
    );
}

/// Three agents on private daemons and one controller on the dev etcd (default node TTL,
/// 10 s); a cargo of 6 spread over the three; `kill -9` of the agent with the most replicas:
/// time until the other two run all 6. The agent then comes back and removes what was moved
/// away before the next round.
fn bench_hostloss() {
    use nanocl_e2e::hosts::PrivateDocker;
    println!("hostloss: kill -9 of an agent (3 agents on daemons of their own, 1 controller, dev etcd; default node TTL 10 s)");
    let dockers: Vec<PrivateDocker> = (0..3).map(|i| PrivateDocker::start(40 + i)).collect();
    let controller = Daemon::start_with(
        StoreKind::Etcd,
        &["--role", "controller", "--node", "bench-ctl"],
    );
    let agent = |i: usize| {
        let mut a =
            controller.start_beside(&["--role", "agent", "--node", &format!("bench-host-{i}")]);
        a.stop();
        a.set_env("DOCKER_HOST", &dockers[i].host());
        a.restart();
        a
    };
    let mut agents: Vec<Daemon> = (0..3).map(agent).collect();
    let ns = format!("bench-hostloss-{}", std::process::id());
    let web = |d: &PrivateDocker| {
        d.running(&format!("io.nanocl.namespace={ns}"))
            .iter()
            .filter(|n| n.starts_with("web-"))
            .count()
    };
    let ready = wait_for(Duration::from_secs(60), || {
        (0..3).all(|i| controller.node_ready(&format!("bench-host-{i}")).0 == "True")
    });
    nanocl_apply(&controller, &manifests(&ns, &[("web".to_owned(), 6)]));
    let spread_ok = wait_for(Duration::from_secs(90), || {
        dockers.iter().map(web).collect::<Vec<_>>() == vec![2, 2, 2]
    });
    if ready.is_none() || spread_ok.is_none() {
        println!(
            "  not set up: {:?}",
            dockers.iter().map(web).collect::<Vec<_>>()
        );
        return;
    }
    let mut moved = Vec::new();
    let mut removed = Vec::new();
    for round in 0..5 {
        let counts: Vec<usize> = dockers.iter().map(web).collect();
        let victim = (0..3).max_by_key(|i| counts[*i]).unwrap_or(0);
        // Somewhere within a renewal period, as a crash would be.
        std::thread::sleep(Duration::from_millis(200 * round as u64));
        agents[victim].kill9();
        let killed = Instant::now();
        let elsewhere = wait_for(Duration::from_secs(60), || {
            (0..3)
                .filter(|i| *i != victim)
                .map(|i| web(&dockers[i]))
                .sum::<usize>()
                == 6
        })
        .map(|_| killed.elapsed());
        agents[victim].restart();
        let back = Instant::now();
        let cleaned = wait_for(Duration::from_secs(60), || web(&dockers[victim]) == 0)
            .map(|_| back.elapsed());
        println!(
            "  round {round}: host-{victim} ({} replicas) killed: all 6 running on the others after {}; its {} removed {} after it came back",
            counts[victim],
            elsewhere.map_or("-".into(), ms),
            counts[victim],
            cleaned.map_or("-".into(), ms),
        );
        moved.extend(elsewhere);
        removed.extend(cleaned);
    }
    println!(
        "  host lost → its replicas running elsewhere: {}   goal < 15 s",
        spread(&moved)
    );
    println!(
        "  host back → the moved replicas removed from it: {}",
        spread(&removed)
    );
    let _ = controller.nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "60s"]);
    drop(agents);
}

/// A cargo of `n` replicas with a 1 s healthcheck running `check`, env VERSION=`version`.
fn rollout_manifest(ns: &str, n: u32, version: &str, check: &str) -> String {
    format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: roll, namespace: {ns}}}\nspec:\n  cluster: dev\n  replicas: {n}\n  update: {{progressDeadlineSeconds: 120}}\n  container:\n    image: {}\n    command: [sleep, \"3600\"]\n    env: {{VERSION: \"{version}\"}}\n    healthcheck: {{command: [sh, -c, \"{check}\"], interval: 1s, timeout: 1s, retries: 1}}\n",
        test_image()
    )
}

fn cargo_status(d: &Daemon, ns: &str, name: &str) -> serde_json::Value {
    let out = d.nanocl(&["-n", ns, "get", "cargo", name, "-o", "json"]);
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()["status"].clone()
}

fn healthy_count(label: &str) -> usize {
    docker(&[
        "ps",
        "--filter",
        &format!("label={label}"),
        "--filter",
        "health=healthy",
        "-q",
    ])
    .lines()
    .count()
}

fn bench_rollout(swarm: &Swarm) {
    println!("\n== rollout of 10 replicas, healthcheck every 1 s (median of 3): a good update until every replica is new and healthy; an update to a failing check until the automatic rollback completed");
    let (mut ours_good, mut ours_bad, mut sw_good, mut sw_bad) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let ns = format!("roll{}", std::process::id() % 100000);
    let label = format!("io.nanocl.namespace={ns}");
    nanocl_apply(&d, &rollout_manifest(&ns, 10, "v0", "true"));
    let settled = |revision: u64| {
        move |s: &serde_json::Value| {
            s["rollout"]["phase"] == "Complete" && s["currentRevision"] == revision
        }
    };
    wait_for(Duration::from_secs(120), || {
        settled(1)(&cargo_status(&d, &ns, "roll")) && healthy_count(&label) == 10
    });
    let mut revision = 1;
    for round in 0..3 {
        let start = nanocl_apply(
            &d,
            &rollout_manifest(&ns, 10, &format!("v{}", round + 1), "true"),
        );
        revision += 1;
        let done = wait_for(Duration::from_secs(180), || {
            settled(revision)(&cargo_status(&d, &ns, "roll"))
        });
        if done.is_some() {
            ours_good.push(start.elapsed());
        }
        wait_for(Duration::from_secs(30), || healthy_count(&label) == 10);
        let start = nanocl_apply(
            &d,
            &rollout_manifest(&ns, 10, &format!("bad{round}"), "exit 1"),
        );
        revision += 1;
        let done = wait_for(Duration::from_secs(180), || {
            let s = cargo_status(&d, &ns, "roll");
            s["rollout"]["phase"] == "RolledBack"
                && s["updateRevision"] == revision
                && count_all(&label) == 10
                && healthy_count(&label) == 10
        });
        if done.is_some() {
            ours_bad.push(start.elapsed());
        }
    }
    drop(d);
    cleanup_label(&label);

    let name = format!("nanocl-bench-roll-{}", std::process::id());
    let service = format!("com.docker.swarm.service.name={name}");
    let created = swarm_service(
        &name,
        10,
        &[
            "--health-cmd",
            "true",
            "--health-interval",
            "1s",
            "--health-timeout",
            "1s",
            "--health-retries",
            "1",
            "--update-parallelism",
            "1",
            "--update-failure-action",
            "rollback",
            "--update-order",
            "start-first",
            "--env",
            "VERSION=v0",
        ],
        &swarm.image_id,
    );
    let state = || docker(&["service", "inspect", "-f", "{{.UpdateStatus.State}}", &name]);
    if created.is_ok_and(|o| o.status.success())
        && wait_for(Duration::from_secs(120), || healthy_count(&service) == 10).is_some()
    {
        for round in 0..3 {
            let start = Instant::now();
            docker(&[
                "service",
                "update",
                "--detach",
                "--env-add",
                &format!("VERSION=v{}", round + 1),
                &name,
            ]);
            if wait_for(Duration::from_secs(300), || state() == "completed").is_some() {
                sw_good.push(start.elapsed());
            }
            let start = Instant::now();
            docker(&[
                "service",
                "update",
                "--detach",
                "--env-add",
                &format!("VERSION=bad{round}"),
                "--health-cmd",
                "exit 1",
                &name,
            ]);
            if wait_for(Duration::from_secs(300), || state() == "rollback_completed").is_some() {
                sw_bad.push(start.elapsed());
            }
            wait_for(Duration::from_secs(60), || healthy_count(&service) == 10);
        }
    }
    docker(&["service", "rm", &name]);
    wait_count(&service, 0, Duration::from_secs(60));
    println!(
        "  {:<32} {:>14} {:>14} {:>9}",
        "", "nanocl", "swarm", "ratio"
    );
    for (what, ours, peer) in [
        ("good update, 10 replicas", &ours_good, &sw_good),
        ("failing update → rolled back", &ours_bad, &sw_bad),
    ] {
        println!(
            "  {what:<32} {:>14} {:>14} {:>9}   nanocl {} swarm {}",
            if ours.is_empty() {
                "n/a".into()
            } else {
                ms(median(ours.clone()))
            },
            if peer.is_empty() {
                "n/a".into()
            } else {
                ms(median(peer.clone()))
            },
            ratio(ours, peer),
            spread(ours),
            spread(peer),
        );
    }
}

/// The nanocld process of `d`, by its state directory on the command line.
fn nanocld_pid(d: &Daemon) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .map(|c| c.contains("nanocld") && c.contains(&d.dir.path().display().to_string()))
                .unwrap_or(false)
        })
}

fn autoscale_manifest(
    ns: &str,
    name: &str,
    replicas: u32,
    bounds: Option<(u32, u32)>,
    command: &str,
) -> String {
    let scale = bounds.map_or(String::new(), |(min, max)| {
        format!("  autoscale: {{minReplicas: {min}, maxReplicas: {max}, targetCPUUtilizationPercent: 50}}\n")
    });
    format!(
        "apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  cluster: dev\n  replicas: {replicas}\n{scale}  container:\n    image: {}\n    command: [sh, -c, \"{command}\"]\n    resources: {{cpus: 0.1}}\n",
        test_image()
    )
}

fn bench_autoscale(rt: &tokio::runtime::Runtime) {
    println!("\n== autoscaler: from a replica starting to burn its CPU (0.1 CPU, target 50 %) to the first scale-up decision (median of 3)");
    for interval in ["15s", "5s"] {
        let mut reactions = Vec::new();
        for round in 0..3 {
            let d = Daemon::start_with(StoreKind::Embedded, &["--metrics-interval", interval]);
            let ns = format!("as{round}p{}", std::process::id() % 100000);
            let label = format!("io.nanocl.namespace={ns}");
            let base = format!(
                "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
                 apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n---\n"
            );
            // The load starts 8 s after the container, at a random point of the interval.
            nanocl_apply(
                &d,
                &format!(
                    "{base}{}",
                    autoscale_manifest(
                        &ns,
                        "burn",
                        1,
                        Some((1, 4)),
                        "sleep 8; while :; do :; done"
                    )
                ),
            );
            if wait_running(&label, 1, Duration::from_secs(60)).is_some() {
                let id = docker(&["ps", "-q", "--filter", &format!("label={label}")]);
                let started = docker(&["inspect", "-f", "{{.State.StartedAt}}", id.trim()]);
                let load = humantime::parse_rfc3339(started.trim())
                    .ok()
                    .map(|t| t + Duration::from_secs(8));
                let decided = wait_for(Duration::from_secs(120), || {
                    cargo_status(&d, &ns, "burn")["autoscale"]["desiredReplicas"]
                        .as_i64()
                        .unwrap_or(0)
                        >= 2
                });
                if let (Some(load), Some(_)) = (load, decided) {
                    if let Ok(took) = std::time::SystemTime::now().duration_since(load) {
                        reactions.push(took);
                    }
                }
            }
            drop(d);
            cleanup_label(&label);
        }
        println!(
            "  --metrics-interval {interval:>4}: {} {}   (goal: under the interval + 1 s)",
            if reactions.is_empty() {
                "n/a".into()
            } else {
                ms(median(reactions.clone()))
            },
            spread(&reactions)
        );
    }

    // What sampling costs.
    let d = Daemon::start_with(StoreKind::Embedded, &["--metrics-interval", "15s"]);
    let ns = format!("ascost{}", std::process::id() % 100000);
    let label = format!("io.nanocl.namespace={ns}");
    let base = format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n---\n"
    );
    let cpu_over = |seconds: u64| -> Option<f64> {
        let pid = nanocld_pid(&d)?;
        let (t0, _) = proc_stat(pid)?;
        std::thread::sleep(Duration::from_secs(seconds));
        let (t1, _) = proc_stat(pid)?;
        Some((t1 - t0) as f64 / 100.0 / seconds as f64 * 100.0)
    };
    nanocl_apply(
        &d,
        &format!(
            "{base}{}",
            autoscale_manifest(&ns, "idle", 20, None, "sleep 3600")
        ),
    );
    wait_running(&label, 20, Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(5));
    let without = cpu_over(30);
    nanocl_apply(
        &d,
        &format!(
            "{base}{}",
            autoscale_manifest(&ns, "idle", 20, Some((20, 20)), "sleep 3600")
        ),
    );
    std::thread::sleep(Duration::from_secs(20));
    let with = cpu_over(30);
    // Docker's own one-shot stats (what a remote engine is asked): a container's first call
    // and the ones after it.
    let id = docker(&["ps", "-q", "--filter", &format!("label={label}")])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let client = &api().1;
    let mut calls = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let mut s = client.stats(
            &id,
            Some(bollard::query_parameters::StatsOptions {
                stream: false,
                one_shot: true,
            }),
        );
        if rt.block_on(s.next()).is_some_and(|r| r.is_ok()) {
            calls.push(start.elapsed());
        }
    }
    println!(
        "  nanocld CPU with 20 replicas, interval 15 s: {} without autoscale, {} with (cgroup files read on the engine's host); Docker's one-shot stats call, 5 in a row on one container: {}",
        without.map_or("n/a".into(), |c| format!("{c:.2} %")),
        with.map_or("n/a".into(), |c| format!("{c:.2} %")),
        calls.iter().map(|c| ms(*c)).collect::<Vec<_>>().join(", "),
    );
    drop(d);
    cleanup_label(&label);
}

fn git_in(dir: &std::path::Path, args: &[&str]) -> bool {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@nanocl.invalid")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@nanocl.invalid")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A new commit of `repo` whose page (and so the image's last layer) is `page`.
fn commit_page(repo: &std::path::Path, page: &str) {
    std::fs::write(repo.join("page.txt"), page).expect("page");
    git_in(repo, &["add", "-A"]);
    git_in(repo, &["commit", "-qm", page]);
}

fn bench_build() {
    println!("\n== build from git → running: a cargo built from a local repository (file://, a new commit each round, the base image local) against doing it by hand: git clone --depth 1 && docker build && docker run -d (median of 3); re-apply of an unchanged commit; a new commit on a polled branch (poll: 2s) until its container runs");
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let ns = format!("bench-build-{}", std::process::id());
    let label = format!("io.nanocl.namespace={ns}");
    let hand_label = format!("nanocl-bench-build={}", std::process::id());
    let work = tempfile::tempdir().expect("tmp");
    let repo = work.path().join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    git_in(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(
        repo.join("Dockerfile"),
        format!(
            "FROM {}\nCOPY page.txt /page.txt\nRUN wc -c /page.txt > /size.txt\nCMD [\"sleep\", \"3600\"]\n",
            test_image()
        ),
    )
    .expect("Dockerfile");
    commit_page(&repo, "warm-up");
    let url = format!("file://{}", repo.display());
    let base = manifests(&ns, &[]);
    nanocl_apply(&d, &base);
    let cargo = |name: &str, poll: &str| {
        format!(
            "apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  cluster: dev\n  container:\n    build: {{git: {{url: \"{url}\", ref: main{poll}}}}}\n"
        )
    };
    // Warm-up: the namespace's network, the base image's layers in both paths.
    nanocl_apply(&d, &cargo("warm", ""));
    wait_running("io.nanocl.cargo=warm", 1, Duration::from_secs(120));
    let (mut ours, mut hand) = (Vec::new(), Vec::new());
    for round in 0..3 {
        commit_page(&repo, &format!("nanocl round {round}"));
        let name = format!("b{round}");
        let start = nanocl_apply(&d, &cargo(&name, ""));
        let cargo_label = format!("io.nanocl.cargo={name}");
        let deadline = Instant::now() + Duration::from_secs(180);
        while count(&label, true) < 2 + round || running_count(&cargo_label) < 1 {
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        ours.push(start.elapsed());

        commit_page(&repo, &format!("by hand round {round}"));
        let clone = work.path().join(format!("clone-{round}"));
        let tag = format!("nanocl-bench/by-hand:{round}");
        let start = Instant::now();
        let cloned = Command::new("git")
            .args(["clone", "-q", "--depth", "1", &url])
            .arg(&clone)
            .status()
            .is_ok_and(|s| s.success());
        let built = cloned
            && Command::new("/usr/bin/docker")
                .args(["build", "-q", "-t", &tag, "--label", &hand_label])
                .arg(&clone)
                .stdout(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        let ran = built
            && Command::new("/usr/bin/docker")
                .args(["run", "-d", "--label", &hand_label, &tag])
                .stdout(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        if ran {
            hand.push(start.elapsed());
        }
    }
    println!(
        "  apply → running: nanocl {}, by hand {} (ratio of medians {})",
        spread(&ours),
        spread(&hand),
        ratio(&ours, &hand)
    );

    // Re-apply of the last cargo, its commit unchanged: no build.
    let last = cargo("b2", "");
    let mut reapply = Vec::new();
    for _ in 0..5 {
        let start = nanocl_apply(&d, &last);
        reapply.push(start.elapsed());
    }
    let status = d.nanocl(&["-n", &ns, "get", "cargo", "b2", "-o", "json"]);
    let built: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
    println!(
        "  re-apply of an unchanged commit: {} (nanocl apply, start to exit; the build still the one of {})",
        spread(&reapply),
        built["status"]["build"]["started"].as_str().unwrap_or("?")
    );

    // A polled branch: commit → the new image's container running.
    nanocl_apply(&d, &cargo("follow", ", poll: 2s"));
    wait_running("io.nanocl.cargo=follow", 1, Duration::from_secs(120));
    let mut follow = Vec::new();
    for round in 0..3 {
        let before = docker(&[
            "ps",
            "-q",
            "--filter",
            "label=io.nanocl.cargo=follow",
            "--filter",
            &format!("label={label}"),
        ]);
        commit_page(&repo, &format!("followed {round}"));
        let start = Instant::now();
        let deadline = start + Duration::from_secs(120);
        loop {
            let now = docker(&[
                "ps",
                "-q",
                "--filter",
                "label=io.nanocl.cargo=follow",
                "--filter",
                &format!("label={label}"),
                "--filter",
                "status=running",
            ]);
            if !now.is_empty() && now.lines().all(|id| !before.contains(id)) {
                follow.push(start.elapsed());
                break;
            }
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    println!(
        "  new commit → its replica running, poll 2 s: {} (the poll interval included: on average half of it)",
        spread(&follow)
    );
    let out = d.nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "120s"]);
    if !out.status.success() {
        println!("  delete failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    drop(d);
    cleanup_label(&label);
    cleanup_label(&hand_label);
    for filter in [
        format!("reference=nanocl.local/{ns}/*"),
        format!("label={hand_label}"),
    ] {
        for id in docker(&["images", "-q", "--filter", &filter]).lines() {
            docker(&["rmi", "-f", id]);
        }
    }
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("runtime: {e}"));
    let asked: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |section: &str| asked.is_empty() || asked.iter().any(|a| a == section);
    let swarm = Swarm::join();
    if run("apply") {
        bench_apply(&rt, &swarm);
    }
    if run("remove") {
        bench_remove(&rt);
    }
    if run("scale") {
        bench_scale(&rt, &swarm);
    }
    if run("heal") {
        bench_heal(&rt, &swarm);
    }
    if run("idle") {
        bench_idle();
    }
    if run("failover") {
        bench_failover();
    }
    if run("hostloss") {
        bench_hostloss();
    }
    if run("rollout") {
        bench_rollout(&swarm);
    }
    if run("autoscale") {
        bench_autoscale(&rt);
    }
    if run("build") {
        bench_build();
    }
}
