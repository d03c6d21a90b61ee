//! Three hosts on one machine: three Docker daemons of the test's own, a three-member etcd on
//! loopback, an agent per daemon and two controllers. Replicas are spread over the nodes,
//! placement rules are honoured, a lost host's replicas move and are removed from it when it
//! is back, the leader's death and an etcd member's are ridden out.

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

/// The running containers of cargo `cargo` on `docker`.
fn running_of(docker: &PrivateDocker, ns: &str, cargo: &str) -> usize {
    docker
        .running(&format!("io.nanocl.namespace={ns}"))
        .iter()
        .filter(|name| name.starts_with(&format!("{cargo}-")))
        .count()
}

/// The running containers of `cargo` on each daemon.
fn spread(dockers: &[PrivateDocker], ns: &str, cargo: &str) -> Vec<usize> {
    dockers.iter().map(|d| running_of(d, ns, cargo)).collect()
}

/// The cargo's `Ready` condition as `host` serves it: (status, reason, message).
fn cargo_ready(host: &Daemon, ns: &str, cargo: &str) -> (String, String, String) {
    let out = host.nanocl(&["-n", ns, "get", "cargo", cargo, "-o", "json"]);
    let cargo: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let c = cargo["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or_default();
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    (s(&c["status"]), s(&c["reason"]), s(&c["message"]))
}

/// Starts the agent of host `i`: its node, on its daemon.
fn agent(store: &str, i: usize, docker: &PrivateDocker) -> Daemon {
    Daemon::start_configured(
        &[
            "--role",
            "agent",
            "--store",
            store,
            "--node",
            &format!("host-{i}"),
            "--node-label",
            &format!("index={i}"),
            "--node-ttl",
            "4s",
        ],
        &[("DOCKER_HOST", &docker.host())],
    )
}

#[test]
fn three_hosts_should_spread_reschedule_and_survive_member_agent_and_leader_failures() {
    let mut etcd = EtcdCluster::start(3);
    let mut dockers: Vec<PrivateDocker> = (0..HOSTS)
        .map(|i| PrivateDocker::start(u8::try_from(i).unwrap_or(0)))
        .collect();
    let store = etcd.store_url();
    let mut agents: Vec<Daemon> = (0..HOSTS).map(|i| agent(&store, i, &dockers[i])).collect();
    // Two controllers, on the first two hosts' daemons (their Cluster and Network
    // controllers create the networks there; the agents everywhere).
    let mut controllers: Vec<Daemon> = (0..2)
        .map(|j| {
            Daemon::start_configured(
                &[
                    "--role",
                    "controller",
                    "--store",
                    &store,
                    "--node",
                    &format!("ctl-{j}"),
                    // The lead must outlast etcd's own leader election (1–2.5 s): 6 s leaves
                    // it 4 s, clear of the edge on a loaded machine.
                    "--leader-ttl",
                    "6s",
                ],
                &[("DOCKER_HOST", &dockers[j].host())],
            )
        })
        .collect();
    let all = |agents: &[Daemon], controllers: &[Daemon]| {
        print_logs(agents);
        for (j, c) in controllers.iter().enumerate() {
            eprintln!("--- ctl-{j} log:\n{}", c.log());
        }
    };

    // Every node Ready, as a controller serves it; a controller is no node; one leader.
    for i in 0..HOSTS {
        wait_until(&format!("host-{i} Ready"), || {
            controllers[0].node_ready(&format!("host-{i}")).0 == "True"
        });
    }
    let out = controllers[1].nanocl(&["get", "nodes", "-o", "name"]);
    assert_eq!(
        stdout(&out).trim(),
        "node/host-0\nnode/host-1\nnode/host-2",
        "{}",
        stderr(&out)
    );
    wait_until("one leader", || leaders(&controllers).len() == 1);

    // Six replicas spread 2/2/2; a nodeSelector and maxPerNode honoured, and what does not
    // fit said.
    let ns = format!("t{}-hosts", std::process::id());
    controllers[0].apply(&format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: web, namespace: {ns}}}\n\
         spec:\n  cluster: dev\n  replicas: 6\n  container:\n    image: {img}\n    command: [sleep, \"600\"]\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: pinned, namespace: {ns}}}\n\
         spec:\n  cluster: dev\n  replicas: 3\n  placement: {{nodeSelector: {{index: \"1\"}}, maxPerNode: 2}}\n  container:\n    image: {img}\n    command: [sleep, \"600\"]\n",
        img = test_image()
    ));
    wait_or_logs("web spread 2/2/2", &agents, || {
        spread(&dockers, &ns, "web") == vec![2, 2, 2]
    });
    wait_or_logs("pinned: 2 on host-1", &agents, || {
        spread(&dockers, &ns, "pinned") == vec![0, 2, 0]
    });
    wait_until("pinned says why its third replica waits", || {
        let (status, reason, message) = cargo_ready(&controllers[1], &ns, "pinned");
        status == "False"
            && reason == "Unschedulable"
            && message.contains("0/3 nodes fit: 1 at maxPerNode, 2 not selected")
    });
    let out = controllers[0].nanocl(&["-n", &ns, "delete", "cargo", "pinned", "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(spread(&dockers, &ns, "pinned"), vec![0, 0, 0]);
    let out = controllers[0].nanocl(&["-n", &ns, "get", "replicas", "-o", "wide"]);
    assert!(stdout(&out).contains("web-5"), "{}", stdout(&out));

    // kill -9 of the leading controller: the other leads, and a scale issued at once is
    // carried out.
    let leader = leaders(&controllers)[0];
    controllers[leader].kill9();
    let other = 1 - leader;
    let out = controllers[other].nanocl(&["-n", &ns, "scale", "cargo", "web", "--replicas", "9"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    wait_or_logs("the scale carried out by the new leader", &agents, || {
        spread(&dockers, &ns, "web") == vec![3, 3, 3]
    });
    assert_eq!(controllers[other].leading(), Some(true));
    controllers[leader].restart();

    // etcd's leader killed: every process still answers, no replica moves.
    let member = etcd.leader().expect("etcd has a leader");
    etcd.kill(member);
    for (i, host) in controllers.iter().chain(agents.iter()).enumerate() {
        let out = host.nanocl(&["-n", &ns, "get", "cargoes"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "process {i} with one etcd member down: {}",
            stderr(&out)
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(spread(&dockers, &ns, "web"), vec![3, 3, 3]);
    etcd.restart(member);
    wait_until("etcd whole again", || etcd.healthy_members() == 3);

    // kill -9 of an agent: its node is lost and its replicas run on the two others, 9 in
    // all there; back, it removes the ones moved away: exactly 9 again.
    agents[2].kill9();
    wait_until("host-2 NotReady", || {
        controllers[0].node_ready("host-2") == ("False".to_owned(), "NodeLost".to_owned())
    });
    wait_or_logs("web's 9 on host-0 and host-1", &agents, || {
        let s = spread(&dockers, &ns, "web");
        s[0] + s[1] == 9
    });
    agents[2].restart();
    wait_or_logs("host-2's moved replicas removed", &agents, || {
        spread(&dockers, &ns, "web")[2] == 0
    });
    let s = spread(&dockers, &ns, "web");
    assert_eq!(s[0] + s[1], 9, "{s:?}");

    // An agent paused past its lease: the same; resumed, no duplicate remains.
    agents[1].signal("STOP");
    wait_until("host-1 NotReady", || {
        controllers[0].node_ready("host-1").0 == "False"
    });
    wait_or_logs("web's 9 on host-0 and host-2", &agents, || {
        let s = spread(&dockers, &ns, "web");
        s[0] + s[2] == 9
    });
    agents[1].signal("CONT");
    wait_or_logs("no duplicate on host-1", &agents, || {
        spread(&dockers, &ns, "web")[1] == 0
    });
    wait_until("host-1 Ready again", || {
        controllers[0].node_ready("host-1").0 == "True"
    });

    // A daemon stopped (not its agent): NotReady (DockerUnreachable), replicas elsewhere;
    // started again, its stopped containers are removed.
    dockers[2].stop();
    wait_until("host-2 NotReady: its Docker is gone", || {
        controllers[1].node_ready("host-2") == ("False".to_owned(), "DockerUnreachable".to_owned())
    });
    wait_or_logs("web's 9 on host-0 and host-1", &agents, || {
        let s = spread(&dockers[..2], &ns, "web");
        s[0] + s[1] == 9
    });
    dockers[2].spawn();
    wait_until("host-2 Ready again", || {
        controllers[1].node_ready("host-2").0 == "True"
    });
    wait_or_logs("host-2's stopped replicas removed", &agents, || {
        let (_, left) = dockers[2].docker(&["ps", "-aq", "--filter", "label=io.nanocl.cargo=web"]);
        left.is_empty()
    });
    let s = spread(&dockers, &ns, "web");
    if s.iter().sum::<usize>() != 9 {
        all(&agents, &controllers);
        panic!("exactly 9 replicas after host-2's daemon came back: {s:?}");
    }

    // drain: host-0 cordoned and its replicas moved; uncordon lets it take new ones again.
    let out = controllers[0].nanocl(&["drain", "node", "host-0"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("node/host-0 cordoned") && stdout(&out).contains("drained"),
        "{}",
        stdout(&out)
    );
    wait_or_logs("host-0 drained, 9 on the others", &agents, || {
        let s = spread(&dockers, &ns, "web");
        s[0] == 0 && s[1] + s[2] == 9
    });
    let out = controllers[0].nanocl(&["get", "node", "host-0"]);
    assert!(
        stdout(&out).contains("SchedulingDisabled"),
        "{}",
        stdout(&out)
    );
    let out = controllers[0].nanocl(&["uncordon", "node", "host-0"]);
    assert_eq!(
        stdout(&out).trim(),
        "node/host-0 uncordoned",
        "{}",
        stderr(&out)
    );
    let out = controllers[0].nanocl(&["cordon", "node", "host-9"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("node/host-9 not found"),
        "{}",
        stderr(&out)
    );
    let out = controllers[0].nanocl(&["-n", &ns, "describe", "cargo", "web"]);
    assert!(
        stdout(&out).contains("Replicas:") && stdout(&out).contains("host-1"),
        "{}",
        stdout(&out)
    );

    // The leader paused past its lease: the other leads; resumed, it stands down.
    wait_until("one leader", || leaders(&controllers).len() == 1);
    let leader = leaders(&controllers)[0];
    controllers[leader].signal("STOP");
    wait_until("another leader", || {
        controllers[1 - leader].leading() == Some(true)
    });
    controllers[leader].signal("CONT");
    wait_until("the old leader stands down", || {
        controllers[leader].leading() == Some(false)
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        leaders(&controllers),
        vec![1 - leader],
        "one leader, not two"
    );

    let out = controllers[1].nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "90s"]);
    if out.status.code() != Some(0) {
        all(&agents, &controllers);
        panic!("{}", stderr(&out));
    }
    for d in &dockers {
        assert!(d.running(&format!("io.nanocl.namespace={ns}")).is_empty());
    }
}
