//! The pure heart of the Cargo controller: render the desired container from the Cargo and
//! its Cluster, then `plan(desired, observed) -> Vec<Op>`. No I/O here; tested hardest.

use std::collections::BTreeMap;

use nanocl_api_types::cargo::v1::{
    Cargo, ContainerSpec as ApiContainerSpec, Protocol, RESTARTED_AT_ANNOTATION,
};
use nanocl_api_types::cluster::v1::Cluster;
use nanocl_api_types::{quantity, template};
use serde_json::{json, Value};

use crate::docker::{Container, ContainerSpec, Healthcheck, PortBinding, State};

/// Label keys of DESIGN §6.
pub mod labels {
    /// Every object nanocl creates: `true`.
    pub const MANAGED: &str = "io.nanocl.managed";
    /// The namespace of the owner.
    pub const NAMESPACE: &str = "io.nanocl.namespace";
    /// The cluster.
    pub const CLUSTER: &str = "io.nanocl.cluster";
    /// The owning Cargo.
    pub const CARGO: &str = "io.nanocl.cargo";
    /// The owning Network.
    pub const NETWORK: &str = "io.nanocl.network";
    /// The replica ordinal.
    pub const SLOT: &str = "io.nanocl.slot";
    /// Hash of the fully rendered container config.
    pub const SPEC_HASH: &str = "io.nanocl.spec-hash";
    /// The node whose agent runs the container (several agents may share one Docker, in
    /// tests: each manages only its own).
    pub const NODE: &str = "io.nanocl.node";
    /// The cargo revision the container was created for (not part of the spec hash).
    pub const REVISION: &str = "io.nanocl.revision";
    /// The `rollout restart` a container's revision came from.
    pub const RESTARTED_AT: &str = "io.nanocl.restarted-at";
    /// Which store (nanocld instance) owns the object, so that two nanocld on one Docker host
    /// never collect each other's containers.
    pub const INSTANCE: &str = "io.nanocl.instance";
}

/// Why a cargo cannot be rendered yet: a status reason and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotReady {
    /// CamelCase reason, e.g. `ClusterNotFound`.
    pub reason: &'static str,
    /// For people.
    pub message: String,
}

/// The container every replica runs, minus the per-slot name and labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// Replicas wanted.
    pub replicas: u32,
    /// Hash of the rendered config (`io.nanocl.spec-hash`).
    pub hash: String,
    /// The rendered container (name and slot label filled per slot).
    pub template: ContainerSpec,
    /// Whether a port is pinned to a host port (a replacement must stop the old one first).
    pub fixed_host_port: bool,
}

/// Docker network name of a cluster's default network.
pub fn default_network_name(cluster: &str, namespace: &str) -> String {
    format!("{cluster}.{namespace}")
}

/// Docker network name of a Network object.
pub fn network_name(network: &str, cluster: &str, namespace: &str) -> String {
    format!("{network}.{cluster}.{namespace}")
}

/// Container name of one replica.
pub fn container_name(
    cargo: &str,
    slot: u32,
    hash: &str,
    cluster: &str,
    namespace: &str,
) -> String {
    format!(
        "{cargo}-{slot}-{}.{cluster}.{namespace}",
        &hash[..hash.len().min(6)]
    )
}

