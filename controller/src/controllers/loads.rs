//! What each node runs, for the scheduler: how many replicas and the CPUs and memory they
//! ask for, kept by the Replica cache's writer as Replicas come and go (`reflector::Index`),
//! so that placing a slot does not sum every Replica of every cargo again. Placing 10,000
//! new cargoes was quadratic before: each summed all the Replicas placed so far.

use std::collections::HashMap;
use std::sync::Mutex;

use nanocl_api_types::cargo::v1::ContainerSpec;
use nanocl_api_types::replica::v1::Replica as ReplicaObject;

use crate::runtime::reflector::Index;

/// The CPUs and memory one replica asks for (`resources`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Request {
    /// CPUs (`resources.cpus`).
    pub cpus: f64,
    /// Bytes (`resources.memory`).
    pub memory: u64,
}

impl Request {
    /// What a container asks for; `None` when it sets no limit.
    pub fn of(container: &ContainerSpec) -> Option<Request> {
        let r = container.resources.as_ref()?;
        let memory = r
            .memory
            .as_deref()
            .and_then(|m| nanocl_api_types::quantity::parse_memory(m).ok())
            .unwrap_or(0);
        let cpus = r.cpus.unwrap_or(0.0);
        (cpus > 0.0 || memory > 0).then_some(Request { cpus, memory })
    }

    /// How many replicas fit in `cpus` and `memory`.
    pub fn fits(self, cpus: f64, memory: u64) -> u32 {
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

/// Replicas on a node and what they ask for. CPUs are counted in millionths, so that adding
/// and taking away the same replica leaves no rounding behind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// How many replicas.
    pub replicas: u32,
    /// Their `resources.cpus`, in millionths of a CPU.
    pub micro_cpus: u64,
    /// Their `resources.memory`, in bytes.
    pub memory: u64,
}

impl Tally {
    /// The CPUs, as a number of CPUs.
    pub fn cpus(&self) -> f64 {
        self.micro_cpus as f64 / 1e6
    }

    fn of(replica: &ReplicaObject) -> Tally {
        // A Replica written before revisions has no template: it asks for nothing here.
        let request = replica
            .spec
            .template
            .as_ref()
            .and_then(|t| Request::of(&t.container));
        Tally {
            replicas: 1,
            micro_cpus: request.map_or(0, |r| (r.cpus * 1e6).round() as u64),
            memory: request.map_or(0, |r| r.memory),
        }
    }

    fn add(&mut self, other: Tally) {
        self.replicas = self.replicas.saturating_add(other.replicas);
        self.micro_cpus = self.micro_cpus.saturating_add(other.micro_cpus);
        self.memory = self.memory.saturating_add(other.memory);
    }

    fn sub(&mut self, other: Tally) {
        self.replicas = self.replicas.saturating_sub(other.replicas);
        self.micro_cpus = self.micro_cpus.saturating_sub(other.micro_cpus);
        self.memory = self.memory.saturating_sub(other.memory);
    }
}

#[derive(Debug, Default)]
struct Tallies {
    /// Per node, every Replica there.
    nodes: HashMap<String, Tally>,
    /// Per cargo (`namespace/name`), per node, its own Replicas.
    cargoes: HashMap<String, HashMap<String, Tally>>,
}

/// Per node, what the Replicas placed there ask for (the Replica cache's index).
#[derive(Debug, Default)]
pub struct NodeLoads {
    tallies: Mutex<Tallies>,
}

fn cargo_key(replica: &ReplicaObject) -> String {
    format!(
        "{}/{}",
        replica.metadata.namespace.as_deref().unwrap_or_default(),
        replica.spec.cargo
    )
}

impl NodeLoads {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tallies> {
        self.tallies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Per node, the Replicas of every cargo but `namespace/cargo` (the one being placed).
    pub fn others(&self, namespace: &str, cargo: &str) -> HashMap<String, Tally> {
        let tallies = self.lock();
        let own = tallies.cargoes.get(&format!("{namespace}/{cargo}"));
        tallies
            .nodes
            .iter()
            .map(|(node, tally)| {
                let mut left = *tally;
                if let Some(mine) = own.and_then(|o| o.get(node)) {
                    left.sub(*mine);
                }
                (node.clone(), left)
            })
            .collect()
    }
}

impl Index<ReplicaObject> for NodeLoads {
    fn add(&self, replica: &ReplicaObject) {
        let tally = Tally::of(replica);
        let mut tallies = self.lock();
        let node = &replica.spec.node;
        tallies.nodes.entry(node.clone()).or_default().add(tally);
        tallies
            .cargoes
            .entry(cargo_key(replica))
            .or_default()
            .entry(node.clone())
            .or_default()
            .add(tally);
    }

    fn remove(&self, replica: &ReplicaObject) {
        let tally = Tally::of(replica);
        let mut tallies = self.lock();
        let node = &replica.spec.node;
        if let Some(t) = tallies.nodes.get_mut(node) {
            t.sub(tally);
            if t.replicas == 0 {
                tallies.nodes.remove(node);
            }
        }
        let key = cargo_key(replica);
        if let Some(per_node) = tallies.cargoes.get_mut(&key) {
            if let Some(t) = per_node.get_mut(node) {
                t.sub(tally);
                if t.replicas == 0 {
                    per_node.remove(node);
                }
            }
            if per_node.is_empty() {
                tallies.cargoes.remove(&key);
            }
        }
    }

    fn clear(&self) {
        *self.lock() = Tallies::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanocl_api_types::cargo::v1::Resources;
    use nanocl_api_types::replica::v1::{ReplicaSpec, ReplicaTemplate};

    fn replica(ns: &str, cargo: &str, slot: u32, node: &str, cpus: Option<f64>) -> ReplicaObject {
        let mut r = ReplicaObject::default();
        r.metadata.name = format!("{cargo}-{slot}");
        r.metadata.namespace = Some(ns.to_owned());
        r.spec = ReplicaSpec {
            cargo: cargo.to_owned(),
            slot,
            node: node.to_owned(),
            template: cpus.map(|c| ReplicaTemplate {
                container: ContainerSpec {
                    resources: Some(Resources {
                        cpus: Some(c),
                        memory: Some("64M".to_owned()),
                    }),
                    ..ContainerSpec::default()
                },
                ..ReplicaTemplate::default()
            }),
            ..ReplicaSpec::default()
        };
        r
    }

    #[test]
    fn others_leave_out_the_cargo_being_placed() {
        let loads = NodeLoads::default();
        loads.add(&replica("a", "web", 0, "n1", Some(0.1)));
        loads.add(&replica("a", "web", 1, "n2", Some(0.1)));
        loads.add(&replica("a", "db", 0, "n1", Some(0.5)));
        loads.add(&replica("b", "web", 0, "n1", None));
        let others = loads.others("a", "web");
        assert_eq!(
            others.get("n1"),
            Some(&Tally {
                replicas: 2,
                micro_cpus: 500_000,
                memory: 64 << 20
            })
        );
        assert_eq!(others.get("n2").map(|t| t.replicas), Some(0));
        // Adding then removing the same replicas leaves nothing, not a rounding error.
        for _ in 0..3 {
            loads.add(&replica("c", "x", 0, "n3", Some(0.3)));
        }
        for _ in 0..3 {
            loads.remove(&replica("c", "x", 0, "n3", Some(0.3)));
        }
        assert!(!loads.others("a", "web").contains_key("n3"));
        loads.clear();
        assert!(loads.others("a", "web").is_empty());
    }
}
