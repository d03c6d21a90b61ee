//! `nanocl convert --from compose`, end to end against a real nanocld and dockerd: each
//! Compose fixture (`tests/fixtures/compose/`) converts, what has no equivalent is reported
//! at its line, and the output applies and runs — the web app serves its bind-mounted page
//! on its published port, reads its env_file, reaches its database by name over their
//! network; the cache has its two replicas; the service built from a directory serves what
//! its Dockerfile copied.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nanocl_e2e::docker::{docker, running, wait_until, Scope};
use nanocl_e2e::hosts::free_port;
use nanocl_e2e::{binary, http_get, stderr, stdout, test_image, Daemon, StoreKind};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/compose")
        .join(name)
        .join("compose.yaml")
}

fn nanocl(d: &Daemon, args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(binary("nanocl"))
        .args(args)
        .env("NANOCL_HOST", &d.host)
        .env("NO_COLOR", "1")
        .envs(envs.iter().copied())
        .output()
        .expect("nanocl runs")
}

fn ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// Converts `fixture` into namespace `ns` and applies it, waiting until it is Ready; what
/// convert reported.
fn convert_and_apply(d: &Daemon, ns: &str, fixture: &Path, envs: &[(&str, &str)]) -> String {
    let file = fixture.display().to_string();
    let out = nanocl(d, &["-n", ns, "convert", "--from", "compose", &file], envs);
    let objects = ok(&out);
    let reported = stderr(&out);
    let converted = d.dir.path().join(format!("{ns}.yaml"));
    std::fs::write(&converted, objects).expect("write");
    let applied = nanocl(
        d,
        &[
            "apply",
            "-f",
            &converted.display().to_string(),
            "--wait",
            "--timeout",
            "180s",
        ],
        &[],
    );
    ok(&applied);
    reported
}

/// A Docker volume this test made (by naming it in the Compose file), removed on drop.
struct Volume(String);

impl Drop for Volume {
    fn drop(&mut self) {
        docker(&["volume", "rm", "-f", &self.0]);
    }
}

/// The images nanocld built for this test's namespace, removed on drop if nanocld did not
/// (a failed test).
struct BuiltImages(String);

impl Drop for BuiltImages {
    fn drop(&mut self) {
        for id in docker(&["images", "-q", "--filter", &self.0]).lines() {
            docker(&["rmi", "-f", id]);
        }
    }
}

#[test]
fn the_web_app_fixture_should_convert_apply_and_run() {
    // Declared first, dropped last: nanocld stops before its containers are removed (else
    // it would bring them back), and they before the volume they use.
    let volume = Volume(format!("t{}-compose-data", std::process::id()));
    let scope = Scope::new("compose");
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let port = free_port();
    let reported = convert_and_apply(
        &d,
        &scope.ns,
        &fixture("webapp"),
        &[
            ("TEST_IMAGE", &test_image()),
            ("WEB_PORT", &port.to_string()),
            ("DATA_VOLUME", &volume.0),
        ],
    );
    let file = fixture("webapp").display().to_string();
    for expected in [
        format!("{file}:36:5: services.web.container_name: not converted: nanocl names the containers"),
        format!("{file}:37:5: services.web.logging: not converted: no equivalent in a nanocl Cargo"),
        format!("{file}:27:5: services.web.depends_on: recorded (annotation compose.nanocl.io/depends-on), not enforced"),
        format!("{file}:59:9: services.cache.networks.back.aliases: not converted"),
    ] {
        assert!(reported.contains(&expected), "{expected}\nnot in:\n{reported}");
    }

    // The published port serves the bind-mounted page.
    wait_until("the web page on its published port", || {
        http_get(port, "127.0.0.1", "/")
            .is_some_and(|(code, body)| code == 200 && body.contains("<h1>shop</h1>"))
    });
    // env_file and environment both reach the container.
    let exec = |args: &[&str]| {
        let mut all = vec!["-n", scope.ns.as_str(), "exec", "cargo", "web", "--"];
        all.extend(args);
        nanocl(&d, &all, &[])
    };
    assert_eq!(
        ok(&exec(&["sh", "-c", "echo $GREETING"])).trim(),
        "hello from env_file"
    );
    assert_eq!(
        ok(&exec(&["sh", "-c", "echo $DATABASE_URL"])).trim(),
        "postgres://db:5432/shop"
    );
    // The database by its service name, over their shared network.
    let hostname = ok(&exec(&["wget", "-q", "-O-", "http://db:5432/hostname"]));
    assert!(!hostname.trim().is_empty());
    // deploy.replicas.
    assert_eq!(running(&scope.cargo("cache")).len(), 2);
    // The named volume is mounted.
    let mounted = ok(&exec(&["sh", "-c", "touch /data/x && ls /data"]));
    assert_eq!(mounted.trim(), "x");

    ok(&nanocl(
        &d,
        &["delete", "namespace", &scope.ns, "--wait"],
        &[],
    ));
}

#[test]
fn the_build_fixture_should_build_its_directory_and_run_it() {
    let scope = Scope::new("compose-build");
    let _images = BuiltImages(format!("reference=nanocl.local/{}/*", scope.ns));
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let reported = convert_and_apply(
        &d,
        &scope.ns,
        &fixture("build"),
        &[("TEST_IMAGE", &test_image())],
    );
    assert!(
        reported.contains("compose.yaml:9:5: services.app.image: not used: the image is built"),
        "{reported}"
    );
    let page = ok(&nanocl(
        &d,
        &[
            "-n",
            &scope.ns,
            "exec",
            "cargo",
            "app",
            "--",
            "wget",
            "-q",
            "-O-",
            "http://127.0.0.1:8080/",
        ],
        &[],
    ));
    assert_eq!(page.trim(), "built from a compose build context");
    ok(&nanocl(
        &d,
        &["delete", "namespace", &scope.ns, "--wait"],
        &[],
    ));
    // nanocld removes the images it built for a cargo that is gone.
    let reference = format!("reference=nanocl.local/{}/*", scope.ns);
    wait_until("the built images to be removed", || {
        docker(&["images", "-q", "--filter", &reference])
            .trim()
            .is_empty()
    });
    drop(d);
}
