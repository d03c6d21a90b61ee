//! How requests reach nanocld: over its socket (the CLI's [`Client`](crate::http::Client))
//! or in process (nanocld's own deploy-directory watcher). Apply, prune and the deploy-directory
//! sync are written against this trait, so the CLI and the daemon share one implementation.

use std::future::Future;

use hyper::Method;
use serde_json::Value;

use crate::error::Result;
use crate::http::Answer;

/// Sends one API request and reads the whole answer.
pub trait Transport: Send + Sync {
    /// `method path` with an optional JSON body. Errors are transport failures; API errors
    /// are answers.
    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> impl Future<Output = Result<Answer>> + Send;
}

/// Whether an error from any layer means "try again later" (see [`Error::Unavailable`]).
pub use crate::error::is_unavailable;
