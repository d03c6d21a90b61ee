//! The builder: turns a cargo's `spec.container.build` into an image, off the reconcile
//! path. It runs on the leader, in a runner of its own with a small concurrency (the build
//! queue): a long build never holds a reconcile slot of the controllers, and shutdown
//! cancels it (Docker stops a build whose client went away).
//!
//! For each cargo with a build: render the settings (the cluster's variables into `args`),
//! resolve the ref to a commit (`git ls-remote`) or pack and hash the context directory;
//! the image is tagged `nanocl.local/{namespace}/{cargo}:{commit or context hash}`, and a
//! tag Docker already has is never built again. Otherwise fetch that commit shallowly, pack
//! it, and build through Docker's API, cancelling when the spec moves on mid-build. Only
//! `status.build` is written (its own status owner); the Cargo controller reads it, runs
//! the image of the last successful build, and says `BuildFailed` when the latest failed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use nanocl_api_types::cargo::v1::{BuildSpec, BuildStatus, Cargo as CargoObject};
use nanocl_api_types::cluster::v1::Cluster as ClusterObject;
use sha2::{Digest, Sha256};

use super::{ReconcileError, Shared};
use crate::builds::{context, git};
use crate::docker::{BuildEvent, BuildRequest, Docker, DockerError};
use crate::objects::api::{Api, ObjectRef};
use crate::objects::status::owners;
use crate::runtime::runner::Action;
use crate::store::Store;
use nanocl_api_types::Resource as _;

pub use nanocl_api_types::cargo::v1::BUILD_REQUESTED_AT_ANNOTATION as REQUESTED_AT_ANNOTATION;
/// Label of the images nanocl built: the store instance that built them.
pub const BUILT_LABEL: &str = "io.nanocl.built";

/// Built images kept per cargo besides those in use: the newest ones (a `rollout undo`
/// to a recent build finds its image).
pub const KEEP_IMAGES: usize = 3;

/// Builds running at once (each is a Docker build and a git fetch: CPU and disk bound).
pub const CONCURRENCY: usize = 2;
/// How long resolving a ref may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a running build looks whether its cargo's build settings moved on.
const CANCEL_CHECK: Duration = Duration::from_secs(1);
/// Output lines kept for the status of a failed build.
const LOG_TAIL: usize = 20;
/// A resolution that failed (unreachable, unknown ref) is tried again this often.
const RETRY_RESOLVE: Duration = Duration::from_secs(60);

/// The output of a cargo's latest build, kept in the store (`builds/{namespace}/{cargo}`)
/// for `nanocl logs cargo NAME --build`: served by any nanocld, written by the leader's
/// builder as the build goes (at most every `LOG_FLUSH`), at most `LOG_LINES` lines.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct BuildLog {
    /// The image being built.
    pub image: String,
    /// When the build started (RFC 3339): a new value is a new build.
    pub started: String,
    /// Lines dropped from the front (the log keeps the last `LOG_LINES`).
    pub dropped: usize,
    /// The lines.
    pub lines: Vec<String>,
    /// The build ended.
    pub done: bool,
}

impl BuildLog {
    /// Its store key.
    pub fn key(namespace: &str, cargo: &str) -> String {
        format!("{LOG_PREFIX}{namespace}/{cargo}")
    }

    fn push(&mut self, line: String) {
        self.lines.push(line);
        if self.lines.len() > LOG_LINES {
            let extra = self.lines.len() - LOG_LINES;
            self.lines.drain(..extra);
            self.dropped += extra;
        }
    }
}

/// Store prefix of the build logs.
pub const LOG_PREFIX: &str = "builds/";
/// Lines a build log keeps.
const LOG_LINES: usize = 2000;
/// How often a running build's log is written.
const LOG_FLUSH: Duration = Duration::from_secs(1);

/// Phases of `status.build.phase`.
pub mod phase {
    /// Docker is building.
    pub const BUILDING: &str = "Building";
    /// The image is built.
    pub const SUCCEEDED: &str = "Succeeded";
    /// The build failed.
    pub const FAILED: &str = "Failed";
}

/// The builder's memory between reconciles: when each cargo's ref was last looked at (its
/// `poll`), by cargo key.
#[derive(Debug, Default)]
pub struct Builds {
    checked: Mutex<HashMap<String, (String, tokio::time::Instant)>>,
}

/// A cargo's build settings with the cluster's variables rendered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The spec.
    pub spec: BuildSpec,
    /// `args`, rendered.
    pub args: BTreeMap<String, String>,
    /// The `build.nanocl.io/requestedAt` annotation.
    pub requested: Option<String>,
}

