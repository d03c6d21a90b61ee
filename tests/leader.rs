//! Several nanocld on one etcd: each registers its Node; exactly one leads and runs the
//! controllers; when it is killed, another takes over within the lease's TTL, marks the dead
//! one's node NotReady, and carries out what is asked of it next.

use std::time::{Duration, Instant};

use nanocl_e2e::docker::{running, wait_until, Scope};
use nanocl_e2e::{stderr, stdout, test_image, Daemon, StoreKind};

#[test]
fn one_nanocld_should_lead_and_another_take_over_when_it_is_killed() {
    let scope = Scope::new("leader");
    let ns = scope.ns.clone();
    let mut a = Daemon::start_with(
        StoreKind::Etcd,
        &["--node", "node-a", "--leader-ttl", "2s", "--node-ttl", "2s"],
    );
    wait_until("a leads", || a.leading() == Some(true));
    let b = a.start_beside(&[
        "--node",
        "node-b",
        "--leader-ttl",
        "2s",
        "--node-ttl",
        "2s",
        "--node-label",
        "zone=b",
    ]);
    wait_until("b reports that it waits", || b.leading() == Some(false));
    for node in ["node-a", "node-b"] {
        wait_until(&format!("{node} registered and Ready"), || {
            b.node_ready(node).0 == "True"
        });
    }
    let out = b.nanocl(&["get", "nodes", "-l", "zone=b", "-o", "name"]);
    assert_eq!(stdout(&out).trim(), "node/node-b", "{}", stderr(&out));

    a.apply(&format!(
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
    assert_eq!(b.leading(), Some(false), "b must not lead while a does");
    assert_eq!(a.leading(), Some(true));

    a.kill9();
    let killed = Instant::now();
    wait_until("b takes over", || b.leading() == Some(true));
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "b waited for a's lease to run out (2 s), took {took:?}"
    );
    wait_until("node-a NotReady, marked by b", || {
        b.node_ready("node-a") == ("False".to_owned(), "NodeLost".to_owned())
    });
    assert_eq!(b.node_ready("node-b").0, "True");
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
    // Both nodes share this machine's Docker: each container names its node, and node-a's
    // slot moved to node-b, whose agent runs all three (node-a's container runs on, as on a
    // host cut off, until node-a is back).
    let on_b = || {
        let mut labels = scope.cargo("web");
        labels.push("io.nanocl.node=node-b".into());
        running(&labels).len()
    };
    wait_until("3 replicas on node-b, placed by b", || on_b() == 3);
    assert!(
        b.log().contains("leading") || b.leading() == Some(true),
        "b's log:\n{}",
        b.log()
    );
    a.restart();
    wait_until("a waits behind b", || a.leading() == Some(false));
    wait_until("node-a Ready again once its nanocld is back", || {
        b.node_ready("node-a").0 == "True"
    });
    wait_until("node-a's moved replica removed: exactly 3", || {
        running(&scope.cargo("web")).len() == 3 && on_b() == 3
    });

    // A graceful stop hands the lead over at once: the key is revoked, not left to expire.
    let out = b.nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
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
    wait_until("a leads once b stops", || a.leading() == Some(true));
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
