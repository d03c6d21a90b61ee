//! The pure heart of an update (on the leader): which replicas move to the target revision
//! now, within `maxSurge` and `maxUnavailable`, and whether the update is complete, making
//! progress, or failed. No I/O and no clock: `now` is given; tested hardest.
//!
//! A slot moves to the new revision one of two ways:
//!
//! - **in place** (surge): its Replica's template changes; the node's runner starts the new
//!   container beside the old one and removes the old one once the new one is ready. One
//!   container more for a while, no replica less.
//! - **recreate**: its Replica is deleted (the runner removes its container) and created
//!   again with the new template. One replica less for a while, no container more.
//!
//! `maxSurge` bounds the first, `maxUnavailable` the second. A slot whose container does not
//! run anyway (crashed, never started) is replaced in place at no cost to either.

use nanocl_api_types::cargo::v1::{
    CargoRevision, CargoStatus, RolloutStatus, UpdatePolicy, UpdateStrategy,
};

/// What the leader knows of one slot of the cargo (below its replica count).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    /// The ordinal.
    pub slot: u32,
    /// The hash its Replica is set to run.
    pub hash: Option<String>,
    /// Its Replica is being deleted.
    pub deleting: bool,
    /// Its container runs the Replica's template, is ready (healthy, `minReadySeconds`) and
    /// alone in its slot, on a Ready node.
    pub available: bool,
    /// A container of the slot runs (ready or not): replacing it in place adds one.
    pub running: bool,
    /// Containers beyond one in the slot, now or about to be (a template just changed
    /// under a running container).
    pub extra: u32,
}

/// What to do now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Slots whose Replica gets the target template in place.
    pub update: Vec<u32>,
    /// Slots whose Replica is deleted, to be created again with the target template.
    pub recreate: Vec<u32>,
    /// Whether missing slots may be created now (`Recreate` waits until every old replica
    /// is gone).
    pub create: bool,
}

/// The next step toward every one of `want` slots running `target`, within `policy`;
/// nothing moves while `paused`.
pub fn step(target: &str, want: u32, policy: &UpdatePolicy, paused: bool, slots: &[Slot]) -> Step {
    let mut step = Step {
        create: true,
        ..Step::default()
    };
    let live: Vec<&Slot> = slots.iter().filter(|s| s.slot < want).collect();
    let outdated = |s: &&&Slot| !s.deleting && s.hash.as_deref() != Some(target);
    if policy.strategy == UpdateStrategy::Recreate {
        let old: Vec<u32> = live.iter().filter(outdated).map(|s| s.slot).collect();
        let going = slots
            .iter()
            .any(|s| s.deleting && s.hash.as_deref() != Some(target));
        step.create = old.is_empty() && !going;
        if !paused {
            step.recreate = old;
        }
        if paused {
            step.create = !going;
        }
        return step;
    }
    if paused {
        return step;
    }
    let mut extra: u32 = live.iter().map(|s| s.extra).sum();
    let mut available = live.iter().filter(|s| s.available).count() as u32;
    let floor = want.saturating_sub(policy.max_unavailable);
    let mut candidates: Vec<&&Slot> = live.iter().filter(outdated).collect();
    // The ones that serve nothing first: replacing them costs nothing.
    candidates.sort_by_key(|s| (s.available, s.running, s.slot));
    for s in candidates {
        // A slot that serves nothing, or is mid-replacement already (its old container still
        // serving beside the replacement): moved in place at no cost to either budget.
        if !s.running || s.extra > 0 {
            step.update.push(s.slot);
        } else if extra < policy.max_surge {
            step.update.push(s.slot);
            extra += 1;
        } else if !s.available || available > floor {
            step.recreate.push(s.slot);
            if s.available {
                available -= 1;
            }
        }
    }
    step
}

