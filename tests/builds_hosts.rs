//! A built image on several hosts, no registry: three Docker daemons of the test's own, an
//! etcd on loopback, a controller that builds on its own daemon, and an agent on each of
//! the two others. Each agent brings the image from the controller's nanocld
//! (`/images/export`, a `docker save` stream) and runs the very image that was built.

use std::process::Command;
use std::time::Duration;

use nanocl_e2e::docker::wait_until;
use nanocl_e2e::hosts::{free_port, EtcdCluster, PrivateDocker};
use nanocl_e2e::{stderr, stdout, test_image, Daemon};

fn git(dir: &std::path::Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@nanocl.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@nanocl.invalid")
        .status()
        .expect("git")
        .success();
    assert!(ok, "git {args:?}");
}

#[test]
fn every_node_should_run_the_image_built_on_another() {
    let etcd = EtcdCluster::start(1);
    let dockers: Vec<PrivateDocker> = (0..3u8).map(PrivateDocker::start).collect();
    let store = etcd.store_url();
    let agents: Vec<Daemon> = (0..2)
        .map(|i| {
            Daemon::start_configured(
                &[
                    "--role",
                    "agent",
                    "--store",
                    &store,
                    "--node",
                    &format!("host-{i}"),
                ],
                &[("DOCKER_HOST", &dockers[i].host())],
            )
        })
        .collect();
    let api_port = free_port();
    let controller = Daemon::start_configured(
        &[
            "--role",
            "controller",
            "--store",
            &store,
            "--node",
            "ctl",
            "--listen",
            &format!("tcp://127.0.0.1:{api_port}"),
        ],
        &[("DOCKER_HOST", &dockers[2].host())],
    );
    let logs = || {
        for (i, a) in agents.iter().enumerate() {
            eprintln!("--- host-{i} log:\n{}", a.log());
        }
        eprintln!("--- ctl log:\n{}", controller.log());
    };
    for i in 0..2 {
        wait_until(&format!("host-{i} Ready"), || {
            controller.node_ready(&format!("host-{i}")).0 == "True"
        });
    }

    let work = tempfile::tempdir().expect("tmp");
    let repo = work.path().join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(
        repo.join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo built once > /built.txt\nCMD [\"sleep\", \"3600\"]\n",
            test_image()
        ),
    )
    .expect("Dockerfile");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "one"]);

    let ns = format!("t{}-bhosts", std::process::id());
    controller.apply(&format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: app, namespace: {ns}}}\nspec:\n  cluster: dev\n  replicas: 2\n  placement: {{maxPerNode: 1}}\n  container:\n    build: {{git: {{url: \"{}\"}}}}\n",
        repo.display()
    ));
    let label = format!("io.nanocl.namespace={ns}");
    let running = |i: usize| dockers[i].running(&label);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !(running(0).len() == 1 && running(1).len() == 1) {
        if std::time::Instant::now() > deadline {
            logs();
            panic!("a replica on each node: {:?} {:?}", running(0), running(1));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = controller.nanocl(&["-n", &ns, "get", "cargo", "app", "-o", "json"]);
    let cargo: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let build = &cargo["status"]["build"];
    let (image, id) = (
        build["image"].as_str().unwrap_or_default().to_owned(),
        build["imageId"].as_str().unwrap_or_default().to_owned(),
    );
    assert!(
        image.starts_with(&format!("nanocl.local/{ns}/app:")),
        "{build:#}"
    );
    assert_eq!(
        build["exportUrl"],
        format!("tcp://127.0.0.1:{api_port}"),
        "{build:#}"
    );
    // Built once, on the controller's daemon; the same image id on both nodes, each
    // container running it.
    assert_eq!(
        dockers[2]
            .docker(&["image", "inspect", "-f", "{{.Id}}", &image])
            .1,
        id
    );
    for (i, docker) in dockers.iter().take(2).enumerate() {
        assert_eq!(
            docker
                .docker(&["image", "inspect", "-f", "{{.Id}}", &image])
                .1,
            id,
            "host-{i} has the built image"
        );
        let container = running(i).pop().unwrap_or_default();
        assert_eq!(
            docker
                .docker(&["inspect", "-f", "{{.Image}}", &container])
                .1,
            id,
            "host-{i} runs it"
        );
    }
    let events = stdout(&controller.nanocl(&["-n", &ns, "events"]));
    assert_eq!(events.matches("BuildSucceeded").count(), 1, "{events}");

    // Only this store's built images are served.
    let status_of = |name: &str| {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", api_port)).expect("connect");
        let request = format!("GET /images/export?name={name} HTTP/1.0\r\nHost: x\r\n\r\n");
        stream.write_all(request.as_bytes()).expect("write");
        let mut head = [0u8; 12];
        let _ = stream.read_exact(&mut head);
        String::from_utf8_lossy(&head[9..12]).into_owned()
    };
    assert_eq!(
        status_of(&test_image().replace('/', "%2F").replace(':', "%3A")),
        "400"
    );
    assert_eq!(status_of("nanocl.local%2Fother%2Fapp%3Ax"), "404");
    assert_eq!(
        status_of(&image.replace('/', "%2F").replace(':', "%3A")),
        "200"
    );
    let out = controller.nanocl(&["-n", &ns, "delete", "ns", &ns, "--wait", "--timeout", "60s"]);
    if out.status.code() != Some(0) {
        logs();
    }
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
