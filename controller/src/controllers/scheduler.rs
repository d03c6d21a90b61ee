//! Placement: which node runs each slot of a cargo. A pure function of the nodes, the
//! cargo's placement rules and where its slots are now; the Cargo controller (on the leader)
//! writes the result as `Replica` objects.
//!
//! Rules:
//! - A slot keeps its node while that node is Ready and still eligible (its labels match
//!   the cluster's `spec.nodes` and the cargo's `nodeSelector`, and `maxPerNode` holds):
//!   a restarted leader, or a new one, moves nothing that is right. A cordoned node keeps
//!   what it runs.
//! - A slot without a node, or whose node is lost or no longer eligible, goes to the
//!   eligible node that is Ready, not cordoned, below `maxPerNode` and with room for the
//!   cargo's `resources`: with `spread` (the default) the one running the fewest of the
//!   cargo's replicas, else the one running the most. Between those, spreading takes the
//!   node with the fewest replicas of all cargoes, then a hash of the cargo, the slot and the
//!   node, so that single-replica cargoes spread over the nodes too.
//! - A slot that fits nowhere keeps the node it had (nothing better exists) or stays
//!   unplaced, and the reason says why, node by node, as `0/3 nodes fit: ...`.

use std::collections::{BTreeMap, HashMap};

/// What the scheduler knows of one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The node's name.
    pub name: String,
    /// Ready: its agent keeps its lease.
    pub ready: bool,
    /// Cordoned (`spec.unschedulable`): keeps what it runs, takes nothing new.
    pub cordoned: bool,
    /// Its labels match the cluster's `spec.nodes` and the cargo's `nodeSelector`.
    pub selected: bool,
    /// How many more replicas of this cargo its free CPU and memory hold (`u32::MAX`
    /// when the cargo asks for none).
    pub room: u32,
    /// Replicas of every other cargo placed on it: between nodes that run as many of this
    /// cargo's replicas, spreading prefers the less loaded.
    pub load: u32,
}

/// The cargo's rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Slots `0..replicas`.
    pub replicas: u32,
    /// Spread (fewest first) rather than pack (most first).
    pub spread: bool,
    /// At most this many on one node.
    pub max_per_node: Option<u32>,
}

/// Where each slot goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// Slot → node, for every slot that has one.
    pub nodes: BTreeMap<u32, String>,
    /// Slots placed on a node they were not on before: slot → (from, to).
    pub moved: BTreeMap<u32, (Option<String>, String)>,
    /// Slots that fit nowhere (those that kept a lost node included), with why.
    pub unplaced: BTreeMap<u32, String>,
}

