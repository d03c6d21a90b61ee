//! Shared harness for the end-to-end tests: where the dev services are, and unique names so
//! that every test labels what it creates and removes only that.

use std::time::{SystemTime, UNIX_EPOCH};

pub mod docker;
pub mod hosts;

/// Label put on every Docker object a test creates; its value is the test's unique prefix.
pub const TEST_LABEL: &str = "io.nanocl.test";

/// The etcd the dev environment started (`scripts/dev-env.sh up`), on loopback.
pub fn etcd_endpoint() -> String {
    std::env::var("NANOCL_TEST_ETCD").unwrap_or_else(|_| "127.0.0.1:23790".to_owned())
}

/// The image built offline from the host's busybox by the dev environment.
pub fn test_image() -> String {
    std::env::var("NANOCL_TEST_IMAGE").unwrap_or_else(|_| "nanocl-test/busybox:latest".to_owned())
}

/// A prefix unique to this test run and test, e.g. `nanocl-test-4242-1700000000123-docker`.
pub fn unique_prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("nanocl-test-{}-{nanos}-{test}", std::process::id())
}

/// What to say when a service is missing: how to bring the dev environment up.
pub const HOW_TO_START: &str =
    "start the dev services with `make dev-env` (or run the whole suite with `make test`)";

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The workspace's target directory for this build profile, where `nanocl` and `nanocld` are.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/debug/deps/cli_online-HASH → target/debug
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A built binary of the workspace, or a panic saying how to build it.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is not built: run the tests with `cargo test --workspace` (or `make test`)",
        path.display()
    );
    path
}

/// Which store a test daemon uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// `embedded:` in the daemon's temp dir.
    Embedded,
    /// The dev environment's etcd, under a unique prefix removed afterwards.
    Etcd,
}

/// A temp dir for a new nanocld, its socket there, and its arguments: state and socket in
/// the dir, then `extra`.
fn fresh(extra: &[&str]) -> (tempfile::TempDir, PathBuf, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("nanocl.sock");
    let mut args = vec![
        "--state-dir".to_owned(),
        dir.path().join("state").display().to_string(),
        "--listen".to_owned(),
        format!("unix://{}", socket.display()),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    (dir, socket, args)
}

/// A real `nanocld` on a temp unix socket, stopped with SIGTERM on drop.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    /// Its temp dir (state, socket, log).
    pub dir: tempfile::TempDir,
    /// `unix://...` for `NANOCL_HOST`.
    pub host: String,
    /// The etcd prefix, for the etcd store.
    pub etcd_prefix: Option<String>,
    args: Vec<String>,
    envs: Vec<(String, String)>,
}

impl Daemon {
    /// Starts nanocld serving the API only (`--controllers none`): no Docker objects.
    pub fn start(store: StoreKind) -> Daemon {
        Self::start_with(store, &["--controllers", "none"])
    }

    /// Starts nanocld with its controllers: it creates Docker objects, labelled with its
    /// instance id; `docker_cleanup` removes them.
    pub fn start_with_controllers(store: StoreKind) -> Daemon {
        Self::start_with(store, &[])
    }

    /// Starts nanocld with extra arguments and waits until its socket answers.
    pub fn start_with(store: StoreKind, extra: &[&str]) -> Daemon {
        let (dir, socket, mut args) = fresh(extra);
        let etcd_prefix = match store {
            StoreKind::Embedded => None,
            StoreKind::Etcd => {
                let prefix = format!("/{}", unique_prefix("cli"));
                args.extend([
                    "--store".to_owned(),
                    format!("etcd://{}", etcd_endpoint()),
                    "--store-prefix".to_owned(),
                    prefix.clone(),
                ]);
                Some(prefix)
            }
        };
        let mut daemon = Daemon {
            child: None,
            host: format!("unix://{}", socket.display()),
            dir,
            etcd_prefix,
            args,
            envs: Vec::new(),
        };
        daemon.spawn();
        daemon
    }

    /// Starts a second nanocld on the same store as `self` (for the etcd store: the same
    /// prefix, which `self` removes), with its own socket and state, and `extra` arguments.
    pub fn start_beside(&self, extra: &[&str]) -> Daemon {
        let (dir, socket, mut args) = fresh(extra);
        for flag in ["--store", "--store-prefix"] {
            if let Some(i) = self.args.iter().position(|a| a == flag) {
                args.extend(self.args[i..i + 2].iter().cloned());
            }
        }
        let mut daemon = Daemon {
            child: None,
            host: format!("unix://{}", socket.display()),
            dir,
            etcd_prefix: None,
            args,
            envs: self.envs.clone(),
        };
        daemon.spawn();
        daemon
    }

