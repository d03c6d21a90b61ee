//! `nanocl get`: tables, YAML, JSON or names; `-w` keeps printing changes.

use std::io::Write;
use std::time::SystemTime;

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

/// `5s`, `12m`, `3h`, `4d` since an RFC 3339 time.
pub fn age(timestamp: Option<&str>) -> String {
    let Some(t) = timestamp.and_then(|t| humantime::parse_rfc3339(t).ok()) else {
        return "<unknown>".into();
    };
    let secs = SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 120 * 60 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn header(kind: Kind, wide: bool, all_namespaces: bool) -> Vec<&'static str> {
    let mut h = Vec::new();
    if all_namespaces && kind.namespaced() {
        h.push("NAMESPACE");
    }
    h.push("NAME");
    match kind {
        Kind::Namespace => h.push("STATUS"),
        Kind::Cluster => h.extend(["VARIABLES", "READY"]),
        Kind::Secret => h.extend(["TYPE", "DATA"]),
        Kind::Network => {
            h.extend(["CLUSTER", "DRIVER"]);
            if wide {
                h.extend(["INTERNAL", "SUBNET"]);
            }
        }
        Kind::Replica => {
            h.extend(["CARGO", "SLOT", "NODE", "PHASE", "READY", "RESTARTS"]);
            if wide {
                h.extend(["CONTAINER", "HEALTH", "IMAGE", "REASON"]);
            }
        }
        Kind::Cargo => {
            h.extend(["CLUSTER", "READY", "UP-TO-DATE"]);
            if wide {
                h.extend(["IMAGE", "NETWORKS", "NODES", "REVISION", "AUTOSCALE"]);
            }
        }
        Kind::ProxyRule => {
            h.extend(["CLUSTER", "LISTENERS", "ROUTES"]);
            if wide {
                h.push("READY-BACKENDS");
            }
        }
        Kind::Node => {
            h.extend(["STATUS", "VERSION", "DOCKER"]);
            if wide {
                h.extend(["ADDRESSES", "CPUS", "MEMORY"]);
            }
        }
    }
    h.push("AGE");
    h
}

/// A node's status as `kubectl get nodes` shows it: `Ready`, `NotReady` or `Unknown`, and
/// `SchedulingDisabled` when cordoned.
pub fn node_status(o: &Value) -> String {
    let mut status = match condition(o, "Ready").and_then(|c| c["status"].as_str()) {
        Some("True") => "Ready".to_owned(),
        Some("False") => "NotReady".to_owned(),
        _ => "Unknown".to_owned(),
    };
    if o["spec"]["unschedulable"].as_bool() == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

/// Memory in bytes as `kubectl` would write it: `7.6Gi`, `512Mi`.
pub fn bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)];
    for (unit, size) in UNITS {
        if n >= size {
            #[allow(
                clippy::cast_precision_loss,
                reason = "a one-decimal display of a memory size"
            )]
            let value = n as f64 / size as f64;
            return format!("{value:.1}{unit}");
        }
    }
    n.to_string()
}

