//! dockerd restarted under a running nanocld: the replicas come back, exactly as many as the
//! spec says. The test runs its own dockerd (own socket, data root, exec root and default
//! bridge interface, no iptables) so that restarting it touches nothing else on the host.
//! (`--bridge none` would not do: dockerd then deletes the host's `docker0`.)

use std::time::{Duration, Instant};

use nanocl_e2e::hosts::PrivateDocker;
use nanocl_e2e::{stderr, test_image, Daemon};

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn replicas_should_converge_again_after_dockerd_restarts() {
    let mut engine = PrivateDocker::start(0);
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