/// FNV-1a, 64 bits: stable across runs and versions (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Every named field whose value is not empty (null, "", [], {}), sorted by name.
fn fields(pairs: Vec<(&'static str, Value)>) -> Value {
    let map: BTreeMap<&str, Value> = pairs
        .into_iter()
        .filter(|(_, v)| match v {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            _ => true,
        })
        .collect();
    serde_json::to_value(map).unwrap_or(Value::Null)
}

/// The canonical form of a rendered container, which the spec hash is taken over: each field
/// by its own name, sorted, with absent and empty fields left out. A field added to
/// `ContainerSpec` later is absent from every existing spec, so their hashes (and their
/// running containers) stay as they are on upgrade; only a spec that sets it changes.
pub fn canonical(t: &ContainerSpec) -> String {
    let ports: Vec<Value> = t
        .ports
        .iter()
        .map(|p| {
            fields(vec![
                ("containerPort", json!(p.container_port)),
                ("protocol", json!(p.protocol)),
                ("hostIp", json!(p.host_ip)),
                ("hostPort", json!(p.host_port)),
            ])
        })
        .collect();
    let healthcheck = t.healthcheck.as_ref().map(|h| {
        fields(vec![
            ("command", json!(h.command)),
            ("intervalNs", json!(h.interval_ns)),
            ("timeoutNs", json!(h.timeout_ns)),
            ("retries", json!(h.retries)),
            ("startPeriodNs", json!(h.start_period_ns)),
        ])
    });
    fields(vec![
        ("image", json!(t.image)),
        ("entrypoint", json!(t.entrypoint)),
        ("cmd", json!(t.cmd)),
        ("env", json!(t.env)),
        ("labels", json!(t.labels)),
        ("ports", Value::Array(ports)),
        ("binds", json!(t.binds)),
        ("networks", json!(t.networks)),
        ("aliases", json!(t.aliases)),
        ("workingDir", json!(t.working_dir)),
        ("user", json!(t.user)),
        ("nanoCpus", json!(t.nano_cpus)),
        ("memory", json!(t.memory)),
        ("healthcheck", healthcheck.unwrap_or(Value::Null)),
        // Only when set: the hash of every container without them stays what it was.
        ("privileged", json!(t.privileged.then_some(true))),
        ("capAdd", json!(t.cap_add)),
        ("devices", json!(t.devices)),
        ("pidMode", json!(t.pid_mode)),
        ("ipcMode", json!(t.ipc_mode)),
    ])
    .to_string()
}

/// `io.nanocl.spec-hash`: FNV-1a over the canonical form.
pub fn spec_hash(template: &ContainerSpec) -> String {
    format!("{:016x}", fnv1a(canonical(template).as_bytes()))
}

fn duration_ns(value: &Option<String>) -> Option<i64> {
    value
        .as_deref()
        .and_then(|v| quantity::parse_duration_ms(v).ok())
        .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX / 1_000_000) * 1_000_000)
}

/// The cargo's container with the cluster variables substituted into its env, and the
/// values of the variables it used (a revision's record).
pub type Substituted = (ApiContainerSpec, BTreeMap<String, String>);

/// Substitutes the cluster's variables into the env of `cargo`'s container.
pub fn substitute(cargo: &Cargo, cluster: Option<&Cluster>) -> Result<Substituted, NotReady> {
    let namespace = cargo.metadata.namespace.clone().unwrap_or_default();
    let spec = &cargo.spec;
    let cluster = cluster.ok_or_else(|| NotReady {
        reason: "ClusterNotFound",
        message: format!(
            "cluster {:?} does not exist in namespace {namespace:?} (yet)",
            spec.cluster
        ),
    })?;
    let container = built(cargo)?;
    substitute_with(&container, &cluster.spec.variables).map_err(|(name, e)| NotReady {
        reason: "VariableNotDefined",
        message: format!("env {name}: {e} in cluster {:?}", spec.cluster),
    })
}

/// The cargo's container, with the image of its last successful build when it has a
/// `build` (never pulled: it is nanocl's own), or why there is none yet.
pub fn built(cargo: &Cargo) -> Result<ApiContainerSpec, NotReady> {
    let mut container = cargo.spec.container.clone();
    if container.build.is_none() {
        return Ok(container);
    }
    let build = cargo.status.as_ref().and_then(|s| s.build.as_ref());
    match build.and_then(|b| b.image.clone()) {
        Some(image) => {
            container.image = image;
            container.image_pull_policy = Some(nanocl_api_types::cargo::v1::ImagePullPolicy::Never);
            Ok(container)
        }
        None => {
            let failed = build.filter(|b| b.phase == "Failed");
            Err(match failed {
                Some(b) => NotReady {
                    reason: "BuildFailed",
                    message: b.message.clone(),
                },
                None => NotReady {
                    reason: "Building",
                    message: build.map_or_else(
                        || "waiting for the first build of the image".to_owned(),
                        |b| b.message.clone(),
                    ),
                },
            })
        }
    }
}

