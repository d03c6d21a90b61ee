//! The Cargo controller (on the leader): places each slot of a cargo on a node, as one
//! `Replica` object per slot (`scheduler::place`), and sums what the nodes' replica runners
//! report into the cargo's status. Deleting a cargo deletes its Replicas; it is gone once
//! every node has removed its containers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use nanocl_api_types::cargo::v1::CargoStatus;
use nanocl_api_types::meta::{ConditionStatus, ObjectMeta};
use nanocl_api_types::node::v1::Node as NodeObject;
use nanocl_api_types::replica::v1::{self as replica, Replica as ReplicaObject, ReplicaSpec};
use nanocl_api_types::selector::Selector;

use super::plan::{self, Desired, NotReady};
use super::replicas::AGENT_FINALIZER;
use super::scheduler::{self, Candidate, Placement, Rules};
use super::write::{self, condition};
use super::{events, ReconcileError, Shared, FINALIZER};
use crate::docker::Docker;
use crate::objects::api::{Api, ObjectRef};
use crate::objects::ObjectError;
use crate::runtime::finalizer::{finalizer, Event};
use crate::runtime::runner::Action;
use crate::store::{Store, StoreError};
use nanocl_api_types::cargo::v1::Cargo as CargoObject;
use nanocl_api_types::cluster::v1::Cluster as ClusterObject;
use nanocl_api_types::network::v1::Network as NetworkObject;
use nanocl_api_types::Resource as _;

/// Reconciles one Cargo (`cargoes/{ns}/{name}`).
pub async fn reconcile<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    key: &str,
) -> Result<Action, ReconcileError> {
    let Some(cargo) = shared.hub.get_key::<CargoObject>(key) else {
        return Ok(Action::AwaitChange);
    };
    let api = Api::new(shared.store.clone());
    finalizer(&api, FINALIZER, cargo, |event| {
        reconcile_event(shared, key, event)
    })
    .await
}

/// Whether a node's agent keeps its lease (`Ready=True`).
pub fn node_ready(node: &NodeObject) -> bool {
    node.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
    })
}

async fn reconcile_event<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    key: &str,
    event: Event<CargoObject>,
) -> Result<Action, ReconcileError> {
    let (cargo, deleting) = event.into_parts();
    let namespace = cargo.metadata.namespace.clone().unwrap_or_default();
    let replicas = shared.hub.replicas_of(&namespace, &cargo.metadata.name);
    if deleting {
        return cleanup(shared, &replicas).await;
    }
    let cluster = shared.hub.get(&ObjectRef::<ClusterObject>::new(
        Some(&namespace),
        &cargo.spec.cluster,
    ));
    let desired = match plan::render(&cargo, cluster.as_deref(), &shared.instance) {
        Ok(d) => d,
        Err(not_ready) => {
            let status = summarize(
                &cargo,
                None,
                &replicas,
                &HashMap::new(),
                Some(&not_ready),
                &Placement::default(),
            );
            save(shared, &cargo, status).await?;
            return Ok(Action::AwaitChange);
        }
    };
    let nodes = shared.hub.cache::<NodeObject>().list();
    let current: BTreeMap<u32, String> = replicas
        .iter()
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .map(|r| (r.spec.slot, r.spec.node.clone()))
        .collect();
    let rules = Rules {
        replicas: desired.replicas,
        spread: cargo
            .spec
            .placement
            .as_ref()
            .and_then(|p| p.spread)
            .unwrap_or(true),
        max_per_node: cargo
            .spec
            .placement
            .as_ref()
            .and_then(|p| p.max_per_node)
            .and_then(|m| u32::try_from(m).ok()),
    };
    // Every slot in place (the common case, a resync): the nodes' loads and free resources,
    // which cost a pass over every Replica, are not needed. Only a slot to place needs them.
    let quick = candidates(shared, &cargo, cluster.as_deref(), &nodes, &replicas, false);
    let mut placement = scheduler::place(key, rules, &quick, &current);
    if !placement.moved.is_empty() || !placement.unplaced.is_empty() {
        let full = candidates(shared, &cargo, cluster.as_deref(), &nodes, &replicas, true);
        placement = scheduler::place(key, rules, &full, &current);
    }
    let wrote = apply_placement(shared, &cargo, &replicas, &placement, desired.replicas).await?;
    let ready: HashMap<String, bool> = nodes
        .iter()
        .map(|n| (n.metadata.name.clone(), node_ready(n)))
        .collect();
    let status = summarize(&cargo, Some(&desired), &replicas, &ready, None, &placement);
    save(shared, &cargo, status).await?;
    Ok(if wrote {
        // The writes' own events bring the next reconcile; this is a fallback.
        Action::Requeue(Duration::from_secs(5))
    } else if placement.unplaced.is_empty() {
        Action::AwaitChange
    } else {
        // A node that frees CPU or memory writes nothing: look again now and then.
        Action::Requeue(Duration::from_secs(30))
    })
}

