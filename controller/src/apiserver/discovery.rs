//! Kubernetes API discovery, so kubectl and client libraries find nanocl's kinds: `/api`
//! (no core `v1` group: nanocl serves none of Kubernetes' own kinds), `/apis` (the
//! `nanocl.io` group, v1 preferred), `/apis/nanocl.io` and `/apis/nanocl.io/{version}` (the
//! kinds: plural, singular, short name, namespaced, verbs, subresources).
//!
//! Only the legacy (unaggregated) documents are served: clients asking for aggregated
//! discovery (`as=APIGroupDiscoveryList`) get `application/json` and fall back to them, as
//! client-go does.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use nanocl_api_types::{Kind, Version, GROUP};
use serde_json::{json, Value};

use super::status::ApiError;
use super::App;
use crate::store::Store;

fn answer(body: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string() + "\n",
    )
        .into_response()
}

fn group() -> Value {
    let versions: Vec<Value> = Version::ALL
        .iter()
        .map(|v| json!({"groupVersion": v.api_version(), "version": v.name()}))
        .collect();
    json!({
        "name": GROUP,
        "versions": versions,
        "preferredVersion": {"groupVersion": Version::V1.api_version(), "version": Version::V1.name()},
    })
}

/// `GET /api`: the core group's versions, none.
pub async fn core() -> Response {
    answer(json!({
        "kind": "APIVersions",
        "versions": [],
        "serverAddressByClientCIDRs": [],
    }))
}

/// `GET /apis`.
pub async fn groups() -> Response {
    answer(json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [group()],
    }))
}

/// `GET /apis/nanocl.io`.
pub async fn nanocl_group() -> Response {
    let mut g = group();
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    answer(g)
}

/// The verbs of a kind's objects.
const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// `GET /apis/nanocl.io/{version}`: the kinds served in that version.
pub async fn resources(Path(version): Path<String>) -> Response {
    let Some(version) = Version::ALL.into_iter().find(|v| v.name() == version) else {
        return ApiError::not_found(format!(
            "the nanocl.io group has no version {version:?}: served are v1 and v1alpha1"
        ))
        .into_response();
    };
    let mut list = Vec::new();
    for kind in Kind::ALL.into_iter().filter(|k| k.served_in(version)) {
        let verbs: Vec<&str> = VERBS
            .into_iter()
            .filter(|v| *v != "deletecollection")
            .collect();
        list.push(json!({
            "name": kind.plural(),
            "singularName": kind.as_str().to_ascii_lowercase(),
            "namespaced": kind.namespaced(),
            "kind": kind.as_str(),
            "verbs": verbs,
            "shortNames": [kind.short()],
            "categories": ["nanocl"],
        }));
        list.push(json!({
            "name": format!("{}/status", kind.plural()),
            "singularName": "",
            "namespaced": kind.namespaced(),
            "kind": kind.as_str(),
            "verbs": ["get", "update"],
        }));
        if kind == Kind::Cargo {
            list.push(json!({
                "name": "cargoes/log",
                "singularName": "",
                "namespaced": true,
                "kind": "Cargo",
                "verbs": ["get"],
            }));
        }
    }
    answer(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": version.api_version(),
        "resources": list,
    }))
}

/// `GET /api/v1/namespaces/{name}`: a nanocl Namespace in the shape of Kubernetes' own, read
/// only. kubectl asks for it after a NotFound, to tell "no such object" from "no such
/// namespace"; this is the one core `v1` path served.
pub async fn core_namespace<S: Store>(
    State(app): State<Arc<App<S>>>,
    Path(name): Path<String>,
) -> Response {
    let key = nanocl_api_types::ObjectKey {
        kind: Kind::Namespace,
        namespace: None,
        name: name.clone(),
    };
    match crate::objects::read(&app.store, &key).await {
        Ok(Some(stored)) => {
            let nanocl_api_types::AnyObject::Namespace(ns) = stored.object else {
                return ApiError::internal("a namespace key holds another kind").into_response();
            };
            let phase = if ns.metadata.deletion_timestamp.is_some() {
                "Terminating"
            } else {
                "Active"
            };
            answer(json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": ns.metadata.name,
                    "uid": ns.metadata.uid,
                    "resourceVersion": stored.revision.to_string(),
                    "creationTimestamp": ns.metadata.creation_timestamp,
                },
                "status": {"phase": phase},
            }))
        }
        Ok(None) => ApiError::not_found(format!("namespaces {name:?} not found")).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