/// How the update stands after this reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every slot runs the target, ready, and nothing else runs.
    Complete,
    /// Still moving (or waiting for readiness); `ready` slots of the target are ready.
    Progressing {
        /// Target replicas ready.
        ready: u32,
    },
    /// The update failed: `reason` (`ProgressDeadlineExceeded`, `CrashLoopBackOff`,
    /// `Unhealthy`) and a sentence.
    Failed {
        /// CamelCase.
        reason: String,
        /// For people.
        message: String,
    },
}

/// A failure a replica of the target revision reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaFailure {
    /// Its reason.
    pub reason: String,
    /// Its message.
    pub message: String,
}

/// Reasons of a replica of the new revision that fail the update at once.
pub const FAILING_REASONS: [&str; 2] = ["CrashLoopBackOff", "Unhealthy"];

/// Judges the update to `target`: complete when every slot below `want` runs it, available,
/// with no other container (`extra`) and no slot at or beyond `want` left; failed when a
/// replica of it reports a failing reason, or when `since_progress_s` (seconds since the
/// last progress) passed the deadline (`deadline_s`, `None`: no deadline, e.g. a rollback).
pub fn judge(
    target: &str,
    want: u32,
    slots: &[Slot],
    failures: &[ReplicaFailure],
    since_progress_s: u64,
    deadline_s: Option<u32>,
) -> Verdict {
    let at = |s: &&Slot| s.hash.as_deref() == Some(target) && !s.deleting;
    let ready = slots
        .iter()
        .filter(|s| s.slot < want)
        .filter(at)
        .filter(|s| s.available)
        .count() as u32;
    let every = (0..want).all(|n| {
        slots
            .iter()
            .any(|s| s.slot == n && at(&s) && s.available && s.extra == 0)
    });
    let surplus = slots.iter().any(|s| s.slot >= want);
    if every && !surplus {
        return Verdict::Complete;
    }
    if let Some(deadline) = deadline_s {
        if let Some(f) = failures
            .iter()
            .find(|f| FAILING_REASONS.contains(&f.reason.as_str()))
        {
            return Verdict::Failed {
                reason: f.reason.clone(),
                message: f.message.clone(),
            };
        }
        if since_progress_s > u64::from(deadline) {
            return Verdict::Failed {
                reason: "ProgressDeadlineExceeded".to_owned(),
                message: format!(
                    "no progress for {deadline}s (progressDeadlineSeconds): {ready}/{want} replicas of the new revision ready"
                ),
            };
        }
    }
    Verdict::Progressing { ready }
}

/// A cargo's revisions and where its update stands, as its status records them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// Kept revisions, oldest first.
    pub revisions: Vec<CargoRevision>,
    /// The last revision that ran everywhere.
    pub current: Option<u32>,
    /// The spec's revision.
    pub update: Option<u32>,
    /// The update.
    pub rollout: Option<RolloutStatus>,
}

impl History {
    /// From a cargo's status.
    pub fn of(status: Option<&CargoStatus>) -> History {
        status.map_or_else(History::default, |s| History {
            revisions: s.revisions.clone(),
            current: s.current_revision,
            update: s.update_revision,
            rollout: s.rollout.clone(),
        })
    }

    /// Revision `n`.
    pub fn get(&self, n: Option<u32>) -> Option<&CargoRevision> {
        let n = n?;
        self.revisions.iter().find(|r| r.revision == n)
    }

    /// Records `next` (its number, time, change and failure filled in here) as the spec's
    /// revision, unless the spec's revision already has its hash. A revision with the same
    /// hash further back (a `rollout undo`) is renumbered as the newest, its failure
    /// forgotten: the spec came back to it on purpose. Answers whether one was recorded.
    pub fn record(&mut self, mut next: CargoRevision, now: &str, limit: u32) -> bool {
        if self.get(self.update).is_some_and(|u| u.hash == next.hash) {
            return false;
        }
        let previous = self.get(self.update).cloned();
        let number = self.revisions.iter().map(|r| r.revision).max().unwrap_or(0) + 1;
        let renumbered = self
            .revisions
            .iter()
            .find(|r| r.hash == next.hash)
            .map(|r| r.revision);
        self.revisions.retain(|r| r.hash != next.hash);
        if renumbered.is_some() && self.current == renumbered {
            self.current = Some(number);
        }
        next.revision = number;
        next.created = Some(now.to_owned());
        next.failed = None;
        next.change = match (&previous, renumbered) {
            (_, Some(old)) => format!("back to revision {old}"),
            (Some(p), None) => change(p, &next),
            (None, None) => "created".to_owned(),
        };
        self.revisions.push(next);
        self.update = Some(number);
        self.rollout = Some(RolloutStatus {
            revision: number,
            phase: "Progressing".to_owned(),
            started: Some(now.to_owned()),
            progressed: Some(now.to_owned()),
            ready: 0,
            message: String::new(),
        });
        self.trim(limit);
        true
    }

