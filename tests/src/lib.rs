//! Shared harness for the end-to-end tests: where the dev services are, and unique names so
//! that every test labels what it creates and removes only that.

use std::time::{SystemTime, UNIX_EPOCH};

/// Label put on every Docker object a test creates; its value is the test's unique prefix.
pub const TEST_LABEL: &str = "io.nanocl.test";

/// The etcd the dev environment started (`scripts/dev-env.sh up`), on loopback.
pub fn etcd_endpoint() -> String {
    std::env::var("NANOCL_TEST_ETCD").unwrap_or_else(|_| "127.0.0.1:23790".to_owned())
}

/// The image built offline from the host's busybox by the dev environment.
pub fn test_image() -> String {
    std::env::var("NANOCL_TEST_IMAGE").unwrap_or_else(|_| "nanocl-test/busybox:latest".to_owned())
}

/// A prefix unique to this test run and test, e.g. `nanocl-test-4242-1700000000123-docker`.
pub fn unique_prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("nanocl-test-{}-{nanos}-{test}", std::process::id())
}

/// What to say when a service is missing: how to bring the dev environment up.
pub const HOW_TO_START: &str =
    "start the dev services with `make dev-env` (or run the whole suite with `make test`)";
