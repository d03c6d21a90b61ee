//! `Cargo` in `nanocl.io/v1`, the storage version.

use std::collections::{BTreeMap, HashMap};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{Condition, Object};
use crate::path::FieldPath;
use crate::quantity;
use crate::reference;
use crate::template;
use crate::validation::{self, quoted, FieldErrors};

/// A Cargo: `replicas` containers of one container spec, in a cluster.
pub type Cargo = Object<CargoSpec, CargoStatus>;

/// Most replicas one cargo may ask for.
pub const MAX_REPLICAS: i32 = 1000;

/// Host address ports are published on when `hostIP` is omitted: loopback, so nothing is
/// exposed to the network by accident.
pub const DEFAULT_HOST_IP: &str = "127.0.0.1";

/// What a Cargo should be.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CargoSpec {
    /// The Cluster (in the same namespace) this cargo runs in. Required. It may be created
    /// later: the cargo waits for it.
    #[serde(default)]
    pub cluster: String,
    /// How many containers to run (0 to 1000, default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,
    /// Networks of the same cluster to attach to; empty means the cluster's default network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    /// The container every replica runs.
    #[serde(default)]
    pub container: ContainerSpec,
    /// Which nodes the replicas run on (default: spread evenly over the cluster's Ready
    /// nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// How a change of the container (or of the cluster variables it uses) replaces the
    /// running replicas (default: a health-gated rolling update, one extra replica at a
    /// time, none unavailable, rolled back automatically when it fails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateSpec>,
    /// How many old revisions to keep for `nanocl rollout history` and `undo` (0 to 100,
    /// default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub revision_history_limit: Option<u32>,
    /// Scale on CPU and memory use between `minReplicas` and `maxReplicas`. With it,
    /// `replicas` is only the count to start with: the autoscaler decides the rest, and
    /// `apply` of an unchanged file never undoes what it decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<AutoscaleSpec>,
}

/// Default scale-down stabilization window, as the Kubernetes HPA's.
pub const DEFAULT_SCALE_DOWN_STABILIZATION_SECONDS: u32 = 300;

/// `spec.autoscale`: the Kubernetes HPA's algorithm on each replica's CPU and memory use.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutoscaleSpec {
    /// Fewest replicas (1 to 1000, default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: Option<i32>,
    /// Most replicas (1 to 1000, at least `minReplicas`). Required.
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Average CPU use to keep each replica at, in percent of its `resources.cpus` (of one
    /// CPU when unset), 1 to 1000.
    #[serde(
        default,
        rename = "targetCPUUtilizationPercent",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 1000))]
    pub target_cpu_utilization_percent: Option<i32>,
    /// Average memory use to keep each replica at, in percent of its `resources.memory`
    /// (which it then needs), 1 to 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub target_memory_utilization_percent: Option<i32>,
    /// Seconds the use must stay low before replicas are removed: the highest count
    /// recommended within this window is kept (0 to 3600, default 300). Scaling up is
    /// immediate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_stabilization_seconds: Option<u32>,
}

/// Default `maxSurge`: one replica more than `replicas` while updating.
pub const DEFAULT_MAX_SURGE: i32 = 1;
/// Default `maxUnavailable`: none below `replicas`.
pub const DEFAULT_MAX_UNAVAILABLE: i32 = 0;
/// Default `progressDeadlineSeconds`, as in Kubernetes.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: u32 = 600;
/// Default `revisionHistoryLimit`.
pub const DEFAULT_REVISION_HISTORY_LIMIT: u32 = 10;

/// How replicas are replaced when a cargo's container changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum UpdateStrategy {
    /// Replace a few replicas at a time (`maxSurge`, `maxUnavailable`), each counted only
    /// once its successor is ready. The default, unless a port has a fixed `hostPort`.
    RollingUpdate,
    /// Remove every replica, then start the new ones: a short outage, and never two versions
    /// at once. The default for a fixed `hostPort` (old and new cannot bind it together).
    Recreate,
}

/// A count of replicas, or a percentage of `replicas` (`"25%"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum IntOrPercent {
    /// A count.
    Int(i32),
    /// `N%` of the cargo's replicas (0 to 100).
    Percent(String),
}

impl IntOrPercent {
    /// The count for `total` replicas: a percentage rounded up (`round_up`, as for
    /// `maxSurge`) or down (`maxUnavailable`); `None` when it does not parse (validated at
    /// apply).
    pub fn resolve(&self, total: u32, round_up: bool) -> Option<u32> {
        match self {
            IntOrPercent::Int(n) => u32::try_from(*n).ok(),
            IntOrPercent::Percent(p) => {
                let pct = parse_percent(p)?;
                let scaled = u64::from(total) * u64::from(pct);
                let n = if round_up {
                    scaled.div_ceil(100)
                } else {
                    scaled / 100
                };
                u32::try_from(n).ok()
            }
        }
    }
}

fn parse_percent(value: &str) -> Option<u32> {
    let digits = value.strip_suffix('%')?;
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|p| *p <= 100)
}

/// `spec.update`: how a change rolls out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateSpec {
    /// `RollingUpdate` (default) or `Recreate` (default with a fixed `hostPort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<UpdateStrategy>,
    /// How many replicas above `replicas` may run during an update: a count or a
    /// percentage rounded up (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrPercent>,
    /// How many of `replicas` may be unavailable during an update: a count or a percentage
    /// rounded down (default 0). `maxSurge` and `maxUnavailable` cannot both be 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrPercent>,
    /// Seconds a new replica must run (and be healthy, with a healthcheck) before it counts
    /// as ready (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub min_ready_seconds: Option<u32>,
    /// Seconds an update may go without progress (one more replica of the new revision
    /// ready) before it is failed (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub progress_deadline_seconds: Option<u32>,
    /// Roll back to the last revision that ran everywhere when an update fails: its
    /// deadline passes, or a new replica crash-loops or fails its healthcheck (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_rollback: Option<bool>,
}

