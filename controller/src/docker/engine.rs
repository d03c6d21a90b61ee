//! The real Docker engine, over bollard (API version negotiated: Debian's 20.10 speaks 1.41).

use std::collections::{BTreeMap, HashMap};

use ::bollard::errors::Error as BollardError;
use ::bollard::models::{
    ContainerCreateBody, DeviceMapping, EndpointSettings, HealthConfig, HostConfig, Ipam,
    IpamConfig, NetworkConnectRequest, NetworkCreateRequest, NetworkingConfig,
    PortBinding as BollardPort,
};
use ::bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, EventsOptions, InspectContainerOptions,
    ListContainersOptions, ListNetworksOptions, LogsOptions, RemoveContainerOptions, StatsOptions,
    StopContainerOptions,
};
use futures::stream::BoxStream;
use futures::StreamExt;

use super::{
    BuildEvent, BuildRequest, Container, ContainerSpec, Docker, DockerError, Event, Image, Network,
    NetworkSpec, State,
};

/// The Docker engine at `DOCKER_HOST` (default: the local socket).
#[derive(Clone, Debug)]
pub struct Engine {
    docker: ::bollard::Docker,
}

/// Each network's name and the container's IPv4 address on it.
fn addresses(networks: HashMap<String, EndpointSettings>) -> BTreeMap<String, String> {
    networks
        .into_iter()
        .map(|(name, e)| (name, e.ip_address.unwrap_or_default()))
        .collect()
}

/// A network endpoint with DNS aliases.
fn endpoint(aliases: &[String]) -> EndpointSettings {
    EndpointSettings {
        aliases: (!aliases.is_empty()).then(|| aliases.to_vec()),
        ..Default::default()
    }
}

fn failed(op: &'static str) -> impl Fn(BollardError) -> DockerError {
    move |e| match e {
        BollardError::DockerResponseServerError {
            status_code: 404,
            message,
        } => DockerError::NotFound { what: message },
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => DockerError::RequestFailed {
            op,
            status: status_code,
            message,
        },
        other => DockerError::Unreachable {
            message: format!("{op}: {other}"),
        },
    }
}

/// Docker answers a start whose host port is taken with a plain 500, and a network create
/// with no address range left with a 404 (libnetwork files it under "not found"); neither
/// has a code or field of its own. These two sentences of Docker's are the only text read,
/// here and nowhere else, to turn them into the variants the controllers match on.
mod docker_text {
    /// A 500 on start meaning "a host port is already taken".
    pub fn port_taken(message: &str) -> bool {
        message.contains("port is already allocated") || message.contains("address already in use")
    }

    /// A 404 on network create meaning "no address pool left".
    pub fn pools_exhausted(message: &str) -> bool {
        message.contains("non-overlapping IPv4 address pool")
            || message.contains("non-overlapping IPv6 address pool")
    }
}

fn labels_of(map: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    map.unwrap_or_default().into_iter().collect()
}

fn label_filters(labels: &[String]) -> Option<HashMap<String, Vec<String>>> {
    if labels.is_empty() {
        None
    } else {
        Some(HashMap::from([("label".to_owned(), labels.to_vec())]))
    }
}

/// A command started in a container with `Engine::exec`, attached.
pub struct Attached {
    /// Docker's id of the exec, for its exit code and resizes.
    pub id: String,
    /// What the command writes (with a tty, all of it as stdout).
    pub output: BoxStream<'static, Result<ExecOutput, DockerError>>,
    /// The command's standard input.
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attached")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A chunk of an exec'd command's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecOutput {
    /// Standard output (or the terminal, with a tty).
    Stdout(bytes::Bytes),
    /// Standard error.
    Stderr(bytes::Bytes),
}

