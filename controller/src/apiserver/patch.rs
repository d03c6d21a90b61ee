//! PATCH, as Kubernetes clients send it: JSON merge patch (RFC 7386, `kubectl patch --type
//! merge`, kubectl's client-side apply and diff), JSON patch (RFC 6902, `--type json`) and
//! server-side apply (`application/apply-patch+yaml`, `kubectl apply --server-side`), with
//! managed fields and conflicts. Strategic merge patch is Kubernetes' own kinds' and is
//! refused (415), as for custom resources.
//!
//! Every patch is applied to the object as stored and the result goes through PUT's checks
//! and write (`replace_decoded`): validation, policy, optimistic concurrency. A patch that
//! does not name a `resourceVersion` is retried on a conflicting write.
//!
//! Server-side apply, kept simple: a manager owns the leaf fields of what it applied (lists
//! are atomic: a list is one field); applying a value another manager applied differently is
//! a 409 naming both, unless `force=true`, which takes the field over; a field a manager
//! stops applying is removed unless another manager still applies it. Writes by PUT and the
//! other patches are not recorded as managers, so they never conflict with an apply.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use nanocl_api_types::manifest::node::{parse_stream, Node, Value as Yaml};
use nanocl_api_types::meta::ManagedFieldsEntry;
use nanocl_api_types::Kind;
use serde_json::{json, Map, Value};

use super::handlers::{self, described, object_key, Query};
use super::path::Target;
use super::status::{ApiError, Cause};
use super::App;
use crate::objects::api::create_any;
use crate::objects::{self, ObjectError};
use crate::store::{Store, StoreError};

/// How many times a patch without a `resourceVersion` is tried against concurrent writes.
const ATTEMPTS: usize = 5;

/// A field: its path of keys from the object's root.
type Field = Vec<String>;

/// `PATCH .../{plural}/{name}`.
pub async fn serve<S: Store>(
    app: &App<S>,
    target: &Target,
    name: &str,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let kind = match media.as_str() {
        "application/merge-patch+json" => Patch::Merge,
        "application/json-patch+json" => Patch::Json,
        "application/apply-patch+yaml" => Patch::Apply,
        "application/strategic-merge-patch+json" => {
            return Err(ApiError::unsupported_media_type(
                "strategic merge patch is for Kubernetes' own kinds: send application/merge-patch+json (kubectl patch --type merge) or application/json-patch+json",
            ))
        }
        _ => {
            return Err(ApiError::unsupported_media_type(format!(
                "content type {content_type:?} is not a patch: send application/merge-patch+json, application/json-patch+json or application/apply-patch+yaml"
            )))
        }
    };
    if target.kind == Kind::Secret {
        return Err(ApiError::method_not_allowed(
            "Secrets are not patched: their values are never shown, so a patch cannot be applied to them; send the whole Secret (nanocl apply)",
        ));
    }
    let bytes = handlers::read_limited(headers, body).await?;
    match kind {
        Patch::Apply => apply(app, target, name, query, &bytes).await,
        Patch::Merge | Patch::Json => {
            let patch: Value = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::bad_request(format!("the patch is not JSON: {e}")))?;
            patch_stored(app, target, name, query, kind, &patch).await
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Patch {
    Merge,
    Json,
    Apply,
}

/// The stored object in the path's version (its `resourceVersion` filled in), with it.
async fn live<S: Store>(
    app: &App<S>,
    target: &Target,
    name: &str,
) -> Result<Option<Value>, ApiError> {
    let Some(stored) = objects::read(&app.store, &object_key(target, name)).await? else {
        return Ok(None);
    };
    let value = stored
        .object
        .to_version(target.version)
        .map_err(|e| ApiError::internal(format!("cannot convert to {}: {e}", target.version)))?;
    Ok(Some(value))
}

async fn patch_stored<S: Store>(
    app: &App<S>,
    target: &Target,
    name: &str,
    query: &Query,
    kind: Patch,
    patch: &Value,
) -> Result<Response, ApiError> {
    let pinned = patch["metadata"]["resourceVersion"].is_string();
    for _ in 0..ATTEMPTS {
        let current = live(app, target, name)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("{} not found", described(target, name))))?;
        let patched = match kind {
            Patch::Merge => merge(current, patch),
            _ => json_patch(current, patch)?,
        };
        match put(app, target, name, query, &patched).await {
            Err(e) if e.code == StatusCode::CONFLICT && !pinned => continue,
            answer => return answer,
        }
    }
    Err(ApiError::conflict(format!(
        "{} kept changing under the patch ({ATTEMPTS} tries); try again",
        described(target, name)
    )))
}