/// `spec.update` with every default filled in, for a cargo whose ports are as given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpdatePolicy {
    /// The strategy.
    pub strategy: UpdateStrategy,
    /// Replicas above the count allowed while updating.
    pub max_surge: u32,
    /// Replicas below the count allowed while updating.
    pub max_unavailable: u32,
    /// Seconds a new replica must be ready before it counts.
    pub min_ready_seconds: u32,
    /// Seconds without progress before the update fails.
    pub progress_deadline_seconds: u32,
    /// Whether a failed update rolls back.
    pub auto_rollback: bool,
    /// Old revisions kept.
    pub revision_history_limit: u32,
}

impl CargoSpec {
    /// Whether a port is pinned to a fixed host port.
    pub fn fixed_host_port(&self) -> bool {
        self.container.ports.iter().any(|p| p.host_port.is_some())
    }

    /// `spec.update` resolved for `replicas` replicas, defaults filled in.
    pub fn update_policy(&self, replicas: u32) -> UpdatePolicy {
        let u = self.update.clone().unwrap_or_default();
        let strategy = u.strategy.unwrap_or(if self.fixed_host_port() {
            UpdateStrategy::Recreate
        } else {
            UpdateStrategy::RollingUpdate
        });
        let max_surge = u
            .max_surge
            .and_then(|s| s.resolve(replicas, true))
            .unwrap_or(DEFAULT_MAX_SURGE as u32);
        let max_unavailable = u
            .max_unavailable
            .and_then(|s| s.resolve(replicas, false))
            .unwrap_or(DEFAULT_MAX_UNAVAILABLE as u32);
        // Both 0 (a percentage of few replicas rounded to nothing) would never progress.
        let max_unavailable = if max_surge == 0 && max_unavailable == 0 {
            1
        } else {
            max_unavailable
        };
        UpdatePolicy {
            strategy,
            max_surge,
            max_unavailable,
            min_ready_seconds: u.min_ready_seconds.unwrap_or(0),
            progress_deadline_seconds: u
                .progress_deadline_seconds
                .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS),
            auto_rollback: u.auto_rollback.unwrap_or(true),
            revision_history_limit: self
                .revision_history_limit
                .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT),
        }
    }
}

/// Where a cargo's replicas may run and how they are spread.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Placement {
    /// `true` (the default): each new replica goes to the eligible node that runs the
    /// fewest of this cargo's replicas. `false`: replicas fill the node that already runs
    /// the most, as far as `maxPerNode` and the node's capacity allow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<bool>,
    /// Only nodes carrying every one of these labels (`nanocld --node-label`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// At most this many of the cargo's replicas on one node (1 to 1000; default no
    /// limit). Replicas that fit nowhere wait, and the cargo's status says why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_per_node: Option<i32>,
}

/// When to pull the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ImagePullPolicy {
    /// Pull only when the image is not on the host (the default).
    IfNotPresent,
    /// Pull before every container creation.
    Always,
    /// Never pull: the image must already be on the host.
    Never,
}

/// Transport protocol of a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[allow(
    clippy::upper_case_acronyms,
    reason = "the API spells protocols in capitals, as Kubernetes does"
)]
pub enum Protocol {
    /// TCP (the default).
    TCP,
    /// UDP.
    UDP,
    /// SCTP.
    SCTP,
}

impl Protocol {
    /// Lowercase, as Docker writes it.
    pub fn as_docker(self) -> &'static str {
        match self {
            Protocol::TCP => "tcp",
            Protocol::UDP => "udp",
            Protocol::SCTP => "sctp",
        }
    }
}

/// A container port, optionally published on the host.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSpec {
    /// Port inside the container (1-65535).
    #[serde(default)]
    #[schemars(range(min = 1, max = 65535))]
    pub container_port: i32,
    /// Port on the host (1-65535). When omitted, Docker picks a free one. A fixed host port
    /// needs `replicas` of at most 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub host_port: Option<i32>,
    /// Host address to publish on (default `127.0.0.1`).
    #[serde(default, rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
}

/// A host path or named volume mounted into the container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeMount {
    /// An absolute host path, or the name of a Docker volume.
    #[serde(default)]
    pub source: String,
    /// Absolute path inside the container.
    #[serde(default)]
    pub target: String,
    /// Mount read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// Resource limits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// CPUs the container may use, e.g. `0.5` (more than 0, at most 1024, 3 decimals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Memory limit with a binary unit, e.g. `256Mi`, `1g` (at least `6Mi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// How Docker checks that a replica is healthy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Healthcheck {
    /// Command run inside the container, exec form; exit 0 means healthy. For a shell command
    /// write `["sh", "-c", "..."]`.
    #[serde(default)]
    pub command: Vec<String>,
    /// Time between checks, e.g. `10s` (units ms, s, m, h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Time a check may take before it counts as failed, e.g. `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Consecutive failures before the replica is unhealthy (1-100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub retries: Option<i32>,
    /// Grace period after start during which failures do not count, e.g. `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<String>,
}

