//! The Cargo controller (on the leader): places each slot of a cargo on a node, as one
//! `Replica` object per slot (`scheduler::place`), and sums what the nodes' replica runners
//! report into the cargo's status. Deleting a cargo deletes its Replicas; it is gone once
//! every node has removed its containers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use std::time::SystemTime;

use nanocl_api_types::cargo::v1::{
    AutoscaleSpec, AutoscaleStatus, CargoRevision, CargoStatus, RolloutStatus, PAUSED_ANNOTATION,
};
use nanocl_api_types::meta::{ConditionStatus, ObjectMeta};
use nanocl_api_types::node::v1::Node as NodeObject;
use nanocl_api_types::replica::v1::{
    self as replica, Replica as ReplicaObject, ReplicaSpec, ReplicaStatus, ReplicaTemplate,
};
use nanocl_api_types::selector::Selector;

use super::loads::Request;
use super::plan::{self, Desired, NotReady};
use super::replicas::AGENT_FINALIZER;
use super::scheduler::{self, Candidate, Placement, Rules};
use super::write::{self, condition};
use super::{autoscale, rollout};
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
    if shared.expected.behind(&replicas) {
        // The cache has not yet seen this controller's own last writes: deciding on it
        // could start more replacements than the update allows.
        return Ok(Action::Requeue(Duration::from_millis(20)));
    }
    if deleting {
        shared
            .metrics
            .set_cargo(&namespace, &cargo.metadata.name, None);
        shared
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
        return cleanup(shared, &replicas).await;
    }
    let cluster = shared.hub.get(&ObjectRef::<ClusterObject>::new(
        Some(&namespace),
        &cargo.spec.cluster,
    ));
    let substituted = plan::substitute(&cargo, cluster.as_deref()).and_then(|(mut c, vars)| {
        // The secrets it uses: their digest makes a changed value a new revision.
        if let Some(digest) = super::secrets::digest(&shared.hub, &namespace, &c)? {
            c.labels
                .insert(super::secrets::DIGEST_LABEL.to_owned(), digest);
        }
        Ok((c, vars))
    });
    let (container, variables) = match substituted {
        Ok(d) => d,
        Err(not_ready) => {
            let status = summarize(&cargo, &Summary::not_ready(&cargo, &not_ready), &replicas);
            save(shared, &cargo, status).await?;
            return Ok(Action::AwaitChange);
        }
    };
    let spec_want = u32::try_from(cargo.spec.replicas.unwrap_or(1)).unwrap_or(0);
    let nodes = shared.hub.cache::<NodeObject>().list();
    let ready_nodes: HashMap<String, bool> = nodes
        .iter()
        .map(|n| (n.metadata.name.clone(), node_ready(n)))
        .collect();
    let slots: Vec<rollout::Slot> = replicas
        .iter()
        .map(|r| slot_state(r, &ready_nodes))
        .collect();
    let now = SystemTime::now();
    let now_text = humantime::format_rfc3339_seconds(now).to_string();
    let (want, autoscaled, autoscale_wait) = match &cargo.spec.autoscale {
        None => (spec_want, None, None),
        Some(a) => {
            let (decided, status, wait) = autoscale_cargo(
                shared, key, &cargo, a, spec_want, &replicas, &slots, &now_text,
            )
            .await;
            (decided, Some(status), wait)
        }
    };
    let source = plan::Source {
        namespace: &namespace,
        cargo: &cargo.metadata.name,
        cluster: &cargo.spec.cluster,
        instance: &shared.instance,
    };
    let restarted_at = plan::restarted_at(&cargo).map(str::to_owned);
    let desired = plan::render_template(
        &source,
        &container,
        &cargo.spec.networks,
        restarted_at.as_deref(),
        want,
    );
    let policy = cargo.spec.update_policy(want);
    let mut history = rollout::History::of(cargo.status.as_ref());
    // The spec's container (its env unrendered: the variables are recorded apart), with
    // what renders it besides the spec: a build's image, the secrets' digest. A rollback
    // renders exactly this revision again.
    let mut recorded_container = cargo.spec.container.clone();
    recorded_container.image = container.image.clone();
    recorded_container.image_pull_policy = container.image_pull_policy;
    recorded_container.labels = container.labels.clone();
    let recorded = history.record(
        CargoRevision {
            hash: desired.hash.clone(),
            container: recorded_container,
            networks: cargo.spec.networks.clone(),
            variables,
            restarted_at: restarted_at.clone(),
            ..CargoRevision::default()
        },
        &now_text,
        policy.revision_history_limit,
    );
    if recorded {
        let update = history.update.unwrap_or_default();
        if history.revisions.len() > 1 {
            events::record(
                &shared.store,
                &CargoObject::clone(&cargo).into_any(),
                false,
                "RevisionCreated",
                format!(
                    "revision {update}: {}",
                    history
                        .get(history.update)
                        .map_or("", |r| r.change.as_str())
                ),
            )
            .await;
        }
    }
    let update_entry = history.get(history.update).cloned();
    let failed = update_entry.as_ref().and_then(|e| e.failed.clone());
    let good = history.get(history.current).cloned();
    // A failed update rolls back to the last good revision, or stops there.
    let mut rolling_back = failed.is_some()
        && policy.auto_rollback
        && good
            .as_ref()
            .is_some_and(|g| Some(g.revision) != history.update);
    let rollback_target = good
        .as_ref()
        .filter(|_| rolling_back)
        .and_then(|g| Target::of_revision(&source, g, want));
    if rolling_back && rollback_target.is_none() {
        // The last good revision no longer renders to its hash (its cluster changed, say):
        // nothing to go back to; the update stops where it is, never retries the failed one.
        rolling_back = false;
    }
    let stopped = failed.is_some() && !rolling_back;
    let target = rollback_target.unwrap_or_else(|| {
        Target::of_spec(
            &desired,
            &container,
            &cargo,
            restarted_at.clone(),
            history.update,
        )
    });
    let paused = cargo
        .metadata
        .annotations
        .get(PAUSED_ANNOTATION)
        .is_some_and(|v| v == "true");
    let step = rollout::step(&target.hash, want, &policy, paused || stopped, &slots);
    let current: BTreeMap<u32, String> = replicas
        .iter()
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .map(|r| (r.spec.slot, r.spec.node.clone()))
        .collect();
    let rules = Rules {
        replicas: want,
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
    let quick = candidates(shared, &cargo, cluster.as_deref(), &nodes, false);
    let mut placement = scheduler::place(key, rules, &quick, &current);
    if !placement.moved.is_empty() || !placement.unplaced.is_empty() {
        let full = candidates(shared, &cargo, cluster.as_deref(), &nodes, true);
        placement = scheduler::place(key, rules, &full, &current);
    }
    // New slots get the target, unless the update stopped: then the last good revision.
    let create = match (&good, stopped) {
        (Some(g), true) => Target::of_revision(&source, g, want).unwrap_or_else(|| target.clone()),
        _ => target.clone(),
    };
    let writes = Writes {
        target: &target,
        create: &create,
        create_allowed: step.create,
        min_ready_seconds: policy.min_ready_seconds,
    };
    let mut wrote = apply_placement(shared, &cargo, &replicas, &placement, want, &writes).await?;
    wrote |= apply_step(shared, &replicas, &step, &writes).await?;
    // Where the update stands.
    let failures: Vec<rollout::ReplicaFailure> = replicas
        .iter()
        .filter(|r| r.spec.hash.as_deref() == Some(target.hash.as_str()))
        .filter_map(|r| {
            let s = reported(r)?;
            (s.spec_hash.as_deref() == Some(target.hash.as_str()))
                .then_some(())
                .and(s.reason.clone().zip(s.message.clone()))
                .map(|(reason, message)| rollout::ReplicaFailure { reason, message })
        })
        .collect();
    let progressed = history
        .rollout
        .as_ref()
        .and_then(|r| r.progressed.as_deref())
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .unwrap_or(now);
    let previous_phase = history.rollout.as_ref().map(|r| r.phase.clone());
    // A resumed update starts its deadline again.
    let resumed = previous_phase.as_deref() == Some("Paused") && !paused;
    let since = if resumed {
        Duration::ZERO
    } else {
        now.duration_since(progressed).unwrap_or_default()
    };
    // Nothing is being updated: every slot was on the target when the last update ended. A
    // replica that restarts, a node lost, an autoscaled slot starting are not an update that
    // can fail, and do not flip the rollout's phase.
    let settled = matches!(previous_phase.as_deref(), Some("Complete" | "RolledBack"))
        && good.as_ref().is_some_and(|g| g.hash == target.hash);
    let judging_update = !rolling_back && !paused && !stopped && !settled;
    let deadline = judging_update.then_some(policy.progress_deadline_seconds);
    let verdict = rollout::judge(
        &target.hash,
        want,
        &slots,
        &failures,
        since.as_secs(),
        deadline,
    );
    let mut requeue = None;
    let object = CargoObject::clone(&cargo).into_any();
    let entry = |h: &rollout::History, n: Option<u32>| h.get(n).map(|r| r.revision).unwrap_or(0);
    match verdict {
        rollout::Verdict::Complete => {
            let revision = target.revision.unwrap_or(entry(&history, history.update));
            let was = history.rollout.as_ref().map(|r| r.phase.clone());
            let (phase, message) = if rolling_back {
                (
                    "RolledBack",
                    format!(
                        "revision {} failed ({}); rolled back to revision {revision}",
                        entry(&history, history.update),
                        failed.clone().unwrap_or_default()
                    ),
                )
            } else {
                (
                    "Complete",
                    format!("revision {revision}: {want}/{want} replicas ready"),
                )
            };
            // The first revision of a new cargo is its creation, which has its own Events.
            let first = history.current.is_none();
            history.current = Some(revision);
            if stopped {
                // Its replicas became ready after all: it is good.
                if let Some(e) = history
                    .revisions
                    .iter_mut()
                    .find(|e| Some(e.revision) == history.update)
                {
                    e.failed = None;
                }
            }
            if was.as_deref() != Some(phase) {
                shared.metrics.record_rollout(if phase == "Complete" {
                    "complete"
                } else {
                    "rolled_back"
                });
                let reason = if phase == "Complete" {
                    "RolloutComplete"
                } else {
                    phase
                };
                if !first {
                    events::record(
                        &shared.store,
                        &object,
                        phase != "Complete",
                        reason,
                        message.clone(),
                    )
                    .await;
                }
            }
            history.rollout = Some(RolloutStatus {
                revision,
                phase: phase.to_owned(),
                ready: want,
                message,
                ..history.rollout.clone().unwrap_or_default()
            });
        }
        rollout::Verdict::Progressing { .. } if settled => {}
        rollout::Verdict::Progressing { ready } => {
            let mut r = history.rollout.clone().unwrap_or_default();
            if ready > r.ready || r.progressed.is_none() || resumed || paused {
                r.progressed = Some(now_text.clone());
            }
            r.ready = ready;
            r.revision = target.revision.unwrap_or(entry(&history, history.update));
            r.phase = if paused {
                "Paused"
            } else if rolling_back {
                "RollingBack"
            } else if stopped {
                "Failed"
            } else {
                "Progressing"
            }
            .to_owned();
            r.message = if stopped {
                format!(
                    "revision {} failed: {}",
                    entry(&history, history.update),
                    failed.clone().unwrap_or_default()
                )
            } else {
                format!("revision {}: {ready}/{want} replicas ready", r.revision)
            };
            if let Some(deadline) = deadline {
                let since = if ready > history.rollout.as_ref().map_or(0, |h| h.ready) {
                    Duration::ZERO
                } else {
                    since
                };
                requeue = Some(
                    Duration::from_secs(u64::from(deadline))
                        .saturating_sub(since)
                        .max(Duration::from_millis(500)),
                );
            }
            history.rollout = Some(r);
        }
        rollout::Verdict::Failed { reason, message } => {
            let update = entry(&history, history.update);
            let why = format!("{reason}: {message}");
            if let Some(e) = history
                .revisions
                .iter_mut()
                .find(|e| Some(e.revision) == history.update)
            {
                e.failed = Some(why.clone());
            }
            let back = policy.auto_rollback && good.as_ref().is_some_and(|g| g.revision != update);
            let sentence = match (&good, back) {
                (Some(g), true) => format!(
                    "update to revision {update} failed ({why}); rolling back to revision {}",
                    g.revision
                ),
                _ => format!("update to revision {update} failed ({why})"),
            };
            shared.metrics.record_rollout("failed");
            events::record(
                &shared.store,
                &object,
                true,
                "RolloutFailed",
                sentence.clone(),
            )
            .await;
            history.rollout = Some(RolloutStatus {
                revision: if back {
                    good.as_ref().map_or(update, |g| g.revision)
                } else {
                    update
                },
                phase: if back { "RollingBack" } else { "Failed" }.to_owned(),
                progressed: Some(now_text.clone()),
                message: sentence,
                ..history.rollout.clone().unwrap_or_default()
            });
            // The rollback (or the stop) starts at the next reconcile, from the status.
            requeue = Some(Duration::from_millis(50));
        }
    }
    // A build of other settings than the last one's is to come: not converged yet.
    let building = match super::build::Settings::of(&cargo, cluster.as_deref()) {
        Some(Ok(settings)) => {
            let build = cargo.status.as_ref().and_then(|s| s.build.as_ref());
            match build {
                Some(b) if b.phase == super::build::phase::BUILDING => Some(b.message.clone()),
                Some(b) if b.key == settings.key() => None,
                _ => Some("a build of the new settings is queued".to_owned()),
            }
        }
        _ => None,
    };
    let summary = Summary {
        want,
        desired_hash: Some(desired.hash.clone()),
        ready_nodes,
        not_ready: None,
        placement: Some(&placement),
        history: Some(&history),
        autoscale: autoscaled,
        building,
    };
    let requeue = match (requeue, autoscale_wait) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let status = summarize(&cargo, &summary, &replicas);
    let updating = status
        .rollout
        .as_ref()
        .is_some_and(|r| matches!(r.phase.as_str(), "Progressing" | "RollingBack" | "Paused"));
    let usage = |f: fn(&nanocl_api_types::replica::v1::ReplicaUsage) -> f64| {
        replicas
            .iter()
            .filter_map(|r| reported(r).and_then(|s| s.usage.as_ref()).map(f))
            .sum::<f64>()
    };
    shared.metrics.set_cargo(
        &namespace,
        &cargo.metadata.name,
        (updating || cargo.spec.autoscale.is_some()).then(|| crate::metrics::CargoGauges {
            replicas: want,
            rollout_ready: updating.then(|| status.rollout.as_ref().map_or(0, |r| r.ready)),
            cpus: cargo.spec.autoscale.as_ref().map(|_| usage(|u| u.cpus)),
            memory: cargo
                .spec
                .autoscale
                .as_ref()
                .map(|_| usage(|u| u.memory as f64) as u64),
        }),
    );
    save(shared, &cargo, status).await?;
    Ok(if wrote {
        // The writes' own events bring the next reconcile; this is a fallback.
        Action::Requeue(Duration::from_secs(5).min(requeue.unwrap_or(Duration::MAX)))
    } else if let Some(after) = requeue {
        Action::Requeue(after)
    } else if placement.unplaced.is_empty() {
        Action::AwaitChange
    } else {
        // A node that frees CPU or memory writes nothing: look again now and then.
        Action::Requeue(Duration::from_secs(30))
    })
}

