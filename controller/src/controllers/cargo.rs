//! The Cargo controller: every Cargo runs exactly its replicas, with the current spec, and
//! comes back when a container is killed, stopped or removed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use nanocl_api_types::cargo::v1::{Cargo, CargoStatus, ImagePullPolicy};
use nanocl_api_types::AnyObject;
use tokio::time::Instant;

use super::plan::{self, container_name, labels, Desired, NotReady, Op};
use super::write::{self, condition};
use super::{events, OwnerFilter, ReconcileError, Shared, FINALIZER};
use crate::docker::{Container, Docker, DockerError, State};
use crate::objects::api::Api;
use crate::objects::api::ObjectRef;
use crate::runtime::finalizer::{finalizer, Event};
use crate::runtime::runner::Action;
use crate::store::Store;
use nanocl_api_types::cargo::v1::Cargo as CargoObject;
use nanocl_api_types::cluster::v1::Cluster as ClusterObject;
use nanocl_api_types::network::v1::Network as NetworkObject;
use nanocl_api_types::Resource as _;

/// Restarts of each slot, to tell a replica that died once from one crash-looping.
#[derive(Debug, Default)]
pub struct Restarts(Mutex<HashMap<(String, u32), (u32, Instant)>>);

/// Restarts within this window count toward a crash loop.
const CRASH_WINDOW: Duration = Duration::from_secs(30);
/// Free restarts before backing off.
const FREE_RESTARTS: u32 = 3;
/// Longest wait between restarts of a crash-looping replica.
const MAX_CRASH_BACKOFF: Duration = Duration::from_secs(60);

impl Restarts {
    /// When slot `slot` of `key` may restart, recording the restart if it may now.
    fn admit(&self, key: &str, slot: u32) -> Result<(), Duration> {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let entry = map.entry((key.to_owned(), slot)).or_insert((0, now));
        if now.duration_since(entry.1) > CRASH_WINDOW + MAX_CRASH_BACKOFF {
            *entry = (0, now);
        }
        if entry.0 >= FREE_RESTARTS {
            let exp = (entry.0 - FREE_RESTARTS).min(6);
            let wait = Duration::from_secs(1 << exp).min(MAX_CRASH_BACKOFF);
            let allowed = entry.1 + wait;
            if now < allowed {
                return Err(allowed - now);
            }
        }
        *entry = (entry.0 + 1, now);
        Ok(())
    }

    fn forget(&self, key: &str) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(k, _), _| k != key);
    }
}

/// A problem on one replica, for the status.
struct Problem {
    reason: &'static str,
    message: String,
}

/// Reconciles one Cargo (`cargoes/{ns}/{name}`).
pub async fn reconcile<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    key: &str,
) -> Result<Action, ReconcileError> {
    let Some(cargo) = shared.hub.get_key::<CargoObject>(key) else {
        shared.restarts.forget(key);
        return Ok(Action::AwaitChange);
    };
    let api = Api::new(shared.store.clone());
    finalizer(&api, FINALIZER, cargo, |event| {
        reconcile_event(shared, key, event)
    })
    .await
}

/// What every phase of one cargo's reconcile works on.
struct Ctx<'a, S, D> {
    shared: &'a Shared<S, D>,
    key: &'a str,
    cargo: &'a CargoObject,
    /// The cargo as an object of any kind, for status and events.
    object: AnyObject,
    namespace: String,
    /// The label filter of its replicas.
    filter: Vec<String>,
}

/// What applying the plan found: problems for the status, and the earliest time a
/// crash-looping replica may start again.
#[derive(Default)]
struct Applied {
    problems: Vec<Problem>,
    wait: Option<Duration>,
}