/// Substitutes `variables` into the env of `container`: the rendered container and the
/// variables it used, or the env entry that could not be rendered and why.
pub fn substitute_with(
    container: &ApiContainerSpec,
    variables: &BTreeMap<String, String>,
) -> Result<Substituted, (String, String)> {
    let mut rendered = container.clone();
    let mut used = BTreeMap::new();
    for (name, value) in &mut rendered.env {
        // A secret's key is read where the container is made, never rendered here.
        let nanocl_api_types::cargo::v1::EnvValue::Text(value) = value else {
            continue;
        };
        for reference in template::references(value).map_err(|e| (name.clone(), e))? {
            if let Some(v) = variables.get(reference) {
                used.insert(reference.to_owned(), v.clone());
            }
        }
        *value = template::render(value, variables).map_err(|e| (name.clone(), e))?;
    }
    Ok((rendered, used))
}

/// Renders the desired container of `cargo`: cluster variables substituted into the env, the
/// networks resolved to Docker names, limits converted.
pub fn render(
    cargo: &Cargo,
    cluster: Option<&Cluster>,
    instance: &str,
) -> Result<Desired, NotReady> {
    let (container, _) = substitute(cargo, cluster)?;
    Ok(render_template(
        &Source {
            namespace: cargo.metadata.namespace.as_deref().unwrap_or_default(),
            cargo: &cargo.metadata.name,
            cluster: &cargo.spec.cluster,
            instance,
        },
        &container,
        &cargo.spec.networks,
        restarted_at(cargo),
        u32::try_from(cargo.spec.replicas.unwrap_or(1)).unwrap_or(0),
    ))
}

/// How many replicas a cargo runs: `spec.replicas`, or, with `spec.autoscale`, what the
/// autoscaler decided (its status), within the bounds.
pub fn replicas_wanted(cargo: &Cargo) -> u32 {
    let spec = u32::try_from(cargo.spec.replicas.unwrap_or(1)).unwrap_or(0);
    match &cargo.spec.autoscale {
        None => spec,
        Some(a) => super::autoscale::clamp(
            a,
            cargo
                .status
                .as_ref()
                .and_then(|s| s.autoscale.as_ref())
                .and_then(|s| u32::try_from(s.desired_replicas).ok())
                .filter(|n| *n > 0)
                .unwrap_or(spec),
        ),
    }
}

/// The `rollout restart` annotation of a cargo.
pub fn restarted_at(cargo: &Cargo) -> Option<&str> {
    cargo
        .metadata
        .annotations
        .get(RESTARTED_AT_ANNOTATION)
        .map(String::as_str)
}

/// Whose container a template is.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    /// The cargo's namespace.
    pub namespace: &'a str,
    /// The cargo's name.
    pub cargo: &'a str,
    /// Its cluster.
    pub cluster: &'a str,
    /// The store's instance id.
    pub instance: &'a str,
}