impl Engine {
    /// Docker's events matching `filters`, as ours (subscribed when first polled).
    fn event_stream(
        &self,
        filters: HashMap<String, Vec<String>>,
    ) -> BoxStream<'static, Result<Event, DockerError>> {
        self.docker
            .events(Some(EventsOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .map(|e| {
                let e = e.map_err(failed("events"))?;
                let actor = e.actor.unwrap_or_default();
                Ok(Event {
                    kind: e.typ.map(|t| t.to_string()).unwrap_or_default(),
                    action: e.action.unwrap_or_default(),
                    id: actor.id.unwrap_or_default(),
                    labels: labels_of(actor.attributes),
                })
            })
            .boxed()
    }

    /// Starts `command` in the running container `container`, attached: `nanocl exec`.
    /// (Not part of the `Docker` trait: only the API server runs it, never a controller.)
    pub async fn exec(
        &self,
        container: &str,
        command: &[String],
        tty: bool,
        stdin: bool,
    ) -> Result<Attached, DockerError> {
        use ::bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
        let created = self
            .docker
            .create_exec(
                container,
                CreateExecOptions {
                    attach_stdin: Some(stdin),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    tty: Some(tty),
                    cmd: Some(command.to_vec()),
                    ..Default::default()
                },
            )
            .await
            .map_err(failed("create exec"))?;
        let started = self
            .docker
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    tty,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(failed("start exec"))?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(DockerError::Unreachable {
                message: "start exec: Docker did not attach".into(),
            });
        };
        let output = output
            .filter_map(|chunk| async move {
                match chunk {
                    Ok(::bollard::container::LogOutput::StdErr { message }) => {
                        Some(Ok(ExecOutput::Stderr(message)))
                    }
                    Ok(
                        ::bollard::container::LogOutput::StdOut { message }
                        | ::bollard::container::LogOutput::Console { message },
                    ) => Some(Ok(ExecOutput::Stdout(message))),
                    Ok(::bollard::container::LogOutput::StdIn { .. }) => None,
                    Err(e) => Some(Err(failed("exec output")(e))),
                }
            })
            .boxed();
        Ok(Attached {
            id: created.id,
            output,
            input,
        })
    }

    /// The exit code of an exec whose output ended (`None` while it still runs).
    pub async fn exec_exit_code(&self, id: &str) -> Result<Option<i64>, DockerError> {
        let inspected = self
            .docker
            .inspect_exec(id)
            .await
            .map_err(failed("inspect exec"))?;
        Ok(if inspected.running == Some(true) {
            None
        } else {
            inspected.exit_code
        })
    }

    /// Tells an exec's terminal its new size.
    pub async fn resize_exec(&self, id: &str, rows: u16, cols: u16) -> Result<(), DockerError> {
        self.docker
            .resize_exec(
                id,
                ::bollard::exec::ResizeExecOptions {
                    height: rows,
                    width: cols,
                },
            )
            .await
            .map_err(failed("resize exec"))
    }

    /// Connects to the local engine and negotiates the API version.
    pub async fn connect() -> Result<Engine, DockerError> {
        Engine::connect_to(None).await
    }

    /// Connects to the Docker engine at `url` (`unix:///PATH`, `tcp://HOST:PORT`), or at
    /// `DOCKER_HOST` (default: the local socket) without one.
    pub async fn connect_to(url: Option<&str>) -> Result<Engine, DockerError> {
        const TIMEOUT: u64 = 120;
        let docker = match url {
            None => ::bollard::Docker::connect_with_local_defaults(),
            Some(url) if url.starts_with("unix://") => {
                ::bollard::Docker::connect_with_unix(url, TIMEOUT, ::bollard::API_DEFAULT_VERSION)
            }
            Some(url) => {
                ::bollard::Docker::connect_with_http(url, TIMEOUT, ::bollard::API_DEFAULT_VERSION)
            }
        }
        .map_err(failed("connect"))?;
        let docker = docker
            .negotiate_version()
            .await
            .map_err(failed("version negotiation"))?;
        Ok(Engine { docker })
    }
}

