//! `nanocl rollout restart|pause|resume cargo NAME`: the `rollout.nanocl.io/` annotations
//! the controller reads (and `apply` keeps).

use std::io::Write;

use nanocl_api_types::cargo::v1::{PAUSED_ANNOTATION, RESTARTED_AT_ANNOTATION};
use serde_json::Value;

use crate::args::{Cli, RolloutTarget};
use crate::commands::rollout::{
    annotation, cargo_key, command_for, edit_cargo, set_annotation, Edit,
};
use crate::remote::display_key;
use crate::Outcome;

/// What to mark the cargo with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// A new `restartedAt`: a new revision whose containers are all new.
    Restart,
    /// `paused: "true"`: no replica is replaced.
    Pause,
    /// No `paused`.
    Resume,
}

impl Mark {
    fn verb(self) -> &'static str {
        match self {
            Mark::Restart => "restart",
            Mark::Pause => "pause",
            Mark::Resume => "resume",
        }
    }
}

/// Marks `object` (restarted at `now`, RFC 3339); answers what to print after its name, and
/// whether the object changed.
pub fn mark(object: &mut Value, mark: Mark, now: &str) -> (&'static str, bool) {
    match mark {
        Mark::Restart => {
            set_annotation(object, RESTARTED_AT_ANNOTATION, Some(now));
            ("restarted", true)
        }
        Mark::Pause if annotation(object, PAUSED_ANNOTATION) == Some("true") => {
            ("already paused", false)
        }
        Mark::Pause => {
            set_annotation(object, PAUSED_ANNOTATION, Some("true"));
            ("paused", true)
        }
        Mark::Resume => {
            if set_annotation(object, PAUSED_ANNOTATION, None) {
                ("resumed", true)
            } else {
                ("is not paused", false)
            }
        }
    }
}

/// Runs `rollout restart`, `pause` or `resume`.
pub async fn run(
    cli: &Cli,
    what: Mark,
    args: &RolloutTarget,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let key = cargo_key(cli, args, what.verb())?;
    let client = cli.client()?;
    // Read once: every retry of a restart writes the same instant. Milliseconds, so that two
    // restarts within a second are two changes.
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let edited = edit_cargo(&client, &key, |live| {
        let (said, changed) = mark(live, what, &now);
        let paused = annotation(live, PAUSED_ANNOTATION) == Some("true");
        Ok(if changed {
            Edit::Write((said, paused))
        } else {
            Edit::Unchanged((said, paused))
        })
    })
    .await?;
    let (Edit::Write((said, paused)) | Edit::Unchanged((said, paused))) = edited;
    writeln!(out, "{} {said}", display_key(&key))?;
    if what == Mark::Restart && paused {
        out.flush()?;
        eprintln!(
            "warning: {} is paused: its replicas are restarted once it is resumed ({})",
            display_key(&key),
            command_for(&key, "resume")
        );
    }
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pause_and_resume_should_set_and_remove_the_annotation_once() {
        let mut o = json!({"metadata": {"name": "web"}});
        assert_eq!(mark(&mut o, Mark::Pause, ""), ("paused", true));
        assert_eq!(o["metadata"]["annotations"][PAUSED_ANNOTATION], "true");
        assert_eq!(mark(&mut o, Mark::Pause, ""), ("already paused", false));
        assert_eq!(mark(&mut o, Mark::Resume, ""), ("resumed", true));
        assert_eq!(o, json!({"metadata": {"name": "web"}}));
        assert_eq!(mark(&mut o, Mark::Resume, ""), ("is not paused", false));
    }

    #[test]
    fn restart_should_always_write_a_new_instant() {
        let mut o = json!({"metadata": {"name": "web", "annotations": {"team": "a"}}});
        assert_eq!(
            mark(&mut o, Mark::Restart, "2026-12-03T10:00:00Z"),
            ("restarted", true)
        );
        assert_eq!(
            o["metadata"]["annotations"],
            json!({"team": "a", RESTARTED_AT_ANNOTATION: "2026-12-03T10:00:00Z"})
        );
        // The same instant twice is still a restart asked for: written again.
        assert_eq!(
            mark(&mut o, Mark::Restart, "2026-12-03T10:00:00Z").0,
            "restarted"
        );
    }
}