/// `Apply` converges Docker toward the cargo in named phases: `prepare` (render, networks,
/// image), `observe` and `plan::plan`, `execute`, `report`. `Cleanup` removes its replicas.
async fn reconcile_event<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    key: &str,
    event: Event<CargoObject>,
) -> Result<Action, ReconcileError> {
    let (cargo, deleting) = event.into_parts();
    let namespace = cargo.metadata.namespace.clone().unwrap_or_default();
    let ctx = Ctx {
        shared,
        key,
        cargo: &cargo,
        object: CargoObject::clone(&cargo).into_any(),
        filter: OwnerFilter::instance(&shared.instance)
            .namespace(&namespace)
            .cargo(&cargo.metadata.name)
            .labels(),
        namespace,
    };
    if deleting {
        return cleanup(&ctx).await;
    }
    let desired = match prepare(&ctx).await? {
        Ok(desired) => desired,
        Err(action) => return Ok(action),
    };
    let observed = observe(&ctx).await?;
    let ops = plan::plan(&desired, &observed);
    tracing::debug!(?ops, observed = ?observed.iter().map(|c| (c.name.as_str(), c.state)).collect::<Vec<_>>(), "planned");
    let applied = execute(&ctx, &desired, &observed, &ops).await?;
    let observed = if ops.is_empty() {
        observed
    } else {
        observe(&ctx).await?
    };
    report(&ctx, &desired, observed, &applied).await?;
    Ok(match applied.wait {
        Some(after) => Action::Requeue(after),
        None if !ops.is_empty() => Action::Requeue(Duration::from_millis(500)),
        // With a health check, readiness changes without a Docker event we listen to.
        None if desired.template.healthcheck.is_some() => Action::Requeue(Duration::from_secs(5)),
        None => Action::AwaitChange,
    })
}

/// The cargo's containers as Docker lists them, with what its events said since (a replica
/// that died shows exited before the listing says so).
async fn observe<S: Store + Clone, D: Docker>(
    ctx: &Ctx<'_, S, D>,
) -> Result<Vec<Container>, ReconcileError> {
    let listed = ctx.shared.docker.list_containers(&ctx.filter).await?;
    Ok(ctx.shared.hub.deaths().overlay(listed))
}

/// Removes every replica; done (`AwaitChange`) when none is left.
async fn cleanup<S: Store + Clone, D: Docker>(
    ctx: &Ctx<'_, S, D>,
) -> Result<Action, ReconcileError> {
    let observed = ctx.shared.docker.list_containers(&ctx.filter).await?;
    let ids: Vec<&str> = observed.iter().map(|c| c.id.as_str()).collect();
    remove_replicas(ctx, &observed, &ids).await?;
    ctx.shared.restarts.forget(ctx.key);
    Ok(Action::AwaitChange)
}

/// Removes the containers `ids` side by side (in the same window as creation), and records
/// one Event for all of them.
async fn remove_replicas<S: Store + Clone, D: Docker>(
    ctx: &Ctx<'_, S, D>,
    observed: &[Container],
    ids: &[&str],
) -> Result<(), ReconcileError> {
    if ids.is_empty() {
        return Ok(());
    }
    let calls: Vec<_> = ids
        .iter()
        .map(|id| {
            let (docker, id) = (ctx.shared.docker.clone(), (*id).to_owned());
            async move { docker.remove_container(&id).await }
        })
        .collect();
    // In order (`buffered`), so each result lines up with its id.
    let results: Vec<Result<(), DockerError>> = futures::stream::iter(calls)
        .buffered(DOCKER_WINDOW)
        .collect()
        .await;
    let removed = results.iter().filter(|r| r.is_ok()).count();
    if removed > 0 {
        let names: Vec<&str> = ids
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .map(|(id, _)| {
                observed
                    .iter()
                    .find(|c| c.id == *id)
                    .map_or(*id, |c| c.name.as_str())
            })
            .collect();
        events::record(
            &ctx.shared.store,
            &ctx.object,
            false,
            "ReplicasRemoved",
            removed_message(&names),
        )
        .await;
    }
    // The first failure is the reconcile's error (retried with backoff); the rest were
    // removed.
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(())
}

/// `removed container a`, `removed 3 containers: a, b, c`, `removed 40 containers: a, b, c
/// and 37 more`.
fn removed_message(names: &[&str]) -> String {
    const SHOWN: usize = 3;
    match names {
        [one] => format!("removed container {one}"),
        _ if names.len() <= SHOWN => {
            format!("removed {} containers: {}", names.len(), names.join(", "))
        }
        _ => format!(
            "removed {} containers: {} and {} more",
            names.len(),
            names[..SHOWN].join(", "),
            names.len() - SHOWN
        ),
    }
}

