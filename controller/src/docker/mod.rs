//! The Docker adapter: what the controllers need from Docker, behind one trait, with the real
//! engine (bollard) and an in-memory fake that records calls and injects failures. Both pass
//! one conformance suite (`conformance.rs`).

pub mod conformance;
pub mod engine;
pub mod fake;

use std::collections::BTreeMap;
use std::future::Future;

use futures::stream::BoxStream;

pub use self::engine::{cgroup_stats, Attached, Engine, ExecOutput};
pub use self::fake::FakeDocker;

/// A published port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortBinding {
    /// Port inside the container.
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// Host address.
    pub host_ip: String,
    /// Host port; `None` lets Docker choose.
    pub host_port: Option<u16>,
}

/// A container health check, in Docker's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Healthcheck {
    /// Exec-form command.
    pub command: Vec<String>,
    /// Nanoseconds between checks.
    pub interval_ns: Option<i64>,
    /// Nanoseconds a check may take.
    pub timeout_ns: Option<i64>,
    /// Failures before unhealthy.
    pub retries: Option<i64>,
    /// Nanoseconds of grace after start.
    pub start_period_ns: Option<i64>,
}

/// Everything needed to create one container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The container's name.
    pub name: String,
    /// The image reference.
    pub image: String,
    /// Entrypoint override.
    pub entrypoint: Vec<String>,
    /// Command (arguments) override.
    pub cmd: Vec<String>,
    /// `KEY=VALUE` entries.
    pub env: Vec<String>,
    /// Docker labels.
    pub labels: BTreeMap<String, String>,
    /// Published ports.
    pub ports: Vec<PortBinding>,
    /// `SOURCE:TARGET[:ro]` mounts.
    pub binds: Vec<String>,
    /// Networks to attach, by name: the first at creation, the others right after.
    pub networks: Vec<String>,
    /// DNS aliases on every network (e.g. the cargo's name).
    pub aliases: Vec<String>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// User.
    pub user: Option<String>,
    /// CPU limit in billionths of a CPU.
    pub nano_cpus: Option<i64>,
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// Health check.
    pub healthcheck: Option<Healthcheck>,
    /// Docker's `--privileged`.
    pub privileged: bool,
    /// Capabilities added to Docker's default set.
    pub cap_add: Vec<String>,
    /// `HOST[:CONTAINER[:PERMISSIONS]]` device mappings.
    pub devices: Vec<String>,
    /// `host` to share the host's pid namespace.
    pub pid_mode: Option<String>,
    /// `host` to share the host's ipc namespace.
    pub ipc_mode: Option<String>,
}

/// The lifecycle state of a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Restarting (a Docker restart policy; nanocl sets none).
    Restarting,
    /// Stopped or died.
    Exited,
    /// Dead (failed removal).
    Dead,
    /// Being removed.
    Removing,
}

impl State {
    /// From Docker's word for it.
    pub fn parse(state: &str) -> State {
        match state {
            "created" => State::Created,
            "running" => State::Running,
            "paused" => State::Paused,
            "restarting" => State::Restarting,
            "dead" => State::Dead,
            "removing" => State::Removing,
            _ => State::Exited,
        }
    }
}

/// What is known of one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    /// Its id.
    pub id: String,
    /// Its name, without the leading `/`.
    pub name: String,
    /// The image it was created from, as given.
    pub image: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its state.
    pub state: State,
    /// Exit code of the last run, when it has stopped.
    pub exit_code: Option<i64>,
    /// Whether the last run was killed for using too much memory (inspect only).
    pub oom_killed: bool,
    /// `starting`, `healthy` or `unhealthy`, when it has a health check (inspect only).
    pub health: Option<String>,
    /// When it last started, while it runs (inspect only).
    pub started_at: Option<std::time::SystemTime>,
    /// Why Docker could not start it the last time, as Docker recorded it (inspect only).
    pub start_error: Option<StartError>,
    /// The networks it is connected to, by name, with its IPv4 address on each (empty
    /// while it has none: not running); `None`: not known.
    pub networks: Option<BTreeMap<String, String>>,
    /// The id of the image it runs (`sha256:…`; `None`: not known).
    pub image_id: Option<String>,
}

/// Why Docker could not start a container, as its inspect records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartError {
    /// A host port it publishes is held by something else (Docker's message names it).
    PortInUse(String),
    /// Anything else (a missing mount source, a bad entrypoint…): Docker's message.
    Failed(String),
}

/// Everything needed to create one network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkSpec {
    /// The network's name.
    pub name: String,
    /// Driver, e.g. `bridge`.
    pub driver: String,
    /// No route outside the network.
    pub internal: bool,
    /// Subnet in CIDR notation.
    pub subnet: Option<String>,
    /// Docker labels.
    pub labels: BTreeMap<String, String>,
}

