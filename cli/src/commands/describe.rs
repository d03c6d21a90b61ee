//! `nanocl describe`: one object for people: identity, spec, status and conditions.

use std::io::Write;

use anyhow::bail;
use hyper::{Method, StatusCode};
use nanocl_api_types::meta::DEFAULT_NAMESPACE;
use nanocl_api_types::Kind;
use serde_json::Value;

use crate::args::{Cli, DescribeArgs};
use crate::client::Client;
use crate::commands::get::{age, print_table};
use crate::commands::rollout::revision_status;
use crate::{remote, yaml, Outcome};
use nanocl_api_types::cargo::v1::CargoStatus;

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
    let (kind, objects) = crate::commands::named(&args.kind, &args.names)?;
    if objects.is_empty() {
        bail!(
            "give the {} to describe: NAME…, or TYPE/NAME…",
            kind.map_or("objects", |k| k.plural())
        );
    }
    let client = cli.client()?;
    let mut ok = true;
    for (i, (kind, name)) in objects.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        if let Err(e) = describe(cli, &client, *kind, name, out).await {
            out.flush()?;
            eprintln!("error: {e:#}");
            ok = false;
        }
    }
    Ok(if ok {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}

/// Describes one object.
async fn describe(
    cli: &Cli,
    client: &Client,
    kind: Kind,
    name: &str,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let namespace = cli.namespace_or_default();
    let path = format!(
        "{}/{}",
        remote::collection_path(kind, Some(&namespace)),
        name
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
    // A status this nanocl cannot read (another version's) just goes without these lines.
    let rollout: Option<CargoStatus> = (kind == Kind::Cargo)
        .then(|| serde_json::from_value(o["status"].clone()).ok())
        .flatten();
    if let Some(status) = &rollout {
        for line in rollout_summary(status) {
            writeln!(out, "{line}")?;
        }
    }
    if kind == Kind::Cargo && o["spec"]["autoscale"].is_object() {
        let a = &o["status"]["autoscale"];
        let decided = a["desiredReplicas"]
            .as_i64()
            .map_or("not yet decided".to_owned(), |n| format!("{n} replicas"));
        let why = match (a["reason"].as_str(), a["message"].as_str()) {
            (Some(r), Some(m)) => format!(", {r}: {m}"),
            (Some(r), None) => format!(", {r}"),
            _ => String::new(),
        };
        let last = a["lastScaleTime"].as_str().map_or(String::new(), |t| {
            format!(" (last scaled {} ago)", age(Some(t)))
        });
        writeln!(
            out,
            "Autoscale:    {} → {decided}{why}{last}",
            super::get::autoscale_column(&o)
        )?;
    }
    writeln!(out, "Spec:")?;
    write!(out, "{}", indented(&o["spec"]))?;
    let mut status = o["status"].clone();
    if kind == Kind::Cargo {
        // Each revision holds a whole container: the Revisions table below sums them up;
        // the build has its lines above.
        if let Some(m) = status.as_object_mut() {
            m.remove("revisions");
            m.remove("build");
        }
    }
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
        let replicas: Vec<Value> = crate::commands::get::replicas(client, Some(&namespace))
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
                        st["restarts"]
                            .as_u64()
                            .filter(|_| reported)
                            .unwrap_or(0)
                            .to_string(),
                        shown(&st["container"]),
                        shown(&st["reason"]),
                    ]
                })
                .collect();
            print_table(
                &[
                    "  SLOT",
                    "NODE",
                    "PHASE",
                    "READY",
                    "RESTARTS",
                    "CONTAINER",
                    "REASON",
                ],
                &rows,
                out,
            )?;
        }
    }
    if let Some(status) = &rollout {
        write_revisions(status, name, out)?;
    }
    write_events(client, kind, &namespace, name, out).await?;
    Ok(())
}

/// Events `describe` shows, the most recent last.
const RECENT_EVENTS: usize = 10;