/// The container every replica of a cargo runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerSpec {
    /// Image reference, e.g. `busybox:1.36` or `registry.example.com/team/app:v2`. Required,
    /// unless `build` says how to build it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// Build the image from a git repository or a directory on the nanocld host, instead
    /// of naming one in `image`. nanocld builds it off the reconcile path, never builds the
    /// same commit (or identical directory) twice, and rolls each new image out like any
    /// other change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildSpec>,
    /// `IfNotPresent` (default), `Always` or `Never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,
    /// Replaces the image's entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Replaces the image's default arguments (its CMD).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables: text, which may use cluster variables as `{{ vars.NAME }}`,
    /// or a key of a Secret of the namespace: `{valueFrom: {secret: NAME, key: KEY}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, EnvValue>,
    /// Secrets as read-only files: each key of the secret a file in the directory `path`,
    /// or, with `key`, that one key as the file `path`. A change of the secret rolls the
    /// cargo out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<SecretFile>,
    /// Ports of the container, published on the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,
    /// Host paths and named volumes to mount.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeMount>,
    /// Working directory inside the container (absolute path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// User (and optionally group) to run as, e.g. `1000` or `app:app`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Extra Docker labels on the containers (keys under `io.nanocl.` are reserved).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// CPU and memory limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Docker health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// Every device and kernel capability of the host (Docker's `--privileged`): such a
    /// container controls the host. Refused unless the namespace's `spec.policy.privileged`
    /// is true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// Linux capabilities added to Docker's default set, e.g. `NET_ADMIN`. Refused unless
    /// the namespace's `spec.policy.capabilities` lists each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// Host devices given to the container: `HOST[:CONTAINER[:rwm]]`, e.g. `/dev/fuse`.
    /// Refused unless the namespace's `spec.policy.devices` lists each host path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Share the host's process namespace (`--pid host`): the container sees, and may
    /// signal, every process of the host. Refused unless `spec.policy.hostPid`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_pid: bool,
    /// Share the host's IPC namespace (`--ipc host`). Refused unless `spec.policy.hostIpc`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_ipc: bool,
}

/// A capability as Docker takes it: `NET_ADMIN` (a `CAP_` prefix is dropped), uppercase.
pub fn capability_name(value: &str) -> String {
    let upper = value.trim().to_ascii_uppercase();
    upper.strip_prefix("CAP_").unwrap_or(&upper).to_owned()
}

/// The host path of a device mapping `HOST[:CONTAINER[:PERMISSIONS]]`.
pub fn device_host_path(value: &str) -> &str {
    value.split(':').next().unwrap_or(value)
}

/// The value of an environment variable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EnvValue {
    /// Text; may use cluster variables as `{{ vars.NAME }}`.
    Text(String),
    /// A key of a Secret.
    From(EnvFrom),
}

impl EnvValue {
    /// The text, when the value is text.
    pub fn text(&self) -> Option<&str> {
        match self {
            EnvValue::Text(t) => Some(t),
            EnvValue::From(_) => None,
        }
    }

    /// The secret key, when the value comes from one.
    pub fn secret(&self) -> Option<&SecretKeyRef> {
        match self {
            EnvValue::Text(_) => None,
            EnvValue::From(f) => Some(&f.value_from),
        }
    }
}

impl From<&str> for EnvValue {
    fn from(text: &str) -> Self {
        EnvValue::Text(text.to_owned())
    }
}

impl From<String> for EnvValue {
    fn from(text: String) -> Self {
        EnvValue::Text(text)
    }
}

/// `{valueFrom: {secret, key}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvFrom {
    /// Where the value comes from.
    pub value_from: SecretKeyRef,
}

/// A key of a Secret in the cargo's namespace.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// The Secret's name.
    pub secret: String,
    /// The key.
    pub key: String,
}

/// A Secret as read-only files in the container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretFile {
    /// The Secret's name (in the cargo's namespace).
    pub secret: String,
    /// Absolute path in the container: a directory with one file per key, or, with `key`,
    /// the file.
    pub path: String,
    /// Only this key, as the file `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Default `build.timeout`.
pub const DEFAULT_BUILD_TIMEOUT: &str = "30m";
/// Shortest `build.git.poll`.
pub const MIN_POLL_MS: u64 = 1_000;

/// `spec.container.build`: how to build the image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildSpec {
    /// A git repository to build (one of `git` and `context`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitSource>,
    /// A directory on the nanocld host to build (one of `git` and `context`). `nanocl apply`
    /// resolves a relative path against the manifest's own directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The Dockerfile, relative to the build context (default `Dockerfile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// Build arguments (`ARG`); values may use the cluster's variables as `{{ vars.NAME }}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    /// The stage of a multi-stage Dockerfile to build (default: the last).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// How long a build may take before it is stopped and failed (default `30m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// `build.git`: a git repository, a ref in it and a directory of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitSource {
    /// Any URL git reaches from the nanocld host: `https://`, `ssh://`, `git://`,
    /// `file://`, `user@host:path`, or a local path (absolute, or `./…` / `../…`:
    /// `nanocl apply` resolves it against the manifest's own directory).
    #[serde(default)]
    pub url: String,
    /// A branch, a tag or a full commit id (default: the remote's HEAD).
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The directory of the repository to build, relative to its root (default: the root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Look for a new commit on the branch this often (e.g. `1m`) and build and roll it
    /// out when there is one. Without it, nanocld builds what the ref points to when the
    /// spec changes or on `nanocl build cargo NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<String>,
    /// A Secret of the namespace with the credentials to read the repository: `username`
    /// (optional) and `password` or `token` for `https://`; `ssh-privatekey` (and, to check
    /// the server, `known_hosts`) for `ssh://` and `user@host:path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl BuildSpec {
    /// `dockerfile`, defaulted.
    pub fn dockerfile(&self) -> &str {
        self.dockerfile.as_deref().unwrap_or("Dockerfile")
    }

    /// `timeout` in milliseconds, defaulted (validation refuses a bad one).
    pub fn timeout_ms(&self) -> u64 {
        self.timeout
            .as_deref()
            .and_then(|t| quantity::parse_duration_ms(t).ok())
            .unwrap_or(30 * 60 * 1000)
    }
}

