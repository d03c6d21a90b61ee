//! Three hosts on one machine: three Docker daemons of the test's own and a three-member etcd
//! on loopback, one nanocld per daemon. Every host registers its node; one leads; an etcd
//! member lost is invisible to the CLI; a host paused past its lease is NotReady until it is
//! back; a leader paused past its lease is replaced, and does not lead again beside the new
//! one when it resumes.

use std::time::Duration;

use nanocl_e2e::docker::wait_until;
use nanocl_e2e::hosts::{EtcdCluster, PrivateDocker};
use nanocl_e2e::{stderr, stdout, test_image, Daemon};

const HOSTS: usize = 3;

/// Prints every host's nanocld log.
fn print_logs(hosts: &[Daemon]) {
    for (i, host) in hosts.iter().enumerate() {
        eprintln!("--- host-{i} log:\n{}", host.log());
    }
}

/// Waits for `done`, printing every host's nanocld log on a timeout.
fn wait_or_logs(what: &str, hosts: &[Daemon], mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        if std::time::Instant::now() > deadline {
            print_logs(hosts);
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The indexes of the hosts whose nanocld says it leads.
fn leaders(hosts: &[Daemon]) -> Vec<usize> {
    (0..hosts.len())
        .filter(|i| hosts[*i].leading() == Some(true))
        .collect()
}

#[test]
fn three_hosts_should_share_one_leader_and_survive_member_and_host_failures() {
    let mut etcd = EtcdCluster::start(3);
    let dockers: Vec<PrivateDocker> = (0..HOSTS)
        .map(|i| PrivateDocker::start(u8::try_from(i).unwrap_or(0)))
        .collect();
    let store = etcd.store_url();
    let hosts: Vec<Daemon> = (0..HOSTS)
        .map(|i| {
            let node = format!("host-{i}");
            Daemon::start_configured(
                &[
                    "--store",
                    &store,
                    "--node",
                    &node,
                    "--node-label",
                    &format!("index={i}"),
                    // The lead must outlast etcd's own leader election (1–2.5 s): 6 s leaves
                    // it 4 s, clear of the edge on a loaded machine (the default 4 s leaves
                    // 2.5 s). The node's as short as that, so that the pauses below stay short.
                    "--leader-ttl",
                    "6s",
                    "--node-ttl",
                    "4s",
                ],
                &[("DOCKER_HOST", &dockers[i].host())],
            )
        })
        .collect();

    // Every node registered and Ready, as any host serves it; exactly one leader.
    for i in 0..HOSTS {
        wait_until(&format!("host-{i} Ready"), || {
            hosts[(i + 1) % HOSTS].node_ready(&format!("host-{i}")).0 == "True"
        });
    }
    let out = hosts[0].nanocl(&["get", "nodes", "-l", "index=2", "-o", "name"]);
    assert_eq!(stdout(&out).trim(), "node/host-2", "{}", stderr(&out));
    wait_until("one leader", || leaders(&hosts).len() == 1);
    let leader = leaders(&hosts)[0];
    let other = (leader + 1) % HOSTS;
    let third = (leader + 2) % HOSTS;

    // A cargo runs where the controllers run: the leader's daemon, and only there (until
    // placement over nodes exists).
    let ns = format!("t{}-hosts", std::process::id());
    let label = format!("io.nanocl.namespace={ns}");
    hosts[other].apply(&format!(
            "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
             apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n---\n\
             apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: web, namespace: {ns}}}\n\
             spec:\n  cluster: dev\n  replicas: 2\n  container:\n    image: {}\n    command: [sleep, \"300\"]\n",
            test_image()
        ),
    );
    wait_until("2 replicas on the leader's daemon", || {
        dockers[leader].running(&label).len() == 2
    });
    assert!(dockers[other].running(&label).is_empty());
    assert!(dockers[third].running(&label).is_empty());
    let before = dockers[leader].running(&label);

    // etcd's leader killed: every host still answers, nothing restarts, a scale goes
    // through, the controllers keep their leader.
    let member = etcd.leader().expect("etcd has a leader");
    etcd.kill(member);
    for (i, host) in hosts.iter().enumerate() {
        let out = host.nanocl(&["-n", &ns, "get", "cargoes"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "host-{i} with one etcd member down: {}",
            stderr(&out)
        );
    }
    let out = hosts[third].nanocl(&["-n", &ns, "scale", "cargo", "web", "--replicas", "3"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    wait_or_logs("3 replicas", &hosts, || {
        dockers[leader].running(&label).len() == 3
    });
    let after = dockers[leader].running(&label);
    assert!(
        before.iter().all(|name| after.contains(name)),
        "the replicas that ran are untouched: {before:?} → {after:?}"
    );
    if leaders(&hosts) != vec![leader] {
        print_logs(&hosts);
        panic!(
            "the lead moved while etcd's leader was down: {:?} (was host-{leader})",
            leaders(&hosts)
        );
    }
    etcd.restart(member);
    wait_until("etcd whole again", || etcd.healthy_members() == 3);
    let out = hosts[other].nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // A host paused past its lease is lost, and Ready again when it resumes.
    hosts[other].signal("STOP");
    let lost = format!("host-{other}");
    wait_until("the paused host NotReady", || {
        hosts[third].node_ready(&lost) == ("False".to_owned(), "NodeLost".to_owned())
    });
    hosts[other].signal("CONT");
    wait_until("the host Ready again", || {
        hosts[third].node_ready(&lost).0 == "True"
    });

    // The leader paused past its lease: another leads; resumed, it stands down.
    hosts[leader].signal("STOP");
    wait_until("another leader", || {
        hosts[other].leading() == Some(true) || hosts[third].leading() == Some(true)
    });
    hosts[leader].signal("CONT");
    wait_until("the old leader stands down", || {
        hosts[leader].leading() == Some(false)
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(leaders(&hosts).len(), 1, "one leader, not two");
    assert!(!leaders(&hosts).contains(&leader));
}