/// `Events:` of the object (each distinct message a row), the most recent last.
async fn write_events(
    client: &Client,
    kind: Kind,
    namespace: &str,
    name: &str,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    // A Namespace's Events are kept in itself; a Node's in the default namespace.
    let events_namespace = match kind {
        Kind::Namespace => name.to_owned(),
        k if !k.namespaced() => DEFAULT_NAMESPACE.to_owned(),
        _ => namespace.to_owned(),
    };
    let Ok((events, _)) = super::events::list(client, Some(&events_namespace)).await else {
        // Events are informative: a describe without them is still a describe.
        return Ok(());
    };
    let mut rows: Vec<(String, Vec<String>)> = events
        .iter()
        .filter(|e| {
            e["involvedObject"]["kind"] == kind.as_str() && e["involvedObject"]["name"] == name
        })
        .flat_map(|e| {
            let messages = e["messages"].as_array().filter(|m| m.len() > 1);
            let times: Vec<String> = match messages {
                Some(m) => m
                    .iter()
                    .map(|m| m["lastTimestamp"].as_str().unwrap_or("").to_owned())
                    .collect(),
                None => vec![e["lastTimestamp"].as_str().unwrap_or("").to_owned()],
            };
            times
                .into_iter()
                .zip(super::events::rows(e, false, false))
                .collect::<Vec<_>>()
        })
        .collect();
    if rows.is_empty() {
        writeln!(out, "Events:       <none>")?;
        return Ok(());
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let start = rows.len().saturating_sub(RECENT_EVENTS);
    let rows: Vec<Vec<String>> = rows[start..]
        .iter()
        .map(|(_, r)| {
            let mut r = r.clone();
            if let Some(first) = r.first_mut() {
                *first = format!("  {first}");
            }
            r
        })
        .collect();
    writeln!(out, "Events:")?;
    print_table(&["  LAST SEEN", "TYPE", "REASON", "MESSAGE"], &rows, out)?;
    Ok(())
}

/// How many revisions `describe` lists; `rollout history` lists them all.
const RECENT_REVISIONS: usize = 5;

/// `Revision:` (current, and the one being rolled out when it differs) and `Rollout:` (phase
/// and message) of a cargo.
fn rollout_summary(status: &CargoStatus) -> Vec<String> {
    let mut lines = Vec::new();
    let current = status
        .current_revision
        .map_or("<none>".to_owned(), |c| c.to_string());
    match status.update_revision {
        None if status.current_revision.is_none() => {}
        Some(u) if status.current_revision != Some(u) => {
            lines.push(format!("Revision:     current {current}, updating {u}"));
        }
        _ => lines.push(format!("Revision:     current {current}")),
    }
    if let Some(r) = &status.rollout {
        if r.message.is_empty() {
            lines.push(format!("Rollout:      {}", r.phase));
        } else {
            lines.push(format!("Rollout:      {}: {}", r.phase, r.message));
        }
    }
    lines.extend(build_summary(status));
    lines
}

/// `Build:` (the latest build: phase, source, message), `Image:` (what the replicas run)
/// and, for a failed build, the last lines of its output.
fn build_summary(status: &CargoStatus) -> Vec<String> {
    let Some(b) = &status.build else {
        return Vec::new();
    };
    let source = match (&b.commit, &b.context_hash) {
        (Some(c), _) => format!(" of commit {}", &c[..c.len().min(12)]),
        (None, Some(h)) => format!(" of context {}", &h[..h.len().min(19)]),
        _ => String::new(),
    };
    let when = match (&b.started, &b.finished) {
        (_, Some(f)) => format!(" (finished {f})"),
        (Some(s), None) => format!(" (started {s})"),
        _ => String::new(),
    };
    let mut lines = vec![format!("Build:        {}{source}{when}", b.phase)];
    if !b.message.is_empty() {
        lines.push(format!("              {}", b.message));
    }
    if let Some(image) = &b.image {
        let id = b
            .image_id
            .as_deref()
            .map(|i| i.trim_start_matches("sha256:"))
            .map_or(String::new(), |i| format!(" ({})", &i[..i.len().min(12)]));
        lines.push(format!("Image:        {image}{id}"));
    }
    if !b.log.is_empty() {
        lines.push("Build output: (last lines)".to_owned());
        lines.extend(b.log.iter().map(|l| format!("  {l}")));
    }
    lines
}

/// The newest revisions, oldest first: number, change, status.
fn write_revisions(status: &CargoStatus, name: &str, out: &mut impl Write) -> anyhow::Result<()> {
    if status.revisions.is_empty() {
        return Ok(());
    }
    let skipped = status.revisions.len().saturating_sub(RECENT_REVISIONS);
    if skipped > 0 {
        writeln!(
            out,
            "Revisions:    (the last {RECENT_REVISIONS}; nanocl rollout history cargo {name} lists all {})",
            status.revisions.len()
        )?;
    } else {
        writeln!(out, "Revisions:")?;
    }
    let rows: Vec<Vec<String>> = status.revisions[skipped..]
        .iter()
        .map(|r| {
            vec![
                format!("  {}", r.revision),
                r.change.clone(),
                revision_status(status, r),
            ]
        })
        .collect();
    print_table(&["  REVISION", "CHANGE", "STATUS"], &rows, out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanocl_api_types::cargo::v1::{CargoRevision, RolloutStatus};

    fn status(current: Option<u32>, update: Option<u32>) -> CargoStatus {
        CargoStatus {
            current_revision: current,
            update_revision: update,
            rollout: update.map(|u| RolloutStatus {
                revision: u,
                phase: "Progressing".into(),
                message: format!("revision {u}: 1/2 replicas ready"),
                ..RolloutStatus::default()
            }),
            ..CargoStatus::default()
        }
    }

    #[test]
    fn the_summary_should_show_the_revision_being_rolled_out_and_the_phase() {
        assert_eq!(
            rollout_summary(&status(Some(2), Some(3))),
            [
                "Revision:     current 2, updating 3",
                "Rollout:      Progressing: revision 3: 1/2 replicas ready"
            ]
        );
        assert_eq!(
            rollout_summary(&status(Some(3), Some(3)))[0],
            "Revision:     current 3"
        );
        assert_eq!(
            rollout_summary(&status(None, Some(1)))[0],
            "Revision:     current <none>, updating 1"
        );
        assert!(rollout_summary(&status(None, None)).is_empty());
    }

    #[test]
    fn the_revisions_table_should_list_the_last_five() {
        let mut s = status(Some(6), Some(7));
        s.revisions = (1..=7)
            .map(|n| CargoRevision {
                revision: n,
                change: format!("env V{n}"),
                ..CargoRevision::default()
            })
            .collect();
        let mut out = Vec::new();
        write_revisions(&s, "web", &mut out).expect("written");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "Revisions:    (the last 5; nanocl rollout history cargo web lists all 7)\n  \
             REVISION   CHANGE   STATUS\n  \
             3          env V3\n  \
             4          env V4\n  \
             5          env V5\n  \
             6          env V6   current\n  \
             7          env V7   updating\n"
        );
    }
}
