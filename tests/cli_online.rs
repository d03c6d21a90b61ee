//! The CLI end to end against a real `nanocld`, on the embedded store and on etcd:
//! apply → get → diff → edit → diff → apply → delete, v1alpha1 in and v1 out, concurrent
//! writers, prune, the bad-input corpus against a live server, and socket handling.

use std::path::{Path, PathBuf};

use hyper::{Method, StatusCode};
use nanocl_client::http::{Client, Host};
use nanocl_e2e::{stderr, stdout, Daemon, StoreKind};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn examples() -> String {
    repo()
        .join("examples/getting-started")
        .display()
        .to_string()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

macro_rules! per_store {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(#[test] fn $name() { super::$name(nanocl_e2e::StoreKind::Embedded) })*
        }
        mod etcd {
            $(#[test] fn $name() { super::$name(nanocl_e2e::StoreKind::Etcd) })*
        }
    };
}

per_store!(
    apply_get_diff_edit_delete_should_round_trip,
    v1alpha1_should_go_in_and_v1_come_out,
    two_concurrent_writers_should_never_lose_an_acknowledged_write,
    prune_should_delete_exactly_the_vanished_objects,
    the_bad_input_corpus_should_change_nothing_on_a_live_server,
    server_dry_run_should_store_nothing,
);

fn apply_get_diff_edit_delete_should_round_trip(store: StoreKind) {
    let d = Daemon::start(store);
    let ex = examples();
    let out = d.nanocl(&["apply", "-R", "-f", &ex]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "namespace/getting-started created\n\
         cluster/dev (namespace getting-started) created\n\
         network/front (namespace getting-started) created\n\
         network/back (namespace getting-started) created\n\
         cargo/backend (namespace getting-started) created\n\
         cargo/web (namespace getting-started) created\n\
         proxyrule/front (namespace getting-started) created\n"
    );
    let again = d.nanocl(&["apply", "-R", "-f", &ex]);
    assert_eq!(
        stdout(&again).matches(" unchanged\n").count(),
        7,
        "{}",
        stdout(&again)
    );

    let get = d.nanocl(&["-n", "getting-started", "get", "cargoes", "-o", "name"]);
    assert_eq!(stdout(&get), "cargo/backend\ncargo/web\n");
    let table = d.nanocl(&["get", "cg", "-A"]);
    let table = stdout(&table);
    let lines: Vec<&str> = table.lines().map(str::trim_end).collect();
    assert!(lines[0].starts_with("NAMESPACE"), "{lines:?}");
    assert!(
        lines[1].starts_with("getting-started   backend   dev       0/2"),
        "{lines:?}"
    );

    let diff = d.nanocl(&["diff", "-R", "-f", &ex]);
    assert_eq!(
        diff.status.code(),
        Some(0),
        "no differences: {}{}",
        stdout(&diff),
        stderr(&diff)
    );
    assert_eq!(stdout(&diff), "");

    let edited = d.dir.path().join("edited");
    copy_dir(Path::new(&ex), &edited);
    let backend = edited.join("03-backend.yaml");
    let text = std::fs::read_to_string(&backend)
        .expect("read")
        .replace("replicas: 2", "replicas: 3");
    std::fs::write(&backend, text).expect("write");
    let edited = edited.display().to_string();
    let diff = d.nanocl(&["diff", "-f", &edited]);
    assert_eq!(
        diff.status.code(),
        Some(1),
        "differences: {}",
        stderr(&diff)
    );
    let shown = stdout(&diff);
    assert!(
        shown.starts_with(
            "--- live/cargoes/getting-started/backend\n+++ files/cargoes/getting-started/backend\n"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("\n-  replicas: 2\n+  replicas: 3\n"),
        "{shown}"
    );
    assert_eq!(
        shown.matches("\n+").count(),
        2,
        "only the replica line changes: {shown}"
    );

    let before = live_json(
        &d,
        &[
            "-n",
            "getting-started",
            "get",
            "cargo",
            "backend",
            "-o",
            "json",
        ],
    );
    let out = d.nanocl(&["apply", "-f", &edited]);
    assert!(
        stdout(&out).contains("cargo/backend (namespace getting-started) configured\n"),
        "{}",
        stdout(&out)
    );
    assert_eq!(stdout(&out).matches(" unchanged\n").count(), 6);
    let after = live_json(
        &d,
        &[
            "-n",
            "getting-started",
            "get",
            "cargo",
            "backend",
            "-o",
            "json",
        ],
    );
    assert_eq!(
        after["metadata"]["generation"], 2,
        "a spec change bumps generation"
    );
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    assert_ne!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    let diff = d.nanocl(&["diff", "-f", &edited]);
    assert_eq!(diff.status.code(), Some(0), "{}", stdout(&diff));

    let out = d.nanocl(&["delete", "-f", &edited, "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 7);
    assert!(
        stdout(&out).starts_with("proxyrule/front")
            && stdout(&out)
                .lines()
                .nth(1)
                .is_some_and(|l| l.starts_with("cargo/")),
        "what routes to cargoes goes first, then cargoes: {}",
        stdout(&out)
    );
    let out = d.nanocl(&["get", "ns", "-o", "name"]);
    assert_eq!(stdout(&out), "namespace/global\n");
    let out = d.nanocl(&["-n", "getting-started", "get", "cargo", "backend"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
}

fn live_json(d: &Daemon, args: &[&str]) -> Value {
    let out = d.nanocl(args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("json")
}

fn v1alpha1_should_go_in_and_v1_come_out(store: StoreKind) {
    let d = Daemon::start(store);
    let file = d.dir.path().join("legacy.yaml");
    std::fs::write(
        &file,
        "apiVersion: nanocl.io/v1alpha1\nkind: Cargo\nmetadata:\n  name: legacy\nspec:\n  cluster: dev\n  image: busybox:stable\n  env: [\"A=1\"]\n  binds: [\"/srv:/data:ro\"]\n  ports: [\"127.0.0.1:8080:80\"]\n",
    )
    .expect("write");
    let f = file.display().to_string();
    let out = d.nanocl(&["apply", "-f", &f]);
    assert_eq!(stdout(&out), "cargo/legacy created\n", "{}", stderr(&out));
    let live = live_json(&d, &["get", "cargo", "legacy", "-o", "json"]);
    assert_eq!(live["apiVersion"], "nanocl.io/v1");
    assert_eq!(live["spec"]["container"]["image"], "busybox:stable");
    assert_eq!(live["spec"]["container"]["env"]["A"], "1");
    assert_eq!(live["spec"]["container"]["volumes"][0]["readOnly"], true);
    assert_eq!(live["spec"]["container"]["ports"][0]["hostPort"], 8080);
    // Applying the same v1alpha1 file again changes nothing, and diff agrees.
    assert_eq!(
        stdout(&d.nanocl(&["apply", "-f", &f])),
        "cargo/legacy unchanged\n"
    );
    assert_eq!(d.nanocl(&["diff", "-f", &f]).status.code(), Some(0));
    // And back: the v1alpha1 view of the live object holds the flat fields.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let legacy = rt.block_on(async {
        let client = Client::new(Host::parse(Some(&d.host)).expect("host"));
        client
            .request(
                Method::GET,
                "/apis/nanocl.io/v1alpha1/namespaces/global/cargoes/legacy",
                None,
            )
            .await
            .expect("get")
            .json()
            .expect("json")
    });
    assert_eq!(legacy["apiVersion"], "nanocl.io/v1alpha1");
    assert_eq!(legacy["spec"]["image"], "busybox:stable");
    assert_eq!(legacy["spec"]["env"], serde_json::json!(["A=1"]));
    assert_eq!(
        legacy["spec"]["binds"],
        serde_json::json!(["/srv:/data:ro"])
    );
    assert_eq!(
        legacy["spec"]["ports"],
        serde_json::json!(["127.0.0.1:8080:80/tcp"])
    );
}

fn two_concurrent_writers_should_never_lose_an_acknowledged_write(store: StoreKind) {
    let d = Daemon::start(store);
    let file = d.dir.path().join("c.yaml");
    std::fs::write(
        &file,
        "apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata:\n  name: shared\n",
    )
    .expect("write");
    assert_eq!(
        d.nanocl(&["apply", "-f", &file.display().to_string()])
            .status
            .code(),
        Some(0)
    );
    let host = d.host.clone();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (acks, conflicts) = rt.block_on(async move {
        let mut tasks = Vec::new();
        for writer in ["a", "b"] {
            let client = Client::new(Host::parse(Some(&host)).expect("host"));
            tasks.push(tokio::spawn(async move {
                let path = "/apis/nanocl.io/v1/namespaces/global/clusters/shared";
                let mut acks = Vec::new();
                let mut conflicts = 0;
                for i in 0..100 {
                    let mut object = client
                        .request(Method::GET, path, None)
                        .await
                        .expect("get")
                        .json()
                        .expect("json");
                    object["spec"]["variables"]["WRITER"] = Value::String(format!("{writer}-{i}"));
                    let answer = client
                        .request(Method::PUT, path, Some(&object))
                        .await
                        .expect("put");
                    match answer.status {
                        StatusCode::OK => {
                            let written = answer.json().expect("json");
                            let rv: i64 = written["metadata"]["resourceVersion"]
                                .as_str()
                                .expect("rv")
                                .parse()
                                .expect("number");
                            acks.push((rv, format!("{writer}-{i}")));
                        }
                        StatusCode::CONFLICT => conflicts += 1,
                        other => panic!("unexpected {other}: {}", answer.error_message()),
                    }
                }
                (acks, conflicts)
            }));
        }
        let mut acks = Vec::new();
        let mut conflicts = 0;
        for t in tasks {
            let (a, c) = t.await.expect("writer");
            acks.extend(a);
            conflicts += c;
        }
        (acks, conflicts)
    });
    assert_eq!(
        acks.len() + conflicts,
        200,
        "every write either succeeded or got 409"
    );
    let mut revisions: Vec<i64> = acks.iter().map(|(rv, _)| *rv).collect();
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(
        revisions.len(),
        acks.len(),
        "every acknowledged write has its own resourceVersion"
    );
    let last = acks
        .iter()
        .max_by_key(|(rv, _)| *rv)
        .expect("some writes succeeded");
    let live = live_json(&d, &["get", "cluster", "shared", "-o", "json"]);
    assert_eq!(
        live["spec"]["variables"]["WRITER"],
        last.1.as_str(),
        "the final object is the last acknowledged write"
    );
    assert_eq!(live["metadata"]["resourceVersion"], last.0.to_string());
}

fn prune_should_delete_exactly_the_vanished_objects(store: StoreKind) {
    let d = Daemon::start(store);
    let set = d.dir.path().join("deploy");
    std::fs::create_dir_all(&set).expect("mkdir");
    let cargo = |name: &str| {
        format!("apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata:\n  name: {name}\nspec:\n  cluster: dev\n  container:\n    image: busybox:stable\n")
    };
    for name in ["a", "b", "c"] {
        std::fs::write(set.join(format!("{name}.yaml")), cargo(name)).expect("write");
    }
    let other = d.dir.path().join("other.yaml");
    std::fs::write(&other, cargo("unrelated")).expect("write");
    let dir = set.display().to_string();
    assert_eq!(
        d.nanocl(&["apply", "-f", &other.display().to_string()])
            .status
            .code(),
        Some(0)
    );
    let out = d.nanocl(&["apply", "--prune", "-f", &dir]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let live = live_json(&d, &["get", "cargo", "a", "-o", "json"]);
    assert_eq!(
        live["metadata"]["labels"]["nanocl.io/applyset"], "deploy",
        "the applyset is named after the directory"
    );

    std::fs::remove_file(set.join("b.yaml")).expect("rm");
    let diff = d.nanocl(&["diff", "--prune", "-f", &dir]);
    assert_eq!(diff.status.code(), Some(1));
    assert!(
        stdout(&diff).starts_with("--- live/cargoes/global/b\n+++ /dev/null\n"),
        "{}",
        stdout(&diff)
    );

    // A file that does not parse: nothing is applied and nothing is pruned.
    std::fs::write(
        set.join("broken.yaml"),
        "apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: [",
    )
    .expect("write");
    let out = d.nanocl(&["apply", "--prune", "-f", &dir]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    assert_eq!(
        stdout(&d.nanocl(&["get", "cargoes", "-o", "name"])),
        "cargo/a\ncargo/b\ncargo/c\ncargo/unrelated\n"
    );

    std::fs::remove_file(set.join("broken.yaml")).expect("rm");
    let out = d.nanocl(&["apply", "--prune", "-f", &dir]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "cargo/a unchanged\ncargo/c unchanged\ncargo/b pruned\n"
    );
    assert_eq!(
        stdout(&d.nanocl(&["get", "cargoes", "-o", "name"])),
        "cargo/a\ncargo/c\ncargo/unrelated\n"
    );
}

/// Everything the server holds, for before/after comparisons.
fn snapshot(d: &Daemon) -> String {
    ["ns", "cl", "net", "cg"]
        .iter()
        .map(|k| stdout(&d.nanocl(&["get", k, "-A", "-o", "json"])))
        .collect()
}

fn the_bad_input_corpus_should_change_nothing_on_a_live_server(store: StoreKind) {
    let d = Daemon::start(store);
    let corpus = repo().join("tests/fixtures/invalid");
    let before = snapshot(&d);
    let mut names: Vec<String> = std::fs::read_dir(&corpus)
        .expect("corpus")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.ends_with(".err"))
        .collect();
    names.sort();
    for name in &names {
        let out = d.nanocl_in(&["apply", "-f", name], Some(&corpus));
        let expected =
            std::fs::read_to_string(corpus.join(format!("{name}.err"))).expect("expected errors");
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert_eq!(stderr(&out), expected, "{name}");
        assert!(
            stdout(&out).is_empty(),
            "{name} applied something: {}",
            stdout(&out)
        );
    }
    assert_eq!(snapshot(&d), before, "the corpus changed the server");
}

fn server_dry_run_should_store_nothing(store: StoreKind) {
    let d = Daemon::start(store);
    let ex = examples();
    let out = d.nanocl(&[
        "apply",
        "--dry-run=server",
        "-f",
        &repo()
            .join("examples/getting-started/00-namespace.yaml")
            .display()
            .to_string(),
    ]);
    assert_eq!(
        stdout(&out),
        "namespace/getting-started created (server dry run)\n",
        "{}",
        stderr(&out)
    );
    assert_eq!(
        stdout(&d.nanocl(&["get", "ns", "-o", "name"])),
        "namespace/global\n"
    );
    // Objects in a namespace that does not exist yet are refused by the server, not half-applied.
    let out = d.nanocl(&["apply", "--dry-run=server", "-R", "-f", &ex]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("namespace \"getting-started\" not found"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        stdout(&d.nanocl(&["get", "ns", "-o", "name"])),
        "namespace/global\n"
    );
}

#[test]
fn a_stale_socket_should_be_replaced_and_a_live_one_refused() {
    let d = Daemon::start(StoreKind::Embedded);
    let socket = d.host.trim_start_matches("unix://").to_owned();
    let second = std::process::Command::new(nanocl_e2e::binary("nanocld"))
        .args([
            "--state-dir",
            &d.dir.path().join("other-state").display().to_string(),
            "--listen",
            &d.host,
        ])
        .output()
        .expect("second nanocld runs");
    assert_eq!(second.status.code(), Some(1));
    assert!(
        stderr(&second).contains(&format!("another nanocld is already listening on {socket}")),
        "{}",
        stderr(&second)
    );
    drop(d);

    // A socket file left behind with nobody listening is replaced.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
    assert!(path.exists(), "the stale socket file stays behind");
    let mut child = std::process::Command::new(nanocl_e2e::binary("nanocld"))
        .args([
            "--state-dir",
            &dir.path().join("state").display().to_string(),
            "--listen",
            &format!("unix://{}", path.display()),
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nanocld starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&path).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nanocld did not take over the stale socket"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().expect("exits");
    assert!(status.success(), "SIGTERM is a clean shutdown: {status:?}");
    assert!(!path.exists(), "the socket is removed on shutdown");
}

#[test]
fn the_cli_should_say_how_to_start_nanocld_when_it_is_not_running() {
    let out = std::process::Command::new(nanocl_e2e::binary("nanocl"))
        .args(["get", "ns"])
        .env("NANOCL_HOST", "unix:///nonexistent/nanocl.sock")
        .output()
        .expect("nanocl runs");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("cannot reach nanocld at unix:///nonexistent/nanocl.sock"),
        "{err}"
    );
    assert!(err.contains("is nanocld running?"), "{err}");
    let diff = std::process::Command::new(nanocl_e2e::binary("nanocl"))
        .args(["diff", "-f", &examples()])
        .env("NANOCL_HOST", "unix:///nonexistent/nanocl.sock")
        .output()
        .expect("nanocl runs");
    assert_eq!(diff.status.code(), Some(2), "diff errors exit 2");
    let usage = std::process::Command::new(nanocl_e2e::binary("nanocl"))
        .args(["-n", "x", "diff", "--bogus"])
        .output()
        .expect("nanocl runs");
    assert_eq!(
        usage.status.code(),
        Some(2),
        "a diff usage error after global options exits 2 too"
    );
}

#[test]
fn nanocld_should_refuse_to_replace_a_file_that_is_not_a_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("important.txt");
    std::fs::write(&file, "keep me").expect("write");
    let out = std::process::Command::new(nanocl_e2e::binary("nanocld"))
        .args([
            "--state-dir",
            &dir.path().join("s").display().to_string(),
            "--controllers",
            "none",
            "--listen",
            &format!("unix://{}", file.display()),
        ])
        .output()
        .expect("nanocld runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not a socket"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&file).expect("still there"),
        "keep me"
    );
}

#[test]
fn get_watch_should_print_changes_as_they_happen() {
    use std::io::{BufRead, BufReader};
    let d = Daemon::start(StoreKind::Embedded);
    let mut child = std::process::Command::new(nanocl_e2e::binary("nanocl"))
        .args(["get", "clusters", "-w", "-o", "name"])
        .env("NANOCL_HOST", &d.host)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nanocl get -w runs");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Let the watch open, then create and delete a cluster.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let file = d.dir.path().join("c.yaml");
    std::fs::write(
        &file,
        "apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata:\n  name: watched\n",
    )
    .expect("write");
    let f = file.display().to_string();
    assert_eq!(d.nanocl(&["apply", "-f", &f]).status.code(), Some(0));
    assert_eq!(d.nanocl(&["delete", "-f", &f]).status.code(), Some(0));
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match rx.recv_timeout(std::time::Duration::from_secs(10)) {
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        seen,
        vec!["cluster/watched", "cluster/watched"],
        "the create and the delete"
    );
}

#[test]
fn json_logs_should_be_one_object_per_line_with_the_request_span() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("n.sock");
    let log = dir.path().join("log");
    let mut child = std::process::Command::new(nanocl_e2e::binary("nanocld"))
        .args([
            "--state-dir",
            &dir.path().join("s").display().to_string(),
            "--listen",
            &format!("unix://{}", socket.display()),
            "--log-format",
            "json",
        ])
        .env("NANOCL_LOG", "info")
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("nanocld starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nanocld did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = std::process::Command::new(nanocl_e2e::binary("nanocl"))
        .args(["get", "ns"])
        .env("NANOCL_HOST", format!("unix://{}", socket.display()))
        .output()
        .expect("nanocl runs");
    assert!(out.status.success());
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let request = lines
        .iter()
        .find(|l| l["fields"]["message"] == "answered")
        .expect("a request was logged");
    assert_eq!(request["fields"]["status"], 200);
    assert_eq!(request["span"]["method"], "GET");
    assert_eq!(request["span"]["path"], "/apis/nanocl.io/v1/namespaces");
}

#[test]
fn version_should_say_the_servers_version_too() {
    let d = Daemon::start(StoreKind::Embedded);
    let out = d.nanocl(&["version"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "Server Version: {} (store: embedded)",
            env!("CARGO_PKG_VERSION")
        )),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).is_empty(),
        "same versions, no warning: {}",
        stderr(&out)
    );
    let json: Value =
        serde_json::from_slice(&d.nanocl(&["version", "-o", "json"]).stdout).unwrap_or_default();
    assert_eq!(json["serverVersion"]["store"], "embedded");
}

#[test]
fn a_network_change_docker_cannot_make_should_be_refused_naming_the_fields() {
    let d = Daemon::start(StoreKind::Embedded);
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("net.yaml");
    let net = |extra: &str| {
        format!(
            "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: imm}}\n---\napiVersion: nanocl.io/v1\nkind: Network\nmetadata: {{name: back, namespace: imm}}\nspec:\n  cluster: dev\n  subnet: 10.231.7.0/24\n{extra}"
        )
    };
    std::fs::write(&file, net("")).expect("write");
    let out = d.nanocl(&["apply", "-f", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::fs::write(
        &file,
        net("  internal: true\n").replace("10.231.7.0/24", "10.231.8.0/24"),
    )
    .expect("write");
    let out = d.nanocl(&["apply", "-f", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stderr(&out);
    assert!(
        text.contains(&format!(
            "network/back (namespace imm) ({}:4:1)",
            file.display()
        )) && text.contains("spec.internal: immutable")
            && text.contains("spec.subnet: immutable")
            && text.contains("delete it and apply it again"),
        "{text}"
    );
    let live = stdout(&d.nanocl(&["-n", "imm", "get", "network", "back", "-o", "yaml"]));
    assert!(
        live.contains("10.231.7.0/24") && !live.contains("internal: true"),
        "{live}"
    );
}

#[test]
fn get_and_describe_should_take_several_names_and_type_slash_name() {
    let d = Daemon::start(StoreKind::Embedded);
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("many.yaml");
    std::fs::write(
        &file,
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {name: many}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {name: dev, namespace: many}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {name: a, namespace: many}\nspec: {cluster: dev, container: {image: busybox}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {name: b, namespace: many}\nspec: {cluster: dev, container: {image: busybox}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {name: c, namespace: many}\nspec: {cluster: dev, container: {image: busybox}}\n",
    )
    .expect("write");
    let out = d.nanocl(&["apply", "-f", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let get = |args: &[&str]| {
        let mut all = vec!["-n", "many", "get"];
        all.extend_from_slice(args);
        d.nanocl(&all)
    };
    // Several names: one table, in the order given.
    let out = get(&["cargo", "c", "a"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows: Vec<String> = stdout(&out)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_owned())
        .collect();
    assert_eq!(rows, ["NAME", "c", "a"]);
    // TYPE/NAME, as -o name prints them, of several kinds: a table per kind.
    let names = stdout(&get(&["cargoes", "-o", "name"]));
    let mut args: Vec<&str> = names.lines().collect();
    args.insert(0, "cluster/dev");
    let out = get(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let tables: Vec<&str> = text.split("\n\n").collect();
    assert_eq!(tables.len(), 2, "{text}");
    assert!(
        tables[0].starts_with("NAME") && tables[0].contains("VARIABLES"),
        "{text}"
    );
    assert_eq!(
        tables[1].lines().count(),
        4,
        "a header and 3 cargoes: {text}"
    );
    // Round trip: -o name of TYPE/NAME is the same names.
    let mut args = names.lines().collect::<Vec<_>>();
    args.extend(["-o", "name"]);
    assert_eq!(stdout(&get(&args)), names);
    // A missing one: the others are printed, the missing one said, exit 1.
    let out = get(&["cargo", "a", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("\na "), "{}", stdout(&out));
    assert!(stderr(&out).contains("\"nope\""), "{}", stderr(&out));
    let out = get(&["cargo", "cargo/a"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not both"), "{}", stderr(&out));
    // describe: each object in turn.
    let out = d.nanocl(&["-n", "many", "describe", "cargo/a", "cluster/dev"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let a = text.find("Name:         a").expect("cargo a described");
    let dev = text
        .find("Name:         dev")
        .expect("cluster dev described");
    assert!(a < dev, "{text}");
    let out = d.nanocl(&["-n", "many", "describe", "cargo", "b", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("Name:         b"), "{}", stdout(&out));
    assert!(stderr(&out).contains("\"nope\""), "{}", stderr(&out));
}

#[test]
fn edit_should_validate_refuse_stale_writes_and_keep_the_work() {
    use std::os::unix::fs::PermissionsExt;
    let d = Daemon::start(StoreKind::Embedded);
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("edit.yaml");
    std::fs::write(
        &file,
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {name: ed}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {name: dev, namespace: ed}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Secret\nmetadata: {name: s, namespace: ed}\nspec: {stringData: {k: v}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {name: a, namespace: ed}\nspec: {cluster: dev, replicas: 1, container: {image: busybox}}\n",
    )
    .expect("write");
    let out = d.nanocl(&["apply", "-f", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // An "editor": a script run on the file, as the user's editor would be.
    let editor = |name: &str, script: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).expect("write the editor");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path.display().to_string()
    };
    let edit = |editor: &str, args: &[&str]| {
        std::process::Command::new(nanocl_e2e::binary("nanocl"))
            .args(["-n", "ed", "edit"])
            .args(args)
            .env("NANOCL_HOST", &d.host)
            .env("EDITOR", editor)
            // Kept edits land in the test's own directory, removed with it.
            .env("TMPDIR", dir.path())
            .env_remove("VISUAL")
            .env_remove("NANOCL_EDITOR")
            .output()
            .expect("nanocl edit runs")
    };
    let replicas = || {
        let out = d.nanocl(&["-n", "ed", "get", "cargo", "a", "-o", "json"]);
        serde_json::from_slice::<Value>(&out.stdout).unwrap_or_default()["spec"]["replicas"]
            .as_i64()
    };

    let out = edit(
        &editor("three", "sed -i 's/replicas: 1/replicas: 3/' \"$1\""),
        &["cargo", "a"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "cargo/a (namespace ed) edited\n");
    assert_eq!(replicas(), Some(3));

    let out = edit("true", &["cargo/a"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Edit cancelled, no changes made.\n");

    // Invalid: every problem, located in the file, then the editor again with the problems at
    // the end; left as it was, the edit ends, kept.
    let out = edit(
        &editor("typo", "sed -i 's/replicas: 3/replica: 3/' \"$1\""),
        &["cargo", "a"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(".yaml:")
            && err.contains("spec.replica: unknown field `replica` (did you mean `replicas`?)"),
        "{err}"
    );
    let kept = err
        .split("your edit is kept in ")
        .nth(1)
        .map(str::trim)
        .expect("the kept file named");
    let text = std::fs::read_to_string(kept).expect("the kept edit");
    assert!(
        text.contains("replica: 3")
            && text.contains("# ---- nanocl edit: this could not be applied ----"),
        "{text}"
    );
    std::fs::remove_file(kept).expect("remove the kept edit");
    assert_eq!(replicas(), Some(3), "nothing written");

    // Renaming is refused the same way.
    let out = edit(
        &editor("rename", "sed -i 's/name: a$/name: z/' \"$1\""),
        &["cargo", "a"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("edit cannot rename"),
        "{}",
        stderr(&out)
    );

    // Someone else writes while the editor is open: nothing is overwritten.
    let scale = format!(
        "NANOCL_HOST={} {} -n ed scale cargo a --replicas 5 >/dev/null\nsed -i 's/replicas: 3/replicas: 4/' \"$1\"",
        d.host,
        nanocl_e2e::binary("nanocl").display()
    );
    let out = edit(&editor("race", &scale), &["cargo", "a"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("was changed by someone else"),
        "{}",
        stderr(&out)
    );
    assert_eq!(replicas(), Some(5), "the other write stands");

    let out = edit("true", &["secret", "s"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("secrets cannot be edited"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bash_completion_should_offer_live_names() {
    let d = Daemon::start(StoreKind::Embedded);
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("c.yaml");
    std::fs::write(
        &file,
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {name: compl}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {name: frontend, namespace: compl}\nspec: {cluster: dev, container: {image: busybox}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {name: backend, namespace: compl}\nspec: {cluster: dev, container: {image: busybox}}\n",
    )
    .expect("write");
    let out = d.nanocl(&["apply", "-f", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // bash itself: the script registered, then its function run as bash would on TAB.
    let bin = nanocl_e2e::bin_dir();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let tab = |words: &[&str]| -> Vec<String> {
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let script = format!(
            "source <(nanocl completion bash)\ncomplete -p nanocl\nCOMP_WORDS=(nanocl {})\nCOMP_CWORD={}\n_nanocl\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            quoted.join(" "),
            words.len()
        );
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .env("PATH", &path)
            .env("NANOCL_HOST", &d.host)
            .env_remove("NANOCL_NAMESPACE")
            .output()
            .expect("bash runs");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = stdout(&out);
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("complete -o default -F _nanocl nanocl"),
            "{text}"
        );
        lines.filter(|l| !l.is_empty()).map(str::to_owned).collect()
    };
    assert_eq!(
        tab(&["-n", "compl", "get", "cargo", ""]),
        ["backend", "frontend"]
    );
    assert_eq!(tab(&["-n", "compl", "logs", "cargo", "f"]), ["frontend"]);
    assert_eq!(
        tab(&["get", "cargo", "--namespace=compl", "b"]),
        ["backend"]
    );
    assert!(tab(&["-n", ""]).contains(&"compl".to_owned()));
    assert_eq!(tab(&["-n", "compl", "desc"]), ["describe"]);
    assert_eq!(
        tab(&["-n", "compl", "get", "cargo", "backend", ""]),
        ["frontend"],
        "the names not given yet"
    );
    assert_eq!(
        tab(&["get", "cargo", ""]),
        Vec::<String>::new(),
        "none in global"
    );
}

#[test]
fn delete_should_take_several_names_type_slash_name_and_a_selector() {
    let d = Daemon::start(StoreKind::Embedded);
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("many.yaml");
    let cargo = |name: &str, app: &str| {
        format!("---\napiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: {name}, namespace: del, labels: {{app: {app}}}}}\nspec: {{cluster: dev, container: {{image: busybox}}}}\n")
    };
    let yaml = format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: del}}\n{}{}{}{}{}",
        cargo("a", "x"),
        cargo("b", "x"),
        cargo("c", "y"),
        cargo("d", "y"),
        cargo("e", "z")
    );
    std::fs::write(&file, yaml).expect("write");
    let out = d.nanocl(&["apply", "-f", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let names = || stdout(&d.nanocl(&["-n", "del", "get", "cargoes", "-o", "name"]));

    let out = d.nanocl(&["-n", "del", "delete", "cargo", "-l", "app=x"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(names(), "cargo/c\ncargo/d\ncargo/e\n");
    // `get -o name` output is accepted back.
    let out = d.nanocl(&["-n", "del", "delete", "cargo/c", "cargo/d"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("cargo/c (namespace del) deleted"),
        "{}",
        stdout(&out)
    );
    let out = d.nanocl(&["-n", "del", "delete", "cargo", "e", "nope"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the missing one fails the command"
    );
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
    assert_eq!(names(), "");
    let out = d.nanocl(&["-n", "del", "delete", "cargo"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("NAME…, or -l SELECTOR"),
        "{}",
        stderr(&out)
    );
}