/// Runs the autoscaler for `cargo`: the count to run now, its status, and when to look
/// again (a scale-down held by the stabilization window).
#[allow(
    clippy::too_many_arguments,
    reason = "one call site, each a distinct input"
)]
async fn autoscale_cargo<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    key: &str,
    cargo: &CargoObject,
    spec: &AutoscaleSpec,
    spec_want: u32,
    replicas: &[Arc<ReplicaObject>],
    slots: &[rollout::Slot],
    now_text: &str,
) -> (u32, AutoscaleStatus, Option<Duration>) {
    let previous = cargo.status.as_ref().and_then(|s| s.autoscale.clone());
    let current = autoscale::clamp(
        spec,
        previous
            .as_ref()
            .and_then(|p| u32::try_from(p.desired_replicas).ok())
            .filter(|n| *n > 0)
            .unwrap_or(spec_want),
    );
    // What the ready replicas of the slots in use measured, on their current container.
    let samples: Vec<autoscale::Sample> = replicas
        .iter()
        .filter(|r| r.spec.slot < current)
        .filter(|r| {
            slots
                .iter()
                .any(|s| s.slot == r.spec.slot && s.available && !s.deleting)
        })
        .filter_map(|r| {
            let s = reported(r)?;
            let usage = s.usage.as_ref()?;
            (s.container.as_deref() == Some(usage.container.as_str())).then_some(
                autoscale::Sample {
                    cpus: usage.cpus,
                    memory: usage.memory,
                },
            )
        })
        .collect();
    let resources = cargo.spec.container.resources.clone().unwrap_or_default();
    let requests = autoscale::Requests {
        cpus: resources.cpus.filter(|c| *c > 0.0).unwrap_or(1.0),
        memory: resources
            .memory
            .as_deref()
            .and_then(|m| nanocl_api_types::quantity::parse_memory(m).ok()),
    };
    let rec = autoscale::recommend(spec, requests, current, &samples);
    let window = autoscale::window(spec);
    let (decided, wait) = {
        let mut windows = shared
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = tokio::time::Instant::now();
        windows
            .entry(key.to_owned())
            .or_insert_with(|| autoscale::Window::starting(now, current))
            .decide(now, window, current, rec.replicas)
    };
    let (reason, message) = if decided > rec.replicas {
        (
            "ScaleDownStabilizing",
            format!(
                "{}; recommends {}, keeping {decided} until the use stays low for {}s",
                rec.message,
                rec.replicas,
                window.as_secs()
            ),
        )
    } else {
        (rec.reason, rec.message.clone())
    };
    let changed = decided != current;
    if changed {
        let (reason, verb) = if decided > current {
            ("ScaledUp", "up")
        } else {
            ("ScaledDown", "down")
        };
        shared.metrics.record_autoscale(verb);
        events::record(
            &shared.store,
            &CargoObject::clone(cargo).into_any(),
            false,
            reason,
            format!("scaled from {current} to {decided}: {}", rec.message),
        )
        .await;
    }
    let percent = |p: Option<f64>| p.map(|v| v.round() as i32);
    let status = AutoscaleStatus {
        desired_replicas: i32::try_from(decided).unwrap_or(i32::MAX),
        measured_replicas: i32::try_from(samples.len()).unwrap_or(i32::MAX),
        current_cpu_utilization_percent: percent(rec.cpu_percent),
        current_memory_utilization_percent: percent(rec.memory_percent),
        last_scale_time: if changed {
            Some(now_text.to_owned())
        } else {
            previous.and_then(|p| p.last_scale_time)
        },
        reason: if changed { rec.reason } else { reason }.to_owned(),
        message,
    };
    (decided, status, wait)
}

