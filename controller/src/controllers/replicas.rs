//! The replica runner of one node: runs the containers of the Replicas placed on this node
//! (by the scheduler, as `Replica` objects), with the current spec, brings them back when
//! they are killed, stopped or removed, removes what is no longer placed here, and reports
//! each Replica's state in its status. One reconcile per Cargo (its key), covering every
//! slot of the cargo this node runs, so that a rolling replacement and the aggregated
//! Events work as on one host.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use nanocl_api_types::cargo::v1::{Cargo, ImagePullPolicy};
use nanocl_api_types::replica::v1::{Replica as ReplicaObject, ReplicaStatus};
use nanocl_api_types::AnyObject;
use tokio::time::Instant;

use super::plan::{self, container_name, labels, Desired, NotReady, Op};
use super::{events, OwnerFilter, ReconcileError, Shared};
use crate::docker::{Container, Docker, DockerError, NetworkSpec, State};
use crate::objects::api::{Api, ObjectRef};
use crate::runtime::runner::Action;
use crate::store::Store;
use nanocl_api_types::cargo::v1::Cargo as CargoObject;
use nanocl_api_types::cluster::v1::Cluster as ClusterObject;
use nanocl_api_types::network::v1::Network as NetworkObject;
use nanocl_api_types::Resource as _;

/// The finalizer every Replica carries until the agent of its node has removed its
/// container (or the scheduler gave up on a lost node).
pub const AGENT_FINALIZER: &str = "nanocl.io/agent";

/// Restarts of each slot, to tell a replica that died once from one crash-looping; and
/// how many times each container was started again (what `get replicas` shows).
#[derive(Debug, Default)]
pub struct Restarts(
    Mutex<HashMap<(String, u32), (u32, Instant)>>,
    Mutex<HashMap<String, u32>>,
);

/// Containers whose restarts are remembered at most (the oldest counts are dropped beyond:
/// a Replica's status keeps what was written).
const COUNTED_CONTAINERS: usize = 10_000;

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

    /// Counts one more start of container `name` after it stopped.
    fn started_again(&self, name: &str) {
        let mut totals = self
            .1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if totals.len() >= COUNTED_CONTAINERS && !totals.contains_key(name) {
            totals.clear();
        }
        *totals.entry(name.to_owned()).or_default() += 1;
    }

    /// How many times container `name` was started again by this nanocld.
    fn of(&self, name: &str) -> u32 {
        self.1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// Forgets every count of cargo `key` (of any revision: `key#hash`).
    fn forget(&self, key: &str) {
        let revisions = format!("{key}#");
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(k, _), _| k != key && !k.starts_with(&revisions));
    }
}

/// A problem on one replica (or, without a slot, on all of this node's), for the status.
struct Problem {
    slot: Option<u32>,
    reason: &'static str,
    message: String,
}

/// Reconciles this node's part of one Cargo (`cargoes/{ns}/{name}`).
pub async fn reconcile<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    node: &str,
    key: &str,
) -> Result<Action, ReconcileError> {
    let Some(at) = ObjectRef::<CargoObject>::parse(key) else {
        return Ok(Action::AwaitChange);
    };
    let namespace = at.key().namespace.unwrap_or_default();
    let name = at.key().name;
    let mine: Vec<std::sync::Arc<ReplicaObject>> = shared
        .hub
        .replicas_of(&namespace, &name)
        .into_iter()
        .filter(|r| r.spec.node == node)
        .collect();
    let filter = OwnerFilter::instance(&shared.instance)
        .namespace(&namespace)
        .cargo(&name)
        .labels();
    let cargo = shared.hub.get(&at);
    if cargo.is_none() && shared.hub.exists(&at) {
        // Stored but not decodable by this nanocld: its containers are left as they are.
        return Ok(Action::AwaitChange);
    }
    let Some(cargo) = cargo.filter(|c| c.metadata.deletion_timestamp.is_none()) else {
        // Gone or going: nothing of it runs here.
        let observed = ours(shared.docker.list_containers(&filter).await?, node);
        if !observed.is_empty() {
            let ids: Vec<&str> = observed.iter().map(|c| c.id.as_str()).collect();
            let object = shared
                .hub
                .get(&at)
                .map(|c| CargoObject::clone(&c).into_any());
            // The proxy no longer routes to a cargo being deleted: what is in flight ends.
            let _drained = if shared.proxy.busy(&addresses(&observed, &ids)).await {
                Some(drain(shared, object.as_ref(), &observed, &ids).await)
            } else {
                None
            };
            remove_containers(shared, object.as_ref(), &observed, &ids).await?;
        }
        release(shared, &mine, &BTreeSet::new()).await?;
        shared.restarts.forget(key);
        return Ok(Action::AwaitChange);
    };
    let ctx = Ctx {
        shared,
        key,
        node,
        cargo: &cargo,
        object: CargoObject::clone(&cargo).into_any(),
        filter,
        namespace,
        // A slot beyond the cargo's count goes as soon as the cargo says so, before the
        // scheduler has deleted its Replica: a scale-down is one removal, one Event.
        slots: mine
            .iter()
            .filter(|r| r.metadata.deletion_timestamp.is_none())
            .map(|r| r.spec.slot)
            .filter(|slot| *slot < plan::replicas_wanted(&cargo))
            .collect(),
        mine: &mine,
    };
    run(&ctx).await
}

/// What every phase of one cargo's reconcile works on.
struct Ctx<'a, S, D> {
    shared: &'a Shared<S, D>,
    key: &'a str,
    node: &'a str,
    cargo: &'a CargoObject,
    /// The cargo as an object of any kind, for events.
    object: AnyObject,
    namespace: String,
    /// The label filter of its replicas.
    filter: Vec<String>,
    /// The slots placed on this node (and not being removed).
    slots: BTreeSet<u32>,
    /// This node's Replicas of the cargo, those being removed included.
    mine: &'a [std::sync::Arc<ReplicaObject>],
}

/// What applying the plan found: problems for the status, and the earliest time a
/// crash-looping replica may start again.
#[derive(Default)]
struct Applied {
    problems: Vec<Problem>,
    wait: Option<Duration>,
}