fn node_row(o: &Value, wide: bool, r: &mut Vec<String>) {
    let status = &o["status"];
    let text = |v: &Value| v.as_str().unwrap_or("<none>").to_owned();
    r.push(node_status(o));
    r.push(text(&status["nanoclVersion"]));
    r.push(text(&status["dockerVersion"]));
    if wide {
        let addresses: Vec<&str> = status["addresses"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        r.push(if addresses.is_empty() {
            "<none>".into()
        } else {
            addresses.join(",")
        });
        let capacity = &status["capacity"];
        r.push(
            capacity["cpus"]
                .as_u64()
                .map_or("<none>".into(), |c| c.to_string()),
        );
        r.push(
            capacity["memoryBytes"]
                .as_u64()
                .map_or("<none>".into(), bytes),
        );
    }
}

/// A ProxyRule's columns: its cluster, listeners (`127.0.0.1:80/http`), routes
/// (`shop.example.com/api→backend:8080`, `tcp:5432→db:5432`), and with `wide` the ready
/// replicas of each cargo it routes to.
fn proxy_rule_row(o: &Value, wide: bool, placed: &Placed, r: &mut Vec<String>) {
    let spec = &o["spec"];
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    r.push(spec["cluster"].as_str().unwrap_or("").to_owned());
    let listeners: Vec<String> = list(&spec["listeners"])
        .iter()
        .map(|l| {
            format!(
                "{}:{}/{}",
                l["hostIP"].as_str().unwrap_or("127.0.0.1"),
                l["port"],
                l["protocol"].as_str().unwrap_or("http")
            )
        })
        .collect();
    r.push(if listeners.is_empty() {
        "<none>".into()
    } else {
        listeners.join(",")
    });
    let mut cargoes: Vec<String> = Vec::new();
    let mut routes: Vec<String> = list(&spec["http"])
        .iter()
        .map(|h| {
            let (host, path) = (
                h["host"].as_str().unwrap_or("*"),
                h["path"].as_str().unwrap_or("/"),
            );
            if let Some(url) = h["redirect"]["url"].as_str() {
                return format!("{host}{path}→{url}");
            }
            let cargo = h["cargo"].as_str().unwrap_or("").to_owned();
            cargoes.push(cargo.clone());
            format!("{host}{path}→{cargo}:{}", h["port"])
        })
        .collect();
    routes.extend(list(&spec["tcp"]).iter().map(|t| {
        let cargo = t["cargo"].as_str().unwrap_or("").to_owned();
        cargoes.push(cargo.clone());
        format!("tcp:{}→{cargo}:{}", t["listener"], t["port"])
    }));
    r.push(if routes.is_empty() {
        "<none>".into()
    } else {
        routes.join(",")
    });
    if wide {
        cargoes.sort();
        cargoes.dedup();
        let ready: Vec<String> = cargoes
            .iter()
            .map(|c| format!("{c}:{}", placed.ready_of(o, c)))
            .collect();
        r.push(if ready.is_empty() {
            "<none>".into()
        } else {
            ready.join(",")
        });
    }
}

/// A cargo's revision for `get -o wide`: the current one, `N→M` while moving to M, `<none>`
/// before the first is recorded.
pub fn revision_column(o: &Value) -> String {
    let status = &o["status"];
    match (
        status["currentRevision"].as_u64(),
        status["updateRevision"].as_u64(),
    ) {
        (Some(c), Some(u)) if c != u => format!("{c}→{u}"),
        (Some(c), _) => c.to_string(),
        (None, Some(u)) => format!("→{u}"),
        (None, None) => "<none>".to_owned(),
    }
}

/// A cargo's autoscaler for `get -o wide`: `MIN-MAX` and each target's measured use against
/// it (`2-6 cpu 45%/60%`), `<none>` without `spec.autoscale`.
pub fn autoscale_column(o: &Value) -> String {
    let spec = &o["spec"]["autoscale"];
    if !spec.is_object() {
        return "<none>".to_owned();
    }
    let status = &o["status"]["autoscale"];
    let mut out = format!(
        "{}-{}",
        spec["minReplicas"].as_i64().unwrap_or(1),
        spec["maxReplicas"].as_i64().unwrap_or(0)
    );
    for (name, target, current) in [
        (
            "cpu",
            "targetCPUUtilizationPercent",
            "currentCPUUtilizationPercent",
        ),
        (
            "mem",
            "targetMemoryUtilizationPercent",
            "currentMemoryUtilizationPercent",
        ),
    ] {
        if let Some(t) = spec[target].as_i64() {
            let now = status[current]
                .as_i64()
                .map_or("?".to_owned(), |c| format!("{c}%"));
            out.push_str(&format!(" {name} {now}/{t}%"));
        }
    }
    out
}

fn row(kind: Kind, o: &Value, wide: bool, all_namespaces: bool, placed: &Placed) -> Vec<String> {
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let meta = &o["metadata"];
    let mut r = Vec::new();
    if all_namespaces && kind.namespaced() {
        r.push(s(&meta["namespace"]));
    }
    r.push(s(&meta["name"]));
    let ready = |o: &Value| condition(o, "Ready").map_or("Unknown".to_owned(), |c| s(&c["status"]));
    match kind {
        Kind::Node => node_row(o, wide, &mut r),
        Kind::Replica => {
            let st = &o["status"];
            // A report from a node the replica has left says nothing of it.
            let reported = st["node"] == o["spec"]["node"];
            r.push(s(&o["spec"]["cargo"]));
            r.push(o["spec"]["slot"].as_u64().unwrap_or(0).to_string());
            r.push(s(&o["spec"]["node"]));
            r.push(if meta.get("deletionTimestamp").is_some() {
                "Terminating".to_owned()
            } else if reported {
                st["phase"].as_str().unwrap_or("Pending").to_owned()
            } else {
                "Pending".to_owned()
            });
            r.push((reported && st["ready"].as_bool().unwrap_or(false)).to_string());
            r.push(
                st["restarts"]
                    .as_u64()
                    .filter(|_| reported)
                    .unwrap_or(0)
                    .to_string(),
            );
            if wide {
                let shown = |field: &str, none: &str| {
                    st[field]
                        .as_str()
                        .filter(|_| reported)
                        .unwrap_or(none)
                        .to_owned()
                };
                r.push(shown("container", "<none>"));
                r.push(shown("health", "<none>"));
                r.push(shown("image", "<none>"));
                r.push(
                    st["reason"]
                        .as_str()
                        .filter(|_| reported)
                        .unwrap_or("")
                        .to_owned(),
                );
            }
        }
        Kind::Namespace => r.push(if meta.get("deletionTimestamp").is_some() {
            "Terminating".into()
        } else {
            o["status"]["phase"].as_str().unwrap_or("Active").to_owned()
        }),
        Kind::Cluster => {
            r.push(
                o["spec"]["variables"]
                    .as_object()
                    .map_or(0, |m| m.len())
                    .to_string(),
            );
            r.push(ready(o));
        }
        Kind::ProxyRule => proxy_rule_row(o, wide, placed, &mut r),
        Kind::Secret => {
            r.push(o["spec"]["type"].as_str().unwrap_or("opaque").to_owned());
            r.push(
                o["spec"]["data"]
                    .as_object()
                    .map_or(0, |m| m.len())
                    .to_string(),
            );
        }
        Kind::Network => {
            r.push(s(&o["spec"]["cluster"]));
            r.push(s(&o["spec"]["driver"]));
            if wide {
                r.push(o["spec"]["internal"].as_bool().unwrap_or(false).to_string());
                r.push(o["spec"]["subnet"].as_str().unwrap_or("<auto>").to_owned());
            }
        }
        Kind::Cargo => {
            r.push(s(&o["spec"]["cluster"]));
            // With autoscale, what the autoscaler decided (the spec's count only started it).
            let desired = o["status"]["autoscale"]["desiredReplicas"]
                .as_i64()
                .filter(|_| o["spec"].get("autoscale").is_some())
                .unwrap_or_else(|| o["spec"]["replicas"].as_i64().unwrap_or(1));
            r.push(format!(
                "{}/{desired}",
                o["status"]["readyReplicas"].as_i64().unwrap_or(0)
            ));
            r.push(
                o["status"]["updatedReplicas"]
                    .as_i64()
                    .unwrap_or(0)
                    .to_string(),
            );
            if wide {
                // A built cargo's: the image its last build made.
                r.push(match o["spec"]["container"]["image"].as_str() {
                    Some(image) if !image.is_empty() => image.to_owned(),
                    _ => o["status"]["build"]["image"]
                        .as_str()
                        .unwrap_or("<building>")
                        .to_owned(),
                });
                let nets: Vec<String> = o["spec"]["networks"]
                    .as_array()
                    .map(|a| a.iter().map(s).collect())
                    .unwrap_or_default();
                r.push(if nets.is_empty() {
                    "<default>".into()
                } else {
                    nets.join(",")
                });
                r.push(placed.nodes_of(o));
                r.push(revision_column(o));
                r.push(autoscale_column(o));
            }
        }
    }
    if undecodable(o).is_some() {
        // nanocld cannot decode it: its spec columns mean nothing; say so in the first.
        let first = usize::from(all_namespaces && kind.namespaced()) + 1;
        for (i, cell) in r.iter_mut().enumerate().skip(first) {
            *cell = if i == first {
                "<undecodable>".to_owned()
            } else {
                String::new()
            };
        }
    }
    r.push(age(meta["creationTimestamp"].as_str()));
    r
}

/// What nanocld says of an object it cannot decode (its list marker), if it is one.
pub fn undecodable(object: &Value) -> Option<&str> {
    let ready = condition(object, "Ready")?;
    (ready["reason"] == "Undecodable").then(|| ready["message"].as_str().unwrap_or(""))
}

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

/// The Replicas of a namespace (or all), for the nodes of cargoes.
#[derive(Default)]
struct Placed(Vec<Value>);

impl Placed {
    /// How many replicas of cargo `cargo` (in `o`'s namespace) the proxy sends traffic to.
    fn ready_of(&self, o: &Value, cargo: &str) -> usize {
        self.0
            .iter()
            .filter(|r| {
                r["spec"]["cargo"] == cargo
                    && r["metadata"]["namespace"] == o["metadata"]["namespace"]
                    && r["status"]["serving"].is_string()
                    && r["status"]["node"] == r["spec"]["node"]
            })
            .count()
    }

    /// `host-0:2,host-1:1`: how many replicas of cargo `o` each node has, `<none>` without.
    fn nodes_of(&self, o: &Value) -> String {
        let mut count: std::collections::BTreeMap<&str, usize> = Default::default();
        for r in &self.0 {
            if r["spec"]["cargo"] == o["metadata"]["name"]
                && r["metadata"]["namespace"] == o["metadata"]["namespace"]
                && r["metadata"].get("deletionTimestamp").is_none()
            {
                *count
                    .entry(r["spec"]["node"].as_str().unwrap_or(""))
                    .or_default() += 1;
            }
        }
        if count.is_empty() {
            return "<none>".to_owned();
        }
        count
            .iter()
            .map(|(node, n)| format!("{node}:{n}"))
            .collect::<Vec<_>>()
            .join(",")
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