/// What replicas are moved to: a revision's template and hash.
#[derive(Clone, Debug)]
struct Target {
    hash: String,
    template: ReplicaTemplate,
    /// Its number.
    revision: Option<u32>,
}

impl Target {
    fn of_spec(
        desired: &Desired,
        container: &nanocl_api_types::cargo::v1::ContainerSpec,
        cargo: &CargoObject,
        restarted_at: Option<String>,
        revision: Option<u32>,
    ) -> Target {
        Target {
            hash: desired.hash.clone(),
            template: ReplicaTemplate {
                container: container.clone(),
                networks: cargo.spec.networks.clone(),
                restarted_at,
            },
            revision,
        }
    }

    /// Revision `r` rendered again from what it recorded; `None` if that no longer renders
    /// to its hash (it always should).
    fn of_revision(source: &plan::Source<'_>, r: &CargoRevision, want: u32) -> Option<Target> {
        let (container, _) = plan::substitute_with(&r.container, &r.variables).ok()?;
        let desired = plan::render_template(
            source,
            &container,
            &r.networks,
            r.restarted_at.as_deref(),
            want,
        );
        (desired.hash == r.hash).then(|| Target {
            hash: r.hash.clone(),
            template: ReplicaTemplate {
                container,
                networks: r.networks.clone(),
                restarted_at: r.restarted_at.clone(),
            },
            revision: Some(r.revision),
        })
    }
}

