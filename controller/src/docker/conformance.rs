//! The conformance suite every `Docker` must pass: run by `controller/tests/docker.rs` against
//! the real engine (with the offline test image) and against `FakeDocker`.
//!
//! Every object a check creates is named and labelled with its `prefix` and removed at the end.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;

use super::{ContainerSpec, Docker, DockerError, NetworkSpec, PortBinding, State};

/// The label every test object carries; its value is the check's unique prefix.
pub const TEST_LABEL: &str = "io.nanocl.test";

fn labels(prefix: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(TEST_LABEL.to_owned(), prefix.to_owned())])
}

fn filter(prefix: &str) -> Vec<String> {
    vec![format!("{TEST_LABEL}={prefix}")]
}

/// A long-running container spec from `image`.
pub fn sleeper(prefix: &str, name: &str, image: &str) -> ContainerSpec {
    ContainerSpec {
        name: format!("{prefix}-{name}"),
        image: image.to_owned(),
        cmd: vec!["sleep".into(), "300".into()],
        labels: labels(prefix),
        ..ContainerSpec::default()
    }
}

/// Removes every container and network labelled with `prefix`.
pub async fn cleanup<D: Docker>(docker: &D, prefix: &str) {
    if let Ok(containers) = docker.list_containers(&filter(prefix)).await {
        for c in containers {
            let _ = docker.remove_container(&c.id).await;
        }
    }
    if let Ok(networks) = docker.list_networks(&filter(prefix)).await {
        for n in networks {
            let _ = docker.remove_network(&n.id).await;
        }
    }
    if let Ok(images) = docker.list_images(&filter(prefix)).await {
        for i in images {
            for tag in &i.tags {
                let _ = docker.remove_image(tag).await;
            }
        }
    }
}

/// An image is built from a tar of its context, tagged and labelled, found by its labels,
/// and removed; a second removal is fine; the build says its output as it goes.
pub async fn images_should_build_list_and_remove<D: Docker>(docker: &D, prefix: &str, image: &str) {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {image}\nRUN echo built > /built.txt\n"),
    )
    .expect("write the Dockerfile");
    let packed = crate::builds::context::pack(
        dir.path(),
        &crate::builds::context::Options {
            dockerfile: "Dockerfile".into(),
            ..Default::default()
        },
    )
    .expect("pack the context");
    let tag = format!("nanocl.local/{prefix}/conformance:1");
    let request = super::BuildRequest {
        tag: tag.clone(),
        dockerfile: "Dockerfile".into(),
        labels: labels(prefix),
        context: packed.tar.path().to_path_buf(),
        ..Default::default()
    };
    let events: Vec<_> = docker.build_image(request).collect().await;
    let (last, output) = events.split_last().expect("the build reports something");
    assert!(
        output
            .iter()
            .any(|e| matches!(e, Ok(super::BuildEvent::Output(text)) if text.contains("Step 1/"))),
        "{events:?}"
    );
    let Ok(super::BuildEvent::Built { id }) = last else {
        panic!("the build ends with the image: {events:?}")
    };
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(
        docker.image_id(&tag).await.expect("inspect").as_deref(),
        Some(id.as_str())
    );
    let listed = docker.list_images(&filter(prefix)).await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].tags, vec![tag.clone()]);
    assert_eq!(
        listed[0].labels.get(TEST_LABEL).map(String::as_str),
        Some(prefix)
    );
    // Saved, removed, loaded again: the same image, tag and id.
    let saved: Vec<bytes::Bytes> = docker
        .export_image(&tag)
        .map(|chunk| chunk.expect("export"))
        .collect()
        .await;
    assert!(!saved.is_empty());
    docker.remove_image(&tag).await.expect("remove");
    assert_eq!(docker.image_id(&tag).await.expect("inspect"), None);
    docker
        .remove_image(&tag)
        .await
        .expect("removing a missing image is fine");
    let tar = futures::stream::iter(saved.into_iter().map(Ok)).boxed();
    docker.import_image(tar).await.expect("import");
    assert_eq!(
        docker.image_id(&tag).await.expect("inspect").as_deref(),
        Some(id.as_str())
    );
    docker.remove_image(&tag).await.expect("remove");
    let missing: Vec<_> = docker.export_image(&tag).collect().await;
    assert!(
        missing.iter().any(Result::is_err),
        "a missing image is no archive"
    );
}