/// The desired container of each slot placed here: the revision its Replica says (several
/// during an update), rendered once per revision.
struct Prepared {
    /// One per revision.
    desired: Vec<Desired>,
    /// Per slot: its revision (an index in `desired`), its `minReadySeconds` and the
    /// revision's number.
    slots: BTreeMap<u32, (usize, u32, Option<u32>)>,
}

impl Prepared {
    fn of(&self, slot: u32) -> Option<&Desired> {
        self.slots
            .get(&slot)
            .and_then(|(i, _, _)| self.desired.get(*i))
    }

    fn wanted(&self) -> BTreeMap<u32, &Desired> {
        self.slots
            .iter()
            .filter_map(|(slot, (i, _, _))| Some((*slot, self.desired.get(*i)?)))
            .collect()
    }

    /// Whether a container counts as ready: of its slot's revision, running, healthy when it
    /// has a check, and up for the slot's `minReadySeconds` (its start time known by
    /// inspection).
    fn ready(&self, c: &Container, now: SystemTime) -> bool {
        let Some(slot) = slot_of(c) else { return false };
        let current = self
            .of(slot)
            .is_some_and(|d| c.labels.get(labels::SPEC_HASH) == Some(&d.hash));
        current
            && c.state == State::Running
            && c.health.as_deref().is_none_or(|h| h == "healthy")
            && self.ready_in(c, now).is_none()
    }

    /// How long until a running container has been up for its slot's `minReadySeconds`
    /// (`None`: it has, or there is no minimum).
    fn ready_in(&self, c: &Container, now: SystemTime) -> Option<Duration> {
        let min = self.slots.get(&slot_of(c)?).map_or(0, |(_, m, _)| *m);
        if min == 0 {
            return None;
        }
        let started = c.started_at?;
        let at = started + Duration::from_secs(u64::from(min));
        at.duration_since(now).ok().filter(|d| !d.is_zero())
    }

    /// Whether containers must be inspected (health, start time) to tell readiness.
    fn needs_inspect(&self) -> bool {
        self.desired
            .iter()
            .any(|d| d.template.healthcheck.is_some())
            || self.slots.values().any(|(_, m, _)| *m > 0)
    }
}

/// How long pre-flight may take (a pull, a fetch) before the listing taken beside it is
/// taken again.
const STALE_LISTING: Duration = Duration::from_millis(500);

/// Converges this node's containers of the cargo in named phases: `prepare` (render,
/// networks, image), `observe` and `plan::plan_slots`, `execute`, `report`.
async fn run<S: Store + Clone, D: Docker>(ctx: &Ctx<'_, S, D>) -> Result<Action, ReconcileError> {
    let (prepared, listed) = if ctx.slots.is_empty() {
        // Nothing placed here: only removals, whatever the spec says.
        (None, list(ctx).await?)
    } else {
        // The pre-flight calls and the listing side by side: each is a Docker round trip
        // that the first create would otherwise wait for in turn.
        let began = std::time::Instant::now();
        let (prepared, listed) = tokio::join!(prepare(ctx), list(ctx));
        let prepared = match prepared? {
            Ok(prepared) => prepared,
            Err(action) => return Ok(action),
        };
        // A pull or a fetch took a while: what the listing said may be stale by now.
        let listed = if began.elapsed() > STALE_LISTING {
            list(ctx).await?
        } else {
            listed?
        };
        (Some(prepared), listed)
    };
    let observed = observed(ctx, prepared.as_ref(), listed).await?;
    let observed = repair_drift(ctx, prepared.as_ref(), observed).await?;
    if let Some(p) = &prepared {
        roll_a_rebuilt_image(ctx, p, &observed).await?;
    }
    let now = SystemTime::now();
    let ops = match &prepared {
        Some(p) => plan::plan_slots(&p.wanted(), &observed, &|c: &Container| p.ready(c, now)),
        None => observed
            .iter()
            .map(|c| Op::Remove { id: c.id.clone() })
            .collect(),
    };
    tracing::debug!(?ops, observed = ?observed.iter().map(|c| (c.name.as_str(), c.state)).collect::<Vec<_>>(), "planned");
    let removed: Vec<&str> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Remove { id } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    // Out of rotation until removed (Docker may give its address to a new container then).
    let _drained = if ctx.shared.proxy.busy(&addresses(&observed, &removed)).await {
        // Where their slots' traffic goes now (the successor, or nowhere), then the drain.
        if let Some(p) = &prepared {
            let after: Vec<Container> = observed
                .iter()
                .filter(|c| !removed.contains(&c.id.as_str()))
                .cloned()
                .collect();
            write_status(ctx, &after, Some(p), None, &[], now).await?;
        }
        Some(drain(ctx.shared, Some(&ctx.object), &observed, &removed).await)
    } else {
        None
    };
    let applied = execute(ctx, prepared.as_ref(), &observed, &ops).await?;
    let observed = if ops.is_empty() {
        observed
    } else {
        observe(ctx, prepared.as_ref()).await?
    };
    let remaining: BTreeSet<u32> = observed.iter().filter_map(slot_of).collect();
    release(ctx.shared, ctx.mine, &remaining).await?;
    let now = SystemTime::now();
    // The moment a replica will have been up for its minReadySeconds.
    let min_ready_wait = prepared.as_ref().and_then(|p| {
        observed
            .iter()
            .filter(|c| c.state == State::Running)
            .filter_map(|c| p.ready_in(c, now))
            .min()
    });
    if let Some(prepared) = &prepared {
        write_status(ctx, &observed, Some(prepared), None, &applied.problems, now).await?;
    }
    let wait = match (applied.wait, min_ready_wait) {
        (Some(a), Some(b)) => Some(a.min(b + Duration::from_millis(50))),
        (a, b) => a.or(b.map(|b| b + Duration::from_millis(50))),
    };
    Ok(match wait {
        Some(after) => Action::Requeue(after),
        None if !ops.is_empty() => Action::Requeue(Duration::from_millis(500)),
        // With a health check, readiness changes without a Docker event we listen to.
        None if prepared
            .as_ref()
            .is_some_and(|p| p.desired.iter().any(|d| d.template.healthcheck.is_some())) =>
        {
            Action::Requeue(Duration::from_secs(5))
        }
        None => Action::AwaitChange,
    })
}