impl Docker for Engine {
    async fn list_containers(&self, labels: &[String]) -> Result<Vec<Container>, DockerError> {
        let found = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: label_filters(labels),
                ..Default::default()
            }))
            .await
            .map_err(failed("list containers"))?;
        Ok(found
            .into_iter()
            .map(|c| Container {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_owned())
                    .unwrap_or_default(),
                image: c.image.unwrap_or_default(),
                labels: labels_of(c.labels),
                state: State::parse(&c.state.map(|s| s.to_string()).unwrap_or_default()),
                exit_code: None,
                oom_killed: false,
                health: None,
                started_at: None,
                start_error: None,
                networks: c.network_settings.and_then(|n| n.networks).map(addresses),
                image_id: c.image_id.filter(|i| !i.is_empty()),
            })
            .collect())
    }

    async fn inspect_container(&self, name: &str) -> Result<Option<Container>, DockerError> {
        let inspected = match self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(i) => i,
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(None),
            Err(e) => return Err(failed("inspect container")(e)),
        };
        let image_id = inspected.image.clone().filter(|i| !i.is_empty());
        let networks = inspected
            .network_settings
            .and_then(|n| n.networks)
            .map(addresses);
        let state = inspected.state.unwrap_or_default();
        let config = inspected.config.unwrap_or_default();
        let status = state.status.map(|s| s.to_string()).unwrap_or_default();
        let parsed = State::parse(&status);
        Ok(Some(Container {
            id: inspected.id.unwrap_or_default(),
            name: inspected
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned(),
            image: config.image.unwrap_or_default(),
            labels: labels_of(config.labels),
            state: parsed,
            exit_code: (parsed == State::Exited || parsed == State::Dead)
                .then_some(state.exit_code.unwrap_or(0)),
            oom_killed: state.oom_killed.unwrap_or(false),
            health: state
                .health
                .and_then(|h| h.status)
                .map(|s| s.to_string())
                .filter(|s| !s.is_empty() && s != "none"),
            started_at: (parsed == State::Running)
                .then(|| {
                    state
                        .started_at
                        .as_deref()
                        .and_then(|t| humantime::parse_rfc3339(t).ok())
                })
                .flatten(),
            start_error: state
                .error
                .filter(|e| !e.is_empty() && parsed != State::Running)
                .map(|e| {
                    if docker_text::port_taken(&e) {
                        super::StartError::PortInUse(e)
                    } else {
                        super::StartError::Failed(e)
                    }
                }),
            networks,
            image_id,
        }))
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
        let mut port_bindings: HashMap<String, Option<Vec<BollardPort>>> = HashMap::new();
        for p in &spec.ports {
            port_bindings
                .entry(format!("{}/{}", p.container_port, p.protocol))
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(BollardPort {
                    host_ip: Some(p.host_ip.clone()),
                    host_port: Some(p.host_port.map(|h| h.to_string()).unwrap_or_default()),
                });
        }
        let networking_config = spec.networks.first().map(|first| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(first.clone(), endpoint(&spec.aliases))])),
        });
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: (!spec.entrypoint.is_empty()).then(|| spec.entrypoint.clone()),
            cmd: (!spec.cmd.is_empty()).then(|| spec.cmd.clone()),
            env: Some(spec.env.clone()),
            labels: Some(spec.labels.clone().into_iter().collect()),
            exposed_ports: Some(port_bindings.keys().cloned().collect()),
            working_dir: spec.working_dir.clone(),
            user: spec.user.clone(),
            healthcheck: spec.healthcheck.as_ref().map(|h| HealthConfig {
                test: Some([vec!["CMD".to_owned()], h.command.clone()].concat()),
                interval: h.interval_ns,
                timeout: h.timeout_ns,
                retries: h.retries,
                start_period: h.start_period_ns,
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                port_bindings: Some(port_bindings),
                binds: (!spec.binds.is_empty()).then(|| spec.binds.clone()),
                nano_cpus: spec.nano_cpus,
                memory: spec.memory,
                network_mode: spec.networks.first().cloned(),
                privileged: spec.privileged.then_some(true),
                cap_add: (!spec.cap_add.is_empty()).then(|| spec.cap_add.clone()),
                devices: (!spec.devices.is_empty()).then(|| {
                    spec.devices
                        .iter()
                        .map(|d| {
                            let mut parts = d.splitn(3, ':');
                            let host = parts.next().unwrap_or_default().to_owned();
                            let inside = parts.next().map_or_else(|| host.clone(), str::to_owned);
                            let permissions = parts.next().unwrap_or("rwm").to_owned();
                            DeviceMapping {
                                path_on_host: Some(host),
                                path_in_container: Some(inside),
                                cgroup_permissions: Some(permissions),
                            }
                        })
                        .collect()
                }),
                pid_mode: spec.pid_mode.clone(),
                ipc_mode: spec.ipc_mode.clone(),
                ..Default::default()
            }),
            networking_config,
            ..Default::default()
        };
        let created = match self
            .docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(spec.name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
        {
            Ok(created) => created,
            // A 404 is the image or the first network: ask which (Docker says it only in
            // words), on this error path only.
            Err(BollardError::DockerResponseServerError {
                status_code: 404,
                message,
            }) => {
                return Err(if self.image_present(&spec.image).await? {
                    DockerError::NotFound { what: message }
                } else {
                    DockerError::ImageMissing {
                        image: spec.image.clone(),
                    }
                });
            }
            Err(e) => {
                return Err(match e {
                    BollardError::DockerResponseServerError {
                        status_code: 409, ..
                    } => DockerError::NameConflict {
                        name: spec.name.clone(),
                    },
                    other => failed("create container")(other),
                })
            }
        };
        for network in spec.networks.iter().skip(1) {
            self.connect_network(&created.id, network, &spec.aliases)
                .await?;
        }
        Ok(created.id)
    }

    async fn connect_network(
        &self,
        container: &str,
        network: &str,
        aliases: &[String],
    ) -> Result<(), DockerError> {
        self.docker
            .connect_network(
                network,
                NetworkConnectRequest {
                    container: container.to_owned(),
                    endpoint_config: Some(endpoint(aliases)),
                },
            )
            .await
            .map_err(failed("connect network"))
    }

    fn unlabelled_events(&self) -> BoxStream<'static, Result<Event, DockerError>> {
        let filters = HashMap::from([
            (
                "type".to_owned(),
                vec!["network".to_owned(), "image".to_owned()],
            ),
            (
                "event".to_owned(),
                ["disconnect", "tag", "pull", "load", "import"]
                    .map(String::from)
                    .to_vec(),
            ),
        ]);
        self.event_stream(filters)
    }

    async fn start_container(&self, id: &str) -> Result<(), DockerError> {
        match self
            .docker
            .start_container(
                id,
                None::<::bollard::query_parameters::StartContainerOptions>,
            )
            .await
        {
            Ok(()) => Ok(()),
            // 304: already running.
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 404,
                message,
            }) => Err(DockerError::NotFound { what: message }),
            Err(BollardError::DockerResponseServerError { message, .. })
                if docker_text::port_taken(&message) =>
            {
                Err(DockerError::PortAllocated {
                    name: id.to_owned(),
                    message,
                })
            }
            Err(BollardError::DockerResponseServerError { message, .. }) => {
                Err(DockerError::StartFailed {
                    name: id.to_owned(),
                    message,
                })
            }
            Err(e) => Err(failed("start container")(e)),
        }
    }

    async fn stop_container(&self, id: &str, timeout_secs: i32) -> Result<(), DockerError> {
        match self
            .docker
            .stop_container(
                id,
                Some(StopContainerOptions {
                    t: Some(timeout_secs),
                    signal: None,
                }),
            )
            .await
        {
            Ok(())
            | Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(failed("stop container")(e)),
        }
    }

    async fn remove_container(&self, id: &str) -> Result<(), DockerError> {
        match self
            .docker
            .remove_container(
                id,
                Some(RemoveContainerOptions {
                    force: true,
                    v: false,
                    link: false,
                }),
            )
            .await
        {
            Ok(())
            | Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(failed("remove container")(e)),
        }
    }

    async fn list_networks(&self, labels: &[String]) -> Result<Vec<Network>, DockerError> {
        let found = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: label_filters(labels),
            }))
            .await
            .map_err(failed("list networks"))?;
        Ok(found
            .into_iter()
            .map(|n| Network {
                id: n.id.unwrap_or_default(),
                name: n.name.unwrap_or_default(),
                labels: labels_of(n.labels),
                subnets: n
                    .ipam
                    .and_then(|i| i.config)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|c| c.subnet)
                    .collect(),
            })
            .collect())
    }

    async fn create_network(&self, spec: &NetworkSpec) -> Result<String, DockerError> {
        let request = NetworkCreateRequest {
            name: spec.name.clone(),
            driver: Some(spec.driver.clone()),
            internal: Some(spec.internal),
            labels: Some(spec.labels.clone().into_iter().collect()),
            ipam: spec.subnet.as_ref().map(|s| Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(s.clone()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        // Docker 20.10 (API 1.41) creates a second network of the same name unless asked to
        // check, and API 1.44+ removed the flag (it always checks): check here, so names stay
        // unique on every engine. Networks are created by one controller, one at a time.
        let filters = HashMap::from([("name".to_owned(), vec![format!("^{}$", spec.name)])]);
        let same_name = self
            .docker
            .list_networks(Some(ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(failed("list networks"))?;
        if same_name
            .iter()
            .any(|n| n.name.as_deref() == Some(spec.name.as_str()))
        {
            return Err(DockerError::NameConflict {
                name: spec.name.clone(),
            });
        }
        match self.docker.create_network(request).await {
            Ok(created) => Ok(created.id),
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => Err(DockerError::NameConflict {
                name: spec.name.clone(),
            }),
            Err(BollardError::DockerResponseServerError { message, .. })
                if docker_text::pools_exhausted(&message) =>
            {
                Err(DockerError::AddressPoolsExhausted {
                    name: spec.name.clone(),
                    message,
                })
            }
            Err(e) => Err(failed("create network")(e)),
        }
    }

    async fn remove_network(&self, id: &str) -> Result<(), DockerError> {
        match self.docker.remove_network(id).await {
            Ok(())
            | Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            // 403 Forbidden: "network ... has active endpoints".
            Err(BollardError::DockerResponseServerError {
                status_code: 403, ..
            }) => Err(DockerError::NetworkInUse {
                name: id.to_owned(),
            }),
            Err(e) => Err(failed("remove network")(e)),
        }
    }

    async fn host_info(&self) -> Result<super::HostInfo, DockerError> {
        let info = self.docker.info().await.map_err(failed("info"))?;
        Ok(super::HostInfo {
            cpus: info
                .ncpu
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or_default(),
            memory_bytes: info
                .mem_total
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or_default(),
            version: info.server_version.unwrap_or_default(),
        })
    }

    async fn stats(&self, id: &str) -> Result<super::Stats, DockerError> {
        // On the engine's own host, the container's cgroup says the same for microseconds;
        // Docker 20.10 answers a one-shot stats call at once only the first time, then at
        // its collector's next 1 s tick.
        if let Some(stats) = cgroup_stats(id) {
            return Ok(stats);
        }
        let mut stream = self.docker.stats(
            id,
            Some(StatsOptions {
                stream: false,
                one_shot: true,
            }),
        );
        let sample = match stream.next().await {
            Some(Ok(sample)) => sample,
            Some(Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }))
            | None => {
                return Err(DockerError::NotFound {
                    what: format!("container {id}"),
                })
            }
            Some(Err(e)) => return Err(failed("container stats")(e)),
        };
        let cpu_total_ns = sample
            .cpu_stats
            .and_then(|c| c.cpu_usage)
            .and_then(|u| u.total_usage)
            .unwrap_or_default();
        let memory = sample.memory_stats.unwrap_or_default();
        // As the docker CLI: the page cache is not the container's own (cgroup v2 calls it
        // `inactive_file`, v1 `total_inactive_file`).
        let cache = memory
            .stats
            .as_ref()
            .and_then(|s| {
                s.get("inactive_file")
                    .or_else(|| s.get("total_inactive_file"))
            })
            .copied()
            .unwrap_or_default();
        Ok(super::Stats {
            cpu_total_ns,
            memory_bytes: memory.usage.unwrap_or_default().saturating_sub(cache),
        })
    }

    async fn image_present(&self, image: &str) -> Result<bool, DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(failed("inspect image")(e)),
        }
    }

    async fn pull_image(&self, image: &str) -> Result<(), DockerError> {
        let mut progress = self.docker.create_image(
            Some(CreateImageOptions {
                from_image: Some(image.to_owned()),
                ..Default::default()
            }),
            None,
            None,
        );
        while let Some(step) = progress.next().await {
            match step {
                Ok(_) => {}
                // The registry answered: it has no such image (or it is private).
                Err(BollardError::DockerResponseServerError {
                    status_code: 404,
                    message,
                }) => return Err(DockerError::NotFound { what: message }),
                Err(e) => {
                    return Err(DockerError::PullFailed {
                        image: image.to_owned(),
                        message: e.to_string(),
                    })
                }
            }
        }
        Ok(())
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>, DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(inspect) => Ok(inspect.id),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(failed("inspect image")(e)),
        }
    }

    fn build_image(
        &self,
        request: BuildRequest,
    ) -> BoxStream<'static, Result<BuildEvent, DockerError>> {
        let docker = self.docker.clone();
        let (tx, mut rx) = tokio::sync::mpsc::channel(256);
        tokio::spawn(async move {
            let file = match tokio::fs::File::open(&request.context).await {
                Ok(f) => f,
                Err(e) => {
                    let _ = tx
                        .send(Err(DockerError::BuildFailed {
                            message: format!(
                                "reading the context {}: {e}",
                                request.context.display()
                            ),
                        }))
                        .await;
                    return;
                }
            };
            // The context streams from its file: a large one is never held in memory.
            let body = futures::stream::unfold(file, |mut file| async move {
                use tokio::io::AsyncReadExt;
                let mut chunk = Vec::with_capacity(64 * 1024);
                match file.read_buf(&mut chunk).await {
                    Ok(0) => None,
                    Ok(_) => Some((Ok(bytes::Bytes::from(chunk)), file)),
                    Err(e) => Some((Err(e), file)),
                }
            });
            let options = ::bollard::query_parameters::BuildImageOptions {
                dockerfile: request.dockerfile.clone(),
                t: Some(request.tag.clone()),
                rm: true,
                forcerm: true,
                buildargs: Some(request.args.clone().into_iter().collect()),
                labels: Some(request.labels.clone().into_iter().collect()),
                target: request.target.clone().unwrap_or_default(),
                ..Default::default()
            };
            let mut upstream =
                docker.build_image(options, None, Some(::bollard::body_try_stream(body)));
            let mut id = None;
            let mut steps = Steps::default();
            loop {
                let item = tokio::select! {
                    item = upstream.next() => item,
                    // The caller went away: dropping the request cancels the build.
                    () = tx.closed() => {
                        drop(upstream);
                        steps.remove(&docker).await;
                        return;
                    }
                };
                let event = match item {
                    None => break,
                    Some(Ok(info)) => {
                        if let Some(aux) = info.aux.and_then(|a| a.id) {
                            id = Some(aux);
                        }
                        if let Some(text) = &info.stream {
                            steps.read(text);
                        }
                        match info.stream.or(info.status) {
                            Some(text) if !text.is_empty() => Ok(BuildEvent::Output(text)),
                            _ => continue,
                        }
                    }
                    Some(Err(BollardError::DockerStreamError { error })) => {
                        Err(DockerError::BuildFailed { message: error })
                    }
                    Some(Err(BollardError::DockerResponseServerError {
                        status_code: 400 | 500,
                        message,
                    })) => Err(DockerError::BuildFailed { message }),
                    Some(Err(e)) => Err(failed("build image")(e)),
                };
                let end = event.is_err();
                if end {
                    steps.remove(&docker).await;
                }
                if tx.send(event).await.is_err() || end {
                    return;
                }
            }
            // The id as the tag names it now (the aux message is missing on some engines).
            let id = match id {
                Some(id) => Some(id),
                None => docker
                    .inspect_image(&request.tag)
                    .await
                    .ok()
                    .and_then(|i| i.id),
            };
            let last = match id {
                Some(id) => Ok(BuildEvent::Built { id }),
                None => Err(DockerError::BuildFailed {
                    message: format!("the build ended without an image tagged {}", request.tag),
                }),
            };
            let _ = tx.send(last).await;
        });
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
    }

    async fn list_images(&self, labels: &[String]) -> Result<Vec<Image>, DockerError> {
        let images = self
            .docker
            .list_images(Some(::bollard::query_parameters::ListImagesOptions {
                filters: label_filters(labels),
                ..Default::default()
            }))
            .await
            .map_err(failed("list images"))?;
        Ok(images
            .into_iter()
            .map(|i| Image {
                id: i.id,
                tags: i
                    .repo_tags
                    .into_iter()
                    .filter(|t| t != "<none>:<none>")
                    .collect(),
                labels: i.labels.into_iter().collect(),
                created: i.created,
            })
            .collect())
    }

    async fn remove_image(&self, image: &str) -> Result<(), DockerError> {
        match self
            .docker
            .remove_image(
                image,
                None::<::bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await
        {
            Ok(_)
            | Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(failed("remove image")(e)),
        }
    }

    fn export_image(&self, image: &str) -> BoxStream<'static, Result<bytes::Bytes, DockerError>> {
        let (docker, image) = (self.docker.clone(), image.to_owned());
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let mut upstream = docker.export_image(&image).boxed();
            loop {
                let item = tokio::select! {
                    item = upstream.next() => item,
                    () = tx.closed() => return,
                };
                let Some(item) = item else { return };
                let item = item.map_err(failed("export image"));
                let end = item.is_err();
                if tx.send(item).await.is_err() || end {
                    return;
                }
            }
        });
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
    }

    async fn import_image(
        &self,
        tar: BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
    ) -> Result<(), DockerError> {
        let mut progress = self.docker.import_image_stream(
            ::bollard::query_parameters::ImportImageOptions {
                quiet: true,
                ..Default::default()
            },
            tar,
            None,
        );
        while let Some(step) = progress.next().await {
            match step {
                Ok(_) => {}
                Err(BollardError::DockerStreamError { error }) => {
                    return Err(DockerError::RequestFailed {
                        op: "import image",
                        status: 500,
                        message: error,
                    })
                }
                Err(e) => return Err(failed("import image")(e)),
            }
        }
        Ok(())
    }

    fn events(&self, labels: &[String]) -> BoxStream<'static, Result<Event, DockerError>> {
        let mut filters = label_filters(labels).unwrap_or_default();
        filters.insert(
            "type".to_owned(),
            vec!["container".to_owned(), "network".to_owned()],
        );
        let mut upstream = self.event_stream(filters);
        // bollard's stream sends its request on the first poll; drive it now, so the
        // subscription starts when `events` is called, not when the caller first reads.
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    next = upstream.next() => match next {
                        Some(item) => {
                            let end = item.is_err();
                            if tx.send(item).await.is_err() || end {
                                return;
                            }
                        }
                        None => return,
                    },
                    () = tx.closed() => return,
                }
            }
        });
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
    }

    fn logs(
        &self,
        id: &str,
        options: &super::LogOptions,
    ) -> BoxStream<'static, Result<String, DockerError>> {
        let options = LogsOptions {
            follow: options.follow,
            stdout: true,
            stderr: true,
            tail: options
                .tail
                .map_or_else(|| "all".to_owned(), |t| t.to_string()),
            // Docker's API takes seconds as a 32-bit number until 2038.
            since: options
                .since
                .and_then(|s| i32::try_from(s).ok())
                .unwrap_or(0),
            timestamps: options.timestamps,
            ..Default::default()
        };
        self.docker
            .logs(id, Some(options))
            .map(|chunk| chunk.map(|c| c.to_string()).map_err(failed("logs")))
            .boxed()
    }
}

