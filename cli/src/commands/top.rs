//! `nanocl top cargo [NAME]`: CPU and memory per running replica, from nanocld's `usage`
//! subresource.

use std::io::Write;

use anyhow::bail;
use hyper::{Method, StatusCode};
use nanocl_api_types::{Kind, ObjectKey};
use serde_json::Value;

use crate::args::{Cli, TopArgs};
use crate::commands::get::{bytes, parse_kind, print_table};
use crate::remote;
use crate::Outcome;

/// Runs `top`.
pub async fn run(cli: &Cli, args: &TopArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    if parse_kind(&args.kind)? != Kind::Cargo {
        bail!("top shows cargoes: nanocl top cargo [NAME]");
    }
    let namespace = cli.namespace_or_default();
    let client = cli.client()?;
    let names: Vec<String> = match &args.name {
        Some(name) => vec![name.clone()],
        None => {
            let path = remote::collection_path(Kind::Cargo, Some(&namespace));
            let answer = client.request(Method::GET, &path, None).await?;
            if answer.status != StatusCode::OK {
                bail!("{}", answer.error_message());
            }
            answer.json()?["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_owned))
                .collect()
        }
    };
    if names.is_empty() {
        eprintln!("No cargoes found in namespace {namespace}.");
        return Ok(Outcome::Success);
    }
    // Side by side: each answer takes half a second of sampling.
    let answers = futures::future::join_all(names.iter().map(|name| {
        let key = ObjectKey {
            kind: Kind::Cargo,
            namespace: Some(namespace.clone()),
            name: name.clone(),
        };
        let client = client.clone();
        async move {
            let path = format!("{}/usage", remote::item_path(&key));
            client.request(Method::GET, &path, None).await
        }
    }))
    .await;
    let mut rows = Vec::new();
    let mut ok = true;
    for (name, answer) in names.iter().zip(answers) {
        let answer = answer?;
        if answer.status != StatusCode::OK {
            eprintln!("error: {}", answer.error_message());
            ok = false;
            continue;
        }
        rows.extend(self::rows(name, &answer.json()?));
    }
    if rows.is_empty() && ok {
        eprintln!("No running replicas.");
        return Ok(Outcome::Success);
    }
    if !rows.is_empty() {
        print_table(&["NAME", "CPU(cores)", "MEMORY", "NODE"], &rows, out)?;
    }
    Ok(if ok {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}

/// The rows of one cargo's usage: `web-0   12m   34.1Mi   host-0`.
fn rows(cargo: &str, usage: &Value) -> Vec<Vec<String>> {
    usage["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let slot = r["slot"].as_u64().map_or("?".to_owned(), |s| s.to_string());
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "millicores of a non-negative rate"
            )]
            let millis = (r["cpus"].as_f64().unwrap_or(0.0) * 1000.0).round() as u64;
            vec![
                format!("{cargo}-{slot}"),
                format!("{millis}m"),
                bytes(r["memoryBytes"].as_u64().unwrap_or(0)),
                r["node"].as_str().unwrap_or("<none>").to_owned(),
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::rows;
    use serde_json::json;

    #[test]
    fn a_row_should_show_millicores_and_memory() {
        let usage = json!({"items": [
            {"slot": 0, "node": "host-0", "container": "x", "cpus": 0.0125, "memoryBytes": 35_756_032},
            {"slot": 1, "container": "y", "cpus": 1.5, "memoryBytes": 512},
        ]});
        assert_eq!(
            rows("web", &usage),
            [
                ["web-0", "13m", "34.1Mi", "host-0"],
                ["web-1", "1500m", "512", "<none>"]
            ]
        );
    }
}
