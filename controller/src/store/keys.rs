//! Where objects live in the store: `namespaces/{name}` and `{plural}/{namespace}/{name}`
//! (the backend adds its prefix, `/nanocl` by default, as in DESIGN §4).

use nanocl_api_types::{Kind, ObjectKey};

/// The store key of one object.
pub fn object_key(key: &ObjectKey) -> String {
    match &key.namespace {
        Some(ns) if key.kind.namespaced() => format!("{}/{ns}/{}", key.kind.plural(), key.name),
        _ => format!("{}/{}", key.kind.plural(), key.name),
    }
}

/// The prefix of every object of `kind`, in one namespace or in all of them.
pub fn kind_prefix(kind: Kind, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if kind.namespaced() => format!("{}/{ns}/", kind.plural()),
        _ => format!("{}/", kind.plural()),
    }
}

/// The namespace and name of the object stored at `key`, an object key of `kind` (the
/// inverse of `object_key`).
pub fn split_object_key(kind: Kind, key: &str) -> (Option<String>, String) {
    let rest = key
        .strip_prefix(kind.plural())
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(key);
    match rest.split_once('/') {
        Some((ns, name)) if kind.namespaced() => (Some(ns.to_owned()), name.to_owned()),
        _ => (None, rest.to_owned()),
    }
}

/// The object key stored at `key`, if it is one of `kind`.
pub fn parse_object_key(kind: Kind, key: &str) -> Option<ObjectKey> {
    key.strip_prefix(kind.plural())?.strip_prefix('/')?;
    let (namespace, name) = split_object_key(kind, key);
    (!name.is_empty() && !name.contains('/')).then_some(ObjectKey {
        kind,
        namespace,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_should_follow_the_design_layout() {
        let cargo = ObjectKey {
            kind: Kind::Cargo,
            namespace: Some("global".into()),
            name: "web".into(),
        };
        assert_eq!(object_key(&cargo), "cargoes/global/web");
        let ns = ObjectKey {
            kind: Kind::Namespace,
            namespace: None,
            name: "demo".into(),
        };
        assert_eq!(object_key(&ns), "namespaces/demo");
        assert_eq!(kind_prefix(Kind::Network, Some("demo")), "networks/demo/");
        assert_eq!(kind_prefix(Kind::Network, None), "networks/");
        assert_eq!(kind_prefix(Kind::Namespace, Some("ignored")), "namespaces/");
        assert_eq!(
            parse_object_key(Kind::Cargo, "cargoes/global/web"),
            Some(cargo)
        );
        assert_eq!(
            parse_object_key(Kind::Namespace, "namespaces/demo"),
            Some(ns)
        );
        assert_eq!(parse_object_key(Kind::Cargo, "clusters/global/web"), None);
    }
}