/// Hands a patched object to PUT's checks and write.
async fn put<S: Store>(
    app: &App<S>,
    target: &Target,
    name: &str,
    query: &Query,
    object: &Value,
) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(object)
        .map_err(|e| ApiError::internal(format!("cannot encode the patched object: {e}")))?;
    let decoded = handlers::decode_json(target, &bytes)?;
    handlers::replace_decoded(app, target, name, query, decoded).await
}

/// RFC 7386: objects merge key by key, `null` removes, anything else replaces.
pub fn merge(mut target: Value, patch: &Value) -> Value {
    let Value::Object(entries) = patch else {
        return patch.clone();
    };
    if !target.is_object() {
        target = Value::Object(Map::new());
    }
    if let Value::Object(map) = &mut target {
        for (key, value) in entries {
            if value.is_null() {
                map.remove(key);
            } else {
                let before = map.remove(key).unwrap_or(Value::Null);
                map.insert(key.clone(), merge(before, value));
            }
        }
    }
    target
}

/// `/spec/replicas` as keys, `~1` and `~0` decoded.
fn pointer(path: &str) -> Result<Vec<String>, ApiError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(ApiError::bad_request(format!(
            "JSON patch path {path:?} must start with /"
        )));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

/// The parent of `path` in `doc`, and the last token.
fn parent<'a>(doc: &'a mut Value, path: &[String]) -> Result<(&'a mut Value, String), ApiError> {
    let (last, init) = path
        .split_last()
        .ok_or_else(|| ApiError::bad_request("a JSON patch cannot replace the whole object"))?;
    let mut node = doc;
    for token in init {
        node = match node {
            Value::Object(map) => map.get_mut(token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| {
            ApiError::invalid(
                format!("JSON patch path /{} does not exist", path.join("/")),
                Vec::new(),
            )
        })?;
    }
    Ok((node, last.clone()))
}

fn get<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |node, token| match node {
        Value::Object(map) => map.get(token),
        Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

fn remove(doc: &mut Value, path: &[String]) -> Result<Value, ApiError> {
    let missing = || {
        ApiError::invalid(
            format!("JSON patch: nothing at /{} to remove", path.join("/")),
            Vec::new(),
        )
    };
    let (parent, last) = parent(doc, path)?;
    match parent {
        Value::Object(map) => map.remove(&last).ok_or_else(missing),
        Value::Array(items) => match last.parse::<usize>() {
            Ok(i) if i < items.len() => Ok(items.remove(i)),
            _ => Err(missing()),
        },
        _ => Err(missing()),
    }
}

fn add(doc: &mut Value, path: &[String], value: Value) -> Result<(), ApiError> {
    let (parent, last) = parent(doc, path)?;
    match parent {
        Value::Object(map) => {
            map.insert(last, value);
            Ok(())
        }
        Value::Array(items) => {
            let index = if last == "-" {
                items.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= items.len())
                    .ok_or_else(|| {
                        ApiError::invalid(
                            format!("JSON patch: index {last} is out of range"),
                            Vec::new(),
                        )
                    })?
            };
            items.insert(index, value);
            Ok(())
        }
        _ => Err(ApiError::invalid(
            format!(
                "JSON patch: /{} is not inside an object or a list",
                path.join("/")
            ),
            Vec::new(),
        )),
    }
}

/// RFC 6902: add, remove, replace, move, copy, test.
pub fn json_patch(mut doc: Value, patch: &Value) -> Result<Value, ApiError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| ApiError::bad_request("a JSON patch is a list of operations"))?;
    for (i, op) in ops.iter().enumerate() {
        let path = pointer(op["path"].as_str().unwrap_or(""))?;
        let value = || {
            op.get("value").cloned().ok_or_else(|| {
                ApiError::bad_request(format!("JSON patch operation {i} needs a value"))
            })
        };
        let from = || pointer(op["from"].as_str().unwrap_or(""));
        match op["op"].as_str().unwrap_or("") {
            "add" => add(&mut doc, &path, value()?)?,
            "remove" => {
                remove(&mut doc, &path)?;
            }
            "replace" => {
                remove(&mut doc, &path)?;
                add(&mut doc, &path, value()?)?;
            }
            "move" => {
                let moved = remove(&mut doc, &from()?)?;
                add(&mut doc, &path, moved)?;
            }
            "copy" => {
                let copied = get(&doc, &from()?).cloned().ok_or_else(|| {
                    ApiError::invalid(format!("JSON patch operation {i}: nothing to copy"), Vec::new())
                })?;
                add(&mut doc, &path, copied)?;
            }
            "test" => {
                if get(&doc, &path) != Some(&value()?) {
                    return Err(ApiError::invalid(
                        format!("JSON patch operation {i}: test of /{} failed", path.join("/")),
                        Vec::new(),
                    ));
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "JSON patch operation {i}: unknown op {other:?} (add, remove, replace, move, copy, test)"
                )))
            }
        }
    }
    Ok(doc)
}

