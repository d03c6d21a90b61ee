//! Property tests: v1 → v1alpha1 → v1 loses nothing, for every kind, through the JSON wire form.

use std::collections::BTreeMap;

use nanocl_api_types::cargo::{self, v1::*};
use nanocl_api_types::cluster::{self, v1::ClusterSpec};
use nanocl_api_types::meta::{Condition, ConditionStatus, Object, ObjectMeta};
use nanocl_api_types::network::{self, v1::NetworkSpec};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;

/// Strings that include the separators the flat shape uses (`=`, `:`, `/`, `[`).
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.:=/\\[\\] -]{0,12}"
}

fn meta() -> impl Strategy<Value = ObjectMeta> {
    (
        "[a-z][a-z0-9-]{0,10}",
        option::of("[a-z]{1,8}"),
        btree_map("[a-z]{1,6}", text(), 0..3),
        btree_map("[a-z]{1,6}(/[a-z]{1,4})?", text(), 0..3),
        option::of(any::<i64>()),
        option::of("[0-9]{1,6}"),
    )
        .prop_map(
            |(name, namespace, labels, annotations, generation, rv)| ObjectMeta {
                name,
                namespace,
                labels,
                annotations,
                generation,
                resource_version: rv,
                ..ObjectMeta::default()
            },
        )
}

fn port() -> impl Strategy<Value = PortSpec> {
    (
        any::<i32>(),
        option::of(any::<i32>()),
        option::of(prop_oneof!["127.0.0.1", "::1", "0.0.0.0", text()]),
        option::of(prop_oneof![
            Just(Protocol::TCP),
            Just(Protocol::UDP),
            Just(Protocol::SCTP)
        ]),
    )
        .prop_map(|(container_port, host_port, host_ip, protocol)| PortSpec {
            container_port,
            host_port,
            host_ip,
            protocol,
        })
}

fn volume() -> impl Strategy<Value = VolumeMount> {
    (text(), text(), any::<bool>()).prop_map(|(source, target, read_only)| VolumeMount {
        source,
        target,
        read_only,
    })
}

fn env_value() -> impl Strategy<Value = EnvValue> {
    prop_oneof![
        text().prop_map(EnvValue::Text),
        (text(), text()).prop_map(|(secret, key)| EnvValue::From(EnvFrom {
            value_from: SecretKeyRef { secret, key }
        })),
    ]
}

fn container() -> impl Strategy<Value = ContainerSpec> {
    (
        (
            text(),
            option::of(prop_oneof![
                Just(ImagePullPolicy::IfNotPresent),
                Just(ImagePullPolicy::Always),
                Just(ImagePullPolicy::Never)
            ]),
            vec(text(), 0..3),
            vec(text(), 0..3),
            btree_map(text(), env_value(), 0..4),
            vec(port(), 0..3),
        ),
        (
            vec(volume(), 0..3),
            option::of(text()),
            option::of(text()),
            btree_map(text(), text(), 0..2),
            option::of((option::of(0.001f64..64.0), option::of(text()))),
            option::of((
                vec(text(), 0..3),
                option::of(text()),
                option::of(any::<i32>()),
            )),
        ),
        (
            option::of((text(), option::of(text()), btree_map(text(), text(), 0..2))),
            vec((text(), text(), option::of(text())), 0..2),
            (
                any::<bool>(),
                vec(text(), 0..2),
                vec(text(), 0..2),
                any::<bool>(),
                any::<bool>(),
            ),
        ),
    )
        .prop_map(
            |(
                (image, image_pull_policy, command, args, env, ports),
                (volumes, working_dir, user, labels, resources, healthcheck),
                (build, files, (privileged, cap_add, devices, host_pid, host_ipc)),
            )| ContainerSpec {
                privileged,
                cap_add,
                devices,
                host_pid,
                host_ipc,
                image,
                files: files
                    .into_iter()
                    .map(|(secret, path, key)| SecretFile { secret, path, key })
                    .collect(),
                build: build.map(|(url, reference, args)| BuildSpec {
                    git: Some(GitSource {
                        url,
                        reference,
                        ..GitSource::default()
                    }),
                    args,
                    ..BuildSpec::default()
                }),
                image_pull_policy,
                command,
                args,
                env,
                ports,
                volumes,
                working_dir,
                user,
                labels,
                resources: resources.map(|(cpus, memory)| Resources { cpus, memory }),
                healthcheck: healthcheck.map(|(command, interval, retries)| Healthcheck {
                    command,
                    interval,
                    retries,
                    ..Healthcheck::default()
                }),
            },
        )
}

