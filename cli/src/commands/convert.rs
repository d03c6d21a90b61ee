//! `nanocl convert`: rewrite manifests in another API version.

use std::io::Write;

use anyhow::Context;
use nanocl_api_types::Version;

use crate::args::{Cli, ConvertArgs};
use crate::commands::decode_options;
use crate::{input, Outcome};

/// Decodes and validates the inputs, then prints every object in `--output-version`.
pub fn run(cli: &Cli, args: &ConvertArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let version = Version::from_api_version(&args.output_version)
        .with_context(|| format!("unknown version {}", args.output_version))?;
    let loaded = input::load(&args.files, &decode_options(cli));
    if !loaded.errors.is_empty() {
        loaded.report_errors("nothing was converted");
        return Ok(Outcome::Failed);
    }
    let values = loaded
        .manifests
        .iter()
        .map(|m| m.object.to_version(version))
        .collect::<Result<Vec<_>, _>>()
        .context("failed to serialize a converted object")?;
    crate::commands::print_objects(&values, args.output, out)?;
    Ok(Outcome::Success)
}
