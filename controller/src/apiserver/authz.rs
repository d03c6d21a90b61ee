//! Who may do what: TLS users by their namespaces' `spec.access`, and the audit log.
//!
//! The namespace whose access decides:
//! - an object in a namespace, its logs, exec and events: that namespace;
//! - a Namespace object: itself; creating one (by POST or by a server-side apply) and
//!   writing Nodes: `global`;
//! - lists and watches across all namespaces: every namespace that restricts reading (a user
//!   left out of one lists per namespace, with `-n`).
//!
//! Listing the namespaces themselves, `/version`, `/metrics` and the health endpoints are
//! open to every authenticated user. Clients of the unix socket and of plaintext loopback TCP
//! are the host's own and are not restricted (as Docker's socket); they are audited too.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use nanocl_api_types::meta::DEFAULT_NAMESPACE;
use nanocl_api_types::namespace::v1::{Access, Verb};
use nanocl_api_types::{AnyObject, Kind, ObjectKey};
use serde_json::json;

use super::status::ApiError;
use super::tls::Peer;
use crate::objects::{decode, read};
use crate::store::{keys, Store};

/// What a request asks to do.
#[derive(Clone, Copy, Debug)]
pub struct Ask<'a> {
    /// Read or write.
    pub verb: Verb,
    /// The kind addressed.
    pub kind: Kind,
    /// The namespace in the path (`None`: cluster-scoped, or across all namespaces).
    pub namespace: Option<&'a str>,
    /// The object's name in the path.
    pub name: Option<&'a str>,
}

fn verb_text(verb: Verb) -> &'static str {
    match verb {
        Verb::Read => "read",
        Verb::Write => "write",
    }
}

/// The `spec.access` of namespace `name` (`None`: open, or no such namespace).
async fn access_of<S: Store>(store: &S, name: &str) -> Result<Option<Access>, ApiError> {
    let key = ObjectKey {
        kind: Kind::Namespace,
        namespace: None,
        name: name.to_owned(),
    };
    match read(store, &key).await {
        Ok(Some(stored)) => match stored.object {
            AnyObject::Namespace(ns) => Ok(ns.spec.access),
            _ => Ok(None),
        },
        Ok(None) => Ok(None),
        // Unreadable: nobody but the host's own gets in until it is fixed.
        Err(e) => Err(ApiError::forbidden(format!(
            "namespace {name:?} cannot be read, so its access cannot be checked: {e}"
        ))),
    }
}

fn refusal(user: &str, verb: Verb, namespace: &str, access: &Access) -> ApiError {
    let list = match verb {
        Verb::Write => access.write.as_ref(),
        Verb::Read => access.read.as_ref(),
    };
    let listed = list.map(|l| l.join(", ")).unwrap_or_default();
    let field = match verb {
        Verb::Write => "write",
        Verb::Read => "read",
    };
    ApiError::forbidden(format!(
        "user {user:?} may not {} namespace {namespace:?}: its spec.access.{field} lists {}",
        verb_text(verb),
        if listed.is_empty() { "nobody" } else { &listed }
    ))
}

