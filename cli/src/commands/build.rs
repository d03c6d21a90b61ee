//! `nanocl build cargo NAME`: the `build.nanocl.io/requestedAt` annotation the builder reads
//! (and `apply` keeps).

use std::io::Write;

use anyhow::bail;
use nanocl_api_types::cargo::v1::BUILD_REQUESTED_AT_ANNOTATION;
use nanocl_api_types::{Kind, ObjectKey};

use crate::args::{Cli, RolloutTarget};
use crate::commands::get::parse_kind;
use crate::commands::rollout::{edit_cargo, set_annotation, Edit};
use crate::remote::display_key;
use crate::Outcome;

/// Runs `nanocl build`.
pub async fn run(cli: &Cli, args: &RolloutTarget, out: &mut impl Write) -> anyhow::Result<Outcome> {
    if parse_kind(&args.kind)? != Kind::Cargo {
        bail!("only cargoes are built: nanocl build cargo NAME");
    }
    let key = ObjectKey {
        kind: Kind::Cargo,
        namespace: Some(cli.namespace_or_default()),
        name: args.name.clone(),
    };
    let client = cli.client()?;
    // Milliseconds: two requests within a second are two requests.
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    edit_cargo(&client, &key, |live| {
        if live["spec"]["container"]["build"].is_null() {
            bail!(
                "{} has no spec.container.build: it runs the image it names",
                display_key(&key)
            );
        }
        set_annotation(live, BUILD_REQUESTED_AT_ANNOTATION, Some(&now));
        Ok(Edit::Write(()))
    })
    .await?;
    writeln!(out, "{} build requested", display_key(&key))?;
    Ok(Outcome::Success)
}
