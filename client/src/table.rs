//! How objects are shown in tables: the columns of each kind, as `nanocl get` prints them
//! and as nanocld answers kubectl's Table requests (one definition for both).

use std::time::SystemTime;

use nanocl_api_types::Kind;
use serde_json::Value;

/// `5s`, `12m`, `3h`, `4d` since an RFC 3339 time.
pub fn age(timestamp: Option<&str>) -> String {
    let Some(t) = timestamp.and_then(|t| humantime::parse_rfc3339(t).ok()) else {
        return "<unknown>".into();
    };
    let secs = SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 120 * 60 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Condition `type_` of `object`'s status.
pub fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// The column names of `kind` (`wide`: the extra ones too; `all_namespaces`: NAMESPACE first).
pub fn header(kind: Kind, wide: bool, all_namespaces: bool) -> Vec<&'static str> {
    let mut h = Vec::new();
    if all_namespaces && kind.namespaced() {
        h.push("NAMESPACE");
    }
    h.push("NAME");
    match kind {
        Kind::Namespace => h.push("STATUS"),
        Kind::Cluster => h.extend(["VARIABLES", "READY"]),
        Kind::Secret => h.extend(["TYPE", "DATA"]),
        Kind::Network => {
            h.extend(["CLUSTER", "DRIVER"]);
            if wide {
                h.extend(["INTERNAL", "SUBNET"]);
            }
        }
        Kind::Replica => {
            h.extend(["CARGO", "SLOT", "NODE", "PHASE", "READY", "RESTARTS"]);
            if wide {
                h.extend(["CONTAINER", "HEALTH", "IMAGE", "REASON"]);
            }
        }
        Kind::Cargo => {
            h.extend(["CLUSTER", "READY", "UP-TO-DATE"]);
            if wide {
                h.extend(["IMAGE", "NETWORKS", "NODES", "REVISION", "AUTOSCALE"]);
            }
        }
        Kind::ProxyRule => {
            h.extend(["CLUSTER", "LISTENERS", "ROUTES"]);
            if wide {
                h.push("READY-BACKENDS");
            }
        }
        Kind::Node => {
            h.extend(["STATUS", "VERSION", "DOCKER"]);
            if wide {
                h.extend(["ADDRESSES", "CPUS", "MEMORY"]);
            }
        }
    }
    h.push("AGE");
    h
}

/// A node's status as `kubectl get nodes` shows it: `Ready`, `NotReady` or `Unknown`, and
/// `SchedulingDisabled` when cordoned.
pub fn node_status(o: &Value) -> String {
    let mut status = match condition(o, "Ready").and_then(|c| c["status"].as_str()) {
        Some("True") => "Ready".to_owned(),
        Some("False") => "NotReady".to_owned(),
        _ => "Unknown".to_owned(),
    };
    if o["spec"]["unschedulable"].as_bool() == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

/// Memory in bytes as `kubectl` would write it: `7.6Gi`, `512Mi`.
pub fn bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)];
    for (unit, size) in UNITS {
        if n >= size {
            #[allow(
                clippy::cast_precision_loss,
                reason = "a one-decimal display of a memory size"
            )]
            let value = n as f64 / size as f64;
            return format!("{value:.1}{unit}");
        }
    }
    n.to_string()
}

