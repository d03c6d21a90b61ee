//! How requests reach nanocld: over its socket (the CLI's [`Client`](crate::client::Client))
//! or in process (nanocld's own deploy-directory watcher). Apply, prune and the deploy-directory
//! sync are written against this trait, so the CLI and the daemon share one implementation.

use std::future::Future;

use hyper::Method;
use serde_json::Value;

use crate::client::Answer;

/// Sends one API request and reads the whole answer.
pub trait Transport: Send + Sync {
    /// `method path` with an optional JSON body. Errors are transport failures; API errors
    /// are answers.
    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> impl Future<Output = anyhow::Result<Answer>> + Send;
}

/// nanocld could not be reached or could not serve the request for now (connection refused,
/// no answer in time, 5xx): worth retrying later, unlike a rejected object.
#[derive(Debug)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unavailable {}

/// Whether an error means "try again later".
pub fn is_unavailable(error: &anyhow::Error) -> bool {
    error.chain().any(|e| e.is::<Unavailable>())
}
