//! Several hosts on one machine, for the tests of nanocl across hosts: private Docker daemons
//! (each with its own socket, data root, exec root, pid file and default bridge, no iptables)
//! and an etcd cluster of several members, all on loopback and in temp dirs, removed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::test_image;

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A dockerd of a test's own, with the offline test image loaded.
#[derive(Debug)]
pub struct PrivateDocker {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Its default bridge, created for it and deleted after it.
    bridge: String,
}

impl PrivateDocker {
    /// Starts daemon number `index` (0..=99) of this test process: its bridge is
    /// `ncl{pid}x{index}` on `10.213.{index}.1/24`.
    pub fn start(index: u8) -> PrivateDocker {
        let bridge = format!("ncl{}x{index}", std::process::id() % 100_000);
        assert!(
            ip(&["link", "add", &bridge, "type", "bridge"]),
            "creating bridge {bridge}"
        );
        ip(&[
            "addr",
            "add",
            &format!("10.213.{index}.1/24"),
            "dev",
            &bridge,
        ]);
        ip(&["link", "set", &bridge, "up"]);
        let mut d = PrivateDocker {
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
            bridge,
        };
        d.spawn();
        // The offline test image, copied from the main engine: no registry involved.
        let mut save = Command::new("docker")
            .args(["save", &test_image()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("docker save");
        let load = Command::new("docker")
            .arg("-H")
            .arg(d.host())
            .args(["load", "-q"])
            .stdin(save.stdout.take().expect("piped"))
            .output()
            .expect("docker load");
        assert!(save.wait().is_ok_and(|s| s.success()), "docker save failed");
        assert!(
            load.status.success(),
            "loading the test image: {}",
            String::from_utf8_lossy(&load.stderr)
        );
        d
    }

    /// `unix://…/docker.sock`, for `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    /// `docker -H THIS ARGS`: whether it succeeded, and its stdout.
    pub fn docker(&self, args: &[&str]) -> (bool, String) {
        match Command::new("docker")
            .arg("-H")
            .arg(self.host())
            .args(args)
            .output()
        {
            Ok(out) => (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            ),
            Err(_) => (false, String::new()),
        }
    }

    /// Names of the running containers with `label` (`key=value`).
    pub fn running(&self, label: &str) -> Vec<String> {
        let (_, names) = self.docker(&[
            "ps",
            "--filter",
            &format!("label={label}"),
            "--format",
            "{{.Names}}",
        ]);
        names.lines().map(str::to_owned).collect()
    }

    /// Starts it again after `stop` (same data, socket and bridge).
    pub fn spawn(&mut self) {
        let p = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p.join("dockerd.log"))
            .expect("log");
        let child = Command::new("dockerd")
            .arg("--host")
            .arg(self.host())
            .arg("--data-root")
            .arg(p.join("data"))
            .arg("--exec-root")
            .arg(p.join("exec"))
            .arg("--pidfile")
            .arg(p.join("docker.pid"))
            .args([
                "--bridge",
                &self.bridge,
                "--iptables=false",
                "--ip-masq=false",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd starts");
        self.child = Some(child);
        wait_until("the private dockerd", Duration::from_secs(60), || {
            self.docker(&["info"]).0
        });
    }

    /// Stops it (SIGTERM, then SIGKILL after a minute).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(60);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for PrivateDocker {
    fn drop(&mut self) {
        if self.child.is_some() {
            let (_, ids) = self.docker(&["ps", "-aq"]);
            for id in ids.lines() {
                self.docker(&["rm", "-f", id]);
            }
            // Its networks' bridge interfaces live in the host's kernel: remove them with it.
            let (_, nets) = self.docker(&["network", "ls", "-q", "--filter", "type=custom"]);
            for id in nets.lines() {
                self.docker(&["network", "rm", id]);
            }
        }
        self.stop();
        ip(&["link", "del", &self.bridge]);
    }
}

/// An etcd cluster of a test's own: `size` members on loopback ports, in a temp dir.
#[derive(Debug)]
pub struct EtcdCluster {
    dir: tempfile::TempDir,
    members: Vec<Member>,
    /// Extra flags of every member.
    extra: Vec<String>,
}

#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

impl EtcdCluster {
    /// Starts `size` members and waits until the cluster is healthy.
    pub fn start(size: usize) -> EtcdCluster {
        EtcdCluster::start_with(size, &[])
    }

    /// As `start`, every member with the `extra` flags (e.g. `--quota-backend-bytes`).
    ///
    /// The ports are chosen free, then let go for etcd to take: something else may take one
    /// in between (another test, a connection's source port). A member that exits before
    /// the cluster is healthy is that race: every member starts again on new ports, up to
    /// three times, and the failure quotes the members' logs.
    pub fn start_with(size: usize, extra: &[&str]) -> EtcdCluster {
        for attempt in 1..=3 {
            let mut cluster = EtcdCluster::spawn_all(size, extra);
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if cluster.healthy_members() == size {
                    return cluster;
                }
                let exited = cluster.members.iter_mut().any(|m| {
                    m.child
                        .as_mut()
                        .is_some_and(|c| !matches!(c.try_wait(), Ok(None)))
                });
                if exited && attempt < 3 {
                    eprintln!(
                        "an etcd member exited at start (a port taken meanwhile?); new ports:\n{}",
                        cluster.logs()
                    );
                    break;
                }
                assert!(
                    !exited && Instant::now() < deadline,
                    "timed out waiting for a healthy etcd cluster (a member exited: {exited}):\n{}",
                    cluster.logs()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        unreachable!("the third attempt returns or panics")
    }

    fn spawn_all(size: usize, extra: &[&str]) -> EtcdCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        // Held until every port is chosen, so no two are the same.
        let listeners: Vec<std::net::TcpListener> = (0..size * 2)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
            .collect();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().expect("bound").port())
            .collect();
        drop(listeners);
        let members: Vec<Member> = (0..size)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                child: None,
            })
            .collect();
        let mut cluster = EtcdCluster {
            dir,
            members,
            extra: extra.iter().map(|a| (*a).to_owned()).collect(),
        };
        for i in 0..size {
            cluster.spawn(i);
        }
        cluster
    }

    /// The last lines of every member's log.
    fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                let log = std::fs::read_to_string(self.dir.path().join(format!("{}.log", m.name)))
                    .unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(8)..].join("\n");
                format!("--- {} ---\n{tail}", m.name)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(&mut self, i: usize) {
        let initial = self.initial_cluster();
        let data = self.dir.path().join(&self.members[i].name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(
                self.dir
                    .path()
                    .join(format!("{}.log", self.members[i].name)),
            )
            .expect("log");
        let m = &mut self.members[i];
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let mut command = Command::new("etcd");
        command
            .args(["--name", &m.name, "--data-dir"])
            .arg(&data)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial])
            .args(["--initial-cluster-state", "new"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log);
        if std::env::consts::ARCH == "aarch64" {
            command.env("ETCD_UNSUPPORTED_ARCH", "arm64");
        }
        m.child = Some(command.spawn().expect("etcd starts"));
    }

