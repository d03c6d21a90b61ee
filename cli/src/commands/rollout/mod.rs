//! `nanocl rollout status|history|undo|restart|pause|resume cargo NAME`, and what they share:
//! the cargo's key, its status read as the typed `CargoStatus`, and edits of the live cargo
//! retried on conflicts.

pub mod history;
pub mod marks;
pub mod status;
pub mod undo;

use std::io::Write;

use anyhow::{bail, Context};
use hyper::{Method, StatusCode};
use nanocl_api_types::cargo::v1::{CargoRevision, CargoStatus};
use nanocl_api_types::meta::DEFAULT_NAMESPACE;
use nanocl_api_types::{Kind, ObjectKey};
use serde_json::Value;

use crate::args::{Cli, RolloutArgs, RolloutCommand, RolloutTarget};
use crate::client::Client;
use crate::commands::get::parse_kind;
use crate::remote::{self, display_key};
use crate::Outcome;

/// Runs a `nanocl rollout` subcommand.
pub async fn run(cli: &Cli, args: &RolloutArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    match &args.command {
        RolloutCommand::Status(a) => status::run(cli, a, out).await,
        RolloutCommand::History(a) => history::run(cli, a, out).await,
        RolloutCommand::Undo(a) => undo::run(cli, a, out).await,
        RolloutCommand::Restart(a) => marks::run(cli, marks::Mark::Restart, a, out).await,
        RolloutCommand::Pause(a) => marks::run(cli, marks::Mark::Pause, a, out).await,
        RolloutCommand::Resume(a) => marks::run(cli, marks::Mark::Resume, a, out).await,
    }
}

/// The cargo named on the command line, in `-n`'s namespace; only cargoes roll out.
pub fn cargo_key(cli: &Cli, target: &RolloutTarget, verb: &str) -> anyhow::Result<ObjectKey> {
    if parse_kind(&target.kind)? != Kind::Cargo {
        bail!("only cargoes roll out: nanocl rollout {verb} cargo NAME");
    }
    Ok(ObjectKey {
        kind: Kind::Cargo,
        namespace: Some(cli.namespace_or_default()),
        name: target.name.clone(),
    })
}

/// The command that does `verb` to the cargo, as the user would type it: `nanocl rollout
/// resume cargo web`, with `-n NS` outside the default namespace.
pub fn command_for(key: &ObjectKey, verb: &str) -> String {
    match key.namespace.as_deref() {
        Some(ns) if ns != DEFAULT_NAMESPACE => {
            format!("nanocl -n {ns} rollout {verb} cargo {}", key.name)
        }
        _ => format!("nanocl rollout {verb} cargo {}", key.name),
    }
}

/// The live cargo, or an error saying it does not exist.
pub async fn get_cargo(client: &Client, key: &ObjectKey) -> anyhow::Result<Value> {
    match remote::get_live(client, key).await? {
        Some(live) => Ok(live),
        None => bail!(
            "{} not found (nanocl get cargoes lists them)",
            display_key(key)
        ),
    }
}

/// A live cargo's status as the typed `CargoStatus` (an empty one when it has none yet).
pub fn cargo_status(live: &Value, key: &ObjectKey) -> anyhow::Result<CargoStatus> {
    match live.get("status") {
        None | Some(Value::Null) => Ok(CargoStatus::default()),
        Some(status) => serde_json::from_value(status.clone()).with_context(|| {
            format!(
                "cannot read the status of {}: nanocld and this nanocl may be different versions",
                display_key(key)
            )
        }),
    }
}

/// How `rollout history` and `describe` label a revision: `current` (it ran everywhere when
/// an update last completed), `failed: Reason: message`, `updating` (the spec's, being rolled
/// out), or nothing.
pub fn revision_status(status: &CargoStatus, revision: &CargoRevision) -> String {
    if status.current_revision == Some(revision.revision) {
        "current".to_owned()
    } else if let Some(why) = &revision.failed {
        format!("failed: {why}")
    } else if status.update_revision == Some(revision.revision) {
        "updating".to_owned()
    } else {
        String::new()
    }
}

/// An annotation of a JSON object.
pub fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object["metadata"]["annotations"][key].as_str()
}

