//! `nanocl edit KIND NAME`: the live object in `$EDITOR`, validated like `apply`, written
//! back only if nobody changed it meanwhile.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use hyper::{Method, StatusCode};
use nanocl_api_types::manifest::{decode_bytes, DecodeOptions};
use nanocl_api_types::{Kind, ObjectKey};

use crate::args::{Cli, EditArgs};
use crate::remote::{self, display_key};
use crate::Outcome;

/// The first lines of the file, which say how the edit works.
const HEADER: &str = "\
# Edit the object below; save and quit to apply it. Lines starting with '#' are ignored,
# and an empty file cancels the edit. The status is the server's and is not shown.
#
";

/// Where the problems of an invalid edit start (at the end: the line numbers they give stay
/// true).
const PROBLEMS: &str = "# ---- nanocl edit: this could not be applied ----";

/// Runs `edit`.
pub async fn run(cli: &Cli, args: &EditArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let rest: Vec<String> = args.name.iter().cloned().collect();
    let (_, named) = crate::commands::named(&args.kind, &rest)?;
    let [(kind, name)] = &named[..] else {
        bail!("give one object to edit: KIND NAME, or TYPE/NAME");
    };
    let kind = *kind;
    match kind {
        Kind::Secret => bail!(
            "secrets cannot be edited: their values are never shown, so an edit would write back placeholders. Change the Secret's file and apply it"
        ),
        Kind::Replica | Kind::Node => bail!(
            "{} are written by nanocl itself: edit the cargo (replicas, placement) or cordon the node instead",
            kind.plural()
        ),
        _ => {}
    }
    let namespace = cli.namespace_or_default();
    let key = ObjectKey {
        kind,
        namespace: kind.namespaced().then(|| namespace.clone()),
        name: name.clone(),
    };
    let client = cli.client()?;
    let Some(live) = remote::get_live(&client, &key).await? else {
        bail!("{} not found", display_key(&key));
    };
    if crate::commands::get::undecodable(&live).is_some() {
        bail!(
            "{} cannot be decoded by nanocld, so it cannot be edited: apply a corrected file, or delete it",
            display_key(&key)
        );
    }
    let original = format!(
        "{HEADER}{}",
        crate::yaml::to_string(&remote::without_server_fields(&live))
    );
    let file = tempfile::Builder::new()
        .prefix(&format!("nanocl-edit-{}-", key.name))
        .suffix(".yaml")
        .tempfile()
        .context("creating the file to edit")?;
    std::fs::write(file.path(), &original).context("writing the file to edit")?;
    let shown = file.path().display().to_string();
    let options = DecodeOptions {
        default_namespace: namespace.clone(),
        required_namespace: kind.namespaced().then(|| namespace.clone()),
        base_dir: None,
    };
    // The text as last opened: saving it unchanged ends the edit.
    let mut opened = original.clone();
    loop {
        run_editor(file.path())?;
        let text =
            std::fs::read_to_string(file.path()).with_context(|| format!("reading {shown}"))?;
        let body = without_problems(&text);
        if body
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            writeln!(
                out,
                "Edit cancelled: the file was emptied; nothing changed."
            )?;
            return Ok(Outcome::Success);
        }
        if text == opened {
            if opened == original {
                writeln!(out, "Edit cancelled, no changes made.")?;
                return Ok(Outcome::Success);
            }
            // Reopened with problems and left as it was: give up, keep the work.
            keep(file, "the edit still has the problems listed at its end")?;
            return Ok(Outcome::Failed);
        }
        let problems = check(&shown, body.as_bytes(), &options, &key);
        if !problems.is_empty() {
            let reopened = format!(
                "{}\n{PROBLEMS}\n{}",
                body.trim_end(),
                problems
                    .iter()
                    .map(|p| format!("# {p}\n"))
                    .collect::<String>()
            );
            std::fs::write(file.path(), &reopened).with_context(|| format!("writing {shown}"))?;
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("the editor opens again with these problems at the end of the file");
            opened = reopened;
            continue;
        }
        let decoded = decode_bytes(&shown, body.as_bytes(), &options);
        let Some(manifest) = decoded.manifests.into_iter().next() else {
            bail!("{shown}: no object after the edit");
        };
        let desired = remote::desired(&manifest.object, Some(&live))?;
        if remote::without_server_fields(&desired) == remote::without_server_fields(&live) {
            writeln!(out, "{} unchanged", display_key(&key))?;
            return Ok(Outcome::Success);
        }
        let answer = client
            .request(Method::PUT, &remote::item_path(&key), Some(&desired))
            .await?;
        return match answer.status {
            StatusCode::OK => {
                writeln!(out, "{} edited", display_key(&key))?;
                Ok(Outcome::Success)
            }
            StatusCode::CONFLICT => {
                eprintln!(
                    "error: {} was changed by someone else since it was opened; nothing was written",
                    display_key(&key)
                );
                keep(file, "edit the object again and carry your change over")?;
                Ok(Outcome::Failed)
            }
            _ => {
                eprintln!("error: {}", answer.error_message());
                keep(file, "fix it and run edit again")?;
                Ok(Outcome::Failed)
            }
        };
    }
}

/// The problems of the edited text: decoding and validation as `apply`, and exactly the
/// object that was opened (no renaming, no second document).
fn check(file: &str, body: &[u8], options: &DecodeOptions, key: &ObjectKey) -> Vec<String> {
    let decoded = decode_bytes(file, body, options);
    let mut problems: Vec<String> = decoded.errors.iter().map(ToString::to_string).collect();
    if !problems.is_empty() {
        return problems;
    }
    match &decoded.manifests[..] {
        [one] => {
            let got = one.object.key();
            if got != *key {
                problems.push(format!(
                    "{file}:{}: the edit is of {}, not {}: edit cannot rename or move an object (apply the new one, then delete the old)",
                    one.pos,
                    display_key(&got),
                    display_key(key)
                ));
            }
        }
        _ => problems.push(format!(
            "{file}: one object, exactly: the edit holds {}",
            decoded.manifests.len()
        )),
    }
    problems
}

/// The text without the problems block a previous round appended.
fn without_problems(text: &str) -> String {
    match text.find(PROBLEMS) {
        Some(at) => text[..at].to_owned(),
        None => text.to_owned(),
    }
}

/// Keeps the edited file and says where.
fn keep(file: tempfile::NamedTempFile, why: &str) -> anyhow::Result<()> {
    let (_, path) = file
        .keep()
        .map_err(|e| anyhow!("keeping the edited file: {e}"))?;
    eprintln!("error: {why}; your edit is kept in {}", path.display());
    Ok(())
}

/// Runs the user's editor on `path` and waits for it. The editor is a command line (`code
/// --wait`, `vim -u NONE`), so it runs through `sh`.
fn run_editor(path: &Path) -> anyhow::Result<()> {
    let editor = ["NANOCL_EDITOR", "VISUAL", "EDITOR"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|e| !e.trim().is_empty()))
        .unwrap_or_else(|| "vi".to_owned());
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("nanocl-edit")
        .arg(path)
        .status()
        .with_context(|| format!("starting the editor {editor:?}"))?;
    if !status.success() {
        bail!("the editor {editor:?} exited with {status}; nothing was changed");
    }
    Ok(())
}
