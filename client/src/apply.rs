//! Applying one object (create, or update unless unchanged, retrying conflicts) and pruning an
//! applyset: shared by `nanocl apply`, `nanocl watch` and `nanocld --deploy-dir`.

use std::collections::HashSet;
use std::io::Write;

use hyper::{Method, StatusCode};
use nanocl_api_types::manifest::Manifest;
use nanocl_api_types::ObjectKey;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::remote::{self, display_key};
use crate::transport::Transport;

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
) -> Result<Applied> {
    let live = remote::get_live(client, &manifest.object.key()).await?;
    apply_from(client, manifest, dry_run, live).await
}

/// As `apply_one`, starting from `live` as read a moment ago (e.g. by one LIST for many
/// objects, `remote::live_objects`): an object already as desired costs no request. A 409
/// means it changed meanwhile, and is retried against a fresh GET.
pub async fn apply_from(
    client: &impl Transport,
    manifest: &Manifest,
    dry_run: bool,
    mut live: Option<Value>,
) -> Result<Applied> {
    let key = manifest.object.key();
    let suffix = if dry_run { "?dryRun=All" } else { "" };
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            live = remote::get_live(client, &key).await?;
        }
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
                // A Secret's live values are hidden: the server says how the file's would show.
                let compared = if key.kind == nanocl_api_types::Kind::Secret {
                    remote::desired_as_shown(client, &manifest.object, Some(live)).await?
                } else {
                    desired.clone()
                };
                if remote::without_server_fields(&compared) == remote::without_server_fields(live) {
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
                Error::Unavailable(message)
            } else {
                Error::Rejected(message)
            });
        }
    }
    Err(Error::ConflictsPersisted { attempts: ATTEMPTS })
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
) -> Result<bool> {
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
                )
                .map_err(|source| Error::Io {
                    what: "writing the prune report".into(),
                    source,
                })?;
                pruned.push(key);
            }
            Err(e) if e.is_unavailable() => return Err(e),
            Err(e) => {
                eprintln!("error: {e:#}");
                ok = false;
            }
        }
    }
    Ok(ok)
}
