//! JSON Schemas for every kind and version, generated from the types with schemars.

use schemars::{schema_for, JsonSchema, Schema};
use serde_json::{json, Value};

use crate::object::{Kind, Version};
use crate::{cargo, cluster, namespace, network, node, proxy_rule, replica, secret};

fn finish<T: JsonSchema>(version: Version, kind: Kind) -> Value {
    let schema: Schema = schema_for!(T);
    let mut value = schema.to_value();
    if let Some(obj) = value.as_object_mut() {
        obj.insert(
            "$id".into(),
            json!(format!(
                "https://nanocl.io/schemas/{}/{}.json",
                version.name(),
                kind.as_str().to_ascii_lowercase()
            )),
        );
        obj.insert(
            "title".into(),
            json!(format!("{} ({})", kind.as_str(), version.api_version())),
        );
        if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
            if let Some(p) = props.get_mut("apiVersion").and_then(Value::as_object_mut) {
                p.insert("const".into(), json!(version.api_version()));
            }
            if let Some(p) = props.get_mut("kind").and_then(Value::as_object_mut) {
                p.insert("const".into(), json!(kind.as_str()));
            }
        }
    }
    value
}

/// The schema of `kind` in `version`, `None` when the kind is not served in it.
pub fn schema(version: Version, kind: Kind) -> Option<Value> {
    Some(match (version, kind) {
        (Version::V1, Kind::Namespace) => finish::<namespace::v1::Namespace>(version, kind),
        (Version::V1, Kind::Cluster) => finish::<cluster::v1::Cluster>(version, kind),
        (Version::V1, Kind::Network) => finish::<network::v1::Network>(version, kind),
        (Version::V1, Kind::Cargo) => finish::<cargo::v1::Cargo>(version, kind),
        (Version::V1alpha1, Kind::Namespace) => {
            finish::<namespace::v1alpha1::Namespace>(version, kind)
        }
        (Version::V1alpha1, Kind::Cluster) => finish::<cluster::v1alpha1::Cluster>(version, kind),
        (Version::V1alpha1, Kind::Network) => finish::<network::v1alpha1::Network>(version, kind),
        (Version::V1alpha1, Kind::Cargo) => finish::<cargo::v1alpha1::Cargo>(version, kind),
        (Version::V1, Kind::Node) => finish::<node::v1::Node>(version, kind),
        (Version::V1, Kind::Replica) => finish::<replica::v1::Replica>(version, kind),
        (Version::V1, Kind::Secret) => finish::<secret::v1::Secret>(version, kind),
        (Version::V1, Kind::ProxyRule) => finish::<proxy_rule::v1::ProxyRule>(version, kind),
        (Version::V1alpha1, Kind::Node | Kind::Replica | Kind::Secret | Kind::ProxyRule) => {
            return None
        }
    })
}

/// Every schema with its path under `manifests/`: `schemas/{version}/{kind}.json`.
pub fn all() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for version in Version::ALL {
        for kind in Kind::ALL {
            if let Some(schema) = schema(version, kind) {
                out.push((
                    format!(
                        "schemas/{}/{}.json",
                        version.name(),
                        kind.as_str().to_ascii_lowercase()
                    ),
                    schema,
                ));
            }
        }
    }
    out
}

/// Replaces `#/$defs/NAME` references with `#/components/schemas/{prefix}.NAME`.
fn rewrite_refs(value: &mut Value, prefix: &str) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref") {
                if let Some(name) = r.strip_prefix("#/$defs/") {
                    *r = format!("#/components/schemas/{prefix}.{name}");
                }
            }
            for v in map.values_mut() {
                rewrite_refs(v, prefix);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, prefix)),
        _ => {}
    }
}

fn status_response() -> Value {
    json!({
        "description": "Failure: a Status object with code, reason, message and field causes",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}
    })
}

fn object_response(reference: &str, description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": reference}}}
    })
}