/// What the scheduler knows of every node, for this cargo; with `loads`, also how many
/// replicas each runs and how many more of this cargo its resources hold (a pass over
/// every Replica), else none and no limit (enough to tell whether every slot stays put).
fn candidates<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    cargo: &CargoObject,
    cluster: Option<&ClusterObject>,
    nodes: &[Arc<NodeObject>],
    own: &[Arc<ReplicaObject>],
    loads: bool,
) -> Vec<Candidate> {
    // Validated at apply; a selector that does not parse selects nothing rather than all.
    let spans = cluster
        .and_then(|c| c.spec.nodes.as_deref())
        .map(Selector::parse);
    let wanted = cargo
        .spec
        .placement
        .as_ref()
        .map(|p| p.node_selector.clone())
        .unwrap_or_default();
    let request = Request::of(cargo).filter(|_| loads);
    let (used, load) = if loads {
        usage(shared, own, request.is_some())
    } else {
        Default::default()
    };
    nodes
        .iter()
        .map(|n| {
            let labels = &n.metadata.labels;
            let selected = match &spans {
                None => true,
                Some(Ok(s)) => s.matches(labels),
                Some(Err(_)) => false,
            } && wanted.iter().all(|(k, v)| labels.get(k) == Some(v));
            let room = match (
                &request,
                n.status.as_ref().and_then(|s| s.capacity.as_ref()),
            ) {
                (None, _) => u32::MAX,
                (Some(_), None) => 0,
                (Some(r), Some(cap)) => {
                    let (cpus, memory) = used.get(&n.metadata.name).copied().unwrap_or((0.0, 0));
                    r.fits(
                        f64::from(cap.cpus) - cpus,
                        cap.memory_bytes.saturating_sub(memory),
                    )
                }
            };
            Candidate {
                name: n.metadata.name.clone(),
                ready: node_ready(n),
                cordoned: n.spec.unschedulable,
                selected,
                room,
                load: load.get(&n.metadata.name).copied().unwrap_or(0),
            }
        })
        .collect()
}

/// The CPUs and memory one replica of a cargo asks for (`resources`).
#[derive(Clone, Copy, Debug)]
struct Request {
    cpus: f64,
    memory: u64,
}

impl Request {
    fn of(cargo: &CargoObject) -> Option<Request> {
        let r = cargo.spec.container.resources.as_ref()?;
        let memory = r
            .memory
            .as_deref()
            .and_then(|m| nanocl_api_types::quantity::parse_memory(m).ok())
            .unwrap_or(0);
        let cpus = r.cpus.unwrap_or(0.0);
        (cpus > 0.0 || memory > 0).then_some(Request { cpus, memory })
    }

    /// How many replicas fit in `cpus` and `memory`.
    fn fits(self, cpus: f64, memory: u64) -> u32 {
        let by_cpu = if self.cpus > 0.0 {
            (cpus / self.cpus + 1e-9).floor().max(0.0) as u32
        } else {
            u32::MAX
        };
        let by_memory = memory
            .checked_div(self.memory)
            .map_or(u32::MAX, |n| u32::try_from(n).unwrap_or(u32::MAX));
        by_cpu.min(by_memory)
    }
}

/// Per node, the replicas of other cargoes placed there, and (with `resources`) the CPUs
/// and memory they ask for; those of `own` (the cargo being placed) left out.
type Usage = (HashMap<String, (f64, u64)>, HashMap<String, u32>);

fn usage<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    own: &[Arc<ReplicaObject>],
    resources: bool,
) -> Usage {
    let mut out: HashMap<String, (f64, u64)> = HashMap::new();
    let mut load: HashMap<String, u32> = HashMap::new();
    let mut requests: HashMap<(String, String), Option<Request>> = HashMap::new();
    let (cargo, namespace) = own
        .first()
        .map(|r| (r.spec.cargo.as_str(), r.metadata.namespace.as_deref()))
        .unwrap_or_default();
    for r in shared.hub.cache::<ReplicaObject>().list() {
        if r.spec.cargo == cargo && r.metadata.namespace.as_deref() == namespace {
            continue;
        }
        *load.entry(r.spec.node.clone()).or_default() += 1;
        if !resources {
            continue;
        }
        let ns = r.metadata.namespace.clone().unwrap_or_default();
        let request = *requests
            .entry((ns.clone(), r.spec.cargo.clone()))
            .or_insert_with(|| {
                shared
                    .hub
                    .get(&ObjectRef::<CargoObject>::new(Some(&ns), &r.spec.cargo))
                    .and_then(|c| Request::of(&c))
            });
        if let Some(req) = request {
            let entry = out.entry(r.spec.node.clone()).or_default();
            entry.0 += req.cpus;
            entry.1 += req.memory;
        }
    }
    (out, load)
}

