//! `nanocl apply`: validate everything first, then create or update each object, then prune.

use std::collections::HashSet;
use std::io::Write;

use anyhow::Context;
use nanocl_api_types::{ObjectKey, Version};

use crate::args::{ApplyArgs, Cli, DryRun};
use crate::commands::print_objects;
use crate::Outcome;
use nanocl_client::apply::{apply_from, prune};
use nanocl_client::remote::{self, display_key};

/// Runs `apply`.
pub async fn run(cli: &Cli, args: &ApplyArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let Some(crate::commands::Desired {
        manifests,
        applyset,
    }) = crate::commands::load_desired(cli, &args.files, &args.prune, "nothing was applied")?
    else {
        return Ok(Outcome::Failed);
    };

    if args.dry_run == DryRun::Client {
        match args.output {
            Some(output) => {
                let values = manifests
                    .iter()
                    .map(|m| m.object.to_version(Version::V1))
                    .collect::<Result<Vec<_>, _>>()
                    .context("failed to serialize an object")?;
                print_objects(&values, output, out)?;
            }
            None => {
                for m in &manifests {
                    writeln!(
                        out,
                        "{} valid (dry run: nothing applied)",
                        display_key(&m.object.key())
                    )?;
                }
            }
        }
        return Ok(Outcome::Success);
    }

    let client = cli.client()?;
    let dry_run = args.dry_run == DryRun::Server;
    let mut ok = true;
    let mut applied = HashSet::new();
    let mut pruned = Vec::new();
    // One LIST per collection, not one GET per file: a no-op re-apply of hundreds of objects
    // sends a handful of requests.
    let wanted: Vec<ObjectKey> = manifests.iter().map(|m| m.object.key()).collect();
    let mut live = remote::live_objects(&client, &wanted).await?;
    for m in &manifests {
        let key = m.object.key();
        match apply_from(&client, m, dry_run, live.remove(&key)).await {
            Ok(result) => {
                writeln!(
                    out,
                    "{} {}{}",
                    display_key(&key),
                    result.word(),
                    if dry_run { " (server dry run)" } else { "" }
                )?;
                applied.insert(key);
            }
            Err(e) => {
                if e.is_unavailable() {
                    return Err(e.into());
                }
                eprintln!("error: {} ({}:{}): {e:#}", display_key(&key), m.file, m.pos);
                ok = false;
                // Never prune what failed to apply.
                applied.insert(key);
            }
        }
    }
    if let Some(name) = applyset {
        if ok {
            let objects: Vec<_> = manifests.iter().map(|m| &m.object).collect();
            let scope = remote::PruneScope::of(
                &objects,
                cli.namespace.as_deref(),
                args.prune.applyset.is_some(),
            );
            ok = prune(&client, &name, &scope, &applied, dry_run, out, &mut pruned).await?;
        } else {
            eprintln!("error: some objects failed to apply: nothing was pruned");
        }
    }
    if ok && args.wait && !dry_run {
        let keys: Vec<ObjectKey> = manifests.iter().map(|m| m.object.key()).collect();
        let started = tokio::time::Instant::now();
        ok = crate::commands::wait::until_ready(&client, &keys, args.timeout, out).await?;
        if ok && !pruned.is_empty() {
            // Like kubectl: --wait also waits for what was pruned to be gone (its containers
            // removed by the controllers' finalizer).
            let left = args.timeout.saturating_sub(started.elapsed());
            ok = crate::commands::wait::until_gone(&client, &pruned, left, out).await?;
        }
    }
    Ok(if ok {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}