/// Sets (`Some`) or removes (`None`) an annotation of a JSON object; an emptied map goes, as
/// the server never stores an empty one. Answers whether anything changed.
pub fn set_annotation(object: &mut Value, key: &str, value: Option<&str>) -> bool {
    if annotation(object, key) == value {
        return false;
    }
    let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return false;
    };
    match value {
        Some(v) => {
            let annotations = meta
                .entry("annotations")
                .or_insert_with(|| Value::Object(Default::default()));
            if !annotations.is_object() {
                *annotations = Value::Object(Default::default());
            }
            annotations[key] = Value::String(v.to_owned());
        }
        None => {
            let emptied = match meta.get_mut("annotations").and_then(Value::as_object_mut) {
                Some(map) => {
                    map.remove(key);
                    map.is_empty()
                }
                None => false,
            };
            if emptied {
                meta.remove("annotations");
            }
        }
    }
    true
}

/// What an edit of the live cargo decided.
#[derive(Debug)]
pub enum Edit<T> {
    /// The object was changed: write it, then report `T`.
    Write(T),
    /// Nothing to write: report `T`.
    Unchanged(T),
}

/// Writes to an object are retried this often when someone else wrote in between.
const ATTEMPTS: usize = 10;

/// Reads the live cargo, lets `edit` change it, and writes it with the resourceVersion it
/// was read at; a conflict (someone wrote in between) starts again from a fresh read.
pub async fn edit_cargo<T>(
    client: &Client,
    key: &ObjectKey,
    mut edit: impl FnMut(&mut Value) -> anyhow::Result<Edit<T>>,
) -> anyhow::Result<Edit<T>> {
    for _ in 0..ATTEMPTS {
        let mut live = get_cargo(client, key).await?;
        let decided = edit(&mut live)?;
        if matches!(decided, Edit::Unchanged(_)) {
            return Ok(decided);
        }
        let answer = client
            .request(Method::PUT, &remote::item_path(key), Some(&live))
            .await?;
        match answer.status {
            StatusCode::OK => return Ok(decided),
            StatusCode::CONFLICT => continue,
            StatusCode::NOT_FOUND => bail!("{} not found", display_key(key)),
            _ => bail!("updating {}: {}", display_key(key), answer.error_message()),
        }
    }
    bail!(
        "gave up after {ATTEMPTS} conflicting writes: {} keeps changing",
        display_key(key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn revision(n: u32) -> CargoRevision {
        CargoRevision {
            revision: n,
            hash: format!("h{n}"),
            ..CargoRevision::default()
        }
    }

    #[test]
    fn revision_status_should_name_current_updating_and_failed_revisions() {
        let status = CargoStatus {
            current_revision: Some(2),
            update_revision: Some(3),
            ..CargoStatus::default()
        };
        assert_eq!(revision_status(&status, &revision(1)), "");
        assert_eq!(revision_status(&status, &revision(2)), "current");
        assert_eq!(revision_status(&status, &revision(3)), "updating");
        let failed = CargoRevision {
            failed: Some("CrashLoopBackOff: exited 1".into()),
            ..revision(3)
        };
        assert_eq!(
            revision_status(&status, &failed),
            "failed: CrashLoopBackOff: exited 1"
        );
        let done = CargoStatus {
            current_revision: Some(3),
            update_revision: Some(3),
            ..CargoStatus::default()
        };
        assert_eq!(revision_status(&done, &revision(3)), "current");
    }

    #[test]
    fn set_annotation_should_add_replace_and_remove_the_emptied_map() {
        let mut o = json!({"metadata": {"name": "web"}});
        assert!(set_annotation(
            &mut o,
            "rollout.nanocl.io/paused",
            Some("true")
        ));
        assert_eq!(
            o["metadata"]["annotations"]["rollout.nanocl.io/paused"],
            "true"
        );
        assert!(!set_annotation(
            &mut o,
            "rollout.nanocl.io/paused",
            Some("true")
        ));
        assert!(set_annotation(&mut o, "rollout.nanocl.io/paused", None));
        assert_eq!(o, json!({"metadata": {"name": "web"}}));
        assert!(!set_annotation(&mut o, "rollout.nanocl.io/paused", None));
    }

    #[test]
    fn commands_should_name_the_namespace_outside_the_default_one() {
        let mut key = ObjectKey {
            kind: Kind::Cargo,
            namespace: Some("global".into()),
            name: "web".into(),
        };
        assert_eq!(
            command_for(&key, "resume"),
            "nanocl rollout resume cargo web"
        );
        key.namespace = Some("shop".into());
        assert_eq!(
            command_for(&key, "resume"),
            "nanocl -n shop rollout resume cargo web"
        );
    }
}