/// What the leader writes into Replicas.
struct Writes<'a> {
    /// The template slots are moved to.
    target: &'a Target,
    /// The template new slots get.
    create: &'a Target,
    /// Whether new slots may be created now.
    create_allowed: bool,
    min_ready_seconds: u32,
}

/// A Replica's report, when it comes from the node it is placed on.
fn reported(r: &ReplicaObject) -> Option<&ReplicaStatus> {
    r.status
        .as_ref()
        .filter(|s| s.node.as_deref() == Some(r.spec.node.as_str()))
}

/// What the update planner needs of one Replica.
fn slot_state(r: &ReplicaObject, ready_nodes: &HashMap<String, bool>) -> rollout::Slot {
    let status = reported(r);
    // A Replica from before revisions runs what its container runs.
    let hash = r
        .spec
        .hash
        .clone()
        .or_else(|| status.and_then(|s| s.spec_hash.clone()));
    let containers = status.map_or(0, |s| s.containers.max(u32::from(s.container.is_some())));
    let running = status.is_some_and(|s| s.phase.as_deref() == Some("Running"));
    let reported_hash = status.and_then(|s| s.spec_hash.as_deref());
    let behind = hash.is_some() && reported_hash != hash.as_deref();
    let extra = if behind && running {
        // Its template just changed: the new container is about to start beside the old.
        containers.saturating_sub(1).max(1)
    } else {
        containers.saturating_sub(1)
    };
    let available = !behind
        && status.is_some_and(|s| s.ready)
        && containers <= 1
        && ready_nodes.get(&r.spec.node).copied().unwrap_or(false);
    rollout::Slot {
        slot: r.spec.slot,
        hash,
        deleting: r.metadata.deletion_timestamp.is_some(),
        available,
        running,
        extra,
    }
}