/// What the builder did about a cargo's `build`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildStatus {
    /// `Building`, `Succeeded` or `Failed`: the latest build.
    pub phase: String,
    /// The identity of what the latest build is of (its source, commit or context, and
    /// settings), for nanocld to tell whether the spec moved on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// The commit the latest build is of (git).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The sha256 of the context the latest build is of (`context`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_hash: Option<String>,
    /// When the latest build started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    /// For people: what it built, or why it failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The last lines of its output, when it failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<String>,
    /// The image the last successful build made: what the replicas run
    /// (`nanocl.local/{namespace}/{cargo}:{commit or context hash}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Its Docker image id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// The node whose Docker holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The API of the nanocld that built it (its `--advertise-url`), where the agents of
    /// other nodes fetch it (`/images/export`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_url: Option<String>,
}

/// What nanocl observed of a Cargo.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CargoStatus {
    /// The `metadata.generation` the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Containers that exist for this cargo.
    #[serde(default)]
    pub replicas: i32,
    /// Containers running (and healthy, when a healthcheck is set).
    #[serde(default)]
    pub ready_replicas: i32,
    /// Containers running the current spec.
    #[serde(default)]
    pub updated_replicas: i32,
    /// `Ready`, `Progressing`, `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The revision every replica ran when an update last completed: the last good one,
    /// which a failed update rolls back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<u32>,
    /// The revision of the spec as it is now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_revision: Option<u32>,
    /// The update in progress, or how the last one ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
    /// What the autoscaler measured and decided (with `spec.autoscale`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<AutoscaleStatus>,
    /// Every revision kept, oldest first (`spec.update.revisionHistoryLimit` old ones, and
    /// always the current and the updating one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<CargoRevision>,
    /// The image builds (with `spec.container.build`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildStatus>,
}

/// One revision of a cargo: what its replicas run, as the spec said it (for `rollout undo`)
/// and the values of the cluster variables it used.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CargoRevision {
    /// Its number, counting up from 1; a spec that comes back to an older revision's
    /// container (a `rollout undo`) gets a new number, as in Kubernetes.
    pub revision: u32,
    /// The hash of the rendered container (`io.nanocl.spec-hash` of its containers).
    pub hash: String,
    /// When it was recorded (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// What changed from the revision before, e.g. `image busybox:1.36 -> busybox:1.37`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub change: String,
    /// The container as the spec had it (templates unrendered).
    #[serde(default)]
    pub container: ContainerSpec,
    /// The spec's networks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    /// The values of the cluster variables the container used.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// The `rollout.nanocl.io/restartedAt` annotation it was recorded with (`rollout
    /// restart`), which makes its containers new ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_at: Option<String>,
    /// Why its update failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

/// Where an update stands.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutStatus {
    /// The revision the replicas are being moved to.
    pub revision: u32,
    /// `Progressing`, `Paused`, `Complete`, `RollingBack`, `RolledBack` or `Failed`.
    pub phase: String,
    /// When this update started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// When it last made progress (one more replica of `revision` ready); the deadline
    /// counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progressed: Option<String>,
    /// Replicas of `revision` ready at the last progress.
    #[serde(default)]
    pub ready: u32,
    /// For people: how far it got, or why it failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// What the autoscaler measured and decided.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutoscaleStatus {
    /// The replica count it decided (what runs, instead of `spec.replicas`).
    pub desired_replicas: i32,
    /// Ready replicas whose use was measured last.
    #[serde(default)]
    pub measured_replicas: i32,
    /// Their average CPU use, in percent of the CPU each may use.
    #[serde(
        default,
        rename = "currentCPUUtilizationPercent",
        skip_serializing_if = "Option::is_none"
    )]
    pub current_cpu_utilization_percent: Option<i32>,
    /// Their average memory use, in percent of `resources.memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_memory_utilization_percent: Option<i32>,
    /// When it last changed the count (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<String>,
    /// Why the count is what it is: `ScaledUp`, `ScaledDown`, `WithinTolerance`,
    /// `ScaleDownStabilizing`, `AtMaxReplicas`, `AtMinReplicas`, `MetricsMissing`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// For people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Annotation `nanocl rollout restart` sets: a new revision whose containers are new.
pub const RESTARTED_AT_ANNOTATION: &str = "rollout.nanocl.io/restartedAt";
/// Annotation `nanocl rollout pause` sets (`"true"`): no replica is replaced until resumed.
pub const PAUSED_ANNOTATION: &str = "rollout.nanocl.io/paused";
/// Annotations under this prefix belong to `nanocl rollout`: `apply` keeps the live
/// object's and ignores a file's.
pub const ROLLOUT_ANNOTATION_PREFIX: &str = "rollout.nanocl.io/";
/// Annotation `nanocl build cargo NAME` sets (an RFC 3339 time): look at the build's
/// source again now, and build what is not built yet (a failed build included).
pub const BUILD_REQUESTED_AT_ANNOTATION: &str = "build.nanocl.io/requestedAt";
/// Annotations under this prefix belong to `nanocl build`, as the rollout ones.
pub const BUILD_ANNOTATION_PREFIX: &str = "build.nanocl.io/";

/// Whether an annotation is a command's (`nanocl rollout`, `nanocl build`): `apply` keeps
/// the live object's and ignores a file's, and a change of one is a change of what runs.
pub fn is_command_annotation(key: &str) -> bool {
    key.starts_with(ROLLOUT_ANNOTATION_PREFIX) || key.starts_with(BUILD_ANNOTATION_PREFIX)
}

/// Fills in defaults: replicas 1, pull policy `IfNotPresent`, `hostIP` 127.0.0.1, protocol TCP.
pub fn apply_defaults(cargo: &mut Cargo) {
    let spec = &mut cargo.spec;
    spec.replicas.get_or_insert(1);
    let container = &mut spec.container;
    if container.build.is_none() {
        container
            .image_pull_policy
            .get_or_insert(ImagePullPolicy::IfNotPresent);
    }
    for port in &mut container.ports {
        port.host_ip
            .get_or_insert_with(|| DEFAULT_HOST_IP.to_owned());
        port.protocol.get_or_insert(Protocol::TCP);
    }
}