/// The container's CPU time and memory from its cgroup files, when this host is the
/// engine's (cgroup v1 or v2, Docker's `cgroupfs` or `systemd` driver); `None` otherwise
/// (a remote engine, another layout), and the API is asked.
pub fn cgroup_stats(id: &str) -> Option<super::Stats> {
    // A full container id only: nothing else goes into a path.
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let read = |path: String| std::fs::read_to_string(path).ok();
    let field = |text: &str, name: &str| -> Option<u64> {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == name).then(|| v.trim().parse().ok()).flatten()
        })
    };
    let root = "/sys/fs/cgroup";
    // cgroup v2: one directory per container.
    for dir in [
        format!("{root}/docker/{id}"),
        format!("{root}/system.slice/docker-{id}.scope"),
    ] {
        if let (Some(cpu), Some(current)) = (
            read(format!("{dir}/cpu.stat")),
            read(format!("{dir}/memory.current")),
        ) {
            let stat = read(format!("{dir}/memory.stat")).unwrap_or_default();
            return Some(super::Stats {
                cpu_total_ns: field(&cpu, "usage_usec")?.saturating_mul(1000),
                memory_bytes: current
                    .trim()
                    .parse::<u64>()
                    .ok()?
                    .saturating_sub(field(&stat, "inactive_file").unwrap_or(0)),
            });
        }
    }
    // cgroup v1: one directory per controller.
    for scope in [
        format!("docker/{id}"),
        format!("system.slice/docker-{id}.scope"),
    ] {
        let cpu = ["cpuacct", "cpu,cpuacct"]
            .iter()
            .find_map(|c| read(format!("{root}/{c}/{scope}/cpuacct.usage")));
        let usage = read(format!("{root}/memory/{scope}/memory.usage_in_bytes"));
        if let (Some(cpu), Some(usage)) = (cpu, usage) {
            let stat = read(format!("{root}/memory/{scope}/memory.stat")).unwrap_or_default();
            return Some(super::Stats {
                cpu_total_ns: cpu.trim().parse().ok()?,
                memory_bytes: usage
                    .trim()
                    .parse::<u64>()
                    .ok()?
                    .saturating_sub(field(&stat, "total_inactive_file").unwrap_or(0)),
            });
        }
    }
    None
}

