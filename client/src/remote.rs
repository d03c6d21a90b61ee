//! Objects on the server: paths, reading live objects, what `apply` would write, and the
//! fields the server owns (left out of comparisons).

use std::collections::{BTreeSet, HashMap};

use hyper::{Method, StatusCode};
use nanocl_api_types::cargo::v1::is_command_annotation;
use nanocl_api_types::{AnyObject, Kind, ObjectKey, APPLYSET_LABEL};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::http::Answer;
use crate::transport::Transport;

/// `/apis/nanocl.io/v1/...` for one object.
pub fn item_path(key: &ObjectKey) -> String {
    match &key.namespace {
        Some(ns) if key.kind.namespaced() => {
            format!(
                "/apis/nanocl.io/v1/namespaces/{ns}/{}/{}",
                key.kind.plural(),
                key.name
            )
        }
        _ => format!("/apis/nanocl.io/v1/{}/{}", key.kind.plural(), key.name),
    }
}

/// The collection of `kind`, in one namespace or all of them.
pub fn collection_path(kind: Kind, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if kind.namespaced() => {
            format!("/apis/nanocl.io/v1/namespaces/{ns}/{}", kind.plural())
        }
        _ => format!("/apis/nanocl.io/v1/{}", kind.plural()),
    }
}

/// `kind/name`, with the namespace when it is not `global`.
pub fn display_key(key: &ObjectKey) -> String {
    let kind = key.kind.as_str().to_ascii_lowercase();
    match &key.namespace {
        Some(ns) if ns != nanocl_api_types::meta::DEFAULT_NAMESPACE => {
            format!("{kind}/{} (namespace {ns})", key.name)
        }
        _ => format!("{kind}/{}", key.name),
    }
}

/// The key of a JSON object from the server.
pub fn key_of(value: &Value) -> Option<ObjectKey> {
    let kind = Kind::from_kind_field(value["kind"].as_str()?)?;
    Some(ObjectKey {
        kind,
        namespace: value["metadata"]["namespace"].as_str().map(str::to_owned),
        name: value["metadata"]["name"].as_str()?.to_owned(),
    })
}

/// The live object, or `None` when it does not exist.
pub async fn get_live(client: &impl Transport, key: &ObjectKey) -> Result<Option<Value>> {
    let answer = client.request(Method::GET, &item_path(key), None).await?;
    match answer.status {
        StatusCode::OK => Ok(Some(answer.json()?)),
        StatusCode::NOT_FOUND => Ok(None),
        _ => Err(answer_error(
            &answer,
            format!("reading {}", display_key(key)),
        )),
    }
}

/// The live objects among `keys`, read with one LIST per collection (kind and namespace)
/// rather than one GET per object: what `apply` and `diff` of many files start from. A key
/// absent from the answer does not exist (yet). A collection the server refuses to list is
/// an error, as a GET of one of its objects would be.
pub async fn live_objects<'a>(
    client: &impl Transport,
    keys: impl IntoIterator<Item = &'a ObjectKey>,
) -> Result<HashMap<ObjectKey, Value>> {
    let collections: BTreeSet<(Kind, Option<String>)> = keys
        .into_iter()
        .map(|k| {
            let namespace = k.namespace.clone().filter(|_| k.kind.namespaced());
            (k.kind, namespace)
        })
        .collect();
    let mut live = HashMap::new();
    for (kind, namespace) in collections {
        let path = collection_path(kind, namespace.as_deref());
        let answer = client.request(Method::GET, &path, None).await?;
        match answer.status {
            StatusCode::OK => {}
            // The namespace itself is not there yet: nothing in it is.
            StatusCode::NOT_FOUND => continue,
            _ => return Err(answer_error(&answer, format!("listing {}", kind.plural()))),
        }
        let mut list: Value = answer.json()?;
        if let Value::Array(items) = list["items"].take() {
            for item in items {
                if let Some(key) = key_of(&item) {
                    live.insert(key, item);
                }
            }
        }
    }
    Ok(live)
}

/// The error for an unexpected answer: [`Error::Unavailable`] for a 5xx (worth retrying), else the
/// server's message.
pub fn answer_error(answer: &Answer, doing: String) -> Error {
    let message = format!("{doing}: {}", answer.error_message());
    if answer.status.is_server_error() {
        Error::Unavailable(message)
    } else {
        Error::Rejected(message)
    }
}

