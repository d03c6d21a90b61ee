//! `nanocl apply`: validate everything first, then create or update.

use std::io::Write;

use anyhow::Context;
use nanocl_api_types::Version;

use crate::args::{ApplyArgs, Cli, DryRun};
use crate::commands::{decode_options, print_objects};
use crate::{input, Outcome};

/// Runs `apply`. Only the client-side dry run exists until nanocld serves the API.
pub fn run(cli: &Cli, args: &ApplyArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let loaded = input::load(&args.files, &decode_options(cli));
    if !loaded.errors.is_empty() {
        loaded.report_errors("nothing was applied");
        return Ok(Outcome::Failed);
    }
    match args.dry_run {
        DryRun::Client => {}
        DryRun::None | DryRun::Server => {
            anyhow::bail!(
                "this nanocl has no API server to apply to yet; validate with --dry-run=client"
            );
        }
    }
    // Apply order: namespaces, clusters, networks, then cargoes, so references exist as early
    // as possible (they are level-triggered, so order is a courtesy, not a requirement).
    let mut manifests = loaded.manifests;
    manifests.sort_by_key(|m| m.object.kind());
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
                writeln!(out, "{} valid (dry run: nothing applied)", m.object.key())?;
            }
        }
    }
    Ok(Outcome::Success)
}
