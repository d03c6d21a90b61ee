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
    let check = |live: Option<Value>| match live {
        Some(object) => readiness(&object),
        None => Err("not found".to_owned()),
    };
    poll(
        client,
        keys,
        timeout,
        out,
        Goal {
            what: "ready",
            check,
            failed: "not ready",
        },
    )
    .await
}

/// Polls until every object is gone or `timeout` passes; prints each as it goes.
pub async fn until_gone(
    client: &Client,
    keys: &[ObjectKey],
    timeout: Duration,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let check = |live: Option<Value>| match live {
        None => Ok(()),
        Some(_) => Err("its finalizers have not finished".to_owned()),
    };
    poll(
        client,
        keys,
        timeout,
        out,
        Goal {
            what: "gone",
            check,
            failed: "still there",
        },
    )
    .await
}

/// What [`poll`] waits for.
struct Goal<F> {
    /// Printed per object when reached: `cargo/web ready`.
    what: &'static str,
    /// The live object (or its absence) → reached, or why not.
    check: F,
    /// Printed when the time is up: `cargo/web not ready after 5m: why`.
    failed: &'static str,
}

async fn poll<F: Fn(Option<Value>) -> Result<(), String>>(
    client: &Client,
    keys: &[ObjectKey],
    timeout: Duration,
    out: &mut impl Write,
    goal: Goal<F>,
) -> anyhow::Result<bool> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pending: Vec<ObjectKey> = keys.to_vec();
    let terminal = std::io::stdout().is_terminal();
    writeln!(
        out,
        "waiting for {} object{} to be {}...",
        pending.len(),
        if pending.len() == 1 { "" } else { "s" },
        goal.what
    )?;
    let mut last_reason = std::collections::HashMap::new();
    loop {
        let mut still = Vec::new();
        for key in pending {
            match (goal.check)(remote::get_live(client, &key).await?) {
                Ok(()) => writeln!(out, "{} {}", display_key(&key), goal.what)?,
                Err(why) => {
                    last_reason.insert(key.clone(), why);
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
                    "error: {} {} after {}: {}",
                    display_key(key),
                    goal.failed,
                    humantime::format_duration(timeout),
                    last_reason.get(key).map_or("", String::as_str)
                );
            }
            return Ok(false);
        }
        if terminal {
            // A quiet progress hint on terminals; plain output stays line-per-event.
            eprint!("\r{} not {} yet...   ", pending.len(), goal.what);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        if terminal {
            eprint!("\r                              \r");
        }
    }
}