/// What is known of one network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its IPv4/IPv6 subnets (IPAM config), CIDR notation.
    pub subnets: Vec<String>,
}

/// Something that happened in Docker, as a trigger (not a log: events can be missed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `container` or `network`.
    pub kind: String,
    /// e.g. `start`, `die`, `destroy`, `create`.
    pub action: String,
    /// The object's id.
    pub id: String,
    /// The object's labels (containers) or attributes.
    pub labels: BTreeMap<String, String>,
}

/// Why a Docker call failed. The adapter maps Docker's answers (status codes, bollard's error
/// variants) to these once; nothing above it reads an error's text.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The container, network or image does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// A container's image is not on this host.
    #[error("image {image} is not on this host")]
    ImageMissing {
        /// The image reference.
        image: String,
    },
    /// A host port the container publishes is held by something else.
    #[error("starting container {name} failed: a host port is already in use: {message}")]
    PortAllocated {
        /// The container.
        name: String,
        /// Docker's message (which port, which address).
        message: String,
    },
    /// The network still has containers attached.
    #[error("network {name} still has containers attached")]
    NetworkInUse {
        /// The network.
        name: String,
    },
    /// Docker has no address range left for a new network (its default pools hold ~31).
    #[error("no address pool left for network {name}: {message}")]
    AddressPoolsExhausted {
        /// The network.
        name: String,
        /// Docker's message.
        message: String,
    },
    /// A container or network of that name exists already.
    #[error("the name {name:?} is already in use")]
    NameConflict {
        /// The name.
        name: String,
    },
    /// Docker refused to start the container (a port in use, a missing mount source...).
    #[error("starting container {name} failed: {message}")]
    StartFailed {
        /// The container.
        name: String,
        /// Docker's message.
        message: String,
    },
    /// A build failed (a step of the Dockerfile, a missing file in the context...).
    #[error("the build failed: {message}")]
    BuildFailed {
        /// Docker's message (the failing step).
        message: String,
    },
    /// The image could not be pulled.
    #[error("pulling image {image} failed: {message}")]
    PullFailed {
        /// The image.
        image: String,
        /// Docker's message.
        message: String,
    },
    /// Any other failed request.
    #[error("docker {op} failed: {message}")]
    RequestFailed {
        /// The operation.
        op: &'static str,
        /// Docker's HTTP status code (0 when the fake injected the failure).
        status: u16,
        /// Docker's message.
        message: String,
    },
    /// dockerd is not reachable.
    #[error("dockerd is not reachable: {message}")]
    Unreachable {
        /// Why.
        message: String,
    },
}

impl DockerError {
    /// Whether retrying later may help.
    pub fn is_transient(&self) -> bool {
        !matches!(self, DockerError::NameConflict { .. })
    }
}

/// The host as Docker sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostInfo {
    /// CPUs.
    pub cpus: u32,
    /// Memory, in bytes.
    pub memory_bytes: u64,
    /// The engine's version (`20.10.24+dfsg1`).
    pub version: String,
}

/// One sample of a container's resource use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// CPU time used since it started, in nanoseconds.
    pub cpu_total_ns: u64,
    /// Memory in use, page cache left out (as `docker stats` shows it).
    pub memory_bytes: u64,
}

/// An image to build.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildRequest {
    /// The name to tag it with.
    pub tag: String,
    /// The Dockerfile's path inside the context.
    pub dockerfile: String,
    /// Build arguments.
    pub args: BTreeMap<String, String>,
    /// The stage to build.
    pub target: Option<String>,
    /// Labels of the image.
    pub labels: BTreeMap<String, String>,
    /// A tar file of the build context (read, never changed).
    pub context: std::path::PathBuf,
}

/// What a build reports as it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildEvent {
    /// Text the build printed (one or more lines).
    Output(String),
    /// The image is built and tagged.
    Built {
        /// Its id (`sha256:…`).
        id: String,
    },
}

/// An image, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Its id.
    pub id: String,
    /// Its `name:tag`s.
    pub tags: Vec<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// When it was created (seconds since the epoch).
    pub created: i64,
}

/// Filters objects by labels: `key=value` or just `key`.
pub type LabelFilter = Vec<String>;

