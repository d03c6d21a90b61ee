//! `Cluster`: an isolated environment in a namespace; holds variables, owns networks, runs cargoes.

pub mod v1;
pub mod v1alpha1;
