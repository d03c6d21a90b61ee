//! The resource verbs: get, list, create, replace, replace status, delete (watch is in
//! `watch.rs`). Server-side decoding, defaulting and validation are the CLI's own code.

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use nanocl_api_types::manifest::{self, DecodeOptions};
use nanocl_api_types::meta::DEFAULT_NAMESPACE;
use nanocl_api_types::selector::Selector;
use nanocl_api_types::{AnyObject, ObjectKey, Version};
use serde_json::json;

use super::objects::{self, Stored};
use super::path::{query_decode, Target};
use super::status::{ApiError, Cause};
use super::App;
use crate::objects::api::{create_any, delete_any};
use crate::objects::lifecycle::{self, Replacement};
use crate::objects::{admission, ObjectError};
use crate::store::{keys, Store, StoreError};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Longest wait for a request body: a stalled client must not hold a handler (or shutdown).
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The query parameters the API understands.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// `watch=true`.
    pub watch: bool,
    /// `resourceVersion=N`.
    pub resource_version: Option<String>,
    /// `labelSelector=...`.
    pub selector: Selector,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `follow=true` (logs).
    pub follow: bool,
    /// `tailLines=N` (logs).
    pub tail_lines: Option<u32>,
    /// `build=true` (logs): the output of the cargo's latest image build.
    pub build: bool,
    /// `sinceSeconds=N` (logs): only the output of the last N seconds.
    pub since_seconds: Option<u64>,
    /// `sinceTime=RFC3339` (logs): only the output written at or after this time.
    pub since_time: Option<std::time::SystemTime>,
    /// `timestamps=true` (logs): each line starts with the time Docker received it.
    pub timestamps: bool,
    /// `command=ARG`, repeated (exec): the program and its arguments.
    pub command: Vec<String>,
    /// `replica=N` (exec): the slot whose container runs the command (the first ready one
    /// when absent).
    pub replica: Option<u32>,
    /// `tty=true` (exec): a terminal for the command.
    pub tty: bool,
    /// `stdin=true` (exec): the client's input reaches the command.
    pub stdin: bool,
    /// `rows=N&cols=N` (exec with a tty): the terminal's size.
    pub size: (Option<u16>, Option<u16>),
    /// `fieldSelector=metadata.name=NAME` (and `metadata.namespace`, `!=`).
    pub fields: FieldSelector,
    /// Answer as a `meta.k8s.io` Table (from the Accept header, not the query).
    pub table: bool,
    /// `includeObject=Object`: a Table's rows carry whole objects, not their metadata.
    pub whole_object: bool,
    /// `fieldManager=NAME`: who a server-side apply is (`kubectl`, ...).
    pub field_manager: Option<String>,
    /// `force=true`: a server-side apply takes fields over from their other managers.
    pub force: bool,
}

/// A field selector: what kubectl sends to watch one object (`metadata.name=web`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// `metadata.name=web,metadata.namespace!=kube-system`: `=`, `==` and `!=` on the two
    /// fields every object has.
    pub fn parse(value: &str) -> Result<FieldSelector, String> {
        let mut terms = Vec::new();
        for term in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, equal, wanted) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "field selector term {term:?}: expected FIELD=VALUE or FIELD!=VALUE"
                ));
            };
            let field = field.trim();
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(format!(
                    "field selector on {field:?}: only metadata.name and metadata.namespace are supported"
                ));
            }
            terms.push((field.to_owned(), equal, wanted.trim().to_owned()));
        }
        Ok(FieldSelector(terms))
    }

    /// Whether `object` is selected.
    pub fn matches(&self, object: &serde_json::Value) -> bool {
        self.0.iter().all(|(field, equal, wanted)| {
            let key = field.trim_start_matches("metadata.");
            let value = object["metadata"][key].as_str().unwrap_or("");
            (value == wanted) == *equal
        })
    }
}