    /// Keeps the current and the update revision, and the newest `limit` others.
    fn trim(&mut self, limit: u32) {
        let keep = [self.current, self.update];
        let mut others: Vec<u32> = self
            .revisions
            .iter()
            .map(|r| r.revision)
            .filter(|n| !keep.contains(&Some(*n)))
            .collect();
        others.sort_unstable();
        let drop = others.len().saturating_sub(limit as usize);
        let dropped: Vec<u32> = others[..drop].to_vec();
        self.revisions.retain(|r| !dropped.contains(&r.revision));
    }
}

/// What changed from `a` to `b`, for `rollout history`: `image busybox:1.36 -> busybox:1.37;
/// env A, B; cluster variables DB`.
pub fn change(a: &CargoRevision, b: &CargoRevision) -> String {
    let (x, y) = (&a.container, &b.container);
    let mut parts = Vec::new();
    if x.image != y.image {
        parts.push(format!("image {} -> {}", x.image, y.image));
    }
    let keys_changed = |p: &std::collections::BTreeMap<String, String>,
                        q: &std::collections::BTreeMap<String, String>| {
        let mut names: Vec<&str> = p
            .keys()
            .chain(q.keys())
            .filter(|k| p.get(*k) != q.get(*k))
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names.dedup();
        names.join(", ")
    };
    let text = |m: &std::collections::BTreeMap<String, nanocl_api_types::cargo::v1::EnvValue>| {
        m.iter()
            .map(|(k, v)| (k.clone(), serde_json::to_string(v).unwrap_or_default()))
            .collect::<std::collections::BTreeMap<String, String>>()
    };
    let env = keys_changed(&text(&x.env), &text(&y.env));
    if !env.is_empty() {
        parts.push(format!("env {env}"));
    }
    let vars = keys_changed(&a.variables, &b.variables);
    if !vars.is_empty() {
        parts.push(format!("cluster variables {vars}"));
    }
    let json = |v: &dyn erased::Json| v.json();
    for (name, p, q) in [
        ("command", json(&x.command), json(&y.command)),
        ("args", json(&x.args), json(&y.args)),
        ("ports", json(&x.ports), json(&y.ports)),
        ("volumes", json(&x.volumes), json(&y.volumes)),
        ("workingDir", json(&x.working_dir), json(&y.working_dir)),
        ("user", json(&x.user), json(&y.user)),
        ("labels", json(&x.labels), json(&y.labels)),
        ("resources", json(&x.resources), json(&y.resources)),
        ("healthcheck", json(&x.healthcheck), json(&y.healthcheck)),
        ("networks", json(&a.networks), json(&b.networks)),
    ] {
        if p != q {
            parts.push(name.to_owned());
        }
    }
    if a.restarted_at != b.restarted_at && b.restarted_at.is_some() {
        parts.push("restarted".to_owned());
    }
    if parts.is_empty() {
        "changed".to_owned()
    } else {
        parts.join("; ")
    }
}

mod erased {
    /// Anything serializable, as JSON (to compare fields of different types in one list).
    pub trait Json {
        fn json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(strategy: UpdateStrategy, surge: u32, unavailable: u32) -> UpdatePolicy {
        UpdatePolicy {
            strategy,
            max_surge: surge,
            max_unavailable: unavailable,
            min_ready_seconds: 0,
            progress_deadline_seconds: 600,
            auto_rollback: true,
            revision_history_limit: 10,
        }
    }

