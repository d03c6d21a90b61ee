//! One `Store` trait with two backends of identical semantics: etcd and an embedded file.
//!
//! The store is a revisioned key-value map, as etcd is: every write gets the next revision of
//! one global counter; `mod_revision` is an object's `resourceVersion`. Create succeeds only if
//! the key is absent; update and delete only if the caller's revision is still current. A watch
//! delivers, in order and exactly once, every change after a revision, or `Gone` when that
//! revision's history was compacted away. Every call has a deadline.
//!
//! Leases, as etcd's: a lease is granted with a TTL and lives while someone keeps it alive;
//! keys created with it are deleted (with ordinary watch events) when it expires or is
//! revoked. Updating a leased key keeps its lease. Node liveness and leader election ride on
//! them (`crate::lease`).

pub mod conformance;
pub mod embedded;
pub mod etcd;
pub mod keys;

use std::future::Future;
use std::time::Duration;

use futures::stream::BoxStream;

pub use self::embedded::{EmbeddedOptions, EmbeddedStore};
pub use self::etcd::{EtcdOptions, EtcdStore};

/// A position in the store's history. 0 means "before anything".
pub type Revision = i64;

/// A lease granted by the store (etcd's lease ID; the embedded store numbers its own).
pub type LeaseId = i64;

/// A stored value with its revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key, without the store prefix.
    pub key: String,
    /// The value (JSON of the storage version, for objects).
    pub value: Vec<u8>,
    /// Revision of the write that created the key.
    pub create_revision: Revision,
    /// Revision of the last write to the key: the object's `resourceVersion`.
    pub mod_revision: Revision,
}

/// What a delete removed, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deleted {
    /// The value as it was.
    pub prev: KeyValue,
    /// The revision of the delete.
    pub revision: Revision,
}

/// A list and the revision it was read at: watch from there to miss nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListResult {
    /// Matching entries, ordered by key.
    pub items: Vec<KeyValue>,
    /// The store's revision when the list was read.
    pub revision: Revision,
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key was created or updated.
    Put {
        /// The new value.
        kv: KeyValue,
        /// The value before, if the key existed.
        prev: Option<KeyValue>,
    },
    /// A key was deleted.
    Delete {
        /// The key.
        key: String,
        /// The revision of the delete.
        revision: Revision,
        /// The value before the delete.
        prev: Option<KeyValue>,
    },
    /// Every change up to `revision` has been delivered (a bookmark).
    Progress {
        /// The revision reached.
        revision: Revision,
    },
}

impl WatchEvent {
    /// The revision this event is at.
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Put { kv, .. } => kv.mod_revision,
            WatchEvent::Delete { revision, .. } | WatchEvent::Progress { revision } => *revision,
        }
    }
}

