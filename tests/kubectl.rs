//! kubectl and the Python Kubernetes client against a live nanocld (API only, on loopback
//! TCP): discovery (`api-resources`), `get` as a server-side Table (and `-o wide`, `-o
//! yaml`), `describe`, `get -w` following a change, `patch` (merge and JSON), `apply
//! --server-side` with its managed fields, a conflict between two managers and
//! `--force-conflicts`, `diff` and its exit codes, `delete`; then the Python client lists and
//! watches the same objects. kubectl is part of these machines; without it the kubectl test
//! says so and passes (the Python client is installed by `make dev-env`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nanocl_e2e::hosts::free_port;
use nanocl_e2e::{stderr, stdout, Daemon, StoreKind};

/// A kubeconfig for nanocld on `port`, and a home of its own (kubectl's discovery cache).
struct Kube {
    home: tempfile::TempDir,
    config: PathBuf,
}

impl Kube {
    fn new(port: u16, namespace: &str) -> Kube {
        let home = tempfile::tempdir().expect("tempdir");
        let config = home.path().join("config");
        std::fs::write(
            &config,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: nanocl\n  cluster: {{server: \"http://127.0.0.1:{port}\"}}\n\
                 contexts:\n- name: nanocl\n  context: {{cluster: nanocl, user: me, namespace: {namespace}}}\n\
                 users:\n- name: me\n  user: {{}}\ncurrent-context: nanocl\n"
            ),
        )
        .expect("kubeconfig");
        Kube { home, config }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        c.args(args)
            .env("KUBECONFIG", &self.config)
            .env("HOME", self.home.path());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("kubectl runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "kubectl {args:?}\nstdout: {}\nstderr: {}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.home.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    }
}

fn kubectl_present() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn cargo(ns: &str, replicas: u32) -> String {
    format!(
        "apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: web, namespace: {ns}}}\n\
         spec:\n  cluster: dev\n  replicas: {replicas}\n  container: {{image: busybox}}\n"
    )
}

/// The first line of `text` that has all of `words` (split on whitespace), for table rows.
fn row<'a>(text: &'a str, words: &[&str]) -> Option<&'a str> {
    text.lines().find(|l| {
        let cells: Vec<&str> = l.split_whitespace().collect();
        words.iter().all(|w| cells.contains(w))
    })
}