/// A YAML node as JSON.
fn to_json(node: &Node) -> Value {
    match &node.value {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => json!(b),
        Yaml::Int(i) => json!(i),
        Yaml::BigInt(s) | Yaml::Str(s) => json!(s),
        Yaml::Float(f) => json!(f),
        Yaml::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.key_text(), to_json(v)))
                .collect(),
        ),
    }
}

/// The identity of an object, which no manager owns.
fn identity(field: &[String]) -> bool {
    matches!(
        field
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["apiVersion"]
            | ["kind"]
            | ["metadata", "name"]
            | ["metadata", "namespace"]
            | ["metadata", "resourceVersion"]
            | ["metadata", "managedFields"]
    ) || field.first().is_some_and(|f| f == "status")
}

/// The leaf fields of `value` (objects are walked, anything else is one field).
fn leaves(value: &Value, prefix: &mut Field, out: &mut BTreeSet<Field>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                prefix.push(k.clone());
                leaves(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            if !identity(prefix) && !prefix.is_empty() {
                out.insert(prefix.clone());
            }
        }
    }
}

/// `{"f:spec": {"f:replicas": {}}}` of a set of fields.
fn fields_v1(fields: &BTreeSet<Field>) -> Value {
    let mut root = Map::new();
    for field in fields {
        let mut node = &mut root;
        for key in field {
            let entry = node
                .entry(format!("f:{key}"))
                .or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(next) = entry else { break };
            node = next;
        }
    }
    Value::Object(root)
}

/// The fields of a `fieldsV1` value.
fn from_fields_v1(value: &Value, prefix: &mut Field, out: &mut BTreeSet<Field>) {
    let Value::Object(map) = value else { return };
    if map.is_empty() && !prefix.is_empty() {
        out.insert(prefix.clone());
        return;
    }
    for (k, v) in map {
        let Some(key) = k.strip_prefix("f:") else {
            continue;
        };
        prefix.push(key.to_owned());
        from_fields_v1(v, prefix, out);
        prefix.pop();
    }
}

fn set(doc: &mut Value, field: &[String], value: Value) {
    let Some((last, init)) = field.split_last() else {
        return;
    };
    let mut node = doc;
    for key in init {
        if !node.get(key).is_some_and(Value::is_object) {
            node[key] = Value::Object(Map::new());
        }
        node = &mut node[key];
    }
    node[last] = value;
}