impl Settings {
    /// The settings of `cargo`, or why they cannot be rendered (a field and a message).
    pub fn of(
        cargo: &CargoObject,
        cluster: Option<&ClusterObject>,
    ) -> Option<Result<Settings, String>> {
        let spec = cargo.spec.container.build.clone()?;
        let variables = cluster
            .map(|c| c.spec.variables.clone())
            .unwrap_or_default();
        let mut args = BTreeMap::new();
        for (name, value) in &spec.args {
            match nanocl_api_types::template::render(value, &variables) {
                Ok(v) => {
                    args.insert(name.clone(), v);
                }
                Err(e) => {
                    return Some(Err(format!(
                        "spec.container.build.args.{name}: {e} in cluster {:?}",
                        cargo.spec.cluster
                    )))
                }
            }
        }
        let requested = cargo
            .metadata
            .annotations
            .get(REQUESTED_AT_ANNOTATION)
            .cloned();
        Some(Ok(Settings {
            spec,
            args,
            requested,
        }))
    }

    /// The identity of these settings (16 hex digits).
    pub fn key(&self) -> String {
        let value = serde_json::json!({
            "spec": self.spec,
            "args": self.args,
            "requested": self.requested,
        });
        hex16(value.to_string().as_bytes())
    }

    /// What besides the commit or context shapes the image: `None` when all defaults.
    fn variant(&self) -> Option<String> {
        let path = self.spec.git.as_ref().and_then(|g| g.path.clone());
        if path.is_none()
            && self.spec.dockerfile.is_none()
            && self.args.is_empty()
            && self.spec.target.is_none()
        {
            return None;
        }
        let value = serde_json::json!({
            "path": path,
            "dockerfile": self.spec.dockerfile(),
            "args": self.args,
            "target": self.spec.target,
        });
        Some(hex16(value.to_string().as_bytes())[..8].to_owned())
    }

    /// The image tag for `source` (a commit id, or `sha256:` and a context digest).
    pub fn tag(&self, namespace: &str, cargo: &str, source: &str) -> String {
        let id: String = source
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect();
        match self.variant() {
            Some(v) => format!("{}:{id}-{v}", repository(namespace, cargo)),
            None => format!("{}:{id}", repository(namespace, cargo)),
        }
    }
}

/// The first component of every built image's name.
pub const LOCAL_REPOSITORY: &str = "nanocl.local/";

/// The repository of a cargo's built images.
pub fn repository(namespace: &str, cargo: &str) -> String {
    format!("{LOCAL_REPOSITORY}{namespace}/{cargo}")
}

/// How long bringing a built image from another nanocld may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(600);

/// Brings the built image `image` of `cargo` onto this node's Docker from the nanocld that
/// built it (`status.build.exportUrl`: its `/images/export`, a `docker save` stream loaded
/// here as it comes), and checks it is the very image that was built (its id).
pub async fn fetch<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    cargo: &CargoObject,
    image: &str,
) -> Result<(), String> {
    use http_body_util::BodyExt;
    let build = cargo.status.as_ref().and_then(|s| s.build.as_ref());
    let Some(url) = build.and_then(|b| b.export_url.clone()) else {
        return Err(format!(
            "image {image} was built on {}, whose nanocld advertises no URL to fetch it from: start it with --listen tcp://ADDR:PORT (and --advertise-url when ADDR is not what other nodes reach)",
            build
                .and_then(|b| b.node.clone())
                .map_or_else(|| "another nanocld's Docker".to_owned(), |n| format!("node {n}"))
        ));
    };
    let host = nanocl_client::http::Host::parse(Some(&url)).map_err(|e| format!("{url}: {e}"))?;
    let client = match &shared.peer_tls {
        Some(tls) => nanocl_client::http::Client::with_tls(host, tls.clone()),
        None => nanocl_client::http::Client::new(host),
    };
    let path = format!(
        "/images/export?name={}",
        nanocl_client::http::encode_query(image)
    );
    let work = async {
        let body = match client.stream(&path).await {
            Ok(Ok(body)) => body,
            Ok(Err(answer)) => {
                return Err(format!(
                    "fetching image {image} from {url}: {}",
                    answer.error_message()
                ))
            }
            Err(e) => return Err(format!("fetching image {image} from {url}: {e}")),
        };
        let tar = body
            .into_data_stream()
            .map(|chunk| chunk.map_err(|e| std::io::Error::other(e.to_string())))
            .boxed();
        shared
            .docker
            .import_image(tar)
            .await
            .map_err(|e| format!("loading image {image} fetched from {url}: {e}"))
    };
    tokio::time::timeout(FETCH_TIMEOUT, work)
        .await
        .map_err(|_| {
            format!(
                "fetching image {image} from {url} took longer than {}s",
                FETCH_TIMEOUT.as_secs()
            )
        })??;
    let got = shared
        .docker
        .image_id(image)
        .await
        .map_err(|e| format!("inspecting image {image}: {e}"))?;
    let want = build
        .filter(|b| b.image.as_deref() == Some(image))
        .and_then(|b| b.image_id.clone());
    match (got, want) {
        (None, _) => Err(format!(
            "image {image} fetched from {url} is not on this node after loading"
        )),
        (Some(got), Some(want)) if got != want => Err(format!(
            "image {image} fetched from {url} is {got}, not the {want} that was built"
        )),
        (Some(got), _) => {
            tracing::info!(%image, id = %got, from = %url, "brought a built image to this node");
            Ok(())
        }
    }
}