    /// `etcd://HOST:PORT,…` of every member, for `nanocld --store`.
    pub fn store_url(&self) -> String {
        let endpoints: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client_port))
            .collect();
        format!("etcd://{}", endpoints.join(","))
    }

    /// `etcdctl ARGS` against member `m` alone: whether it succeeded, and its stdout.
    fn etcdctl(m: &Member, args: &[&str]) -> (bool, Vec<u8>) {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args([
                "--endpoints",
                &format!("127.0.0.1:{}", m.client_port),
                "--command-timeout",
                "2s",
            ])
            .args(args)
            .stderr(Stdio::null())
            .output();
        match out {
            Ok(out) => (out.status.success(), out.stdout),
            Err(_) => (false, Vec::new()),
        }
    }

    /// `etcdctl ARGS` against the first member: whether it succeeded, and its stdout.
    pub fn ctl(&self, args: &[&str]) -> (bool, String) {
        let (ok, out) = Self::etcdctl(&self.members[0], args);
        (ok, String::from_utf8_lossy(&out).into_owned())
    }

    /// How many members answer `etcdctl endpoint health`.
    pub fn healthy_members(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.child.is_some() && Self::etcdctl(m, &["endpoint", "health"]).0)
            .count()
    }

    /// The index of the member that is the raft leader now, if one is.
    pub fn leader(&self) -> Option<usize> {
        self.members.iter().position(|m| {
            let (ok, out) = Self::etcdctl(m, &["endpoint", "status", "-w", "json"]);
            let status: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
            let status = &status[0]["Status"];
            ok && status["leader"].as_u64().is_some()
                && status["leader"] == status["header"]["member_id"]
        })
    }

    /// `kill -9` of member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again on its data (after `kill`).
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
