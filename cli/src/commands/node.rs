//! `nanocl cordon|uncordon|drain node NAME`.

use std::io::Write;

use anyhow::bail;
use hyper::{Method, StatusCode};
use nanocl_api_types::{Kind, ObjectKey};

use crate::args::{Cli, NodeArgs};
use crate::commands::get::parse_kind;
use crate::remote::{self, display_key};
use crate::Outcome;

/// What to do to the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// No new replica is placed on it; those running stay.
    Cordon,
    /// Replicas may be placed on it again.
    Uncordon,
    /// Cordon, then move every replica placed on it elsewhere.
    Drain,
}

/// Cordons, uncordons or drains node `args.name`.
pub async fn run(
    cli: &Cli,
    action: Action,
    args: &NodeArgs,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    if parse_kind(&args.kind)? != Kind::Node {
        bail!(
            "only nodes are cordoned or drained: nanocl {} node NAME",
            verb(action)
        );
    }
    let client = cli.client()?;
    let key = ObjectKey {
        kind: Kind::Node,
        namespace: None,
        name: args.name.clone(),
    };
    let unschedulable = action != Action::Uncordon;
    let word = if unschedulable {
        "cordoned"
    } else {
        "uncordoned"
    };
    let mut done = false;
    for _ in 0..10 {
        let Some(mut live) = remote::get_live(&client, &key).await? else {
            bail!(
                "{} not found (nanocl get nodes lists them)",
                display_key(&key)
            );
        };
        if live["spec"]["unschedulable"].as_bool().unwrap_or(false) == unschedulable {
            done = true;
            writeln!(out, "{} already {word}", display_key(&key))?;
            break;
        }
        live["spec"]["unschedulable"] = serde_json::json!(unschedulable);
        let answer = client
            .request(Method::PUT, &remote::item_path(&key), Some(&live))
            .await?;
        match answer.status {
            StatusCode::OK => {
                done = true;
                writeln!(out, "{} {word}", display_key(&key))?;
                break;
            }
            StatusCode::CONFLICT => continue,
            _ => bail!("{}", answer.error_message()),
        }
    }
    if !done {
        bail!("gave up: {} keeps changing", display_key(&key));
    }
    if action != Action::Drain {
        return Ok(Outcome::Success);
    }
    // Every Replica placed on the node goes; the scheduler places its slot on another node
    // (not this one: it is cordoned) and the node's agent removes the container.
    let answer = client
        .request(
            Method::GET,
            &remote::collection_path(Kind::Replica, None),
            None,
        )
        .await?;
    if answer.status != StatusCode::OK {
        bail!("listing replicas: {}", answer.error_message());
    }
    let list: serde_json::Value = answer.json()?;
    let mut moved = 0;
    for replica in list["items"].as_array().into_iter().flatten() {
        if replica["spec"]["node"].as_str() != Some(args.name.as_str())
            || replica["metadata"].get("deletionTimestamp").is_some()
        {
            continue;
        }
        let Some(rkey) = remote::key_of(replica) else {
            continue;
        };
        let answer = client
            .request(Method::DELETE, &remote::item_path(&rkey), None)
            .await?;
        match answer.status {
            StatusCode::OK | StatusCode::ACCEPTED | StatusCode::NOT_FOUND => {
                moved += 1;
                writeln!(out, "{} evicted", display_key(&rkey))?;
            }
            _ => bail!(
                "evicting {}: {}",
                display_key(&rkey),
                answer.error_message()
            ),
        }
    }
    writeln!(
        out,
        "{} drained ({moved} replica(s) to be placed on other nodes)",
        display_key(&key)
    )?;
    Ok(Outcome::Success)
}

fn verb(action: Action) -> &'static str {
    match action {
        Action::Cordon => "cordon",
        Action::Uncordon => "uncordon",
        Action::Drain => "drain",
    }
}