fn hex16(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn now_text() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// The `poll` interval of a git build.
fn poll_of(spec: &BuildSpec) -> Option<Duration> {
    let poll = spec.git.as_ref()?.poll.as_deref()?;
    nanocl_api_types::quantity::parse_duration_ms(poll)
        .ok()
        .map(Duration::from_millis)
}

/// Next after a settled build: the next poll, or the next change.
fn settled(spec: &BuildSpec) -> Action {
    poll_of(spec).map_or(Action::AwaitChange, Action::Requeue)
}

/// What was resolved to build.
struct Source {
    /// A commit id, or `sha256:…` of a context.
    id: String,
    /// git: what to fetch. Context: the packed tar.
    kind: SourceKind,
}

enum SourceKind {
    Git(git::Resolved),
    Context(context::Packed),
}

/// Reconciles the build of the cargo at `key`.
pub async fn reconcile<S: Store + Clone, D: Docker>(
    shared: &Arc<Shared<S, D>>,
    builds: &Builds,
    key: &str,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Action, ReconcileError> {
    let Some(cargo) = shared.hub.get_key::<CargoObject>(key) else {
        return Ok(Action::AwaitChange);
    };
    if cargo.metadata.deletion_timestamp.is_some() {
        return Ok(Action::AwaitChange);
    }
    let namespace = cargo.metadata.namespace.clone().unwrap_or_default();
    let cluster = shared.hub.get(&ObjectRef::<ClusterObject>::new(
        Some(&namespace),
        &cargo.spec.cluster,
    ));
    let settings = match Settings::of(&cargo, cluster.as_deref()) {
        None => return Ok(Action::AwaitChange),
        // The Cargo controller says why (the cluster or a variable is missing).
        Some(Err(_)) if cluster.is_none() => return Ok(Action::AwaitChange),
        Some(Err(message)) => {
            let status = BuildStatus {
                phase: phase::FAILED.into(),
                message,
                ..carry(cargo.status.as_ref().and_then(|s| s.build.as_ref()))
            };
            save(shared, &cargo, &status).await?;
            return Ok(Action::AwaitChange);
        }
        Some(Ok(s)) => s,
    };
    let settings_key = settings.key();
    let previous = cargo.status.as_ref().and_then(|s| s.build.clone());
    let same_settings = previous.as_ref().is_some_and(|p| p.key == settings_key);
    let settled_before = previous.as_ref().is_some_and(|p| {
        p.phase == phase::SUCCEEDED
            || (p.phase == phase::FAILED && (p.commit.is_some() || p.context_hash.is_some()))
    });
    let poll = poll_of(&settings.spec);
    if same_settings && settled_before {
        // Without poll, settled settings are not looked at again (a new commit needs a
        // spec change or `nanocl build`); with it, once per interval.
        let Some(poll) = poll else {
            return Ok(Action::AwaitChange);
        };
        let checked = builds
            .checked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .filter(|(k, _)| *k == settings_key)
            .map(|(_, at)| at.elapsed());
        if let Some(elapsed) = checked {
            if elapsed < poll {
                return Ok(Action::Requeue(poll - elapsed));
            }
        }
    }
    builds
        .checked
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(
            key.to_owned(),
            (settings_key.clone(), tokio::time::Instant::now()),
        );

    // The repository's credentials, from a Secret of the namespace.
    let credentials = match credentials(shared, &namespace, &settings) {
        Ok(c) => c,
        Err(message) => {
            unresolved(shared, &cargo, previous.as_ref(), settings_key, message).await?;
            return Ok(Action::Requeue(RETRY_RESOLVE));
        }
    };
    // What to build: a commit, or a context's content.
    let resolving = std::time::Instant::now();
    let resolved = resolve(&settings, &credentials).await;
    tracing::debug!(cargo = %key, elapsed_ms = resolving.elapsed().as_millis(), "resolved the build's source");
    let source = match resolved {
        Ok(source) => source,
        Err(message) => {
            unresolved(shared, &cargo, previous.as_ref(), settings_key, message).await?;
            return Ok(Action::Requeue(
                poll.map_or(RETRY_RESOLVE, |p| p.min(RETRY_RESOLVE)),
            ));
        }
    };
    let (commit, context_hash) = match &source.kind {
        SourceKind::Git(_) => (Some(source.id.clone()), None),
        SourceKind::Context(_) => (None, Some(source.id.clone())),
    };
    // The same settings and source as the latest build: done (succeeded or failed).
    if same_settings
        && settled_before
        && previous
            .as_ref()
            .is_some_and(|p| p.commit == commit && p.context_hash == context_hash)
    {
        return Ok(settled(&settings.spec));
    }
    let tag = settings.tag(&namespace, &cargo.metadata.name, &source.id);
    // Built before (the same commit, or an identical context): never again.
    if let Some(id) = shared.docker.image_id(&tag).await? {
        let status = BuildStatus {
            phase: phase::SUCCEEDED.into(),
            key: settings_key,
            commit,
            context_hash,
            started: None,
            finished: None,
            message: format!("{tag} was built before; not built again"),
            log: Vec::new(),
            image: Some(tag),
            image_id: Some(id),
            node: shared.node.clone(),
            export_url: shared.advertise.clone(),
        };
        save(shared, &cargo, &status).await?;
        return Ok(settled(&settings.spec));
    }
    let started = now_text();
    let building = BuildStatus {
        phase: phase::BUILDING.into(),
        key: settings_key.clone(),
        commit: commit.clone(),
        context_hash: context_hash.clone(),
        started: Some(started.clone()),
        finished: None,
        message: format!("building {tag}"),
        log: Vec::new(),
        ..carry(previous.as_ref())
    };
    save(shared, &cargo, &building).await?;
    let object = ObjectRef::<CargoObject>::of(&*cargo).store_key();
    let outcome = {
        let work = build(
            shared,
            &settings,
            &namespace,
            &cargo.metadata.name,
            source,
            &tag,
            &credentials,
        );
        let timeout = Duration::from_millis(settings.spec.timeout_ms());
        let moved_on = moved_on(shared, key, &settings_key);
        tokio::pin!(work, moved_on, shutdown);
        tokio::select! {
            result = tokio::time::timeout(timeout, &mut work) => match result {
                Ok(outcome) => outcome,
                Err(_) => Outcome::Failed {
                    message: format!("the build took longer than its timeout ({})", settings.spec.timeout.as_deref().unwrap_or(nanocl_api_types::cargo::v1::DEFAULT_BUILD_TIMEOUT)),
                    log: Vec::new(),
                },
            },
            () = &mut moved_on => {
                tracing::info!(cargo = %object, %tag, "build cancelled: the spec changed");
                // The new settings are built next.
                return Ok(Action::Requeue(Duration::ZERO));
            }
            () = &mut shutdown => {
                tracing::info!(cargo = %object, %tag, "build cancelled: nanocld is stopping");
                return Ok(Action::AwaitChange);
            }
        }
    };
    // The object as it is now: the status is written over its latest version.
    let Some(current) = shared.hub.get_key::<CargoObject>(key) else {
        return Ok(Action::AwaitChange);
    };
    let finished = Some(now_text());
    let any = CargoObject::clone(&current).into_any();
    let status = match outcome {
        Outcome::Built { id } => {
            super::events::record(
                &shared.store,
                &any,
                false,
                "BuildSucceeded",
                format!("built {tag}"),
            )
            .await;
            BuildStatus {
                phase: phase::SUCCEEDED.into(),
                key: settings_key,
                commit,
                context_hash,
                started: Some(started),
                finished,
                message: format!("built {tag}"),
                log: Vec::new(),
                image: Some(tag),
                image_id: Some(id),
                node: shared.node.clone(),
                export_url: shared.advertise.clone(),
            }
        }
        Outcome::Failed { message, log } => {
            super::events::record(&shared.store, &any, true, "BuildFailed", message.clone()).await;
            BuildStatus {
                phase: phase::FAILED.into(),
                key: settings_key,
                commit,
                context_hash,
                started: Some(started),
                finished,
                message,
                log,
                ..carry(previous.as_ref())
            }
        }
        Outcome::Unfetched { message } => {
            super::events::record(&shared.store, &any, true, "BuildFailed", message.clone()).await;
            // Written over the `Building` just saved: always.
            let status = BuildStatus {
                phase: phase::FAILED.into(),
                key: settings_key,
                message,
                finished,
                ..carry(previous.as_ref())
            };
            save(shared, &current, &status).await?;
            return Ok(Action::Requeue(
                poll.map_or(RETRY_RESOLVE, |p| p.min(RETRY_RESOLVE)),
            ));
        }
        Outcome::Transient(e) => {
            // Docker went away mid-build: the next attempt builds again.
            let status = BuildStatus {
                phase: phase::FAILED.into(),
                key: String::new(),
                message: format!("the build was interrupted: {e}"),
                ..carry(previous.as_ref())
            };
            save(shared, &current, &status).await?;
            return Err(e.into());
        }
    };
    save(shared, &current, &status).await?;
    collect_images(shared).await;
    Ok(settled(&settings.spec))
}

/// Removes the images this store's builder made that nothing needs: those of cargoes that
/// are gone, and beyond the newest `KEEP_IMAGES` of each cargo, those neither its last
/// build made nor a Replica runs. An image a container still uses stays (Docker refuses).
/// Never an image nanocl did not build: only the `io.nanocl.built` label of this store
/// counts, under the `nanocl.local/` repositories.
pub async fn collect_images<S: Store + Clone, D: Docker>(shared: &Shared<S, D>) {
    let filter = [format!("{BUILT_LABEL}={}", shared.instance)];
    let images = match shared.docker.list_images(&filter).await {
        Ok(images) => images,
        Err(e) => {
            tracing::warn!(error = %e, "listing built images failed");
            return;
        }
    };
    let mut by_cargo: HashMap<(String, String), Vec<crate::docker::Image>> = HashMap::new();
    for image in images {
        // `nanocl.local/{namespace}/{cargo}:{tag}`.
        let owner = image.tags.iter().find_map(|t| {
            let (repository, _) = t.strip_prefix(LOCAL_REPOSITORY)?.rsplit_once(':')?;
            let (ns, cargo) = repository.split_once('/')?;
            Some((ns.to_owned(), cargo.to_owned()))
        });
        let Some(owner) = owner else { continue };
        by_cargo.entry(owner).or_default().push(image);
    }
    for ((namespace, name), mut images) in by_cargo {
        let cargo = shared
            .hub
            .get(&ObjectRef::<CargoObject>::new(Some(&namespace), &name));
        let mut needed: std::collections::HashSet<String> = std::collections::HashSet::new();
        if let Some(cargo) = &cargo {
            if let Some(b) = cargo.status.as_ref().and_then(|s| s.build.as_ref()) {
                needed.extend(b.image.iter().cloned());
                needed.extend(b.image_id.iter().cloned());
            }
            for r in shared.hub.replicas_of(&namespace, &name) {
                if let Some(t) = &r.spec.template {
                    needed.insert(t.container.image.clone());
                }
            }
        }
        // Newest first; a cargo that is gone keeps none.
        images.sort_by_key(|i| std::cmp::Reverse(i.created));
        let keep = if cargo.is_some() { KEEP_IMAGES } else { 0 };
        for image in images.into_iter().skip(keep) {
            let used = needed.contains(&image.id) || image.tags.iter().any(|t| needed.contains(t));
            if used {
                continue;
            }
            let ours: Vec<&String> = image
                .tags
                .iter()
                .filter(|t| t.starts_with("nanocl.local/"))
                .collect();
            for tag in ours {
                match shared.docker.remove_image(tag).await {
                    Ok(()) => {
                        tracing::info!(image = %tag, "removed a built image no longer needed")
                    }
                    Err(e) => tracing::debug!(image = %tag, error = %e, "a built image stays"),
                }
            }
        }
    }
}

/// Records that what to build could not be found out (no credentials, no commit): `Failed`
/// without a commit, so it is tried again; written only when it says something new.
async fn unresolved<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    cargo: &CargoObject,
    previous: Option<&BuildStatus>,
    key: String,
    message: String,
) -> Result<(), ReconcileError> {
    let status = BuildStatus {
        phase: phase::FAILED.into(),
        key,
        message,
        finished: Some(now_text()),
        ..carry(previous)
    };
    if !same_but_time(previous, &status) {
        save(shared, cargo, &status).await?;
    }
    Ok(())
}

/// Whether `status` says what `previous` said (its time aside): a failure retried every
/// minute is not a status write every minute.
fn same_but_time(previous: Option<&BuildStatus>, status: &BuildStatus) -> bool {
    previous.is_some_and(|p| {
        BuildStatus {
            finished: None,
            ..p.clone()
        } == BuildStatus {
            finished: None,
            ..status.clone()
        }
    })
}

/// The image of the last successful build, for a status about a newer attempt.
fn carry(previous: Option<&BuildStatus>) -> BuildStatus {
    BuildStatus {
        image: previous.and_then(|p| p.image.clone()),
        image_id: previous.and_then(|p| p.image_id.clone()),
        node: previous.and_then(|p| p.node.clone()),
        export_url: previous.and_then(|p| p.export_url.clone()),
        ..BuildStatus::default()
    }
}

async fn save<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    cargo: &CargoObject,
    status: &BuildStatus,
) -> Result<(), ReconcileError> {
    let api = Api::<CargoObject, S>::new(shared.store.clone());
    api.patch_status(
        cargo,
        &owners::CARGO_BUILD,
        &serde_json::json!({ "build": status }),
    )
    .await?;
    Ok(())
}