/// A boolean parameter: `true`, `1` or nothing; `false` or `0` (any case: the Python client
/// sends `True`).
fn flag(value: &str, name: &str) -> Result<bool, ApiError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(ApiError::bad_request(format!(
            "{name} must be true or false, got {other:?}"
        ))),
    }
}

fn number<T: std::str::FromStr>(value: &str, name: &str) -> Result<T, ApiError> {
    value.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "{name} must be a non-negative integer, got {value:?}"
        ))
    })
}

/// Parses the query string; unknown parameters are an error, not silently ignored.
pub fn parse_query(raw: Option<&str>) -> Result<Query, ApiError> {
    let mut query = Query::default();
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = query_decode(value)?;
        match name {
            "watch" => query.watch = flag(&value, name)?,
            "resourceVersion" => {
                if !value.is_empty() && value.parse::<u64>().is_err() {
                    return Err(ApiError::bad_request(format!(
                        "resourceVersion {value:?} is not one this server issued (a non-negative integer)"
                    )));
                }
                query.resource_version = Some(value);
            }
            "labelSelector" => query.selector = Selector::parse(&value).map_err(ApiError::bad_request)?,
            "dryRun" => {
                if value != "All" {
                    return Err(ApiError::bad_request(format!("dryRun must be All, got {value:?}")));
                }
                query.dry_run = true;
            }
            "allowWatchBookmarks" => {}
            "follow" => query.follow = flag(&value, name)?,
            "build" => query.build = flag(&value, name)?,
            "tailLines" => query.tail_lines = Some(number(&value, name)?),
            "sinceSeconds" => query.since_seconds = Some(number(&value, name)?),
            "sinceTime" => {
                query.since_time = Some(humantime::parse_rfc3339_weak(&value).map_err(|e| {
                    ApiError::bad_request(format!("sinceTime must be an RFC 3339 time such as 2026-12-03T09:00:00Z, got {value:?}: {e}"))
                })?)
            }
            "timestamps" => query.timestamps = flag(&value, name)?,
            "command" => query.command.push(value),
            "replica" => query.replica = Some(number(&value, name)?),
            "tty" => query.tty = flag(&value, name)?,
            "stdin" => query.stdin = flag(&value, name)?,
            "rows" => query.size.0 = Some(number(&value, name)?),
            "cols" => query.size.1 = Some(number(&value, name)?),
            "fieldSelector" => query.fields = FieldSelector::parse(&value).map_err(ApiError::bad_request)?,
            "includeObject" => query.whole_object = value == "Object",
            "fieldManager" => {
                if value.is_empty() || value.len() > 128 || value.chars().any(char::is_control) {
                    return Err(ApiError::bad_request(format!(
                        "fieldManager must be 1 to 128 printable characters, got {value:?}"
                    )));
                }
                query.field_manager = Some(value);
            }
            "force" => query.force = flag(&value, name)?,
            // Lists are not paged: a `limit` is answered with everything (no `continue`).
            "limit" => {
                number::<u64>(&value, name)?;
            }
            "continue" if value.is_empty() => {}
            "continue" => {
                return Err(ApiError::bad_request(
                    "lists are not paged here: every list is whole, so there is nothing to continue",
                ))
            }
            // Accepted as Kubernetes clients send them; what they ask is what nanocl does
            // anyway (strict field validation, background deletion), or only presentation.
            "timeoutSeconds" | "resourceVersionMatch" | "sendInitialEvents" | "pretty"
            | "fieldValidation" | "propagationPolicy" | "gracePeriodSeconds"
            | "orphanDependents" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?}: known are watch, resourceVersion, labelSelector, fieldSelector, dryRun, follow, tailLines, sinceSeconds, sinceTime, timestamps, build, command, replica, tty, stdin, rows, cols, fieldManager, force, limit, includeObject"
                )))
            }
        }
    }
    Ok(query)
}

pub use crate::objects::now;

/// A JSON response of `object` in the path's version.
pub fn object_response(
    code: StatusCode,
    object: &AnyObject,
    version: Version,
) -> Result<Response, ApiError> {
    let value = super::objects::shown(object)
        .to_version(version)
        .map_err(|e| ApiError::internal(format!("cannot convert to {version}: {e}")))?;
    Ok((
        code,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string() + "\n",
    )
        .into_response())
}

