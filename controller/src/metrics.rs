//! Counters for `/metrics`, in the Prometheus text format: the API server's, the
//! controllers' and the deploy directories'. One `Arc<Metrics>` is shared by all of them.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use nanocl_api_types::Kind;

use nanocl_client::deploy::SyncReport;

/// What the API server counts.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// Open watch streams.
    pub watchers: AtomicI64,
    /// 1 while this nanocld leads (runs the controllers), 0 while it waits; absent from the
    /// output when it runs no controllers.
    pub leading: Mutex<Option<bool>>,
    deploy: Mutex<BTreeMap<String, DeployDir>>,
    panics: Mutex<BTreeMap<Kind, Arc<AtomicU64>>>,
    undecodable: Mutex<BTreeMap<Kind, usize>>,
    /// Finished updates, by result (`complete`, `failed`, `rolled_back`).
    rollouts: Mutex<BTreeMap<&'static str, u64>>,
    /// Autoscaler decisions that changed a count, by direction (`up`, `down`).
    autoscale: Mutex<BTreeMap<&'static str, u64>>,
    /// Per cargo (namespace, name) with an update in progress or `autoscale`.
    cargoes: Mutex<BTreeMap<(String, String), CargoGauges>>,
    /// The node proxy: per rule (`namespace/name`), what it answered.
    proxy: Mutex<BTreeMap<String, ProxyCounts>>,
    /// The node proxy: per rule and cargo, its ready backends now.
    proxy_backends: Mutex<BTreeMap<(String, String), usize>>,
    /// The node proxy's own process's request counts, rendered.
    proxy_remote: Mutex<Option<String>>,
    /// The node proxy's relay: connections of other nodes' proxies carried to replicas here.
    proxy_relayed: std::sync::atomic::AtomicU64,
}

/// The upper bounds of the proxy's latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What the proxy answered for one rule.
#[derive(Debug, Default)]
struct ProxyCounts {
    /// By status class (`2xx` … `5xx`).
    classes: BTreeMap<&'static str, u64>,
    /// Per bucket of `LATENCY_BUCKETS` (not cumulative), then the sum and the count.
    buckets: [u64; LATENCY_BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// What `/metrics` shows of one cargo.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CargoGauges {
    /// Replicas wanted.
    pub replicas: u32,
    /// Replicas of the revision being rolled out that are ready, while an update runs.
    pub rollout_ready: Option<u32>,
    /// Sum of the measured CPUs of its replicas, with `autoscale`.
    pub cpus: Option<f64>,
    /// Sum of the measured memory of its replicas, in bytes, with `autoscale`.
    pub memory: Option<u64>,
}

#[derive(Debug, Default)]
struct DeployDir {
    syncs: u64,
    failures: u64,
    last: Option<(SyncReport, f64)>,
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Records a finished sync of a deploy directory.
    pub fn record_deploy_sync(&self, dir: &str, sync: &SyncReport) {
        let mut deploy = self
            .deploy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = deploy.entry(dir.to_owned()).or_default();
        entry.syncs += 1;
        entry.last = Some((sync.clone(), unix_now()));
    }

    /// Records a sync of a deploy directory that could not finish (nanocld's store
    /// unavailable, the directory missing).
    pub fn record_deploy_failure(&self, dir: &str) {
        let mut deploy = self
            .deploy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        deploy.entry(dir.to_owned()).or_default().failures += 1;
    }

    /// The counter of panicked reconciles of `kind`, for its runner.
    pub fn reconcile_panics(&self, kind: Kind) -> Arc<AtomicU64> {
        self.panics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(kind)
            .or_default()
            .clone()
    }

    /// Counts a finished update: `complete`, `failed` or `rolled_back`.
    pub fn record_rollout(&self, result: &'static str) {
        *self
            .rollouts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(result)
            .or_default() += 1;
    }

    /// Counts an autoscaler decision that changed a count: `up` or `down`.
    pub fn record_autoscale(&self, direction: &'static str) {
        *self
            .autoscale
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(direction)
            .or_default() += 1;
    }

    /// Sets the gauges of cargo `name` of `namespace` (`None`: it has none to show).
    pub fn set_cargo(&self, namespace: &str, name: &str, gauges: Option<CargoGauges>) {
        let mut cargoes = self
            .cargoes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (namespace.to_owned(), name.to_owned());
        match gauges {
            Some(g) => {
                cargoes.insert(key, g);
            }
            None => {
                cargoes.remove(&key);
            }
        }
    }

