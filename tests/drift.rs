//! Drift made behind nanocl's back, against a real nanocld and dockerd: a replica
//! disconnected from its cluster's network is connected again, one resized with
//! `docker update` or renamed with `docker rename` is replaced; each is said in a
//! `DriftRepaired` Warning Event, and the cargo ends Ready with the spec's containers.

use nanocl_e2e::docker::{docker, running, wait_until, Scope};
use nanocl_e2e::{stderr, stdout, test_image, Daemon, StoreKind};

fn manifests(ns: &str) -> String {
    format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: app, namespace: {ns}}}\n\
         spec:\n  cluster: dev\n  container:\n    image: {}\n    command: [sleep, \"600\"]\n",
        test_image()
    )
}

fn networks(container: &str) -> String {
    docker(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        container,
    ])
}

fn events(d: &Daemon, ns: &str) -> String {
    stdout(&d.nanocl(&["-n", ns, "events"]))
}

#[test]
fn drift_behind_nanocls_back_should_be_repaired_and_said() {
    let scope = Scope::new("drift");
    let ns = scope.ns.clone();
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let file = d.dir.path().join("app.yaml");
    std::fs::write(&file, manifests(&ns)).expect("write");
    let out = d.nanocl(&["apply", "-f", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let app = scope.cargo("app");
    wait_until("the replica", || running(&app).len() == 1);
    let first = running(&app).pop().expect("a replica");
    let network = format!("dev.{ns}");
    assert_eq!(networks(&first).trim(), network);

    // Disconnected: connected again, the same container.
    let before = docker(&["inspect", "-f", "{{.Id}}", &first]);
    docker(&["network", "disconnect", &network, &first]);
    wait_until("reconnected", || networks(&first).trim() == network);
    assert_eq!(running(&app), std::slice::from_ref(&first));
    assert_eq!(
        docker(&["inspect", "-f", "{{.Id}}", &first]),
        before,
        "the same container"
    );
    wait_until("the event", || events(&d, &ns).contains("connected again"));
    let said = events(&d, &ns);
    assert!(
        said.contains("DriftRepaired") && said.contains("disconnected from network"),
        "{said}"
    );

    // Resized: replaced by a container as the spec says (no memory limit), under the same
    // name.
    let id_of = |c: &str| docker(&["inspect", "-f", "{{.Id}}", c]);
    let first_id = id_of(&first);
    docker(&["update", "--memory", "64m", "--memory-swap", "64m", &first]);
    wait_until("replaced after docker update", || {
        docker(&[
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("id={first_id}"),
        ])
        .is_empty()
            && running(&app).len() == 1
    });
    let second = running(&app).pop().expect("a replica");
    assert_eq!(
        docker(&["inspect", "-f", "{{.HostConfig.Memory}}", &second]),
        "0"
    );
    assert_eq!(second, first, "the same name: the spec's");
    wait_until("the event", || events(&d, &ns).contains("docker update"));

    // Renamed: replaced under the spec's name; the renamed one is gone.
    docker(&["rename", &second, "renamed-by-hand"]);
    wait_until("replaced after docker rename", || {
        running(&app) == std::slice::from_ref(&second)
            && docker(&["ps", "-aq", "--filter", "name=^renamed-by-hand$"]).is_empty()
    });
    wait_until("the event", || events(&d, &ns).contains("docker rename"));
    let ready = stdout(&d.nanocl(&["-n", &ns, "get", "cargo", "app"]));
    assert!(ready.contains("1/1"), "{ready}");
}

/// Builds `tag` from the test image with `/v` holding `value` (no registry: FROM a local
/// image, no context).
fn build(tag: &str, value: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("docker")
        .args(["build", "-q", "-t", tag, "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("docker build starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("FROM {}\nRUN echo {value} > /v\n", test_image()).as_bytes())
        .expect("the Dockerfile");
    let out = child.wait_with_output().expect("docker build ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Removes the test's image (and the one its rebuild left untagged) when dropped.
struct Image(String, Vec<String>);

impl Drop for Image {
    fn drop(&mut self) {
        // Its containers first (the test's own: nobody else runs this image), or Docker
        // keeps the image for them, untagged.
        for id in std::iter::once(&self.0).chain(&self.1) {
            for c in docker(&["ps", "-aq", "--filter", &format!("ancestor={id}")]).lines() {
                docker(&["rm", "-f", c]);
            }
        }
        docker(&["rmi", "-f", &self.0]);
        for id in &self.1 {
            docker(&["rmi", "-f", id]);
        }
    }
}

#[test]
fn a_rebuilt_image_under_the_same_tag_should_roll_a_cargo_that_pulls_always() {
    let scope = Scope::new("rebuilt");
    let ns = scope.ns.clone();
    let mut image = Image(format!("{ns}-app:dev"), Vec::new());
    build(&image.0, "one");
    image
        .1
        .push(docker(&["image", "inspect", "-f", "{{.Id}}", &image.0]));
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let file = d.dir.path().join("app.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
             apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n---\n\
             apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: app, namespace: {ns}}}\n\
             spec:\n  cluster: dev\n  replicas: 2\n  container:\n    image: {}\n    imagePullPolicy: Always\n    command: [sleep, \"600\"]\n",
            image.0
        ),
    )
    .expect("write");
    let out = d.nanocl(&["apply", "-f", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let app = scope.cargo("app");
    wait_until("2 replicas", || running(&app).len() == 2);
    let value = |c: &str| docker(&["exec", c, "cat", "/v"]);
    for c in running(&app) {
        assert_eq!(value(&c), "one");
    }
    // No registry answers the pull: the local image runs, and that is said.
    let said = stdout(&d.nanocl(&["-n", &ns, "events"]));
    assert!(
        said.contains("ImagePullFailed") && said.contains("running the image this host has"),
        "{said}"
    );

    // Rebuilt under the same tag: both replicas are replaced by containers of the new image.
    build(&image.0, "two");
    image
        .1
        .push(docker(&["image", "inspect", "-f", "{{.Id}}", &image.0]));
    wait_until("both replicas on the rebuilt image", || {
        let now = running(&app);
        now.len() == 2 && now.iter().all(|c| value(c) == "two")
    });
    let said = stdout(&d.nanocl(&["-n", &ns, "events"]));
    assert!(
        said.contains("ImageChanged") && said.contains("rolling them to it"),
        "{said}"
    );
    let history = stdout(&d.nanocl(&["-n", &ns, "rollout", "history", "cargo", "app"]));
    assert!(history.lines().count() >= 3, "a new revision: {history}");
}