/// The events of a watch, in revision order. Ends after an error.
pub type WatchStream = BoxStream<'static, Result<WatchEvent, StoreError>>;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Create found the key present.
    #[error("{key} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
        /// What is stored there.
        current: Box<KeyValue>,
    },
    /// The key is not there.
    #[error("{key} not found")]
    NotFound {
        /// The key.
        key: String,
    },
    /// The caller's revision is not the current one.
    #[error("conflict on {key}: the caller had revision {expected}, the store has {}", current.as_ref().map_or("no value".to_owned(), |kv| kv.mod_revision.to_string()))]
    Conflict {
        /// The key.
        key: String,
        /// The revision the caller expected.
        expected: Revision,
        /// What is stored now (none if it was deleted).
        current: Option<Box<KeyValue>>,
    },
    /// The history after `requested` was compacted: re-list, then watch from the list.
    #[error(
        "revision {requested} is no longer in the history (oldest available: {oldest}): re-list"
    )]
    Gone {
        /// The revision asked for.
        requested: Revision,
        /// The oldest revision still available.
        oldest: Revision,
    },
    /// The call did not finish within its deadline.
    #[error("store {op} did not finish within {after:?}")]
    DeadlineExceeded {
        /// The operation.
        op: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// etcd could not be reached (not listening, the connection broken, no leader), until
    /// the call's deadline.
    #[error(
        "etcd {op} failed: etcd is not reachable ({detail}); is it running at the --store address?"
    )]
    EtcdUnreachable {
        /// The operation.
        op: &'static str,
        /// What the connection said last, e.g. `Connection refused (os error 111)`.
        detail: String,
    },
    /// etcd refused or failed a request.
    #[error("etcd {op} failed")]
    EtcdRequestFailed {
        /// The operation.
        op: &'static str,
        /// etcd's error.
        #[source]
        source: etcd_client::Error,
    },
    /// The lease expired, was revoked or never existed.
    #[error("lease {lease:x} not found (expired or revoked)")]
    LeaseNotFound {
        /// The lease.
        lease: LeaseId,
    },
    /// The embedded database failed.
    #[error("embedded store {op} failed")]
    EmbeddedTransactionFailed {
        /// The operation.
        op: &'static str,
        /// redb's error.
        #[source]
        source: redb::Error,
    },
    /// Another process holds the embedded store file.
    #[error("store file {path} is in use by {holder}; stop it or use another --store")]
    StoreLocked {
        /// The file.
        path: String,
        /// Who holds it, e.g. `process 1234 (nanocld)`.
        holder: String,
    },
    /// The embedded store file could not be opened.
    #[error("cannot open store file {path}")]
    StoreOpenFailed {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `--store` is not a URL we know.
    #[error("invalid store URL {url:?}: {reason}")]
    InvalidStoreUrl {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The store has no room left: nothing was written.
    #[error("the store is full ({detail}): nothing was written; {remedy}")]
    Full {
        /// What the backend said.
        detail: String,
        /// What frees room, for this backend.
        remedy: &'static str,
    },
    /// A stored record could not be read.
    #[error("stored record for {what} is corrupt")]
    RecordCorrupt {
        /// Which record.
        what: String,
    },
}

impl StoreError {
    /// Whether retrying the same call later may succeed (connection trouble, deadlines).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::DeadlineExceeded { .. }
                | StoreError::EtcdRequestFailed { .. }
                | StoreError::EtcdUnreachable { .. }
        )
    }
}

/// What frees room in a full etcd.
pub const ETCD_FULL_REMEDY: &str =
    "compact and defragment etcd, then `etcdctl alarm disarm` (or raise its --quota-backend-bytes)";

/// What frees room in a full embedded store.
pub const EMBEDDED_FULL_REMEDY: &str = "free space on the disk of the store file, then restart nanocld (the store reopens its file after a failed write; nothing acknowledged is lost)";

/// A revisioned key-value store. Keys are given without the backend's prefix.
pub trait Store: Send + Sync + 'static {
    /// Whether writes can succeed now, as far as the store knows without writing: `Full`
    /// while etcd's NOSPACE alarm is raised, or since the embedded store's last write failed
    /// for want of space (until one succeeds). `/readyz` asks it.
    fn writable(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores `value` at `key` if the key is absent.
    fn create(
        &self,
        key: &str,
        value: Vec<u8>,
    ) -> impl Future<Output = Result<KeyValue, StoreError>> + Send;

    /// The value at `key`, if any.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<KeyValue>, StoreError>> + Send;

    /// Every entry whose key starts with `prefix`, and the revision of the read.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<ListResult, StoreError>> + Send;

    /// Replaces the value at `key` if its `mod_revision` is still `expected`.
    fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
    ) -> impl Future<Output = Result<KeyValue, StoreError>> + Send;

    /// Deletes `key`, if its `mod_revision` is still `expected` when one is given.
    fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> impl Future<Output = Result<Deleted, StoreError>> + Send;

    /// Every change to keys under `prefix` after revision `after`, in order, then live.
    fn watch(
        &self,
        prefix: &str,
        after: Revision,
    ) -> impl Future<Output = Result<WatchStream, StoreError>> + Send;

    /// Forgets the history up to and including `revision`: watches from before it get `Gone`.
    fn compact(&self, revision: Revision) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The store's current revision (that of its latest write), read without listing.
    fn current_revision(&self) -> impl Future<Output = Result<Revision, StoreError>> + Send;

    /// Grants a lease that expires `ttl` (rounded up to whole seconds, at least one) after
    /// it was granted or last kept alive.
    fn grant_lease(
        &self,
        ttl: Duration,
    ) -> impl Future<Output = Result<LeaseId, StoreError>> + Send;

    /// Keeps `lease` alive for another TTL; `LeaseNotFound` once it has expired or been
    /// revoked (its keys are then gone or going). Not a write: no revision.
    fn keep_alive(&self, lease: LeaseId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Ends `lease` now, deleting its keys; `LeaseNotFound` if it had already ended.
    fn revoke_lease(&self, lease: LeaseId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// As [`Store::create`], with the key bound to `lease`: deleted when the lease ends.
    /// `LeaseNotFound` if the lease has ended (nothing is stored).
    fn create_with_lease(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: LeaseId,
    ) -> impl Future<Output = Result<KeyValue, StoreError>> + Send;
}

/// A TTL as the whole seconds leases count in (rounded up, at least one).
pub(crate) fn lease_seconds(ttl: Duration) -> i64 {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
}

/// Runs `fut` with a deadline, turning the timeout into [`StoreError::DeadlineExceeded`].
pub(crate) async fn with_deadline<T>(
    op: &'static str,
    after: Duration,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(after, fut)
        .await
        .unwrap_or(Err(StoreError::DeadlineExceeded { op, after }))
}

/// Either backend, chosen at run time from `--store`.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// `etcd://HOST:PORT[,HOST:PORT...]`
    Etcd(EtcdStore),
    /// `embedded:PATH`
    Embedded(EmbeddedStore),
}