/// Resolves once the cargo at `key` is gone or its build settings are no longer `settings_key`.
async fn moved_on<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    key: &str,
    settings_key: &str,
) {
    loop {
        tokio::time::sleep(CANCEL_CHECK).await;
        let Some(cargo) = shared.hub.get_key::<CargoObject>(key) else {
            return;
        };
        if cargo.metadata.deletion_timestamp.is_some() {
            return;
        }
        let namespace = cargo.metadata.namespace.clone().unwrap_or_default();
        let cluster = shared.hub.get(&ObjectRef::<ClusterObject>::new(
            Some(&namespace),
            &cargo.spec.cluster,
        ));
        match Settings::of(&cargo, cluster.as_deref()) {
            Some(Ok(s)) if s.key() == settings_key => {}
            _ => return,
        }
    }
}

/// The credentials `build.git.secret` names (none without one), or why there are none.
fn credentials<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    namespace: &str,
    settings: &Settings,
) -> Result<git::Credentials, String> {
    let Some(name) = settings.spec.git.as_ref().and_then(|g| g.secret.as_deref()) else {
        return Ok(git::Credentials::default());
    };
    let secret = shared
        .hub
        .get(&ObjectRef::<nanocl_api_types::secret::v1::Secret>::new(
            Some(namespace),
            name,
        ))
        .ok_or_else(|| {
            format!("spec.container.build.git.secret: secret {name:?} does not exist in namespace {namespace:?}")
        })?;
    let credentials = git::Credentials::from_secret(|key| secret.spec.value(key)).map_err(|e| {
        format!("spec.container.build.git.secret: cannot write the ssh key of secret {name:?}: {e}")
    })?;
    if credentials.basic.is_none() && credentials.ssh_key.is_none() {
        return Err(format!(
            "spec.container.build.git.secret: secret {name:?} has neither password nor token (https) nor ssh-privatekey (ssh)"
        ));
    }
    Ok(credentials)
}