/// Resolves a relative `build.context`, and a `build.git.url` written `./…` or `../…`,
/// against `base` (the manifest's directory), lexically (`.` and `..` folded; the
/// directory need not exist here).
pub fn resolve_context(cargo: &mut Cargo, base: &std::path::Path) {
    let Some(build) = cargo.spec.container.build.as_mut() else {
        return;
    };
    if let Some(context) = build.context.as_mut() {
        if !context.starts_with('/') && !context.is_empty() {
            *context = join_lexically(base, context);
        }
    }
    // A git URL written `./…` or `../…` is a local repository next to the manifest.
    if let Some(git) = build.git.as_mut() {
        if git.url.starts_with("./")
            || git.url.starts_with("../")
            || git.url == "."
            || git.url == ".."
        {
            git.url = join_lexically(base, &git.url);
        }
    }
}

fn join_lexically(base: &std::path::Path, relative: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let joined = base.join(relative);
    for component in joined.components() {
        match component {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

/// Checks a Cargo, collecting every problem.
pub fn validate(cargo: &Cargo) -> FieldErrors {
    let mut errors = FieldErrors::new();
    cargo
        .metadata
        .validate(&FieldPath::keys("metadata"), true, &mut errors);
    let spec = &cargo.spec;
    let cluster = FieldPath::keys("spec.cluster");
    if spec.cluster.is_empty() {
        errors.push(cluster, "required: the cluster this cargo runs in");
    } else {
        errors.check(&cluster, validation::dns1123_label(&spec.cluster));
    }
    let replicas = spec.replicas.unwrap_or(1);
    if !(0..=MAX_REPLICAS).contains(&replicas) {
        errors.push(
            FieldPath::keys("spec.replicas"),
            format!("must be between 0 and {MAX_REPLICAS}, got {replicas}"),
        );
    }
    let networks = FieldPath::keys("spec.networks");
    for (i, network) in spec.networks.iter().enumerate() {
        errors.check(&networks.index(i), validation::dns1123_label(network));
        if spec.networks[..i].contains(network) {
            errors.push(
                networks.index(i),
                format!("duplicate network {}", quoted(network)),
            );
        }
    }
    validate_container(
        &spec.container,
        replicas,
        &FieldPath::keys("spec.container"),
        &mut errors,
    );
    if let Some(update) = &spec.update {
        validate_update(spec, update, &mut errors);
    }
    if let Some(autoscale) = &spec.autoscale {
        validate_autoscale(spec, autoscale, &mut errors);
    }
    if let Some(limit) = spec.revision_history_limit {
        if limit > 100 {
            errors.push(
                FieldPath::keys("spec.revisionHistoryLimit"),
                format!("must be between 0 and 100, got {limit}"),
            );
        }
    }
    if let Some(placement) = &spec.placement {
        let path = FieldPath::keys("spec.placement");
        let selector = path.key("nodeSelector");
        for (key, value) in &placement.node_selector {
            errors.check(&selector.key(key.clone()), validation::qualified_key(key));
            errors.check(&selector.key(key.clone()), validation::label_value(value));
        }
        if let Some(max) = placement.max_per_node {
            if !(1..=MAX_REPLICAS).contains(&max) {
                errors.push(
                    path.key("maxPerNode"),
                    format!("must be between 1 and {MAX_REPLICAS}, got {max}"),
                );
            }
        }
    }
    errors
}

fn validate_autoscale(spec: &CargoSpec, a: &AutoscaleSpec, errors: &mut FieldErrors) {
    let path = FieldPath::keys("spec.autoscale");
    let min = a.min_replicas.unwrap_or(1);
    if !(1..=MAX_REPLICAS).contains(&min) {
        errors.push(
            path.key("minReplicas"),
            format!("must be between 1 and {MAX_REPLICAS}, got {min}"),
        );
    }
    if a.max_replicas == 0 {
        errors.push(
            path.key("maxReplicas"),
            "required: the most replicas the autoscaler may run",
        );
    } else if !(1..=MAX_REPLICAS).contains(&a.max_replicas) {
        errors.push(
            path.key("maxReplicas"),
            format!(
                "must be between 1 and {MAX_REPLICAS}, got {}",
                a.max_replicas
            ),
        );
    } else if a.max_replicas < min {
        errors.push(
            path.key("maxReplicas"),
            format!(
                "must be at least minReplicas ({min}), got {}",
                a.max_replicas
            ),
        );
    }
    for (field, value) in [
        (
            "targetCPUUtilizationPercent",
            a.target_cpu_utilization_percent,
        ),
        (
            "targetMemoryUtilizationPercent",
            a.target_memory_utilization_percent,
        ),
    ] {
        if let Some(v) = value {
            if !(1..=1000).contains(&v) {
                errors.push(
                    path.key(field),
                    format!("must be between 1 and 1000, got {v}"),
                );
            }
        }
    }
    if a.target_cpu_utilization_percent.is_none() && a.target_memory_utilization_percent.is_none() {
        errors.push(
            path.clone(),
            "needs a target: targetCPUUtilizationPercent, targetMemoryUtilizationPercent or both",
        );
    }
    let memory_limit = spec
        .container
        .resources
        .as_ref()
        .and_then(|r| r.memory.as_ref())
        .is_some();
    if a.target_memory_utilization_percent.is_some() && !memory_limit {
        errors.push(
            path.key("targetMemoryUtilizationPercent"),
            "is a percentage of spec.container.resources.memory, which is not set",
        );
    }
    if let Some(window) = a.scale_down_stabilization_seconds {
        if window > 3600 {
            errors.push(
                path.key("scaleDownStabilizationSeconds"),
                format!("must be between 0 and 3600, got {window}"),
            );
        }
    }
    if spec.fixed_host_port() && a.max_replicas > 1 {
        errors.push(
            path.key("maxReplicas"),
            "a fixed hostPort can serve only one replica: remove hostPort to autoscale",
        );
    }
}

fn validate_update(spec: &CargoSpec, update: &UpdateSpec, errors: &mut FieldErrors) {
    let path = FieldPath::keys("spec.update");
    for (field, value) in [
        ("maxSurge", &update.max_surge),
        ("maxUnavailable", &update.max_unavailable),
    ] {
        let Some(value) = value else { continue };
        let p = path.key(field);
        match value {
            IntOrPercent::Int(n) if *n < 0 || *n > MAX_REPLICAS => {
                errors.push(p, format!("must be between 0 and {MAX_REPLICAS}, got {n}"));
            }
            IntOrPercent::Percent(s) if parse_percent(s).is_none() => errors.push(
                p,
                format!(
                    "invalid {}: a count, or a percentage from \"0%\" to \"100%\"",
                    quoted(s)
                ),
            ),
            _ => {}
        }
    }
    let zero = |v: &IntOrPercent| match v {
        IntOrPercent::Int(n) => *n == 0,
        IntOrPercent::Percent(s) => parse_percent(s) == Some(0),
    };
    // Unset, maxSurge is 1 and maxUnavailable 0.
    if update.max_surge.as_ref().is_some_and(zero)
        && update.max_unavailable.as_ref().is_none_or(zero)
    {
        errors.push(
            path.key("maxSurge"),
            "maxSurge and maxUnavailable cannot both be 0: an update could never replace a replica",
        );
    }
    let recreate = update.strategy == Some(UpdateStrategy::Recreate);
    if recreate {
        for (field, set) in [
            ("maxSurge", update.max_surge.is_some()),
            ("maxUnavailable", update.max_unavailable.is_some()),
        ] {
            if set {
                errors.push(
                    path.key(field),
                    "applies only to strategy RollingUpdate (Recreate replaces every replica at once)",
                );
            }
        }
    }
    if update.strategy == Some(UpdateStrategy::RollingUpdate) && spec.fixed_host_port() {
        errors.push(
            path.key("strategy"),
            "a fixed hostPort cannot serve the old and the new replica side by side: use strategy Recreate, or remove hostPort and let Docker pick a port",
        );
    }
    if let Some(min_ready) = update.min_ready_seconds {
        if min_ready > 86_400 {
            errors.push(
                path.key("minReadySeconds"),
                format!("must be between 0 and 86400, got {min_ready}"),
            );
        }
        match update.progress_deadline_seconds {
            Some(deadline) if deadline <= min_ready => errors.push(
                path.key("progressDeadlineSeconds"),
                format!("must be greater than minReadySeconds ({min_ready}), got {deadline}"),
            ),
            None if DEFAULT_PROGRESS_DEADLINE_SECONDS <= min_ready => errors.push(
                path.key("minReadySeconds"),
                format!(
                    "must be less than progressDeadlineSeconds (default {DEFAULT_PROGRESS_DEADLINE_SECONDS}), got {min_ready}: every update would fail its deadline"
                ),
            ),
            _ => {}
        }
    }
    if let Some(deadline) = update.progress_deadline_seconds {
        if !(1..=86_400).contains(&deadline) {
            errors.push(
                path.key("progressDeadlineSeconds"),
                format!("must be between 1 and 86400, got {deadline}"),
            );
        }
    }
}

fn validate_container(
    c: &ContainerSpec,
    replicas: i32,
    path: &FieldPath,
    errors: &mut FieldErrors,
) {
    let image = path.key("image");
    match &c.build {
        Some(build) => {
            if !c.image.is_empty() {
                errors.push(
                    image,
                    "give either image or build, not both: a built image is named by nanocl",
                );
            }
            if c.image_pull_policy.is_some() {
                errors.push(
                    path.key("imagePullPolicy"),
                    "not with build: a built image is never pulled",
                );
            }
            validate_build(build, &path.key("build"), errors);
        }
        None if c.image.is_empty() => {
            errors.push(
                image,
                "required: the image every replica runs (or build, to build it)",
            );
        }
        None => errors.check(&image, reference::image_reference(&c.image)),
    }
    for (field, list) in [("command", &c.command), ("args", &c.args)] {
        for (i, arg) in list.iter().enumerate() {
            if arg.contains('\0') {
                errors.push(path.key(field).index(i), "must not contain a NUL character");
            }
        }
    }
    let env = path.key("env");
    for (name, value) in &c.env {
        let p = env.key(name.clone());
        errors.check(&p, validation::env_name(name));
        match value {
            EnvValue::Text(value) => {
                if value.contains('\0') {
                    errors.push(p.clone(), "must not contain a NUL character");
                }
                if let Err(message) = template::parse(value) {
                    errors.push(p, message);
                }
            }
            EnvValue::From(from) => {
                let p = p.key("valueFrom");
                errors.check(
                    &p.key("secret"),
                    validation::dns1123_subdomain(&from.value_from.secret),
                );
                errors.check(
                    &p.key("key"),
                    crate::secret::v1::key_name(&from.value_from.key),
                );
            }
        }
    }
    let files = path.key("files");
    for (i, file) in c.files.iter().enumerate() {
        let p = files.index(i);
        errors.check(
            &p.key("secret"),
            validation::dns1123_subdomain(&file.secret),
        );
        errors.check(&p.key("path"), validation::absolute_path(&file.path));
        if let Some(key) = &file.key {
            errors.check(&p.key("key"), crate::secret::v1::key_name(key));
        }
        if c.files[..i].iter().any(|f| f.path == file.path) {
            errors.push(
                p.key("path"),
                format!("duplicate path {}", quoted(&file.path)),
            );
        }
    }
    validate_ports(&c.ports, replicas, &path.key("ports"), errors);
    validate_volumes(&c.volumes, &path.key("volumes"), errors);
    if let Some(dir) = &c.working_dir {
        errors.check(&path.key("workingDir"), validation::absolute_path(dir));
    }
    if let Some(user) = &c.user {
        let ok = !user.is_empty()
            && user.split(':').count() <= 2
            && user.split(':').all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            });
        if !ok {
            errors.push(
                path.key("user"),
                format!(
                    "invalid user {}: expected USER or USER:GROUP, names or numeric ids",
                    quoted(user)
                ),
            );
        }
    }
    let labels = path.key("labels");
    for (key, value) in &c.labels {
        let p = labels.key(key.clone());
        if key.starts_with("io.nanocl.") {
            errors.push(p, "keys under \"io.nanocl.\" are reserved for nanocl");
        } else if key.is_empty() || key.chars().any(|ch| ch.is_control() || ch.is_whitespace()) {
            errors.push(p, format!("invalid label key {}", quoted(key)));
        } else if value.contains('\0') {
            errors.push(p, "must not contain a NUL character");
        }
    }
    if let Some(resources) = &c.resources {
        let p = path.key("resources");
        if let Some(cpus) = resources.cpus {
            errors.check(&p.key("cpus"), quantity::cpus(cpus));
        }
        if let Some(memory) = &resources.memory {
            errors.check(&p.key("memory"), quantity::memory_limit(memory));
        }
    }
    for (i, cap) in c.cap_add.iter().enumerate() {
        let name = capability_name(cap);
        if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_') {
            errors.push(
                path.key("capAdd").index(i),
                format!("must be a Linux capability such as NET_ADMIN, got {cap:?}"),
            );
        }
    }
    for (i, device) in c.devices.iter().enumerate() {
        let parts: Vec<&str> = device.split(':').collect();
        let bad = parts.len() > 3
            || !parts[0].starts_with('/')
            || parts.get(1).is_some_and(|t| !t.starts_with('/'))
            || parts
                .get(2)
                .is_some_and(|m| m.is_empty() || !m.chars().all(|ch| "rwm".contains(ch)));
        if bad {
            errors.push(
                path.key("devices").index(i),
                format!("must be HOST[:CONTAINER[:PERMISSIONS]] with absolute paths and permissions of r, w, m (e.g. /dev/fuse), got {device:?}"),
            );
        }
    }
    if let Some(hc) = &c.healthcheck {
        let p = path.key("healthcheck");
        if hc.command.is_empty() {
            errors.push(p.key("command"), "required: the command that checks health");
        }
        for (field, value) in [
            ("interval", &hc.interval),
            ("timeout", &hc.timeout),
            ("startPeriod", &hc.start_period),
        ] {
            if let Some(value) = value {
                errors.check(
                    &p.key(field),
                    quantity::parse_duration_ms(value).map(|_| ()),
                );
            }
        }
        if let Some(retries) = hc.retries {
            if !(1..=100).contains(&retries) {
                errors.push(
                    p.key("retries"),
                    format!("must be between 1 and 100, got {retries}"),
                );
            }
        }
    }
}

