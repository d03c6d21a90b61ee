//! `nanocl convert`: rewrite manifests in another API version.

use std::io::Write;

use anyhow::Context;
use nanocl_api_types::Version;

use crate::args::{Cli, ConvertArgs, ConvertFrom, FileArgs};
use crate::commands::decode_options;
use crate::{input, Outcome};

/// Decodes and validates the inputs, then prints every object in `--output-version`; or
/// converts a Compose file (`--from compose`).
pub fn run(cli: &Cli, args: &ConvertArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    if let (Some(ConvertFrom::Compose), Some(source)) = (args.from, &args.source) {
        return compose(cli, source, args, out);
    }
    let output_version = args.output_version.as_deref().unwrap_or("nanocl.io/v1");
    let version = Version::from_api_version(output_version)
        .with_context(|| format!("unknown version {output_version}"))?;
    let files = FileArgs {
        files: args.files.clone(),
        recursive: args.recursive,
    };
    let loaded = input::load(&files, &decode_options(cli));
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

/// `convert --from compose FILE`: the objects on `out`, every note on stderr as
/// FILE:LINE:COLUMN: FIELD: MESSAGE; then the objects are checked as `apply` would.
fn compose(
    cli: &Cli,
    source: &std::path::Path,
    args: &ConvertArgs,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    use crate::compose::{convert, Options};
    let text = std::fs::read_to_string(source)
        .with_context(|| format!("cannot read {}", source.display()))?;
    let file = source.display().to_string();
    let options = Options::for_file(source, cli.namespace.clone());
    let shown = |n: &crate::compose::Note| {
        if n.field.is_empty() {
            format!("{file}:{}: {}", n.pos, n.message)
        } else {
            format!("{file}:{}: {}: {}", n.pos, n.field, n.message)
        }
    };
    let conversion = match convert(&file, &text, &options) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors {
                eprintln!("{}", shown(e));
            }
            eprintln!("error: {file} is not a Compose file nanocl can read; nothing was converted");
            return Ok(Outcome::Failed);
        }
    };
    for note in &conversion.notes {
        eprintln!("{}", shown(note));
    }
    let version = match args.output_version.as_deref() {
        Some(v) => Version::from_api_version(v).with_context(|| format!("unknown version {v}"))?,
        None => Version::V1,
    };
    // Checked as `apply` checks them: what nanocl would refuse is said now.
    let yaml: Vec<String> = conversion
        .objects
        .iter()
        .map(crate::yaml::to_string)
        .collect();
    let decoded = nanocl_api_types::manifest::decode_str(
        "(converted)",
        &yaml.join("---\n"),
        &decode_options(cli),
    );
    let values = decoded
        .manifests
        .iter()
        .map(|m| m.object.to_version(version))
        .collect::<Result<Vec<_>, _>>()
        .context("failed to serialize a converted object")?;
    if !decoded.errors.is_empty() {
        crate::commands::print_objects(&conversion.objects, args.output, out)?;
        for e in &decoded.errors {
            eprintln!("{e}");
        }
        eprintln!("error: the converted objects are not valid for nanocl (above); fix the Compose file or edit the output");
        return Ok(Outcome::Failed);
    }
    crate::commands::print_objects(&values, args.output, out)?;
    let n = conversion.notes.len();
    if n > 0 {
        eprintln!(
            "{file}: {} converted; {n} key{} reported above",
            values.len(),
            if n == 1 { "" } else { "s" }
        );
    }
    Ok(Outcome::Success)
}
