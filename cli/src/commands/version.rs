//! `nanocl version`: this client's version and, unless `--client`, nanocld's.

use std::io::Write;
use std::time::Duration;

use hyper::Method;
use nanocl_api_types::Version;
use serde_json::{json, Value};

use crate::args::{Cli, Output, VersionArgs};
use crate::Outcome;

/// How long nanocld has to say its version.
const SERVER_TIMEOUT: Duration = Duration::from_secs(5);

/// What nanocld says at `/version`, or why it could not be asked.
async fn server(cli: &Cli) -> Result<Value, String> {
    let client = cli.client().map_err(|e| format!("{e:#}"))?;
    let answer = tokio::time::timeout(
        SERVER_TIMEOUT,
        client.request(Method::GET, "/version", None),
    )
    .await
    .map_err(|_| format!("no answer within {}s", SERVER_TIMEOUT.as_secs()))?
    .map_err(|e| e.to_string())?;
    if !answer.status.is_success() {
        return Err(answer.error_message());
    }
    answer.json().map_err(|e| e.to_string())
}

/// Prints the client's version and the API versions it speaks, then nanocld's (a warning
/// when they differ; a note when nanocld cannot be asked, which is no failure).
pub async fn run(cli: &Cli, args: &VersionArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let versions: Vec<&str> = Version::ALL.iter().map(|v| v.api_version()).collect();
    let version = env!("CARGO_PKG_VERSION");
    let server = if args.client {
        None
    } else {
        Some(server(cli).await)
    };
    let mut value = json!({ "clientVersion": { "version": version, "apiVersions": versions } });
    if let Some(Ok(s)) = &server {
        value["serverVersion"] = s.clone();
    }
    match args.output {
        Some(Output::Json) => writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?,
        Some(Output::Yaml) => write!(out, "{}", crate::yaml::to_string(&value))?,
        Some(Output::Name) | None => {
            writeln!(out, "Client Version: {version}")?;
            writeln!(out, "API Versions: {}", versions.join(", "))?;
            if let Some(Ok(s)) = &server {
                writeln!(
                    out,
                    "Server Version: {} (store: {})",
                    s["version"].as_str().unwrap_or("?"),
                    s["store"].as_str().unwrap_or("?")
                )?;
            }
        }
    }
    out.flush()?;
    match &server {
        Some(Ok(s)) => {
            let theirs = s["version"].as_str().unwrap_or_default();
            if theirs != version {
                eprintln!("warning: this nanocl is {version} and nanocld is {theirs}: use the same version of both");
            }
        }
        Some(Err(why)) => eprintln!("note: nanocld's version is unknown: {why}"),
        None => {}
    }
    Ok(Outcome::Success)
}