/// Writes the placement as Replica objects: a new one per slot placed for the first time, a
/// moved one where its node changed, and the surplus deleted (its node's runner removes the
/// container, then lets it go). Answers whether anything was written.
async fn apply_placement<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    cargo: &CargoObject,
    replicas: &[Arc<ReplicaObject>],
    placement: &Placement,
    want: u32,
) -> Result<bool, ReconcileError> {
    let api: Api<ReplicaObject, S> = Api::new(shared.store.clone());
    let namespace = cargo.metadata.namespace.clone().unwrap_or_default();
    let object = CargoObject::clone(cargo).into_any();
    let mut wrote = false;
    let mut moves = Vec::new();
    for (slot, node) in &placement.nodes {
        let existing = replicas.iter().find(|r| r.spec.slot == *slot);
        match existing {
            // Being removed (a scale down and up again): placed once it is gone.
            Some(r) if r.metadata.deletion_timestamp.is_some() => {}
            Some(r) if &r.spec.node == node => {}
            Some(r) => {
                let mut next = ReplicaObject::clone(r);
                next.spec.node = node.clone();
                if written(api.replace(r, &next).await)? {
                    moves.push(format!("{slot} from {} to {node}", r.spec.node));
                }
                wrote = true;
            }
            None => {
                let new = ReplicaObject {
                    api_version: nanocl_api_types::V1.to_owned(),
                    kind: "Replica".to_owned(),
                    metadata: ObjectMeta {
                        name: replica::name(&cargo.metadata.name, *slot),
                        namespace: Some(namespace.clone()),
                        finalizers: vec![AGENT_FINALIZER.to_owned()],
                        ..ObjectMeta::default()
                    },
                    spec: ReplicaSpec {
                        cargo: cargo.metadata.name.clone(),
                        slot: *slot,
                        node: node.clone(),
                    },
                    status: None,
                };
                match api.create(&new).await {
                    Ok(_) => wrote = true,
                    // Written meanwhile (by an earlier leader, say): the next reconcile reads it.
                    Err(ObjectError::Store(StoreError::AlreadyExists { .. })) => wrote = true,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    if !moves.is_empty() {
        events::record(
            &shared.store,
            &object,
            true,
            "ReplicasMoved",
            format!("moved replica(s) {} (their node is lost, cordoned for a drain or no longer selected)", moves.join(", ")),
        )
        .await;
    }
    for r in replicas {
        if r.spec.slot >= want && r.metadata.deletion_timestamp.is_none() {
            written(api.delete(r).await)?;
            wrote = true;
        }
    }
    wrote |= release_lost(shared, replicas).await?;
    Ok(wrote)
}

/// A write to a Replica: `true` when it went through, `false` when someone wrote it first or
/// it is gone (the change's own event brings the next reconcile), an error otherwise.
fn written(result: Result<(), ObjectError>) -> Result<bool, ReconcileError> {
    match result {
        Ok(()) => Ok(true),
        Err(ObjectError::Store(StoreError::Conflict { .. } | StoreError::NotFound { .. })) => {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// Lets the Replicas being removed from a node that is not Ready go without waiting for
/// it: its runner removes their containers when it is back (nothing is placed there for
/// them any more). Answers whether anything was written.
async fn release_lost<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    replicas: &[Arc<ReplicaObject>],
) -> Result<bool, ReconcileError> {
    let api: Api<ReplicaObject, S> = Api::new(shared.store.clone());
    let mut wrote = false;
    for r in replicas {
        if r.metadata.deletion_timestamp.is_none() {
            continue;
        }
        let alive = shared
            .hub
            .get(&ObjectRef::<NodeObject>::new(None, &r.spec.node))
            .is_some_and(|n| node_ready(&n));
        if !alive {
            written(api.remove_finalizer(r, AGENT_FINALIZER).await)?;
            wrote = true;
        }
    }
    Ok(wrote)
}

/// Deletes every Replica; done (`AwaitChange`, which releases the cargo) once none is left.
async fn cleanup<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    replicas: &[Arc<ReplicaObject>],
) -> Result<Action, ReconcileError> {
    if replicas.is_empty() {
        return Ok(Action::AwaitChange);
    }
    let api: Api<ReplicaObject, S> = Api::new(shared.store.clone());
    for r in replicas {
        if r.metadata.deletion_timestamp.is_none() {
            written(api.delete(r).await)?;
        }
    }
    release_lost(shared, replicas).await?;
    // Each Replica's removal brings the next reconcile; this is a fallback.
    Ok(Action::Requeue(Duration::from_secs(2)))
}

/// A problem for the status.
struct Problem {
    reason: String,
    message: String,
}

/// The cargo's status from its Replicas' reports: a report counts only when it comes from
/// the node the Replica is placed on, and a replica is ready only while that node is.
fn summarize(
    cargo: &CargoObject,
    desired: Option<&Desired>,
    replicas: &[Arc<ReplicaObject>],
    ready_nodes: &HashMap<String, bool>,
    not_ready: Option<&NotReady>,
    placement: &Placement,
) -> CargoStatus {
    let previous = cargo.status.clone().unwrap_or_default();
    let generation = cargo.metadata.generation;
    let want = u32::try_from(cargo.spec.replicas.unwrap_or(1)).unwrap_or(0) as usize;
    let (mut observed, mut updated, mut ready) = (0, 0, 0);
    let mut problems = Vec::new();
    let mut waiting: Option<(String, String)> = None;
    for r in replicas {
        let Some(s) = r
            .status
            .as_ref()
            .filter(|s| s.node.as_deref() == Some(r.spec.node.as_str()))
        else {
            continue;
        };
        // Every container counts: a slot mid-replacement has two, and the cargo is not
        // ready until the one replaced is gone.
        observed += s.containers.max(u32::from(s.container.is_some())) as usize;
        let current = desired.is_some_and(|d| s.spec_hash.as_deref() == Some(d.hash.as_str()));
        if current && s.container.is_some() && r.metadata.deletion_timestamp.is_none() {
            updated += 1;
            if s.ready && ready_nodes.get(&r.spec.node).copied().unwrap_or(false) {
                ready += 1;
            }
        }
        if let (Some(reason), Some(message)) = (&s.reason, &s.message) {
            if s.phase.as_deref() == Some("Pending") {
                waiting.get_or_insert((reason.clone(), message.clone()));
            } else if !s.ready {
                problems.push(Problem {
                    reason: reason.clone(),
                    message: message.clone(),
                });
            }
        }
    }
    for (slot, why) in &placement.unplaced {
        problems.push(Problem {
            reason: "Unschedulable".to_owned(),
            message: format!("replica {slot}: {why}"),
        });
    }
    // Identical messages (one per replica of a node) are said once.
    let mut seen = std::collections::HashSet::new();
    problems.retain(|p| seen.insert((p.reason.clone(), p.message.clone())));
    let not_ready: Option<(String, String)> = not_ready
        .map(|nr| (nr.reason.to_owned(), nr.message.clone()))
        .or(waiting);
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let all_ready = not_ready.is_none()
        && desired.is_some()
        && ready == want
        && updated == want
        && observed == want;
    let (ready_reason, ready_message) = match (&not_ready, problems.first()) {
        (Some((reason, message)), _) => (reason.clone(), message.clone()),
        (None, Some(p)) if !all_ready => (p.reason.clone(), p.message.clone()),
        _ if all_ready => (
            "ReplicasReady".to_owned(),
            format!("{ready}/{want} replicas ready"),
        ),
        _ => (
            "ReplicasNotReady".to_owned(),
            format!("{ready}/{want} replicas ready, {updated} up to date"),
        ),
    };
    let progressing = !all_ready && not_ready.is_none() && problems.is_empty();
    let conditions = vec![
        condition(
            "Ready",
            all_ready,
            &ready_reason,
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
            problems.first().map_or("AsExpected", |p| p.reason.as_str()),
            problems
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            generation,
            &previous.conditions,
        ),
    ];
    CargoStatus {
        observed_generation: generation,
        replicas: count(observed),
        ready_replicas: count(ready),
        updated_replicas: count(updated),
        conditions,
    }
}

async fn save<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    cargo: &CargoObject,
    status: CargoStatus,
) -> Result<(), ReconcileError> {
    if cargo.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let value = serde_json::to_value(&status).unwrap_or_default();
    let object = CargoObject::clone(cargo).into_any();
    write::patch_status(&shared.store, &object, &write::owners::CARGO, value).await?;
    Ok(())
}

/// Collects what the store holds for objects that are gone, on start and every `every`,
/// until `done`: released subnets, old Events.
pub async fn collect_store_garbage_until<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    every: Duration,
    done: impl std::future::Future<Output = ()>,
) {
    super::every_until(every, done, || async {
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
    })
    .await;
}
