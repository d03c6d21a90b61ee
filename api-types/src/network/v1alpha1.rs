//! `Network` in `nanocl.io/v1alpha1`: the same shape as v1.

use super::v1;
use crate::meta::Object;

/// A Network as v1alpha1 writes it.
pub type Network = Object<v1::NetworkSpec, v1::NetworkStatus>;

/// v1alpha1 → v1: only the apiVersion changes.
pub fn to_v1(obj: Network) -> v1::Network {
    Object {
        api_version: crate::V1.to_owned(),
        ..obj
    }
}

/// v1 → v1alpha1: only the apiVersion changes.
pub fn from_v1(obj: v1::Network) -> Network {
    Object {
        api_version: crate::V1ALPHA1.to_owned(),
        ..obj
    }
}
