//! `nanocl describe`: one object for people: identity, spec, status and conditions.

use std::io::Write;

use anyhow::bail;
use hyper::{Method, StatusCode};
use nanocl_api_types::meta::DEFAULT_NAMESPACE;
use nanocl_api_types::Kind;
use serde_json::Value;

use crate::args::{Cli, DescribeArgs};
use crate::client::{Client, Host};
use crate::commands::get::{age, parse_kind, print_table};
use crate::{remote, yaml, Outcome};

fn pairs(map: &Value) -> String {
    match map.as_object() {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join("\n              "),
        _ => "<none>".into(),
    }
}

fn indented(value: &Value) -> String {
    yaml::to_string(value)
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect()
}

/// Runs `describe`.
pub async fn run(cli: &Cli, args: &DescribeArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let kind = parse_kind(&args.kind)?;
    let client = Client::new(Host::parse(cli.host.as_deref())?);
    let namespace = cli
        .namespace
        .clone()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    let path = format!(
        "{}/{}",
        remote::collection_path(kind, Some(&namespace)),
        args.name
    );
    let answer = client.request(Method::GET, &path, None).await?;
    if answer.status != StatusCode::OK {
        bail!("{}", answer.error_message());
    }
    let o = answer.json()?;
    let meta = &o["metadata"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    writeln!(out, "Name:         {}", s(&meta["name"]))?;
    if kind.namespaced() {
        writeln!(out, "Namespace:    {}", s(&meta["namespace"]))?;
    }
    writeln!(
        out,
        "Kind:         {} ({})",
        s(&o["kind"]),
        s(&o["apiVersion"])
    )?;
    writeln!(out, "Labels:       {}", pairs(&meta["labels"]))?;
    writeln!(out, "Annotations:  {}", pairs(&meta["annotations"]))?;
    writeln!(
        out,
        "Created:      {} ({} ago)",
        s(&meta["creationTimestamp"]),
        age(meta["creationTimestamp"].as_str())
    )?;
    if let Some(deleting) = meta["deletionTimestamp"].as_str() {
        writeln!(
            out,
            "Deleting:     since {deleting}, waiting for finalizers {}",
            meta["finalizers"]
        )?;
    }
    let generation = meta["generation"].as_i64().unwrap_or(0);
    if o["kind"] == "Node" || o["kind"] == "Replica" {
        // Nothing observes a Node's spec (its status is its nanocld's report), and a
        // Replica's status is its node's report.
        writeln!(out, "Generation:   {generation}")?;
    } else {
        let observed = o["status"]["observedGeneration"]
            .as_i64()
            .map_or("not yet observed".to_owned(), |g| format!("observed {g}"));
        writeln!(out, "Generation:   {generation} ({observed})")?;
    }
    writeln!(out, "Version:      {}", s(&meta["resourceVersion"]))?;
    writeln!(out, "Spec:")?;
    write!(out, "{}", indented(&o["spec"]))?;
    let mut status = o["status"].clone();
    let conditions = status
        .as_object_mut()
        .and_then(|m| m.remove("conditions"))
        .and_then(|c| c.as_array().cloned())
        .unwrap_or_default();
    if status.as_object().is_some_and(|m| !m.is_empty()) {
        writeln!(out, "Status:")?;
        write!(out, "{}", indented(&status))?;
    } else {
        writeln!(out, "Status:       <none yet>")?;
    }
    if conditions.is_empty() {
        writeln!(out, "Conditions:   <none>")?;
    } else {
        writeln!(out, "Conditions:")?;
        let rows: Vec<Vec<String>> = conditions
            .iter()
            .map(|c| {
                vec![
                    format!("  {}", s(&c["type"])),
                    s(&c["status"]),
                    s(&c["reason"]),
                    age(c["lastTransitionTime"].as_str()),
                    s(&c["message"]),
                ]
            })
            .collect();
        print_table(
            &["  TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"],
            &rows,
            out,
        )?;
    }
    if kind == Kind::Cargo {
        let replicas: Vec<Value> = crate::commands::get::replicas(&client, Some(&namespace))
            .await?
            .into_iter()
            .filter(|r| r["spec"]["cargo"] == meta["name"])
            .collect();
        if replicas.is_empty() {
            writeln!(out, "Replicas:     <none placed>")?;
        } else {
            writeln!(out, "Replicas:")?;
            let rows: Vec<Vec<String>> = replicas
                .iter()
                .map(|r| {
                    let st = &r["status"];
                    // A report from a node the replica has left says nothing of it.
                    let reported = st["node"] == r["spec"]["node"];
                    let phase = if r["metadata"].get("deletionTimestamp").is_some() {
                        "Terminating".to_owned()
                    } else if reported {
                        st["phase"].as_str().unwrap_or("Pending").to_owned()
                    } else {
                        "Pending".to_owned()
                    };
                    let shown = |v: &Value| {
                        if reported {
                            v.as_str().unwrap_or("").to_owned()
                        } else {
                            String::new()
                        }
                    };
                    vec![
                        format!("  {}", r["spec"]["slot"].as_u64().unwrap_or(0)),
                        s(&r["spec"]["node"]),
                        phase,
                        (reported && st["ready"].as_bool().unwrap_or(false)).to_string(),
                        shown(&st["container"]),
                        shown(&st["reason"]),
                    ]
                })
                .collect();
            print_table(
                &["  SLOT", "NODE", "PHASE", "READY", "CONTAINER", "REASON"],
                &rows,
                out,
            )?;
        }
    }
    Ok(Outcome::Success)
}
