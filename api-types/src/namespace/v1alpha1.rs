//! `Namespace` in `nanocl.io/v1alpha1`: the same shape as v1.

use super::v1;
use crate::meta::Object;

/// A Namespace as v1alpha1 writes it.
pub type Namespace = Object<v1::NamespaceSpec, v1::NamespaceStatus>;

/// v1alpha1 → v1: only the apiVersion changes.
pub fn to_v1(obj: Namespace) -> v1::Namespace {
    Object {
        api_version: crate::V1.to_owned(),
        ..obj
    }
}

/// v1 → v1alpha1: only the apiVersion changes.
pub fn from_v1(obj: v1::Namespace) -> Namespace {
    Object {
        api_version: crate::V1ALPHA1.to_owned(),
        ..obj
    }
}
