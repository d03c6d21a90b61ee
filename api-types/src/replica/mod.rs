//! `Replica`: one slot of a Cargo and the node it is placed on, written by the scheduler;
//! its status is written by the agent of that node.

pub mod v1;
