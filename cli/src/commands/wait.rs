//! Waiting until objects are Ready (`apply --wait`).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use nanocl_api_types::{Kind, ObjectKey};
use serde_json::Value;

use crate::client::Client;
use crate::remote::{self, display_key};

/// Whether `object` is ready, and if not, why (reason: message).
fn readiness(object: &Value) -> Result<(), String> {
    if object["kind"] == Kind::Namespace.as_str() {
        return match object["status"]["phase"].as_str() {
            Some("Active") => Ok(()),
            other => Err(format!("phase {}", other.unwrap_or("not set yet"))),
        };
    }
    let generation = object["metadata"]["generation"].as_i64().unwrap_or(0);
    let observed = object["status"]["observedGeneration"].as_i64().unwrap_or(0);
    if observed < generation {
        return Err("not yet observed by its controller".into());
    }
    let ready = object["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    match ready {
        Some(c) if c["status"] == "True" => Ok(()),
        Some(c) => Err(format!(
            "{}: {}",
            c["reason"].as_str().unwrap_or(""),
            c["message"].as_str().unwrap_or("")
        )),
        None => Err("no Ready condition yet".into()),
    }
}

/// Polls until every object is Ready or `timeout` passes; prints each as it becomes ready.
pub async fn until_ready(
    client: &Client,
    keys: &[ObjectKey],
    timeout: Duration,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pending: Vec<ObjectKey> = keys.to_vec();
    let terminal = std::io::stdout().is_terminal();
    writeln!(
        out,
        "waiting for {} object{} to be ready...",
        pending.len(),
        if pending.len() == 1 { "" } else { "s" }
    )?;
    let mut last_reason = std::collections::HashMap::new();
    loop {
        let mut still = Vec::new();
        for key in pending {
            match remote::get_live(client, &key).await? {
                Some(object) => match readiness(&object) {
                    Ok(()) => writeln!(out, "{} ready", display_key(&key))?,
                    Err(why) => {
                        last_reason.insert(key.clone(), why);
                        still.push(key);
                    }
                },
                None => {
                    last_reason.insert(key.clone(), "not found".into());
                    still.push(key);
                }
            }
        }
        out.flush()?;
        pending = still;
        if pending.is_empty() {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            for key in &pending {
                eprintln!(
                    "error: {} not ready after {}: {}",
                    display_key(key),
                    humantime::format_duration(timeout),
                    last_reason.get(key).map_or("", String::as_str)
                );
            }
            return Ok(false);
        }
        if terminal {
            // A quiet progress hint on terminals; plain output stays line-per-event.
            eprint!("\r{} not ready yet...   ", pending.len());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        if terminal {
            eprint!("\r                              \r");
        }
    }
}

/// Polls until every object is gone or `timeout` passes; prints each as it goes.
pub async fn until_gone(
    client: &Client,
    keys: &[ObjectKey],
    timeout: Duration,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pending: Vec<ObjectKey> = keys.to_vec();
    writeln!(
        out,
        "waiting for {} pruned object{} to be gone...",
        pending.len(),
        if pending.len() == 1 { "" } else { "s" }
    )?;
    loop {
        let mut still = Vec::new();
        for key in pending {
            match remote::get_live(client, &key).await? {
                None => writeln!(out, "{} gone", display_key(&key))?,
                Some(_) => still.push(key),
            }
        }
        out.flush()?;
        pending = still;
        if pending.is_empty() {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            for key in &pending {
                eprintln!(
                    "error: {} still there after {}: its finalizers have not finished",
                    display_key(key),
                    humantime::format_duration(timeout)
                );
            }
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
