//! `nanocl logs cargo NAME [-f] [--tail N] [--since D|T] [--timestamps] [--build]`; `-f`
//! follows the replicas that replace the ones it started with, saying so.

use std::io::Write;

use anyhow::bail;
use http_body_util::BodyExt;
use nanocl_api_types::{Kind, ObjectKey};

use crate::args::{Cli, LogsArgs};
use crate::commands::get::parse_kind;
use crate::remote;
use crate::Outcome;

/// Streams the cargo's output to stdout as it arrives.
pub async fn run(cli: &Cli, args: &LogsArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    if parse_kind(&args.kind)? != Kind::Cargo {
        bail!("only cargoes have logs");
    }
    let key = ObjectKey {
        kind: Kind::Cargo,
        namespace: Some(cli.namespace_or_default()),
        name: args.name.clone(),
    };
    let mut query = Vec::new();
    if args.follow {
        query.push("follow=true".to_owned());
    }
    if let Some(n) = args.tail {
        query.push(format!("tailLines={n}"));
    }
    if args.build {
        query.push("build=true".to_owned());
    }
    if let Some(since) = &args.since {
        query.push(since_query(since)?);
    }
    if args.timestamps {
        query.push("timestamps=true".to_owned());
    }
    let path = format!(
        "{}/log{}{}",
        remote::item_path(&key),
        if query.is_empty() { "" } else { "?" },
        query.join("&")
    );
    let client = cli.client()?;
    let mut body = match client.stream(&path).await? {
        Ok(body) => body,
        Err(answer) => bail!("{}", answer.error_message()),
    };
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            out.write_all(&data)?;
            out.flush()?;
        }
    }
    Ok(Outcome::Success)
}

/// `--since`: a duration (`sinceSeconds`, measured on the server) or an RFC 3339 time.
fn since_query(value: &str) -> anyhow::Result<String> {
    if let Ok(d) = humantime::parse_duration(value) {
        return Ok(format!("sinceSeconds={}", d.as_secs()));
    }
    if humantime::parse_rfc3339_weak(value).is_ok() {
        return Ok(format!("sinceTime={}", crate::client::encode_query(value)));
    }
    bail!("--since {value:?}: give a duration (10s, 5m, 2h) or an RFC 3339 time (2026-12-03T09:00:00Z)")
}

#[cfg(test)]
mod tests {
    use super::since_query;

    #[test]
    fn since_takes_a_duration_or_a_time() {
        assert_eq!(since_query("5m").ok().as_deref(), Some("sinceSeconds=300"));
        assert_eq!(
            since_query("2026-12-03T09:00:00Z").ok().as_deref(),
            Some("sinceTime=2026-12-03T09%3A00%3A00Z")
        );
        let e = since_query("yesterday")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("--since \"yesterday\"") && e.contains("RFC 3339"),
            "{e}"
        );
    }
}