/// FNV-1a over the parts, mixed: stable across runs and builds.
fn tie_break(cargo: &str, slot: u32, node: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for b in cargo
        .bytes()
        .chain(slot.to_le_bytes())
        .chain([0xff])
        .chain(node.bytes())
    {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    // FNV's last bytes barely reach the high bits: mix (splitmix64's finalizer).
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Places slots `0..rules.replicas` of cargo `cargo` (its key, for the tie-break), which
/// are now on `current` (slot → node).
pub fn place(
    cargo: &str,
    rules: Rules,
    nodes: &[Candidate],
    current: &BTreeMap<u32, String>,
) -> Placement {
    let by_name: HashMap<&str, &Candidate> = nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    let max = rules.max_per_node.unwrap_or(u32::MAX);
    let mut count: HashMap<&str, u32> = HashMap::new();
    let mut out = Placement::default();
    // Slots that stay where they are, in slot order, while their node still qualifies.
    let mut homeless = Vec::new();
    for slot in 0..rules.replicas {
        let keep = current.get(&slot).and_then(|node| {
            let c = by_name.get(node.as_str())?;
            let n = count.get(node.as_str()).copied().unwrap_or(0);
            (c.ready && c.selected && n < max).then_some(c)
        });
        match keep {
            Some(c) => {
                *count.entry(c.name.as_str()).or_default() += 1;
                out.nodes.insert(slot, c.name.clone());
            }
            None => homeless.push(slot),
        }
    }
    for slot in homeless {
        let fits = |c: &&Candidate| {
            let n = count.get(c.name.as_str()).copied().unwrap_or(0);
            c.ready && c.selected && !c.cordoned && n < max && n < c.room
        };
        let best = nodes.iter().filter(fits).min_by_key(|c| {
            let n = count.get(c.name.as_str()).copied().unwrap_or(0);
            let (order, load) = if rules.spread {
                (n, c.load.saturating_add(n))
            } else {
                (u32::MAX - n, 0)
            };
            (order, load, tie_break(cargo, slot, &c.name))
        });
        let before = current.get(&slot);
        match best {
            Some(c) => {
                *count.entry(c.name.as_str()).or_default() += 1;
                out.nodes.insert(slot, c.name.clone());
                out.moved.insert(slot, (before.cloned(), c.name.clone()));
            }
            None => {
                if let Some(node) = before {
                    out.nodes.insert(slot, node.clone());
                }
                out.unplaced
                    .insert(slot, why_nothing_fits(nodes, &count, max));
            }
        }
    }
    out
}

/// `0/3 nodes fit: 1 not Ready, 1 cordoned, 1 at maxPerNode (2)`.
fn why_nothing_fits(nodes: &[Candidate], count: &HashMap<&str, u32>, max: u32) -> String {
    if nodes.is_empty() {
        return "no node is registered (is a nanocld with the agent role running?)".to_owned();
    }
    let mut reasons: BTreeMap<&'static str, u32> = BTreeMap::new();
    for c in nodes {
        let n = count.get(c.name.as_str()).copied().unwrap_or(0);
        let reason = if !c.ready {
            "not Ready"
        } else if !c.selected {
            "not selected by the cluster's nodes or the cargo's nodeSelector"
        } else if c.cordoned {
            "cordoned"
        } else if n >= max {
            "at maxPerNode"
        } else {
            "without the CPU or memory the cargo's resources ask for"
        };
        *reasons.entry(reason).or_default() += 1;
    }
    let parts: Vec<String> = reasons
        .iter()
        .map(|(reason, n)| format!("{n} {reason}"))
        .collect();
    format!("0/{} nodes fit: {}", nodes.len(), parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str) -> Candidate {
        Candidate {
            name: name.into(),
            ready: true,
            cordoned: false,
            selected: true,
            room: u32::MAX,
            load: 0,
        }
    }

    fn rules(replicas: u32) -> Rules {
        Rules {
            replicas,
            spread: true,
            max_per_node: None,
        }
    }

    fn per_node(p: &Placement) -> BTreeMap<String, u32> {
        let mut out = BTreeMap::new();
        for node in p.nodes.values() {
            *out.entry(node.clone()).or_default() += 1;
        }
        out
    }

    #[test]
    fn spread_should_even_out_and_keep_what_is_placed() {
        let nodes = [node("a"), node("b"), node("c")];
        let p = place("ns/web", rules(6), &nodes, &BTreeMap::new());
        assert_eq!(
            per_node(&p).into_values().collect::<Vec<_>>(),
            vec![2, 2, 2]
        );
        assert!(p.unplaced.is_empty());
        // Placed again from its own result: nothing moves.
        let again = place("ns/web", rules(6), &nodes, &p.nodes);
        assert_eq!(again.nodes, p.nodes);
        assert!(again.moved.is_empty());
        // Scaled to 7: the new slot goes to a node with 2.
        let seven = place("ns/web", rules(7), &nodes, &p.nodes);
        assert_eq!(seven.moved.len(), 1);
        assert_eq!(seven.nodes.len(), 7);
    }

    #[test]
    fn a_lost_node_should_have_its_slots_moved_and_a_cordoned_one_keep_them() {
        let mut nodes = vec![node("a"), node("b"), node("c")];
        let p = place("ns/web", rules(6), &nodes, &BTreeMap::new());
        nodes[2].ready = false;
        let after = place("ns/web", rules(6), &nodes, &p.nodes);
        assert_eq!(after.moved.len(), 2, "{after:?}");
        assert!(after.nodes.values().all(|n| n != "c"));
        assert_eq!(
            per_node(&after).into_values().collect::<Vec<_>>(),
            vec![3, 3]
        );
        nodes[2].ready = true;
        nodes[0].cordoned = true;
        let cordoned = place("ns/web", rules(6), &nodes, &after.nodes);
        assert!(cordoned.moved.is_empty(), "a cordon moves nothing");
        let eight = place("ns/web", rules(8), &nodes, &after.nodes);
        assert!(
            eight.moved.values().all(|(_, to)| to != "a"),
            "nothing new on a cordoned node"
        );
    }

    #[test]
    fn max_per_node_and_selection_should_hold_and_say_why_nothing_fits() {
        let mut nodes = vec![node("a"), node("b"), node("c")];
        nodes[2].selected = false;
        let r = Rules {
            max_per_node: Some(2),
            ..rules(5)
        };
        let p = place("ns/web", r, &nodes, &BTreeMap::new());
        assert_eq!(
            per_node(&p),
            BTreeMap::from([("a".into(), 2), ("b".into(), 2)])
        );
        assert_eq!(p.unplaced.len(), 1);
        assert_eq!(
            p.unplaced.values().next().map(String::as_str),
            Some("0/3 nodes fit: 2 at maxPerNode, 1 not selected by the cluster's nodes or the cargo's nodeSelector")
        );
        let none = place("ns/web", rules(1), &[], &BTreeMap::new());
        assert!(none.unplaced[&0].contains("no node is registered"));
    }

    #[test]
    fn pack_should_fill_one_node_first_and_room_should_bound_it() {
        let mut nodes = vec![node("a"), node("b")];
        nodes[0].room = 3;
        nodes[1].room = 3;
        let r = Rules {
            spread: false,
            ..rules(4)
        };
        let p = place("ns/web", r, &nodes, &BTreeMap::new());
        assert_eq!(
            per_node(&p).into_values().collect::<Vec<_>>().iter().max(),
            Some(&3)
        );
    }

    #[test]
    fn single_replica_cargoes_should_spread_over_the_nodes() {
        let nodes: Vec<Candidate> = (0..10).map(|i| node(&format!("n{i}"))).collect();
        let mut load: BTreeMap<String, u32> = BTreeMap::new();
        for c in 0..1000 {
            let p = place(&format!("ns/c{c}"), rules(1), &nodes, &BTreeMap::new());
            *load.entry(p.nodes[&0].clone()).or_default() += 1;
        }
        assert_eq!(load.len(), 10);
        assert!(load.values().all(|n| (50..=150).contains(n)), "{load:?}");
    }
}
