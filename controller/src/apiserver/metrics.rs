//! Counters for `/metrics`, in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

/// What the API server counts.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// Open watch streams.
    pub watchers: AtomicI64,
}

impl Metrics {
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
        out
    }
}
