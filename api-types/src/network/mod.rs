//! `Network`: a Docker network inside a cluster that connects cargoes.

pub mod v1;
pub mod v1alpha1;