/// The Docker container of an already substituted `container`, for `replicas` replicas.
pub fn render_template(
    source: &Source<'_>,
    c: &ApiContainerSpec,
    spec_networks: &[String],
    restarted_at: Option<&str>,
    replicas: u32,
) -> Desired {
    let namespace = source.namespace.to_owned();
    let env = c
        .env
        .iter()
        .map(|(k, v)| match v {
            nanocl_api_types::cargo::v1::EnvValue::Text(t) => format!("{k}={t}"),
            nanocl_api_types::cargo::v1::EnvValue::From(f) => {
                format!("{k}={}", super::secrets::env_placeholder(&f.value_from))
            }
        })
        .collect();
    let networks = if spec_networks.is_empty() {
        vec![default_network_name(source.cluster, &namespace)]
    } else {
        spec_networks
            .iter()
            .map(|n| network_name(n, source.cluster, &namespace))
            .collect()
    };
    let ports: Vec<PortBinding> = c
        .ports
        .iter()
        .map(|p| PortBinding {
            container_port: u16::try_from(p.container_port).unwrap_or(0),
            protocol: p.protocol.unwrap_or(Protocol::TCP).as_docker().to_owned(),
            host_ip: p.host_ip.clone().unwrap_or_else(|| "127.0.0.1".to_owned()),
            host_port: p.host_port.and_then(|h| u16::try_from(h).ok()),
        })
        .collect();
    let mut labels: BTreeMap<String, String> = c.labels.clone();
    labels.insert(labels::MANAGED.into(), "true".into());
    labels.insert(labels::NAMESPACE.into(), namespace.clone());
    labels.insert(labels::CLUSTER.into(), source.cluster.to_owned());
    labels.insert(labels::CARGO.into(), source.cargo.to_owned());
    labels.insert(labels::INSTANCE.into(), source.instance.to_owned());
    if let Some(at) = restarted_at {
        labels.insert(labels::RESTARTED_AT.into(), at.to_owned());
    }
    let resources = c.resources.clone().unwrap_or_default();
    let mut template = ContainerSpec {
        name: String::new(),
        image: c.image.clone(),
        entrypoint: c.command.clone(),
        cmd: c.args.clone(),
        env,
        labels,
        ports,
        binds: c
            .volumes
            .iter()
            .map(|v| {
                format!(
                    "{}:{}{}",
                    v.source,
                    v.target,
                    if v.read_only { ":ro" } else { "" }
                )
            })
            .chain(
                c.files
                    .iter()
                    .enumerate()
                    .map(|(i, f)| super::secrets::file_placeholder(i, f)),
            )
            .collect(),
        networks,
        aliases: vec![source.cargo.to_owned()],
        working_dir: c.working_dir.clone(),
        user: c.user.clone(),
        nano_cpus: resources.cpus.map(|cpus| (cpus * 1e9).round() as i64),
        memory: resources
            .memory
            .as_deref()
            .and_then(|m| quantity::parse_memory(m).ok())
            .and_then(|b| i64::try_from(b).ok()),
        healthcheck: c.healthcheck.as_ref().map(|h| Healthcheck {
            command: h.command.clone(),
            interval_ns: duration_ns(&h.interval),
            timeout_ns: duration_ns(&h.timeout),
            retries: h.retries.map(i64::from),
            start_period_ns: duration_ns(&h.start_period),
        }),
        privileged: c.privileged,
        cap_add: c
            .cap_add
            .iter()
            .map(|cap| nanocl_api_types::cargo::v1::capability_name(cap))
            .collect(),
        devices: c.devices.clone(),
        pid_mode: c.host_pid.then(|| "host".to_owned()),
        ipc_mode: c.host_ipc.then(|| "host".to_owned()),
    };
    // The hash covers everything that makes a container differ, and nothing per slot.
    let hash = spec_hash(&template);
    template
        .labels
        .insert(labels::SPEC_HASH.into(), hash.clone());
    Desired {
        replicas,
        fixed_host_port: template.ports.iter().any(|p| p.host_port.is_some()),
        hash,
        template,
    }
}

/// One step toward the desired state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Create and start the container of `slot` with the current spec.
    Create {
        /// The replica ordinal.
        slot: u32,
    },
    /// Start a container of the current spec that is not running.
    Start {
        /// The container.
        id: String,
        /// Its slot.
        slot: u32,
    },
    /// Remove a container (outdated, surplus, or not ours to keep).
    Remove {
        /// The container.
        id: String,
    },
}

fn slot_of(c: &Container) -> Option<u32> {
    c.labels.get(labels::SLOT)?.parse().ok()
}

/// Of a slot's outdated containers, the one to keep serving while its successor gets ready:
/// the one that started first (the one that was ready before a newer, not yet ready
/// replacement was itself replaced), a start time unknown counting as newest.
fn oldest_serving(
    outdated: &[&&Container],
    serving: &dyn Fn(&Container) -> bool,
) -> Option<String> {
    outdated
        .iter()
        .filter(|c| serving(c))
        .min_by_key(|c| (c.started_at.is_none(), c.started_at))
        .map(|c| c.id.clone())
}

fn is_current(c: &Container, desired: &Desired) -> bool {
    c.labels.get(labels::SPEC_HASH) == Some(&desired.hash)
}

/// What to do to get from `observed` (this cargo's containers) to `desired` in slots
/// `0..replicas`, a running container counting as ready (see `plan_slots`).
pub fn plan(desired: &Desired, observed: &[Container]) -> Vec<Op> {
    let wanted = (0..desired.replicas).map(|n| (n, desired)).collect();
    plan_slots(&wanted, observed, &|c: &Container| {
        c.state == State::Running
    })
}