/// Whether `peer` may do what it asks; a 403 naming the user, the namespace and who is
/// allowed otherwise.
pub async fn check<S: Store>(store: &S, peer: &Peer, ask: Ask<'_>) -> Result<(), ApiError> {
    let Peer::User(user) = peer else {
        return Ok(());
    };
    let namespace = match (ask.kind, ask.namespace, ask.name) {
        (Kind::Namespace, _, Some(name)) => name,
        (Kind::Namespace, _, None) if ask.verb == Verb::Write => DEFAULT_NAMESPACE,
        (Kind::Namespace, _, None) => return Ok(()),
        (_, Some(namespace), _) => namespace,
        (kind, None, _) if !kind.namespaced() => match ask.verb {
            Verb::Write => DEFAULT_NAMESPACE,
            Verb::Read => return Ok(()),
        },
        // Across all namespaces: every namespace must let the user read.
        (kind, None, _) => {
            let listed = store
                .list(&keys::kind_prefix(Kind::Namespace, None))
                .await?;
            for kv in &listed.items {
                let name = keys::split_object_key(Kind::Namespace, &kv.key).1;
                let access = match decode(kv) {
                    Ok(stored) => match stored.object {
                        AnyObject::Namespace(ns) => ns.spec.access,
                        _ => None,
                    },
                    Err(e) => {
                        return Err(ApiError::forbidden(format!(
                        "namespace {name:?} cannot be read, so its access cannot be checked: {e}"
                    )))
                    }
                };
                if let Some(access) = access.filter(|a| !a.allows(user, Verb::Read)) {
                    let mut error = refusal(user, Verb::Read, &name, &access);
                    error.message = format!(
                        "{}; list {} per namespace (-n) instead of across all of them",
                        error.message,
                        kind.plural()
                    );
                    return Err(error);
                }
            }
            return Ok(());
        }
    };
    // A namespace written that does not exist yet is being created (a server-side apply):
    // that is `global`'s to allow.
    let namespace = if ask.kind == Kind::Namespace
        && ask.verb == Verb::Write
        && !exists(store, namespace).await?
    {
        DEFAULT_NAMESPACE
    } else {
        namespace
    };
    match access_of(store, namespace).await? {
        Some(access) if !access.allows(user, ask.verb) => {
            Err(refusal(user, ask.verb, namespace, &access))
        }
        _ => Ok(()),
    }
}

/// Whether namespace `name` is stored (readable or not).
async fn exists<S: Store>(store: &S, name: &str) -> Result<bool, ApiError> {
    let key = ObjectKey {
        kind: Kind::Namespace,
        namespace: None,
        name: name.to_owned(),
    };
    Ok(store.get(&keys::object_key(&key)).await?.is_some())
}

/// The audit log: one JSON line per write (POST, PUT, PATCH, DELETE), whoever sends it.
pub struct Audit {
    file: Mutex<Box<dyn Write + Send>>,
    shown: String,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit").field("to", &self.shown).finish()
    }
}

impl Audit {
    /// Appends to `path` (created mode 0600); `-` is standard error.
    pub fn open(path: &Path) -> anyhow::Result<Audit> {
        use anyhow::Context;
        use std::os::unix::fs::OpenOptionsExt;
        if path == Path::new("-") {
            return Ok(Audit {
                file: Mutex::new(Box::new(std::io::stderr())),
                shown: "standard error".into(),
            });
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot open the audit log {}", path.display()))?;
        Ok(Audit {
            file: Mutex::new(Box::new(file)),
            shown: path.display().to_string(),
        })
    }

    /// Where the lines go, for the log.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Records one write: who, what, and the answer's code and reason.
    pub fn record(&self, peer: &Peer, method: &str, path: &str, code: u16, message: Option<&str>) {
        let line = json!({
            "time": crate::objects::now(),
            "user": peer.name(),
            "authenticated": matches!(peer, Peer::User(_)),
            "method": method,
            "path": path,
            "code": code,
            "result": if code < 400 { "allowed" } else if code == 403 { "denied" } else { "failed" },
            "message": message,
        });
        let mut text = line.to_string();
        text.push('\n');
        let Ok(mut file) = self.file.lock() else {
            return;
        };
        if let Err(e) = file.write_all(text.as_bytes()).and_then(|()| file.flush()) {
            tracing::error!(error = %e, audit_log = %self.shown, "cannot write the audit log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audit_line_should_say_who_what_and_the_result() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let audit = Audit::open(&path).expect("open");
        audit.record(
            &Peer::User("bob".into()),
            "POST",
            "/apis/nanocl.io/v1/namespaces/team/cargoes",
            403,
            Some("user \"bob\" may not write namespace \"team\""),
        );
        audit.record(&Peer::Local("unix socket"), "DELETE", "/x", 200, None);
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["user"], "bob");
        assert_eq!(lines[0]["result"], "denied");
        assert_eq!(lines[0]["method"], "POST");
        assert_eq!(lines[1]["user"], "local (unix socket)");
        assert_eq!(lines[1]["result"], "allowed");
    }
}
