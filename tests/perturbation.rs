//! Stale-state and missed-event perturbations (as Sieve injects them), on etcd: nanocld is
//! paused (SIGSTOP) for 12 s while 190 writes, deletions and a compaction happen under its
//! prefix, then resumed, three times over. Each time, every object must converge: each cargo's
//! `observedGeneration` catches up with its `generation`, an object marked for deletion is
//! gone, and a namespace marked for deletion is emptied and gone.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use etcd_client::{Client, CompactionOptions, GetOptions};
use nanocl_e2e::docker::Scope;
use nanocl_e2e::{etcd_endpoint, stderr, stdout, Daemon, StoreKind};
use serde_json::{json, Value};

/// How long the objects may take to converge after the resume.
const CONVERGE: Duration = Duration::from_secs(40);

fn apply(d: &Daemon, yaml: &str) {
    let file = d.dir.path().join("perturbation.yaml");
    std::fs::write(&file, yaml).expect("write manifest");
    let out = d.nanocl(&["apply", "-f", &file.display().to_string()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "apply: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

fn namespace_with_cargoes(ns: &str, cargoes: &[&str]) -> String {
    let mut yaml = format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n"
    );
    for name in cargoes {
        yaml.push_str(&cargo(ns, name));
    }
    yaml
}

fn cargo(ns: &str, name: &str) -> String {
    // No replicas: the perturbation is about the store and the caches, not Docker.
    format!(
        "---\napiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  cluster: dev\n  replicas: 0\n  container:\n    image: nanocl-test/busybox:latest\n"
    )
}

struct Etcd {
    client: Client,
    prefix: String,
}

impl Etcd {
    async fn get(&mut self, key: &str) -> Option<Value> {
        let resp = self
            .client
            .get(format!("{}/{key}", self.prefix), None)
            .await
            .expect("etcd get");
        resp.kvs()
            .first()
            .map(|kv| serde_json::from_slice(kv.value()).expect("stored json"))
    }

    async fn put(&mut self, key: &str, value: &Value) {
        self.client
            .put(format!("{}/{key}", self.prefix), value.to_string(), None)
            .await
            .expect("etcd put");
    }

    /// Every stored object under `{plural}/{ns}/`, by name.
    async fn list(&mut self, plural: &str, ns: &str) -> BTreeMap<String, Value> {
        let resp = self
            .client
            .get(
                format!("{}/{plural}/{ns}/", self.prefix),
                Some(GetOptions::new().with_prefix()),
            )
            .await
            .expect("etcd list");
        resp.kvs()
            .iter()
            .map(|kv| {
                let value: Value = serde_json::from_slice(kv.value()).expect("stored json");
                (
                    value["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                    value,
                )
            })
            .collect()
    }

    /// Marks the object for deletion, as the API's DELETE does for one with finalizers.
    async fn mark_deleted(&mut self, key: &str) {
        let mut value = self.get(key).await.expect("object to delete");
        value["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        self.put(key, &value).await;
    }

    async fn compact(&mut self) -> i64 {
        let revision = self
            .client
            .get(
                format!("{}/", self.prefix),
                Some(GetOptions::new().with_count_only()),
            )
            .await
            .expect("etcd revision")
            .header()
            .map_or(0, |h| h.revision());
        self.client
            .compact(revision, Some(CompactionOptions::new().with_physical()))
            .await
            .expect("etcd compact");
        revision
    }
}

fn converged(cargoes: &BTreeMap<String, Value>) -> bool {
    cargoes
        .values()
        .all(|c| c["status"]["observedGeneration"] == c["metadata"]["generation"])
}

fn stale(cargoes: &BTreeMap<String, Value>) -> Vec<String> {
    cargoes
        .values()
        .filter(|c| c["status"]["observedGeneration"] != c["metadata"]["generation"])
        .map(|c| {
            format!(
                "{} (observedGeneration {} against generation {}, deletionTimestamp {})",
                c["metadata"]["name"],
                c["status"]["observedGeneration"],
                c["metadata"]["generation"],
                c["metadata"]["deletionTimestamp"]
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_nanocld_through_writes_deletes_and_a_compaction_should_still_converge() {
    let keep = Scope::new("pert");
    let d = Daemon::start_with_controllers(StoreKind::Etcd);
    let client = Client::connect([etcd_endpoint()], None)
        .await
        .expect("connect to etcd");
    let mut etcd = Etcd {
        client,
        prefix: d.etcd_prefix.clone().expect("etcd prefix"),
    };
    let names = ["c0", "c1", "c2", "c3"];
    apply(&d, &namespace_with_cargoes(&keep.ns, &names));
    let mut doomed_scopes = Vec::new();
    for round in 0..3 {
        let doomed = Scope::new(&format!("pert{round}"));
        apply(&d, &namespace_with_cargoes(&doomed.ns, &["x0", "x1"]));
        apply(&d, &cargo(&keep.ns, "tmp"));
        let deadline = Instant::now() + CONVERGE;
        loop {
            let ready = converged(&etcd.list("cargoes", &keep.ns).await)
                && converged(&etcd.list("cargoes", &doomed.ns).await)
                && etcd
                    .get(&format!("namespaces/{}", doomed.ns))
                    .await
                    .is_some_and(|n| {
                        n["metadata"]["finalizers"]
                            .as_array()
                            .is_some_and(|f| !f.is_empty())
                    });
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: no convergence before the pause"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        d.signal("STOP");
        let mut latest = etcd.list("cargoes", &keep.ns).await;
        // Big enough values that nanocld's unread watch stream fills etcd's buffers (its
        // watcher falls behind, the slow-watcher path), a compaction in the middle of the
        // writes, and a pause longer than the store's progress-request interval (10 s).
        let padding = "x".repeat(4096);
        let mut compacted = 0;
        for i in 0..190 {
            if i == 120 {
                compacted = etcd.compact().await;
            }
            let name = names[i % names.len()];
            let object = latest.get_mut(name).expect("cargo");
            let generation = object["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            object["metadata"]["generation"] = json!(generation);
            object["spec"]["container"]["env"] =
                json!({"ROUND": format!("{round}-{i}"), "PADDING": padding});
            let value = object.clone();
            etcd.put(&format!("cargoes/{}/{name}", keep.ns), &value)
                .await;
        }
        etcd.mark_deleted(&format!("cargoes/{}/tmp", keep.ns)).await;
        etcd.mark_deleted(&format!("namespaces/{}", doomed.ns))
            .await;
        tokio::time::sleep(Duration::from_secs(12)).await;
        d.signal("CONT");

        let resumed = Instant::now();
        let deadline = resumed + CONVERGE;
        loop {
            let kept = etcd.list("cargoes", &keep.ns).await;
            let doomed_cargoes = etcd.list("cargoes", &doomed.ns).await;
            let doomed_ns = etcd.get(&format!("namespaces/{}", doomed.ns)).await;
            if converged(&kept)
                && !kept.contains_key("tmp")
                && doomed_cargoes.is_empty()
                && doomed_ns.is_none()
            {
                println!(
                    "round {round}: converged {:.1} s after the resume (compacted at {compacted})",
                    resumed.elapsed().as_secs_f64()
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: not converged {}s after the resume: stale {:?}; tmp still there: {}; doomed namespace cargoes {:?}, namespace {}\nlog:\n{}",
                CONVERGE.as_secs(),
                stale(&kept),
                kept.contains_key("tmp"),
                doomed_cargoes.keys().collect::<Vec<_>>(),
                doomed_ns.map_or("gone".to_owned(), |n| n["metadata"].to_string()),
                d.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        doomed_scopes.push(doomed);
    }
}
