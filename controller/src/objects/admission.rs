//! The lifecycle rules that read other objects, once, for every writer (the API's handlers and
//! `Api<K>`): an object is created only in a namespace that exists and is not being deleted;
//! the `global` namespace is never deleted; a namespace without a finalizer (none can empty
//! it) is deleted only when it holds nothing. And the container policy of a cargo's
//! namespace: no bind mount of the host's own paths unless the namespace allows it.

use nanocl_api_types::meta::DEFAULT_NAMESPACE;
use nanocl_api_types::{AnyObject, Kind, ObjectKey};

use super::{read, ObjectError};
use crate::store::{keys, Store};

/// Why a write was refused by a lifecycle rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The object's namespace does not exist.
    #[error("namespace {namespace:?} not found: create it first (apply orders namespaces first)")]
    NamespaceMissing {
        /// The namespace.
        namespace: String,
    },
    /// The object's namespace is being deleted.
    #[error("namespace {namespace:?} is being deleted: no new objects can be created in it")]
    NamespaceTerminating {
        /// The namespace.
        namespace: String,
    },
    /// The namespace still holds objects and nothing would delete them.
    #[error("namespace {namespace:?} still holds {}: delete them first", held.join(", "))]
    NamespaceNotEmpty {
        /// The namespace.
        namespace: String,
        /// What it holds, e.g. `2 cargoes`.
        held: Vec<String>,
    },
    /// Allowed to nobody.
    #[error("namespace {DEFAULT_NAMESPACE:?} is where objects without a namespace go; it cannot be deleted")]
    GlobalNamespace,
    /// A cargo's container breaks its namespace's policy.
    #[error("{field}: {message}")]
    PolicyViolation {
        /// The field, e.g. `spec.container.volumes[0].source`.
        field: String,
        /// Why.
        message: String,
    },
    /// A ProxyRule claims what another already has.
    #[error(
        "{field}: {claim} is already proxyrule {other}'s: one listener, host and path per rule"
    )]
    ProxyRuleConflict {
        /// The field of the refused rule, e.g. `spec.http[0]`.
        field: String,
        /// What both claim, e.g. `listener 127.0.0.1:8080 host "web.test" path "/"`.
        claim: String,
        /// The other rule, `namespace/name`.
        other: String,
    },
}