/// Renders the desired container and checks what it needs: its cluster and variables, its
/// Docker networks, its image. `Err(action)`: not ready, the status says why.
async fn prepare<S: Store + Clone, D: Docker>(
    ctx: &Ctx<'_, S, D>,
) -> Result<Result<Desired, Action>, ReconcileError> {
    let (shared, cargo, object) = (ctx.shared, ctx.cargo, &ctx.object);
    let cluster = shared.hub.get(&ObjectRef::<ClusterObject>::new(
        Some(&ctx.namespace),
        &cargo.spec.cluster,
    ));
    let cluster = cluster.as_deref();
    let desired = match plan::render(cargo, cluster, &shared.instance) {
        Ok(d) => d,
        Err(not_ready) => {
            write_status(shared, object, cargo, &[], None, Some(&not_ready), &[]).await?;
            return Ok(Err(Action::AwaitChange));
        }
    };
    // The cluster's and network controllers create the Docker networks; wait for them.
    let present: Vec<String> = shared
        .docker
        .list_networks(
            &OwnerFilter::instance(&shared.instance)
                .namespace(&ctx.namespace)
                .labels(),
        )
        .await?
        .into_iter()
        .map(|n| n.name)
        .collect();
    if let Some(missing) = desired
        .template
        .networks
        .iter()
        .find(|n| !present.contains(n))
    {
        let why = NotReady {
            reason: "NetworkNotReady",
            message: format!(
                "Docker network {missing} does not exist yet (is its Network object applied?)"
            ),
        };
        write_status(shared, object, cargo, &[], Some(&desired), Some(&why), &[]).await?;
        // The network's controller's status write triggers this cargo; the requeue is a
        // fallback.
        return Ok(Err(Action::Requeue(Duration::from_millis(500))));
    }
    if let Err(problem) = ensure_image(shared, cargo, &desired).await {
        events::record(
            &shared.store,
            object,
            true,
            problem.reason,
            problem.message.clone(),
        )
        .await;
        write_status(shared, object, cargo, &[], Some(&desired), None, &[problem]).await?;
        return Err(ReconcileError::Docker(DockerError::PullFailed {
            image: desired.template.image.clone(),
            message: "see the cargo's status".into(),
        }));
    }
    Ok(Ok(desired))
}

/// Carries out the plan: consecutive creations side by side (Docker takes several at once
/// far faster than one after the other), everything else in order.
async fn execute<S: Store + Clone, D: Docker>(
    ctx: &Ctx<'_, S, D>,
    desired: &Desired,
    observed: &[Container],
    ops: &[Op],
) -> Result<Applied, ReconcileError> {
    let mut applied = Applied::default();
    // Runs of the same operation go to Docker side by side (in a bounded window); the order
    // between runs is kept (an outdated replica with a fixed host port goes before its
    // successor is created).
    let mut i = 0;
    while i < ops.len() {
        match &ops[i] {
            Op::Create { .. } => {
                let slots: Vec<u32> = ops[i..]
                    .iter()
                    .map_while(|op| match op {
                        Op::Create { slot } => Some(*slot),
                        _ => None,
                    })
                    .collect();
                i += slots.len();
                applied
                    .problems
                    .extend(create_replicas(ctx, desired, &slots).await?);
            }
            Op::Remove { .. } => {
                let ids: Vec<&str> = ops[i..]
                    .iter()
                    .map_while(|op| match op {
                        Op::Remove { id } => Some(id.as_str()),
                        _ => None,
                    })
                    .collect();
                i += ids.len();
                remove_replicas(ctx, observed, &ids).await?;
            }
            Op::Start { id, slot } => {
                i += 1;
                restart_replica(ctx, id, *slot, &mut applied).await?;
            }
        }
    }
    for problem in &applied.problems {
        events::record(
            &ctx.shared.store,
            &ctx.object,
            true,
            problem.reason,
            problem.message.clone(),
        )
        .await;
    }
    Ok(applied)
}

/// Creates and starts the replicas of `slots` at once; what went wrong, per replica.
async fn create_replicas<S: Store + Clone, D: Docker>(
    ctx: &Ctx<'_, S, D>,
    desired: &Desired,
    slots: &[u32],
) -> Result<Vec<Problem>, ReconcileError> {
    let results: Vec<Result<Option<Problem>, ReconcileError>> =
        futures::stream::iter(slots.to_vec())
            .map(|slot| create_and_start(ctx.shared, ctx.cargo, desired, slot))
            .buffer_unordered(DOCKER_WINDOW)
            .collect()
            .await;
    let mut problems = Vec::new();
    for result in results {
        problems.extend(result?);
    }
    let list = slots
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    events::record(
        &ctx.shared.store,
        &ctx.object,
        false,
        "ReplicasCreated",
        format!("created replica(s) {list}"),
    )
    .await;
    Ok(problems)
}

