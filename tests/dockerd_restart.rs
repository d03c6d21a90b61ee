//! dockerd restarted under a running nanocld: the replicas come back, exactly as many as the
//! spec says. A test binary of its own, because restarting dockerd stops every container on
//! the host (cargo runs test binaries one after another, so no other test is affected).

use std::process::Command;
use std::time::{Duration, Instant};

use nanocl_e2e::{stderr, test_image, Daemon, StoreKind};

fn docker(args: &[&str]) -> (bool, String) {
    match Command::new("docker").args(args).output() {
        Ok(out) => (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        ),
        Err(_) => (false, String::new()),
    }
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn replicas_should_converge_again_after_dockerd_restarts() {
    let ns = format!("dr{}", std::process::id());
    let label = format!("label=io.nanocl.namespace={ns}");
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let manifest = d.dir.path().join("m.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\napiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n---\napiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: app, namespace: {ns}}}\nspec:\n  cluster: dev\n  replicas: 2\n  container:\n    image: {}\n    command: [sleep, \"3600\"]\n",
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
    let count = |status: Option<&str>| {
        let mut args = vec!["ps", "-aq", "--filter", label.as_str()];
        if let Some(s) = status {
            args.extend(["--filter", s]);
        }
        docker(&args).1.lines().count()
    };
    assert_eq!(count(Some("status=running")), 2);

    // Restart dockerd the way an operator would: stop it, then start it again.
    let pid = std::fs::read_to_string("/var/run/docker.pid").expect("dockerd pid file");
    let status = Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    wait_until("dockerd to stop", Duration::from_secs(60), || {
        !docker(&["info"]).0
    });
    let repo = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let up = Command::new("bash")
        .arg(repo.join("scripts/dev-env.sh"))
        .arg("up")
        .output()
        .expect("dev-env runs");
    assert!(
        up.status.success(),
        "dockerd did not come back: {}",
        String::from_utf8_lossy(&up.stderr)
    );

    wait_until(
        "exactly 2 running replicas again",
        Duration::from_secs(90),
        || count(Some("status=running")) == 2 && count(None) == 2,
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(None), 2, "no duplicate after settling");
    let out = d.nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "60s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count(None), 0);
}
