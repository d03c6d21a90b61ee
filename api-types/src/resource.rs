//! `Resource`: what the layers above need to know of a kind, in one place — its `Kind`
//! (name, plural, scope), the versions it is served in and stored as, and how it moves in and
//! out of `AnyObject`. A new kind is one module plus one impl here and a `Kind` variant.

use crate::meta::ObjectMeta;
use crate::object::{AnyObject, Kind, Version};
use crate::{cargo, cluster, namespace, network, node, proxy_rule, replica, secret};

/// A kind of object, in its storage version.
pub trait Resource: Clone + std::fmt::Debug + serde::Serialize + Send + Sync + 'static {
    /// The kind.
    const KIND: Kind;
    /// The versions the API serves it in.
    const SERVED: &'static [Version] = &[Version::V1, Version::V1alpha1];
    /// The version it is stored in (and this type's).
    const STORAGE: Version = Version::V1;

    /// Its metadata.
    fn meta(&self) -> &ObjectMeta;
    /// Its metadata, mutable.
    fn meta_mut(&mut self) -> &mut ObjectMeta;
    /// As an object of any kind.
    fn into_any(self) -> AnyObject;
    /// From an object of any kind, if it is of this one.
    fn from_any(object: AnyObject) -> Option<Self>;
    /// A reference to an object of any kind, if it is of this one.
    fn from_any_ref(object: &AnyObject) -> Option<&Self>;
}

macro_rules! resource {
    ($ty:ty, $kind:ident) => {
        resource!($ty, $kind, &[Version::V1, Version::V1alpha1]);
    };
    ($ty:ty, $kind:ident, $served:expr) => {
        impl Resource for $ty {
            const KIND: Kind = Kind::$kind;
            const SERVED: &'static [Version] = $served;

            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }

            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }

            fn into_any(self) -> AnyObject {
                AnyObject::$kind(self)
            }

            fn from_any(object: AnyObject) -> Option<Self> {
                match object {
                    AnyObject::$kind(o) => Some(o),
                    _ => None,
                }
            }

            fn from_any_ref(object: &AnyObject) -> Option<&Self> {
                match object {
                    AnyObject::$kind(o) => Some(o),
                    _ => None,
                }
            }
        }
    };
}

resource!(namespace::v1::Namespace, Namespace);
resource!(cluster::v1::Cluster, Cluster);
resource!(network::v1::Network, Network);
resource!(secret::v1::Secret, Secret, &[Version::V1]);
resource!(cargo::v1::Cargo, Cargo);
resource!(proxy_rule::v1::ProxyRule, ProxyRule, &[Version::V1]);
resource!(node::v1::Node, Node, &[Version::V1]);
resource!(replica::v1::Replica, Replica, &[Version::V1]);

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of<K: Resource>() -> Kind {
        K::KIND
    }

    #[test]
    fn every_kind_should_have_exactly_one_resource() {
        assert_eq!(
            [
                kind_of::<namespace::v1::Namespace>(),
                kind_of::<cluster::v1::Cluster>(),
                kind_of::<network::v1::Network>(),
                kind_of::<secret::v1::Secret>(),
                kind_of::<cargo::v1::Cargo>(),
                kind_of::<proxy_rule::v1::ProxyRule>(),
                kind_of::<node::v1::Node>(),
                kind_of::<replica::v1::Replica>(),
            ],
            Kind::ALL
        );
        let cargo = cargo::v1::Cargo::default();
        let any = cargo.clone().into_any();
        assert_eq!(any.kind(), Kind::Cargo);
        assert_eq!(cargo::v1::Cargo::from_any(any), Some(cargo));
        assert!(cluster::v1::Cluster::from_any(AnyObject::Cargo(Default::default())).is_none());
    }
}