fn conditions() -> impl Strategy<Value = Vec<Condition>> {
    vec(
        ("[A-Z][a-z]{1,8}", any::<bool>(), text()).prop_map(|(type_, ok, message)| Condition {
            type_,
            status: if ok {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            reason: "Test".into(),
            message,
            last_transition_time: None,
            observed_generation: Some(1),
        }),
        0..2,
    )
}

fn placement() -> impl Strategy<Value = nanocl_api_types::cargo::v1::Placement> {
    (
        option::of(any::<bool>()),
        btree_map(text(), text(), 0..3),
        option::of(any::<i32>()),
    )
        .prop_map(|(spread, node_selector, max_per_node)| {
            nanocl_api_types::cargo::v1::Placement {
                spread,
                node_selector,
                max_per_node,
            }
        })
}

fn int_or_percent() -> impl Strategy<Value = IntOrPercent> {
    prop_oneof![
        any::<i32>().prop_map(IntOrPercent::Int),
        text().prop_map(IntOrPercent::Percent),
    ]
}

fn update() -> impl Strategy<Value = UpdateSpec> {
    (
        option::of(prop_oneof![
            Just(UpdateStrategy::RollingUpdate),
            Just(UpdateStrategy::Recreate)
        ]),
        option::of(int_or_percent()),
        option::of(int_or_percent()),
        option::of(any::<u32>()),
        option::of(any::<u32>()),
        option::of(any::<bool>()),
    )
        .prop_map(
            |(strategy, max_surge, max_unavailable, min_ready, deadline, auto_rollback)| {
                UpdateSpec {
                    strategy,
                    max_surge,
                    max_unavailable,
                    min_ready_seconds: min_ready,
                    progress_deadline_seconds: deadline,
                    auto_rollback,
                }
            },
        )
}

fn autoscale() -> impl Strategy<Value = AutoscaleSpec> {
    (
        option::of(any::<i32>()),
        any::<i32>(),
        option::of(any::<i32>()),
        option::of(any::<i32>()),
        option::of(any::<u32>()),
    )
        .prop_map(|(min, max, cpu, memory, window)| AutoscaleSpec {
            min_replicas: min,
            max_replicas: max,
            target_cpu_utilization_percent: cpu,
            target_memory_utilization_percent: memory,
            scale_down_stabilization_seconds: window,
        })
}

fn cargo_v1() -> impl Strategy<Value = Cargo> {
    (
        meta(),
        text(),
        option::of(any::<i32>()),
        vec(text(), 0..3),
        container(),
        option::of((any::<i32>(), conditions())),
        option::of(placement()),
        (
            option::of(update()),
            option::of(any::<u32>()),
            option::of(autoscale()),
        ),
    )
        .prop_map(
            |(
                metadata,
                cluster,
                replicas,
                networks,
                container,
                status,
                placement,
                (update, revision_history_limit, autoscale),
            )| Object {
                api_version: "nanocl.io/v1".into(),
                kind: "Cargo".into(),
                metadata,
                spec: CargoSpec {
                    cluster,
                    replicas,
                    networks,
                    container,
                    placement,
                    update,
                    revision_history_limit,
                    autoscale,
                },
                status: status.map(|(replicas, conditions)| CargoStatus {
                    replicas,
                    conditions,
                    ..CargoStatus::default()
                }),
            },
        )
}

/// Serializes and parses back, as a client or the store would.
fn wire<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    let json = serde_json::to_string(value).expect("serializable");
    serde_json::from_str(&json).expect("readable")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn cargo_v1_to_v1alpha1_and_back_should_be_lossless(original in cargo_v1()) {
        let legacy = wire(&cargo::v1alpha1::from_v1(original.clone()));
        prop_assert_eq!(&legacy.api_version, "nanocl.io/v1alpha1");
        let back = cargo::v1alpha1::to_v1(legacy).expect("converts back");
        prop_assert_eq!(back, original);
    }

    #[test]
    fn cluster_v1_to_v1alpha1_and_back_should_be_lossless(
        metadata in meta(),
        variables in btree_map(text(), text(), 0..5),
        nodes in option::of(text()),
    ) {
        let original: cluster::v1::Cluster = Object {
            api_version: "nanocl.io/v1".into(),
            kind: "Cluster".into(),
            metadata,
            spec: ClusterSpec { variables, nodes },
            status: None,
        };
        let legacy = wire(&cluster::v1alpha1::from_v1(original.clone()));
        let back = cluster::v1alpha1::to_v1(legacy).expect("converts back");
        prop_assert_eq!(back, original);
    }

    #[test]
    fn network_v1_to_v1alpha1_and_back_should_be_lossless(
        metadata in meta(),
        cluster in text(),
        driver in option::of(text()),
        internal in any::<bool>(),
        subnet in option::of(text()),
    ) {
        let original: network::v1::Network = Object {
            api_version: "nanocl.io/v1".into(),
            kind: "Network".into(),
            metadata,
            spec: NetworkSpec { cluster, driver, internal, subnet },
            status: None,
        };
        let back = network::v1alpha1::to_v1(wire(&network::v1alpha1::from_v1(original.clone())));
        prop_assert_eq!(back, original);
    }
}

#[test]
fn representable_fields_should_stay_flat_and_the_rest_ride_in_the_annotation() {
    let mut env = BTreeMap::new();
    env.insert("A".to_owned(), EnvValue::from("1"));
    let original: Cargo = Object {
        api_version: "nanocl.io/v1".into(),
        kind: "Cargo".into(),
        metadata: ObjectMeta {
            name: "web".into(),
            ..ObjectMeta::default()
        },
        spec: CargoSpec {
            cluster: "dev".into(),
            replicas: Some(2),
            networks: vec![],
            placement: None,
            update: None,
            revision_history_limit: None,
            autoscale: None,
            container: ContainerSpec {
                image: "busybox:1.36".into(),
                env,
                ports: vec![PortSpec {
                    container_port: 80,
                    host_port: None,
                    host_ip: Some("127.0.0.1".into()),
                    protocol: Some(Protocol::TCP),
                }],
                working_dir: Some("/srv".into()),
                ..ContainerSpec::default()
            },
        },
        status: None,
    };
    let legacy = cargo::v1alpha1::from_v1(original.clone());
    assert_eq!(legacy.spec.env, vec!["A=1"]);
    assert_eq!(legacy.spec.ports, vec!["127.0.0.1::80/tcp"]);
    assert_eq!(
        legacy
            .metadata
            .annotations
            .get("nanocl.io/v1-fields")
            .map(String::as_str),
        Some(r#"{"workingDir":"/srv"}"#)
    );
    assert_eq!(cargo::v1alpha1::to_v1(legacy), Ok(original));
}
