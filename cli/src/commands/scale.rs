//! `nanocl scale cargo NAME --replicas N`.

use std::io::Write;

use anyhow::bail;
use hyper::{Method, StatusCode};
use nanocl_api_types::{Kind, ObjectKey};

use crate::args::{Cli, ScaleArgs};
use crate::commands::get::parse_kind;
use crate::remote::{self, display_key};
use crate::Outcome;

/// Sets `spec.replicas`, retrying when someone else wrote in between.
pub async fn run(cli: &Cli, args: &ScaleArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    if parse_kind(&args.kind)? != Kind::Cargo {
        bail!("only cargoes scale");
    }
    if !(0..=nanocl_api_types::cargo::v1::MAX_REPLICAS).contains(&args.replicas) {
        bail!(
            "--replicas must be between 0 and {}",
            nanocl_api_types::cargo::v1::MAX_REPLICAS
        );
    }
    let client = cli.client()?;
    let key = ObjectKey {
        kind: Kind::Cargo,
        namespace: Some(cli.namespace_or_default()),
        name: args.name.clone(),
    };
    for _ in 0..10 {
        let Some(mut live) = remote::get_live(&client, &key).await? else {
            bail!("{} not found", display_key(&key));
        };
        if let Some(a) = live["spec"]["autoscale"].as_object() {
            // The autoscaler decides the count: a scale would change nothing that runs.
            bail!(
                "{} is autoscaled between {} and {} replicas: change spec.autoscale (minReplicas, maxReplicas) instead",
                display_key(&key),
                a.get("minReplicas").and_then(serde_json::Value::as_i64).unwrap_or(1),
                a.get("maxReplicas").and_then(serde_json::Value::as_i64).unwrap_or(0)
            );
        }
        live["spec"]["replicas"] = serde_json::json!(args.replicas);
        let answer = client
            .request(Method::PUT, &remote::item_path(&key), Some(&live))
            .await?;
        match answer.status {
            StatusCode::OK => {
                writeln!(out, "{} scaled to {}", display_key(&key), args.replicas)?;
                return Ok(Outcome::Success);
            }
            StatusCode::CONFLICT => continue,
            _ => bail!("{}", answer.error_message()),
        }
    }
    bail!("gave up: {} keeps changing", display_key(&key))
}
