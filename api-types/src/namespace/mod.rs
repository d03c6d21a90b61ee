//! `Namespace`: a name under which everything is stored; separates projects.

pub mod v1;
pub mod v1alpha1;