/// Containers changed behind nanocl's back (`super::drift`): one updated or renamed is
/// removed, and the plan creates its slot's container anew (a container is never kept under
/// a name or with resources the spec did not give it); a running one disconnected from a
/// network of its spec is connected again. Each is said in one Warning Event. What is left is
/// what the plan works on.
async fn repair_drift<S: Store + Clone, D: Docker>(
    ctx: &Ctx<'_, S, D>,
    prepared: Option<&Prepared>,
    observed: Vec<Container>,
) -> Result<Vec<Container>, ReconcileError> {
    let Some(prepared) = prepared else {
        return Ok(observed);
    };
    let drifts = ctx.shared.hub.drifts();
    let mut kept = Vec::with_capacity(observed.len());
    let mut said = Vec::new();
    let mut failure = None;
    for c in observed {
        let (Some(slot), Some(hash)) = (slot_of(&c), c.labels.get(labels::SPEC_HASH)) else {
            kept.push(c);
            continue;
        };
        let expected = container_name(
            &ctx.cargo.metadata.name,
            slot,
            hash,
            &ctx.cargo.spec.cluster,
            &ctx.namespace,
        );
        let changed = drifts.of(&c.id).or_else(|| {
            (c.name != expected).then(|| format!("it was renamed to {} (docker rename)", c.name))
        });
        if let Some(what) = changed {
            match ctx.shared.docker.remove_container(&c.id).await {
                Ok(()) | Err(DockerError::NotFound { .. }) => {
                    drifts.forget(&c.id);
                    said.push(format!(
                        "{expected}: {what}; removed, a new container takes its place"
                    ));
                }
                Err(e) => {
                    failure.get_or_insert(e);
                    kept.push(c);
                }
            }
            continue;
        }
        let desired = prepared
            .of(slot)
            .filter(|d| d.hash == *hash && c.state == State::Running);
        if let (Some(d), Some(networks)) = (desired, &c.networks) {
            for network in d
                .template
                .networks
                .iter()
                .filter(|n| !networks.contains_key(*n))
            {
                match ctx
                    .shared
                    .docker
                    .connect_network(&c.id, network, &d.template.aliases)
                    .await
                {
                    Ok(()) => said.push(format!(
                        "{}: it was disconnected from network {network} (docker network disconnect); connected again",
                        c.name
                    )),
                    Err(e) => {
                        failure.get_or_insert(e);
                    }
                }
            }
        }
        kept.push(c);
    }
    if !said.is_empty() {
        tracing::warn!(cargo = %ctx.cargo.metadata.name, repaired = ?said, "drift repaired");
        events::record(
            &ctx.shared.store,
            &ctx.object,
            true,
            "DriftRepaired",
            format!("changed behind nanocl's back: {}", said.join("; ")),
        )
        .await;
    }
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(kept),
    }
}

