//! Docker as the tests see it: the containers of a namespace, waits, and a scope that
//! removes everything Docker holds for the test's namespace.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long the waits below wait.
pub const TIMEOUT: Duration = Duration::from_secs(60);

pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// (name, state) of the containers matching every label filter.
pub fn containers(labels: &[String]) -> Vec<(String, String)> {
    let mut args = vec![
        "ps".to_owned(),
        "-a".to_owned(),
        "--format".to_owned(),
        "{{.Names}}\t{{.State}}".to_owned(),
    ];
    for l in labels {
        args.push("--filter".into());
        args.push(format!("label={l}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut found: Vec<(String, String)> = docker(&args)
        .lines()
        .filter_map(|l| {
            l.split_once('\t')
                .map(|(n, s)| (n.to_owned(), s.to_owned()))
        })
        .collect();
    found.sort();
    found
}

pub fn running(labels: &[String]) -> Vec<String> {
    containers(labels)
        .into_iter()
        .filter(|(_, s)| s == "running")
        .map(|(n, _)| n)
        .collect()
}

pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn labels_of(name: &str) -> BTreeMap<String, String> {
    let json = docker(&["inspect", "-f", "{{json .Config.Labels}}", name]);
    serde_json::from_str(&json).unwrap_or_default()
}

/// A namespace of this test's own; everything Docker holds for it is removed on drop.
#[derive(Debug)]
pub struct Scope {
    /// The namespace.
    pub ns: String,
}

impl Scope {
    /// A fresh namespace name for `test`.
    pub fn new(test: &str) -> Scope {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        Scope {
            ns: format!("t{}-{test}", nanos % 100_000_000),
        }
    }

    /// `io.nanocl.namespace=NS`.
    pub fn label(&self) -> String {
        format!("io.nanocl.namespace={}", self.ns)
    }

    /// The label filters of one cargo's containers.
    pub fn cargo(&self, cargo: &str) -> Vec<String> {
        vec![
            "io.nanocl.managed=true".into(),
            self.label(),
            format!("io.nanocl.cargo={cargo}"),
        ]
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let ids = docker(&["ps", "-aq", "--filter", &format!("label={}", self.label())]);
        for id in ids.lines() {
            docker(&["rm", "-f", id]);
        }
        let nets = docker(&[
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("label={}", self.label()),
        ]);
        for id in nets.lines() {
            docker(&["network", "rm", id]);
        }
        // Images nanocl built for the namespace (`nanocl.local/NS/CARGO:…`, every tag).
        let images = docker(&[
            "images",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("reference=nanocl.local/{}/*", self.ns),
        ]);
        let mut ids: Vec<&str> = images.lines().collect();
        ids.dedup();
        for id in ids {
            docker(&["rmi", "-f", id]);
        }
    }
}
