//! The Docker conformance suite, run unchanged against the real engine (with the offline test
//! image) and against `FakeDocker`: a fake that passes where the engine fails is a bug in the
//! fake.

use nanocl_controller::docker::conformance::{self, cleanup};
use nanocl_controller::docker::{Docker, Engine, FakeDocker};

mod support;

async fn engine() -> Engine {
    Engine::connect()
        .await
        .unwrap_or_else(|e| panic!("{e}; {}", nanocl_e2e::HOW_TO_START))
}

fn fake() -> FakeDocker {
    FakeDocker::with_images(&[&nanocl_e2e::test_image()])
}

/// Runs `check` with a unique prefix, cleaning up by label before and after.
async fn with_prefix<D: Docker, F, Fut>(docker: D, name: &str, check: F)
where
    F: FnOnce(D, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let prefix = nanocl_e2e::unique_prefix(name);
    cleanup(&docker, &prefix).await;
    let guard = docker.clone();
    // Clean up even when the check panics.
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(check(
        docker,
        prefix.clone(),
    )))
    .await;
    cleanup(&guard, &prefix).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

macro_rules! conformance {
    ($($name:ident $(, $extra:expr)?);* $(;)?) => {
        mod engine {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    with_prefix(engine().await, stringify!($name), |d, p| async move {
                        conformance::$name(&d, &p, &nanocl_e2e::test_image() $(, $extra)?).await
                    }).await;
                }
            )*
        }
        mod fake {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    with_prefix(fake(), stringify!($name), |d, p| async move {
                        conformance::$name(&d, &p, &nanocl_e2e::test_image() $(, $extra)?).await
                    }).await;
                }
            )*
        }
    };
}

conformance! {
    container_lifecycle;
    create_should_refuse_name_conflicts_and_missing_images;
    a_taken_host_port_should_fail_the_start, support::free_port();
    networks_should_hold_containers_and_refuse_removal_in_use;
    events_should_report_labelled_container_changes;
    host_info_should_describe_the_host;
    stats_should_measure_running_containers;
    images_should_build_list_and_remove;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_container_should_be_measured_from_its_cgroup_on_this_host() {
    let docker = engine().await;
    with_prefix(docker, "busy", |d, p| async move {
        let mut spec = conformance::sleeper(&p, "busy", &nanocl_e2e::test_image());
        spec.entrypoint = vec!["sh".into(), "-c".into()];
        spec.cmd = vec!["while :; do :; done".into()];
        spec.nano_cpus = Some(200_000_000);
        let id = d.create_container(&spec).await.expect("create");
        d.start_container(&id).await.expect("start");
        assert!(
            nanocl_controller::docker::cgroup_stats(&id).is_some(),
            "this host is the engine's: its cgroup files are read, not the API"
        );
        let a = d.stats(&id).await.expect("stats");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let b = d.stats(&id).await.expect("stats");
        let cpus = (b.cpu_total_ns - a.cpu_total_ns) as f64 / 1e9;
        assert!(
            (0.1..0.3).contains(&cpus),
            "a loop limited to 0.2 CPU used {cpus:.3} CPU in a second"
        );
        assert!(b.memory_bytes > 0, "{b:?}");
    })
    .await;
}

#[tokio::test]
async fn the_fake_should_record_calls_inject_failures_and_simulate_kills() {
    use futures::StreamExt;
    let docker = fake();
    let spec = conformance::sleeper("t", "c", &nanocl_e2e::test_image());
    docker.fail_next("create_container", "disk full");
    assert!(docker.create_container(&spec).await.is_err());
    let id = docker
        .create_container(&spec)
        .await
        .expect("the failure was one-shot");
    docker.start_container(&id).await.expect("start");
    let mut events = docker.events(&[]);
    docker.kill(&spec.name, 137);
    let e = events.next().await.expect("an event").expect("ok");
    assert_eq!((e.action.as_str(), e.id.as_str()), ("die", id.as_str()));
    let killed = docker
        .inspect_container(&id)
        .await
        .expect("inspect")
        .expect("exists");
    assert_eq!(killed.exit_code, Some(137));
    assert_eq!(
        docker.calls()[..3],
        [
            "create_container t-c".to_owned(),
            "create_container t-c".to_owned(),
            format!("start_container {id}")
        ]
    );
}
