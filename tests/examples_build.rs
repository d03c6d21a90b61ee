//! `examples/build/` applied as written, as `make run` applies it: its git source `../..` is
//! this repository, so nanocld builds `examples/build/site` of the committed HEAD (no
//! registry, no network) and the cargo serves that image.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nanocl_e2e::docker::{docker, running};
use nanocl_e2e::{condition, stderr, stdout, Daemon, StoreKind};

/// The example's namespace and cargo, as its files name them.
const NAMESPACE: &str = "build-demo";
const CARGO: &str = "site";

/// The value of the first `KEY: value` line of the example's `file`.
fn example_value(file: &str, key: &str) -> String {
    let path = repository().join("examples/build").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .unwrap_or_else(|| panic!("{} has no {key}", path.display()))
}

fn repository() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

/// `git ARGS` in the repository: its output, or what git said. (Run by a user who does not
/// own the checkout, git refuses it as "dubious ownership", and so does nanocld's git.)
fn git(args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repository())
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn namespace_label() -> String {
    format!("label=io.nanocl.namespace={NAMESPACE}")
}

fn lines(text: &str) -> BTreeSet<String> {
    text.lines().map(str::to_owned).collect()
}

fn containers() -> BTreeSet<String> {
    lines(&docker(&["ps", "-aq", "--filter", &namespace_label()]))
}

fn networks() -> BTreeSet<String> {
    lines(&docker(&[
        "network",
        "ls",
        "-q",
        "--filter",
        &namespace_label(),
    ]))
}

fn images() -> BTreeSet<String> {
    // Built images are named by namespace and cargo (`nanocl.local/NS/CARGO:…`).
    lines(&docker(&[
        "images",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("reference=nanocl.local/{NAMESPACE}/*"),
    ]))
}

/// Removes what Docker holds for the example's namespace: every container and network
/// (there were none before the test) and the images built since the test began. The
/// namespace is the example's, not a random one, so this is done by label here rather than
/// by `Scope`; it is declared before the daemon, so that the daemon is stopped first.
struct Cleanup {
    images_before: BTreeSet<String>,
}

impl Cleanup {
    fn run(&self) {
        for id in containers() {
            docker(&["rm", "-f", &id]);
        }
        for id in networks() {
            docker(&["network", "rm", &id]);
        }
        for id in images().difference(&self.images_before) {
            docker(&["rmi", "-f", id]);
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.run();
    }
}

/// The body of `GET /` at `address` (`127.0.0.1:PORT`), or empty.
fn page(address: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return String::new();
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

fn wait(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_build_example_should_build_the_repositorys_head_and_serve_it() {
    let head = git(&["rev-parse", "HEAD"])
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|e| panic!("the example builds this repository's HEAD: {e}"));
    let committed_page = git(&["show", "HEAD:examples/build/site/index.html"])
        .unwrap_or_else(|e| panic!("the example builds what is committed: {e}"));
    let greeting = example_value("01-cluster.yaml", "GREETING:");
    let port = example_value("02-site.yaml", "hostPort:");
    // What would otherwise be a 3-minute wait for a replica that cannot start.
    assert!(
        containers().is_empty() && networks().is_empty(),
        "Docker already runs something in namespace {NAMESPACE} (`make run`?): stop it, or \
         `nanocl delete ns {NAMESPACE} --wait`, before this test"
    );
    assert!(
        std::net::TcpListener::bind(format!("127.0.0.1:{port}")).is_ok(),
        "127.0.0.1:{port}, which the example publishes, is taken"
    );
    let cleanup = Cleanup {
        images_before: images(),
    };
    let d = Daemon::start_with_controllers(StoreKind::Embedded);

    // As `make run` applies examples/: the directory, recursively, waiting until Ready.
    let dir = repository().join("examples/build");
    let out = d.nanocl(&[
        "apply",
        "-R",
        "-f",
        &dir.display().to_string(),
        "--wait",
        "--timeout",
        "3m",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "apply: {}{}",
        stdout(&out),
        stderr(&out)
    );

    let cargo: serde_json::Value = serde_json::from_slice(
        &d.nanocl(&["-n", NAMESPACE, "get", "cargo", CARGO, "-o", "json"])
            .stdout,
    )
    .expect("the cargo as JSON");
    let build = &cargo["status"]["build"];
    assert_eq!(build["phase"], "Succeeded", "{build:#}");
    assert_eq!(build["commit"], head.as_str(), "built from HEAD: {build:#}");
    let image = build["image"].as_str().unwrap_or_default();
    assert!(
        image.starts_with(&format!("nanocl.local/{NAMESPACE}/{CARGO}:{}", &head[..12])),
        "tagged by the commit: {build:#}"
    );
    let image_id = build["imageId"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        docker(&["image", "inspect", "-f", "{{.Id}}", image]),
        image_id,
        "the tag is the image the status names"
    );
    assert!(
        image.contains(&format!(":{}", &head[..12])),
        "the tag says what it was built from: {image}"
    );
    assert_eq!(
        condition(&cargo["status"], "Ready"),
        ("True".into(), "ReplicasReady".into()),
        "{cargo:#}"
    );

    // The replica runs that image, and its published port serves the committed page with
    // the cluster's GREETING, passed as a build arg.
    let labels = vec![
        "io.nanocl.managed=true".to_owned(),
        format!("io.nanocl.namespace={NAMESPACE}"),
        format!("io.nanocl.cargo={CARGO}"),
    ];
    let replicas = running(&labels);
    assert_eq!(replicas.len(), 1, "one replica: {replicas:?}");
    let replica = &replicas[0];
    assert_eq!(docker(&["inspect", "-f", "{{.Image}}", replica]), image_id);
    let address = docker(&["port", replica, "8080/tcp"])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(!address.is_empty(), "8080 is published: {replica}");
    let expected = format!("{committed_page}<p>{greeting}</p>\n");
    wait("the page", Duration::from_secs(30), || {
        page(&address) == expected
    });

    let out = d.nanocl(&["delete", "ns", NAMESPACE, "--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        containers().is_empty() && networks().is_empty(),
        "the namespace's deletion removed its containers and network"
    );
    // Built images are not collected yet: removed here, and checked gone.
    cleanup.run();
    let left: Vec<String> = images()
        .difference(&cleanup.images_before)
        .cloned()
        .collect();
    assert!(left.is_empty(), "images left: {left:?}");
}