    fn old(slot: u32) -> Slot {
        Slot {
            slot,
            hash: Some("old".into()),
            available: true,
            running: true,
            ..Slot::default()
        }
    }

    #[test]
    fn the_default_should_replace_one_slot_at_a_time_in_place() {
        let slots: Vec<Slot> = (0..6).map(old).collect();
        let p = policy(UpdateStrategy::RollingUpdate, 1, 0);
        let s = step("new", 6, &p, false, &slots);
        assert_eq!(s.update, vec![0]);
        assert!(s.recreate.is_empty());
        // Slot 0 now surges: nothing more until it is done.
        let mut slots = slots;
        slots[0].hash = Some("new".into());
        slots[0].extra = 1;
        slots[0].available = false;
        let s = step("new", 6, &p, false, &slots);
        assert_eq!(
            s,
            Step {
                create: true,
                ..Step::default()
            }
        );
        slots[0].extra = 0;
        slots[0].available = true;
        assert_eq!(step("new", 6, &p, false, &slots).update, vec![1]);
    }

    #[test]
    fn surge_two_should_start_two_and_unavailable_should_recreate() {
        let slots: Vec<Slot> = (0..6).map(old).collect();
        let s = step(
            "new",
            6,
            &policy(UpdateStrategy::RollingUpdate, 2, 0),
            false,
            &slots,
        );
        assert_eq!(s.update, vec![0, 1]);
        let s = step(
            "new",
            6,
            &policy(UpdateStrategy::RollingUpdate, 0, 2),
            false,
            &slots,
        );
        assert_eq!((s.update, s.recreate), (vec![], vec![0, 1]));
        let s = step(
            "new",
            6,
            &policy(UpdateStrategy::RollingUpdate, 1, 1),
            false,
            &slots,
        );
        assert_eq!((s.update, s.recreate), (vec![0], vec![1]));
    }

    #[test]
    fn a_slot_that_serves_nothing_should_be_replaced_first_and_for_free() {
        let mut slots: Vec<Slot> = (0..3).map(old).collect();
        slots[2].running = false;
        slots[2].available = false;
        let s = step(
            "new",
            3,
            &policy(UpdateStrategy::RollingUpdate, 1, 0),
            false,
            &slots,
        );
        assert_eq!(s.update, vec![2, 0]);
    }

    #[test]
    fn recreate_should_remove_every_old_replica_before_creating() {
        let slots: Vec<Slot> = (0..3).map(old).collect();
        let p = policy(UpdateStrategy::Recreate, 0, 1);
        let s = step("new", 3, &p, false, &slots);
        assert_eq!(s.recreate, vec![0, 1, 2]);
        assert!(!s.create);
        let going: Vec<Slot> = (0..3)
            .map(|n| Slot {
                deleting: true,
                ..old(n)
            })
            .collect();
        assert!(!step("new", 3, &p, false, &going).create);
        assert!(step("new", 3, &p, false, &[]).create);
    }

    #[test]
    fn a_paused_update_should_move_nothing() {
        let slots: Vec<Slot> = (0..3).map(old).collect();
        let s = step(
            "new",
            3,
            &policy(UpdateStrategy::RollingUpdate, 3, 3),
            true,
            &slots,
        );
        assert!(s.update.is_empty() && s.recreate.is_empty() && s.create);
    }

