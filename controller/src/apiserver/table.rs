//! kubectl's Table answers: a list, an object or a watch event asked for with
//! `Accept: application/json;as=Table;g=meta.k8s.io;v=v1` comes as a `meta.k8s.io/v1` Table
//! whose columns are `nanocl get`'s (`nanocl_client::table`, one definition for both; the
//! `-o wide` ones at priority 1, which `kubectl get -o wide` shows).

use axum::http::{header, HeaderMap};
use nanocl_api_types::Kind;
use nanocl_client::table::{header as columns, row, Placed};
use serde_json::{json, Value};

/// Whether the client asked for a Table.
pub fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io")
        })
}

/// `Up-to-date` for `UP-TO-DATE`: how Kubernetes writes column names.
fn title(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let mut chars = lower.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// The column definitions of `kind`.
fn definitions(kind: Kind) -> Vec<Value> {
    let narrow = columns(kind, false, false);
    columns(kind, true, false)
        .into_iter()
        .map(|name| {
            json!({
                "name": title(name),
                "type": "string",
                "format": if name == "NAME" { "name" } else { "" },
                "description": "",
                "priority": if narrow.contains(&name) { 0 } else { 1 },
            })
        })
        .collect()
}

/// A Table of `objects` (of `kind`), at `resource_version`; `with_columns` false leaves the
/// definitions out (the watch events after the first). Each row carries the object's
/// metadata, or the whole object when `whole`.
pub fn table(
    kind: Kind,
    objects: &[Value],
    resource_version: Option<&str>,
    with_columns: bool,
    whole: bool,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let object = if whole {
                o.clone()
            } else {
                json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o["metadata"],
                })
            };
            json!({
                "cells": row(kind, o, true, false, &Placed::default()),
                "object": object,
            })
        })
        .collect();
    let mut table = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": if with_columns { definitions(kind) } else { Vec::new() },
        "rows": rows,
    });
    if let Some(rv) = resource_version {
        table["metadata"]["resourceVersion"] = json!(rv);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cargo_table_should_have_get_s_columns_and_cells() {
        let cargo = json!({
            "apiVersion": "nanocl.io/v1", "kind": "Cargo",
            "metadata": {"name": "web", "namespace": "shop", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"cluster": "dev", "replicas": 2, "container": {"image": "busybox"}},
            "status": {"readyReplicas": 1, "updatedReplicas": 2},
        });
        let t = table(Kind::Cargo, &[cargo], Some("42"), true, false);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["priority"] == 0)
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["Name", "Cluster", "Ready", "Up-to-date", "Age"]);
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[0], "web");
        assert_eq!(cells[2], "1/2");
        assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "shop");
        assert_eq!(t["metadata"]["resourceVersion"], "42");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
                .parse()
                .expect("header"),
        );
        assert!(wanted(&headers));
    }
}