#[test]
fn kubectl_should_discover_get_watch_apply_diff_and_delete_nanocl_kinds() {
    if !kubectl_present() {
        eprintln!("kubectl is not installed on this machine: this test checks nothing");
        return;
    }
    let port = free_port();
    let d = Daemon::start_with(
        StoreKind::Embedded,
        &[
            "--controllers",
            "none",
            "--listen",
            &format!("tcp://127.0.0.1:{port}"),
        ],
    );
    let ns = format!("t{}-kubectl", std::process::id());
    let kube = Kube::new(port, &ns);

    // Discovery.
    let resources = kube.ok(&["api-resources", "--api-group=nanocl.io"]);
    assert!(
        row(
            &resources,
            &["cargoes", "cg", "nanocl.io/v1", "true", "Cargo"]
        )
        .is_some(),
        "{resources}"
    );
    assert!(
        row(
            &resources,
            &["namespaces", "ns", "nanocl.io/v1", "false", "Namespace"]
        )
        .is_some(),
        "{resources}"
    );

    // Server-side apply creates; get is a Table with nanocl get's columns.
    let namespace = kube.file(
        "ns.yaml",
        &format!("apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"),
    );
    kube.ok(&["apply", "--server-side", "-f", &namespace]);
    let web2 = kube.file("web2.yaml", &cargo(&ns, 2));
    let applied = kube.ok(&["apply", "--server-side", "-f", &web2]);
    assert!(
        applied.contains("cargo.nanocl.io/web serverside-applied"),
        "{applied}"
    );
    let table = kube.ok(&["get", "cargoes"]);
    assert!(
        table.starts_with("NAME")
            && table
                .lines()
                .next()
                .is_some_and(|h| h.contains("UP-TO-DATE")),
        "{table}"
    );
    assert!(
        row(&table, &["web", "dev", "0/2", "0"]).is_some(),
        "{table}"
    );
    let wide = kube.ok(&["get", "cg", "web", "-o", "wide"]);
    assert!(
        row(&wide, &["web", "busybox", "<default>"]).is_some(),
        "{wide}"
    );
    let yaml = kube.ok(&["get", "cargo", "web", "-o", "yaml", "--show-managed-fields"]);
    assert!(
        yaml.contains("manager: kubectl") && yaml.contains("f:replicas: {}"),
        "{yaml}"
    );
    let described = kube.ok(&["describe", "cargo", "web"]);
    assert!(
        described.contains("Kind:         Cargo") && described.contains("Replicas:"),
        "{described}"
    );

    // get -w follows a change made by a patch.
    let mut watch = kube
        .command(&["get", "cargoes", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    std::thread::sleep(Duration::from_millis(1500));
    let patched = kube.ok(&[
        "patch",
        "cargo",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":3}}"#,
    ]);
    assert!(patched.contains("patched"), "{patched}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = String::new();
    {
        use std::io::{BufRead, BufReader};
        let mut lines = BufReader::new(watch.stdout.take().expect("stdout")).lines();
        while Instant::now() < deadline {
            let Some(Ok(line)) = lines.next() else { break };
            seen.push_str(&line);
            seen.push('\n');
            if row(&line, &["web", "0/3"]).is_some() {
                break;
            }
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        row(&seen, &["web", "0/3"]).is_some(),
        "the watch showed:\n{seen}"
    );
    kube.ok(&[
        "patch",
        "cargo",
        "web",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#,
    ]);
    assert!(row(&kube.ok(&["get", "cargoes"]), &["web", "0/4"]).is_some());

    // A second manager that applies another replica count conflicts, until it forces.
    let web5 = kube.file("web5.yaml", &cargo(&ns, 5));
    let out = kube.run(&["apply", "--server-side", "--field-manager=ci", "-f", &web5]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out)
            .contains(r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas"#),
        "{}",
        stderr(&out)
    );
    kube.ok(&[
        "apply",
        "--server-side",
        "--field-manager=ci",
        "--force-conflicts",
        "-f",
        &web5,
    ]);
    assert!(row(&kube.ok(&["get", "cargoes"]), &["web", "0/5"]).is_some());

    // diff: 1 with differences (the file says 2, 5 runs), 0 without.
    let out = kube.run(&["diff", "-f", &web2]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("-  replicas: 5") && stdout(&out).contains("+  replicas: 2"),
        "{}",
        stdout(&out)
    );
    let out = kube.run(&["diff", "-f", &web5]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // The Python client lists and watches the same objects.
    let python = python_client(kube.config.as_path(), &ns);
    assert!(python.contains("list: web"), "{python}");
    assert!(python.contains("watch: ADDED web 5"), "{python}");

    // delete, and a NotFound after it.
    let deleted = kube.ok(&["delete", "cargo", "web"]);
    assert!(
        deleted.contains(r#"cargo.nanocl.io "web" deleted"#),
        "{deleted}"
    );
    let out = kube.run(&["get", "cargo", "web"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("(NotFound)"), "{}", stderr(&out));
    kube.ok(&["delete", "namespace", &ns]);
    // The store is the daemon's own, gone with it.
    drop(d);
}

/// Lists and watches the cargoes of `ns` with the Python Kubernetes client (Debian's
/// python3-kubernetes, which `make dev-env` installs; run by Debian's own python3).
fn python_client(config: &Path, ns: &str) -> String {
    let script = r#"
import sys
from kubernetes import client, config, watch
config.load_kube_config(config_file=sys.argv[1])
api = client.CustomObjectsApi()
ns = sys.argv[2]
items = api.list_namespaced_custom_object("nanocl.io", "v1", ns, "cargoes")["items"]
print("list:", ",".join(sorted(i["metadata"]["name"] for i in items)))
w = watch.Watch()
for event in w.stream(api.list_namespaced_custom_object, "nanocl.io", "v1", ns, "cargoes", timeout_seconds=5):
    o = event["object"]
    print("watch:", event["type"], o["metadata"]["name"], o["spec"].get("replicas"))
    w.stop()
"#;
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(config)
        .arg(ns)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the Python client failed (python3-kubernetes: `make dev-env` installs it)\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}