/// Create → inspect → start → list → stop → remove, with labels and states as Docker has them.
pub async fn container_lifecycle<D: Docker>(docker: &D, prefix: &str, image: &str) {
    let spec = sleeper(prefix, "life", image);
    let id = docker.create_container(&spec).await.expect("create");
    let created = docker
        .inspect_container(&spec.name)
        .await
        .expect("inspect")
        .expect("exists");
    assert_eq!(created.id, id);
    assert_eq!(created.name, spec.name);
    assert_eq!(created.state, State::Created);
    assert_eq!(
        created.labels.get(TEST_LABEL).map(String::as_str),
        Some(prefix)
    );
    docker.start_container(&id).await.expect("start");
    docker
        .start_container(&id)
        .await
        .expect("starting a running container is fine");
    let running = docker
        .inspect_container(&id)
        .await
        .expect("inspect")
        .expect("exists");
    assert_eq!(running.state, State::Running);
    assert_eq!(running.exit_code, None);
    let listed = docker.list_containers(&filter(prefix)).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0].id.as_str(),
            listed[0].name.as_str(),
            listed[0].state
        ),
        (id.as_str(), spec.name.as_str(), State::Running)
    );
    assert_eq!(
        docker
            .list_containers(&[format!("{TEST_LABEL}={prefix}-other")])
            .await
            .expect("list"),
        vec![]
    );
    docker.stop_container(&id, 1).await.expect("stop");
    let stopped = docker
        .inspect_container(&id)
        .await
        .expect("inspect")
        .expect("exists");
    assert_eq!(stopped.state, State::Exited);
    assert!(
        stopped.exit_code.is_some(),
        "a stopped container has an exit code"
    );
    docker.remove_container(&id).await.expect("remove");
    assert_eq!(docker.inspect_container(&id).await.expect("inspect"), None);
    docker
        .remove_container(&id)
        .await
        .expect("removing a missing container is fine");
}

/// A second container of the same name is a `NameConflict`; a missing image is `NotFound`.
pub async fn create_should_refuse_name_conflicts_and_missing_images<D: Docker>(
    docker: &D,
    prefix: &str,
    image: &str,
) {
    let spec = sleeper(prefix, "dup", image);
    docker.create_container(&spec).await.expect("create");
    match docker.create_container(&spec).await {
        Err(DockerError::NameConflict { name }) => assert_eq!(name, spec.name),
        other => panic!("expected NameConflict, got {other:?}"),
    }
    assert!(docker.image_present(image).await.expect("image_present"));
    let missing = "nanocl-test/never-built:nope";
    assert!(!docker.image_present(missing).await.expect("image_present"));
    let mut ghost = sleeper(prefix, "ghost", image);
    ghost.image = missing.into();
    match docker.create_container(&ghost).await {
        Err(DockerError::ImageMissing { image }) => assert_eq!(image, missing),
        other => panic!("expected ImageMissing, got {other:?}"),
    }
}

/// Two containers publishing one host port: the second fails to start, with Docker's reason.
pub async fn a_taken_host_port_should_fail_the_start<D: Docker>(
    docker: &D,
    prefix: &str,
    image: &str,
    port: u16,
) {
    let mut first = sleeper(prefix, "p1", image);
    let binding = PortBinding {
        container_port: 80,
        protocol: "tcp".into(),
        host_ip: "127.0.0.1".into(),
        host_port: Some(port),
    };
    first.ports.push(binding.clone());
    let mut second = sleeper(prefix, "p2", image);
    second.ports.push(binding);
    let a = docker.create_container(&first).await.expect("create");
    let b = docker.create_container(&second).await.expect("create");
    docker.start_container(&a).await.expect("start the first");
    match docker.start_container(&b).await {
        Err(DockerError::PortAllocated { message, .. }) => {
            assert!(
                message.contains(&port.to_string()),
                "names the port: {message}"
            )
        }
        other => panic!("expected PortAllocated, got {other:?}"),
    }
}

