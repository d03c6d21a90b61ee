//! `nanocl rollout status cargo NAME`: follows the cargo on the watch API until its rollout
//! completes (exit 0), fails (exit 1) or the time is up (exit 1), a line per step.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::anyhow;
use nanocl_api_types::cargo::v1::CargoStatus;
use nanocl_api_types::{Kind, ObjectKey};
use serde_json::Value;

use crate::args::{Cli, RolloutStatusArgs};
use crate::client::Client;
use crate::commands::rollout::{cargo_key, cargo_status, command_for, get_cargo};
use crate::commands::wait;
use crate::remote::display_key;
use crate::Outcome;

/// Where a rollout stands, as `rollout status` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Every replica runs the spec's revision, ready.
    Complete {
        /// That revision.
        revision: u32,
    },
    /// The spec's update failed: rolled back, or stopped (autoRollback false).
    Failed {
        /// The controller's account of it.
        message: String,
    },
    /// Paused by `nanocl rollout pause`: nothing moves until `resume`.
    Paused,
    /// Still going: what it waits for, as printed.
    Waiting(String),
}

/// Where the rollout of a cargo at `generation`, asking for `want` replicas, stands by its
/// status. Nothing counts until the controller has seen the latest spec (`observedGeneration`),
/// so a `status` run right after an `apply` never reports the previous rollout's end.
pub fn progress(generation: i64, want: u32, status: &CargoStatus) -> Progress {
    let waiting =
        |what: String| Progress::Waiting(format!("Waiting for rollout to finish: {what}..."));
    if status.observed_generation.unwrap_or(0) < generation {
        return waiting("the latest change is not observed by the controller yet".into());
    }
    let Some(rollout) = &status.rollout else {
        return waiting("no rollout recorded yet".into());
    };
    match rollout.phase.as_str() {
        "Complete" if Some(rollout.revision) == status.update_revision => Progress::Complete {
            revision: rollout.revision,
        },
        "RolledBack" | "Failed" => Progress::Failed {
            message: if rollout.message.is_empty() {
                format!("phase {}", rollout.phase)
            } else {
                rollout.message.clone()
            },
        },
        "Paused" => Progress::Paused,
        "RollingBack" => waiting(format!("rolling back to revision {}", rollout.revision)),
        _ => {
            // As kubectl counts: new replicas created, old ones gone, new ones ready.
            let updated = u32::try_from(status.updated_replicas).unwrap_or(0);
            let total = u32::try_from(status.replicas).unwrap_or(0);
            if updated < want {
                waiting(format!(
                    "{updated} out of {want} new replicas have been updated"
                ))
            } else if total > updated {
                waiting(format!(
                    "{} old replicas are pending termination",
                    total - updated
                ))
            } else {
                waiting(format!(
                    "{} of {updated} updated replicas are ready",
                    rollout.ready.min(updated)
                ))
            }
        }
    }
}

/// [`progress`] of a live cargo, whose env uses the cluster variables `variables` (their
/// values when `status` started, absent ones left out).
fn progress_of(
    live: &Value,
    key: &ObjectKey,
    variables: &BTreeMap<String, Option<String>>,
) -> anyhow::Result<Progress> {
    let generation = live["metadata"]["generation"].as_i64().unwrap_or(0);
    let status = cargo_status(live, key)?;
    // With autoscale, the count the autoscaler decided.
    let want = status
        .autoscale
        .as_ref()
        .filter(|_| live["spec"].get("autoscale").is_some())
        .and_then(|a| u32::try_from(a.desired_replicas).ok())
        .or_else(|| {
            live["spec"]["replicas"]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
        })
        .unwrap_or(1);
    if let Some(entry) = status
        .revisions
        .iter()
        .find(|r| Some(r.revision) == status.update_revision)
    {
        // A change of the cluster's variables does not change the cargo's generation: its
        // revision records the values it was made with.
        if variables
            .iter()
            .any(|(name, value)| entry.variables.get(name) != value.as_ref())
        {
            return Ok(Progress::Waiting(
                "Waiting for rollout to finish: the cluster's variables are not observed by the controller yet..."
                    .into(),
            ));
        }
    }
    Ok(progress(generation, want, &status))
}

/// The cluster variables a cargo's env uses, with their values in its cluster now.
async fn used_variables(
    client: &Client,
    key: &ObjectKey,
    cargo: &Value,
) -> BTreeMap<String, Option<String>> {
    let mut names: Vec<String> = cargo["spec"]["container"]["env"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, v)| v.as_str())
        .filter_map(|v| nanocl_api_types::template::references(v).ok())
        .flatten()
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return BTreeMap::new();
    }
    let cluster = ObjectKey {
        kind: Kind::Cluster,
        namespace: key.namespace.clone(),
        name: cargo["spec"]["cluster"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    };
    let live = crate::remote::get_live(client, &cluster)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    names
        .into_iter()
        .map(|n| {
            let value = live["spec"]["variables"][&n].as_str().map(str::to_owned);
            (n, value)
        })
        .collect()
}

/// Runs `rollout status`.
pub async fn run(
    cli: &Cli,
    args: &RolloutStatusArgs,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let key = cargo_key(cli, &args.target, "status")?;
    let client = cli.client()?;
    // A missing cargo is an error now, not something to wait for.
    let cargo = get_cargo(&client, &key).await?;
    let variables = used_variables(&client, &key, &cargo).await;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let follower = tokio::spawn(wait::follow(
        client.clone(),
        Kind::Cargo,
        key.namespace.clone(),
        vec![key.name.clone()],
        tx,
    ));
    let outcome = report(&key, rx, args.timeout, &variables, out).await;
    follower.abort();
    outcome
}