/// Where `--store` points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    /// etcd endpoints, as `host:port`.
    Etcd(Vec<String>),
    /// An embedded store file.
    Embedded(std::path::PathBuf),
}

impl std::str::FromStr for StoreUrl {
    type Err = StoreError;

    fn from_str(url: &str) -> Result<Self, StoreError> {
        let invalid = |reason: &str| StoreError::InvalidStoreUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(path) = url.strip_prefix("embedded:") {
            if path.is_empty() {
                return Err(invalid(
                    "embedded: needs a file path, e.g. embedded:/var/lib/nanocl/store.redb",
                ));
            }
            return Ok(StoreUrl::Embedded(path.into()));
        }
        if let Some(hosts) = url.strip_prefix("etcd://") {
            let endpoints: Vec<String> = hosts.split(',').map(str::to_owned).collect();
            for endpoint in &endpoints {
                let ok = endpoint.rsplit_once(':').is_some_and(|(host, port)| {
                    !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
                });
                if !ok {
                    return Err(invalid(&format!("{endpoint:?} is not HOST:PORT")));
                }
            }
            return Ok(StoreUrl::Etcd(endpoints));
        }
        Err(invalid(
            "expected embedded:PATH or etcd://HOST:PORT[,HOST:PORT...]",
        ))
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Etcd($s) => $call.await,
            AnyStore::Embedded($s) => $call.await,
        }
    };
}

impl Store for AnyStore {
    async fn writable(&self) -> Result<(), StoreError> {
        delegate!(self, s => s.writable())
    }
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue, StoreError> {
        delegate!(self, s => s.create(key, value))
    }
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        delegate!(self, s => s.get(key))
    }
    async fn list(&self, prefix: &str) -> Result<ListResult, StoreError> {
        delegate!(self, s => s.list(prefix))
    }
    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
    ) -> Result<KeyValue, StoreError> {
        delegate!(self, s => s.update(key, value, expected))
    }
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted, StoreError> {
        delegate!(self, s => s.delete(key, expected))
    }
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        delegate!(self, s => s.watch(prefix, after))
    }
    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        delegate!(self, s => s.compact(revision))
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        delegate!(self, s => s.current_revision())
    }
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        delegate!(self, s => s.grant_lease(ttl))
    }
    async fn keep_alive(&self, lease: LeaseId) -> Result<(), StoreError> {
        delegate!(self, s => s.keep_alive(lease))
    }
    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        delegate!(self, s => s.revoke_lease(lease))
    }
    async fn create_with_lease(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: LeaseId,
    ) -> Result<KeyValue, StoreError> {
        delegate!(self, s => s.create_with_lease(key, value, lease))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_should_parse_and_explain_mistakes() {
        assert_eq!(
            "etcd://127.0.0.1:2379,[::1]:2379".parse::<StoreUrl>().ok(),
            Some(StoreUrl::Etcd(vec![
                "127.0.0.1:2379".into(),
                "[::1]:2379".into()
            ]))
        );
        assert_eq!(
            "embedded:/tmp/s.redb".parse::<StoreUrl>().ok(),
            Some(StoreUrl::Embedded("/tmp/s.redb".into()))
        );
        for bad in [
            "etcd://",
            "etcd://host",
            "etcd://host:0",
            "embedded:",
            "redis://x",
            "",
        ] {
            let err = bad.parse::<StoreUrl>().expect_err(bad);
            assert!(err.to_string().starts_with("invalid store URL"), "{err}");
        }
    }
}