/// `imagePullPolicy: Always`: when the image's tag names another image than the one the
/// replicas run (rebuilt here, or pulled), the cargo is restarted as `nanocl rollout restart`
/// would (its `restartedAt` annotation), so the new image is rolled out through the normal,
/// health-gated update and recorded as a revision. Not while an update is in progress.
async fn roll_a_rebuilt_image<S: Store + Clone, D: Docker>(
    ctx: &Ctx<'_, S, D>,
    prepared: &Prepared,
    observed: &[Container],
) -> Result<(), ReconcileError> {
    let cargo = ctx.cargo;
    if cargo.spec.container.image_pull_policy != Some(ImagePullPolicy::Always)
        || cargo.spec.container.build.is_some()
    {
        return Ok(());
    }
    let [desired] = &prepared.desired[..] else {
        return Ok(());
    };
    if observed
        .iter()
        .any(|c| c.labels.get(labels::SPEC_HASH) != Some(&desired.hash))
    {
        return Ok(());
    }
    let image = &desired.template.image;
    let Some(now_named) = ctx.shared.docker.image_id(image).await? else {
        return Ok(());
    };
    let Some(stale) = observed
        .iter()
        .find_map(|c| c.image_id.as_ref().filter(|id| **id != now_named))
    else {
        return Ok(());
    };
    let short = |id: &str| {
        let hex = id.trim_start_matches("sha256:");
        hex[..hex.len().min(12)].to_owned()
    };
    let mut next = cargo.clone();
    next.metadata.annotations.insert(
        nanocl_api_types::cargo::v1::RESTARTED_AT_ANNOTATION.to_owned(),
        crate::objects::now(),
    );
    let api: Api<CargoObject, S> = Api::new(ctx.shared.store.clone());
    match api.replace(cargo, &next).await {
        Ok(()) => {
            events::record(
                &ctx.shared.store,
                &ctx.object,
                false,
                "ImageChanged",
                format!(
                    "{image} now names image {} (the replicas run {}): rolling them to it (imagePullPolicy: Always)",
                    short(&now_named),
                    short(stale)
                ),
            )
            .await;
            Ok(())
        }
        // Someone wrote first (another node saw it too): the next reconcile looks again.
        Err(crate::objects::ObjectError::Store(crate::store::StoreError::Conflict { .. })) => {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn slot_of(c: &Container) -> Option<u32> {
    c.labels.get(labels::SLOT)?.parse().ok()
}

/// Lets the Replicas being removed go once their slot has no container here.
async fn release<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    mine: &[std::sync::Arc<ReplicaObject>],
    remaining: &BTreeSet<u32>,
) -> Result<(), ReconcileError> {
    let api: Api<ReplicaObject, S> = Api::new(shared.store.clone());
    for r in mine {
        if r.metadata.deletion_timestamp.is_some() && !remaining.contains(&r.spec.slot) {
            api.remove_finalizer(r, AGENT_FINALIZER).await?;
        }
    }
    Ok(())
}

/// The cargo's containers on this node as Docker lists them, with what its events said
/// since (a replica that died shows exited before the listing says so).
async fn observe<S: Store + Clone, D: Docker>(
    ctx: &Ctx<'_, S, D>,
    prepared: Option<&Prepared>,
) -> Result<Vec<Container>, ReconcileError> {
    let listed = list(ctx).await?;
    observed(ctx, prepared, listed).await
}

/// This node's containers of the cargo, as Docker lists them.
async fn list<S: Store + Clone, D: Docker>(
    ctx: &Ctx<'_, S, D>,
) -> Result<Vec<Container>, ReconcileError> {
    Ok(ours(
        ctx.shared.docker.list_containers(&ctx.filter).await?,
        ctx.node,
    ))
}

/// What `listed` is: corrected by the Docker events the listing may lag behind, and
/// inspected when readiness needs it.
async fn observed<S: Store + Clone, D: Docker>(
    ctx: &Ctx<'_, S, D>,
    prepared: Option<&Prepared>,
    listed: Vec<Container>,
) -> Result<Vec<Container>, ReconcileError> {
    let observed = ctx.shared.hub.deaths().overlay(listed);
    match prepared {
        Some(p) if p.needs_inspect() => inspected(ctx.shared, observed).await,
        _ => Ok(observed),
    }
}

/// The containers of node `node`: labelled with it, or with no node at all (created before
/// nodes existed: adopted).
fn ours(containers: Vec<Container>, node: &str) -> Vec<Container> {
    containers
        .into_iter()
        .filter(|c| c.labels.get(labels::NODE).is_none_or(|n| n == node))
        .collect()
}

/// The addresses of containers `ids` on all their networks.
fn addresses(observed: &[Container], ids: &[&str]) -> Vec<std::net::IpAddr> {
    observed
        .iter()
        .filter(|c| ids.contains(&c.id.as_str()))
        .flat_map(|c| c.networks.iter().flatten())
        .filter_map(|(_, ip)| ip.parse().ok())
        .collect()
}

/// Waits for the node's proxy to stop sending traffic to containers `ids` and for what is
/// in flight to them to end (up to `handoff::DRAIN_TIMEOUT`; said in a Warning Event on
/// `object` when it ran out). They stay out of rotation while the release lives.
async fn drain<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    object: Option<&AnyObject>,
    observed: &[Container],
    ids: &[&str],
) -> crate::proxy::plane::Release {
    use crate::proxy::handoff::{Drained, DRAIN_TIMEOUT, PROPAGATION};
    let addresses = addresses(observed, ids);
    let started = std::time::Instant::now();
    let (how, guard) = shared
        .proxy
        .drain(&addresses, PROPAGATION, DRAIN_TIMEOUT)
        .await;
    let names = || {
        observed
            .iter()
            .filter(|c| ids.contains(&c.id.as_str()))
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match how {
        Drained::Idle => {
            tracing::debug!(containers = %names(), took = ?started.elapsed(), "drained");
        }
        Drained::TimedOut(n) => {
            if let Some(object) = object {
                events::record(
                    &shared.store,
                    object,
                    true,
                    "DrainTimedOut",
                    format!(
                        "{n} request(s) or stream(s) through the proxy still in flight to {} after {}s; removed anyway",
                        names(),
                        DRAIN_TIMEOUT.as_secs()
                    ),
                )
                .await;
            }
        }
    }
    guard
}

/// Removes the containers `ids` side by side (in the same window as creation), and records
/// one Event for all of them on the cargo (when it is still there).
async fn remove_containers<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    object: Option<&AnyObject>,
    observed: &[Container],
    ids: &[&str],
) -> Result<(), ReconcileError> {
    if ids.is_empty() {
        return Ok(());
    }
    let calls: Vec<_> = ids
        .iter()
        .map(|id| {
            let (docker, id) = (shared.docker.clone(), (*id).to_owned());
            async move { docker.remove_container(&id).await }
        })
        .collect();
    // In order (`buffered`), so each result lines up with its id.
    let results: Vec<Result<(), DockerError>> = futures::stream::iter(calls)
        .buffered(DOCKER_WINDOW)
        .collect()
        .await;
    let removed = results.iter().filter(|r| r.is_ok()).count();
    if let (true, Some(object)) = (removed > 0, object) {
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
            &shared.store,
            object,
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

/// Renders the desired container of each slot and checks what they need: its cluster and
/// variables (a Replica from before revisions runs the cargo's spec), its Docker networks
/// on this node, its image. `Err(action)`: not ready, the status says why.
async fn prepare<S: Store + Clone, D: Docker>(
    ctx: &Ctx<'_, S, D>,
) -> Result<Result<Prepared, Action>, ReconcileError> {
    let (shared, cargo) = (ctx.shared, ctx.cargo);
    let source = plan::Source {
        namespace: &ctx.namespace,
        cargo: &cargo.metadata.name,
        cluster: &cargo.spec.cluster,
        instance: &shared.instance,
    };
    let mut prepared = Prepared {
        desired: Vec::new(),
        slots: BTreeMap::new(),
    };
    // Per revision: its pull policy and networks.
    let mut needs: Vec<(Option<ImagePullPolicy>, Vec<String>)> = Vec::new();
    for r in ctx.mine.iter().filter(|r| ctx.slots.contains(&r.spec.slot)) {
        if r.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let (desired, policy, networks) = match &r.spec.template {
            Some(t) => (
                plan::render_template(
                    &source,
                    &t.container,
                    &t.networks,
                    t.restarted_at.as_deref(),
                    0,
                ),
                t.container.image_pull_policy,
                t.networks.clone(),
            ),
            None => {
                let cluster = shared.hub.get(&ObjectRef::<ClusterObject>::new(
                    Some(&ctx.namespace),
                    &cargo.spec.cluster,
                ));
                match plan::render(cargo, cluster.as_deref(), &shared.instance) {
                    Ok(d) => (
                        d,
                        cargo.spec.container.image_pull_policy,
                        cargo.spec.networks.clone(),
                    ),
                    Err(not_ready) => {
                        // The scheduler says so on the cargo; nothing runs until it renders.
                        write_status(ctx, &[], None, Some(&not_ready), &[], SystemTime::now())
                            .await?;
                        return Ok(Err(Action::AwaitChange));
                    }
                }
            }
        };
        let index = match prepared.desired.iter().position(|d| d.hash == desired.hash) {
            Some(i) => i,
            None => {
                prepared.desired.push(desired);
                needs.push((policy, networks));
                prepared.desired.len() - 1
            }
        };
        prepared.slots.insert(
            r.spec.slot,
            (
                index,
                r.spec.min_ready_seconds.unwrap_or(0),
                r.spec.revision,
            ),
        );
    }
    for (desired, (policy, networks)) in prepared.desired.iter().zip(&needs) {
        // Side by side; a missing network is said first, as when they ran in turn.
        let (networks, image) = tokio::join!(
            ensure_networks(ctx, desired, networks),
            ensure_image(shared, ctx.cargo, *policy, desired)
        );
        if let Some(why) = networks? {
            write_status(
                ctx,
                &[],
                Some(&prepared),
                Some(&why),
                &[],
                SystemTime::now(),
            )
            .await?;
            // The network's controller's status write triggers this cargo; the requeue is a
            // fallback.
            return Ok(Err(Action::Requeue(Duration::from_millis(500))));
        }
        if let Err(problem) = image {
            events::record(
                &shared.store,
                &ctx.object,
                true,
                problem.reason,
                problem.message.clone(),
            )
            .await;
            write_status(
                ctx,
                &[],
                Some(&prepared),
                None,
                &[problem],
                SystemTime::now(),
            )
            .await?;
            return Err(ReconcileError::Docker(DockerError::PullFailed {
                image: desired.template.image.clone(),
                message: "see the cargo's status".into(),
            }));
        }
    }
    Ok(Ok(prepared))
}

/// The cargo's Docker networks on this node: created here from their object once its
/// controller (on the leader) has made it Ready, with the subnet it recorded, so every
/// node has the same networks. `Some(why)` while one is missing.
async fn ensure_networks<S: Store + Clone, D: Docker>(
    ctx: &Ctx<'_, S, D>,
    desired: &Desired,
    networks: &[String],
) -> Result<Option<NotReady>, ReconcileError> {
    let shared = ctx.shared;
    let ours = OwnerFilter::instance(&shared.instance)
        .namespace(&ctx.namespace)
        .labels();
    let present: Vec<String> = shared
        .docker
        .list_networks(&ours)
        .await?
        .into_iter()
        .map(|n| n.name)
        .collect();
    let cluster = &ctx.cargo.spec.cluster;
    for missing in desired
        .template
        .networks
        .iter()
        .filter(|n| !present.contains(n))
    {
        // Named by what the user wrote: the cluster's own network, or a Network object.
        let cluster_network = *missing == plan::default_network_name(cluster, &ctx.namespace);
        let not_yet = || NotReady {
            reason: "NetworkNotReady",
            message: if cluster_network {
                let why = cluster_not_ready(ctx);
                format!(
                    "the network of cluster {cluster} ({missing}) is not ready yet{why} (nanocl -n {} describe cluster {cluster})",
                    ctx.namespace
                )
            } else {
                let name = ctx
                    .cargo
                    .spec
                    .networks
                    .iter()
                    .find(|n| plan::network_name(n, cluster, &ctx.namespace) == *missing)
                    .cloned()
                    .unwrap_or_else(|| missing.clone());
                format!(
                    "network {name} of cluster {cluster} ({missing}) does not exist yet: is its Network object applied? (nanocl -n {} describe network {name})",
                    ctx.namespace
                )
            },
        };
        let Some(spec) = network_spec(ctx, missing, networks) else {
            return Ok(Some(not_yet()));
        };
        match shared.docker.create_network(&spec).await {
            Ok(_) => {
                tracing::info!(network = %missing, node = ctx.node, %cluster, "created the network on this node");
            }
            Err(DockerError::NameConflict { .. }) => {
                // Created meanwhile by the cluster's or network's controller on this same
                // Docker, or someone else's: the next listing tells.
                return Ok(Some(not_yet()));
            }
            Err(e) => {
                return Ok(Some(NotReady {
                    reason: "NetworkNotReady",
                    message: format!(
                        "cannot create Docker network {missing} on node {}: {e}",
                        ctx.node
                    ),
                }))
            }
        }
    }
    Ok(None)
}

/// `: REASON: message` of the cargo's Cluster when it is not Ready, for a message.
fn cluster_not_ready<S: Store + Clone, D: Docker>(ctx: &Ctx<'_, S, D>) -> String {
    let cluster = ctx.shared.hub.get(&ObjectRef::<ClusterObject>::new(
        Some(&ctx.namespace),
        &ctx.cargo.spec.cluster,
    ));
    let Some(cluster) = cluster else {
        return ": the cluster does not exist".to_owned();
    };
    cluster
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .filter(|c| c.status != nanocl_api_types::meta::ConditionStatus::True)
        .map(|c| format!(": {}: {}", c.reason, c.message))
        .unwrap_or_default()
}

/// How to create Docker network `docker_name` of the cargo on this node, from its Cluster
/// or Network object once that is Ready (its subnet chosen); `None` before.
fn network_spec<S: Store + Clone, D: Docker>(
    ctx: &Ctx<'_, S, D>,
    docker_name: &str,
    networks: &[String],
) -> Option<NetworkSpec> {
    let (shared, ns) = (ctx.shared, ctx.namespace.as_str());
    let cluster = ctx.cargo.spec.cluster.as_str();
    let ready = |conditions: &[nanocl_api_types::meta::Condition]| {
        conditions.iter().any(|c| {
            c.type_ == "Ready" && c.status == nanocl_api_types::meta::ConditionStatus::True
        })
    };
    let mut labels_map = BTreeMap::from([
        (labels::MANAGED.to_owned(), "true".to_owned()),
        (labels::NAMESPACE.to_owned(), ns.to_owned()),
        (labels::CLUSTER.to_owned(), cluster.to_owned()),
        (labels::INSTANCE.to_owned(), shared.instance.clone()),
    ]);
    if docker_name == plan::default_network_name(cluster, ns) {
        let c = shared
            .hub
            .get(&ObjectRef::<ClusterObject>::new(Some(ns), cluster))?;
        let status = c.status.as_ref()?;
        if !ready(&status.conditions) {
            return None;
        }
        return Some(NetworkSpec {
            name: docker_name.to_owned(),
            driver: "bridge".into(),
            internal: false,
            subnet: status.subnet.clone(),
            labels: labels_map,
        });
    }
    let name = networks
        .iter()
        .find(|n| plan::network_name(n, cluster, ns) == docker_name)?;
    let n = shared
        .hub
        .get(&ObjectRef::<NetworkObject>::new(Some(ns), name))?;
    let status = n.status.as_ref()?;
    if !ready(&status.conditions) {
        return None;
    }
    labels_map.insert(labels::NETWORK.to_owned(), name.clone());
    Some(NetworkSpec {
        name: docker_name.to_owned(),
        driver: n.spec.driver.clone().unwrap_or_else(|| "bridge".into()),
        internal: n.spec.internal,
        subnet: status.subnet.clone().or_else(|| n.spec.subnet.clone()),
        labels: labels_map,
    })
}

/// Carries out the plan: consecutive creations side by side (Docker takes several at once
/// far faster than one after the other), everything else in order.
async fn execute<S: Store + Clone, D: Docker>(
    ctx: &Ctx<'_, S, D>,
    prepared: Option<&Prepared>,
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
                if let Some(prepared) = prepared {
                    applied
                        .problems
                        .extend(create_replicas(ctx, prepared, observed, &slots).await?);
                }
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
                remove_containers(ctx.shared, Some(&ctx.object), observed, &ids).await?;
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

/// The desired container of a slot: its revision's, labelled with the revision's number
/// (not part of the hash: a revision renumbered by an undo keeps its containers).
fn labelled(desired: &Desired, revision: Option<u32>) -> Desired {
    let mut desired = desired.clone();
    if let Some(revision) = revision {
        desired
            .template
            .labels
            .insert(labels::REVISION.into(), revision.to_string());
    }
    desired
}

/// Creates and starts the replicas of `slots` in a window of `DOCKER_WINDOW`, and those
/// placed on this node meanwhile (see `placed_since`); what went wrong, per replica.
async fn create_replicas<S: Store + Clone, D: Docker>(
    ctx: &Ctx<'_, S, D>,
    prepared: &Prepared,
    observed: &[Container],
    slots: &[u32],
) -> Result<Vec<Problem>, ReconcileError> {
    let work: Vec<(u32, Desired)> = slots
        .iter()
        .filter_map(|slot| {
            let revision = prepared.slots.get(slot).and_then(|(_, _, r)| *r);
            Some((*slot, labelled(prepared.of(*slot)?, revision)))
        })
        .collect();
    let (shared, node, cargo) = (ctx.shared, ctx.node, ctx.cargo);
    let mut queue: std::collections::VecDeque<(u32, Desired)> = work.into();
    let mut created: BTreeSet<u32> = queue.iter().map(|(slot, _)| *slot).collect();
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut results = Vec::new();
    // Subscribed before the first look, so no placement falls between.
    let mut changes = shared.hub.subscribe();
    let mut listening = true;
    loop {
        if queue.len() + in_flight.len() < DOCKER_WINDOW {
            // The window has room beyond the plan: Replicas placed here since the listing
            // (the scheduler writes a scale-up's side by side, and the runner woke on the
            // first) join this window rather than wait for it to drain. Looked for at once
            // too, not only once the plan is under way: those placed between the listing
            // and the subscription above send no change to wake this loop (traced: an
            // apply of 10 created 1, and the other 9 only once that one had started).
            queue.extend(placed_since(ctx, prepared, observed, &created));
            created.extend(queue.iter().map(|(slot, _)| *slot));
        }
        while in_flight.len() < DOCKER_WINDOW {
            let Some((slot, desired)) = queue.pop_front() else {
                break;
            };
            in_flight
                .push(async move { create_and_start(shared, node, cargo, &desired, slot).await });
        }
        if in_flight.is_empty() {
            break;
        }
        tokio::select! {
            Some(result) = in_flight.next() => results.push(result),
            // Room in the window: a Replica placed now starts at once.
            change = changes.recv(), if listening && in_flight.len() < DOCKER_WINDOW => {
                listening = !matches!(change, Err(tokio::sync::broadcast::error::RecvError::Closed));
            }
        }
    }
    let mut problems = Vec::new();
    for result in results {
        problems.extend(result?);
    }
    let list = created
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

/// Replicas placed on this node since the reconcile listed its containers, that it can
/// create in the window it has open: of a revision it prepared (networks and image
/// checked), in a slot the cargo still wants, with no container yet, and not `taken`.
/// Anything else waits for the next reconcile, which their own creation triggered.
fn placed_since<S: Store + Clone, D: Docker>(
    ctx: &Ctx<'_, S, D>,
    prepared: &Prepared,
    observed: &[Container],
    taken: &BTreeSet<u32>,
) -> Vec<(u32, Desired)> {
    let shared = ctx.shared;
    let name = &ctx.cargo.metadata.name;
    let Some(cargo) = shared
        .hub
        .get(&ObjectRef::<CargoObject>::new(Some(&ctx.namespace), name))
        .filter(|c| c.metadata.deletion_timestamp.is_none())
    else {
        return Vec::new();
    };
    let wanted = plan::replicas_wanted(&cargo);
    let source = plan::Source {
        namespace: &ctx.namespace,
        cargo: name,
        cluster: &cargo.spec.cluster,
        instance: &shared.instance,
    };
    let has_container: BTreeSet<u32> = observed.iter().filter_map(slot_of).collect();
    shared
        .hub
        .replicas_of(&ctx.namespace, name)
        .into_iter()
        .filter(|r| r.spec.node == ctx.node && r.metadata.deletion_timestamp.is_none())
        .filter(|r| r.spec.slot < wanted)
        .filter(|r| !taken.contains(&r.spec.slot) && !has_container.contains(&r.spec.slot))
        .filter_map(|r| {
            let t = r.spec.template.as_ref()?;
            let rendered = plan::render_template(
                &source,
                &t.container,
                &t.networks,
                t.restarted_at.as_deref(),
                0,
            );
            let desired = prepared.desired.iter().find(|d| d.hash == rendered.hash)?;
            Some((r.spec.slot, labelled(desired, r.spec.revision)))
        })
        .collect()
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
        // Counted per revision: a new revision's first exit is not its predecessor's loop.
        let hash = last
            .as_ref()
            .and_then(|c| c.labels.get(labels::SPEC_HASH))
            .map_or("", String::as_str);
        shared.restarts.admit(&format!("{}#{hash}", ctx.key), slot)
    };
    match admitted {
        Ok(()) => {
            if let Err(e) = shared.docker.start_container(id).await {
                applied.problems.push(start_problem(slot, e)?);
                return Ok(());
            }
            if let Some(c) = &last {
                shared.restarts.started_again(&c.name);
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
            // It never ran: Docker refused to start it, and says why.
            if let Some(start_error) = last.as_ref().and_then(|c| c.start_error.clone()) {
                let (reason, message) = match start_error {
                    crate::docker::StartError::PortInUse(m) => ("PortInUse", m),
                    crate::docker::StartError::Failed(m) => ("StartFailed", m),
                };
                applied.problems.push(Problem {
                    slot: Some(slot),
                    reason,
                    message: format!(
                        "replica {slot} cannot start: {message}; trying again in {}s",
                        after.as_secs().max(1)
                    ),
                });
                applied.wait = Some(applied.wait.map_or(after, |w| w.min(after)));
                return Ok(());
            }
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
                slot: Some(slot),
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

fn start_problem(slot: u32, e: DockerError) -> Result<Problem, ReconcileError> {
    match e {
        DockerError::PortAllocated { message, .. } => Ok(Problem {
            slot: Some(slot),
            reason: "PortInUse",
            message,
        }),
        DockerError::StartFailed { message, .. } => Ok(Problem {
            slot: Some(slot),
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
    node: &str,
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
    spec.labels.insert(labels::NODE.into(), node.to_owned());
    let files = shared.secret_files.join(node);
    if let Err(e) = super::secrets::resolve(&shared.hub, &namespace, &mut spec, &files) {
        return Ok(Some(Problem {
            slot: Some(slot),
            reason: e.reason,
            message: e.message,
        }));
    }
    let mut attempts = 0;
    let id = loop {
        attempts += 1;
        match shared.docker.create_container(&spec).await {
            Ok(id) => break id,
            Err(DockerError::NameConflict { name }) => {
                // Deterministic names: a crash between create and record leaves our own
                // container behind under this name; adopt it. Anything else is not ours to
                // touch.
                let ours = match shared.docker.inspect_container(&name).await? {
                    Some(c)
                        if c.labels.get(labels::MANAGED).map(String::as_str) == Some("true")
                            && c.labels.get(labels::CARGO) == Some(&cargo.metadata.name)
                            && c.labels.get(labels::NAMESPACE) == Some(&namespace) =>
                    {
                        c
                    }
                    _ => {
                        return Ok(Some(Problem {
                            slot: Some(slot),
                            reason: "NameConflict",
                            message: format!("a container named {name} exists and is not managed by nanocl; it is left alone"),
                        }));
                    }
                };
                match ours.labels.get(labels::NODE) {
                    Some(other) if other != node && attempts == 1 => {
                        // The slot's container of the node it was moved away from, on this
                        // same Docker (several agents on one engine): its node's runner no
                        // longer owns it. It goes, and this node's takes its place.
                        tracing::info!(container = %name, from = %other, to = node, "replacing a moved replica's container of another node");
                        shared.docker.remove_container(&ours.id).await?;
                    }
                    _ => break ours.id,
                }
            }
            Err(e) => return Err(e.into()),
        }
    };
    match shared.docker.start_container(&id).await {
        Ok(()) => Ok(None),
        Err(e) => start_problem(slot, e).map(Some),
    }
}

async fn ensure_image<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    cargo: &CargoObject,
    policy: Option<ImagePullPolicy>,
    desired: &Desired,
) -> Result<(), Problem> {
    let image = &desired.template.image;
    let policy = policy.unwrap_or(ImagePullPolicy::IfNotPresent);
    let present = shared
        .docker
        .image_present(image)
        .await
        .map_err(|e| Problem {
            slot: None,
            reason: "ImageCheckFailed",
            message: e.to_string(),
        })?;
    if !present && image.starts_with(super::build::LOCAL_REPOSITORY) {
        // Built by nanocl on another node's Docker: from the nanocld that built it.
        return super::build::fetch(shared, cargo, image)
            .await
            .map_err(|message| Problem {
                slot: None,
                reason: "ImageFetchFailed",
                message,
            });
    }
    match (policy, present) {
        (ImagePullPolicy::IfNotPresent | ImagePullPolicy::Never, true) => Ok(()),
        (ImagePullPolicy::Never, false) => Err(Problem {
            slot: None,
            reason: "ImageNotPresent",
            message: format!("image {image} is not on this host and imagePullPolicy is Never"),
        }),
        // Always, with the image here: the registry's newest when it answers, else what
        // this host has (built here, or no registry reachable), said in a Warning Event.
        (ImagePullPolicy::Always, true) => {
            if let Err(e) = shared.docker.pull_image(image).await {
                events::record(
                    &shared.store,
                    &cargo.clone().into_any(),
                    true,
                    "ImagePullFailed",
                    format!("pulling {image} failed ({e}); running the image this host has"),
                )
                .await;
            }
            Ok(())
        }
        (ImagePullPolicy::Always | ImagePullPolicy::IfNotPresent, false) => {
            shared.docker.pull_image(image).await.map_err(|e| match e {
                DockerError::NotFound { what } => Problem {
                    slot: None,
                    reason: "ImageNotFound",
                    message: format!("image {image} is not on this host, and its registry has no such image: {what} (check the name and tag, or build or load it here)"),
                },
                other => Problem {
                    slot: None,
                    reason: "ImagePullBackOff",
                    message: format!("image {image} is not on this host, and pulling it failed: {other} (check the name and tag, or build or load it here)"),
                },
            })
        }
    }
}

/// The running containers inspected, for their health and start time (a listing says
/// neither).
async fn inspected<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    observed: Vec<Container>,
) -> Result<Vec<Container>, ReconcileError> {
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

/// Writes the status of each of this node's Replicas (those not being removed) that
/// changed: its container (the current one, else any), its phase, readiness, and the
/// problem that concerns it (`not_ready`: waiting, phase `Pending`; a problem: `Failed`
/// unless its container runs).
async fn write_status<S: Store + Clone, D: Docker>(
    ctx: &Ctx<'_, S, D>,
    observed: &[Container],
    prepared: Option<&Prepared>,
    not_ready: Option<&NotReady>,
    problems: &[Problem],
    now: SystemTime,
) -> Result<(), ReconcileError> {
    let api: Api<ReplicaObject, S> = Api::new(ctx.shared.store.clone());
    for replica in ctx.mine {
        if replica.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let slot = replica.spec.slot;
        let desired = prepared.and_then(|p| p.of(slot));
        let current = |c: &Container| {
            desired.is_some_and(|d| c.labels.get(labels::SPEC_HASH) == Some(&d.hash))
        };
        let in_slot: Vec<&Container> = observed
            .iter()
            .filter(|c| slot_of(c) == Some(slot))
            .collect();
        let container = in_slot
            .iter()
            .find(|c| current(c))
            .or_else(|| in_slot.first())
            .copied();
        // Where its traffic goes: to the current container once ready; until then to the
        // one it replaces, while that one runs healthy.
        let serving = in_slot
            .iter()
            .find(|c| current(c) && prepared.is_some_and(|p| p.ready(c, now)))
            .or_else(|| {
                in_slot.iter().find(|c| {
                    !current(c)
                        && c.state == State::Running
                        && c.health.as_deref().is_none_or(|h| h == "healthy")
                })
            })
            .and_then(|c| {
                let networks = c.networks.as_ref()?;
                desired
                    .and_then(|d| d.template.networks.first())
                    .and_then(|first| networks.get(first))
                    .or_else(|| networks.values().next())
                    .filter(|ip| !ip.is_empty())
                    .cloned()
            });
        let running = container.is_some_and(|c| c.state == State::Running);
        let ready = container.is_some_and(|c| prepared.is_some_and(|p| p.ready(c, now)));
        // A new container that failed its health check is the slot's problem (an update
        // to it fails).
        let unhealthy = container
            .filter(|c| current(c) && c.health.as_deref() == Some("unhealthy"))
            .map(|c| Problem {
                slot: Some(slot),
                reason: "Unhealthy",
                message: format!("replica {slot} ({}) failed its health check", c.name),
            });
        let problem = problems
            .iter()
            .find(|p| p.slot == Some(slot))
            .or(unhealthy.as_ref())
            .or_else(|| problems.iter().find(|p| p.slot.is_none()));
        let (phase, reason, message) = match (not_ready, problem, container) {
            (Some(nr), _, _) => ("Pending", Some(nr.reason), Some(nr.message.clone())),
            (None, Some(p), _) if !ready => (
                if running { "Running" } else { "Failed" },
                Some(p.reason),
                // A problem of the whole node (its image, say) names the node: the cargo's
                // replicas elsewhere may well run.
                Some(match p.slot {
                    Some(_) => p.message.clone(),
                    None => format!("on node {}: {}", ctx.node, p.message),
                }),
            ),
            (None, _, None) => ("Pending", None, None),
            (None, _, Some(_)) if running => ("Running", None, None),
            (None, _, Some(_)) => ("Stopped", None, None),
        };
        let previous = replica.status.as_ref();
        // Restarts of this container: what this nanocld counted, or what was written of it
        // before (by a nanocld since restarted); a new container starts at 0.
        let restarts = container.map_or(0, |c| {
            let written = previous
                .filter(|p| p.container.as_deref() == Some(c.name.as_str()))
                .map_or(0, |p| p.restarts);
            ctx.shared.restarts.of(&c.name).max(written)
        });
        let status = ReplicaStatus {
            node: Some(ctx.node.to_owned()),
            container: container.map(|c| c.name.clone()),
            image: container.map(|c| c.image.clone()).filter(|i| !i.is_empty()),
            health: container.and_then(|c| c.health.clone()),
            restarts,
            address: container
                .filter(|c| c.state == State::Running)
                .and_then(|c| {
                    let first = desired.and_then(|d| d.template.networks.first())?;
                    c.networks.as_ref()?.get(first).cloned()
                })
                .filter(|ip| !ip.is_empty()),
            serving,
            phase: Some(phase.to_owned()),
            ready,
            containers: u32::try_from(in_slot.len()).unwrap_or(u32::MAX),
            spec_hash: container.and_then(|c| c.labels.get(labels::SPEC_HASH).cloned()),
            reason: reason.map(str::to_owned),
            message,
            // The sampler's (another owner): kept as it is.
            usage: replica.status.as_ref().and_then(|s| s.usage.clone()),
        };
        if replica.status.as_ref() == Some(&status) {
            continue;
        }
        let value = serde_json::to_value(&status).unwrap_or_default();
        match api
            .patch_status(replica, &super::write::owners::REPLICA, &value)
            .await
        {
            Ok(()) => {}
            // Removed meanwhile (the scheduler moved or dropped it): nothing to report.
            Err(crate::objects::ObjectError::Store(crate::store::StoreError::NotFound {
                ..
            })) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Removes the managed containers and networks on this node's Docker whose owner object is
/// gone, on start and every `every`, until `done`.
pub async fn collect_garbage_until<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    node: &str,
    every: Duration,
    done: impl std::future::Future<Output = ()>,
) {
    super::every_until(every, done, || async {
        if let Err(e) = collect_garbage(shared, node).await {
            tracing::warn!(error = %e, "garbage collection failed");
        }
    })
    .await;
}

/// One garbage-collection pass.
pub async fn collect_garbage<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    node: &str,
) -> Result<(), ReconcileError> {
    let ours_filter = OwnerFilter::instance(&shared.instance).labels();
    let containers = ours(shared.docker.list_containers(&ours_filter).await?, node);
    // Secret files of containers that are gone.
    let live: std::collections::BTreeSet<String> =
        containers.iter().map(|c| c.name.clone()).collect();
    super::secrets::collect_files(&shared.secret_files.join(node), &live);
    for c in containers {
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
    for n in shared.docker.list_networks(&ours_filter).await? {
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