/// Deletes one object; gone already counts as deleted.
pub async fn delete(client: &impl Transport, key: &ObjectKey, dry_run: bool) -> Result<()> {
    let suffix = if dry_run { "?dryRun=All" } else { "" };
    let answer = client
        .request(Method::DELETE, &(item_path(key) + suffix), None)
        .await?;
    match answer.status {
        StatusCode::OK | StatusCode::NOT_FOUND => Ok(()),
        _ => Err(answer_error(
            &answer,
            format!("pruning {}", display_key(key)),
        )),
    }
}

/// Fields the server sets, left out when comparing what the user wrote with what is live.
pub fn without_server_fields(value: &Value) -> Value {
    let mut value = value.clone();
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in [
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
        ] {
            meta.remove(field);
        }
    }
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
    }
    value
}

/// What `apply` sends for `object`: the object as the files say, with the live object's
/// `resourceVersion` (the update's precondition), finalizers (owned by controllers) and
/// `rollout.nanocl.io/` annotations (owned by `nanocl rollout`: a file's are ignored, so that
/// re-applying an unchanged file neither undoes a `rollout pause` or `restart` nor shows in
/// `diff`).
pub fn desired(object: &AnyObject, live: Option<&Value>) -> Result<Value> {
    let mut value =
        serde_json::to_value(object).map_err(|e| Error::RequestBuildFailed(e.to_string()))?;
    let meta = &mut value["metadata"];
    if let Some(live) = live {
        meta["resourceVersion"] = live["metadata"]["resourceVersion"].clone();
        match live["metadata"].get("finalizers") {
            Some(f) => meta["finalizers"] = f.clone(),
            None => {
                if let Some(m) = meta.as_object_mut() {
                    m.remove("finalizers");
                }
            }
        }
    }
    keep_rollout_annotations(meta, live.map(|l| &l["metadata"]));
    Ok(value)
}

/// `desired(object, live)` as the server would show it once stored: for a Secret, whose
/// values the server never shows (each is `<hidden: N bytes, digest D>`), the answer of a
/// server-side dry run, so it compares with the live object without any value leaving the
/// server; for other kinds `desired` itself.
pub async fn desired_as_shown(
    client: &impl Transport,
    object: &AnyObject,
    live: Option<&Value>,
) -> Result<Value> {
    let desired = desired(object, live)?;
    if object.kind() != Kind::Secret {
        return Ok(desired);
    }
    let key = object.key();
    if live.is_none() {
        // Nothing to compare with (and its namespace may not exist yet): hidden here, sizes
        // only.
        return Ok(hidden_locally(desired));
    }
    let answer = client
        .request(
            Method::PUT,
            &(item_path(&key) + "?dryRun=All"),
            Some(&desired),
        )
        .await?;
    if answer.status.is_success() {
        answer.json()
    } else {
        Err(answer_error(
            &answer,
            format!("checking {}", display_key(&key)),
        ))
    }
}

/// A Secret's values replaced by `<hidden: N bytes>`, as printed by this CLI when the
/// server has not seen them.
fn hidden_locally(mut secret: Value) -> Value {
    use base64::Engine as _;
    if let Some(data) = secret["spec"]["data"].as_object_mut() {
        for value in data.values_mut() {
            let n = value
                .as_str()
                .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
                .map_or(0, |b| b.len());
            *value = Value::String(format!(
                "{}{n} bytes>",
                nanocl_api_types::secret::v1::HIDDEN_PREFIX
            ));
        }
    }
    secret
}

