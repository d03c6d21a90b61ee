//! `Cargo`: a pre-configured, replicable container deployed into a cluster.

pub mod v1;
pub mod v1alpha1;
