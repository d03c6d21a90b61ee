//! `nanocl get`: tables, YAML, JSON or names; `-w` keeps printing changes.

use std::io::Write;

use anyhow::{anyhow, bail};
use hyper::{Method, StatusCode};
use nanocl_api_types::Kind;
use serde_json::Value;

use crate::args::{Cli, GetArgs, GetOutput, Output};
use crate::client::{Client, Lines};
use crate::commands::{object_name, print_objects};
use crate::remote;
use crate::Outcome;

/// The kind named on the command line, or an error listing the accepted names.
pub fn parse_kind(value: &str) -> anyhow::Result<Kind> {
    Kind::from_cli(value).ok_or_else(|| {
        anyhow!(
            "unknown kind {value:?}: use {}",
            Kind::ALL
                .iter()
                .map(|k| format!(
                    "{} ({}, {})",
                    k.as_str().to_ascii_lowercase(),
                    k.plural(),
                    k.short()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

pub use nanocl_client::table::{
    age, autoscale_column, bytes, node_status, revision_column, undecodable,
};
use nanocl_client::table::{header, row, Placed};

/// The width of each column of a table: its widest cell, header included.
pub fn table_widths(header: &[&str], rows: &[Vec<String>]) -> Vec<usize> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    widths
}

/// One row with its cells padded to `widths` (the last one as it is).
pub fn aligned_row(cells: &[String], widths: &[usize]) -> String {
    let last = cells.len().saturating_sub(1);
    cells
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i == last {
                c.clone()
            } else {
                format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0))
            }
        })
        .collect::<Vec<_>>()
        .join("   ")
        .trim_end()
        .to_owned()
}

/// Prints rows aligned under the header, kubectl style; the widths, for rows printed later
/// (`-w`) to line up with it.
pub fn print_table(
    header: &[&str],
    rows: &[Vec<String>],
    out: &mut impl Write,
) -> anyhow::Result<Vec<usize>> {
    let widths = table_widths(header, rows);
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    writeln!(out, "{}", aligned_row(&header, &widths))?;
    for r in rows {
        writeln!(out, "{}", aligned_row(r, &widths))?;
    }
    Ok(widths)
}

/// Prints objects; a table's column widths go to `widths`, and rows printed later with
/// `with_header: false` (a watch's) use them, so they line up with the header.
#[allow(
    clippy::too_many_arguments,
    reason = "one printer for lists and watch rows"
)]
fn print(
    kind: Kind,
    objects: &[Value],
    args: &GetArgs,
    all: bool,
    with_header: bool,
    placed: &Placed,
    widths: &mut Vec<usize>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match args.output {
        GetOutput::Table | GetOutput::Wide => {
            for o in objects {
                if let Some(message) = undecodable(o) {
                    let ns = o["metadata"]["namespace"].as_str().unwrap_or("");
                    let place = if ns.is_empty() {
                        String::new()
                    } else {
                        format!(" in namespace {ns}")
                    };
                    eprintln!("warning: {}{place}: {message}", object_name(o));
                }
            }
            let wide = args.output == GetOutput::Wide;
            let rows: Vec<Vec<String>> = objects
                .iter()
                .map(|o| row(kind, o, wide, all, placed))
                .collect();
            if with_header {
                *widths = print_table(&header(kind, wide, all), &rows, out)?;
            } else {
                // Rows of a watch: under the header printed first, without repeating it
                // (a wider cell pushes the columns after it, as kubectl's do).
                if widths.is_empty() {
                    *widths = table_widths(&header(kind, wide, all), &[]);
                }
                for r in rows {
                    writeln!(out, "{}", aligned_row(&r, widths))?;
                }
            }
            Ok(())
        }
        GetOutput::Yaml => print_objects(objects, Output::Yaml, out),
        GetOutput::Json => print_objects(objects, Output::Json, out),
        GetOutput::Name => {
            for o in objects {
                writeln!(out, "{}", object_name(o))?;
            }
            Ok(())
        }
    }
}