/// Looks up what to build: the commit the ref names, or the context's content.
async fn resolve(settings: &Settings, credentials: &git::Credentials) -> Result<Source, String> {
    let spec = &settings.spec;
    if let Some(g) = &spec.git {
        let resolved = tokio::time::timeout(
            RESOLVE_TIMEOUT,
            git::resolve(&g.url, g.reference.as_deref(), credentials),
        )
        .await
        .map_err(|_| {
            format!(
                "spec.container.build.git.url: {} did not answer within {}s",
                g.url,
                RESOLVE_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| match e {
            git::GitError::UnknownRef { .. } => format!("spec.container.build.git.ref: {e}"),
            other => format!("spec.container.build.git.url: {other}"),
        })?;
        return Ok(Source {
            id: resolved.commit.clone(),
            kind: SourceKind::Git(resolved),
        });
    }
    let dir = std::path::PathBuf::from(spec.context.clone().unwrap_or_default());
    let options = context::Options {
        dockerfile: spec.dockerfile().to_owned(),
        skip_git: false,
        mtime: None,
    };
    let packed = tokio::task::spawn_blocking(move || context::pack(&dir, &options))
        .await
        .map_err(|e| format!("spec.container.build.context: packing failed: {e}"))?
        .map_err(|e| match e {
            context::ContextError::NoDockerfile { .. } => {
                format!("spec.container.build.dockerfile: {e}")
            }
            other => format!("spec.container.build.context: {other}"),
        })?;
    Ok(Source {
        id: packed.hash.clone(),
        kind: SourceKind::Context(packed),
    })
}

/// How a build ended.
enum Outcome {
    Built {
        id: String,
    },
    /// The build itself failed (the source, the Dockerfile): not retried for this source.
    Failed {
        message: String,
        log: Vec<String>,
    },
    /// The source could not be fetched (the server, the network, the credentials): like a
    /// source that could not be resolved, tried again in a while or when its secret
    /// changes, never settled as this commit's failure.
    Unfetched {
        message: String,
    },
    /// Docker failed (unreachable...): retried.
    Transient(DockerError),
}

/// Builds tried when Docker loses a cached layer mid-build.
const BUILD_ATTEMPTS: u32 = 3;

/// Whether Docker's build error says a layer taken from its cache vanished before the
/// image was committed: another image's removal (this store's collector, a user's `docker
/// rmi`) deleted an intermediate image this build was using. The classic builder says
/// `failed to export image: failed to set parent sha256:…: unknown parent image ID …`.
fn lost_a_cached_layer(message: &str) -> bool {
    message.contains("unknown parent image ID")
        || (message.contains("failed to export image") && message.contains("No such image"))
}

/// Fetches (git), packs and builds.
async fn build<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    settings: &Settings,
    namespace: &str,
    cargo: &str,
    source: Source,
    tag: &str,
    credentials: &git::Credentials,
) -> Outcome {
    let spec = &settings.spec;
    let checkout = match tempfile::Builder::new().prefix("nanocl-build-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            return Outcome::Failed {
                message: format!("cannot make a build directory: {e}"),
                log: Vec::new(),
            }
        }
    };
    let packed = match source.kind {
        SourceKind::Context(packed) => packed,
        SourceKind::Git(resolved) => {
            let Some(g) = &spec.git else {
                return Outcome::Failed {
                    message: "no git source".into(),
                    log: Vec::new(),
                };
            };
            let repo = checkout.path().join("repo");
            let fetching = std::time::Instant::now();
            let fetched = git::fetch(&g.url, &resolved, &repo, credentials).await;
            tracing::debug!(%tag, elapsed_ms = fetching.elapsed().as_millis(), "fetched the commit");
            if let Err(e) = fetched {
                return Outcome::Unfetched {
                    message: format!("spec.container.build.git.url: {e}"),
                };
            }
            let dir = match &g.path {
                Some(p) => repo.join(p),
                None => repo.clone(),
            };
            if !dir.is_dir() {
                return Outcome::Failed {
                    message: format!(
                        "spec.container.build.git.path: no directory {:?} in commit {} of {}",
                        g.path.as_deref().unwrap_or(""),
                        resolved.commit,
                        g.url
                    ),
                    log: Vec::new(),
                };
            }
            let options = context::Options {
                dockerfile: spec.dockerfile().to_owned(),
                skip_git: true,
                // A checkout's files all have the time of the checkout: a fixed one makes
                // the same commit the same image, layer for layer.
                mtime: Some(0),
            };
            let packing = std::time::Instant::now();
            let packed = tokio::task::spawn_blocking(move || context::pack(&dir, &options)).await;
            tracing::debug!(%tag, elapsed_ms = packing.elapsed().as_millis(), "packed the context");
            match packed {
                Ok(Ok(p)) => p,
                Ok(Err(e @ context::ContextError::NoDockerfile { .. })) => {
                    return Outcome::Failed {
                        message: format!(
                            "spec.container.build.dockerfile: {e} (commit {})",
                            resolved.commit
                        ),
                        log: Vec::new(),
                    }
                }
                Ok(Err(e)) => {
                    return Outcome::Failed {
                        message: format!("packing the context: {e}"),
                        log: Vec::new(),
                    }
                }
                Err(e) => {
                    return Outcome::Failed {
                        message: format!("packing the context: {e}"),
                        log: Vec::new(),
                    }
                }
            }
        }
    };
    // One label: the classic builder makes each a step of its own, with a container (about
    // 70 ms each). Namespace, cargo and source are in the tag.
    let mut image_labels = BTreeMap::new();
    image_labels.insert(BUILT_LABEL.to_owned(), shared.instance.clone());
    let request = BuildRequest {
        tag: tag.to_owned(),
        dockerfile: spec.dockerfile().to_owned(),
        args: settings.args.clone(),
        target: spec.target.clone(),
        labels: image_labels,
        context: packed.tar.path().to_path_buf(),
    };
    let mut log = BuildLog {
        image: tag.to_owned(),
        started: now_text(),
        ..BuildLog::default()
    };
    let log_key = BuildLog::key(namespace, cargo);
    log.push(format!(
        "building {tag} from {}",
        source_text(settings, &source.id)
    ));
    write_log(shared, &log_key, &log).await;
    let mut flushed = tokio::time::Instant::now();
    let building = std::time::Instant::now();
    let mut attempts = 0;
    let mut events = shared.docker.build_image(request.clone());
    let mut partial = String::new();
    let outcome = loop {
        let Some(event) = events.next().await else {
            break Outcome::Failed {
                message: format!("the build of {tag} ended without an image"),
                log: Vec::new(),
            };
        };
        match event {
            Ok(BuildEvent::Output(text)) => {
                partial.push_str(&text);
                while let Some(end) = partial.find('\n') {
                    let line: String = partial.drain(..=end).collect();
                    let line = line.trim_end().to_owned();
                    if line.is_empty() {
                        continue;
                    }
                    log.push(line);
                }
                if flushed.elapsed() >= LOG_FLUSH {
                    write_log(shared, &log_key, &log).await;
                    flushed = tokio::time::Instant::now();
                }
            }
            Ok(BuildEvent::Built { id }) => {
                tracing::debug!(%tag, elapsed_ms = building.elapsed().as_millis(), "Docker built the image");
                log.push(format!("built {tag} ({id})"));
                break Outcome::Built { id };
            }
            Err(DockerError::BuildFailed { message }) => {
                if !partial.trim().is_empty() {
                    log.push(partial.trim_end().to_owned());
                }
                log.push(format!("error: {message}"));
                attempts += 1;
                if lost_a_cached_layer(&message) && attempts < BUILD_ATTEMPTS {
                    // Not the source's fault: an image removed meanwhile took a layer this
                    // build had taken from the cache. The next attempt makes it anew.
                    log.push("a cached layer was removed during the build; building again".into());
                    partial.clear();
                    events = shared.docker.build_image(request.clone());
                    continue;
                }
                break Outcome::Failed {
                    message: format!("building {tag} failed: {message}"),
                    log: Vec::new(),
                };
            }
            Err(e) => {
                log.push(format!("error: {e}"));
                break Outcome::Transient(e);
            }
        }
    };
    log.done = true;
    write_log(shared, &log_key, &log).await;
    match outcome {
        Outcome::Failed { message, .. } => {
            let start = log.lines.len().saturating_sub(LOG_TAIL + 1);
            // The status keeps the last lines before the error line (the message has it).
            let end = log.lines.len().saturating_sub(1);
            Outcome::Failed {
                message,
                log: log.lines[start..end].to_vec(),
            }
        }
        other => other,
    }
}

