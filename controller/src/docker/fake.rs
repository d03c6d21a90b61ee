//! An in-memory Docker for fast tests: same semantics as the engine (names, labels, states,
//! port conflicts, events), records every call, and fails on demand.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::broadcast;

use super::{
    BuildEvent, BuildRequest, Container, ContainerSpec, Docker, DockerError, Event, Image, Network,
    NetworkSpec, State,
};

/// The fake's state. Containers are indexed by name and by label (`k=v`), as dockerd's own
/// store is, so a listing filtered by label costs what it matches, not every container on
/// the "host": scale runs measure nanocl, not the fake.
#[derive(Debug, Default)]
struct World {
    containers: BTreeMap<String, (ContainerSpec, Container)>,
    /// Name → id.
    names: HashMap<String, String>,
    /// The containers by label.
    labelled: LabelIndex,
    /// The networks by label, and by name.
    networks_labelled: LabelIndex,
    network_names: HashMap<String, String>,
    /// Network id → how many containers are attached to it.
    attached: HashMap<String, usize>,
    /// The containers that publish a fixed host port (the only ones a start can conflict
    /// with).
    fixed_ports: BTreeSet<String>,
    networks: BTreeMap<String, (NetworkSpec, Network)>,
    images: HashSet<String>,
    /// Images `build_image` made, by tag: their id and labels.
    built: HashMap<String, (String, BTreeMap<String, String>)>,
    pullable: HashSet<String>,
    next_id: u64,
    calls: Vec<String>,
    failures: HashMap<&'static str, String>,
    logs: HashMap<String, Vec<String>>,
    /// Containers the listing still shows running although they died (dockerd's listing
    /// lags its events).
    listed_running: HashSet<String>,
    /// Resource use of containers by name: CPUs busy, memory bytes.
    usage: HashMap<String, (f64, u64)>,
}

/// The fake. Clones share one world.
#[derive(Clone, Debug)]
pub struct FakeDocker {
    world: Arc<Mutex<World>>,
    events: broadcast::Sender<Event>,
    /// While true, container starts wait (see `hold_starts`).
    starts_held: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for FakeDocker {
    fn default() -> Self {
        FakeDocker {
            world: Arc::default(),
            events: broadcast::channel(1024).0,
            starts_held: Arc::new(tokio::sync::watch::channel(false).0),
        }
    }
}

/// `key=value` → the ids of the objects carrying that label.
#[derive(Debug, Default)]
struct LabelIndex(HashMap<String, BTreeSet<String>>);

impl LabelIndex {
    fn add(&mut self, id: &str, labels: &BTreeMap<String, String>) {
        for (k, v) in labels {
            self.0
                .entry(format!("{k}={v}"))
                .or_default()
                .insert(id.to_owned());
        }
    }

    fn remove(&mut self, id: &str, labels: &BTreeMap<String, String>) {
        for (k, v) in labels {
            let label = format!("{k}={v}");
            if let Some(ids) = self.0.get_mut(&label) {
                ids.remove(id);
                if ids.is_empty() {
                    self.0.remove(&label);
                }
            }
        }
    }

    /// The objects of `all` (id → (spec, object)) matching every filter: only the smallest
    /// set among the `key=value` filters' is checked (none when one matches nothing), every
    /// object when no filter is indexed.
    fn select<'a, S, T>(
        &self,
        all: &'a BTreeMap<String, (S, T)>,
        filters: &[String],
        labels: impl Fn(&T) -> &BTreeMap<String, String>,
    ) -> Vec<&'a T> {
        let indexed = filters
            .iter()
            .filter(|f| f.contains('='))
            .map(|f| self.0.get(f.as_str()))
            .min_by_key(|ids| ids.map_or(0, BTreeSet::len));
        let candidates: Box<dyn Iterator<Item = &'a T> + '_> = match indexed {
            Some(ids) => Box::new(
                ids.into_iter()
                    .flatten()
                    .filter_map(|id| all.get(id))
                    .map(|(_, o)| o),
            ),
            None => Box::new(all.values().map(|(_, o)| o)),
        };
        candidates.filter(|o| matches(labels(o), filters)).collect()
    }
}

impl World {
    fn id_of(&self, name_or_id: &str) -> Option<String> {
        if self.containers.contains_key(name_or_id) {
            return Some(name_or_id.to_owned());
        }
        self.names.get(name_or_id).cloned()
    }