    /// Sets how many stored objects of `kind` cannot be decoded right now.
    pub fn set_undecodable(&self, kind: Kind, count: usize) {
        self.undecodable
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(kind, count);
    }

    /// Counts one request the proxy answered for rule `rule` (`namespace/name`).
    pub fn record_proxied(&self, rule: &str, status: u16, seconds: f64) {
        let mut proxy = self
            .proxy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !proxy.contains_key(rule) {
            proxy.insert(rule.to_owned(), ProxyCounts::default());
        }
        let Some(counts) = proxy.get_mut(rule) else {
            return;
        };
        let class = match status / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        };
        *counts.classes.entry(class).or_default() += 1;
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| seconds <= *b) {
            counts.buckets[i] += 1;
        }
        counts.sum += seconds;
        counts.count += 1;
    }

    /// Counts one connection the relay carried from another node's proxy.
    pub fn count_relayed(&self) {
        self.proxy_relayed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The ready backends of each (rule, cargo) of the proxy, replacing what was there.
    pub fn set_proxy_backends(&self, backends: BTreeMap<(String, String), usize>) {
        *self
            .proxy_backends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = backends;
    }

    /// What the proxy process counted (its `render_proxy_requests`), shown in place of this
    /// process's own counts; `None` while it is not known.
    pub fn set_proxy_requests(&self, text: Option<String>) {
        *self
            .proxy_remote
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = text;
    }

    fn render_proxy(&self, out: &mut String) {
        let remote = self
            .proxy_remote
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match remote {
            Some(text) => out.push_str(&text),
            None => out.push_str(&self.render_proxy_requests()),
        }
        self.render_proxy_backends(out);
    }

    /// The proxy's request counts and latency histogram.
    pub fn render_proxy_requests(&self) -> String {
        let mut out = String::new();
        let out = &mut out;
        let proxy = self
            .proxy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = writeln!(out, "# HELP nanocl_proxy_requests_total Requests the node proxy answered, by rule and status class.");
        let _ = writeln!(out, "# TYPE nanocl_proxy_requests_total counter");
        for (rule, c) in proxy.iter() {
            for (class, n) in &c.classes {
                let _ = writeln!(
                    out,
                    "nanocl_proxy_requests_total{{rule=\"{}\",class=\"{class}\"}} {n}",
                    escape_label(rule)
                );
            }
        }
        let _ = writeln!(out, "# HELP nanocl_proxy_request_duration_seconds Time from a request's arrival at the proxy to its response's head, by rule.");
        let _ = writeln!(
            out,
            "# TYPE nanocl_proxy_request_duration_seconds histogram"
        );
        for (rule, c) in proxy.iter() {
            let rule = escape_label(rule);
            let mut cumulative = 0;
            for (bound, n) in LATENCY_BUCKETS.iter().zip(c.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "nanocl_proxy_request_duration_seconds_bucket{{rule=\"{rule}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "nanocl_proxy_request_duration_seconds_bucket{{rule=\"{rule}\",le=\"+Inf\"}} {}",
                c.count
            );
            let _ = writeln!(
                out,
                "nanocl_proxy_request_duration_seconds_sum{{rule=\"{rule}\"}} {:.6}",
                c.sum
            );
            let _ = writeln!(
                out,
                "nanocl_proxy_request_duration_seconds_count{{rule=\"{rule}\"}} {}",
                c.count
            );
        }
        drop(proxy);
        let _ = writeln!(out, "# HELP nanocl_proxy_relayed_connections_total Connections of other nodes' proxies this node's relay carried to its replicas.");
        let _ = writeln!(out, "# TYPE nanocl_proxy_relayed_connections_total counter");
        let _ = writeln!(
            out,
            "nanocl_proxy_relayed_connections_total {}",
            self.proxy_relayed
                .load(std::sync::atomic::Ordering::Relaxed)
        );
        out.clone()
    }

    fn render_proxy_backends(&self, out: &mut String) {
        let backends = self
            .proxy_backends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = writeln!(out, "# HELP nanocl_proxy_ready_backends Ready replicas the node proxy sends a rule's traffic for a cargo to.");
        let _ = writeln!(out, "# TYPE nanocl_proxy_ready_backends gauge");
        for ((rule, cargo), n) in backends.iter() {
            let _ = writeln!(
                out,
                "nanocl_proxy_ready_backends{{rule=\"{}\",cargo=\"{}\"}} {n}",
                escape_label(rule),
                escape_label(cargo)
            );
        }
    }

    /// Counts one answered request.
    pub fn record(&self, method: &str, code: u16) {
        let mut requests = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *requests.entry((method.to_owned(), code)).or_default() += 1;
    }

    /// The exposition text.
    pub fn render(&self, store: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP nanocl_build_info Build and store of this nanocld."
        );
        let _ = writeln!(out, "# TYPE nanocl_build_info gauge");
        let _ = writeln!(
            out,
            "nanocl_build_info{{version=\"{}\",store=\"{store}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        let _ = writeln!(out, "# HELP nanocl_apiserver_requests_total API requests answered, by method and status code.");
        let _ = writeln!(out, "# TYPE nanocl_apiserver_requests_total counter");
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for ((method, code), n) in requests.iter() {
            let _ = writeln!(
                out,
                "nanocl_apiserver_requests_total{{method=\"{method}\",code=\"{code}\"}} {n}"
            );
        }
        let _ = writeln!(out, "# HELP nanocl_apiserver_watchers Open watch streams.");
        let _ = writeln!(out, "# TYPE nanocl_apiserver_watchers gauge");
        let _ = writeln!(
            out,
            "nanocl_apiserver_watchers {}",
            self.watchers.load(Ordering::Relaxed)
        );
        let leading = *self
            .leading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(leading) = leading {
            let _ = writeln!(out, "# HELP nanocl_controllers_leading 1 while this nanocld leads and runs the controllers, 0 while another one does.");
            let _ = writeln!(out, "# TYPE nanocl_controllers_leading gauge");
            let _ = writeln!(out, "nanocl_controllers_leading {}", u8::from(leading));
        }
        self.render_controllers(&mut out);
        self.render_cargoes(&mut out);
        self.render_proxy(&mut out);
        self.render_deploy(&mut out);
        out
    }

    fn render_cargoes(&self, out: &mut String) {
        let lock = |m: &Mutex<BTreeMap<&'static str, u64>>| {
            m.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        };
        let rollouts = lock(&self.rollouts);
        let _ = writeln!(out, "# HELP nanocl_rollouts_total Cargo updates finished, by result (complete, failed, rolled_back).");
        let _ = writeln!(out, "# TYPE nanocl_rollouts_total counter");
        for result in ["complete", "failed", "rolled_back"] {
            let n = rollouts.get(result).copied().unwrap_or(0);
            let _ = writeln!(out, "nanocl_rollouts_total{{result=\"{result}\"}} {n}");
        }
        let autoscale = lock(&self.autoscale);
        let _ = writeln!(out, "# HELP nanocl_autoscale_decisions_total Autoscaler decisions that changed a cargo's replica count, by direction.");
        let _ = writeln!(out, "# TYPE nanocl_autoscale_decisions_total counter");
        for direction in ["up", "down"] {
            let n = autoscale.get(direction).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "nanocl_autoscale_decisions_total{{direction=\"{direction}\"}} {n}"
            );
        }
        let cargoes = self
            .cargoes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cargoes.is_empty() {
            return;
        }
        type Gauge = (
            &'static str,
            &'static str,
            fn(&CargoGauges) -> Option<String>,
        );
        let gauges: [Gauge; 4] = [
            (
                "nanocl_cargo_replicas",
                "Replicas a cargo with an update in progress or autoscale wants.",
                |g| Some(g.replicas.to_string()),
            ),
            (
                "nanocl_cargo_rollout_ready_replicas",
                "Ready replicas of the revision being rolled out, while an update runs.",
                |g| g.rollout_ready.map(|n| n.to_string()),
            ),
            (
                "nanocl_cargo_cpu_usage_cpus",
                "CPUs an autoscaled cargo's replicas used at the last samples (1 = one CPU).",
                |g| g.cpus.map(|c| format!("{c:.3}")),
            ),
            (
                "nanocl_cargo_memory_usage_bytes",
                "Memory an autoscaled cargo's replicas used at the last samples.",
                |g| g.memory.map(|m| m.to_string()),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for ((namespace, cargo), g) in cargoes.iter() {
                if let Some(v) = value(g) {
                    let _ = writeln!(
                        out,
                        "{name}{{namespace=\"{}\",cargo=\"{}\"}} {v}",
                        escape_label(namespace),
                        escape_label(cargo)
                    );
                }
            }
        }
    }

    /// Records whether this nanocld leads.
    pub fn set_leading(&self, leading: bool) {
        *self
            .leading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(leading);
    }

    fn render_controllers(&self, out: &mut String) {
        let panics = self
            .panics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !panics.is_empty() {
            let _ = writeln!(out, "# HELP nanocl_reconcile_panics_total Reconciles that panicked (each is retried with backoff).");
            let _ = writeln!(out, "# TYPE nanocl_reconcile_panics_total counter");
            for (kind, n) in panics.iter() {
                let _ = writeln!(
                    out,
                    "nanocl_reconcile_panics_total{{kind=\"{kind}\"}} {}",
                    n.load(Ordering::Relaxed)
                );
            }
        }
        let undecodable = self
            .undecodable
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !undecodable.is_empty() {
            let _ = writeln!(out, "# HELP nanocl_undecodable_objects Stored objects this nanocld cannot decode; their Docker objects are left as they are.");
            let _ = writeln!(out, "# TYPE nanocl_undecodable_objects gauge");
            for (kind, n) in undecodable.iter() {
                let _ = writeln!(out, "nanocl_undecodable_objects{{kind=\"{kind}\"}} {n}");
            }
        }
    }

    fn render_deploy(&self, out: &mut String) {
        let deploy = self
            .deploy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if deploy.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "# HELP nanocl_deploy_syncs_total Finished syncs of each deploy directory."
        );
        let _ = writeln!(out, "# TYPE nanocl_deploy_syncs_total counter");
        for (dir, d) in deploy.iter() {
            let _ = writeln!(
                out,
                "nanocl_deploy_syncs_total{{dir=\"{}\"}} {}",
                escape_label(dir),
                d.syncs
            );
        }
        let _ = writeln!(out, "# HELP nanocl_deploy_sync_failures_total Syncs that could not finish (store unavailable, directory missing).");
        let _ = writeln!(out, "# TYPE nanocl_deploy_sync_failures_total counter");
        for (dir, d) in deploy.iter() {
            let _ = writeln!(
                out,
                "nanocl_deploy_sync_failures_total{{dir=\"{}\"}} {}",
                escape_label(dir),
                d.failures
            );
        }
        let _ = writeln!(out, "# HELP nanocl_deploy_last_sync_timestamp_seconds When the last sync finished (Unix time).");
        let _ = writeln!(
            out,
            "# TYPE nanocl_deploy_last_sync_timestamp_seconds gauge"
        );
        for (dir, d) in deploy.iter() {
            if let Some((_, at)) = &d.last {
                let _ = writeln!(
                    out,
                    "nanocl_deploy_last_sync_timestamp_seconds{{dir=\"{}\"}} {at:.3}",
                    escape_label(dir)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP nanocl_deploy_last_sync_duration_seconds How long the last sync took."
        );
        let _ = writeln!(out, "# TYPE nanocl_deploy_last_sync_duration_seconds gauge");
        for (dir, d) in deploy.iter() {
            if let Some((sync, _)) = &d.last {
                let _ = writeln!(
                    out,
                    "nanocl_deploy_last_sync_duration_seconds{{dir=\"{}\"}} {:.6}",
                    escape_label(dir),
                    sync.elapsed.as_secs_f64()
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP nanocl_deploy_last_sync_objects Objects of the last sync, by result."
        );
        let _ = writeln!(out, "# TYPE nanocl_deploy_last_sync_objects gauge");
        for (dir, d) in deploy.iter() {
            if let Some((sync, _)) = &d.last {
                for (result, n) in [
                    ("created", sync.created),
                    ("configured", sync.configured),
                    ("unchanged", sync.unchanged),
                    ("pruned", sync.pruned),
                    ("invalid", sync.invalid),
                    ("kept", sync.kept),
                ] {
                    let _ = writeln!(
                        out,
                        "nanocl_deploy_last_sync_objects{{dir=\"{}\",result=\"{result}\"}} {n}",
                        escape_label(dir)
                    );
                }
            }
        }
    }
}