/// Prints what the followed cargo does until its rollout ends or `timeout` (0: none) passes.
async fn report(
    key: &ObjectKey,
    mut seen: tokio::sync::mpsc::UnboundedReceiver<anyhow::Result<wait::Seen>>,
    timeout: Duration,
    variables: &BTreeMap<String, Option<String>>,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let deadline = (!timeout.is_zero()).then(|| tokio::time::Instant::now() + timeout);
    let name = display_key(key);
    let mut last: Option<Progress> = None;
    loop {
        let next = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, seen.recv()).await,
            None => Ok(seen.recv().await),
        };
        let live = match next {
            Err(_) => {
                let so_far = match &last {
                    Some(Progress::Waiting(line)) => format!(
                        " (last: {})",
                        line.trim_start_matches("Waiting for rollout to finish: ")
                            .trim_end_matches("...")
                    ),
                    Some(Progress::Paused) => " (it is paused)".to_owned(),
                    _ => String::new(),
                };
                eprintln!(
                    "error: timed out after {} waiting for the rollout of {name} to finish{so_far}",
                    humantime::format_duration(timeout)
                );
                return Ok(Outcome::Failed);
            }
            Ok(None) => return Err(anyhow!("the watch of {name} ended")),
            Ok(Some(Err(e))) => return Err(e),
            Ok(Some(Ok((_, None)))) => {
                return Err(anyhow!("{name} was deleted before its rollout finished"))
            }
            Ok(Some(Ok((_, Some(live))))) => live,
        };
        let now = progress_of(&live, key, variables)?;
        if last.as_ref() == Some(&now) {
            continue;
        }
        match &now {
            Progress::Complete { revision } => {
                writeln!(out, "{name} successfully rolled out (revision {revision})")?;
                return Ok(Outcome::Success);
            }
            Progress::Failed { message } => {
                out.flush()?;
                eprintln!("error: rollout of {name} failed: {message}");
                return Ok(Outcome::Failed);
            }
            Progress::Paused => writeln!(
                out,
                "Rollout of {name} is paused ({})",
                command_for(key, "resume")
            )?,
            Progress::Waiting(line) => writeln!(out, "{line}")?,
        }
        out.flush()?;
        last = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanocl_api_types::cargo::v1::RolloutStatus;

    fn status(phase: &str, revision: u32, update: u32) -> CargoStatus {
        CargoStatus {
            observed_generation: Some(2),
            replicas: 6,
            updated_replicas: 6,
            current_revision: Some(1),
            update_revision: Some(update),
            rollout: Some(RolloutStatus {
                revision,
                phase: phase.to_owned(),
                ready: 2,
                message: format!("{phase} message"),
                ..RolloutStatus::default()
            }),
            ..CargoStatus::default()
        }
    }

    #[test]
    fn a_change_not_yet_observed_should_be_waited_for_whatever_the_last_rollout_said() {
        let s = status("Complete", 1, 1);
        assert_eq!(
            progress(3, 6, &s),
            Progress::Waiting(
                "Waiting for rollout to finish: the latest change is not observed by the controller yet..."
                    .into()
            )
        );
        assert_eq!(progress(2, 6, &s), Progress::Complete { revision: 1 });
    }

    #[test]
    fn complete_should_count_only_for_the_spec_revision() {
        assert_eq!(
            progress(2, 6, &status("Complete", 2, 2)),
            Progress::Complete { revision: 2 }
        );
        assert!(matches!(
            progress(2, 6, &status("Complete", 1, 2)),
            Progress::Waiting(_)
        ));
    }

    #[test]
    fn rolled_back_and_failed_should_fail_with_the_controller_message() {
        for phase in ["RolledBack", "Failed"] {
            assert_eq!(
                progress(2, 6, &status(phase, 1, 2)),
                Progress::Failed {
                    message: format!("{phase} message")
                }
            );
        }
    }

    #[test]
    fn paused_and_rolling_back_should_say_so() {
        assert_eq!(progress(2, 6, &status("Paused", 2, 2)), Progress::Paused);
        assert_eq!(
            progress(2, 6, &status("RollingBack", 1, 2)),
            Progress::Waiting(
                "Waiting for rollout to finish: rolling back to revision 1...".into()
            )
        );
    }

    #[test]
    fn progress_lines_should_count_updated_then_old_then_ready_replicas() {
        let mut s = status("Progressing", 2, 2);
        s.updated_replicas = 3;
        s.replicas = 7;
        assert_eq!(
            progress(2, 6, &s),
            Progress::Waiting(
                "Waiting for rollout to finish: 3 out of 6 new replicas have been updated..."
                    .into()
            )
        );
        s.updated_replicas = 6;
        assert_eq!(
            progress(2, 6, &s),
            Progress::Waiting(
                "Waiting for rollout to finish: 1 old replicas are pending termination...".into()
            )
        );
        s.replicas = 6;
        assert_eq!(
            progress(2, 6, &s),
            Progress::Waiting(
                "Waiting for rollout to finish: 2 of 6 updated replicas are ready...".into()
            )
        );
    }

    #[test]
    fn a_cargo_without_a_rollout_should_be_waited_for() {
        let s = CargoStatus {
            observed_generation: Some(1),
            ..CargoStatus::default()
        };
        assert_eq!(
            progress(1, 1, &s),
            Progress::Waiting("Waiting for rollout to finish: no rollout recorded yet...".into())
        );
    }
}
