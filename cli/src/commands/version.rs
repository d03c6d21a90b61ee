//! `nanocl version`.

use std::io::Write;

use nanocl_api_types::Version;

use crate::args::{Output, VersionArgs};
use crate::Outcome;

/// Prints the client version and the API versions it speaks.
pub fn run(args: &VersionArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let versions: Vec<&str> = Version::ALL.iter().map(|v| v.api_version()).collect();
    let version = env!("CARGO_PKG_VERSION");
    match args.output {
        Some(Output::Json) => {
            let value = serde_json::json!({
                "clientVersion": { "version": version, "apiVersions": versions }
            });
            writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        }
        Some(Output::Yaml) => {
            write!(
                out,
                "{}",
                crate::yaml::to_string(&serde_json::json!({
                    "clientVersion": { "version": version, "apiVersions": versions }
                }))
            )?;
        }
        Some(Output::Name) | None => {
            writeln!(out, "Client Version: {version}")?;
            writeln!(out, "API Versions: {}", versions.join(", "))?;
        }
    }
    Ok(Outcome::Success)
}