/// Replaces the `rollout.nanocl.io/` and `build.nanocl.io/` annotations of `meta` with those of `live` (none when
/// there is no live object); an annotations map left empty goes, as the server stores none.
fn keep_rollout_annotations(meta: &mut Value, live: Option<&Value>) {
    let owned = |key: &String| is_command_annotation(key);
    let from_live: serde_json::Map<String, Value> = live
        .and_then(|l| l["annotations"].as_object())
        .map(|m| {
            m.iter()
                .filter(|(k, _)| owned(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    let mut annotations = match meta.remove("annotations") {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    annotations.retain(|k, _| !owned(k));
    annotations.extend(from_live);
    if !annotations.is_empty() {
        meta.insert("annotations".to_owned(), Value::Object(annotations));
    }
}

/// Which live objects a prune may consider.
#[derive(Clone, Debug, Default)]
pub struct PruneScope {
    /// Namespaces the input mentions (objects in them, Namespace objects, `-n`): namespaced
    /// objects elsewhere are never pruned, so two projects that share an applyset name but not
    /// a namespace cannot delete each other's objects.
    pub namespaces: std::collections::BTreeSet<String>,
    /// Whether Namespace objects of the set may be pruned: only with an explicit
    /// `--applyset`, since deleting a namespace deletes everything in it.
    pub namespaces_kind: bool,
}

impl PruneScope {
    /// The scope of an input.
    pub fn of(
        objects: &[&AnyObject],
        extra_namespace: Option<&str>,
        explicit_applyset: bool,
    ) -> PruneScope {
        let mut namespaces: std::collections::BTreeSet<String> = objects
            .iter()
            .map(|o| match o {
                AnyObject::Namespace(ns) => ns.metadata.name.clone(),
                other => other.key().namespace.unwrap_or_default(),
            })
            .collect();
        if let Some(ns) = extra_namespace {
            namespaces.insert(ns.to_owned());
        }
        PruneScope {
            namespaces,
            namespaces_kind: explicit_applyset,
        }
    }

    /// Whether a prune may consider `key`.
    pub fn contains(&self, key: &ObjectKey) -> bool {
        match (&key.namespace, key.kind) {
            (_, Kind::Namespace) => self.namespaces_kind,
            (Some(ns), _) => self.namespaces.contains(ns),
            (None, _) => false,
        }
    }
}

/// Every live object carrying `nanocl.io/applyset=NAME` within `scope`, namespaced kinds first.
pub async fn applyset_members(
    client: &impl Transport,
    name: &str,
    scope: &PruneScope,
) -> Result<Vec<Value>> {
    let mut members = applyset_list(client, name).await?;
    members.retain(|o| key_of(o).is_some_and(|k| scope.contains(&k)));
    Ok(members)
}

/// Every live object carrying `nanocl.io/applyset=NAME`, in any namespace, namespaced kinds
/// first.
pub async fn applyset_list(client: &impl Transport, name: &str) -> Result<Vec<Value>> {
    let mut members = Vec::new();
    for kind in Kind::ALL.into_iter().rev() {
        let path = format!(
            "{}?labelSelector={}%3D{}",
            collection_path(kind, None),
            APPLYSET_LABEL.replace('/', "%2F"),
            name
        );
        let answer = client.request(Method::GET, &path, None).await?;
        if answer.status != StatusCode::OK {
            return Err(answer_error(
                &answer,
                format!("listing the applyset {name:?}"),
            ));
        }
        if let Some(items) = answer.json()?["items"].as_array() {
            members.extend(items.iter().cloned());
        }
    }
    Ok(members)
}

/// The applyset name: `--applyset`, or the first input's name made a DNS label.
pub fn applyset_name(
    explicit: Option<&str>,
    first_path: Option<&std::path::Path>,
) -> Result<String> {
    if let Some(name) = explicit {
        nanocl_api_types::validation::label_value(name)
            .map_err(|e| Error::ApplysetName(format!("--applyset: {e}")))?;
        return Ok(name.to_owned());
    }
    // A directory's whole name (`apps.prod` and `apps.staging` must not share a set), a
    // file's name without its extension; `.` and `..` are resolved, symlinks are not (a
    // `current -> releases/v42` link keeps its set when it flips).
    let base = first_path
        .and_then(|p| {
            let named = matches!(
                p.components().next_back(),
                Some(std::path::Component::Normal(_))
            );
            let p = if named {
                p.to_owned()
            } else {
                std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned())
            };
            if p.is_dir() {
                p.file_name()
            } else {
                p.file_stem()
            }
            .map(|s| s.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let mut name: String = base
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    name = name
        .trim_matches('-')
        .chars()
        .take(63)
        .collect::<String>()
        .trim_matches('-')
        .to_owned();
    if name.is_empty() {
        return Err(Error::ApplysetName(
            "cannot derive an applyset name from the input: give one with --applyset NAME".into(),
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::{applyset_name, desired, without_server_fields};
    use nanocl_api_types::AnyObject;
    use serde_json::{json, Value};

    fn cargo(annotations: Value) -> AnyObject {
        let mut value = json!({
            "apiVersion": "nanocl.io/v1",
            "kind": "Cargo",
            "metadata": {"name": "web", "namespace": "global"},
            "spec": {"cluster": "dev", "replicas": 2, "container": {"image": "busybox:1.36"}},
        });
        if !annotations.is_null() {
            value["metadata"]["annotations"] = annotations;
        }
        AnyObject::from_v1_value(value).expect("a valid cargo")
    }

    /// The object as the server would hold it after `apply` of `file`, then `edit`.
    fn stored(file: &AnyObject, edit: impl FnOnce(&mut Value)) -> Value {
        let mut live = serde_json::to_value(file).expect("json");
        live["metadata"]["resourceVersion"] = json!("42");
        live["metadata"]["generation"] = json!(3);
        live["metadata"]["finalizers"] = json!(["nanocl.io/containers"]);
        live["status"] = json!({"observedGeneration": 3});
        edit(&mut live);
        live
    }

    #[test]
    fn desired_should_keep_the_live_rollout_annotations_so_an_unchanged_file_is_unchanged() {
        let file = cargo(json!({"team": "a"}));
        let live = stored(&file, |l| {
            l["metadata"]["annotations"]["rollout.nanocl.io/restartedAt"] =
                json!("2026-12-03T10:00:00.000Z");
            l["metadata"]["annotations"]["rollout.nanocl.io/paused"] = json!("true");
        });
        let sent = desired(&file, Some(&live)).expect("desired");
        assert_eq!(
            sent["metadata"]["annotations"],
            json!({
                "team": "a",
                "rollout.nanocl.io/restartedAt": "2026-12-03T10:00:00.000Z",
                "rollout.nanocl.io/paused": "true",
            })
        );
        assert_eq!(sent["metadata"]["resourceVersion"], "42");
        assert_eq!(
            without_server_fields(&sent),
            without_server_fields(&live),
            "apply and diff see no change"
        );
        // The same with a file that has no annotations at all.
        let bare = cargo(Value::Null);
        let paused = stored(&bare, |l| {
            l["metadata"]["annotations"] = json!({"rollout.nanocl.io/paused": "true"});
        });
        let sent = desired(&bare, Some(&paused)).expect("desired");
        assert_eq!(without_server_fields(&sent), without_server_fields(&paused));
    }

    #[test]
    fn desired_should_ignore_the_rollout_annotations_a_file_has() {
        let file = cargo(json!({
            "team": "a",
            "rollout.nanocl.io/paused": "true",
            "rollout.nanocl.io/restartedAt": "2020-01-01T00:00:00Z",
        }));
        // Created: none of them.
        let sent = desired(&file, None).expect("desired");
        assert_eq!(sent["metadata"]["annotations"], json!({"team": "a"}));
        // Updated: the live object's, whatever the file says.
        let live = stored(&cargo(Value::Null), |l| {
            l["metadata"]["annotations"] =
                json!({"rollout.nanocl.io/restartedAt": "2026-01-01T00:00:00Z"});
        });
        let sent = desired(&file, Some(&live)).expect("desired");
        assert_eq!(
            sent["metadata"]["annotations"],
            json!({"team": "a", "rollout.nanocl.io/restartedAt": "2026-01-01T00:00:00Z"})
        );
        // A file whose only annotations are rollout ones sends no annotations map.
        let only = cargo(json!({"rollout.nanocl.io/paused": "true"}));
        let sent = desired(&only, None).expect("desired");
        assert!(sent["metadata"].get("annotations").is_none(), "{sent}");
    }

    #[test]
    fn desired_should_still_show_other_annotation_changes() {
        let file = cargo(json!({"team": "b"}));
        let live = stored(&cargo(json!({"team": "a"})), |_| {});
        let sent = desired(&file, Some(&live)).expect("desired");
        assert_ne!(without_server_fields(&sent), without_server_fields(&live));
    }

    #[test]
    fn applyset_names_come_from_whole_directory_names_and_file_stems(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let prod = tmp.path().join("apps.prod");
        let staging = tmp.path().join("apps.staging");
        std::fs::create_dir(&prod)?;
        std::fs::create_dir(&staging)?;
        std::fs::write(prod.join("web.yaml"), "")?;
        assert_eq!(applyset_name(None, Some(&prod))?, "apps-prod");
        assert_eq!(applyset_name(None, Some(&staging))?, "apps-staging");
        assert_eq!(applyset_name(None, Some(&prod.join("web.yaml")))?, "web");
        assert_eq!(applyset_name(None, Some(&prod.join(".")))?, "apps-prod");
        // A symlink keeps its own name, whatever it points to.
        let current = tmp.path().join("current");
        std::os::unix::fs::symlink(&prod, &current)?;
        assert_eq!(applyset_name(None, Some(&current))?, "current");
        assert_eq!(applyset_name(Some("mine"), Some(&current))?, "mine");
        Ok(())
    }
}
