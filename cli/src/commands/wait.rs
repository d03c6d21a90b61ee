//! Waiting until objects are Ready (`apply --wait`) or gone (`delete --wait`), on the watch
//! API: one list and one watch per collection, no polling.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::time::Duration;

use hyper::{Method, StatusCode};
use nanocl_api_types::{Kind, ObjectKey};
use serde_json::Value;

use crate::client::{Client, Lines};
use crate::remote::{self, display_key};

/// Whether `object` is ready, and if not, why (reason: message).
fn readiness(object: &Value) -> Result<(), String> {
    // A ProxyRule has no Ready condition: each node's proxy serves it as soon as it is
    // stored, and says what it cannot serve in Events; it is ready once the ProxyRule
    // controller has seen this change (and taken its ACME certificates in hand).
    if object["kind"] == Kind::ProxyRule.as_str() {
        let generation = object["metadata"]["generation"].as_i64().unwrap_or(0);
        let observed = object["status"]["observedGeneration"].as_i64().unwrap_or(0);
        return if observed >= generation {
            Ok(())
        } else {
            Err("this change not yet observed by its controller".into())
        };
    }
    if object["kind"] == Kind::Namespace.as_str() {
        return match object["status"]["phase"].as_str() {
            Some("Active") => Ok(()),
            other => Err(format!("phase {}", other.unwrap_or("not set yet"))),
        };
    }
    let generation = object["metadata"]["generation"].as_i64().unwrap_or(0);
    let observed = object["status"]["observedGeneration"].as_i64().unwrap_or(0);
    // A Node's Ready is its own nanocld's report, not a controller's view of a spec.
    let ready = object["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    if observed < generation && object["kind"] != Kind::Node.as_str() {
        // What it said of the spec before, which may well still hold.
        let before = ready
            .filter(|c| c["status"] != "True")
            .map(|c| {
                format!(
                    " (before: {}: {})",
                    c["reason"].as_str().unwrap_or(""),
                    c["message"].as_str().unwrap_or("")
                )
            })
            .unwrap_or_default();
        return Err(format!(
            "this change not yet observed by its controller{before}"
        ));
    }
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

/// How far an object is, for the progress display: a cargo's replica counts, and why it
/// is not ready yet.
fn progress(object: Option<&Value>) -> String {
    let Some(o) = object else {
        return "not found".to_owned();
    };
    let mut parts = Vec::new();
    if o["kind"] == Kind::Cargo.as_str() {
        let status = &o["status"];
        let desired = status["autoscale"]["desiredReplicas"]
            .as_i64()
            .filter(|_| o["spec"].get("autoscale").is_some())
            .unwrap_or_else(|| o["spec"]["replicas"].as_i64().unwrap_or(1));
        let ready = status["readyReplicas"].as_i64().unwrap_or(0);
        let updated = status["updatedReplicas"].as_i64().unwrap_or(0);
        let mut counts = format!("{ready}/{desired} replicas ready");
        if updated < desired && status["updateRevision"] != status["currentRevision"] {
            counts.push_str(&format!(", {updated} updated"));
        }
        parts.push(counts);
    }
    if let Err(why) = readiness(o) {
        parts.push(why);
    }
    parts.join("; ")
}

/// Waits until every object is Ready or `timeout` passes; prints each as it becomes ready,
/// and how far each is meanwhile: a live board on a terminal (stderr), a line per change
/// otherwise.
pub async fn until_ready(
    client: &Client,
    keys: &[ObjectKey],
    timeout: Duration,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let goal = Goal {
        what: "ready",
        check: |live: Option<&Value>| match live {
            Some(object) => readiness(object),
            None => Err("not found".to_owned()),
        },
        failed: "not ready",
        progress: Some(progress),
    };
    wait(client, keys, timeout, out, goal).await
}

/// Waits until every object is gone or `timeout` passes; prints each as it goes.
pub async fn until_gone(
    client: &Client,
    keys: &[ObjectKey],
    timeout: Duration,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    let goal = Goal {
        what: "deleted",
        check: |live: Option<&Value>| match live {
            None => Ok(()),
            Some(_) => Err("its finalizers have not finished".to_owned()),
        },
        failed: "still there",
        progress: None,
    };
    wait(client, keys, timeout, out, goal).await
}

/// What [`wait`] waits for.
struct Goal<F> {
    /// Printed per object when reached: `cargo/web ready`.
    what: &'static str,
    /// The live object (or its absence) → reached, or why not.
    check: F,
    /// Printed when the time is up: `cargo/web not ready after 5m: why`.
    failed: &'static str,
    /// How far an object is, shown while waiting (`None`: nothing shown).
    progress: Option<fn(Option<&Value>) -> String>,
}

/// The progress of the objects not there yet, on a terminal: one line each on stderr,
/// redrawn in place, cleared before anything else is printed.
#[derive(Default)]
struct Board {
    /// Lines drawn last.
    drawn: usize,
}

impl Board {
    fn clear(&mut self) {
        if self.drawn > 0 {
            // Up to the board's first line, then clear to the end of the screen.
            eprint!("\x1b[{}A\r\x1b[J", self.drawn);
            self.drawn = 0;
        }
    }

    fn draw(&mut self, rows: &[String]) {
        self.clear();
        let width = rustix::termios::tcgetwinsize(std::io::stderr())
            .map_or(100, |w| usize::from(w.ws_col).max(20));
        for row in rows {
            // One screen line each, or the count of lines to clear would be wrong.
            let line: String = row.chars().take(width - 1).collect();
            eprintln!("{line}");
        }
        self.drawn = rows.len();
    }
}

/// The board's rows: each pending object and how far it is.
fn board_rows(pending: &[ObjectKey], shown: &HashMap<ObjectKey, String>) -> Vec<String> {
    let names: Vec<String> = pending.iter().map(display_key).collect();
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    pending
        .iter()
        .zip(&names)
        .map(|(key, name)| {
            format!(
                "  {name:<width$}  {}",
                shown.get(key).map_or("waiting", String::as_str)
            )
        })
        .collect()
}

/// What a collection's watch says of one object: the object now, or `None` when it is gone.
pub(crate) type Seen = (ObjectKey, Option<Value>);

/// Follows one collection (one kind in one namespace): its list, then its watch from the
/// list's revision, sending what it sees of `names`; listed again when the watch ends or
/// its history is gone (410). Ends when the receiver does. `rollout status` follows its
/// cargo with it too.
pub(crate) async fn follow(
    client: Client,
    kind: Kind,
    namespace: Option<String>,
    names: Vec<String>,
    seen: tokio::sync::mpsc::UnboundedSender<anyhow::Result<Seen>>,
) {
    let key = |name: &str| ObjectKey {
        kind,
        namespace: namespace.clone(),
        name: name.to_owned(),
    };
    let collection = remote::collection_path(kind, namespace.as_deref());
    loop {
        let listed: anyhow::Result<(Vec<Value>, String)> = async {
            let answer = client.request(Method::GET, &collection, None).await?;
            if answer.status != StatusCode::OK {
                anyhow::bail!("listing {collection}: {}", answer.error_message());
            }
            let list = answer.json()?;
            let items = list["items"].as_array().cloned().unwrap_or_default();
            let rv = list["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or("0")
                .to_owned();
            Ok((items, rv))
        }
        .await;
        let (items, rv) = match listed {
            Ok(listed) => listed,
            Err(e) => {
                let _ = seen.send(Err(e));
                return;
            }
        };
        for name in &names {
            let object = items
                .iter()
                .find(|o| o["metadata"]["name"] == name.as_str())
                .cloned();
            if seen.send(Ok((key(name), object))).is_err() {
                return;
            }
        }
        let path = format!("{collection}?watch=true&resourceVersion={rv}");
        let body = match client.stream(&path).await {
            Ok(Ok(body)) => body,
            Ok(Err(answer)) => {
                let _ = seen.send(Err(anyhow::anyhow!(
                    "watching {collection}: {}",
                    answer.error_message()
                )));
                return;
            }
            Err(e) => {
                let _ = seen.send(Err(e.into()));
                return;
            }
        };
        let mut lines = Lines::new(body);
        // Until the stream ends or says its history is gone: then list again.
        while let Ok(Some(event)) = lines.next().await {
            let object = &event["object"];
            let Some(name) = object["metadata"]["name"].as_str() else {
                continue;
            };
            if !names.iter().any(|n| n == name) {
                continue;
            }
            let now = match event["type"].as_str() {
                Some("ADDED" | "MODIFIED") => Some(object.clone()),
                Some("DELETED") => None,
                _ => continue,
            };
            if seen.send(Ok((key(name), now))).is_err() {
                return;
            }
        }
        if seen.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits on the watch API (no polling) until every object reaches `goal` or `timeout`
/// passes.
async fn wait<F: Fn(Option<&Value>) -> Result<(), String>>(
    client: &Client,
    keys: &[ObjectKey],
    timeout: Duration,
    out: &mut impl Write,
    goal: Goal<F>,
) -> anyhow::Result<bool> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pending: Vec<ObjectKey> = keys.to_vec();
    pending.dedup();
    // The board needs both on the terminal: it is drawn on stderr between stdout's lines.
    let terminal = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
    writeln!(
        out,
        "waiting for {} object{} to be {}...",
        pending.len(),
        if pending.len() == 1 { "" } else { "s" },
        goal.what
    )?;
    out.flush()?;
    let mut collections: BTreeMap<(Kind, Option<String>), Vec<String>> = BTreeMap::new();
    for key in &pending {
        collections
            .entry((key.kind, key.namespace.clone()))
            .or_default()
            .push(key.name.clone());
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let followers: Vec<_> = collections
        .into_iter()
        .map(|((kind, namespace), names)| {
            tokio::spawn(follow(client.clone(), kind, namespace, names, tx.clone()))
        })
        .collect();
    drop(tx);
    let mut last_reason: HashMap<ObjectKey, String> = HashMap::new();
    // What the progress display shows of each pending object.
    let mut shown: HashMap<ObjectKey, String> = HashMap::new();
    let mut board = Board::default();
    let outcome = loop {
        if pending.is_empty() {
            break Ok(true);
        }
        if terminal && goal.progress.is_some() {
            board.draw(&board_rows(&pending, &shown));
        }
        let next = tokio::time::timeout_at(deadline, rx.recv()).await;
        board.clear();
        match next {
            Err(_) => {
                for key in &pending {
                    eprintln!(
                        "error: {} {} after {}: {}",
                        display_key(key),
                        goal.failed,
                        humantime::format_duration(timeout),
                        last_reason.get(key).map_or("", String::as_str)
                    );
                }
                break Ok(false);
            }
            Ok(None) => break Err(anyhow::anyhow!("the watch ended")),
            Ok(Some(Err(e))) => break Err(e),
            Ok(Some(Ok((key, live)))) => {
                let Some(at) = pending.iter().position(|k| *k == key) else {
                    continue;
                };
                match (goal.check)(live.as_ref()) {
                    Ok(()) => {
                        pending.remove(at);
                        shown.remove(&key);
                        writeln!(out, "{} {}", display_key(&key), goal.what)?;
                        out.flush()?;
                    }
                    Err(why) => {
                        if let Some(progress) = goal.progress {
                            let now = progress(live.as_ref());
                            if shown.get(&key) != Some(&now) {
                                if !terminal {
                                    writeln!(out, "{}: {now}", display_key(&key))?;
                                    out.flush()?;
                                }
                                shown.insert(key.clone(), now);
                            }
                        }
                        last_reason.insert(key, why);
                    }
                }
            }
        }
    };
    board.clear();
    for follower in followers {
        follower.abort();
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn progress_should_count_replicas_and_say_why_not_ready() {
        let cargo = json!({
            "kind": "Cargo",
            "metadata": {"generation": 2},
            "spec": {"replicas": 3},
            "status": {"observedGeneration": 2, "readyReplicas": 1, "updatedReplicas": 1,
                       "currentRevision": 1, "updateRevision": 2,
                       "conditions": [{"type": "Ready", "status": "False", "reason": "Progressing", "message": "rolling out revision 2"}]},
        });
        assert_eq!(
            progress(Some(&cargo)),
            "1/3 replicas ready, 1 updated; Progressing: rolling out revision 2"
        );
        let fresh =
            json!({"kind": "Cargo", "metadata": {"generation": 1}, "spec": {"replicas": 2}});
        assert_eq!(
            progress(Some(&fresh)),
            "0/2 replicas ready; this change not yet observed by its controller"
        );
        let cluster = json!({"kind": "Cluster", "metadata": {"generation": 1},
            "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "False", "reason": "AddressPoolExhausted", "message": "no address pool left"}]}});
        assert_eq!(
            progress(Some(&cluster)),
            "AddressPoolExhausted: no address pool left"
        );
        assert_eq!(progress(None), "not found");
    }

    #[test]
    fn the_board_should_align_names_and_show_waiting_until_seen() {
        let key = |name: &str| ObjectKey {
            kind: Kind::Cargo,
            namespace: Some("shop".into()),
            name: name.into(),
        };
        let pending = [key("web"), key("backend")];
        let shown = HashMap::from([(key("web"), "1/2 replicas ready".to_owned())]);
        let rows = board_rows(&pending, &shown);
        assert_eq!(
            rows,
            [
                "  cargo/web (namespace shop)      1/2 replicas ready",
                "  cargo/backend (namespace shop)  waiting"
            ]
        );
    }
}
