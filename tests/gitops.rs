//! The GitOps example as a CI job would run it: `examples/gitops/ci-deploy.sh` on a fresh
//! checkout of each commit of a real local git repository, against a real nanocld and dockerd.
//! Commits: the example as written; add a cargo; change its image; remove it; break a file.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use nanocl_e2e::docker::{docker, running, Scope};
use nanocl_e2e::{bin_dir, Daemon, StoreKind};

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/gitops")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read example") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Rewrites every YAML file under `dir`.
fn rewrite(dir: &Path, edit: &dyn Fn(String) -> String) {
    for entry in std::fs::read_dir(dir).expect("read") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rewrite(&path, edit);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).expect("read");
            std::fs::write(&path, edit(text)).expect("write");
        }
    }
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args([
            "-c",
            "user.name=nanocl-test",
            "-c",
            "user.email=test@nanocl.invalid",
        ])
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn commit(repo: &Path, message: &str) -> String {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

/// What CI does for a commit: a fresh clone at that commit, then the deploy script.
fn ci_job(d: &Daemon, origin: &Path, sha: &str, work: &Path) -> Output {
    let checkout = work.join(&sha[..12]);
    let out = Command::new("git")
        .args(["clone", "-q"])
        .arg(origin)
        .arg(&checkout)
        .output()
        .expect("git clone");
    assert!(out.status.success(), "{out:?}");
    git(&checkout, &["checkout", "-q", sha]);
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(checkout.join("ci-deploy.sh"))
        .env("PATH", path)
        .env("NANOCL_HOST", &d.host)
        .env("NANOCL_TIMEOUT", "90s")
        .env("NO_COLOR", "1")
        .output()
        .expect("ci-deploy.sh runs")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn http_get(port: u16) -> String {
    let mut last = String::new();
    for _ in 0..50 {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
            let mut body = String::new();
            let _ = stream.read_to_string(&mut body);
            if body.contains("200 OK") {
                return body;
            }
            last = body;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no page on 127.0.0.1:{port}: {last}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn images(labels: &[String]) -> Vec<String> {
    running(labels)
        .iter()
        .map(|name| docker(&["inspect", "-f", "{{.Config.Image}}", name]))
        .collect()
}

#[test]
fn ci_deploy_follows_the_commits_of_a_git_repository() {
    let scope = Scope::new("gitops");
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let tmp = tempfile::tempdir().expect("tempdir");
    let origin = tmp.path().join("origin");
    let work = tmp.path().join("ci");

    // The example as written, in a namespace and on a port of this test's own.
    copy_dir(&example_dir(), &origin);
    let port = free_port();
    let ns = scope.ns.clone();
    let edit = move |t: String| {
        t.replace("name: shop\n", &format!("name: {ns}\n"))
            .replace("namespace: shop\n", &format!("namespace: {ns}\n"))
            .replace("hostPort: 18090", &format!("hostPort: {port}"))
    };
    rewrite(&origin, &edit);
    git(&origin, &["init", "-q", "-b", "main"]);
    let first = commit(&origin, "The shop: namespace, cluster, storefront");

    let out = ci_job(&d, &origin, &first, &work);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ci-deploy: differences found: applying")
            && stdout.contains(&format!(
                "cargo/storefront (namespace {}) created",
                scope.ns
            ))
            && stdout.contains(&format!("cargo/storefront (namespace {}) ready", scope.ns)),
        "{}",
        text(&out)
    );
    assert_eq!(running(&scope.cargo("storefront")).len(), 1);
    assert!(http_get(port).contains("The GitOps shop (served by "));

    // The same commit again: nothing to do.
    let again = ci_job(&d, &origin, &first, &tmp.path().join("ci-again"));
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("no differences: nothing to deploy"),
        "{}",
        text(&again)
    );

    // Commit 1: add a cargo.
    let worker = origin.join("deploy/shop/cargoes/worker.yaml");
    let worker_yaml = |image: &str| {
        format!(
            "apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata:\n  name: worker\n  namespace: {}\nspec:\n  cluster: prod\n  container:\n    image: {image}\n    command: [\"sh\", \"-c\", \"while true; do sleep 5; done\"]\n",
            scope.ns
        )
    };
    std::fs::write(&worker, worker_yaml("busybox:stable")).expect("write");
    let add = commit(&origin, "Add the worker");
    let out = ci_job(&d, &origin, &add, &work);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("cargo/worker (namespace {}) created", scope.ns)),
        "{}",
        text(&out)
    );
    assert_eq!(images(&scope.cargo("worker")), vec!["busybox:stable"]);

    // Commit 2: change its image.
    std::fs::write(&worker, worker_yaml("nanocl-test/busybox:latest")).expect("write");
    let change = commit(&origin, "Worker on the test image");
    let out = ci_job(&d, &origin, &change, &work);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("cargo/worker (namespace {}) configured", scope.ns)),
        "{}",
        text(&out)
    );
    assert_eq!(
        images(&scope.cargo("worker")),
        vec!["nanocl-test/busybox:latest"]
    );

    // Commit 3: remove it. --wait waits until it is gone, containers included.
    std::fs::remove_file(&worker).expect("rm");
    let remove = commit(&origin, "Remove the worker");
    let out = ci_job(&d, &origin, &remove, &work);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("cargo/worker (namespace {}) pruned", scope.ns))
            && stdout.contains(&format!("cargo/worker (namespace {}) deleted", scope.ns)),
        "{}",
        text(&out)
    );
    assert!(running(&scope.cargo("worker")).is_empty());
    assert_eq!(running(&scope.cargo("storefront")).len(), 1);

    // A broken commit fails the job with diff's exit 2, and applies nothing.
    let cluster = origin.join("deploy/shop/cluster.yaml");
    let broken = std::fs::read_to_string(&cluster)
        .expect("read")
        .replace("SHOP_NAME: The GitOps shop", "SHOP_NAME: [unclosed");
    std::fs::write(&cluster, broken).expect("write");
    let bad = commit(&origin, "A typo");
    let out = ci_job(&d, &origin, &bad, &work);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("deploy/shop/cluster.yaml:11:")
            && stderr
                .contains("ci-deploy: error: nanocl diff failed (exit 2): nothing was applied"),
        "{}",
        text(&out)
    );
    assert!(http_get(port).contains("The GitOps shop"));

    let out = d.nanocl(&["delete", "namespace", &scope.ns, "--wait"]);
    assert!(out.status.success(), "{out:?}");
}