    fn find(&mut self, name_or_id: &str) -> Option<&mut (ContainerSpec, Container)> {
        let id = self.id_of(name_or_id)?;
        self.containers.get_mut(&id)
    }

    fn insert(&mut self, spec: ContainerSpec, container: Container) {
        let id = container.id.clone();
        self.names.insert(container.name.clone(), id.clone());
        self.labelled.add(&id, &container.labels);
        if spec.ports.iter().any(|p| p.host_port.is_some()) {
            self.fixed_ports.insert(id.clone());
        }
        for network in &spec.networks {
            if let Some(network) = self.network_id(network) {
                *self.attached.entry(network).or_default() += 1;
            }
        }
        self.containers.insert(id, (spec, container));
    }

    fn remove(&mut self, id: &str) -> Option<(ContainerSpec, Container)> {
        let (spec, container) = self.containers.remove(id)?;
        self.names.remove(&container.name);
        self.labelled.remove(id, &container.labels);
        self.fixed_ports.remove(id);
        for network in &spec.networks {
            if let Some(network) = self.network_id(network) {
                if let Some(count) = self.attached.get_mut(&network) {
                    *count = count.saturating_sub(1);
                }
            }
        }
        Some((spec, container))
    }

    /// The containers matching every filter, through the label index.
    fn matching<'a>(&'a self, filters: &'a [String]) -> Vec<&'a Container> {
        self.labelled
            .select(&self.containers, filters, |c: &Container| &c.labels)
    }

    /// The networks matching every filter, through their label index.
    fn matching_networks<'a>(&'a self, filters: &'a [String]) -> Vec<&'a Network> {
        self.networks_labelled
            .select(&self.networks, filters, |n: &Network| &n.labels)
    }

    fn network_id(&self, name_or_id: &str) -> Option<String> {
        if self.networks.contains_key(name_or_id) {
            return Some(name_or_id.to_owned());
        }
        self.network_names.get(name_or_id).cloned()
    }
}

fn matches(labels: &BTreeMap<String, String>, filters: &[String]) -> bool {
    filters.iter().all(|f| match f.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|l| l == v),
        None => labels.contains_key(f),
    })
}

impl FakeDocker {
    /// A fake with these images present.
    pub fn with_images(images: &[&str]) -> Self {
        let fake = FakeDocker::default();
        for image in images {
            fake.add_image(image);
        }
        fake
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes an image present, as `docker import` would.
    pub fn add_image(&self, image: &str) {
        self.world().images.insert(image.to_owned());
    }

    /// Makes the container named `name` use `cpus` of a CPU and `memory` bytes.
    pub fn set_usage(&self, name: &str, cpus: f64, memory: u64) {
        self.world().usage.insert(name.to_owned(), (cpus, memory));
    }

    /// Lets `pull_image` succeed for `image`.
    pub fn make_pullable(&self, image: &str) {
        self.world().pullable.insert(image.to_owned());
    }

    /// Makes `name` have printed `line`.
    pub fn print(&self, name: &str, line: &str) {
        self.world()
            .logs
            .entry(name.to_owned())
            .or_default()
            .push(format!("{line}\n"));
    }

    /// How many containers matching `labels` are in `state`, without copying a listing
    /// (and without recording a call).
    pub fn count(&self, labels: &[String], state: State) -> usize {
        self.world()
            .matching(labels)
            .into_iter()
            .filter(|c| c.state == state)
            .count()
    }

    /// Every call so far, as `op name`.
    pub fn calls(&self) -> Vec<String> {
        self.world().calls.clone()
    }

    /// Makes container starts wait until `release_starts` (their creation has happened and
    /// is recorded): what a slow dockerd does to a window of creations, made deterministic.
    pub fn hold_starts(&self) {
        self.starts_held.send_replace(true);
    }

    /// Lets held and later container starts go.
    pub fn release_starts(&self) {
        self.starts_held.send_replace(false);
    }

    /// Makes the next call of `op` (e.g. `"create_container"`) fail with `message`.
    pub fn fail_next(&self, op: &'static str, message: &str) {
        self.world().failures.insert(op, message.to_owned());
    }

    /// Stops a running container as if its process died with `exit_code` (as `docker kill`).
    pub fn kill(&self, name: &str, exit_code: i64) {
        self.die(name, exit_code, false);
    }

    /// As `kill`, but the listing keeps showing the container running until it is started
    /// again, as dockerd's does for a moment after `die`: only the event says it died.
    pub fn kill_ahead_of_the_listing(&self, name: &str, exit_code: i64) {
        self.die(name, exit_code, true);
    }

    fn die(&self, name: &str, exit_code: i64, listing_lags: bool) {
        let event = {
            let mut world = self.world();
            let Some((_, c)) = world.find(name) else {
                return;
            };
            c.state = State::Exited;
            c.exit_code = Some(exit_code);
            // Docker's `die` carries the exit code among the actor's attributes.
            let mut labels = c.labels.clone();
            labels.insert("exitCode".into(), exit_code.to_string());
            let event = Event {
                kind: "container".into(),
                action: "die".into(),
                id: c.id.clone(),
                labels,
            };
            if listing_lags {
                world.listed_running.insert(event.id.clone());
            }
            event
        };
        let _ = self.events.send(event);
    }

    fn enter(
        &self,
        op: &'static str,
        what: &str,
    ) -> Result<std::sync::MutexGuard<'_, World>, DockerError> {
        let mut world = self.world();
        world.calls.push(format!("{op} {what}"));
        if let Some(message) = world.failures.remove(op) {
            return Err(DockerError::RequestFailed {
                op,
                status: 0,
                message,
            });
        }
        Ok(world)
    }