pub(crate) fn object_key(target: &Target, name: &str) -> ObjectKey {
    ObjectKey {
        kind: target.kind,
        namespace: target.namespace.clone(),
        name: name.to_owned(),
    }
}

pub(crate) fn described(target: &Target, name: &str) -> String {
    match &target.namespace {
        Some(ns) => format!(
            "{} {name:?} in namespace {ns:?}",
            target.kind.as_str().to_ascii_lowercase()
        ),
        None => format!("{} {name:?}", target.kind.as_str().to_ascii_lowercase()),
    }
}

/// Reads a JSON body of at most 3 MiB.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::unsupported_media_type(format!(
            "content type {content_type:?} is not supported: send application/json"
        )));
    }
    read_limited(headers, body).await
}

/// Reads a body of at most 3 MiB, whatever its type.
pub async fn read_limited(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::too_large(format!(
            "the request body is larger than the {} MiB limit",
            MAX_BODY_BYTES >> 20
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let read = tokio::time::timeout(
        BODY_TIMEOUT,
        http_body_util::Limited::new(body, MAX_BODY_BYTES).collect(),
    );
    let Ok(read) = read.await else {
        return Err(ApiError::bad_request(format!(
            "the request body did not arrive within {}s",
            BODY_TIMEOUT.as_secs()
        )));
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "cannot read the request body: {e}"
        ))),
    }
}

/// Decodes, defaults and validates a body for `target`: one object of the path's version and
/// kind, in the path's namespace.
async fn decode_body(
    target: &Target,
    headers: &HeaderMap,
    body: Body,
) -> Result<AnyObject, ApiError> {
    let bytes = read_body(headers, body).await?;
    decode_json(target, &bytes)
}

/// Decodes, defaults and validates JSON `bytes` for `target` (see [`decode_body`]).
pub fn decode_json(target: &Target, bytes: &[u8]) -> Result<AnyObject, ApiError> {
    let options = DecodeOptions {
        default_namespace: target
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
        required_namespace: None,
        base_dir: None,
    };
    // The body is application/json: strict JSON, not YAML that happens to look like it.
    let decoded = manifest::decode_bytes_as("body", bytes, manifest::Format::Json, &options);
    if !decoded.errors.is_empty() {
        return Err(ApiError::from_manifest_errors(&decoded.errors));
    }
    let mut manifests = decoded.manifests;
    if manifests.len() != 1 {
        return Err(ApiError::bad_request(format!(
            "the request body must hold exactly one object, found {}",
            manifests.len()
        )));
    }
    let manifest = manifests.remove(0);
    if manifest.version != target.version {
        return Err(ApiError::bad_request(format!(
            "the body is {} but the path is for {}: send it to /apis/nanocl.io/{}/...",
            manifest.version,
            target.version,
            manifest.version.name()
        )));
    }
    let object = manifest.object;
    if object.kind() != target.kind {
        return Err(ApiError::bad_request(format!(
            "the body is a {} but the path is for {}",
            object.kind(),
            target.kind.plural()
        )));
    }
    if let (Some(path_ns), Some(body_ns)) = (&target.namespace, &object.metadata().namespace) {
        if path_ns != body_ns {
            return Err(ApiError::bad_request(format!(
                "the body's metadata.namespace {body_ns:?} does not match the namespace {path_ns:?} in the path"
            )));
        }
    }
    Ok(object)
}

