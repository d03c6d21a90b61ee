//! Rollouts against the real dockerd: a change replaces replicas within `maxSurge` and
//! `maxUnavailable`, counting a new replica only once Docker says it is healthy; an update
//! whose replicas never get healthy fails at its deadline and rolls back, one whose replicas
//! turn unhealthy fails at once; `Recreate` never runs two revisions together. A probe samples
//! the cargo's containers every 50 ms straight from the Docker API throughout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::query_parameters::ListContainersOptions;
use nanocl_e2e::docker::{containers, running, wait_until, Scope};
use nanocl_e2e::{condition, stderr, stdout, test_image, Daemon, StoreKind};

fn base(ns: &str) -> String {
    format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n"
    )
}

/// A cargo of `replicas` whose healthcheck runs `check` every second; `update` is the
/// `spec.update` block (flow style), `version` an env value that makes each spec differ.
fn cargo(ns: &str, replicas: u32, version: &str, check: &str, update: &str) -> String {
    format!(
        "apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  cluster: dev\n  replicas: {replicas}\n  update: {update}\n  container:\n    image: {}\n    command: [sleep, \"600\"]\n    env: {{VERSION: \"{version}\"}}\n    healthcheck: {check}\n",
        test_image()
    )
}

const HEALTHY: &str = "{command: [sh, -c, \"true\"], interval: 1s, timeout: 1s, retries: 1}";

/// One sample: (containers of the cargo, healthy ones, the VERSION label of each healthy one
/// is not visible in a listing: the healthy containers' names).
#[derive(Clone, Debug)]
struct Sample {
    containers: usize,
    healthy: usize,
    running: usize,
}

/// Samples the containers of `labels` every 50 ms until stopped.
struct Probe {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Sample>>,
}

impl Probe {
    fn start(labels: Vec<String>) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let docker = bollard::Docker::connect_with_local_defaults().expect("docker");
                let filters: HashMap<String, Vec<String>> =
                    HashMap::from([("label".to_owned(), labels)]);
                let mut samples = Vec::new();
                while !flag.load(Ordering::Relaxed) {
                    let listed = docker
                        .list_containers(Some(ListContainersOptions {
                            all: true,
                            filters: Some(filters.clone()),
                            ..Default::default()
                        }))
                        .await
                        .expect("list containers");
                    let status = |c: &bollard::models::ContainerSummary| {
                        c.status.clone().unwrap_or_default()
                    };
                    samples.push(Sample {
                        containers: listed.len(),
                        healthy: listed
                            .iter()
                            .filter(|c| status(c).contains("(healthy)"))
                            .count(),
                        running: listed
                            .iter()
                            .filter(|c| status(c).starts_with("Up"))
                            .count(),
                    });
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                samples
            })
        });
        Probe { stop, thread }
    }

    fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("probe")
    }
}

fn status(d: &Daemon, ns: &str) -> serde_json::Value {
    let out = d.nanocl(&["-n", ns, "get", "cargo", "web", "-o", "json"]);
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()["status"].clone()
}

fn healthy(labels: &[String]) -> usize {
    nanocl_e2e::docker::docker(
        &{
            let mut args = vec![
                "ps".to_owned(),
                "--format".to_owned(),
                "{{.Status}}".to_owned(),
            ];
            for l in labels {
                args.push("--filter".into());
                args.push(format!("label={l}"));
            }
            args
        }
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    )
    .lines()
    .filter(|l| l.contains("(healthy)"))
    .count()
}