    /// The text of its `/metrics` (empty when it does not answer).
    pub fn metrics(&self) -> String {
        self.http_get("/metrics")
    }

    /// The body of `GET path` on its socket (empty when it does not answer).
    pub fn http_get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::os::unix::net::UnixStream::connect(self.socket()) else {
            return String::new();
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let request = format!("GET {path} HTTP/1.0\r\nHost: nanocld\r\n\r\n");
        if stream.write_all(request.as_bytes()).is_err() {
            return String::new();
        }
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default()
    }

    /// The store's revision, as a list of namespaces reports it: it moves with every write.
    pub fn store_revision(&self) -> Option<u64> {
        let list: serde_json::Value =
            serde_json::from_str(&self.http_get("/apis/nanocl.io/v1/namespaces")).ok()?;
        list["metadata"]["resourceVersion"].as_str()?.parse().ok()
    }

    /// Whether it leads the controllers (`nanocl_controllers_leading` in `/metrics`); `None`
    /// when it does not say (not answering, or running no controllers).
    pub fn leading(&self) -> Option<bool> {
        let text = self.metrics();
        if text.lines().any(|l| l == "nanocl_controllers_leading 1") {
            Some(true)
        } else if text.lines().any(|l| l == "nanocl_controllers_leading 0") {
            Some(false)
        } else {
            None
        }
    }

    /// The `Ready` condition of node `name` as it serves it: (status, reason), empty when
    /// there is none.
    pub fn node_ready(&self, name: &str) -> (String, String) {
        let out = self.nanocl(&["get", "node", name, "-o", "json"]);
        let node: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        condition(&node["status"], "Ready")
    }

    /// `nanocl apply -f` of `yaml` (written to a file of its own), asserting success.
    pub fn apply(&self, yaml: &str) {
        static FILES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = self.dir.path().join(format!("m-{n}.yaml"));
        std::fs::write(&file, yaml).expect("write manifest");
        let out = self.nanocl(&["apply", "-f", &file.display().to_string()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "apply failed: {}{}",
            stdout(&out),
            stderr(&out)
        );
    }

    /// Starts nanocld with its controllers, `extra` arguments (a `--store` of the test's own,
    /// say) and `envs` (`DOCKER_HOST`, say).
    pub fn start_configured(extra: &[&str], envs: &[(&str, &str)]) -> Daemon {
        let mut daemon = Self::start_with(StoreKind::Embedded, &["--controllers", "none"]);
        daemon.stop();
        daemon.args.extend(extra.iter().map(|a| (*a).to_owned()));
        daemon
            .envs
            .extend(envs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        daemon.restart_with_controllers();
        daemon
    }

    /// Starts nanocld with its controllers on another Docker engine (`DOCKER_HOST`).
    pub fn start_on_docker(docker_host: &str) -> Daemon {
        let mut daemon = Self::start_with(StoreKind::Embedded, &["--controllers", "none"]);
        daemon.stop();
        daemon
            .envs
            .push(("DOCKER_HOST".to_owned(), docker_host.to_owned()));
        daemon.restart_with_controllers();
        daemon
    }

    fn socket(&self) -> PathBuf {
        PathBuf::from(self.host.trim_start_matches("unix://"))
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("nanocld.log"))
            .expect("log file");
        let child = Command::new(binary("nanocld"))
            .args(&self.args)
            .env("NANOCL_LOG", "warn")
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nanocld starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(self.socket()).is_err() {
            assert!(
                Instant::now() < deadline,
                "nanocld did not start; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What nanocld logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nanocld.log")).unwrap_or_default()
    }

    /// Runs `nanocl ARGS` against this daemon.
    pub fn nanocl(&self, args: &[&str]) -> Output {
        self.nanocl_in(args, None)
    }

    /// Runs `nanocl ARGS` in `dir` against this daemon.
    pub fn nanocl_in(&self, args: &[&str], dir: Option<&Path>) -> Output {
        let mut command = Command::new(binary("nanocl"));
        command
            .args(args)
            .env("NANOCL_HOST", &self.host)
            .env("NO_COLOR", "1");
        if let Some(dir) = dir {
            command.current_dir(dir);
        }
        command.output().expect("nanocl runs")
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to nanocld.
    pub fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(child.id().to_string())
                .status()
                .expect("kill runs");
            assert!(status.success(), "kill -{signal} failed");
        }
    }

