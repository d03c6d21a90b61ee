//! Several nanocld on one etcd: each registers its Node; exactly one leads and runs the
//! controllers; when it is killed, another takes over within the lease's TTL, marks the dead
//! one's node NotReady, and carries out what is asked of it next.

use std::time::{Duration, Instant};

use nanocl_e2e::docker::{running, wait_until, Scope};
use nanocl_e2e::{stderr, stdout, test_image, Daemon, StoreKind};

const LEADING: &str = "nanocl_controllers_leading 1";
const WAITING: &str = "nanocl_controllers_leading 0";

fn leading(d: &Daemon) -> Option<bool> {
    let text = d.metrics();
    if text.lines().any(|l| l == LEADING) {
        Some(true)
    } else if text.lines().any(|l| l == WAITING) {
        Some(false)
    } else {
        None
    }
}

/// The `Ready` condition of node `name` as `d` serves it: (status, reason).
fn node_ready(d: &Daemon, name: &str) -> (String, String) {
    let out = d.nanocl(&["get", "node", name, "-o", "json"]);
    let node: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    node["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_owned(),
                c["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .unwrap_or_default()
}

fn apply(d: &Daemon, yaml: &str) {
    let file = d.dir.path().join("objects.yaml");
    std::fs::write(&file, yaml).expect("write manifest");
    let out = d.nanocl(&["apply", "-f", &file.display().to_string()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "apply failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn one_nanocld_should_lead_and_another_take_over_when_it_is_killed() {
    let scope = Scope::new("leader");
    let ns = scope.ns.clone();
    let mut a = Daemon::start_with(StoreKind::Etcd, &["--node", "node-a", "--lease-ttl", "2s"]);
    wait_until("a leads", || leading(&a) == Some(true));
    let b = a.start_beside(&[
        "--node",
        "node-b",
        "--lease-ttl",
        "2s",
        "--node-label",
        "zone=b",
    ]);
    wait_until("b reports that it waits", || leading(&b) == Some(false));
    for node in ["node-a", "node-b"] {
        wait_until(&format!("{node} registered and Ready"), || {
            node_ready(&b, node).0 == "True"
        });
    }
    let out = b.nanocl(&["get", "nodes", "-l", "zone=b", "-o", "name"]);
    assert_eq!(stdout(&out).trim(), "node/node-b", "{}", stderr(&out));

    apply(
        &a,
        &format!(
            "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
             apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n---\n\
             apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: web, namespace: {ns}}}\n\
             spec:\n  cluster: dev\n  replicas: 2\n  container:\n    image: {}\n    command: [sleep, \"300\"]\n",
            test_image()
        ),
    );
    wait_until("2 replicas, made by a", || {
        running(&scope.cargo("web")).len() == 2
    });
    // b is still waiting, several TTLs later: a keeps its lease alive.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(leading(&b), Some(false), "b must not lead while a does");
    assert_eq!(leading(&a), Some(true));

    a.kill9();
    let killed = Instant::now();
    wait_until("b takes over", || leading(&b) == Some(true));
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "b waited for a's lease to run out (2 s), took {took:?}"
    );
    wait_until("node-a NotReady, marked by b", || {
        node_ready(&b, "node-a") == ("False".to_owned(), "NodeLost".to_owned())
    });
    assert_eq!(node_ready(&b, "node-b").0, "True");
    let out = b.nanocl(&["get", "nodes"]);
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("node-a") && l.contains("NotReady")),
        "{}",
        stdout(&out)
    );
    let out = b.nanocl(&["-n", &ns, "scale", "cargo", "web", "--replicas", "3"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    wait_until("3 replicas, made by b", || {
        running(&scope.cargo("web")).len() == 3
    });
    assert!(
        b.log().contains("leading") || leading(&b) == Some(true),
        "b's log:\n{}",
        b.log()
    );

    // A graceful stop hands the lead over at once: the key is revoked, not left to expire.
    let out = b.nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    a.restart();
    wait_until("a waits behind b", || leading(&a) == Some(false));
    wait_until("node-a Ready again once its nanocld is back", || {
        node_ready(&b, "node-a").0 == "True"
    });
    let prefix = a.etcd_prefix.clone().expect("an etcd prefix");
    let mut b = b;
    b.stop();
    let holder = etcdctl(&[
        "get",
        &format!("{prefix}/meta/leader/controllers"),
        "--print-value-only",
    ]);
    assert!(
        !holder.contains("node-b"),
        "b stopped but still holds the lead: {holder}"
    );
    wait_until("a leads once b stops", || leading(&a) == Some(true));
}

fn etcdctl(args: &[&str]) -> String {
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &nanocl_e2e::etcd_endpoint()])
        .args(args)
        .output()
        .expect("etcdctl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