/// Starts a stopped replica again, unless it is crash-looping and must wait.
async fn restart_replica<S: Store + Clone, D: Docker>(
    ctx: &Ctx<'_, S, D>,
    id: &str,
    slot: u32,
    applied: &mut Applied,
) -> Result<(), ReconcileError> {
    let shared = ctx.shared;
    let last = shared.docker.inspect_container(id).await?;
    match last.as_ref().map(|c| c.state) {
        // Removed meanwhile: its `destroy` event brings the next reconcile, which replaces it.
        None | Some(State::Removing) => return Ok(()),
        // Started again meanwhile (a listing or event behind the container itself).
        Some(State::Running) => return Ok(()),
        Some(_) => {}
    }
    // Killed or stopped from outside (SIGKILL without OOM, SIGTERM): not a crash; back at
    // once. Anything else counts toward a crash loop.
    let external = last
        .as_ref()
        .is_some_and(|c| !c.oom_killed && matches!(c.exit_code, Some(137 | 143)));
    let admitted = if external {
        Ok(())
    } else {
        shared.restarts.admit(ctx.key, slot)
    };
    match admitted {
        Ok(()) => {
            if let Err(e) = shared.docker.start_container(id).await {
                applied.problems.push(start_problem(e)?);
                return Ok(());
            }
            let why = match &last {
                Some(c) if c.oom_killed => "after it was OOMKilled".to_owned(),
                Some(Container {
                    exit_code: Some(code),
                    ..
                }) => format!("after it exited with code {code}"),
                _ => "after it stopped".to_owned(),
            };
            events::record(
                &shared.store,
                &ctx.object,
                !external,
                "ReplicaRestarted",
                format!("restarted replica {slot} {why}"),
            )
            .await;
        }
        Err(after) => {
            let detail = match last {
                Some(c) if c.oom_killed => {
                    "was killed for using too much memory (OOMKilled)".to_owned()
                }
                Some(Container {
                    exit_code: Some(code),
                    ..
                }) => format!("exited with code {code}"),
                _ => "keeps stopping".to_owned(),
            };
            applied.problems.push(Problem {
                reason: "CrashLoopBackOff",
                message: format!(
                    "replica {slot} {detail}; restarting in {}s",
                    after.as_secs().max(1)
                ),
            });
            applied.wait = Some(applied.wait.map_or(after, |w| w.min(after)));
        }
    }
    Ok(())
}

/// Writes the status from what Docker holds now (with health, when the spec has a check).
async fn report<S: Store + Clone, D: Docker>(
    ctx: &Ctx<'_, S, D>,
    desired: &Desired,
    observed: Vec<Container>,
    applied: &Applied,
) -> Result<(), ReconcileError> {
    let observed = with_health(ctx.shared, desired, observed).await?;
    write_status(
        ctx.shared,
        &ctx.object,
        ctx.cargo,
        &observed,
        Some(desired),
        None,
        &applied.problems,
    )
    .await
}

fn start_problem(e: DockerError) -> Result<Problem, ReconcileError> {
    match e {
        DockerError::PortAllocated { message, .. } => Ok(Problem {
            reason: "PortInUse",
            message,
        }),
        DockerError::StartFailed { message, .. } => Ok(Problem {
            reason: "StartFailed",
            message,
        }),
        other => Err(other.into()),
    }
}

/// Docker calls (create+start, remove) one reconcile makes side by side. dockerd is CPU-bound
/// on a small host: a wider window did not make raw Docker faster either (see
/// docs/performance.md).
const DOCKER_WINDOW: usize = 8;