    /// `kill -9`, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sets an environment variable for the next (re)start.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.envs.retain(|(k, _)| k != key);
        self.envs.push((key.to_owned(), value.to_owned()));
    }

    /// Starts it again with its controllers (same state, store and socket).
    pub fn restart_with_controllers(&mut self) {
        self.stop();
        if let Some(i) = self.args.iter().position(|a| a == "--controllers") {
            self.args.drain(i..i + 2);
        }
        self.spawn();
    }

    /// Starts it again with the same state, store and socket (the stale socket is replaced).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Stops nanocld with SIGTERM and waits for it.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Stops the proxy process a nanocld of state directory `state` started, if one runs, and
/// waits (5 s at most) until it is gone.
pub fn stop_proxy(state: &Path) {
    let Ok(pid) = std::fs::read_to_string(state.join("proxy.pid")) else {
        return;
    };
    let pid = pid.trim().to_owned();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    for _ in 0..250 {
        // Gone, or a zombie its reaper has not collected yet.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty()
            || stat
                .rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = Command::new("kill").args(["-KILL", &pid]).status();
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        stop_proxy(&self.dir.path().join("state"));
        if std::thread::panicking() {
            // The test failed: what nanocld said is what explains it.
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!("--- last lines of nanocld.log ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        if let Some(prefix) = self.etcd_prefix.clone() {
            let _ = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args([
                    "--endpoints",
                    &etcd_endpoint(),
                    "del",
                    "--prefix",
                    &format!("{prefix}/"),
                ])
                .stdout(Stdio::null())
                .status();
        }
    }
}

/// Condition `type_` of an object's `status`: (status, reason), empty when there is none.
pub fn condition(status: &serde_json::Value, type_: &str) -> (String, String) {
    status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_owned(),
                c["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
        .unwrap_or_default()
}

/// stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stderr as text.
/// `GET path` with `Host: host` on 127.0.0.1:`port` (`Connection: close`, 10 s at most):
/// the status code and the body, `None` when no whole answer came.
pub fn http_get(port: u16, host: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A running `nanocl watch DIR`, its output collected line by line; killed on drop.
#[derive(Debug)]
pub struct WatchProcess {
    child: Child,
    stdout: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

fn collect_lines(
    reader: impl std::io::Read + Send + 'static,
) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    use std::io::BufRead;
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            sink.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(line);
        }
    });
    lines
}

impl WatchProcess {
    /// Starts `nanocl watch ARGS` against `daemon`.
    pub fn start(daemon: &Daemon, args: &[&str]) -> WatchProcess {
        let mut all = vec!["watch"];
        all.extend_from_slice(args);
        WatchProcess::spawn(daemon, &all)
    }

    /// Starts `nanocl ARGS` against `daemon` (a long-running command: `logs -f`,
    /// `events -w`), its lines collected as they come.
    pub fn spawn(daemon: &Daemon, args: &[&str]) -> WatchProcess {
        let mut child = Command::new(binary("nanocl"))
            .args(args)
            .env("NANOCL_HOST", &daemon.host)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nanocl watch starts");
        let stdout = collect_lines(child.stdout.take().expect("stdout"));
        let stderr = collect_lines(child.stderr.take().expect("stderr"));
        WatchProcess {
            child,
            stdout,
            stderr,
        }
    }

    /// Every stdout line so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Every stderr line so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The summary lines (`synced DIR: ...`) so far.
    pub fn syncs(&self) -> Vec<String> {
        self.stdout()
            .into_iter()
            .filter(|l| l.starts_with("synced "))
            .collect()
    }

    /// Waits until there are `n` summary lines and returns the `n`th; panics with the whole
    /// output after `timeout`.
    pub fn wait_sync(&self, n: usize, timeout: Duration) -> String {
        self.wait_stdout(timeout, |_| self.syncs().len() >= n);
        self.syncs()[n - 1].clone()
    }

    /// Waits until a stdout line satisfies `found`.
    pub fn wait_stdout(&self, timeout: Duration, found: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        while !self.stdout().iter().any(|l| found(l)) {
            assert!(Instant::now() < deadline, "timed out; {}", self.output());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until a stderr line satisfies `found`.
    pub fn wait_stderr(&self, timeout: Duration, found: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + timeout;
        while !self.stderr().iter().any(|l| found(l)) {
            assert!(Instant::now() < deadline, "timed out; {}", self.output());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Both streams, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "nanocl watch stdout:\n{}\nstderr:\n{}",
            self.stdout().join("\n"),
            self.stderr().join("\n")
        )
    }
}

impl Drop for WatchProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
