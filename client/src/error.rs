//! The client library's errors: what failed, and whether trying again later may help.

/// Why a request, an apply or a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `-H` / `NANOCL_HOST` is not an address the client understands.
    #[error("invalid host {0:?}: expected unix:///PATH or tcp://HOST:PORT")]
    InvalidHost(String),
    /// nanocld could not be reached or could not serve the request for now (connection
    /// refused, no answer in time, 5xx): worth retrying later, unlike a rejected object.
    #[error("{0}")]
    Unavailable(String),
    /// nanocld answered and said no (the message is its `Status` message).
    #[error("{0}")]
    Rejected(String),
    /// An answer that is not what the API sends.
    #[error("{what}: {source}")]
    BadAnswer {
        /// Which answer.
        what: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The TLS certificates or key cannot be used.
    #[error("{0}")]
    Tls(String),
    /// A request could not be built (a body that does not serialize).
    #[error("cannot build the request: {0}")]
    RequestBuildFailed(String),
    /// Writes kept conflicting with another writer's.
    #[error("gave up after {attempts} conflicting writes; another writer keeps changing it")]
    ConflictsPersisted {
        /// How many times it was tried.
        attempts: usize,
    },
    /// No applyset name could be given or derived.
    #[error("{0}")]
    ApplysetName(String),
    /// The deploy directory could not be watched.
    #[error("{what}: {source}")]
    WatchFailed {
        /// What was being set up.
        what: String,
        /// notify's error.
        #[source]
        source: notify::Error,
    },
    /// A file or directory could not be read.
    #[error("{what}: {source}")]
    Io {
        /// What was being read.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether trying again later may help (nanocld unreachable or overloaded).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

/// `Result` with the client's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether an error from any layer (an `anyhow` chain, in the CLI) means "try again later".
pub fn is_unavailable(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<Error>().is_some_and(Error::is_unavailable) {
            return true;
        }
        next = e.source();
    }
    false
}
