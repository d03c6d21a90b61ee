//! `nanocl diff`: what `apply` would change, as a unified diff of live objects against the
//! files (server-set fields left out). Exit 0 none, 1 differences, 2 errors.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};

use nanocl_api_types::ObjectKey;
use serde_json::Value;
use similar::TextDiff;

use crate::args::{Cli, DiffArgs};
use crate::remote;
use crate::{yaml, Outcome};

fn path_label(key: &ObjectKey) -> String {
    match &key.namespace {
        Some(ns) => format!("{}/{ns}/{}", key.kind.plural(), key.name),
        None => format!("{}/{}", key.kind.plural(), key.name),
    }
}

/// Writes the unified diff of `live` → `desired` (either may be absent); true if they differ.
fn write_diff(
    key: &ObjectKey,
    live: Option<&Value>,
    desired: Option<&Value>,
    color: bool,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let old = live
        .map(|v| yaml::to_string(&remote::without_server_fields(v)))
        .unwrap_or_default();
    let new = desired
        .map(|v| yaml::to_string(&remote::without_server_fields(v)))
        .unwrap_or_default();
    if old == new {
        return Ok(false);
    }
    let label = path_label(key);
    let diff = TextDiff::from_lines(&old, &new);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(
            &if live.is_some() {
                format!("live/{label}")
            } else {
                "/dev/null".to_owned()
            },
            &if desired.is_some() {
                format!("files/{label}")
            } else {
                "/dev/null".to_owned()
            },
        )
        .to_string();
    for line in text.lines() {
        let painted = match (color, line.chars().next()) {
            (true, Some('+')) if !line.starts_with("+++") => format!("\x1b[32m{line}\x1b[0m"),
            (true, Some('-')) if !line.starts_with("---") => format!("\x1b[31m{line}\x1b[0m"),
            (true, Some('@')) => format!("\x1b[36m{line}\x1b[0m"),
            (true, _) if line.starts_with("+++") || line.starts_with("---") => {
                format!("\x1b[1m{line}\x1b[0m")
            }
            _ => line.to_owned(),
        };
        writeln!(out, "{painted}")?;
    }
    Ok(true)
}

/// Runs `diff`.
pub async fn run(cli: &Cli, args: &DiffArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let Some(crate::commands::Desired {
        manifests,
        applyset,
    }) = crate::commands::load_desired(cli, &args.files, &args.prune, "nothing was compared")?
    else {
        return Ok(Outcome::Failed);
    };
    let client = cli.client()?;
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut differs = false;
    let mut keys = HashSet::new();
    let keys_wanted: Vec<_> = manifests.iter().map(|m| m.object.key()).collect();
    let mut lives = remote::live_objects(&client, &keys_wanted).await?;
    for m in &manifests {
        let key = m.object.key();
        let live = lives.remove(&key);
        let desired = remote::desired_as_shown(&client, &m.object, live.as_ref()).await?;
        differs |= write_diff(&key, live.as_ref(), Some(&desired), color, out)?;
        keys.insert(key);
    }
    if let Some(name) = applyset {
        let objects: Vec<_> = manifests.iter().map(|m| &m.object).collect();
        let scope = remote::PruneScope::of(
            &objects,
            cli.namespace.as_deref(),
            args.prune.applyset.is_some(),
        );
        for live in remote::applyset_members(&client, &name, &scope).await? {
            let Some(key) = remote::key_of(&live) else {
                continue;
            };
            if !keys.contains(&key) {
                differs |= write_diff(&key, Some(&live), None, color, out)?;
            }
        }
    }
    Ok(if differs {
        Outcome::Differences
    } else {
        Outcome::Success
    })
}