fn unset(doc: &mut Value, field: &[String]) {
    let Some((last, init)) = field.split_last() else {
        return;
    };
    let mut node = doc;
    for key in init {
        match node.get_mut(key) {
            Some(next) => node = next,
            None => return,
        }
    }
    if let Value::Object(map) = node {
        map.remove(last);
    }
}

fn dotted(field: &[String]) -> String {
    format!(".{}", field.join("."))
}

/// Server-side apply of the configuration in `bytes` (YAML or JSON) by `fieldManager`.
async fn apply<S: Store>(
    app: &App<S>,
    target: &Target,
    name: &str,
    query: &Query,
    bytes: &[u8],
) -> Result<Response, ApiError> {
    let manager = query.field_manager.clone().ok_or_else(|| {
        ApiError::bad_request(
            "server-side apply needs fieldManager=NAME in the query (kubectl sends it)",
        )
    })?;
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request("the applied configuration is not UTF-8"))?;
    let (documents, syntax) = parse_stream(text);
    if let Some(e) = syntax {
        return Err(ApiError::bad_request(format!(
            "the applied configuration is not YAML: {}: {}",
            e.pos, e.message
        )));
    }
    let config = documents
        .iter()
        .find_map(|d| d.root.as_ref())
        .map(to_json)
        .filter(Value::is_object)
        .ok_or_else(|| ApiError::bad_request("the applied configuration must be one object"))?;
    if config["apiVersion"] != target.version.api_version()
        || config["kind"] != target.kind.as_str()
    {
        return Err(ApiError::bad_request(format!(
            "the applied configuration is {} {}, the path is for {} {}",
            config["apiVersion"], config["kind"], target.version, target.kind
        )));
    }
    if config["metadata"]["name"] != name {
        return Err(ApiError::bad_request(format!(
            "the applied configuration names {}, the path {name:?}",
            config["metadata"]["name"]
        )));
    }
    let mut applied = BTreeSet::new();
    leaves(&config, &mut Vec::new(), &mut applied);
    let now = objects::now();
    let entry = |fields: &BTreeSet<Field>| ManagedFieldsEntry {
        manager: manager.clone(),
        operation: "Apply".into(),
        api_version: target.version.api_version().into(),
        time: Some(now.clone()),
        fields_type: "FieldsV1".into(),
        fields_v1: fields_v1(fields),
        subresource: None,
    };
    for _ in 0..ATTEMPTS {
        let Some(mut current) = live(app, target, name).await? else {
            if target.kind == Kind::Replica {
                return Err(ApiError::method_not_allowed(
                    "Replicas are created by nanocl's scheduler, one per slot of a Cargo: change the Cargo's replicas or placement instead",
                ));
            }
            // Nothing yet: the configuration is created, owned by its manager.
            let mut object = config.clone();
            object["metadata"]["managedFields"] = json!([entry(&applied)]);
            let bytes = serde_json::to_vec(&object)
                .map_err(|e| ApiError::internal(format!("cannot encode the object: {e}")))?;
            let decoded = handlers::decode_json(target, &bytes)?;
            return match create_any(&app.store, &decoded, query.dry_run).await {
                Ok(stored) => {
                    handlers::object_response(StatusCode::CREATED, &stored, target.version)
                }
                Err(ObjectError::Store(StoreError::AlreadyExists { .. })) => continue,
                Err(e) => Err(e.into()),
            };
        };
        let managers: Vec<ManagedFieldsEntry> =
            serde_json::from_value(current["metadata"]["managedFields"].clone())
                .unwrap_or_default();
        let mut owned: BTreeMap<String, BTreeSet<Field>> = BTreeMap::new();
        for m in &managers {
            let mut fields = BTreeSet::new();
            from_fields_v1(&m.fields_v1, &mut Vec::new(), &mut fields);
            owned.entry(m.manager.clone()).or_default().extend(fields);
        }
        // Conflicts: a field another manager applied, with another value.
        let mut conflicts: Vec<(String, Field)> = Vec::new();
        for (other, fields) in owned.iter().filter(|(m, _)| **m != manager) {
            for field in fields.intersection(&applied) {
                if get(&current, field) != get(&config, field) {
                    conflicts.push((other.clone(), field.clone()));
                }
            }
        }
        if !conflicts.is_empty() && !query.force {
            let causes: Vec<Cause> = conflicts
                .iter()
                .map(|(m, f)| Cause {
                    field: dotted(f),
                    message: format!("conflict with {m:?}"),
                })
                .collect();
            let listed: Vec<String> = conflicts
                .iter()
                .map(|(m, f)| format!("conflict with {m:?}: {}", dotted(f)))
                .collect();
            let mut error = ApiError::conflict(format!(
                "Apply failed with {} conflict{}: {}; apply with force (kubectl apply --server-side --force-conflicts) to take them over, or leave them out of the configuration",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" },
                listed.join(", ")
            ));
            error.causes = causes;
            return Err(error);
        }
        // Forced: the fields change hands.
        for (other, field) in &conflicts {
            if let Some(fields) = owned.get_mut(other) {
                fields.remove(field);
            }
        }
        // Fields this manager no longer applies go, unless someone else applies them.
        let before = owned.remove(&manager).unwrap_or_default();
        for field in before.difference(&applied) {
            if !owned.values().any(|f| f.contains(field)) {
                unset(&mut current, field);
            }
        }
        for field in &applied {
            if let Some(value) = get(&config, field) {
                set(&mut current, field, value.clone());
            }
        }
        let mut entries: Vec<ManagedFieldsEntry> = managers
            .into_iter()
            .filter(|m| m.manager != manager)
            .filter_map(|mut m| {
                let fields = owned.get(&m.manager)?;
                if fields.is_empty() {
                    return None;
                }
                m.fields_v1 = fields_v1(fields);
                Some(m)
            })
            .collect();
        entries.push(entry(&applied));
        current["metadata"]["managedFields"] = json!(entries);
        match put(app, target, name, query, &current).await {
            Err(e) if e.code == StatusCode::CONFLICT && e.causes.is_empty() => continue,
            answer => return answer,
        }
    }
    Err(ApiError::conflict(format!(
        "{} kept changing under the apply ({ATTEMPTS} tries); try again",
        described(target, name)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_should_follow_rfc_7386() {
        let doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        let patched = merge(doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(patched, json!({"a": "z", "c": {"d": "e"}}));
    }

    #[test]
    fn json_patch_should_follow_rfc_6902() {
        let doc = json!({"spec": {"replicas": 1, "networks": ["a"]}});
        let patched = json_patch(
            doc,
            &json!([
                {"op": "replace", "path": "/spec/replicas", "value": 3},
                {"op": "add", "path": "/spec/networks/-", "value": "b"},
                {"op": "test", "path": "/spec/replicas", "value": 3},
            ]),
        )
        .expect("applies");
        assert_eq!(
            patched,
            json!({"spec": {"replicas": 3, "networks": ["a", "b"]}})
        );
        let failed = json_patch(
            json!({"a": 1}),
            &json!([{"op": "test", "path": "/a", "value": 2}]),
        );
        assert!(failed.is_err());
    }

    #[test]
    fn fields_should_round_trip_through_fields_v1() {
        let config = json!({"apiVersion": "nanocl.io/v1", "kind": "Cargo",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 2, "container": {"image": "busybox", "command": ["sh"]}}});
        let mut fields = BTreeSet::new();
        leaves(&config, &mut Vec::new(), &mut fields);
        let shown: Vec<String> = fields.iter().map(|f| dotted(f)).collect();
        assert_eq!(
            shown,
            [
                ".metadata.labels.app",
                ".spec.container.command",
                ".spec.container.image",
                ".spec.replicas"
            ]
        );
        let v1 = fields_v1(&fields);
        assert_eq!(v1["f:spec"]["f:replicas"], json!({}));
        let mut back = BTreeSet::new();
        from_fields_v1(&v1, &mut Vec::new(), &mut back);
        assert_eq!(back, fields);
    }
}