    fn emit(&self, kind: &str, action: &str, id: &str, labels: &BTreeMap<String, String>) {
        let _ = self.events.send(Event {
            kind: kind.into(),
            action: action.into(),
            id: id.into(),
            labels: labels.clone(),
        });
    }
}

impl FakeDocker {
    /// The events `keep` keeps, from now on. Lagging behind (events missed) ends the stream,
    /// as a broken Docker event stream does, and the consumer re-lists.
    fn subscribe(
        &self,
        keep: impl Fn(&Event) -> bool + Send + 'static,
    ) -> BoxStream<'static, Result<Event, DockerError>> {
        let mut rx = self.events.subscribe();
        let (tx, mut out) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    received = rx.recv() => match received {
                        Ok(e) if keep(&e) => {
                            if tx.send(Ok(e)).await.is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    },
                    () = tx.closed() => return,
                }
            }
        });
        futures::stream::poll_fn(move |cx| out.poll_recv(cx)).boxed()
    }

    /// Disconnects a container from a network, as `docker network disconnect` would behind
    /// nanocl's back (with its event).
    pub fn disconnect_network(&self, container: &str, network: &str) {
        let mut world = self.world();
        let Some((_, c)) = world.find(container) else {
            return;
        };
        if let Some(n) = c.networks.as_mut() {
            n.remove(network);
        }
        let attributes = BTreeMap::from([("container".to_owned(), c.id.clone())]);
        drop(world);
        self.emit("network", "disconnect", network, &attributes);
    }
}

impl Docker for FakeDocker {
    async fn connect_network(
        &self,
        container: &str,
        network: &str,
        _aliases: &[String],
    ) -> Result<(), DockerError> {
        let mut world = self.enter("connect_network", container)?;
        if world.network_id(network).is_none() {
            return Err(DockerError::NotFound {
                what: format!("network {network} not found"),
            });
        }
        let Some((_, c)) = world.find(container) else {
            return Err(DockerError::NotFound {
                what: format!("container {container} not found"),
            });
        };
        let address = c.networks.as_ref().map_or_else(String::new, |n| {
            n.values().next().cloned().unwrap_or_default()
        });
        c.networks
            .get_or_insert_with(BTreeMap::new)
            .entry(network.to_owned())
            .or_insert(address);
        Ok(())
    }