/// The layers a classic-builder build committed, read from its output: a step's
/// ` ---> ID` line names the image it made, unless the step came from the cache (` --->
/// Using cache` before it) or is a `FROM` (its base image).
#[derive(Default, Debug)]
struct Steps {
    /// Whether the current step's image is not this build's own (cached, or a base).
    borrowed: bool,
    committed: Vec<String>,
}

impl Steps {
    /// Removes the layers of a build that failed or was cancelled: nobody's (no image has
    /// them as parent, no label says they are nanocl's), nothing would ever remove them.
    /// Newest first: a layer goes once its child has. One another build has taken as its
    /// cache meanwhile has a child or a container, and stays.
    async fn remove(&self, docker: &::bollard::Docker) {
        for layer in self.committed.iter().rev() {
            let removed = docker
                .remove_image(
                    layer,
                    None::<::bollard::query_parameters::RemoveImageOptions>,
                    None,
                )
                .await;
            if let Err(e) = removed {
                tracing::debug!(%layer, error = %e, "a failed build's layer stays");
            }
        }
    }

    fn read(&mut self, text: &str) {
        for line in text.lines() {
            if let Some(step) = line.strip_prefix("Step ") {
                let instruction = step.split_once(" : ").map_or("", |(_, i)| i);
                self.borrowed = instruction
                    .get(..5)
                    .is_some_and(|i| i.eq_ignore_ascii_case("FROM "));
            } else if let Some(rest) = line.trim_start().strip_prefix("---> ") {
                let rest = rest.trim();
                if rest == "Using cache" {
                    self.borrowed = true;
                } else if !self.borrowed
                    && !rest.is_empty()
                    && rest.len() <= 64
                    && rest.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    self.committed.push(rest.to_owned());
                    // One image per step: a later ` ---> ` of the same step is not another.
                    self.borrowed = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Steps;

    #[test]
    fn a_builds_own_layers_should_be_told_from_its_base_and_its_cache() {
        let mut steps = Steps::default();
        for chunk in [
            "Step 1/5 : FROM busybox:stable\n",
            " ---> 911491110855\n",
            "Step 2/5 : ARG GREETING=hello\n ---> Using cache\n ---> 0123456789ab\n",
            "Step 3/5 : COPY index.html /www/index.html\n",
            " ---> b43df65039e0\n",
            "Step 4/5 : RUN echo about to fail && exit 3\n",
            " ---> Running in 5f1e2d3c4b5a\n",
            "about to fail\n",
            "Removing intermediate container 5f1e2d3c4b5a\n",
            "Step 5/5 : from builder AS final\n ---> aaaaaaaaaaaa\n",
            "Step 6/6 : LABEL a=b\n ---> Running in 111111111111\n",
            "Removing intermediate container 111111111111\n ---> cccccccccccc\n",
        ] {
            steps.read(chunk);
        }
        assert_eq!(steps.committed, ["b43df65039e0", "cccccccccccc"]);
    }
}