fn validate_build(b: &BuildSpec, path: &FieldPath, errors: &mut FieldErrors) {
    match (&b.git, &b.context) {
        (Some(_), Some(_)) => {
            errors.push(path.key("context"), "give either git or context, not both")
        }
        (None, None) => errors.push(
            path.clone(),
            "required: git (a repository to build) or context (a directory to build)",
        ),
        _ => {}
    }
    if let Some(git) = &b.git {
        let p = path.key("git");
        if git.url.is_empty() {
            errors.push(p.key("url"), "required: the repository to build");
        } else {
            errors.check(&p.key("url"), git_url(&git.url));
        }
        if let Some(reference) = &git.reference {
            errors.check(&p.key("ref"), git_ref(reference));
        }
        if let Some(dir) = &git.path {
            errors.check(&p.key("path"), relative_path(dir));
        }
        if let Some(secret) = &git.secret {
            errors.check(&p.key("secret"), validation::dns1123_subdomain(secret));
        }
        if let Some(poll) = &git.poll {
            match quantity::parse_duration_ms(poll) {
                Ok(ms) if ms < MIN_POLL_MS => errors.push(
                    p.key("poll"),
                    format!("must be at least 1s, got {}", quoted(poll)),
                ),
                Ok(_) => {}
                Err(e) => errors.push(p.key("poll"), e),
            }
        }
    }
    if let Some(dir) = &b.context {
        errors.check(&path.key("context"), validation::absolute_path(dir).map_err(|_| {
            format!(
                "must be an absolute path on the nanocld host, got {} (nanocl apply resolves a relative one against the manifest's directory)",
                quoted(dir)
            )
        }));
    }
    if let Some(file) = &b.dockerfile {
        errors.check(&path.key("dockerfile"), relative_path(file));
    }
    let args = path.key("args");
    for (name, value) in &b.args {
        let p = args.key(name.clone());
        errors.check(&p, validation::env_name(name));
        if let Err(message) = template::parse(value) {
            errors.push(p, message);
        }
    }
    if let Some(target) = &b.target {
        let ok = !target.is_empty()
            && target
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
        if !ok {
            errors.push(
                path.key("target"),
                format!("invalid stage name {}", quoted(target)),
            );
        }
    }
    if let Some(timeout) = &b.timeout {
        match quantity::parse_duration_ms(timeout) {
            Ok(0) => errors.push(path.key("timeout"), "must be more than 0"),
            Ok(_) => {}
            Err(e) => errors.push(path.key("timeout"), e),
        }
    }
}

