//! `nanocl rollout history cargo NAME [--revision N]`: the revisions a cargo keeps, or one of
//! them in full.

use std::io::Write;

use anyhow::bail;
use nanocl_api_types::cargo::v1::{CargoRevision, CargoStatus};

use crate::args::{Cli, RolloutHistoryArgs};
use crate::commands::get::{age, print_table};
use crate::commands::rollout::{cargo_key, cargo_status, get_cargo, revision_status};
use crate::remote::display_key;
use crate::{yaml, Outcome};

/// The columns of the history table.
pub const HEADER: [&str; 4] = ["REVISION", "CREATED", "CHANGE", "STATUS"];

/// One row per revision kept, oldest first.
pub fn rows(status: &CargoStatus) -> Vec<Vec<String>> {
    status
        .revisions
        .iter()
        .map(|r| {
            vec![
                r.revision.to_string(),
                age(r.created.as_deref()),
                r.change.clone(),
                revision_status(status, r),
            ]
        })
        .collect()
}

/// The numbers of the revisions kept, `1, 2, 3`, for messages.
pub fn kept(status: &CargoStatus) -> String {
    status
        .revisions
        .iter()
        .map(|r| r.revision.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Revision `number`, or an error naming the revisions there are.
pub fn find<'a>(
    status: &'a CargoStatus,
    number: u32,
    name: &str,
) -> Result<&'a CargoRevision, String> {
    match status.revisions.iter().find(|r| r.revision == number) {
        Some(r) => Ok(r),
        None if status.revisions.is_empty() => Err(format!("{name} has no revisions recorded yet")),
        None => Err(format!(
            "{name} has no revision {number}: the revisions kept are {}",
            kept(status)
        )),
    }
}

/// One revision for people: when, what changed, how it went, and what it runs.
pub fn detail(name: &str, status: &CargoStatus, r: &CargoRevision) -> String {
    let mut text = format!("{name} revision {}\n", r.revision);
    let line = |text: &mut String, label: &str, value: &str| {
        text.push_str(&format!("{:<12}{value}\n", format!("{label}:")));
    };
    let created = match r.created.as_deref() {
        Some(t) => format!("{t} ({} ago)", age(Some(t))),
        None => "<unknown>".to_owned(),
    };
    line(&mut text, "Created", &created);
    line(&mut text, "Change", &r.change);
    let state = revision_status(status, r);
    if !state.is_empty() {
        line(&mut text, "Status", &state);
    }
    if let Some(why) = r.failed.as_deref().filter(|_| !state.starts_with("failed")) {
        line(&mut text, "Failed", why);
    }
    if let Some(at) = &r.restarted_at {
        line(&mut text, "Restarted", at);
    }
    let networks = if r.networks.is_empty() {
        "<the cluster's default network>".to_owned()
    } else {
        r.networks.join(", ")
    };
    line(&mut text, "Networks", &networks);
    let variables = if r.variables.is_empty() {
        "<none>".to_owned()
    } else {
        r.variables
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(&format!("\n{:12}", ""))
    };
    line(&mut text, "Variables", &variables);
    text.push_str("Container:\n");
    let container = serde_json::to_value(&r.container).unwrap_or_default();
    for l in yaml::to_string(&container).lines() {
        text.push_str(&format!("  {l}\n"));
    }
    text
}

/// Runs `rollout history`.
pub async fn run(
    cli: &Cli,
    args: &RolloutHistoryArgs,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let key = cargo_key(cli, &args.target, "history")?;
    let client = cli.client()?;
    let live = get_cargo(&client, &key).await?;
    let status = cargo_status(&live, &key)?;
    let name = display_key(&key);
    if let Some(number) = args.revision {
        match find(&status, number, &name) {
            Ok(r) => write!(out, "{}", detail(&name, &status, r))?,
            Err(message) => bail!("{message}"),
        }
        return Ok(Outcome::Success);
    }
    if status.revisions.is_empty() {
        eprintln!("No revisions recorded for {name} yet.");
        return Ok(Outcome::Success);
    }
    print_table(&HEADER, &rows(&status), out)?;
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn history() -> CargoStatus {
        let revision = |n: u32, change: &str| CargoRevision {
            revision: n,
            hash: format!("h{n}"),
            change: change.to_owned(),
            ..CargoRevision::default()
        };
        let mut failed = revision(3, "image busybox:1.36 -> busybox:1.37");
        failed.failed = Some("CrashLoopBackOff: exited with 1".into());
        CargoStatus {
            current_revision: Some(2),
            update_revision: Some(4),
            revisions: vec![
                revision(1, "created"),
                revision(2, "env X"),
                failed,
                revision(4, "back to revision 1"),
            ],
            ..CargoStatus::default()
        }
    }

    #[test]
    fn the_history_table_should_mark_current_failed_and_updating_revisions() {
        let mut out = Vec::new();
        print_table(&HEADER, &rows(&history()), &mut out).expect("table");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "REVISION   CREATED     CHANGE                               STATUS\n\
             1          <unknown>   created\n\
             2          <unknown>   env X                                current\n\
             3          <unknown>   image busybox:1.36 -> busybox:1.37   failed: CrashLoopBackOff: exited with 1\n\
             4          <unknown>   back to revision 1                   updating\n"
        );
    }

    #[test]
    fn a_missing_revision_should_name_those_kept() {
        let status = history();
        assert_eq!(
            find(&status, 7, "cargo/web").map(|r| r.revision),
            Err("cargo/web has no revision 7: the revisions kept are 1, 2, 3, 4".to_owned())
        );
        assert_eq!(find(&status, 2, "cargo/web").map(|r| r.revision), Ok(2));
        assert_eq!(
            find(&CargoStatus::default(), 1, "cargo/web").map(|r| r.revision),
            Err("cargo/web has no revisions recorded yet".to_owned())
        );
    }

    #[test]
    fn a_revision_in_full_should_show_its_container_networks_and_variables() {
        let mut status = history();
        let r = &mut status.revisions[1];
        r.created = Some("2020-01-01T00:00:00Z".into());
        r.networks = vec!["front".into(), "back".into()];
        r.variables = BTreeMap::from([("DB".into(), "db1".into()), ("HOST".into(), "h".into())]);
        r.container.image = "busybox:1.36".into();
        r.container.env = BTreeMap::from([("X".into(), "{{ vars.DB }}".into())]);
        let r = status.revisions[1].clone();
        let text = detail("cargo/web", &status, &r);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "cargo/web revision 2");
        assert!(
            lines[1].starts_with("Created:    2020-01-01T00:00:00Z ("),
            "{text}"
        );
        assert_eq!(
            &lines[2..],
            [
                "Change:     env X",
                "Status:     current",
                "Networks:   front, back",
                "Variables:  DB=db1",
                "            HOST=h",
                "Container:",
                "  image: busybox:1.36",
                "  env:",
                "    X: \"{{ vars.DB }}\"",
            ]
        );
        let failed = status.revisions[2].clone();
        assert!(
            detail("cargo/web", &status, &failed)
                .contains("\nStatus:     failed: CrashLoopBackOff: exited with 1\n"),
            "the failure is in the status line"
        );
    }
}
