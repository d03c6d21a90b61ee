//! The autoscaler against the real dockerd: a cargo burning its CPU scales up toward its
//! maximum, and back down once idle, after its (shortened) stabilization window; `apply` and
//! `diff` of the unchanged file never fight the autoscaler.

use std::time::{Duration, Instant};

use nanocl_e2e::docker::{running, wait_until, Scope};
use nanocl_e2e::{stderr, stdout, test_image, Daemon, StoreKind};

fn manifest(ns: &str, command: &str) -> String {
    format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: burn, namespace: {ns}}}\nspec:\n  cluster: dev\n  replicas: 1\n  autoscale: {{minReplicas: 1, maxReplicas: 4, targetCPUUtilizationPercent: 50, scaleDownStabilizationSeconds: 6}}\n  container:\n    image: {}\n    command: [sh, -c, \"{command}\"]\n    resources: {{cpus: 0.1}}\n",
        test_image()
    )
}

fn status(d: &Daemon, ns: &str) -> serde_json::Value {
    let out = d.nanocl(&["-n", ns, "get", "cargo", "burn", "-o", "json"]);
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()["status"].clone()
}

fn long_wait(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_busy_cargo_should_scale_up_and_back_down_without_apply_fighting_it() {
    let scope = Scope::new("autoscale");
    let ns = scope.ns.clone();
    let d = Daemon::start_with(StoreKind::Embedded, &["--metrics-interval", "1s"]);
    let file = d.dir.path().join("burn.yaml");
    std::fs::write(&file, manifest(&ns, "while :; do :; done")).expect("write");
    let path = file.display().to_string();
    let out = d.nanocl(&["apply", "-f", &path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let burn = scope.cargo("burn");
    wait_until("1 replica", || running(&burn).len() == 1);

    // Each replica burns its 0.1 CPU (100 % of it, twice the 50 % target): 1 → 2 → 4.
    long_wait("4 replicas", Duration::from_secs(90), || {
        running(&burn).len() == 4
    });
    let s = status(&d, &ns);
    assert_eq!(s["autoscale"]["desiredReplicas"], 4, "{s:#}");
    assert!(
        s["autoscale"]["currentCPUUtilizationPercent"]
            .as_i64()
            .unwrap_or(0)
            > 60,
        "{s:#}"
    );
    let events = stdout(&d.nanocl(&["-n", &ns, "events"]));
    assert!(
        events.contains("ScaledUp") && events.contains("to 4: CPU"),
        "{events}"
    );
    // The file still says `replicas: 1`: applying it again changes nothing, and diff sees
    // no difference.
    let out = d.nanocl(&["apply", "-f", &path]);
    assert!(stdout(&out).contains("unchanged"), "{}", stdout(&out));
    let out = d.nanocl(&["diff", "-f", &path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "diff: {}{}",
        stdout(&out),
        stderr(&out)
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(running(&burn).len(), 4, "it stays at its maximum");
    let metrics = d.metrics();
    let ups: u32 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("nanocl_autoscale_decisions_total{direction=\"up\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        (2..=3).contains(&ups),
        "1 → 4 by doubling at most: {metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "nanocl_cargo_replicas{{namespace=\"{ns}\",cargo=\"burn\"}} 4"
        )),
        "{metrics}"
    );

    // Idle now: back to 1 once the use stayed low for the 6 s window.
    std::fs::write(&file, manifest(&ns, "sleep 600")).expect("write");
    let out = d.nanocl(&["apply", "-f", &path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let idle_since = Instant::now();
    long_wait("stabilizing", Duration::from_secs(60), || {
        status(&d, &ns)["autoscale"]["reason"] == "ScaleDownStabilizing"
    });
    let out = d.nanocl(&["diff", "-f", &path]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "diff while stabilizing: {}",
        stdout(&out)
    );
    long_wait("1 replica", Duration::from_secs(90), || {
        let s = status(&d, &ns);
        s["autoscale"]["desiredReplicas"] == 1 && running(&burn).len() == 1
    });
    assert!(
        idle_since.elapsed() >= Duration::from_secs(6),
        "not before the window"
    );
    let events = stdout(&d.nanocl(&["-n", &ns, "events"]));
    assert!(events.contains("ScaledDown"), "{events}");
    let out = d.nanocl(&["diff", "-f", &path]);
    assert_eq!(out.status.code(), Some(0), "diff after: {}", stdout(&out));
    let out = d.nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