    fn unlabelled_events(&self) -> BoxStream<'static, Result<Event, DockerError>> {
        self.subscribe(|e| (e.kind == "network" && e.action == "disconnect") || e.kind == "image")
    }

    async fn list_containers(&self, labels: &[String]) -> Result<Vec<Container>, DockerError> {
        let world = self.enter("list_containers", &labels.join(","))?;
        Ok(world
            .matching(labels)
            .into_iter()
            .map(|c| Container {
                // Like `docker ps`: no exit code, OOM flag or health in a listing.
                exit_code: None,
                oom_killed: false,
                health: None,
                state: if world.listed_running.contains(&c.id) {
                    State::Running
                } else {
                    c.state
                },
                ..c.clone()
            })
            .collect())
    }

    async fn inspect_container(&self, name: &str) -> Result<Option<Container>, DockerError> {
        let mut world = self.enter("inspect_container", name)?;
        Ok(world.find(name).map(|(_, c)| c.clone()))
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
        let mut world = self.enter("create_container", &spec.name)?;
        if world.names.contains_key(&spec.name) {
            return Err(DockerError::NameConflict {
                name: spec.name.clone(),
            });
        }
        if !world.images.contains(&spec.image) {
            return Err(DockerError::ImageMissing {
                image: spec.image.clone(),
            });
        }
        for network in &spec.networks {
            if world.network_id(network).is_none() {
                return Err(DockerError::NotFound {
                    what: format!("network {network} not found"),
                });
            }
        }
        world.next_id += 1;
        let id = format!("{:064x}", world.next_id);
        let container = Container {
            id: id.clone(),
            name: spec.name.clone(),
            image: spec.image.clone(),
            labels: spec.labels.clone(),
            state: State::Created,
            exit_code: None,
            oom_killed: false,
            health: None,
            started_at: None,
            start_error: None,
            networks: Some(
                spec.networks
                    .iter()
                    .map(|n| (n.clone(), String::new()))
                    .collect(),
            ),
            image_id: Some(match world.built.get(&spec.image) {
                Some((id, _)) => id.clone(),
                None => format!("sha256:{:064x}", fnv(spec.image.as_bytes())),
            }),
        };
        world.insert(spec.clone(), container);
        drop(world);
        self.emit("container", "create", &id, &spec.labels);
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<(), DockerError> {
        let mut held = self.starts_held.subscribe();
        let _ = held.wait_for(|held| !held).await;
        let mut world = self.enter("start_container", id)?;
        let (spec, c) = world
            .find(id)
            .map(|(s, c)| (s.clone(), c.clone()))
            .ok_or_else(|| DockerError::NotFound {
                what: format!("No such container: {id}"),
            })?;
        if c.state == State::Running {
            return Ok(());
        }
        let taken: HashSet<(String, u16, String)> = world
            .fixed_ports
            .iter()
            .filter_map(|id| world.containers.get(id))
            .filter(|(_, other)| other.state == State::Running && other.id != c.id)
            .flat_map(|(s, _)| {
                s.ports.iter().filter_map(|p| {
                    p.host_port
                        .map(|h| (p.host_ip.clone(), h, p.protocol.clone()))
                })
            })
            .collect();
        for p in &spec.ports {
            if let Some(h) = p.host_port {
                if taken.contains(&(p.host_ip.clone(), h, p.protocol.clone())) {
                    let message = format!(
                        "Bind for {}:{h} failed: port is already allocated",
                        p.host_ip
                    );
                    let name = c.name.clone();
                    if let Some((_, c)) = world.find(id) {
                        c.start_error = Some(super::StartError::PortInUse(message.clone()));
                    }
                    return Err(DockerError::PortAllocated { name, message });
                }
            }
        }
        if let Some((_, c)) = world.find(id) {
            c.state = State::Running;
            c.exit_code = None;
            c.started_at = Some(std::time::SystemTime::now());
            c.start_error = None;
        }
        world.listed_running.remove(&c.id);
        drop(world);
        self.emit("container", "start", &c.id, &c.labels);
        Ok(())
    }

    async fn stop_container(&self, id: &str, _timeout_secs: i32) -> Result<(), DockerError> {
        let mut world = self.enter("stop_container", id)?;
        let (_, c) = world.find(id).ok_or_else(|| DockerError::NotFound {
            what: format!("No such container: {id}"),
        })?;
        let was_running = c.state == State::Running;
        c.state = State::Exited;
        if was_running {
            c.exit_code = Some(0);
        }
        let (cid, labels) = (c.id.clone(), c.labels.clone());
        drop(world);
        if was_running {
            self.emit("container", "die", &cid, &labels);
            self.emit("container", "stop", &cid, &labels);
        }
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<(), DockerError> {
        let mut world = self.enter("remove_container", id)?;
        let Some(key) = world.id_of(id) else {
            return Ok(());
        };
        let Some((_, c)) = world.remove(&key) else {
            return Ok(());
        };
        drop(world);
        if c.state == State::Running {
            // A forced remove kills it: SIGKILL's exit code, as Docker reports it.
            let mut attributes = c.labels.clone();
            attributes.insert("exitCode".into(), "137".into());
            self.emit("container", "die", &c.id, &attributes);
        }
        self.emit("container", "destroy", &c.id, &c.labels);
        Ok(())
    }

    async fn list_networks(&self, labels: &[String]) -> Result<Vec<Network>, DockerError> {
        let world = self.enter("list_networks", &labels.join(","))?;
        Ok(world
            .matching_networks(labels)
            .into_iter()
            .cloned()
            .collect())
    }

    async fn create_network(&self, spec: &NetworkSpec) -> Result<String, DockerError> {
        let mut world = self.enter("create_network", &spec.name)?;
        if world.network_names.contains_key(&spec.name) {
            return Err(DockerError::NameConflict {
                name: spec.name.clone(),
            });
        }
        world.next_id += 1;
        let id = format!("{:064x}", world.next_id);
        world.network_names.insert(spec.name.clone(), id.clone());
        world.networks_labelled.add(&id, &spec.labels);
        world.networks.insert(
            id.clone(),
            (
                spec.clone(),
                Network {
                    id: id.clone(),
                    name: spec.name.clone(),
                    labels: spec.labels.clone(),
                    subnets: spec.subnet.iter().cloned().collect(),
                },
            ),
        );
        drop(world);
        self.emit("network", "create", &id, &spec.labels);
        Ok(id)
    }

    async fn remove_network(&self, id: &str) -> Result<(), DockerError> {
        let mut world = self.enter("remove_network", id)?;
        let Some(key) = world.network_id(id) else {
            return Ok(());
        };
        if world.attached.get(&key).is_some_and(|count| *count > 0) {
            return Err(DockerError::NetworkInUse { name: key });
        }
        if let Some((_, n)) = world.networks.remove(&key) {
            world.network_names.remove(&n.name);
            world.networks_labelled.remove(&key, &n.labels);
            world.attached.remove(&key);
            drop(world);
            self.emit("network", "destroy", &n.id, &n.labels);
        }
        Ok(())
    }

    async fn host_info(&self) -> Result<super::HostInfo, DockerError> {
        let _world = self.enter("host_info", "")?;
        Ok(super::HostInfo {
            cpus: 2,
            memory_bytes: 8 << 30,
            version: "fake".to_owned(),
        })
    }

    async fn stats(&self, id: &str) -> Result<super::Stats, DockerError> {
        let mut world = self.enter("stats", id)?;
        let (_, c) = world.find(id).ok_or_else(|| DockerError::NotFound {
            what: format!("container {id}"),
        })?;
        if c.state != State::Running {
            return Err(DockerError::NotFound {
                what: format!("container {id} is not running"),
            });
        }
        let (name, started) = (c.name.clone(), c.started_at);
        // A container set busy uses `cpus` of a CPU since it started.
        let (cpus, memory) = world.usage.get(&name).copied().unwrap_or((0.0, 0));
        let ran = started
            .and_then(|t| t.elapsed().ok())
            .unwrap_or_default()
            .as_nanos() as f64;
        Ok(super::Stats {
            cpu_total_ns: (ran * cpus) as u64,
            memory_bytes: memory,
        })
    }

    async fn image_present(&self, image: &str) -> Result<bool, DockerError> {
        let world = self.enter("image_present", image)?;
        Ok(world.images.contains(image))
    }

    async fn pull_image(&self, image: &str) -> Result<(), DockerError> {
        let mut world = self.enter("pull_image", image)?;
        if world.pullable.contains(image) {
            world.images.insert(image.to_owned());
            Ok(())
        } else {
            Err(DockerError::PullFailed {
                image: image.to_owned(),
                message: "no registry is reachable".into(),
            })
        }
    }

    fn events(&self, labels: &[String]) -> BoxStream<'static, Result<Event, DockerError>> {
        let filters = labels.to_vec();
        self.subscribe(move |e| matches(&e.labels, &filters))
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>, DockerError> {
        let world = self.enter("image_id", image)?;
        if let Some((id, _)) = world.built.get(image) {
            return Ok(Some(id.clone()));
        }
        Ok(world
            .images
            .contains(image)
            .then(|| format!("sha256:{:064x}", fnv(image.as_bytes()))))
    }

    fn build_image(
        &self,
        request: BuildRequest,
    ) -> BoxStream<'static, Result<BuildEvent, DockerError>> {
        let outcome = (|| {
            let mut world = self
                .enter("build_image", &request.tag)
                .map_err(|e| match e {
                    DockerError::RequestFailed { message, .. } => {
                        DockerError::BuildFailed { message }
                    }
                    other => other,
                })?;
            let context =
                std::fs::read(&request.context).map_err(|e| DockerError::BuildFailed {
                    message: format!("reading the context: {e}"),
                })?;
            let mut seed = context;
            seed.extend_from_slice(request.tag.as_bytes());
            let id = format!("sha256:{:064x}", fnv(&seed));
            world.images.insert(request.tag.clone());
            world
                .built
                .insert(request.tag.clone(), (id.clone(), request.labels.clone()));
            Ok(id)
        })();
        let mut events = vec![Ok(BuildEvent::Output(format!(
            "Step 1/1 : fake build of {}\n",
            request.tag
        )))];
        events.push(outcome.map(|id| BuildEvent::Built { id }));
        futures::stream::iter(events).boxed()
    }

    async fn list_images(&self, labels: &[String]) -> Result<Vec<Image>, DockerError> {
        let world = self.enter("list_images", &labels.join(","))?;
        let mut out = Vec::new();
        for image in &world.images {
            let (id, image_labels) = world.built.get(image).cloned().unwrap_or_else(|| {
                (
                    format!("sha256:{:064x}", fnv(image.as_bytes())),
                    BTreeMap::new(),
                )
            });
            if matches(&image_labels, labels) {
                out.push(Image {
                    id,
                    tags: vec![image.clone()],
                    labels: image_labels,
                    created: 0,
                });
            }
        }
        out.sort_by(|a, b| a.tags.cmp(&b.tags));
        Ok(out)
    }

    async fn remove_image(&self, image: &str) -> Result<(), DockerError> {
        let mut world = self.enter("remove_image", image)?;
        let in_use = world.matching(&[]).iter().any(|c| c.image == image);
        if in_use {
            return Err(DockerError::RequestFailed {
                op: "remove image",
                status: 409,
                message: format!("conflict: image {image} is being used by a container"),
            });
        }
        world.images.remove(image);
        world.built.remove(image);
        Ok(())
    }

    fn export_image(&self, image: &str) -> BoxStream<'static, Result<bytes::Bytes, DockerError>> {
        let outcome = (|| {
            let world = self.enter("export_image", image)?;
            if !world.images.contains(image) {
                return Err(DockerError::NotFound {
                    what: format!("image {image}"),
                });
            }
            let (id, labels) = world.built.get(image).cloned().unwrap_or_else(|| {
                (
                    format!("sha256:{:064x}", fnv(image.as_bytes())),
                    BTreeMap::new(),
                )
            });
            // The fake's "tar": what it takes to make the image again.
            let body = serde_json::json!({"tag": image, "id": id, "labels": labels});
            Ok(bytes::Bytes::from(body.to_string()))
        })();
        futures::stream::iter([outcome]).boxed()
    }

    async fn import_image(
        &self,
        mut tar: BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
    ) -> Result<(), DockerError> {
        let mut body = Vec::new();
        while let Some(chunk) = tar.next().await {
            let chunk = chunk.map_err(|e| DockerError::RequestFailed {
                op: "import image",
                status: 0,
                message: e.to_string(),
            })?;
            body.extend_from_slice(&chunk);
        }
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| DockerError::RequestFailed {
                op: "import image",
                status: 0,
                message: format!("not an image archive: {e}"),
            })?;
        let tag = value["tag"].as_str().unwrap_or_default().to_owned();
        let mut world = self.enter("import_image", &tag)?;
        let labels: BTreeMap<String, String> =
            serde_json::from_value(value["labels"].clone()).unwrap_or_default();
        let id = value["id"].as_str().unwrap_or_default().to_owned();
        world.images.insert(tag.clone());
        world.built.insert(tag, (id, labels));
        Ok(())
    }

    fn logs(
        &self,
        id: &str,
        options: &super::LogOptions,
    ) -> BoxStream<'static, Result<String, DockerError>> {
        let tail = options.tail;
        let mut world = self.world();
        let name = world
            .find(id)
            .map(|(_, c)| c.name.clone())
            .unwrap_or_else(|| id.to_owned());
        let lines = world.logs.get(&name).cloned().unwrap_or_default();
        let skip = tail.map_or(0, |t| lines.len().saturating_sub(t as usize));
        futures::stream::iter(lines.into_iter().skip(skip).map(Ok)).boxed()
    }
}

/// FNV-1a, for the fake's made-up image ids.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