/// Fails if ProxyRule `object` claims a listener another rule has for another protocol (or
/// a tcp listener another has), or an HTTP listener, host and path another routes: the
/// refusal names the field and the other rule.
pub async fn check_proxy_rule<S: Store>(store: &S, object: &AnyObject) -> Result<(), ObjectError> {
    use nanocl_api_types::proxy_rule::v1::ListenerProtocol;
    let AnyObject::ProxyRule(rule) = object else {
        return Ok(());
    };
    let me = object.key();
    let listed = store
        .list(&keys::kind_prefix(Kind::ProxyRule, None))
        .await?;
    for kv in listed.items {
        let Ok(stored) = super::decode(&kv) else {
            continue;
        };
        let AnyObject::ProxyRule(other) = &stored.object else {
            continue;
        };
        let key = stored.object.key();
        if key == me || other.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = format!("{}/{}", key.namespace.as_deref().unwrap_or(""), key.name);
        let conflict = |field: String, claim: String| -> ObjectError {
            Refusal::ProxyRuleConflict {
                field,
                claim,
                other: name.clone(),
            }
            .into()
        };
        for (i, l) in rule.spec.listeners.iter().enumerate() {
            for o in &other.spec.listeners {
                let same = o.port == l.port && o.host_ip() == l.host_ip();
                if same
                    && (o.protocol() != l.protocol()
                        || l.protocol() == ListenerProtocol::Tcp
                        || o.https_redirect != l.https_redirect)
                {
                    return Err(conflict(
                        format!("spec.listeners[{i}]"),
                        format!("listener {}:{} ({:?})", l.host_ip(), l.port, o.protocol()),
                    ));
                }
            }
        }
        let addresses = |spec: &nanocl_api_types::proxy_rule::v1::ProxyRuleSpec,
                         r: &nanocl_api_types::proxy_rule::v1::HttpRoute| {
            spec.http_listeners(r)
                .into_iter()
                .filter_map(|port| {
                    let l = spec.listeners.iter().find(|l| l.port == port)?;
                    Some((l.host_ip().to_owned(), port))
                })
                .collect::<Vec<_>>()
        };
        for (i, r) in rule.spec.http.iter().enumerate() {
            for mine in addresses(&rule.spec, r) {
                let taken = other.spec.http.iter().any(|o| {
                    addresses(&other.spec, o).contains(&mine)
                        && o.host == r.host
                        && o.path() == r.path()
                });
                if taken {
                    return Err(conflict(
                        format!("spec.http[{i}]"),
                        format!(
                            "listener {}:{} host {:?} path {:?}",
                            mine.0,
                            mine.1,
                            r.host.as_deref().unwrap_or("*"),
                            r.path()
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Fails if Cargo `object` bind-mounts a host path its namespace's policy refuses (the
/// restricted default when the namespace has none): the refusal names the field. Checked at
/// every create and replace; a policy made stricter later does not touch what runs.
pub async fn check_policy<S: Store>(store: &S, object: &AnyObject) -> Result<(), ObjectError> {
    use nanocl_api_types::namespace::v1::host_path_refusal;
    let AnyObject::Cargo(cargo) = object else {
        return Ok(());
    };
    let c = &cargo.spec.container;
    let sources: Vec<(usize, &str)> = c
        .volumes
        .iter()
        .enumerate()
        .map(|(i, v)| (i, v.source.as_str()))
        .filter(|(_, s)| s.starts_with('/'))
        .collect();
    let dangerous =
        c.privileged || !c.cap_add.is_empty() || !c.devices.is_empty() || c.host_pid || c.host_ipc;
    if sources.is_empty() && !dangerous {
        return Ok(());
    }
    let namespace = cargo
        .metadata
        .namespace
        .as_deref()
        .unwrap_or(DEFAULT_NAMESPACE);
    let key = ObjectKey {
        kind: Kind::Namespace,
        namespace: None,
        name: namespace.to_owned(),
    };
    let policy = match read(store, &key).await? {
        Some(stored) => match stored.object {
            AnyObject::Namespace(ns) => ns.spec.policy,
            _ => None,
        },
        None => None,
    };
    let settings = nanocl_api_types::namespace::v1::setting_refusals(policy.as_ref(), c);
    if let Some((field, message)) = settings.into_iter().next() {
        return Err(Refusal::PolicyViolation {
            field,
            message: format!("{message} (namespace {namespace:?})"),
        }
        .into());
    }
    for (i, source) in sources {
        if let Some(message) = host_path_refusal(policy.as_ref(), source) {
            return Err(Refusal::PolicyViolation {
                field: format!("spec.container.volumes[{i}].source"),
                message: format!("{message} (namespace {namespace:?})"),
            }
            .into());
        }
    }
    Ok(())
}

/// Fails unless `object` may be created: its namespace exists and is not terminating.
pub async fn check_create<S: Store>(store: &S, object: &AnyObject) -> Result<(), ObjectError> {
    let Some(namespace) = object
        .metadata()
        .namespace
        .as_deref()
        .filter(|_| object.kind().namespaced())
    else {
        return Ok(());
    };
    let key = ObjectKey {
        kind: Kind::Namespace,
        namespace: None,
        name: namespace.to_owned(),
    };
    match read(store, &key).await? {
        None => Err(Refusal::NamespaceMissing {
            namespace: namespace.to_owned(),
        }
        .into()),
        Some(ns) if ns.object.metadata().deletion_timestamp.is_some() => {
            Err(Refusal::NamespaceTerminating {
                namespace: namespace.to_owned(),
            }
            .into())
        }
        Some(_) => Ok(()),
    }
}

/// Fails unless the object at `key` may be deleted. `current` is the object as stored, `None`
/// when it cannot be decoded (then no controller can run its finalizer, so it is treated as
/// having none).
pub async fn check_delete<S: Store>(
    store: &S,
    key: &ObjectKey,
    current: Option<&AnyObject>,
) -> Result<(), ObjectError> {
    if key.kind != Kind::Namespace {
        return Ok(());
    }
    if key.name == DEFAULT_NAMESPACE {
        return Err(Refusal::GlobalNamespace.into());
    }
    // With its finalizer (set by the namespace controller) a namespace is marked and its
    // contents deleted by the controller; without one, only an empty namespace goes.
    if current.is_some_and(|ns| !ns.metadata().finalizers.is_empty()) {
        return Ok(());
    }
    let held = namespace_contents(store, &key.name).await?;
    if held.is_empty() {
        return Ok(());
    }
    Err(Refusal::NamespaceNotEmpty {
        namespace: key.name.clone(),
        held,
    }
    .into())
}

/// What `namespace` still holds, per kind (`2 cargoes`), decodable or not.
async fn namespace_contents<S: Store>(
    store: &S,
    namespace: &str,
) -> Result<Vec<String>, ObjectError> {
    let mut held = Vec::new();
    for kind in Kind::ALL.into_iter().filter(|k| k.namespaced()) {
        let n = store
            .list(&keys::kind_prefix(kind, Some(namespace)))
            .await?
            .items
            .len();
        if n > 0 {
            held.push(format!("{n} {}", kind.plural()));
        }
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::lifecycle;
    use crate::objects::{encode, Stored};
    use crate::store::{EmbeddedOptions, EmbeddedStore};
    use nanocl_api_types::manifest::{decode_str, DecodeOptions};

    fn object(yaml: &str) -> AnyObject {
        let decoded = decode_str("t.yaml", yaml, &DecodeOptions::default());
        assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
        decoded.manifests[0].object.clone()
    }

    fn cargo(ns: &str) -> AnyObject {
        object(&format!(
            "apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  cluster: dev\n  container: {{image: busybox:stable}}\n"
        ))
    }

    async fn put(store: &EmbeddedStore, object: &AnyObject) -> Stored {
        let object = lifecycle::created(object).expect("create");
        let kv = store
            .create(
                &keys::object_key(&object.key()),
                encode(&object).expect("encode"),
            )
            .await
            .expect("store");
        crate::objects::decode(&kv).expect("decode")
    }

    fn refusal(result: Result<(), ObjectError>) -> Refusal {
        match result {
            Err(ObjectError::Refused(r)) => r,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_cargo_should_bind_mount_only_what_its_namespace_allows() {
        let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store");
        let cargo = |ns: &str, source: &str| {
            object(&format!(
                "apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: web, namespace: {ns}}}\n\
                 spec:\n  cluster: dev\n  container:\n    image: busybox\n    \
                 volumes: [{{source: data, target: /data}}, {{source: {source}, target: /x}}]\n"
            ))
        };
        put(
            &store,
            &object("apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {name: open}\n"),
        )
        .await;
        put(
            &store,
            &object("apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {name: ops}\nspec: {policy: {hostPaths: [/var/run/docker.sock, /srv]}}\n"),
        )
        .await;
        let refused = refusal(check_policy(&store, &cargo("open", "/var/run/docker.sock")).await);
        assert_eq!(
            refused.to_string(),
            "spec.container.volumes[1].source: host path /var/run/docker.sock is the host's own (/var/run): a container with it controls the host; the namespace's spec.policy.hostPaths can allow it (namespace \"open\")"
        );
        assert!(check_policy(&store, &cargo("open", "/srv/www"))
            .await
            .is_ok());
        assert!(check_policy(&store, &cargo("ops", "/var/run/docker.sock"))
            .await
            .is_ok());
        let refused = refusal(check_policy(&store, &cargo("ops", "/home/me")).await);
        assert!(
            refused
                .to_string()
                .contains("not under the namespace's spec.policy.hostPaths"),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn a_create_should_need_a_namespace_that_exists_and_is_not_terminating() {
        let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store");
        assert_eq!(
            refusal(check_create(&store, &cargo("prod")).await),
            Refusal::NamespaceMissing {
                namespace: "prod".into()
            }
        );
        let ns = put(
            &store,
            &object("apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {name: prod}\n"),
        )
        .await;
        check_create(&store, &cargo("prod"))
            .await
            .expect("the namespace exists");
        let mut marked = ns.object.clone();
        marked.metadata_mut().deletion_timestamp = Some(crate::objects::now());
        store
            .update(
                &keys::object_key(&marked.key()),
                encode(&marked).expect("encode"),
                ns.revision,
            )
            .await
            .expect("mark");
        assert_eq!(
            refusal(check_create(&store, &cargo("prod")).await),
            Refusal::NamespaceTerminating {
                namespace: "prod".into()
            }
        );
    }

    #[tokio::test]
    async fn a_namespace_delete_should_refuse_global_and_a_non_empty_one_without_finalizer() {
        let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store");
        let key = |name: &str| ObjectKey {
            kind: Kind::Namespace,
            namespace: None,
            name: name.into(),
        };
        assert_eq!(
            refusal(check_delete(&store, &key(DEFAULT_NAMESPACE), None).await),
            Refusal::GlobalNamespace
        );
        let ns = put(
            &store,
            &object("apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {name: prod}\n"),
        )
        .await;
        check_delete(&store, &key("prod"), Some(&ns.object))
            .await
            .expect("an empty namespace goes");
        put(&store, &cargo("prod")).await;
        assert_eq!(
            refusal(check_delete(&store, &key("prod"), Some(&ns.object)).await),
            Refusal::NamespaceNotEmpty {
                namespace: "prod".into(),
                held: vec!["1 cargoes".into()]
            }
        );
        let mut finalized = ns.object.clone();
        finalized
            .metadata_mut()
            .finalizers
            .push("nanocl.io/controller".into());
        check_delete(&store, &key("prod"), Some(&finalized))
            .await
            .expect("its controller empties it");
        assert!(matches!(
            refusal(check_delete(&store, &key("prod"), None).await),
            Refusal::NamespaceNotEmpty { .. }
        ));
    }
}