/// The OpenAPI 3.1 document served at `/openapi/v3/apis/nanocl.io/{version}` (indexed at `/openapi/v3`) and written to `manifests/openapi.json`.
pub fn openapi() -> Value {
    let mut schemas = serde_json::Map::new();
    let mut paths = serde_json::Map::new();
    schemas.insert(
        "Status".into(),
        json!({
            "type": "object",
            "description": "An error: `{kind: Status, status: Failure, code, reason, message, details.causes[]}`.",
            "properties": {
                "kind": {"const": "Status"},
                "apiVersion": {"type": "string"},
                "status": {"const": "Failure"},
                "code": {"type": "integer"},
                "reason": {"type": "string", "description": "BadRequest, NotFound, AlreadyExists, Conflict, Expired, RequestEntityTooLarge, UnsupportedMediaType, Invalid, ServiceUnavailable, InternalError"},
                "message": {"type": "string"},
                "details": {"type": "object", "properties": {
                    "name": {"type": "string"}, "kind": {"type": "string"},
                    "causes": {"type": "array", "items": {"type": "object", "properties": {
                        "field": {"type": "string"}, "message": {"type": "string"}, "reason": {"type": "string"}
                    }}}
                }}
            }
        }),
    );
    let common_params = json!([
        {"name": "dryRun", "in": "query", "schema": {"enum": ["All"]}, "description": "Validate and default without storing (writes only)."}
    ]);
    let patch_params = json!([
        {"name": "dryRun", "in": "query", "schema": {"enum": ["All"]}, "description": "Validate and default without storing."},
        {"name": "fieldManager", "in": "query", "schema": {"type": "string"}, "description": "Who applies (server-side apply: required)."},
        {"name": "force", "in": "query", "schema": {"type": "boolean"}, "description": "Server-side apply: take over fields other managers applied."},
        {"name": "fieldValidation", "in": "query", "schema": {"enum": ["Strict", "Warn", "Ignore"]}, "description": "Accepted; nanocl always validates strictly (unknown fields are errors)."}
    ]);
    let list_params = json!([
        {"name": "labelSelector", "in": "query", "schema": {"type": "string"}, "description": "e.g. app=web,tier!=db"},
        {"name": "watch", "in": "query", "schema": {"type": "boolean"}, "description": "Stream newline-delimited JSON events {type, object}."},
        {"name": "resourceVersion", "in": "query", "schema": {"type": "string"}, "description": "With watch: the revision to resume after; 410 Gone when it is too old."}
    ]);
    for version in Version::ALL {
        for kind in Kind::ALL {
            let Some(mut schema) = self::schema(version, kind) else {
                continue;
            };
            let prefix = version.name();
            if let Some(Value::Object(defs)) =
                schema.as_object_mut().and_then(|o| o.remove("$defs"))
            {
                for (name, mut def) in defs {
                    rewrite_refs(&mut def, prefix);
                    schemas.insert(format!("{prefix}.{name}"), def);
                }
            }
            if let Some(obj) = schema.as_object_mut() {
                obj.remove("$schema");
                obj.remove("$id");
            }
            rewrite_refs(&mut schema, prefix);
            let name = format!("{prefix}.{}", kind.as_str());
            schemas.insert(name.clone(), schema);
            let reference = format!("#/components/schemas/{name}");
            let base = format!("/apis/nanocl.io/{}", version.name());
            let (collection, item) = if kind.namespaced() {
                (
                    format!("{base}/namespaces/{{namespace}}/{}", kind.plural()),
                    format!("{base}/namespaces/{{namespace}}/{}/{{name}}", kind.plural()),
                )
            } else {
                (
                    format!("{base}/{}", kind.plural()),
                    format!("{base}/{}/{{name}}", kind.plural()),
                )
            };
            let tag = format!("{} {}", kind.as_str(), version.name());
            let body = json!({"required": true, "content": {"application/json": {"schema": {"$ref": reference}}}});
            paths.insert(
                collection,
                json!({
                    "get": {"tags": [tag], "summary": format!("List or watch {}", kind.plural()), "parameters": list_params,
                            "responses": {"200": {"description": "A list ({kind}List) or, with watch=true, a stream of events"}, "default": status_response()}},
                    "post": {"tags": [tag], "summary": format!("Create a {}", kind.as_str()), "parameters": common_params, "requestBody": body,
                             "responses": {"201": object_response(&reference, "Created"), "default": status_response()}}
                }),
            );
            paths.insert(
                item.clone(),
                json!({
                    "get": {"tags": [tag], "summary": format!("Read a {}", kind.as_str()),
                            "responses": {"200": object_response(&reference, "The object"), "default": status_response()}},
                    "put": {"tags": [tag], "summary": format!("Replace a {} (metadata.resourceVersion must be current)", kind.as_str()), "parameters": common_params, "requestBody": body,
                            "responses": {"200": object_response(&reference, "Replaced"), "default": status_response()}},
                    "delete": {"tags": [tag], "summary": format!("Delete a {} (finalizers run first)", kind.as_str()), "parameters": common_params,
                               "responses": {"200": object_response(&reference, "Deleted, or marked for deletion"), "default": status_response()}},
                    "patch": {"tags": [tag], "summary": format!("Patch a {}: JSON merge patch, JSON patch, or server-side apply", kind.as_str()),
                              "parameters": patch_params,
                              "requestBody": {"required": true, "content": {
                                  "application/merge-patch+json": {"schema": {"type": "object"}},
                                  "application/json-patch+json": {"schema": {"type": "array", "items": {"type": "object"}}},
                                  "application/apply-patch+yaml": {"schema": {"$ref": reference}}}},
                              "responses": {"200": object_response(&reference, "Patched"), "201": object_response(&reference, "Created by an apply"), "default": status_response()},
                              "x-kubernetes-group-version-kind": {"group": crate::GROUP, "version": version.name(), "kind": kind.as_str()}}
                }),
            );
            paths.insert(
                format!("{item}/status"),
                json!({
                    "get": {"tags": [tag], "summary": format!("Read a {} with its status", kind.as_str()),
                            "responses": {"200": object_response(&reference, "The object"), "default": status_response()}},
                    "put": {"tags": [tag], "summary": format!("Replace the status of a {}", kind.as_str()), "requestBody": body,
                            "responses": {"200": object_response(&reference, "Updated"), "default": status_response()}}
                }),
            );
            if kind == Kind::Cargo {
                paths.insert(
                    format!("{item}/log"),
                    json!({"get": {"tags": [tag], "summary": "The output of every replica, each line prefixed with its replica ([web-0] ...)",
                                   "parameters": [
                                       {"name": "follow", "in": "query", "schema": {"type": "boolean"}, "description": "Keep streaming new output."},
                                       {"name": "tailLines", "in": "query", "schema": {"type": "integer", "minimum": 0}, "description": "Only the last N lines of each replica."},
                                       {"name": "sinceSeconds", "in": "query", "schema": {"type": "integer", "minimum": 0}, "description": "Only the output of the last N seconds."},
                                       {"name": "sinceTime", "in": "query", "schema": {"type": "string", "format": "date-time"}, "description": "Only the output written at or after this time."},
                                       {"name": "timestamps", "in": "query", "schema": {"type": "boolean"}, "description": "Each line starts with the time Docker received it."},
                                       {"name": "build", "in": "query", "schema": {"type": "boolean"}, "description": "The output of the cargo's latest image build instead."}
                                   ],
                                   "responses": {"200": {"description": "Text lines; with follow, the replicas that replace the ones listed are followed too, each change said in a `---` line", "content": {"text/plain": {}}}, "default": status_response()}}}),
                );
                paths.insert(
                    format!("{item}/usage"),
                    json!({"get": {"tags": [tag], "summary": "What each running replica uses now: CPU (cores, over half a second) and memory, read from Docker (nanocl top)",
                                   "responses": {"200": {"description": "A CargoUsage: items of slot, node, container, cpus, memoryBytes", "content": {"application/json": {}}}, "default": status_response()}}}),
                );
                paths.insert(
                    format!("{item}/exec"),
                    json!({"post": {"tags": [tag], "summary": "Run a command in a running replica, over a connection switched with Connection: Upgrade, Upgrade: nanocl-exec (frames: one type byte, a 4-byte big-endian length, the payload; the server ends with the exit code)",
                                   "parameters": [
                                       {"name": "command", "in": "query", "required": true, "schema": {"type": "string"}, "description": "The program, then each argument: repeated."},
                                       {"name": "replica", "in": "query", "schema": {"type": "integer", "minimum": 0}, "description": "The slot (default: the lowest running)."},
                                       {"name": "stdin", "in": "query", "schema": {"type": "boolean"}, "description": "The client's input reaches the command."},
                                       {"name": "tty", "in": "query", "schema": {"type": "boolean"}, "description": "A terminal for the command."},
                                       {"name": "rows", "in": "query", "schema": {"type": "integer", "minimum": 1}, "description": "The terminal's rows."},
                                       {"name": "cols", "in": "query", "schema": {"type": "integer", "minimum": 1}, "description": "The terminal's columns."}
                                   ],
                                   "responses": {"101": {"description": "Switched to nanocl-exec"}, "default": status_response()}}}),
                );
            }
            if kind.namespaced() {
                paths.insert(
                    format!("{base}/{}", kind.plural()),
                    json!({"get": {"tags": [tag], "summary": format!("List or watch {} in every namespace", kind.plural()), "parameters": list_params,
                                   "responses": {"200": {"description": "A list, or a stream of events"}, "default": status_response()}}}),
                );
            }
        }
    }
    for version in Version::ALL {
        let get = |summary: &str| {
            json!({"get": {"tags": ["Event"], "summary": summary, "parameters": list_params,
                           "responses": {"200": {"description": "An EventList, or with watch=true a stream of events"}, "default": status_response()}}})
        };
        paths.insert(
            format!(
                "/apis/nanocl.io/{}/namespaces/{{namespace}}/events",
                version.name()
            ),
            get("What the controllers did in a namespace (read-only)"),
        );
        paths.insert(
            format!("/apis/nanocl.io/{}/events", version.name()),
            get("What the controllers did, in every namespace (read-only)"),
        );
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "nanocl API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Served by nanocld on its unix socket (and optional loopback TCP). Group nanocl.io, versions v1 (storage) and v1alpha1."
        },
        "paths": paths,
        "components": {"schemas": schemas}
    })
}
