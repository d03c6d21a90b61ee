//! dockerd restarted under a running nanocld: the replicas come back, exactly as many as the
//! spec says. The test runs its own dockerd (own socket, data root, exec root and default
//! bridge interface, no iptables) so that restarting it touches nothing else on the host.
//! (`--bridge none` would not do: dockerd then deletes the host's `docker0`.)

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nanocl_e2e::{stderr, test_image, Daemon};

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A dockerd of this test's own.
struct PrivateDocker {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Its default bridge, created for it and deleted after it.
    bridge: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

impl PrivateDocker {
    fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    fn docker(&self, args: &[&str]) -> (bool, String) {
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

    fn start() -> PrivateDocker {
        let bridge = format!("nclt{}", std::process::id() % 100_000);
        assert!(
            ip(&["link", "add", &bridge, "type", "bridge"]),
            "creating bridge {bridge}"
        );
        ip(&["addr", "add", "10.213.0.1/24", "dev", &bridge]);
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

    fn spawn(&mut self) {
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

    fn stop(&mut self) {
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

#[test]
fn replicas_should_converge_again_after_dockerd_restarts() {
    let mut engine = PrivateDocker::start();
    let d = Daemon::start_on_docker(&engine.host());
    let manifest = d.dir.path().join("m.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev}}\n---\napiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: app}}\nspec:\n  cluster: dev\n  replicas: 2\n  container:\n    image: {}\n    command: [sleep, \"3600\"]\n",
            test_image()
        ),
    )
    .expect("write");
    let out = d.nanocl(&[
        "apply",
        "-f",
        &manifest.display().to_string(),
        "--wait",
        "--timeout",
        "60s",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let count = |engine: &PrivateDocker, running: bool| {
        let mut args = vec!["ps", "-aq", "--filter", "label=io.nanocl.cargo=app"];
        if running {
            args.extend(["--filter", "status=running"]);
        }
        engine.docker(&args).1.lines().count()
    };
    assert_eq!(count(&engine, true), 2);

    engine.stop();
    engine.spawn();
    wait_until(
        "exactly 2 running replicas again",
        Duration::from_secs(90),
        || count(&engine, true) == 2 && count(&engine, false) == 2,
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(&engine, false), 2, "no duplicate after settling");
}