/// The Replicas in `namespace` (every namespace with `None`), by cargo and slot.
pub async fn replicas(client: &Client, namespace: Option<&str>) -> anyhow::Result<Vec<Value>> {
    let answer = client
        .request(
            Method::GET,
            &remote::collection_path(Kind::Replica, namespace),
            None,
        )
        .await?;
    if answer.status != StatusCode::OK {
        bail!("listing replicas: {}", answer.error_message());
    }
    let mut items = answer.json()?["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    items.sort_by_key(|r| {
        (
            r["spec"]["cargo"].as_str().unwrap_or("").to_owned(),
            r["spec"]["slot"].as_u64().unwrap_or(0),
        )
    });
    Ok(items)
}

/// Runs `get`.
pub async fn run(cli: &Cli, args: &GetArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let (kind, named) = crate::commands::named(&args.kind, &args.names)?;
    let Some(kind) = kind else {
        return get_typed(cli, args, &named, out).await;
    };
    let client = cli.client()?;
    let all = args.all_namespaces && kind.namespaced();
    let namespace = if all {
        None
    } else {
        Some(cli.namespace_or_default())
    };
    let collection = remote::collection_path(kind, namespace.as_deref());
    let mut query = Vec::new();
    if let Some(selector) = &args.selector {
        if !named.is_empty() {
            bail!("give NAMEs or -l SELECTOR, not both");
        }
        nanocl_api_types::selector::Selector::parse(selector).map_err(|e| anyhow!("-l: {e}"))?;
        query.push(format!("labelSelector={}", encode(selector)));
    }
    if all && !named.is_empty() {
        bail!("-A lists every namespace; to get objects by name, give their namespace with -n");
    }
    let mut missing = false;
    let (objects, revision) = if named.is_empty() {
        let path = if query.is_empty() {
            collection.clone()
        } else {
            format!("{collection}?{}", query.join("&"))
        };
        let answer = client.request(Method::GET, &path, None).await?;
        if answer.status != StatusCode::OK {
            bail!("{}", answer.error_message());
        }
        let list = answer.json()?;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        (
            items,
            list["metadata"]["resourceVersion"]
                .as_str()
                .map(str::to_owned),
        )
    } else {
        // As kubectl: what exists is printed, what does not is an error each (exit 1).
        let mut found = Vec::new();
        for (_, name) in &named {
            let answer = client
                .request(Method::GET, &format!("{collection}/{name}"), None)
                .await?;
            match answer.status {
                StatusCode::OK => found.push(answer.json()?),
                _ if named.len() == 1 => bail!("{}", answer.error_message()),
                _ => {
                    eprintln!("error: {}", answer.error_message());
                    missing = true;
                }
            }
        }
        if found.is_empty() {
            return Ok(Outcome::Failed);
        }
        (found, None)
    };
    if objects.is_empty() && !args.watch {
        match &namespace {
            Some(ns) if kind.namespaced() => {
                eprintln!("No {} found in namespace {ns}.", kind.plural())
            }
            _ => eprintln!("No {} found.", kind.plural()),
        }
        return Ok(Outcome::Success);
    }
    let placed = if matches!(kind, Kind::Cargo | Kind::ProxyRule) && args.output == GetOutput::Wide
    {
        Placed(replicas(&client, namespace.as_deref()).await?)
    } else {
        Placed::default()
    };
    let mut widths = Vec::new();
    print(kind, &objects, args, all, true, &placed, &mut widths, out)?;
    if !args.watch {
        return Ok(if missing {
            Outcome::Failed
        } else {
            Outcome::Success
        });
    }
    out.flush()?;
    query.push("watch=true".into());
    // Watch from the collection's revision, never from the object's own: an object that has
    // not changed for a while has a revision older than the history.
    let rv = match revision {
        Some(rv) => rv,
        None => {
            let answer = client.request(Method::GET, &collection, None).await?;
            if answer.status != StatusCode::OK {
                bail!("{}", answer.error_message());
            }
            answer.json()?["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("0")
                .to_owned()
        }
    };
    query.push(format!("resourceVersion={rv}"));
    let body = match client
        .stream(&format!("{collection}?{}", query.join("&")))
        .await?
    {
        Ok(body) => body,
        Err(answer) => bail!("{}", answer.error_message()),
    };
    let mut lines = Lines::new(body);
    while let Some(event) = lines.next().await? {
        match event["type"].as_str() {
            Some("ADDED" | "MODIFIED" | "DELETED") => {
                let object = &event["object"];
                if !named.is_empty() && !named.iter().any(|(_, n)| object["metadata"]["name"] == *n)
                {
                    continue;
                }
                print(
                    kind,
                    std::slice::from_ref(object),
                    args,
                    all,
                    false,
                    &placed,
                    &mut widths,
                    out,
                )?;
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

/// `get TYPE/NAME…`: each object, a table (or document) per kind in the order given.
async fn get_typed(
    cli: &Cli,
    args: &GetArgs,
    named: &[(Kind, String)],
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    if args.watch {
        bail!("-w watches one kind: nanocl get KIND [NAME…] -w");
    }
    if args.selector.is_some() {
        bail!("-l selects within one kind: give KIND -l SELECTOR, not TYPE/NAME");
    }
    let client = cli.client()?;
    let namespace = cli.namespace_or_default();
    let mut groups: Vec<(Kind, Vec<Value>)> = Vec::new();
    let mut ok = true;
    for (kind, name) in named {
        let path = format!(
            "{}/{name}",
            remote::collection_path(*kind, kind.namespaced().then_some(namespace.as_str()))
        );
        let answer = client.request(Method::GET, &path, None).await?;
        if answer.status != StatusCode::OK {
            eprintln!("error: {}", answer.error_message());
            ok = false;
            continue;
        }
        let object = answer.json()?;
        match groups.iter_mut().find(|(k, _)| k == kind) {
            Some((_, objects)) => objects.push(object),
            None => groups.push((*kind, vec![object])),
        }
    }
    match args.output {
        GetOutput::Table | GetOutput::Wide => {
            for (i, (kind, objects)) in groups.iter().enumerate() {
                if i > 0 {
                    writeln!(out)?;
                }
                let placed = if matches!(*kind, Kind::Cargo | Kind::ProxyRule)
                    && args.output == GetOutput::Wide
                {
                    Placed(replicas(&client, Some(&namespace)).await?)
                } else {
                    Placed::default()
                };
                print(
                    *kind,
                    objects,
                    args,
                    false,
                    true,
                    &placed,
                    &mut Vec::new(),
                    out,
                )?;
            }
        }
        _ => {
            let all: Vec<Value> = groups.into_iter().flat_map(|(_, o)| o).collect();
            if let Some(kind) = named.first().map(|(k, _)| *k) {
                print(
                    kind,
                    &all,
                    args,
                    false,
                    true,
                    &Placed::default(),
                    &mut Vec::new(),
                    out,
                )?;
            }
        }
    }
    Ok(if ok {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}

pub use nanocl_client::http::encode_query as encode;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_wide_cargo_row_should_line_up_with_its_header() {
        let cargo = json!({
            "kind": "Cargo",
            "metadata": {"name": "web", "namespace": "global", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"cluster": "dev", "replicas": 2, "container": {"image": "busybox:1.36"}},
            "status": {"readyReplicas": 2, "updatedReplicas": 1, "currentRevision": 2, "updateRevision": 3},
        });
        let replica = json!({
            "metadata": {"name": "web-0", "namespace": "global"},
            "spec": {"cargo": "web", "slot": 0, "node": "host-0"},
        });
        let placed = Placed(vec![replica]);
        let names = header(Kind::Cargo, true, false);
        let cells = row(Kind::Cargo, &cargo, true, false, &placed);
        assert_eq!(names.len(), cells.len(), "{names:?} {cells:?}");
        let cells: Vec<(&str, &str)> = names
            .iter()
            .copied()
            .zip(cells.iter().map(String::as_str))
            .collect();
        assert_eq!(
            &cells[..8],
            [
                ("NAME", "web"),
                ("CLUSTER", "dev"),
                ("READY", "2/2"),
                ("UP-TO-DATE", "1"),
                ("IMAGE", "busybox:1.36"),
                ("NETWORKS", "<default>"),
                ("NODES", "host-0:1"),
                ("REVISION", "2→3"),
            ]
        );
        assert_eq!(cells[8], ("AUTOSCALE", "<none>"));
        assert_eq!(cells[9].0, "AGE");
        assert!(cells[9].1.ends_with('d'), "{cells:?}");
        assert_eq!(
            header(Kind::Cargo, false, false),
            ["NAME", "CLUSTER", "READY", "UP-TO-DATE", "AGE"],
            "the narrow table is as it was"
        );
    }

    #[test]
    fn an_autoscaled_cargo_should_show_its_bounds_use_and_decided_count() {
        let cargo = json!({
            "kind": "Cargo",
            "metadata": {"name": "api", "namespace": "global"},
            "spec": {"cluster": "dev", "replicas": 3, "container": {"image": "busybox"},
                     "autoscale": {"minReplicas": 2, "maxReplicas": 6, "targetCPUUtilizationPercent": 60}},
            "status": {"readyReplicas": 5, "autoscale": {"desiredReplicas": 5, "currentCPUUtilizationPercent": 91}},
        });
        assert_eq!(autoscale_column(&cargo), "2-6 cpu 91%/60%");
        let cells = row(Kind::Cargo, &cargo, false, false, &Placed(Vec::new()));
        assert_eq!(cells[2], "5/5", "the autoscaler's count, not the spec's 3");
    }

    #[test]
    fn watch_rows_should_line_up_with_the_header() {
        use clap::Parser;
        let cli = crate::args::Cli::parse_from(["nanocl", "get", "cargo", "-w"]);
        let crate::args::Command::Get(args) = &cli.command else {
            panic!("get");
        };
        let cargo = |name: &str, cluster: &str| {
            json!({"kind": "Cargo", "metadata": {"name": name, "namespace": "global"},
                   "spec": {"cluster": cluster, "replicas": 1, "container": {"image": "busybox"}}})
        };
        let mut out = Vec::new();
        let mut widths = Vec::new();
        let listed = [cargo("a-long-name", "dev")];
        print(
            Kind::Cargo,
            &listed,
            args,
            false,
            true,
            &Placed::default(),
            &mut widths,
            &mut out,
        )
        .expect("table");
        let later = [cargo("b", "production")];
        print(
            Kind::Cargo,
            &later,
            args,
            false,
            false,
            &Placed::default(),
            &mut widths,
            &mut out,
        )
        .expect("row");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let column = |line: &str, cell: &str| line.find(cell).unwrap_or(usize::MAX);
        assert_eq!(
            column(lines[0], "CLUSTER"),
            column(lines[2], "production"),
            "{text}"
        );
        assert_eq!(
            column(lines[0], "CLUSTER"),
            column(lines[1], "dev"),
            "{text}"
        );
    }

    #[test]
    fn the_revision_column_should_show_the_update_in_progress() {
        let of = |status: Value| revision_column(&json!({ "status": status }));
        assert_eq!(of(json!({"currentRevision": 3, "updateRevision": 3})), "3");
        assert_eq!(
            of(json!({"currentRevision": 2, "updateRevision": 3})),
            "2→3"
        );
        assert_eq!(of(json!({"updateRevision": 1})), "→1");
        assert_eq!(of(json!({})), "<none>");
    }
}