/// Decodes a PUT body, which must name the object of the path.
async fn decode_named_body(
    target: &Target,
    name: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<AnyObject, ApiError> {
    let object = decode_body(target, headers, body).await?;
    if object.metadata().name != name {
        return Err(ApiError::bad_request(format!(
            "the body's metadata.name {:?} does not match the name {name:?} in the path",
            object.metadata().name
        )));
    }
    Ok(object)
}

/// GET one object.
pub async fn get<S: Store>(
    app: &App<S>,
    target: &Target,
    name: &str,
    query: &Query,
) -> Result<Response, ApiError> {
    let kv = app
        .store
        .get(&keys::object_key(&object_key(target, name)))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{} not found", described(target, name))))?;
    let view = objects::view(&kv, target.kind, target.version)?;
    let body = if query.table {
        let rv = kv.mod_revision.to_string();
        super::table::table(
            target.kind,
            &[view.value],
            Some(&rv),
            true,
            query.whole_object,
        )
    } else {
        view.value
    };
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string() + "\n",
    )
        .into_response())
}

/// GET a collection.
pub async fn list<S: Store>(
    app: &App<S>,
    target: &Target,
    query: &Query,
) -> Result<Response, ApiError> {
    let prefix = keys::kind_prefix(target.kind, target.namespace.as_deref());
    let listed = app.store.list(&prefix).await?;
    let mut items = Vec::new();
    for kv in &listed.items {
        // An object this nanocld cannot decode is listed as a marker, not a 500 for all.
        let view = objects::view(kv, target.kind, target.version)?;
        if query.selector.matches(&view.labels) && query.fields.matches(&view.value) {
            items.push(view.value);
        }
    }
    if query.table {
        let table = super::table::table(
            target.kind,
            &items,
            Some(&listed.revision.to_string()),
            true,
            query.whole_object,
        );
        return Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            table.to_string() + "\n",
        )
            .into_response());
    }
    let list = json!({
        "apiVersion": target.version.api_version(),
        "kind": format!("{}List", target.kind.as_str()),
        "metadata": {"resourceVersion": listed.revision.to_string()},
        "items": items,
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        list.to_string() + "\n",
    )
        .into_response())
}

/// POST: create.
pub async fn create<S: Store>(
    app: &App<S>,
    target: &Target,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if target.kind.namespaced() && target.namespace.is_none() {
        return Err(ApiError::method_not_allowed(format!(
            "create {} inside a namespace: POST /apis/nanocl.io/{}/namespaces/NAMESPACE/{}",
            target.kind.plural(),
            target.version.name(),
            target.kind.plural()
        )));
    }
    if target.kind == nanocl_api_types::Kind::Replica {
        return Err(ApiError::method_not_allowed(
            "Replicas are created by nanocl's scheduler, one per slot of a Cargo: change the Cargo's replicas or placement instead",
        ));
    }
    let object = decode_body(target, headers, body).await?;
    let key = object.key();
    match create_any(&app.store, &object, query.dry_run).await {
        Ok(stored) => object_response(StatusCode::CREATED, &stored, target.version),
        Err(ObjectError::Store(StoreError::AlreadyExists { .. })) => Err(ApiError::already_exists(
            format!("{} already exists", described(target, &key.name)),
        )),
        Err(e) => Err(e.into()),
    }
}

fn required_revision(object: &AnyObject) -> Result<i64, ApiError> {
    let rv = object
        .metadata()
        .resource_version
        .as_deref()
        .ok_or_else(|| {
            ApiError::invalid(
                "metadata.resourceVersion is required to replace an object: read it first",
                vec![Cause {
                    field: "metadata.resourceVersion".into(),
                    message: "required".into(),
                }],
            )
        })?;
    // Revisions are positive: "-1" is malformed (400), not a stale version (409).
    rv.parse::<u64>()
        .ok()
        .and_then(|n| i64::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "metadata.resourceVersion {rv:?} is not one this server issued (a positive integer)"
            ))
        })
}

/// PUT: replace the object (not its status), if `metadata.resourceVersion` is current.
pub async fn replace<S: Store>(
    app: &App<S>,
    target: &Target,
    name: &str,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let object = decode_named_body(target, name, headers, body).await?;
    replace_decoded(app, target, name, query, object).await
}