/// The VERSION env of every running container of the cargo.
fn versions(labels: &[String]) -> Vec<String> {
    let mut out: Vec<String> = running(labels)
        .iter()
        .map(|name| {
            let env = nanocl_e2e::docker::docker(&[
                "inspect",
                "-f",
                "{{range .Config.Env}}{{println .}}{{end}}",
                name,
            ]);
            env.lines()
                .find_map(|l| l.strip_prefix("VERSION="))
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    out.sort();
    out
}

fn events(d: &Daemon, ns: &str) -> String {
    stdout(&d.nanocl(&["-n", ns, "events"]))
}

/// A daemon running cargo `web` of `replicas` healthy v1 replicas with `update`, its first
/// revision complete; the scope that cleans up, and the cargo's label filters.
fn started(test: &str, replicas: u32, update: &str) -> (Scope, Daemon, Vec<String>) {
    let scope = Scope::new(test);
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    d.apply(&format!(
        "{}---\n{}",
        base(&scope.ns),
        cargo(&scope.ns, replicas, "v1", HEALTHY, update)
    ));
    let web = scope.cargo("web");
    wait_until("healthy replicas of v1", || {
        healthy(&web) == replicas as usize
    });
    wait_until("revision 1 complete", || {
        status(&d, &scope.ns)["rollout"]["phase"] == "Complete"
    });
    (scope, d, web)
}

#[test]
fn an_update_whose_replicas_never_get_healthy_should_fail_at_its_deadline_and_roll_back() {
    let update = "{maxSurge: 1, maxUnavailable: 0, progressDeadlineSeconds: 6}";
    let (scope, d, web) = started("rollback", 3, update);
    let ns = scope.ns.clone();

    // v2 never gets healthy: its check fails, but within a start period that outlasts the
    // deadline Docker keeps it `starting`.
    let probe = Probe::start(web.clone());
    let never = "{command: [sh, -c, \"exit 1\"], interval: 1s, retries: 1, startPeriod: 120s}";
    let started = Instant::now();
    d.apply(&cargo(&ns, 3, "v2", never, update));
    let out = d.nanocl(&[
        "-n",
        &ns,
        "rollout",
        "status",
        "cargo",
        "web",
        "--timeout",
        "120s",
    ]);
    let failed_after = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(1),
        "rollout status of a failed update: {}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("rolled back to revision 1"),
        "{}",
        stderr(&out)
    );
    assert_eq!(status(&d, &ns)["rollout"]["phase"], "RolledBack");
    wait_until("back to 3 containers, all v1 and healthy", || {
        containers(&web).len() == 3 && healthy(&web) == 3
    });
    let samples = probe.finish();
    assert!(samples.len() > 20, "the probe sampled: {}", samples.len());
    assert!(
        samples.iter().all(|s| s.healthy >= 3),
        "maxUnavailable 0: never fewer than 3 healthy: {:?}",
        samples.iter().map(|s| s.healthy).collect::<Vec<_>>()
    );
    assert!(
        samples.iter().all(|s| s.containers <= 4),
        "maxSurge 1: never more than 4 containers: {:?}",
        samples.iter().map(|s| s.containers).collect::<Vec<_>>()
    );
    assert!(
        failed_after >= Duration::from_secs(6),
        "failed at the deadline, not before: {failed_after:?}"
    );
    assert_eq!(versions(&web), vec!["v1", "v1", "v1"]);
    let s = status(&d, &ns);
    assert_eq!(s["currentRevision"], 1, "{s:#}");
    assert_eq!(s["updateRevision"], 2, "{s:#}");
    let revisions = s["revisions"].as_array().cloned().unwrap_or_default();
    let failed = revisions
        .iter()
        .find(|r| r["revision"] == 2)
        .and_then(|r| r["failed"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(
        failed.starts_with("ProgressDeadlineExceeded: no progress for 6s"),
        "{failed}"
    );
    assert_eq!(
        condition(&s, "Progressing"),
        ("False".to_owned(), "RolledBack".to_owned())
    );
    let message = s["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"))
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("revision 2 failed") && message.contains("rolled back to revision 1"),
        "{message}"
    );
    assert_eq!(
        condition(&s, "Ready").1,
        "RolledBack",
        "the spec as written does not run"
    );
    let events = events(&d, &ns);
    assert!(
        events.contains("RolloutFailed") && events.contains("rolling back to revision 1"),
        "{events}"
    );
    assert!(events.contains("RolledBack"), "{events}");

    // Applying the same failed file again changes nothing: no loop.
    d.apply(&cargo(&ns, 3, "v2", never, update));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(versions(&web), vec!["v1", "v1", "v1"]);
    assert_eq!(containers(&web).len(), 3);

    // A replica that turns unhealthy fails its update at once, well before the deadline.
    let probe = Probe::start(web.clone());
    let unhealthy = "{command: [sh, -c, \"exit 1\"], interval: 1s, timeout: 1s, retries: 1}";
    let started = Instant::now();
    d.apply(&cargo(
        &ns,
        3,
        "v3",
        unhealthy,
        "{maxSurge: 1, maxUnavailable: 0, progressDeadlineSeconds: 300}",
    ));
    wait_until("the unhealthy update rolled back", || {
        let s = status(&d, &ns);
        s["updateRevision"] == 3 && s["rollout"]["phase"] == "RolledBack"
    });
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "failed on the health check, not the 300 s deadline"
    );
    wait_until("back to 3 healthy v1 containers", || {
        containers(&web).len() == 3 && healthy(&web) == 3
    });
    let samples = probe.finish();
    assert!(samples.iter().all(|s| s.healthy >= 3 && s.containers <= 4));
    let s = status(&d, &ns);
    let failed = s["revisions"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["revision"] == 3))
        .and_then(|r| r["failed"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(failed.starts_with("Unhealthy: replica"), "{failed}");
    assert_eq!(versions(&web), vec!["v1", "v1", "v1"]);
    let out = d.nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_good_update_should_surge_two_at_a_time_and_never_drop_below_six_ready() {
    let update = "{maxSurge: 2, maxUnavailable: 0}";
    let (scope, d, web) = started("surge", 6, update);
    let ns = scope.ns.clone();
    let probe = Probe::start(web.clone());
    d.apply(&cargo(&ns, 6, "v2", HEALTHY, update));
    let out = d.nanocl(&[
        "-n",
        &ns,
        "rollout",
        "status",
        "cargo",
        "web",
        "--timeout",
        "120s",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "rollout status: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("successfully rolled out (revision 2)"),
        "{}",
        stdout(&out)
    );
    let s = status(&d, &ns);
    assert!(
        s["rollout"]["phase"] == "Complete" && s["currentRevision"] == 2,
        "{s:#}"
    );
    let samples = probe.finish();
    assert!(samples.len() > 20, "the probe sampled: {}", samples.len());
    let most = samples.iter().map(|s| s.containers).max().unwrap_or(0);
    assert!(
        samples.iter().all(|s| s.containers <= 8),
        "maxSurge 2: at most 8 containers: {:?}",
        samples.iter().map(|s| s.containers).collect::<Vec<_>>()
    );
    assert!(
        most > 6,
        "the update surged (at most {most} containers at once)"
    );
    assert!(
        samples.iter().all(|s| s.healthy >= 6),
        "maxUnavailable 0: at least 6 ready at every instant: {:?}",
        samples.iter().map(|s| s.healthy).collect::<Vec<_>>()
    );
    assert_eq!(versions(&web), vec!["v2"; 6]);
    assert_eq!(containers(&web).len(), 6);
    let s = status(&d, &ns);
    assert_eq!(s["updatedReplicas"], 6, "{s:#}");
    assert_eq!(s["readyReplicas"], 6, "{s:#}");
    let change = s["revisions"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["revision"] == 2))
        .map(|r| r["change"].clone());
    assert_eq!(change, Some(serde_json::json!("env VERSION")));
    let out = d.nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn recreate_should_never_run_two_revisions_at_once() {
    let update = "{strategy: Recreate}";
    let (scope, d, web) = started("recreate", 3, update);
    let ns = scope.ns.clone();
    let probe = Probe::start(web.clone());
    let mut mixed = Vec::new();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (web, stop) = (web.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                seen.push(versions(&web));
            }
            seen
        })
    };
    d.apply(&cargo(&ns, 3, "v2", HEALTHY, update));
    wait_until("revision 2 complete", || {
        let s = status(&d, &ns);
        s["rollout"]["phase"] == "Complete" && s["currentRevision"] == 2
    });
    stop.store(true, Ordering::Relaxed);
    for v in watcher.join().expect("watcher") {
        if v.iter().any(|x| x == "v1") && v.iter().any(|x| x == "v2") {
            mixed.push(v);
        }
    }
    let samples = probe.finish();
    assert!(mixed.is_empty(), "two revisions ran together: {mixed:?}");
    assert!(
        samples.iter().all(|s| s.containers <= 3),
        "Recreate adds no container"
    );
    assert!(
        samples.iter().any(|s| s.running == 0),
        "Recreate stops every old replica before starting a new one"
    );
    assert_eq!(versions(&web), vec!["v2"; 3]);
    let out = d.nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