/// What to do to get from `observed` (this cargo's containers on this node) to each slot of
/// `wanted` running its own desired container (slots move to a new revision when the leader
/// says so; each may have its own).
///
/// - A container of no slot, or of a slot not wanted here, is removed (highest slot first).
/// - A missing replica is created at once.
/// - An outdated replica is replaced new before old: the new container is created next to
///   the old one, and the old one goes only once the new one is `ready` (running, healthy
///   with a healthcheck, up for `minReadySeconds`) — a new revision that never gets ready
///   never takes a replica down. With a pinned host port the two cannot run together, so
///   the old one goes first; an old one that does not run serves nobody and goes at once.
/// - A stopped container of the current spec is started again.
pub fn plan_slots(
    wanted: &BTreeMap<u32, &Desired>,
    observed: &[Container],
    ready: &dyn Fn(&Container) -> bool,
) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut slots: BTreeMap<u32, Vec<&Container>> = BTreeMap::new();
    for c in observed {
        match slot_of(c) {
            Some(slot) => slots.entry(slot).or_default().push(c),
            None => ops.push(Op::Remove { id: c.id.clone() }),
        }
    }
    for (_, containers) in slots.iter().rev().filter(|(s, _)| !wanted.contains_key(s)) {
        for c in containers {
            ops.push(Op::Remove { id: c.id.clone() });
        }
    }
    let serving = |c: &Container| {
        c.state == State::Running && c.health.as_deref().is_none_or(|h| h == "healthy")
    };
    for (&slot, desired) in wanted {
        let containers = slots.get(&slot).map(Vec::as_slice).unwrap_or(&[]);
        let mut current = containers.iter().filter(|c| is_current(c, desired));
        let first = current.next();
        for extra in current {
            ops.push(Op::Remove {
                id: extra.id.clone(),
            });
        }
        let outdated: Vec<&&Container> = containers
            .iter()
            .filter(|c| !is_current(c, desired))
            .collect();
        match first {
            Some(c) => {
                if c.state != State::Running {
                    ops.push(Op::Start {
                        id: c.id.clone(),
                        slot,
                    });
                } else if ready(c) {
                    for old in &outdated {
                        ops.push(Op::Remove { id: old.id.clone() });
                    }
                } else {
                    // Waiting for it: one old container that serves stays meanwhile.
                    let keep = oldest_serving(&outdated, &serving);
                    for old in &outdated {
                        if Some(&old.id) != keep.as_ref() {
                            ops.push(Op::Remove { id: old.id.clone() });
                        }
                    }
                }
            }
            None if outdated.is_empty() => ops.push(Op::Create { slot }),
            None => {
                // One outdated container that serves (running, not failing a health check)
                // stays until its successor is ready; the others serve nobody and go now (a
                // replacement itself replaced before it got ready, say).
                let keep = if desired.fixed_host_port {
                    None
                } else {
                    oldest_serving(&outdated, &serving)
                };
                for old in &outdated {
                    if Some(&old.id) != keep.as_ref() {
                        ops.push(Op::Remove { id: old.id.clone() });
                    }
                }
                ops.push(Op::Create { slot });
            }
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanocl_api_types::manifest::{decode_str, DecodeOptions};
    use nanocl_api_types::AnyObject;

    fn objects(yaml: &str) -> Vec<AnyObject> {
        let decoded = decode_str("t.yaml", yaml, &DecodeOptions::default());
        assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
        decoded.manifests.into_iter().map(|m| m.object).collect()
    }

    fn cargo_and_cluster(replicas: i32, env: &str, ports: &str) -> (Cargo, Cluster) {
        let objs = objects(&format!(
            "apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev}}\nspec:\n  variables: {{DB: db.local}}\n---\n\
             apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: web}}\nspec:\n  cluster: dev\n  replicas: {replicas}\n  container:\n    image: busybox:stable\n    env: {{URL: \"{env}\"}}\n{ports}"
        ));
        match (&objs[0], &objs[1]) {
            (AnyObject::Cluster(cl), AnyObject::Cargo(c)) => (c.clone(), cl.clone()),
            _ => panic!("unexpected objects"),
        }
    }

    const GOLDEN_FIXTURE: &str = include_str!("../../tests/fixtures/cargo-spec-hash-v0.1.yaml");

    fn golden() -> ContainerSpec {
        let objs = objects(GOLDEN_FIXTURE);
        let (AnyObject::Cluster(cluster), AnyObject::Cargo(cargo)) = (&objs[0], &objs[1]) else {
            panic!("a cluster and a cargo");
        };
        render(cargo, Some(cluster), "0123456789ab")
            .expect("renders")
            .template
    }

    #[test]
    fn the_spec_hash_of_a_spec_from_0_1_should_never_change() {
        let template = golden();
        assert_eq!(
            template.labels.get(labels::SPEC_HASH).map(String::as_str),
            Some(GOLDEN_HASH),
            "canonical form: {}",
            canonical(&template)
        );
    }

    #[test]
    fn the_canonical_form_should_name_every_set_field_and_leave_out_empty_ones() {
        let mut template = golden();
        template.labels.remove(labels::SPEC_HASH);
        assert_eq!(canonical(&template), GOLDEN_CANONICAL);
        // What a field added later looks like to an existing spec: absent or empty, and
        // then it is not part of the form (user, binds, entrypoint are unset here already).
        template.user = Some(String::new());
        template.binds = Vec::new();
        template
            .healthcheck
            .as_mut()
            .expect("healthcheck")
            .timeout_ns = None;
        assert_eq!(spec_hash(&template), GOLDEN_HASH);
        template.user = Some("nobody".into());
        assert_ne!(spec_hash(&template), GOLDEN_HASH, "a set field counts");
    }

    const GOLDEN_HASH: &str = "8ff5c4cc216a64de";
    const GOLDEN_CANONICAL: &str = r#"{"aliases":["web"],"cmd":["httpd -f -p 8080"],"entrypoint":["sh","-c"],"env":["DATABASE_URL=postgres://db.shop.local/shop","MODE=production"],"healthcheck":{"command":["wget","-q","-O-","http://127.0.0.1:8080/"],"intervalNs":5000000000,"retries":3},"image":"nanocl-test/busybox:latest","labels":{"io.nanocl.cargo":"web","io.nanocl.cluster":"dev","io.nanocl.instance":"0123456789ab","io.nanocl.managed":"true","io.nanocl.namespace":"shop","tier":"front"},"memory":67108864,"nanoCpus":500000000,"networks":["dev.shop"],"ports":[{"containerPort":8080,"hostIp":"127.0.0.1","protocol":"tcp"}],"workingDir":"/var/www"}"#;

    fn desired(replicas: i32) -> Desired {
        let (cargo, cluster) = cargo_and_cluster(replicas, "http://{{ vars.DB }}", "");
        render(&cargo, Some(&cluster), "i1").expect("renders")
    }

    fn container(slot: u32, hash: &str, state: State) -> Container {
        Container {
            id: format!("{slot}-{hash}"),
            name: format!("web-{slot}-{hash}"),
            image: "busybox:stable".into(),
            labels: BTreeMap::from([
                (labels::SLOT.to_owned(), slot.to_string()),
                (labels::SPEC_HASH.to_owned(), hash.to_owned()),
            ]),
            state,
            exit_code: None,
            oom_killed: false,
            health: None,
            started_at: None,
            start_error: None,
            networks: None,
            image_id: None,
        }
    }

    #[test]
    fn render_should_substitute_variables_and_label_everything() {
        let d = desired(2);
        assert_eq!(d.template.env, vec!["URL=http://db.local"]);
        assert_eq!(d.template.networks, vec!["dev.global"]);
        assert_eq!(d.template.aliases, vec!["web"]);
        for (k, v) in [
            (labels::MANAGED, "true"),
            (labels::NAMESPACE, "global"),
            (labels::CLUSTER, "dev"),
            (labels::CARGO, "web"),
            (labels::INSTANCE, "i1"),
        ] {
            assert_eq!(d.template.labels.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert_eq!(d.template.labels.get(labels::SPEC_HASH), Some(&d.hash));
        assert_eq!(
            container_name("web", 1, &d.hash, "dev", "global"),
            format!("web-1-{}.dev.global", &d.hash[..6])
        );
    }

    #[test]
    fn render_should_say_why_it_cannot() {
        let (cargo, cluster) = cargo_and_cluster(1, "{{ vars.MISSING }}", "");
        assert_eq!(
            render(&cargo, None, "i").expect_err("no cluster").reason,
            "ClusterNotFound"
        );
        let err = render(&cargo, Some(&cluster), "i").expect_err("unknown variable");
        assert_eq!(err.reason, "VariableNotDefined");
        assert!(
            err.message.contains("\"MISSING\" is not defined"),
            "{}",
            err.message
        );
    }

    #[test]
    fn the_hash_should_change_with_the_spec_and_variables_only() {
        let a = desired(1);
        assert_eq!(
            desired(3).hash,
            a.hash,
            "replicas are not part of a container"
        );
        let (cargo, mut cluster) = cargo_and_cluster(1, "http://{{ vars.DB }}", "");
        cluster
            .spec
            .variables
            .insert("DB".into(), "db.other".into());
        assert_ne!(
            render(&cargo, Some(&cluster), "i1").expect("renders").hash,
            a.hash,
            "a variable change rolls"
        );
    }

    #[test]
    fn plan_should_create_missing_replicas_at_once() {
        let d = desired(3);
        assert_eq!(
            plan(&d, &[]),
            vec![
                Op::Create { slot: 0 },
                Op::Create { slot: 1 },
                Op::Create { slot: 2 }
            ]
        );
        let running = [container(0, &d.hash, State::Running)];
        assert_eq!(
            plan(&d, &running),
            vec![Op::Create { slot: 1 }, Op::Create { slot: 2 }]
        );
    }

    #[test]
    fn plan_should_restart_stopped_replicas_and_remove_surplus_highest_first() {
        let d = desired(2);
        let observed = [
            container(0, &d.hash, State::Exited),
            container(1, &d.hash, State::Running),
            container(2, &d.hash, State::Running),
            container(3, &d.hash, State::Running),
        ];
        assert_eq!(
            plan(&d, &observed),
            vec![
                Op::Remove {
                    id: format!("3-{}", d.hash)
                },
                Op::Remove {
                    id: format!("2-{}", d.hash)
                },
                Op::Start {
                    id: format!("0-{}", d.hash),
                    slot: 0
                },
            ]
        );
    }

    #[test]
    fn plan_should_replace_each_slot_new_before_old_and_wait_for_readiness() {
        let d = desired(2);
        let old = [
            container(0, "old", State::Running),
            container(1, "old", State::Running),
        ];
        assert_eq!(
            plan(&d, &old),
            vec![Op::Create { slot: 0 }, Op::Create { slot: 1 }],
            "every slot the leader moved, old kept"
        );
        let mid = [
            container(0, "old", State::Running),
            container(0, &d.hash, State::Running),
            container(1, "old", State::Running),
            container(1, &d.hash, State::Running),
        ];
        let wanted = (0..2).map(|n| (n, &d)).collect();
        let never_ready = |_: &Container| false;
        assert_eq!(
            plan_slots(&wanted, &mid, &never_ready),
            vec![],
            "an old replica stays until its successor is ready"
        );
        let slot0_ready = |c: &Container| slot_of(c) == Some(0);
        assert_eq!(
            plan_slots(&wanted, &mid, &slot0_ready),
            vec![Op::Remove { id: "0-old".into() }]
        );
        let old_slot = desired(2);
        let mut other = old_slot.clone();
        other.hash = "other".into();
        let per_slot: BTreeMap<u32, &Desired> = [(0, &other), (1, &old_slot)].into();
        assert_eq!(
            plan_slots(
                &per_slot,
                &[
                    container(0, &old_slot.hash, State::Running),
                    container(1, &old_slot.hash, State::Running)
                ],
                &|c: &Container| c.state == State::Running
            ),
            vec![Op::Create { slot: 0 }],
            "each slot runs its own revision"
        );
    }

    #[test]
    fn plan_should_recreate_in_place_with_a_pinned_host_port_and_replace_dead_replicas_at_once() {
        let (cargo, cluster) =
            cargo_and_cluster(1, "x", "    ports: [{containerPort: 80, hostPort: 8080}]\n");
        let d = render(&cargo, Some(&cluster), "i").expect("renders");
        assert!(d.fixed_host_port);
        assert_eq!(
            plan(&d, &[container(0, "old", State::Running)]),
            vec![Op::Remove { id: "0-old".into() }, Op::Create { slot: 0 }]
        );
        let d = desired(2);
        let dead = [
            container(0, "old", State::Exited),
            container(1, "old", State::Exited),
        ];
        assert_eq!(
            plan(&d, &dead),
            vec![
                Op::Remove { id: "0-old".into() },
                Op::Create { slot: 0 },
                Op::Remove { id: "1-old".into() },
                Op::Create { slot: 1 },
            ],
            "a dead replica serves nobody: replace it without waiting"
        );
    }

    fn arbitrary_observed(
        hash: String,
    ) -> impl proptest::strategy::Strategy<Value = Vec<Container>> {
        use proptest::prelude::*;
        let state = prop_oneof![
            Just(State::Running),
            Just(State::Exited),
            Just(State::Created)
        ];
        let which = prop_oneof![Just(hash), Just("old1".to_owned()), Just("old2".to_owned())];
        proptest::collection::vec((0u32..7, which, state), 0..10).prop_map(|cs| {
            cs.into_iter()
                .enumerate()
                .map(|(i, (slot, h, st))| {
                    let mut c = container(slot, &h, st);
                    c.id = format!("c{i}");
                    c
                })
                .collect()
        })
    }

    /// Applies `ops` the way Docker would (a new container starts at once).
    fn simulate(desired: &Desired, state: &mut Vec<Container>, ops: &[Op], next_id: &mut usize) {
        for op in ops {
            match op {
                Op::Create { slot } => {
                    *next_id += 1;
                    let mut c = container(*slot, &desired.hash, State::Running);
                    c.id = format!("n{next_id}");
                    state.push(c);
                }
                Op::Start { id, .. } => {
                    if let Some(c) = state.iter_mut().find(|c| &c.id == id) {
                        c.state = State::Running;
                    }
                }
                Op::Remove { id } => state.retain(|c| &c.id != id),
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn plan_should_converge_to_exactly_the_replicas_and_never_drop_to_zero(
            replicas in 0i32..5,
            observed in arbitrary_observed(desired(1).hash),
        ) {
            let d = desired(replicas);
            let mut state = observed;
            let serving_at_start = state.iter().any(|c| c.state == State::Running);
            let mut next_id = 0;
            let mut steps = 0;
            loop {
                let ops = plan(&d, &state);
                if ops.is_empty() {
                    break;
                }
                simulate(&d, &mut state, &ops, &mut next_id);
                steps += 1;
                proptest::prop_assert!(steps < 30, "no convergence: {state:?}");
                if serving_at_start && replicas > 1 {
                    proptest::prop_assert!(
                        state.iter().any(|c| c.state == State::Running),
                        "every replica down at step {steps}: {state:?}"
                    );
                }
            }
            proptest::prop_assert_eq!(state.len(), replicas as usize);
            let mut slots: Vec<u32> = state.iter().filter_map(slot_of).collect();
            slots.sort_unstable();
            proptest::prop_assert_eq!(slots, (0..replicas as u32).collect::<Vec<_>>());
            proptest::prop_assert!(state.iter().all(|c| c.state == State::Running && is_current(c, &d)));
        }
    }

    #[test]
    fn plan_should_remove_containers_without_a_slot_and_duplicates() {
        let d = desired(1);
        let mut stray = container(0, &d.hash, State::Running);
        stray.labels.remove(labels::SLOT);
        stray.id = "stray".into();
        let mut dup = container(0, &d.hash, State::Running);
        dup.id = "dup".into();
        let observed = [stray, container(0, &d.hash, State::Running), dup];
        assert_eq!(
            plan(&d, &observed),
            vec![
                Op::Remove { id: "stray".into() },
                Op::Remove { id: "dup".into() }
            ]
        );
    }
}
