//! Test support: private etcd processes for tests that compact, pause or kill etcd, and the
//! re-exec trick that lets a test run part of itself in a child process.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support module"
)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nanocl_controller::store::conformance::ModelOp;
use nanocl_controller::store::{EtcdOptions, EtcdStore, Store};
use proptest::prelude::*;

/// A free TCP port on loopback (bound then released), never one this process handed out
/// before: an etcd that a test killed to restart leaves its ports free for a moment, and
/// another test's etcd must not take them (its client would then talk to the wrong etcd).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    // Held while binding, so two threads never pick the same port either.
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut held = Vec::new();
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let port = listener.local_addr().expect("a bound address").port();
        if given.contains(&port) {
            // Keep it bound so the next bind gets another port.
            held.push(listener);
            continue;
        }
        given.push(port);
        return port;
    }
}

/// An etcd of this test's own, on loopback, in a temp dir, killed on drop.
pub struct EtcdProcess {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The member name, unique to this process: how `spawn` knows the etcd answering on
    /// `client_port` is this one.
    name: String,
    pub client_port: u16,
    peer_port: u16,
}

impl EtcdProcess {
    /// Starts etcd and waits until it answers.
    pub async fn start() -> EtcdProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let client_port = free_port();
        let mut etcd = EtcdProcess {
            child: None,
            dir,
            name: format!("t{}-{client_port}", std::process::id()),
            client_port,
            peer_port: free_port(),
        };
        etcd.spawn().await;
        etcd
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .expect("etcd log");
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new("etcd");
        command
            .args(["--name", &self.name, "--data-dir"])
            .arg(self.data_dir())
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("{}={peer}", self.name)])
            .stdout(Stdio::null())
            .stderr(log);
        if std::env::consts::ARCH == "aarch64" {
            command.env("ETCD_UNSUPPORTED_ARCH", "arm64");
        }
        self.child = Some(
            command
                .spawn()
                .expect("etcd starts (is etcd-server installed? `make dev-env`)"),
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "etcd exited with {status}; log:\n{}",
                        std::fs::read_to_string(self.dir.path().join("etcd.log"))
                            .unwrap_or_default()
                    );
                }
            }
            if self.answers_as_itself().await {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "etcd did not start; log:\n{}",
                std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the etcd on `client_port` answers and is this one (its only member has this
    /// process's name): a port taken by someone else must not pass for a started etcd.
    async fn answers_as_itself(&self) -> bool {
        let endpoint = format!("127.0.0.1:{}", self.client_port);
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(1))
            .with_timeout(Duration::from_secs(1));
        let Ok(mut client) = etcd_client::Client::connect([endpoint], Some(options)).await else {
            return false;
        };
        match client.member_list().await {
            Ok(list) => list.members().iter().any(|m| m.name() == self.name),
            Err(_) => false,
        }
    }

    /// Store options for this etcd under `prefix`, with short deadlines.
    pub fn options(&self, prefix: &str) -> EtcdOptions {
        EtcdOptions {
            prefix: prefix.to_owned(),
            timeout: Duration::from_secs(2),
            progress_interval: Duration::from_millis(200),
            ..EtcdOptions::new(vec![format!("127.0.0.1:{}", self.client_port)])
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("running")
    }

    /// Sends a signal by name (`STOP`, `CONT`, `KILL`) with kill(1): no unsafe code needed.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// kill -9, and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same ports and data.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Options for the dev environment's etcd under a prefix unique to this test.
pub fn dev_etcd_options(test: &str) -> EtcdOptions {
    EtcdOptions {
        prefix: format!("/{}", nanocl_e2e::unique_prefix(test)),
        timeout: Duration::from_secs(5),
        progress_interval: Duration::from_millis(200),
        ..EtcdOptions::new(vec![nanocl_e2e::etcd_endpoint()])
    }
}

/// Removes every key under the store's prefix when dropped (best effort, on a runtime of its own).
pub struct PrefixCleanup(pub EtcdStore);

/// The dev environment's etcd under a prefix of its own for `test`, removed when the guard
/// drops; a clear panic when it is not running.
pub async fn dev_etcd(test: &str) -> (EtcdStore, PrefixCleanup) {
    let options = dev_etcd_options(test);
    let endpoint = options.endpoints.join(",");
    let store = EtcdStore::connect(options).await.unwrap_or_else(|e| {
        panic!(
            "cannot reach the dev etcd at {endpoint}: {e}; {}",
            nanocl_e2e::HOW_TO_START
        )
    });
    (store.clone(), PrefixCleanup(store))
}

impl Drop for PrefixCleanup {
    fn drop(&mut self) {
        let store = self.0.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(list) = store.list("").await {
                    for kv in list.items {
                        let _ = store.delete(&kv.key, None).await;
                    }
                }
            });
        })
        .join();
    }
}

/// Environment variable that turns a test binary into a helper child process.
pub const CHILD_ROLE: &str = "NANOCL_TEST_CHILD_ROLE";

/// Runs this test binary again, only the test `test_name`, with `role` and `arg` in its environment.
pub fn spawn_child(test_name: &str, role: &str, arg: &Path) -> Child {
    Command::new(std::env::current_exe().expect("test binary path"))
        .args(["--exact", test_name, "--nocapture", "--test-threads", "1"])
        .env(CHILD_ROLE, role)
        .env("NANOCL_TEST_CHILD_ARG", arg)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("child test process starts")
}

/// Random operation sequences for the model-based test, over four keys.
pub fn model_ops(max_len: usize) -> impl Strategy<Value = Vec<ModelOp>> {
    let op = prop_oneof![
        (0u8..4, any::<u8>()).prop_map(|(k, v)| ModelOp::Create(k, v)),
        (0u8..4, any::<u8>(), any::<bool>()).prop_map(|(k, v, f)| ModelOp::Update(k, v, f)),
        (0u8..4, proptest::option::of(any::<bool>())).prop_map(|(k, f)| ModelOp::Delete(k, f)),
        (0u8..4).prop_map(ModelOp::Get),
        Just(ModelOp::List),
    ];
    proptest::collection::vec(op, 1..max_len)
}