/// A git URL nanocld can hand to `git` safely: a known scheme, `user@host:path`, or an
/// absolute local path (never something `git` would read as an option).
fn git_url(url: &str) -> Result<(), String> {
    validation::no_control_chars(url)?;
    if url.starts_with('-') || url.chars().any(char::is_whitespace) {
        return Err(format!("invalid git URL {}", quoted(url)));
    }
    let schemes = ["https://", "http://", "ssh://", "git://", "file://"];
    if schemes.iter().any(|s| url.starts_with(s)) {
        let rest = url.split_once("://").map_or("", |(_, r)| r);
        if rest.is_empty() || (rest == "/" && url.starts_with("file://")) {
            return Err(format!(
                "invalid git URL {}: nothing after the scheme",
                quoted(url)
            ));
        }
        return Ok(());
    }
    if url.starts_with('/') {
        return Ok(());
    }
    if url.starts_with('.') {
        return Err(format!(
            "a relative repository path {} needs the manifest's directory: nanocl apply -f FILE resolves it, stdin and the API cannot",
            quoted(url)
        ));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return Err(format!(
            "unsupported git URL scheme {}: use https, http, ssh, git or file",
            quoted(scheme)
        ));
    }
    // scp-like `[user@]host:path`.
    if let Some((host, path)) = url.split_once(':') {
        if !host.is_empty() && !path.is_empty() && !host.contains('/') {
            return Ok(());
        }
    }
    Err(format!(
        "invalid git URL {}: expected https://, http://, ssh://, git://, file://, user@host:path or an absolute path",
        quoted(url)
    ))
}