/// Carries out an update step: templates changed in place, Replicas deleted to be created
/// again. Answers whether anything was written.
async fn apply_step<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    replicas: &[Arc<ReplicaObject>],
    step: &rollout::Step,
    writes: &Writes<'_>,
) -> Result<bool, ReconcileError> {
    let api: Api<ReplicaObject, S> = Api::new(shared.store.clone());
    let mut wrote = false;
    let live = |slot: u32| {
        replicas
            .iter()
            .find(|r| r.spec.slot == slot && r.metadata.deletion_timestamp.is_none())
    };
    for slot in &step.update {
        let Some(r) = live(*slot) else { continue };
        let mut next = ReplicaObject::clone(r);
        next.spec.revision = writes.target.revision;
        next.spec.hash = Some(writes.target.hash.clone());
        next.spec.template = Some(writes.target.template.clone());
        next.spec.min_ready_seconds = Some(writes.min_ready_seconds).filter(|s| *s > 0);
        wrote |= shared
            .expected
            .note(r, api.replace_returning(r, &next).await)?;
    }
    for slot in &step.recreate {
        let Some(r) = live(*slot) else { continue };
        wrote |= shared.expected.note(r, api.delete_returning(r).await)?;
    }
    // A Replica from before revisions that runs the target already gets its template, at
    // no cost to the update.
    for r in replicas {
        if r.spec.hash.is_none()
            && r.metadata.deletion_timestamp.is_none()
            && reported(r).and_then(|s| s.spec_hash.as_deref()) == Some(writes.target.hash.as_str())
            && !step.update.contains(&r.spec.slot)
        {
            let mut next = ReplicaObject::clone(r);
            next.spec.revision = writes.target.revision;
            next.spec.hash = Some(writes.target.hash.clone());
            next.spec.template = Some(writes.target.template.clone());
            wrote |= shared
                .expected
                .note(r, api.replace_returning(r, &next).await)?;
        }
    }
    Ok(wrote)
}