/// `commit C of URL` or `context DIR (sha256:…)`, for the log.
fn source_text(settings: &Settings, id: &str) -> String {
    match (&settings.spec.git, &settings.spec.context) {
        (Some(g), _) => format!("commit {id} of {}", g.url),
        (None, Some(dir)) => format!("{dir} ({id})"),
        _ => id.to_owned(),
    }
}

/// Writes a build log; a failure is logged, never the build's.
async fn write_log<S: Store + Clone, D: Docker>(shared: &Shared<S, D>, key: &str, log: &BuildLog) {
    let value = serde_json::to_vec(log).unwrap_or_default();
    // Only the leader's builder writes it: a conflict is a write of a previous leader.
    for _ in 0..3 {
        let result = match shared.store.get(key).await {
            Ok(Some(kv)) => {
                shared
                    .store
                    .update(key, value.clone(), kv.mod_revision)
                    .await
            }
            Ok(None) => shared.store.create(key, value.clone()).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(_) => return,
            Err(
                crate::store::StoreError::Conflict { .. }
                | crate::store::StoreError::AlreadyExists { .. },
            ) => continue,
            Err(e) => {
                tracing::warn!(%key, error = %e, "writing the build log failed");
                return;
            }
        }
    }
}

/// Removes the build logs of cargoes that are gone.
pub async fn collect_logs<S: Store + Clone, D: Docker>(shared: &Shared<S, D>) {
    let Ok(list) = shared.store.list(LOG_PREFIX).await else {
        return;
    };
    for kv in list.items {
        let Some((namespace, name)) = kv
            .key
            .strip_prefix(LOG_PREFIX)
            .and_then(|r| r.split_once('/'))
        else {
            continue;
        };
        if !shared
            .hub
            .exists(&ObjectRef::<CargoObject>::new(Some(namespace), name))
        {
            let _ = shared.store.delete(&kv.key, Some(kv.mod_revision)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_layer_lost_mid_build_should_be_told_from_a_failing_dockerfile() {
        assert!(lost_a_cached_layer(
            "failed to export image: failed to set parent sha256:45a4caa3996e: unknown parent image ID sha256:45a4caa3996e"
        ));
        assert!(!lost_a_cached_layer(
            "The command '/bin/sh -c exit 3' returned a non-zero code: 3"
        ));
        assert!(!lost_a_cached_layer(
            "COPY failed: file not found in build context"
        ));
    }
}
