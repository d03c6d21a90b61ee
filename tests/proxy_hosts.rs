//! The proxy across hosts: two nodes on Docker daemons of their own (addresses 127.0.0.2 and
//! 127.0.0.3, both on loopback), one etcd. A rule whose listener opens on the first node
//! only (`nodes`) routes to a cargo whose replicas all run on the second: every request
//! goes through the second node's relay, which takes connections from the other node's
//! address only and reaches only the replicas its own routes serve; a replica killed under a
//! loop of requests costs none of them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use nanocl_e2e::docker::wait_until;
use nanocl_e2e::hosts::{free_port, EtcdCluster, PrivateDocker};
use nanocl_e2e::{stderr, stdout, test_image, Daemon};

/// `GET /` on 127.0.0.1:`port`: the status code and the body.
fn get(port: u16) -> Option<(u16, String)> {
    nanocl_e2e::http_get(port, "web.test", "/")
}

/// Node `i` of the test: `role`, on `docker`, at 127.0.0.`i + 2`, its relay on `relay`.
fn node(store: &str, i: usize, role: &str, docker: &PrivateDocker, relay: u16) -> Daemon {
    Daemon::start_configured(
        &[
            "--role",
            role,
            "--store",
            store,
            "--node",
            &format!("host-{i}"),
            "--node-label",
            &format!("index={i}"),
            "--node-address",
            &format!("127.0.0.{}", i + 2),
            "--proxy-relay-port",
            &relay.to_string(),
        ],
        &[
            ("DOCKER_HOST", &docker.host()),
            // What the proxies and relays do, for a failure's message.
            ("NANOCL_LOG", "warn,nanocl_controller::proxy=debug"),
        ],
    )
}

