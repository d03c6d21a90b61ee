//! `nanocl rollout undo cargo NAME [--to-revision N]`: writes a kept revision's container and
//! networks back into the cargo's spec, to be rolled out as a new revision.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{anyhow, Context};
use nanocl_api_types::cargo::v1::{
    CargoRevision, CargoStatus, PAUSED_ANNOTATION, RESTARTED_AT_ANNOTATION,
};
use nanocl_api_types::{Kind, ObjectKey};
use serde_json::Value;

use crate::args::{Cli, RolloutUndoArgs};
use crate::client::Client;
use crate::commands::rollout::history::kept;
use crate::commands::rollout::{
    annotation, cargo_key, cargo_status, command_for, edit_cargo, set_annotation, Edit,
};
use crate::remote::{self, display_key};
use crate::Outcome;

/// The revision to go back to: `to`, or the newest kept before the spec's revision; an error
/// (for people) when there is none, or when it is the spec's revision already.
pub fn target<'a>(
    status: &'a CargoStatus,
    to: Option<u32>,
    name: &str,
) -> Result<&'a CargoRevision, String> {
    if status.revisions.is_empty() {
        return Err(format!(
            "{name} has no revisions recorded yet: there is nothing to roll back to"
        ));
    }
    let update = status.update_revision;
    let chosen = match to {
        Some(n) => status
            .revisions
            .iter()
            .find(|r| r.revision == n)
            .ok_or_else(|| {
                format!(
                    "{name} has no revision {n}: the revisions kept are {}",
                    kept(status)
                )
            })?,
        None => status
            .revisions
            .iter()
            .filter(|r| update.is_none_or(|u| r.revision < u))
            .max_by_key(|r| r.revision)
            .ok_or_else(|| {
                format!(
                    "{name} has no revision before revision {} to roll back to (the revisions kept are {})",
                    update.unwrap_or_default(),
                    kept(status)
                )
            })?,
    };
    if Some(chosen.revision) == update {
        return Err(format!("{name} is already at revision {}", chosen.revision));
    }
    Ok(chosen)
}

/// The cluster variables `revision` was rendered with whose value is not the same in the
/// cluster today (changed, or gone), by name.
pub fn changed_variables(
    used: &BTreeMap<String, String>,
    today: &BTreeMap<String, String>,
) -> Vec<String> {
    used.iter()
        .filter(|(name, value)| today.get(*name) != Some(*value))
        .map(|(name, _)| name.clone())
        .collect()
}

/// Makes `live`'s spec run `revision`: its container, its networks, and the restart mark it
/// was recorded with (so that its hash, and its containers' configuration, are that
/// revision's).
pub fn write_revision(live: &mut Value, revision: &CargoRevision) -> anyhow::Result<()> {
    // What nanocl recorded besides the spec goes: the image a build made (the build
    // settings are the spec's: they build it again, or find it built), and its own labels.
    let mut spec_container = revision.container.clone();
    if spec_container.build.is_some() {
        spec_container.image.clear();
        spec_container.image_pull_policy = None;
    }
    spec_container
        .labels
        .retain(|k, _| !k.starts_with("io.nanocl."));
    let container =
        serde_json::to_value(&spec_container).context("cannot write the revision's container")?;
    let spec = live
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| anyhow!("nanocld sent a cargo without a spec"))?;
    spec.insert("container".to_owned(), container);
    if revision.networks.is_empty() {
        spec.remove("networks");
    } else {
        spec.insert("networks".to_owned(), serde_json::json!(revision.networks));
    }
    set_annotation(
        live,
        RESTARTED_AT_ANNOTATION,
        revision.restarted_at.as_deref(),
    );
    Ok(())
}

/// Runs `rollout undo`.
pub async fn run(
    cli: &Cli,
    args: &RolloutUndoArgs,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let key = cargo_key(cli, &args.target, "undo")?;
    let client = cli.client()?;
    let name = display_key(&key);
    // Chosen again from the fresh status when a write conflicts.
    let written = edit_cargo(&client, &key, |live| {
        let status = cargo_status(live, &key)?;
        let revision = target(&status, args.to_revision, &name)
            .map_err(|message| anyhow!("{message}"))?
            .clone();
        write_revision(live, &revision)?;
        let cluster = live["spec"]["cluster"].as_str().unwrap_or("").to_owned();
        let paused = annotation(live, PAUSED_ANNOTATION) == Some("true");
        Ok(Edit::Write((revision, cluster, paused)))
    })
    .await?;
    let (Edit::Write((revision, cluster, paused)) | Edit::Unchanged((revision, cluster, paused))) =
        written;
    writeln!(out, "{name} rolled back to revision {}", revision.revision)?;
    out.flush()?;
    if paused {
        eprintln!(
            "warning: {name} is paused: revision {} rolls out once it is resumed ({})",
            revision.revision,
            command_for(&key, "resume")
        );
    }
    if !revision.variables.is_empty() {
        warn_variables(&client, &key, &cluster, &revision).await?;
    }
    Ok(Outcome::Success)
}