async fn create_and_start<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    cargo: &Cargo,
    desired: &Desired,
    slot: u32,
) -> Result<Option<Problem>, ReconcileError> {
    let namespace = cargo.metadata.namespace.clone().unwrap_or_default();
    let mut spec = desired.template.clone();
    spec.name = container_name(
        &cargo.metadata.name,
        slot,
        &desired.hash,
        &cargo.spec.cluster,
        &namespace,
    );
    spec.labels.insert(labels::SLOT.into(), slot.to_string());
    let id = match shared.docker.create_container(&spec).await {
        Ok(id) => id,
        Err(DockerError::NameConflict { name }) => {
            // Deterministic names: a crash between create and record leaves our own container
            // behind under this name; adopt it. Anything else is not ours to touch.
            match shared.docker.inspect_container(&name).await? {
                Some(c)
                    if c.labels.get(labels::MANAGED).map(String::as_str) == Some("true")
                        && c.labels.get(labels::CARGO) == Some(&cargo.metadata.name)
                        && c.labels.get(labels::NAMESPACE) == Some(&namespace) =>
                {
                    c.id
                }
                _ => {
                    return Ok(Some(Problem {
                        reason: "NameConflict",
                        message: format!("a container named {name} exists and is not managed by nanocl; it is left alone"),
                    }));
                }
            }
        }
        Err(e) => return Err(e.into()),
    };
    match shared.docker.start_container(&id).await {
        Ok(()) => Ok(None),
        Err(e) => start_problem(e).map(Some),
    }
}

async fn ensure_image<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    cargo: &Cargo,
    desired: &Desired,
) -> Result<(), Problem> {
    let image = &desired.template.image;
    let policy = cargo
        .spec
        .container
        .image_pull_policy
        .unwrap_or(ImagePullPolicy::IfNotPresent);
    let present = shared
        .docker
        .image_present(image)
        .await
        .map_err(|e| Problem {
            reason: "ImageCheckFailed",
            message: e.to_string(),
        })?;
    match (policy, present) {
        (ImagePullPolicy::IfNotPresent | ImagePullPolicy::Never, true) => Ok(()),
        (ImagePullPolicy::Never, false) => Err(Problem {
            reason: "ImageNotPresent",
            message: format!("image {image} is not on this host and imagePullPolicy is Never"),
        }),
        (ImagePullPolicy::Always, _) | (ImagePullPolicy::IfNotPresent, false) => {
            shared.docker.pull_image(image).await.map_err(|e| Problem {
                reason: "ImagePullBackOff",
                message: e.to_string(),
            })
        }
    }
}

/// Running containers of the current spec count as ready only when healthy, if they have a
/// health check: inspect them for it (a listing does not say).
async fn with_health<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    desired: &Desired,
    observed: Vec<Container>,
) -> Result<Vec<Container>, ReconcileError> {
    if desired.template.healthcheck.is_none() {
        return Ok(observed);
    }
    let mut out = Vec::with_capacity(observed.len());
    for c in observed {
        if c.state == State::Running {
            if let Some(inspected) = shared.docker.inspect_container(&c.id).await? {
                out.push(inspected);
                continue;
            }
        }
        out.push(c);
    }
    Ok(out)
}

async fn write_status<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    object: &AnyObject,
    cargo: &Cargo,
    observed: &[Container],
    desired: Option<&Desired>,
    not_ready: Option<&NotReady>,
    problems: &[Problem],
) -> Result<(), ReconcileError> {
    let previous = cargo.status.clone().unwrap_or_default();
    let generation = cargo.metadata.generation;
    let want = u32::try_from(cargo.spec.replicas.unwrap_or(1)).unwrap_or(0);
    let current =
        |c: &&Container| desired.is_some_and(|d| c.labels.get(labels::SPEC_HASH) == Some(&d.hash));
    let updated = observed.iter().filter(current).count();
    let ready = observed
        .iter()
        .filter(current)
        .filter(|c| c.state == State::Running && c.health.as_deref().is_none_or(|h| h == "healthy"))
        .count();
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let all_ready = not_ready.is_none()
        && ready == want as usize
        && updated == want as usize
        && observed.len() == want as usize;
    let (ready_reason, ready_message) = match (not_ready, problems.first()) {
        (Some(nr), _) => (nr.reason, nr.message.clone()),
        (None, Some(p)) if !all_ready => (p.reason, p.message.clone()),
        _ if all_ready => ("ReplicasReady", format!("{ready}/{want} replicas ready")),
        _ => (
            "ReplicasNotReady",
            format!("{ready}/{want} replicas ready, {updated} up to date"),
        ),
    };
    let progressing = !all_ready && not_ready.is_none() && problems.is_empty();
    let conditions = vec![
        condition(
            "Ready",
            all_ready,
            ready_reason,
            ready_message,
            generation,
            &previous.conditions,
        ),
        condition(
            "Progressing",
            progressing,
            if progressing {
                "ReplicasUpdating"
            } else {
                "Stable"
            },
            if progressing {
                format!("{updated}/{want} replicas up to date")
            } else {
                String::new()
            },
            generation,
            &previous.conditions,
        ),
        condition(
            "Degraded",
            !problems.is_empty(),
            problems.first().map_or("AsExpected", |p| p.reason),
            problems
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            generation,
            &previous.conditions,
        ),
    ];
    let status = CargoStatus {
        observed_generation: generation,
        replicas: count(observed.len()),
        ready_replicas: count(ready),
        updated_replicas: count(updated),
        conditions,
    };
    let value = serde_json::to_value(&status).unwrap_or_default();
    write::patch_status(&shared.store, object, &write::owners::CARGO, value).await?;
    Ok(())
}