/// A Node's cells after its name.
pub fn node_row(o: &Value, wide: bool, r: &mut Vec<String>) {
    let status = &o["status"];
    let text = |v: &Value| v.as_str().unwrap_or("<none>").to_owned();
    r.push(node_status(o));
    r.push(text(&status["nanoclVersion"]));
    r.push(text(&status["dockerVersion"]));
    if wide {
        let addresses: Vec<&str> = status["addresses"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        r.push(if addresses.is_empty() {
            "<none>".into()
        } else {
            addresses.join(",")
        });
        let capacity = &status["capacity"];
        r.push(
            capacity["cpus"]
                .as_u64()
                .map_or("<none>".into(), |c| c.to_string()),
        );
        r.push(
            capacity["memoryBytes"]
                .as_u64()
                .map_or("<none>".into(), bytes),
        );
    }
}

/// A ProxyRule's columns: its cluster, listeners (`127.0.0.1:80/http`), routes
/// (`shop.example.com/api→backend:8080`, `tcp:5432→db:5432`), and with `wide` the ready
/// replicas of each cargo it routes to.
pub fn proxy_rule_row(o: &Value, wide: bool, placed: &Placed, r: &mut Vec<String>) {
    let spec = &o["spec"];
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    r.push(spec["cluster"].as_str().unwrap_or("").to_owned());
    let listeners: Vec<String> = list(&spec["listeners"])
        .iter()
        .map(|l| {
            format!(
                "{}:{}/{}",
                l["hostIP"].as_str().unwrap_or("127.0.0.1"),
                l["port"],
                l["protocol"].as_str().unwrap_or("http")
            )
        })
        .collect();
    r.push(if listeners.is_empty() {
        "<none>".into()
    } else {
        listeners.join(",")
    });
    let mut cargoes: Vec<String> = Vec::new();
    let mut routes: Vec<String> = list(&spec["http"])
        .iter()
        .map(|h| {
            let (host, path) = (
                h["host"].as_str().unwrap_or("*"),
                h["path"].as_str().unwrap_or("/"),
            );
            if let Some(url) = h["redirect"]["url"].as_str() {
                return format!("{host}{path}→{url}");
            }
            let cargo = h["cargo"].as_str().unwrap_or("").to_owned();
            cargoes.push(cargo.clone());
            format!("{host}{path}→{cargo}:{}", h["port"])
        })
        .collect();
    routes.extend(list(&spec["tcp"]).iter().map(|t| {
        let cargo = t["cargo"].as_str().unwrap_or("").to_owned();
        cargoes.push(cargo.clone());
        format!("tcp:{}→{cargo}:{}", t["listener"], t["port"])
    }));
    r.push(if routes.is_empty() {
        "<none>".into()
    } else {
        routes.join(",")
    });
    if wide {
        cargoes.sort();
        cargoes.dedup();
        let ready: Vec<String> = cargoes
            .iter()
            .map(|c| format!("{c}:{}", placed.ready_of(o, c)))
            .collect();
        r.push(if ready.is_empty() {
            "<none>".into()
        } else {
            ready.join(",")
        });
    }
}

/// A cargo's revision for `get -o wide`: the current one, `N→M` while moving to M, `<none>`
/// before the first is recorded.
pub fn revision_column(o: &Value) -> String {
    let status = &o["status"];
    match (
        status["currentRevision"].as_u64(),
        status["updateRevision"].as_u64(),
    ) {
        (Some(c), Some(u)) if c != u => format!("{c}→{u}"),
        (Some(c), _) => c.to_string(),
        (None, Some(u)) => format!("→{u}"),
        (None, None) => "<none>".to_owned(),
    }
}

/// A cargo's autoscaler for `get -o wide`: `MIN-MAX` and each target's measured use against
/// it (`2-6 cpu 45%/60%`), `<none>` without `spec.autoscale`.
pub fn autoscale_column(o: &Value) -> String {
    let spec = &o["spec"]["autoscale"];
    if !spec.is_object() {
        return "<none>".to_owned();
    }
    let status = &o["status"]["autoscale"];
    let mut out = format!(
        "{}-{}",
        spec["minReplicas"].as_i64().unwrap_or(1),
        spec["maxReplicas"].as_i64().unwrap_or(0)
    );
    for (name, target, current) in [
        (
            "cpu",
            "targetCPUUtilizationPercent",
            "currentCPUUtilizationPercent",
        ),
        (
            "mem",
            "targetMemoryUtilizationPercent",
            "currentMemoryUtilizationPercent",
        ),
    ] {
        if let Some(t) = spec[target].as_i64() {
            let now = status[current]
                .as_i64()
                .map_or("?".to_owned(), |c| format!("{c}%"));
            out.push_str(&format!(" {name} {now}/{t}%"));
        }
    }
    out
}

/// The cells of `o` under [`header`]`(kind, wide, all_namespaces)`.
pub fn row(
    kind: Kind,
    o: &Value,
    wide: bool,
    all_namespaces: bool,
    placed: &Placed,
) -> Vec<String> {
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let meta = &o["metadata"];
    let mut r = Vec::new();
    if all_namespaces && kind.namespaced() {
        r.push(s(&meta["namespace"]));
    }
    r.push(s(&meta["name"]));
    let ready = |o: &Value| condition(o, "Ready").map_or("Unknown".to_owned(), |c| s(&c["status"]));
    match kind {
        Kind::Node => node_row(o, wide, &mut r),
        Kind::Replica => {
            let st = &o["status"];
            // A report from a node the replica has left says nothing of it.
            let reported = st["node"] == o["spec"]["node"];
            r.push(s(&o["spec"]["cargo"]));
            r.push(o["spec"]["slot"].as_u64().unwrap_or(0).to_string());
            r.push(s(&o["spec"]["node"]));
            r.push(if meta.get("deletionTimestamp").is_some() {
                "Terminating".to_owned()
            } else if reported {
                st["phase"].as_str().unwrap_or("Pending").to_owned()
            } else {
                "Pending".to_owned()
            });
            r.push((reported && st["ready"].as_bool().unwrap_or(false)).to_string());
            r.push(
                st["restarts"]
                    .as_u64()
                    .filter(|_| reported)
                    .unwrap_or(0)
                    .to_string(),
            );
            if wide {
                let shown = |field: &str, none: &str| {
                    st[field]
                        .as_str()
                        .filter(|_| reported)
                        .unwrap_or(none)
                        .to_owned()
                };
                r.push(shown("container", "<none>"));
                r.push(shown("health", "<none>"));
                r.push(shown("image", "<none>"));
                r.push(
                    st["reason"]
                        .as_str()
                        .filter(|_| reported)
                        .unwrap_or("")
                        .to_owned(),
                );
            }
        }
        Kind::Namespace => r.push(if meta.get("deletionTimestamp").is_some() {
            "Terminating".into()
        } else {
            o["status"]["phase"].as_str().unwrap_or("Active").to_owned()
        }),
        Kind::Cluster => {
            r.push(
                o["spec"]["variables"]
                    .as_object()
                    .map_or(0, |m| m.len())
                    .to_string(),
            );
            r.push(ready(o));
        }
        Kind::ProxyRule => proxy_rule_row(o, wide, placed, &mut r),
        Kind::Secret => {
            r.push(o["spec"]["type"].as_str().unwrap_or("opaque").to_owned());
            r.push(
                o["spec"]["data"]
                    .as_object()
                    .map_or(0, |m| m.len())
                    .to_string(),
            );
        }
        Kind::Network => {
            r.push(s(&o["spec"]["cluster"]));
            r.push(s(&o["spec"]["driver"]));
            if wide {
                r.push(o["spec"]["internal"].as_bool().unwrap_or(false).to_string());
                r.push(o["spec"]["subnet"].as_str().unwrap_or("<auto>").to_owned());
            }
        }
        Kind::Cargo => {
            r.push(s(&o["spec"]["cluster"]));
            // With autoscale, what the autoscaler decided (the spec's count only started it).
            let desired = o["status"]["autoscale"]["desiredReplicas"]
                .as_i64()
                .filter(|_| o["spec"].get("autoscale").is_some())
                .unwrap_or_else(|| o["spec"]["replicas"].as_i64().unwrap_or(1));
            r.push(format!(
                "{}/{desired}",
                o["status"]["readyReplicas"].as_i64().unwrap_or(0)
            ));
            r.push(
                o["status"]["updatedReplicas"]
                    .as_i64()
                    .unwrap_or(0)
                    .to_string(),
            );
            if wide {
                // A built cargo's: the image its last build made.
                r.push(match o["spec"]["container"]["image"].as_str() {
                    Some(image) if !image.is_empty() => image.to_owned(),
                    _ => o["status"]["build"]["image"]
                        .as_str()
                        .unwrap_or("<building>")
                        .to_owned(),
                });
                let nets: Vec<String> = o["spec"]["networks"]
                    .as_array()
                    .map(|a| a.iter().map(s).collect())
                    .unwrap_or_default();
                r.push(if nets.is_empty() {
                    "<default>".into()
                } else {
                    nets.join(",")
                });
                r.push(placed.nodes_of(o));
                r.push(revision_column(o));
                r.push(autoscale_column(o));
            }
        }
    }
    if undecodable(o).is_some() {
        // nanocld cannot decode it: its spec columns mean nothing; say so in the first.
        let first = usize::from(all_namespaces && kind.namespaced()) + 1;
        for (i, cell) in r.iter_mut().enumerate().skip(first) {
            *cell = if i == first {
                "<undecodable>".to_owned()
            } else {
                String::new()
            };
        }
    }
    r.push(age(meta["creationTimestamp"].as_str()));
    r
}

/// What nanocld says of an object it cannot decode (its list marker), if it is one.
pub fn undecodable(object: &Value) -> Option<&str> {
    let ready = condition(object, "Ready")?;
    (ready["reason"] == "Undecodable").then(|| ready["message"].as_str().unwrap_or(""))
}

/// The Replicas of a namespace (or all), for the nodes of cargoes.
#[derive(Debug, Default)]
pub struct Placed(pub Vec<Value>);

impl Placed {
    /// How many replicas of cargo `cargo` (in `o`'s namespace) the proxy sends traffic to.
    pub fn ready_of(&self, o: &Value, cargo: &str) -> usize {
        self.0
            .iter()
            .filter(|r| {
                r["spec"]["cargo"] == cargo
                    && r["metadata"]["namespace"] == o["metadata"]["namespace"]
                    && r["status"]["serving"].is_string()
                    && r["status"]["node"] == r["spec"]["node"]
            })
            .count()
    }

    /// `host-0:2,host-1:1`: how many replicas of cargo `o` each node has, `<none>` without.
    pub fn nodes_of(&self, o: &Value) -> String {
        let mut count: std::collections::BTreeMap<&str, usize> = Default::default();
        for r in &self.0 {
            if r["spec"]["cargo"] == o["metadata"]["name"]
                && r["metadata"]["namespace"] == o["metadata"]["namespace"]
                && r["metadata"].get("deletionTimestamp").is_none()
            {
                *count
                    .entry(r["spec"]["node"].as_str().unwrap_or(""))
                    .or_default() += 1;
            }
        }
        if count.is_empty() {
            return "<none>".to_owned();
        }
        count
            .iter()
            .map(|(node, n)| format!("{node}:{n}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}