/// Networks: create with labels, attach containers, refuse removal while in use.
pub async fn networks_should_hold_containers_and_refuse_removal_in_use<D: Docker>(
    docker: &D,
    prefix: &str,
    image: &str,
) {
    let net = NetworkSpec {
        name: format!("{prefix}-net"),
        driver: "bridge".into(),
        internal: true,
        subnet: None,
        labels: labels(prefix),
    };
    let id = docker.create_network(&net).await.expect("create network");
    assert!(matches!(
        docker.create_network(&net).await,
        Err(DockerError::NameConflict { .. })
    ));
    let listed = docker.list_networks(&filter(prefix)).await.expect("list");
    assert_eq!(
        listed.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
        vec![net.name.as_str()]
    );
    let mut spec = sleeper(prefix, "on-net", image);
    spec.networks = vec![net.name.clone()];
    spec.aliases = vec!["svc".into()];
    let c = docker
        .create_container(&spec)
        .await
        .expect("create on the network");
    docker.start_container(&c).await.expect("start");
    let networks_of = || async {
        let listed = docker.list_containers(&filter(prefix)).await.expect("list");
        let n = listed
            .into_iter()
            .find(|x| x.id == c)
            .and_then(|x| x.networks)
            .expect("a listing says the networks");
        assert!(
            n.values()
                .all(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok() || ip.is_empty()),
            "addresses: {n:?}"
        );
        n.into_keys().collect::<Vec<_>>()
    };
    assert_eq!(networks_of().await, vec![net.name.clone()]);
    // The image it runs, by id, as the image's own id.
    let listed = docker.list_containers(&filter(prefix)).await.expect("list");
    let runs = listed
        .iter()
        .find(|x| x.id == c)
        .and_then(|x| x.image_id.clone());
    assert_eq!(runs, docker.image_id(image).await.expect("image id"));
    assert!(runs.is_some_and(|i| i.starts_with("sha256:")));
    // A second network, connected after the start (what drift repair does).
    let second = NetworkSpec {
        name: format!("{prefix}-net2"),
        ..net.clone()
    };
    let second_id = docker
        .create_network(&second)
        .await
        .expect("create network");
    docker
        .connect_network(&c, &second.name, &spec.aliases)
        .await
        .expect("connect");
    let mut both = vec![net.name.clone(), second.name.clone()];
    both.sort();
    assert_eq!(networks_of().await, both);
    assert!(
        matches!(
            docker
                .connect_network(&c, &format!("{prefix}-nope"), &[])
                .await,
            Err(DockerError::NotFound { .. })
        ),
        "a missing network is NotFound"
    );
    assert!(
        matches!(
            docker.remove_network(&id).await,
            Err(DockerError::NetworkInUse { .. })
        ),
        "a network in use is not removed, and says why"
    );
    docker.remove_container(&c).await.expect("remove container");
    docker
        .remove_network(&second_id)
        .await
        .expect("remove network");
    docker.remove_network(&id).await.expect("remove network");
    assert_eq!(
        docker.list_networks(&filter(prefix)).await.expect("list"),
        vec![]
    );
    docker
        .remove_network(&id)
        .await
        .expect("removing a missing network is fine");
}

/// The host is described: at least one CPU, some memory, a version.
pub async fn host_info_should_describe_the_host<D: Docker>(
    docker: &D,
    _prefix: &str,
    _image: &str,
) {
    let info = docker.host_info().await.expect("host info");
    assert!(info.cpus >= 1, "{info:?}");
    assert!(info.memory_bytes > 0, "{info:?}");
    assert!(!info.version.is_empty(), "{info:?}");
}

/// A running container can be measured, and its CPU time only grows; a missing one cannot.
pub async fn stats_should_measure_running_containers<D: Docker>(
    docker: &D,
    prefix: &str,
    image: &str,
) {
    let spec = sleeper(prefix, "stats", image);
    let id = docker.create_container(&spec).await.expect("create");
    docker.start_container(&id).await.expect("start");
    let first = docker
        .stats(&id)
        .await
        .expect("stats of a running container");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let second = docker.stats(&id).await.expect("stats again");
    assert!(
        second.cpu_total_ns >= first.cpu_total_ns,
        "{first:?} then {second:?}"
    );
    docker.remove_container(&id).await.expect("remove");
    assert!(
        docker.stats(&id).await.is_err(),
        "a removed container has no stats"
    );
}

/// Events of labelled containers arrive: start, die on kill/stop, destroy on removal.
pub async fn events_should_report_labelled_container_changes<D: Docker>(
    docker: &D,
    prefix: &str,
    image: &str,
) {
    let mut events = docker.events(&filter(prefix));
    // Give the event subscription a moment to be in place on a real engine.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let spec = sleeper(prefix, "ev", image);
    let id = docker.create_container(&spec).await.expect("create");
    docker.start_container(&id).await.expect("start");
    docker.remove_container(&id).await.expect("remove");
    let mut actions = Vec::new();
    while !actions.contains(&"destroy".to_owned()) {
        match tokio::time::timeout(Duration::from_secs(10), events.next()).await {
            Ok(Some(Ok(e))) => {
                if e.kind == "container" && e.id == id {
                    assert_eq!(e.labels.get(TEST_LABEL).map(String::as_str), Some(prefix));
                    if e.action == "die" {
                        // What the cargo controller heals from before the listing catches up.
                        assert_eq!(
                            e.labels.get("exitCode").map(String::as_str),
                            Some("137"),
                            "a forced remove is a SIGKILL: {:?}",
                            e.labels
                        );
                    }
                    actions.push(e.action);
                }
            }
            other => panic!("events ended or stalled after {actions:?}: {other:?}"),
        }
    }
    for expected in ["create", "start", "die", "destroy"] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} missing from {actions:?}"
        );
    }
}
