//! The CI path later issues depend on, proven now: tests reach the real dockerd (create, start,
//! inspect, remove a labelled container from the offline test image) and the real etcd (put,
//! get, watch).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, RemoveContainerOptions,
};
use bollard::Docker;
use etcd_client::{Client, EventType, GetOptions, WatchOptions};
use nanocl_e2e::{etcd_endpoint, test_image, unique_prefix, HOW_TO_START, TEST_LABEL};

const TIMEOUT: Duration = Duration::from_secs(30);

async fn docker() -> anyhow::Result<Docker> {
    let docker = Docker::connect_with_local_defaults()
        .with_context(|| format!("cannot connect to dockerd; {HOW_TO_START}"))?;
    tokio::time::timeout(TIMEOUT, docker.negotiate_version())
        .await
        .context("dockerd did not answer in time")?
        .with_context(|| format!("dockerd is not answering; {HOW_TO_START}"))
}

/// Removes containers labelled with `prefix` (left behind by a killed run of this test).
async fn remove_labelled(docker: &Docker, prefix: &str) -> anyhow::Result<usize> {
    let filters = HashMap::from([("label".to_owned(), vec![format!("{TEST_LABEL}={prefix}")])]);
    let found = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await?;
    for c in &found {
        if let Some(id) = &c.id {
            docker
                .remove_container(
                    id,
                    Some(RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    }),
                )
                .await?;
        }
    }
    Ok(found.len())
}

#[tokio::test]
async fn docker_should_run_a_labelled_container_from_the_offline_image() -> anyhow::Result<()> {
    let docker = docker().await?;
    let prefix = unique_prefix("docker");
    let name = format!("{prefix}-c0");
    let labels = HashMap::from([
        (TEST_LABEL.to_owned(), prefix.clone()),
        ("io.nanocl.managed".to_owned(), "false".to_owned()),
    ]);
    let body = ContainerCreateBody {
        image: Some(test_image()),
        cmd: Some(vec!["sleep".into(), "300".into()]),
        labels: Some(labels),
        ..Default::default()
    };
    let created = docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(name.clone()),
                ..Default::default()
            }),
            body,
        )
        .await
        .with_context(|| {
            format!(
                "creating a container from {} failed; {HOW_TO_START}",
                test_image()
            )
        })?;
    let result = async {
        docker.start_container(&created.id, None).await?;
        let inspected = docker
            .inspect_container(&name, None::<InspectContainerOptions>)
            .await?;
        let state = inspected.state.context("no state")?;
        anyhow::ensure!(
            state.running == Some(true),
            "container is not running: {state:?}"
        );
        let config = inspected.config.context("no config")?;
        let labels = config.labels.unwrap_or_default();
        anyhow::ensure!(
            labels.get(TEST_LABEL) == Some(&prefix),
            "label {TEST_LABEL} missing or wrong: {labels:?}"
        );
        anyhow::ensure!(config.image.as_deref() == Some(test_image().as_str()));
        Ok(())
    }
    .await;
    let removed = remove_labelled(&docker, &prefix).await?;
    result?;
    assert_eq!(
        removed, 1,
        "exactly the one container this test created is removed"
    );
    assert_eq!(
        remove_labelled(&docker, &prefix).await?,
        0,
        "nothing is left behind"
    );
    Ok(())
}

#[tokio::test]
async fn etcd_should_put_get_and_watch_on_loopback() -> anyhow::Result<()> {
    let endpoint = etcd_endpoint();
    anyhow::ensure!(
        endpoint.starts_with("127.")
            || endpoint.starts_with("[::1]")
            || endpoint.starts_with("localhost"),
        "tests reach etcd only on loopback, got {endpoint}"
    );
    let mut client = tokio::time::timeout(TIMEOUT, Client::connect([endpoint.as_str()], None))
        .await
        .context("etcd did not answer in time")?
        .with_context(|| format!("cannot connect to etcd at {endpoint}; {HOW_TO_START}"))?;
    let prefix = format!("/{}/", unique_prefix("etcd"));

    let result = async {
        let mut watch = client
            .watch(prefix.as_str(), Some(WatchOptions::new().with_prefix()))
            .await?;
        let put = client.put(format!("{prefix}a"), "1", None).await?;
        let revision = put.header().context("no header")?.revision();

        let got = client.get(format!("{prefix}a"), None).await?;
        let kv = got.kvs().first().context("key not found after put")?;
        anyhow::ensure!(kv.value() == b"1");
        anyhow::ensure!(
            kv.mod_revision() == revision,
            "mod_revision is the put's revision"
        );

        let event = tokio::time::timeout(TIMEOUT, async {
            loop {
                let Some(message) = watch.message().await? else {
                    anyhow::bail!("watch stream ended");
                };
                if let Some(event) = message.events().first() {
                    return Ok(event.clone());
                }
            }
        })
        .await
        .context("no watch event in time")??;
        anyhow::ensure!(event.event_type() == EventType::Put);
        let kv = event.kv().context("event without kv")?;
        anyhow::ensure!(kv.key() == format!("{prefix}a").as_bytes());
        anyhow::ensure!(kv.mod_revision() == revision);
        Ok(())
    }
    .await;
    client
        .delete(
            prefix.as_str(),
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await?;
    result?;
    let left = client
        .get(
            prefix.as_str(),
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await?;
    assert_eq!(left.count(), 0, "the test's keys are removed");
    Ok(())
}
