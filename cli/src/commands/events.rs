//! `nanocl events [-w] [-A]`, and the events of one object for `describe`.

use std::io::Write;

use anyhow::bail;
use hyper::{Method, StatusCode};
use serde_json::Value;

use crate::args::{Cli, EventsArgs};
use crate::client::{Client, Lines};
use crate::commands::get::{age, print_table};
use crate::Outcome;

fn path(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("/apis/nanocl.io/v1/namespaces/{ns}/events"),
        None => "/apis/nanocl.io/v1/events".to_owned(),
    }
}

/// The events of a namespace (or all), oldest first, and the list's revision.
pub async fn list(
    client: &Client,
    namespace: Option<&str>,
) -> anyhow::Result<(Vec<Value>, String)> {
    let answer = client.request(Method::GET, &path(namespace), None).await?;
    if answer.status != StatusCode::OK {
        bail!("{}", answer.error_message());
    }
    let list = answer.json()?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    Ok((
        items,
        list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("0")
            .to_owned(),
    ))
}

/// One table row of an event.
pub fn row(e: &Value, with_object: bool, with_namespace: bool) -> Vec<String> {
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let mut r = Vec::new();
    if with_namespace {
        r.push(s(&e["metadata"]["namespace"]));
    }
    r.push(age(e["lastTimestamp"].as_str()));
    r.push(s(&e["type"]));
    r.push(s(&e["reason"]));
    if with_object {
        r.push(format!(
            "{}/{}",
            s(&e["involvedObject"]["kind"]).to_ascii_lowercase(),
            s(&e["involvedObject"]["name"])
        ));
    }
    let count = e["count"].as_i64().unwrap_or(1);
    r.push(if count > 1 {
        format!("{} (x{count})", s(&e["message"]))
    } else {
        s(&e["message"])
    });
    r
}

/// The table rows of an event: one per distinct message, oldest first, each with its own
/// count and age (`removed container a (x2)`, `removed container b`).
pub fn rows(e: &Value, with_object: bool, with_namespace: bool) -> Vec<Vec<String>> {
    let messages = e["messages"].as_array().filter(|m| m.len() > 1);
    let Some(messages) = messages else {
        return vec![row(e, with_object, with_namespace)];
    };
    messages
        .iter()
        .map(|m| {
            let mut one = e.clone();
            one["message"] = m["message"].clone();
            one["count"] = m["count"].clone();
            one["lastTimestamp"] = m["lastTimestamp"].clone();
            row(&one, with_object, with_namespace)
        })
        .collect()
}

/// Runs `events`.
pub async fn run(cli: &Cli, args: &EventsArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let client = cli.client()?;
    let namespace = (!args.all_namespaces).then(|| cli.namespace_or_default());
    let (events, revision) = list(&client, namespace.as_deref()).await?;
    let all = args.all_namespaces;
    let mut header = Vec::new();
    if all {
        header.push("NAMESPACE");
    }
    header.extend(["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]);
    if events.is_empty() && !args.watch {
        eprintln!(
            "No events found{}.",
            namespace
                .map(|ns| format!(" in namespace {ns}"))
                .unwrap_or_default()
        );
        return Ok(Outcome::Success);
    }
    let rows: Vec<Vec<String>> = events.iter().flat_map(|e| rows(e, true, all)).collect();
    // Rows that come later line up with the table's columns.
    let widths = print_table(&header, &rows, out)?;
    if !args.watch {
        return Ok(Outcome::Success);
    }
    out.flush()?;
    let body = match client
        .stream(&format!(
            "{}?watch=true&resourceVersion={revision}",
            path(namespace.as_deref())
        ))
        .await?
    {
        Ok(body) => body,
        Err(answer) => bail!("{}", answer.error_message()),
    };
    let mut lines = Lines::new(body);
    while let Some(event) = lines.next().await? {
        match event["type"].as_str() {
            Some("ADDED" | "MODIFIED") => {
                // The latest message only: the earlier ones were printed as they came.
                let r = row(&event["object"], true, all);
                writeln!(out, "{}", crate::commands::get::aligned_row(&r, &widths))?;
                out.flush()?;
            }
            Some("ERROR") => bail!(
                "the watch ended: {}",
                event["object"]["message"].as_str().unwrap_or("")
            ),
            _ => {}
        }
    }
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_with_distinct_messages_should_be_one_row_each() {
        let e = json!({
            "type": "Normal", "reason": "ReplicaRemoved", "count": 3,
            "message": "removed container a",
            "involvedObject": {"kind": "Cargo", "name": "web"},
            "messages": [
                {"message": "removed container b", "count": 1, "lastTimestamp": "2026-12-03T00:00:00Z"},
                {"message": "removed container a", "count": 2, "lastTimestamp": "2026-12-03T00:00:01Z"}
            ]
        });
        let messages: Vec<String> = rows(&e, true, false)
            .into_iter()
            .map(|r| r.last().cloned().unwrap_or_default())
            .collect();
        assert_eq!(
            messages,
            ["removed container b", "removed container a (x2)"]
        );
        let single = json!({"type": "Normal", "reason": "R", "count": 1, "message": "m",
            "involvedObject": {"kind": "Cargo", "name": "web"}});
        assert_eq!(rows(&single, false, false).len(), 1);
    }
}