/// Removes managed containers and networks of this nanocld whose owner object is gone, on
/// start and every `every`, until `done`.
pub async fn collect_garbage_until<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    every: Duration,
    done: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(done);
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            () = &mut done => return,
            _ = tick.tick() => {
                if let Err(e) = collect_garbage(shared).await {
                    tracing::warn!(error = %e, "garbage collection failed");
                }
                // A subnet whose owner is gone (deleted while nanocld was down) is free again.
                let exists = |owner: &str| {
                    if let Some(at) = ObjectRef::<ClusterObject>::parse(owner) {
                        shared.hub.exists(&at)
                    } else if let Some(at) = ObjectRef::<NetworkObject>::parse(owner) {
                        shared.hub.exists(&at)
                    } else {
                        true
                    }
                };
                if let Err(e) = super::subnets::collect(&shared.store, exists).await {
                    tracing::warn!(error = %e, "collecting released subnets failed");
                }
                // Events are kept for an hour after they were last seen.
                if let Err(e) = events::collect(&shared.store).await {
                    tracing::warn!(error = %e, "collecting old events failed");
                }
            }
        }
    }
}

/// One garbage-collection pass.
pub async fn collect_garbage<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
) -> Result<(), ReconcileError> {
    let ours = OwnerFilter::instance(&shared.instance).labels();
    for c in shared.docker.list_containers(&ours).await? {
        let (Some(ns), Some(cargo)) =
            (c.labels.get(labels::NAMESPACE), c.labels.get(labels::CARGO))
        else {
            continue;
        };
        // `exists`, not `cached`: a cargo this nanocld cannot decode still owns its replicas.
        if !shared
            .hub
            .exists(&ObjectRef::<CargoObject>::new(Some(ns), cargo))
        {
            tracing::info!(container = %c.name, "removing a managed container whose cargo no longer exists");
            shared.docker.remove_container(&c.id).await?;
        }
    }
    for n in shared.docker.list_networks(&ours).await? {
        let Some(ns) = n.labels.get(labels::NAMESPACE) else {
            continue;
        };
        let owned = match (n.labels.get(labels::NETWORK), n.labels.get(labels::CLUSTER)) {
            (Some(net), _) => shared
                .hub
                .exists(&ObjectRef::<NetworkObject>::new(Some(ns), net)),
            (None, Some(cluster)) => shared
                .hub
                .exists(&ObjectRef::<ClusterObject>::new(Some(ns), cluster)),
            _ => continue,
        };
        if !owned {
            tracing::info!(network = %n.name, "removing a managed network whose owner no longer exists");
            // Still in use: the next pass tries again.
            let _ = shared.docker.remove_network(&n.id).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn restarts_should_be_free_three_times_then_back_off_and_forget_after_a_quiet_while() {
        let restarts = Restarts::default();
        for _ in 0..FREE_RESTARTS {
            assert_eq!(restarts.admit("k", 0), Ok(()));
        }
        let wait = restarts.admit("k", 0).expect_err("a crash loop waits");
        assert_eq!(wait, Duration::from_secs(1));
        assert!(restarts.admit("k", 1).is_ok(), "slots are counted apart");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(restarts.admit("k", 0), Ok(()));
        assert_eq!(
            restarts.admit("k", 0),
            Err(Duration::from_secs(2)),
            "the wait doubles"
        );
        tokio::time::advance(CRASH_WINDOW + MAX_CRASH_BACKOFF + Duration::from_secs(1)).await;
        assert_eq!(
            restarts.admit("k", 0),
            Ok(()),
            "a quiet while resets the count"
        );
        restarts.forget("k");
        for _ in 0..FREE_RESTARTS {
            assert_eq!(restarts.admit("k", 0), Ok(()));
        }
    }
}