/// What the scheduler knows of every node, for this cargo; with `loads`, also how many
/// replicas of other cargoes each runs and how many more of this cargo its resources hold
/// (the hub's tally), else none and no limit (enough to tell whether every slot stays put).
fn candidates<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    cargo: &CargoObject,
    cluster: Option<&ClusterObject>,
    nodes: &[Arc<NodeObject>],
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
    let request = Request::of(&cargo.spec.container).filter(|_| loads);
    let others = if loads {
        shared.hub.loads().others(
            cargo.metadata.namespace.as_deref().unwrap_or_default(),
            &cargo.metadata.name,
        )
    } else {
        HashMap::new()
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
                    let used = others.get(&n.metadata.name).copied().unwrap_or_default();
                    r.fits(
                        f64::from(cap.cpus) - used.cpus(),
                        cap.memory_bytes.saturating_sub(used.memory),
                    )
                }
            };
            Candidate {
                name: n.metadata.name.clone(),
                ready: node_ready(n),
                cordoned: n.spec.unschedulable,
                selected,
                room,
                load: others.get(&n.metadata.name).map_or(0, |t| t.replicas),
            }
        })
        .collect()
}

/// New Replicas written at once.
const PLACEMENT_WRITES: usize = 32;

/// Writes the placement as Replica objects: a new one per slot placed for the first time, a
/// moved one where its node changed, and the surplus deleted (its node's runner removes the
/// container, then lets it go). Answers whether anything was written.
async fn apply_placement<S: Store + Clone, D: Docker>(
    shared: &Shared<S, D>,
    cargo: &CargoObject,
    replicas: &[Arc<ReplicaObject>],
    placement: &Placement,
    want: u32,
    writes: &Writes<'_>,
) -> Result<bool, ReconcileError> {
    let api: Api<ReplicaObject, S> = Api::new(shared.store.clone());
    let namespace = cargo.metadata.namespace.clone().unwrap_or_default();
    let object = CargoObject::clone(cargo).into_any();
    let mut wrote = false;
    let mut moves = Vec::new();
    let mut new_replicas = Vec::new();
    for (slot, node) in &placement.nodes {
        let existing = replicas.iter().find(|r| r.spec.slot == *slot);
        match existing {
            // Being removed (a scale down and up again): placed once it is gone.
            Some(r) if r.metadata.deletion_timestamp.is_some() => {}
            Some(r) if &r.spec.node == node => {}
            Some(r) => {
                let mut next = ReplicaObject::clone(r);
                next.spec.node = node.clone();
                if shared
                    .expected
                    .note(r, api.replace_returning(r, &next).await)?
                {
                    moves.push(format!("{slot} from {} to {node}", r.spec.node));
                }
                wrote = true;
            }
            // Recreate: not before every old replica is gone.
            None if !writes.create_allowed => {}
            None => new_replicas.push(ReplicaObject {
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
                    revision: writes.create.revision,
                    hash: Some(writes.create.hash.clone()),
                    template: Some(writes.create.template.clone()),
                    min_ready_seconds: Some(writes.min_ready_seconds).filter(|s| *s > 0),
                },
                status: None,
            }),
        }
    }
    // The new ones side by side: the store commits them together (the embedded store's
    // writer takes a batch, etcd pipelines), so a node's runner, woken by the first, finds
    // the others in its cache too and starts them in one window rather than in two rounds.
    use futures::StreamExt as _;
    let created: Vec<Result<ReplicaObject, ObjectError>> = futures::stream::iter(new_replicas)
        .map(|new| {
            let api: Api<ReplicaObject, S> = Api::new(shared.store.clone());
            async move { api.create(&new).await }
        })
        .buffer_unordered(PLACEMENT_WRITES)
        .collect()
        .await;
    for result in created {
        match result {
            Ok(stored) => {
                shared.expected.created(&stored);
                wrote = true;
            }
            // Written meanwhile (by an earlier leader, say): the next reconcile reads it.
            Err(ObjectError::Store(StoreError::AlreadyExists { .. })) => wrote = true,
            Err(e) => return Err(e.into()),
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
            shared.expected.note(r, api.delete_returning(r).await)?;
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

/// What the status is summarized from, besides the Replicas.
struct Summary<'a> {
    /// Replicas wanted (the spec's, or the autoscaler's).
    want: u32,
    /// What the autoscaler decided (`None`: no autoscale, or as the status has it).
    autoscale: Option<AutoscaleStatus>,
    /// The hash of the spec's revision.
    desired_hash: Option<String>,
    ready_nodes: HashMap<String, bool>,
    /// Why the cargo cannot be rendered.
    not_ready: Option<(String, String)>,
    placement: Option<&'a Placement>,
    /// Revisions and the update, as they are now (`None`: as the status has them).
    history: Option<&'a rollout::History>,
    /// A build of the spec's settings is still to come (the builder has not yet taken
    /// them up, or is building): what it says.
    building: Option<String>,
}

impl Summary<'_> {
    fn not_ready(cargo: &CargoObject, not_ready: &NotReady) -> Summary<'static> {
        Summary {
            want: plan::replicas_wanted(cargo),
            autoscale: cargo.status.as_ref().and_then(|s| s.autoscale.clone()),
            desired_hash: None,
            ready_nodes: HashMap::new(),
            not_ready: Some((not_ready.reason.to_owned(), not_ready.message.clone())),
            placement: None,
            history: None,
            building: None,
        }
    }
}