/// PUT's work once the body is decoded (and a PATCH's, on the patched object).
pub async fn replace_decoded<S: Store>(
    app: &App<S>,
    target: &Target,
    name: &str,
    query: &Query,
    object: AnyObject,
) -> Result<Response, ApiError> {
    if object.metadata().name != name {
        return Err(ApiError::bad_request(format!(
            "the object's metadata.name {:?} does not match the name {name:?} in the path",
            object.metadata().name
        )));
    }
    let expected = required_revision(&object)?;
    let key = object_key(target, name);
    let mut current = objects::read(&app.store, &key)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{} not found", described(target, name))))?;
    // The precondition guards what a PUT writes: the spec and the metadata. A status written
    // since the caller's read (a controller reporting, several times a second while a cargo
    // scales) is no conflict: a PUT keeps the stored status anyway. Without this, `apply`
    // could lose every attempt to a cargo's own progress reports.
    let modified = |current: i64| {
        ApiError::conflict(format!(
            "{} has been modified (resourceVersion {current} is current, the request had {expected}); read it again and retry",
            described(target, name),
        ))
    };
    if current.revision != expected
        && !only_status_changed(&app.store, &key, expected, &current).await
    {
        return Err(modified(current.revision));
    }
    // The same holds for a status written between this read and the write.
    let mut attempts = 0;
    loop {
        immutable(target, name, &object, &current.object)?;
        let next = match lifecycle::replaced(&object, &current.object, current.revision)? {
            Replacement::Unchanged => {
                return object_response(StatusCode::OK, &current.object, target.version)
            }
            Replacement::Remove(last) => {
                // The last finalizer is gone: the object goes now.
                if !query.dry_run {
                    app.store
                        .delete(&keys::object_key(&key), Some(current.revision))
                        .await?;
                }
                return object_response(StatusCode::OK, &last, target.version);
            }
            Replacement::Store(next) => next,
        };
        // A change is checked like a creation: a rule's claims, a cargo's container policy
        // (an unchanged object, answered above, is not).
        crate::objects::admission::check_proxy_rule(&app.store, &next).await?;
        crate::objects::admission::check_policy(&app.store, &next).await?;
        if query.dry_run {
            return object_response(StatusCode::OK, &next, target.version);
        }
        let written = app
            .store
            .update(
                &keys::object_key(&key),
                objects::encode(&next)?,
                current.revision,
            )
            .await;
        match written {
            Ok(kv) => {
                return object_response(
                    StatusCode::OK,
                    &objects::decode(&kv)?.object,
                    target.version,
                )
            }
            Err(StoreError::Conflict {
                current: Some(fresh),
                ..
            }) if attempts < STATUS_RACES => {
                let fresh = objects::decode(&fresh)?;
                if !same_but_status(&current.object, &fresh.object) {
                    return Err(modified(fresh.revision));
                }
                attempts += 1;
                current = fresh;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// How many status writes landing between a PUT's read and its write are taken in stride
/// before it is answered with a conflict.
const STATUS_RACES: usize = 16;

/// The pauses between attempts lost to other writers of one object.
fn race_backoff() -> crate::backoff::Backoff {
    crate::backoff::Backoff::new(
        std::time::Duration::from_millis(1),
        std::time::Duration::from_millis(20),
    )
}

/// Before attempt `attempt` (0 the first): none for the first two, then a short pause that
/// grows, with jitter, so that writers racing in step with the store's commits (a reporter,
/// several) do not win every round against this one.
async fn race_pause(backoff: &mut crate::backoff::Backoff, attempt: usize) {
    if attempt > 1 {
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Whether the object at `key` differs from what it was at `revision` in its status only
/// (then a PUT made against `revision` is as good as one made against `current`). Read from
/// the store's history: a revision compacted away, or any doubt, answers false (a conflict,
/// as the strict precondition would).
async fn only_status_changed<S: Store>(
    store: &S,
    key: &ObjectKey,
    revision: i64,
    current: &Stored,
) -> bool {
    use futures::StreamExt;
    let stored_key = keys::object_key(key);
    if revision <= 0 || revision >= current.revision {
        return false;
    }
    let Ok(mut events) = store.watch(&stored_key, revision).await else {
        return false;
    };
    // The first change of this key after `revision` carries the value it replaced: the
    // one the caller read. (The watch is by prefix: other keys that start with this one are
    // passed over.) It is in the history already, so this waits for nothing new.
    let at_revision = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while let Some(Ok(event)) = events.next().await {
            match event {
                crate::store::WatchEvent::Put { kv, prev } if kv.key == stored_key => {
                    return prev.filter(|p| p.mod_revision == revision);
                }
                crate::store::WatchEvent::Delete { key, .. } if key == stored_key => return None,
                _ => {}
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    let Some(read) = at_revision.and_then(|kv| objects::decode(&kv).ok()) else {
        return false;
    };
    same_but_status(&read.object, &current.object)
}

/// Whether `a` and `b` are the same object but for their status (and `resourceVersion`).
fn same_but_status(a: &AnyObject, b: &AnyObject) -> bool {
    let Ok(mut a) = lifecycle::with_status_of(a, b) else {
        return false;
    };
    a.metadata_mut().resource_version = b.metadata().resource_version.clone();
    &a == b
}

/// Refuses a change Docker cannot make to what exists: a Network's cluster, driver,
/// `internal` and subnet are its Docker network's, fixed at creation. Refused here, named
/// field by field, rather than accepted and never carried out.
fn immutable(
    target: &Target,
    name: &str,
    next: &AnyObject,
    current: &AnyObject,
) -> Result<(), ApiError> {
    let (AnyObject::Network(new), AnyObject::Network(old)) = (next, current) else {
        return Ok(());
    };
    let changed = [
        ("spec.cluster", new.spec.cluster != old.spec.cluster),
        ("spec.driver", new.spec.driver != old.spec.driver),
        ("spec.internal", new.spec.internal != old.spec.internal),
        ("spec.subnet", new.spec.subnet != old.spec.subnet),
    ];
    let causes: Vec<Cause> = changed
        .iter()
        .filter(|(_, c)| *c)
        .map(|(field, _)| Cause {
            field: (*field).to_owned(),
            message: "immutable: Docker cannot change a network in place".to_owned(),
        })
        .collect();
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        format!(
            "{} cannot be changed in place: delete it and apply it again (the replicas on it are re-created on the new one)",
            described(target, name)
        ),
        causes,
    ))
}

/// Stores `next` if `expected` is still current, and answers with what was stored.
async fn write_and_respond<S: Store>(
    app: &App<S>,
    target: &Target,
    key: &ObjectKey,
    next: &AnyObject,
    expected: i64,
) -> Result<Response, ApiError> {
    let kv = app
        .store
        .update(&keys::object_key(key), objects::encode(next)?, expected)
        .await?;
    object_response(
        StatusCode::OK,
        &objects::decode(&kv)?.object,
        target.version,
    )
}

/// PUT /status: replace the status only; never bumps `generation`.
pub async fn replace_status<S: Store>(
    app: &App<S>,
    target: &Target,
    name: &str,
    query: &Query,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let object = decode_named_body(target, name, headers, body).await?;
    let key = object_key(target, name);
    let given = match &object.metadata().resource_version {
        Some(_) => Some(required_revision(&object)?),
        None => None,
    };
    let mut attempts = 0;
    let mut backoff = race_backoff();
    loop {
        let current = objects::read(&app.store, &key)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("{} not found", described(target, name))))?;
        let expected = given.unwrap_or(current.revision);
        if current.revision != expected {
            return Err(ApiError::conflict(format!(
                "{} has been modified (resourceVersion {} is current, the request had {expected})",
                described(target, name),
                current.revision
            )));
        }
        let next = lifecycle::with_status_of(&current.object, &object)?;
        if next == current.object || query.dry_run {
            return object_response(StatusCode::OK, &next, target.version);
        }
        match write_and_respond(app, target, &key, &next, expected).await {
            // Without a resourceVersion the status replaces whatever is current: a write
            // that landed between the read and this one is read again, not a conflict.
            Err(e)
                if given.is_none() && e.code == StatusCode::CONFLICT && attempts < STATUS_RACES =>
            {
                attempts += 1;
                race_pause(&mut backoff, attempts).await;
            }
            answer => return answer,
        }
    }
}

/// DELETE: with finalizers, marks the object (`deletionTimestamp`) and leaves it to its
/// controller; without, removes it. The request carries no precondition, so a write that
/// lands between our read and our write (a controller's status) is retried here, not
/// reported as a conflict: up to `STATUS_RACES` times, after a short random pause from the
/// second retry on, so that a reporter writing in step with the store's commits does not
/// win every round (a cargo of 50 replicas reporting as they started made 5 immediate
/// attempts all lose in the remove benchmark).
pub async fn delete<S: Store>(
    app: &App<S>,
    target: &Target,
    name: &str,
    query: &Query,
) -> Result<Response, ApiError> {
    let mut backoff = race_backoff();
    for attempt in 0..STATUS_RACES {
        race_pause(&mut backoff, attempt).await;
        match delete_once(app, target, name, query).await {
            Err(Retry) => continue,
            Ok(answer) => return answer,
        }
    }
    Err(ApiError::conflict(format!(
        "{} keeps changing; try again",
        described(target, name)
    )))
}

/// The object changed between read and write.
struct Retry;

/// DELETE of an object this nanocld cannot decode: no controller can run its finalizer
/// (none can read it), so it is removed at once, with its revision as precondition; the
/// garbage collector then removes its Docker objects, as for any deleted owner. A namespace
/// still holding objects is refused, as without finalizers.
async fn delete_undecodable<S: Store>(
    app: &App<S>,
    target: &Target,
    name: &str,
    query: &Query,
    kv: &crate::store::KeyValue,
) -> Result<Result<Response, ApiError>, Retry> {
    if let Err(e) = admission::check_delete(&app.store, &object_key(target, name), None).await {
        return Ok(Err(e.into()));
    }
    let view = match objects::view(kv, target.kind, target.version) {
        Ok(view) => view,
        Err(e) => return Ok(Err(e)),
    };
    if !query.dry_run {
        tracing::warn!(key = %kv.key, "deleting a stored object this nanocld cannot decode");
        if let Err(e) = retry_on_conflict(app.store.delete(&kv.key, Some(kv.mod_revision)).await)? {
            return Ok(Err(e));
        }
    }
    Ok(Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        view.value.to_string() + "\n",
    )
        .into_response()))
}

fn retry_on_conflict<T>(result: Result<T, StoreError>) -> Result<Result<T, ApiError>, Retry> {
    match result {
        Err(StoreError::Conflict { .. }) => Err(Retry),
        other => Ok(other.map_err(ApiError::from)),
    }
}

async fn delete_once<S: Store>(
    app: &App<S>,
    target: &Target,
    name: &str,
    query: &Query,
) -> Result<Result<Response, ApiError>, Retry> {
    let key = object_key(target, name);
    let kv = match app.store.get(&keys::object_key(&key)).await {
        Ok(Some(kv)) => kv,
        Ok(None) => {
            return Ok(Err(ApiError::not_found(format!(
                "{} not found",
                described(target, name)
            ))))
        }
        Err(e) => return Ok(Err(e.into())),
    };
    let Stored { object, .. } = match crate::objects::decode(&kv) {
        Ok(stored) => stored,
        Err(ObjectError::Undecodable { .. }) => {
            return delete_undecodable(app, target, name, query, &kv).await;
        }
        Err(e) => return Ok(Err(e.into())),
    };
    match delete_any(&app.store, &object, query.dry_run).await {
        Ok(now) => Ok(object_response(StatusCode::OK, &now, target.version)),
        Err(ObjectError::Store(StoreError::Conflict { .. })) => Err(Retry),
        Err(e) => Ok(Err(e.into())),
    }
}