/// Warns when the cluster's variables are not what `revision` was rendered with.
async fn warn_variables(
    client: &Client,
    cargo: &ObjectKey,
    cluster: &str,
    revision: &CargoRevision,
) -> anyhow::Result<()> {
    let key = ObjectKey {
        kind: Kind::Cluster,
        namespace: cargo.namespace.clone(),
        name: cluster.to_owned(),
    };
    let today: BTreeMap<String, String> = match remote::get_live(client, &key).await? {
        Some(live) => live["spec"]["variables"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default(),
        None => BTreeMap::new(),
    };
    let changed = changed_variables(&revision.variables, &today);
    if !changed.is_empty() {
        eprintln!(
            "warning: revision {} was rendered with other values of the variables {} of {}: the undo renders it with today's values",
            revision.revision,
            changed.join(", "),
            display_key(&key)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(numbers: &[u32], update: u32) -> CargoStatus {
        CargoStatus {
            current_revision: Some(update),
            update_revision: Some(update),
            revisions: numbers
                .iter()
                .map(|n| CargoRevision {
                    revision: *n,
                    hash: format!("h{n}"),
                    ..CargoRevision::default()
                })
                .collect(),
            ..CargoStatus::default()
        }
    }

    fn chosen(s: &CargoStatus, to: Option<u32>) -> Result<u32, String> {
        target(s, to, "cargo/web").map(|r| r.revision)
    }

    #[test]
    fn undo_should_default_to_the_newest_revision_before_the_spec_revision() {
        assert_eq!(chosen(&status(&[1, 2, 3], 3), None), Ok(2));
        // After an undo the spec's revision is the newest, and the one before it comes next.
        assert_eq!(chosen(&status(&[2, 4, 5], 5), None), Ok(4));
        // The spec's revision may not be the newest (a failed update rolled back).
        assert_eq!(chosen(&status(&[1, 2, 3], 2), None), Ok(1));
    }

    #[test]
    fn undo_should_refuse_the_spec_revision_and_name_the_revisions_kept() {
        assert_eq!(
            chosen(&status(&[1, 2, 3], 3), Some(3)),
            Err("cargo/web is already at revision 3".into())
        );
        assert_eq!(
            chosen(&status(&[1, 2, 3], 3), Some(7)),
            Err("cargo/web has no revision 7: the revisions kept are 1, 2, 3".into())
        );
        assert_eq!(chosen(&status(&[1, 2, 3], 3), Some(1)), Ok(1));
        assert_eq!(
            chosen(&status(&[1], 1), None),
            Err("cargo/web has no revision before revision 1 to roll back to (the revisions kept are 1)".into())
        );
        assert_eq!(
            chosen(&CargoStatus::default(), None),
            Err("cargo/web has no revisions recorded yet: there is nothing to roll back to".into())
        );
    }

    #[test]
    fn variables_changed_or_gone_since_the_revision_should_be_named() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            changed_variables(
                &map(&[("A", "1"), ("B", "2"), ("C", "3")]),
                &map(&[("A", "1"), ("B", "20"), ("D", "4")])
            ),
            vec!["B", "C"]
        );
        assert!(changed_variables(&map(&[("A", "1")]), &map(&[("A", "1")])).is_empty());
    }

    #[test]
    fn writing_a_revision_should_set_container_networks_and_restart_mark() {
        let mut live = json!({
            "metadata": {"name": "web", "annotations": {"rollout.nanocl.io/restartedAt": "2026-01-01T00:00:00Z", "team": "a"}},
            "spec": {"cluster": "dev", "replicas": 2, "networks": ["front"], "container": {"image": "busybox:1.37", "env": {"X": "2"}}},
        });
        let mut revision = CargoRevision {
            revision: 1,
            ..CargoRevision::default()
        };
        revision.container.image = "busybox:1.36".into();
        write_revision(&mut live, &revision).expect("written");
        assert_eq!(
            live,
            json!({
                "metadata": {"name": "web", "annotations": {"team": "a"}},
                "spec": {"cluster": "dev", "replicas": 2, "container": {"image": "busybox:1.36"}},
            })
        );
        revision.networks = vec!["back".into()];
        revision.restarted_at = Some("2025-01-01T00:00:00Z".into());
        write_revision(&mut live, &revision).expect("written");
        assert_eq!(live["spec"]["networks"], json!(["back"]));
        assert_eq!(
            live["metadata"]["annotations"]["rollout.nanocl.io/restartedAt"],
            "2025-01-01T00:00:00Z"
        );
    }
}