/// The cargo's status from its Replicas' reports: a report counts only when it comes from
/// the node the Replica is placed on, and a replica is ready only while that node is.
fn summarize(
    cargo: &CargoObject,
    summary: &Summary<'_>,
    replicas: &[Arc<ReplicaObject>],
) -> CargoStatus {
    let previous = cargo.status.clone().unwrap_or_default();
    let generation = cargo.metadata.generation;
    let want = summary.want as usize;
    let (mut observed, mut updated, mut ready) = (0, 0, 0);
    let mut problems = Vec::new();
    let mut waiting: Option<(String, String)> = None;
    for r in replicas {
        let Some(s) = reported(r) else {
            continue;
        };
        // Every container counts: a slot mid-replacement has two, and the cargo is not
        // ready until the one replaced is gone.
        observed += s.containers.max(u32::from(s.container.is_some())) as usize;
        let live = s.container.is_some() && r.metadata.deletion_timestamp.is_none();
        if live && summary.desired_hash.is_some() && s.spec_hash == summary.desired_hash {
            updated += 1;
        }
        // Ready, of whichever revision (a rolled-back cargo's replicas serve).
        if live
            && s.ready
            && r.spec
                .hash
                .as_deref()
                .is_none_or(|h| s.spec_hash.as_deref() == Some(h))
            && summary
                .ready_nodes
                .get(&r.spec.node)
                .copied()
                .unwrap_or(false)
        {
            ready += 1;
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
    for (slot, why) in summary.placement.map(|p| &p.unplaced).into_iter().flatten() {
        problems.push(Problem {
            reason: "Unschedulable".to_owned(),
            message: format!("replica {slot}: {why}"),
        });
    }
    // Identical messages (one per replica of a node) are said once.
    let mut seen = std::collections::HashSet::new();
    problems.retain(|p| seen.insert((p.reason.clone(), p.message.clone())));
    let not_ready: Option<(String, String)> = summary.not_ready.clone().or(waiting);
    let history = summary
        .history
        .cloned()
        .unwrap_or_else(|| rollout::History::of(Some(&previous)));
    let rollout = history.rollout.clone();
    let phase = rollout.as_ref().map_or("", |r| r.phase.as_str());
    // Why the update failed: the reason word of `failed` ("Reason: message").
    let failed_reason = history
        .get(history.update)
        .and_then(|e| e.failed.as_deref())
        .map(|f| f.split(':').next().unwrap_or(f).to_owned());
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let all_ready = not_ready.is_none()
        && summary.desired_hash.is_some()
        && ready == want
        && updated == want
        && observed == want;
    let rollout_message = rollout
        .as_ref()
        .map(|r| r.message.clone())
        .unwrap_or_default();
    // The latest build failed: the replicas run the previous image, and the cargo is not
    // what its spec says.
    let building = summary.building.clone();
    // (A failure of settings the spec no longer has is no longer the news.)
    let build_failed = previous
        .build
        .as_ref()
        .filter(|b| b.phase == super::build::phase::FAILED && b.image.is_some())
        .filter(|_| building.is_none())
        .map(|b| b.message.clone());
    if let Some(message) = &build_failed {
        problems.insert(
            0,
            Problem {
                reason: "BuildFailed".to_owned(),
                message: message.clone(),
            },
        );
    }
    let all_ready = all_ready && build_failed.is_none() && building.is_none();
    let (ready_reason, ready_message) = match (&not_ready, problems.first()) {
        (Some((reason, message)), _) => (reason.clone(), message.clone()),
        (None, _) if build_failed.is_some() => (
            "BuildFailed".to_owned(),
            build_failed.clone().unwrap_or_default(),
        ),
        (None, _) if building.is_some() => {
            ("Building".to_owned(), building.clone().unwrap_or_default())
        }
        _ if matches!(phase, "RolledBack" | "RollingBack" | "Failed") && !all_ready => {
            (phase.to_owned(), rollout_message.clone())
        }
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
    let (progressing, progress_reason, progress_message) = match phase {
        _ if not_ready.is_some() => (false, "Waiting".to_owned(), String::new()),
        _ if building.is_some() => (true, "Building".to_owned(), building.unwrap_or_default()),
        "Progressing" if !all_ready => (true, "RollingUpdate".to_owned(), rollout_message),
        "RollingBack" => (true, "RollingBack".to_owned(), rollout_message),
        "Paused" => (false, "Paused".to_owned(), rollout_message),
        "RolledBack" => (false, "RolledBack".to_owned(), rollout_message),
        "Failed" => (
            false,
            failed_reason.unwrap_or_else(|| "RolloutFailed".to_owned()),
            rollout_message,
        ),
        _ => (false, "Stable".to_owned(), String::new()),
    };
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
            &progress_reason,
            progress_message,
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
        current_revision: history.current,
        update_revision: history.update,
        rollout,
        revisions: history.revisions,
        autoscale: summary.autoscale.clone(),
        // The builder's: kept as it is.
        build: previous.build.clone(),
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
        // Built images of deleted cargoes, and old ones.
        super::build::collect_images(shared).await;
        super::build::collect_logs(shared).await;
    })
    .await;
}