/// What the controllers need from Docker.
pub trait Docker: Clone + Send + Sync + 'static {
    /// Every container (running or not) matching all the label filters.
    fn list_containers(
        &self,
        labels: &[String],
    ) -> impl Future<Output = Result<Vec<Container>, DockerError>> + Send;
    /// One container by name or id.
    fn inspect_container(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Container>, DockerError>> + Send;
    /// Creates a container (not started) and attaches its networks; returns its id.
    fn create_container(
        &self,
        spec: &ContainerSpec,
    ) -> impl Future<Output = Result<String, DockerError>> + Send;
    /// Starts a container.
    fn start_container(&self, id: &str) -> impl Future<Output = Result<(), DockerError>> + Send;
    /// Stops a container, waiting up to `timeout_secs` before killing it.
    fn stop_container(
        &self,
        id: &str,
        timeout_secs: i32,
    ) -> impl Future<Output = Result<(), DockerError>> + Send;
    /// Removes a container, stopping it if needed; a missing one is fine.
    fn remove_container(&self, id: &str) -> impl Future<Output = Result<(), DockerError>> + Send;
    /// Every network matching all the label filters.
    fn list_networks(
        &self,
        labels: &[String],
    ) -> impl Future<Output = Result<Vec<Network>, DockerError>> + Send;
    /// Creates a network; returns its id.
    fn create_network(
        &self,
        spec: &NetworkSpec,
    ) -> impl Future<Output = Result<String, DockerError>> + Send;
    /// Removes a network; a missing one is fine.
    fn remove_network(&self, id: &str) -> impl Future<Output = Result<(), DockerError>> + Send;
    /// Whether the image is on the host.
    fn image_present(&self, image: &str) -> impl Future<Output = Result<bool, DockerError>> + Send;
    /// Pulls an image.
    fn pull_image(&self, image: &str) -> impl Future<Output = Result<(), DockerError>> + Send;
    /// The id of an image, `None` when it is not on the host.
    fn image_id(
        &self,
        image: &str,
    ) -> impl Future<Output = Result<Option<String>, DockerError>> + Send;
    /// Builds an image from a tar of its context: its output as it comes, then `Built`, or
    /// an error. Dropping the stream cancels the build.
    fn build_image(
        &self,
        request: BuildRequest,
    ) -> BoxStream<'static, Result<BuildEvent, DockerError>>;
    /// Every image matching all the label filters.
    fn list_images(
        &self,
        labels: &[String],
    ) -> impl Future<Output = Result<Vec<Image>, DockerError>> + Send;
    /// Removes an image by name or id (not forced: an image a container uses stays); a
    /// missing one is fine.
    fn remove_image(&self, image: &str) -> impl Future<Output = Result<(), DockerError>> + Send;
    /// An image with its tags as a tar stream (`docker save`), for another engine's
    /// `import_image`.
    fn export_image(&self, image: &str) -> BoxStream<'static, Result<bytes::Bytes, DockerError>>;
    /// Loads the images of a tar stream made by `export_image` (`docker load`).
    fn import_image(
        &self,
        tar: BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
    ) -> impl Future<Output = Result<(), DockerError>> + Send;
    /// CPUs, memory and the engine's version.
    fn host_info(&self) -> impl Future<Output = Result<HostInfo, DockerError>> + Send;
    /// One sample of a running container's resource use, at once (Docker's one-shot stats:
    /// no long-lived stream per container; the CPU rate is the difference of two samples).
    fn stats(&self, id: &str) -> impl Future<Output = Result<Stats, DockerError>> + Send;
    /// Connects a container to a network, with DNS aliases.
    fn connect_network(
        &self,
        container: &str,
        network: &str,
        aliases: &[String],
    ) -> impl Future<Output = Result<(), DockerError>> + Send;
    /// The events Docker's label filters do not reach, from now on: every network
    /// `disconnect` (`Event::labels["container"]` is the container) and every image `tag`,
    /// `pull`, `load` and `import` (`Event::labels["name"]` is the image's name).
    fn unlabelled_events(&self) -> BoxStream<'static, Result<Event, DockerError>>;
    /// Container and network events of objects matching the label filters, from now on.
    fn events(&self, labels: &[String]) -> BoxStream<'static, Result<Event, DockerError>>;
    /// A container's output, stdout and stderr, as chunks of text: what `options` select,
    /// then, with `follow`, whatever comes until the container stops.
    fn logs(
        &self,
        id: &str,
        options: &LogOptions,
    ) -> BoxStream<'static, Result<String, DockerError>>;
}

/// Which of a container's output `Docker::logs` reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep reading until the container stops.
    pub follow: bool,
    /// The last N lines only (all when `None`).
    pub tail: Option<u32>,
    /// Only lines written at or after this Unix time (seconds).
    pub since: Option<i64>,
    /// Each line starts with its RFC 3339 time (Docker's, nanoseconds).
    pub timestamps: bool,
}
