//! `nanocl apply`: validate everything first, then create or update each object, then prune.

use std::collections::HashSet;
use std::io::Write;

use anyhow::{bail, Context};
use hyper::{Method, StatusCode};
use nanocl_api_types::manifest::Manifest;
use nanocl_api_types::{ObjectKey, Version};

use crate::args::{ApplyArgs, Cli, DryRun};
use crate::client::{Client, Host};
use crate::commands::print_objects;
use crate::remote::{self, display_key};
use crate::transport::Transport;
use crate::Outcome;

/// What happened to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// It did not exist.
    Created,
    /// It existed and differed.
    Configured,
    /// It existed as written.
    Unchanged,
}

impl Applied {
    /// As printed: `created`, `configured`, `unchanged`.
    pub fn word(self) -> &'static str {
        match self {
            Applied::Created => "created",
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
        }
    }
}

/// Conflicts (someone else wrote in between) are retried against the fresh object this often.
const ATTEMPTS: usize = 10;

/// Creates or updates one object; a 409 is retried against the fresh live object.
pub async fn apply_one(
    client: &impl Transport,
    manifest: &Manifest,
    dry_run: bool,
) -> anyhow::Result<Applied> {
    let key = manifest.object.key();
    let suffix = if dry_run { "?dryRun=All" } else { "" };
    for _ in 0..ATTEMPTS {
        let live = remote::get_live(client, &key).await?;
        let desired = remote::desired(&manifest.object, live.as_ref())?;
        let answer = match &live {
            None => {
                let path = remote::collection_path(key.kind, key.namespace.as_deref()) + suffix;
                let answer = client.request(Method::POST, &path, Some(&desired)).await?;
                if answer.status == StatusCode::CREATED {
                    return Ok(Applied::Created);
                }
                answer
            }
            Some(live) => {
                if remote::without_server_fields(&desired) == remote::without_server_fields(live) {
                    return Ok(Applied::Unchanged);
                }
                let path = remote::item_path(&key) + suffix;
                let answer = client.request(Method::PUT, &path, Some(&desired)).await?;
                if answer.status == StatusCode::OK {
                    return Ok(Applied::Configured);
                }
                answer
            }
        };
        // Created, changed or deleted by someone else meanwhile: read again and retry.
        let retry = match answer.status {
            StatusCode::CONFLICT => answer
                .json()
                .is_ok_and(|v| v["reason"] == "AlreadyExists" || v["reason"] == "Conflict"),
            StatusCode::NOT_FOUND => live.is_some(),
            _ => false,
        };
        if !retry {
            let message = answer.error_message();
            return Err(if answer.status.is_server_error() {
                crate::transport::Unavailable(message).into()
            } else {
                anyhow::anyhow!(message)
            });
        }
    }
    bail!("gave up after {ATTEMPTS} conflicting writes; another writer keeps changing it")
}

/// Deletes the applyset's live objects that are not in `applied`.
pub async fn prune(
    client: &impl Transport,
    applyset: &str,
    scope: &remote::PruneScope,
    applied: &HashSet<ObjectKey>,
    dry_run: bool,
    out: &mut impl Write,
    pruned: &mut Vec<ObjectKey>,
) -> anyhow::Result<bool> {
    let mut ok = true;
    for live in remote::applyset_members(client, applyset, scope).await? {
        let Some(key) = remote::key_of(&live) else {
            continue;
        };
        if applied.contains(&key) {
            continue;
        }
        match remote::delete(client, &key, dry_run).await {
            Ok(()) => {
                writeln!(
                    out,
                    "{} pruned{}",
                    display_key(&key),
                    if dry_run { " (server dry run)" } else { "" }
                )?;
                pruned.push(key);
            }
            Err(e) if crate::transport::is_unavailable(&e) => return Err(e),
            Err(e) => {
                eprintln!("error: {e:#}");
                ok = false;
            }
        }
    }
    Ok(ok)
}

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

    let client = Client::new(Host::parse(cli.host.as_deref())?);
    let dry_run = args.dry_run == DryRun::Server;
    let mut ok = true;
    let mut applied = HashSet::new();
    let mut pruned = Vec::new();
    for m in &manifests {
        let key = m.object.key();
        match apply_one(&client, m, dry_run).await {
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
                if crate::transport::is_unavailable(&e) {
                    return Err(e);
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