/// The value of counter `name` in `metrics` (0 when absent).
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_rule_should_reach_the_replicas_of_other_nodes_through_their_relay() {
    let etcd = EtcdCluster::start(1);
    let dockers = [PrivateDocker::start(0), PrivateDocker::start(1)];
    let store = etcd.store_url();
    let relay1 = free_port();
    let host0 = node(&store, 0, "all", &dockers[0], free_port());
    let host1 = node(&store, 1, "agent", &dockers[1], relay1);
    for name in ["host-0", "host-1"] {
        wait_until(&format!("{name} Ready"), || {
            host0.node_ready(name).0 == "True"
        });
    }
    let out = host0.nanocl(&["get", "node", "host-1", "-o", "json"]);
    let node: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(
        node["status"]["proxyRelay"],
        format!("127.0.0.3:{relay1}"),
        "{}",
        stdout(&out)
    );

    // The listener on host-0 only; the replicas on host-1 only.
    let ns = format!("t{}-proxyhosts", std::process::id());
    let port = free_port();
    let web = "mkdir -p /www && echo web $(cat /etc/hostname) > /www/index.html && exec httpd -f -p 8080 -h /www";
    host0.apply(&format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: web, namespace: {ns}}}\n\
         spec:\n  cluster: dev\n  replicas: 2\n  placement: {{nodeSelector: {{index: \"1\"}}}}\n  \
         container:\n    image: {img}\n    command: [sh, -c, '{web}']\n---\n\
         apiVersion: nanocl.io/v1\nkind: ProxyRule\nmetadata: {{name: front, namespace: {ns}}}\n\
         spec:\n  cluster: dev\n  nodes: index=0\n  listeners: [{{port: {port}}}]\n  \
         http: [{{cargo: web, port: 8080}}]\n",
        img = test_image()
    ));
    let running = |d: &PrivateDocker| d.running(&format!("io.nanocl.namespace={ns}")).len();
    wait_until("two replicas on host-1", || {
        running(&dockers[1]) == 2 && running(&dockers[0]) == 0
    });
    // One machine, one routing table: host-0 (the leader) made the cluster's bridge too, with
    // the same subnet, as every node does, and the kernel would send host-1's relay to that
    // one. On two machines each bridge is the host's own; here host-0's bridge (created by the
    // test's own dockerd, holding no container) is left out of routing while it has no link.
    let (_, id) = dockers[0].docker(&[
        "network",
        "ls",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label=io.nanocl.namespace={ns}"),
    ]);
    let bridge = format!("br-{}", id.get(..12).expect("host-0's cluster network"));
    std::fs::write(
        format!("/proc/sys/net/ipv4/conf/{bridge}/ignore_routes_with_linkdown"),
        "1",
    )
    .expect("ignore_routes_with_linkdown on host-0's bridge");
    let logs = || format!("host-0:\n{}\nhost-1:\n{}", host0.log(), host1.log());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let seen: std::collections::BTreeSet<String> = (0..8)
            .filter_map(|_| get(port))
            .filter(|(s, b)| *s == 200 && b.starts_with("web "))
            .map(|(_, b)| b)
            .collect();
        if seen.len() == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "both replicas of host-1 served through host-0's listener; seen {seen:?}, now {:?}\n{}",
            get(port),
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Through host-1's relay, every one: host-0 relayed nothing, host-1 each connection.
    let before = counter(&host1.metrics(), "nanocl_proxy_relayed_connections_total");
    for _ in 0..10 {
        assert!(get(port).is_some_and(|(s, _)| s == 200), "{}", logs());
    }
    wait_until("host-1's relay counted the ten", || {
        counter(&host1.metrics(), "nanocl_proxy_relayed_connections_total") >= before + 10
    });
    assert_eq!(
        counter(&host0.metrics(), "nanocl_proxy_relayed_connections_total"),
        0
    );
    // host-1 opened no listener of the rule (it would have failed: the port is host-0's).
    let events = stdout(&host0.nanocl(&["-n", &ns, "events"]));
    assert!(!events.contains("ListenerFailed"), "{events}");

    // The relay takes connections from the nodes' addresses only (this test connects from
    // 127.0.0.1), and reaches nothing but the replicas it serves.
    let mut stranger = TcpStream::connect(("127.0.0.3", relay1)).expect("the relay listens");
    stranger
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = stranger.write_all(b"NANOCL-RELAY/1 127.0.0.1:22\n");
    let mut answer = Vec::new();
    let _ = stranger.read_to_end(&mut answer);
    assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
    let mut s = connect_from_host0(("127.0.0.3", relay1));
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(b"NANOCL-RELAY/1 127.0.0.1:22\n")
        .expect("write");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(
        answer.starts_with("ERR 127.0.0.1:22 is not a replica"),
        "{answer:?}"
    );

    // A replica of host-1 killed under a loop of requests: none of them fails (the relay
    // refuses it, host-0 tries the other).
    let victim = dockers[1]
        .running(&format!("io.nanocl.namespace={ns}"))
        .pop()
        .expect("a replica");
    let killer = {
        let host = dockers[1].host();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            let _ = std::process::Command::new("docker")
                .args(["-H", &host, "kill", &victim])
                .output();
        })
    };
    let mut failed = Vec::new();
    for i in 0..40 {
        match get(port) {
            Some((200, body)) if body.starts_with("web ") => {}
            other => failed.push(format!("request {i}: {other:?}")),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    killer.join().expect("killed");
    assert!(failed.is_empty(), "failed requests: {failed:?}\n{}", logs());
    let out = host0.nanocl(&["-n", &ns, "delete", "namespace", &ns, "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// A connection to `to` from 127.0.0.2 (host-0's address), as host-0's proxy makes.
fn connect_from_host0(to: (&str, u16)) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.2:0".parse().expect("addr"))
            .expect("bind 127.0.0.2");
        let addr = format!("{}:{}", to.0, to.1).parse().expect("addr");
        socket
            .connect(addr)
            .await
            .expect("connect")
            .into_std()
            .and_then(|s| {
                s.set_nonblocking(false)?;
                Ok(s)
            })
            .expect("std stream")
    })
}