    #[test]
    fn judge_should_fail_on_a_crash_loop_or_the_deadline_and_not_on_a_rollback() {
        let slots = vec![Slot {
            hash: Some("new".into()),
            running: true,
            ..old(0)
        }];
        let crash = [ReplicaFailure {
            reason: "CrashLoopBackOff".into(),
            message: "replica 0 exited with code 1".into(),
        }];
        let mut not_ready = slots.clone();
        not_ready[0].available = false;
        assert!(matches!(
            judge("new", 1, &not_ready, &crash, 0, Some(600)),
            Verdict::Failed { reason, .. } if reason == "CrashLoopBackOff"
        ));
        assert!(matches!(
            judge("new", 1, &not_ready, &[], 601, Some(600)),
            Verdict::Failed { reason, .. } if reason == "ProgressDeadlineExceeded"
        ));
        assert_eq!(
            judge("new", 1, &not_ready, &crash, 601, None),
            Verdict::Progressing { ready: 0 }
        );
        assert_eq!(
            judge("new", 1, &slots, &[], 0, Some(600)),
            Verdict::Complete
        );
        let mut surplus = slots.clone();
        surplus.push(old(1));
        assert_eq!(
            judge("new", 1, &surplus, &[], 0, Some(600)),
            Verdict::Progressing { ready: 1 }
        );
    }

    /// Runs an update to the end the way the leader and the runners would, one step at a
    /// time; a replacement in place first adds a container, then (a step later) becomes
    /// available; a recreated slot is first missing, then available again.
    fn simulate(want: u32, p: &UpdatePolicy, unready: &[u32]) -> (u32, u32, u32) {
        let mut slots: Vec<Slot> = (0..want).map(old).collect();
        for s in &mut slots {
            if unready.contains(&s.slot) {
                s.available = false;
                s.running = false;
            }
        }
        let (mut max_containers, mut min_available, mut steps) = (0, u32::MAX, 0);
        loop {
            let containers: u32 = slots.iter().map(|s| 1 + s.extra).sum();
            // A slot replaced in place still serves from its old container.
            let available = slots.iter().filter(|s| s.available || s.extra > 0).count() as u32;
            max_containers = max_containers.max(containers);
            min_available = min_available.min(available);
            if judge("new", want, &slots, &[], 0, Some(600)) == Verdict::Complete || steps > 1000 {
                return (max_containers, min_available, steps);
            }
            steps += 1;
            // What was started last round finishes now.
            for s in &mut slots {
                if s.hash.as_deref() == Some("new") {
                    s.extra = 0;
                    s.available = true;
                    s.running = true;
                }
            }
            slots.retain(|s| !s.deleting);
            for n in 0..want {
                if !slots.iter().any(|s| s.slot == n) {
                    slots.push(Slot {
                        slot: n,
                        hash: Some("new".into()),
                        ..Slot::default()
                    });
                }
            }
            let st = step("new", want, p, false, &slots);
            for s in &mut slots {
                if st.update.contains(&s.slot) {
                    if s.running {
                        s.extra = 1;
                    }
                    s.hash = Some("new".into());
                    s.available = false;
                }
                if st.recreate.contains(&s.slot) {
                    s.deleting = true;
                    s.available = false;
                }
            }
        }
    }

    proptest! {
        #[test]
        fn an_update_should_stay_within_surge_and_unavailable_and_finish(
            want in 1u32..12,
            surge in 0u32..4,
            unavailable in 0u32..4,
            unready in proptest::collection::vec(0u32..12, 0..3),
        ) {
            let unavailable = if surge == 0 && unavailable == 0 { 1 } else { unavailable };
            let p = policy(UpdateStrategy::RollingUpdate, surge, unavailable);
            let already_down = unready.iter().filter(|n| **n < want).collect::<std::collections::BTreeSet<_>>().len() as u32;
            let (max_containers, min_available, steps) = simulate(want, &p, &unready);
            prop_assert!(steps <= 1000, "it finishes");
            prop_assert!(max_containers <= want + surge, "{max_containers} containers for {want} + {surge}");
            prop_assert!(
                min_available + unavailable >= want.saturating_sub(already_down).min(want - already_down.min(want)),
                "{min_available} available, floor {} ", want.saturating_sub(unavailable)
            );
            if already_down == 0 {
                prop_assert!(min_available + unavailable >= want, "{min_available} available of {want} with maxUnavailable {unavailable}");
            }
        }
    }
}