/// A branch, tag or commit as git's check-ref-format allows (never an option).
fn git_ref(reference: &str) -> Result<(), String> {
    let bad = reference.is_empty()
        || reference.starts_with('-')
        || reference.starts_with('/')
        || reference.ends_with('/')
        || reference.ends_with(".lock")
        || reference.ends_with('.')
        || reference.contains("..")
        || reference.contains("@{")
        || reference.contains("//")
        || reference
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c));
    if bad {
        Err(format!("invalid git ref {}", quoted(reference)))
    } else {
        Ok(())
    }
}

/// A path relative to a directory that stays inside it.
fn relative_path(path: &str) -> Result<(), String> {
    validation::no_control_chars(path)?;
    if path.is_empty() {
        return Err("must not be empty".into());
    }
    if path.starts_with('/') {
        return Err(format!(
            "must be relative (to the repository or context), got {}",
            quoted(path)
        ));
    }
    if path.split('/').any(|part| part == "..") {
        return Err(format!(
            "must stay inside the repository or context (no \"..\"), got {}",
            quoted(path)
        ));
    }
    Ok(())
}

fn validate_ports(ports: &[PortSpec], replicas: i32, path: &FieldPath, errors: &mut FieldErrors) {
    let mut container_ports: HashMap<(i32, Protocol), usize> = HashMap::new();
    let mut host_ports: HashMap<(String, i32, Protocol), usize> = HashMap::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.index(i);
        let protocol = port.protocol.unwrap_or(Protocol::TCP);
        if !(1..=65535).contains(&port.container_port) {
            errors.push(
                p.key("containerPort"),
                format!("must be between 1 and 65535, got {}", port.container_port),
            );
        } else if let Some(first) = container_ports.insert((port.container_port, protocol), i) {
            errors.push(
                p.key("containerPort"),
                format!(
                    "duplicate port {}/{}: already listed at {}",
                    port.container_port,
                    protocol.as_docker(),
                    path.index(first)
                ),
            );
        }
        if let Some(ip) = &port.host_ip {
            errors.check(&p.key("hostIP"), validation::ip_address(ip));
        }
        if let Some(host_port) = port.host_port {
            if !(1..=65535).contains(&host_port) {
                errors.push(
                    p.key("hostPort"),
                    format!("must be between 1 and 65535, got {host_port}"),
                );
                continue;
            }
            if replicas > 1 {
                errors.push(
                    p.key("hostPort"),
                    format!(
                        "a fixed host port can serve only one replica, but replicas is {replicas}: put the replicas behind a ProxyRule listener (kind: ProxyRule, one port for all of them), remove hostPort to let Docker pick a port per replica, or set replicas to 1"
                    ),
                );
            }
            let ip = port
                .host_ip
                .clone()
                .unwrap_or_else(|| DEFAULT_HOST_IP.to_owned());
            if let Some(first) = host_ports.insert((ip.clone(), host_port, protocol), i) {
                errors.push(
                    p.key("hostPort"),
                    format!(
                        "duplicate host port {ip}:{host_port}/{}: already used at {}",
                        protocol.as_docker(),
                        path.index(first)
                    ),
                );
            }
        }
    }
}

fn validate_volumes(volumes: &[VolumeMount], path: &FieldPath, errors: &mut FieldErrors) {
    let mut targets: HashMap<&str, usize> = HashMap::new();
    for (i, volume) in volumes.iter().enumerate() {
        let p = path.index(i);
        let source = p.key("source");
        if volume.source.is_empty() {
            errors.push(source, "required: an absolute host path or a volume name");
        } else if volume.source.starts_with('/') {
            errors.check(&source, validation::absolute_path(&volume.source));
        } else {
            let ok = volume.source.as_bytes()[0].is_ascii_alphanumeric()
                && volume
                    .source
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
            if !ok {
                errors.push(
                    source,
                    format!(
                        "invalid source {}: an absolute host path, or a volume name of letters, digits, '_', '.' and '-'",
                        quoted(&volume.source)
                    ),
                );
            }
        }
        let target = p.key("target");
        if volume.target.is_empty() {
            errors.push(target, "required: the absolute path inside the container");
        } else if let Err(message) = validation::absolute_path(&volume.target) {
            errors.push(target, message);
        } else if volume.target == "/" {
            errors.push(target, "cannot mount over the container's root \"/\"");
        } else if let Some(first) = targets.insert(volume.target.as_str(), i) {
            errors.push(
                target,
                format!(
                    "duplicate target {}: already mounted at {}",
                    quoted(&volume.target),
                    path.index(first)
                ),
            );
        }
    }
}
