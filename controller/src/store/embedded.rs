//! The embedded backend: one crash-safe redb file with the semantics of etcd.
//!
//! Each write and its watch event commit in one redb transaction (fsync'd before the call
//! returns), under one global revision counter. The last `history` events stay in the file so
//! that a watch can resume; older revisions answer `Gone`. A lock file next to the store names
//! the process holding it, so a second nanocld gets a clear error rather than a corrupt file.
//!
//! Leases are kept in the file (ID, TTL and which keys are bound to each); their deadlines
//! are in memory, and every lease found in the file at open gets a full TTL again, as etcd
//! does after a restart. A thread of the store's own revokes the leases that expire, which
//! deletes their keys through the ordinary write path (one watch event per key).

use std::collections::HashMap;
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures::StreamExt;
use redb::backends::InMemoryBackend;
use redb::{
    Database, MultimapTableDefinition, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};
use tokio::sync::{broadcast, mpsc};

use super::{
    lease_seconds, with_deadline, Deleted, KeyValue, LeaseId, ListResult, Revision, Store,
    StoreError, WatchEvent, WatchStream,
};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Lease ID → its TTL in seconds.
const LEASES: TableDefinition<i64, u64> = TableDefinition::new("leases");
/// Key → the lease it is bound to.
const KEY_LEASE: TableDefinition<&str, i64> = TableDefinition::new("key_lease");
/// Lease ID → the keys bound to it.
const LEASE_KEYS: MultimapTableDefinition<i64, &str> = MultimapTableDefinition::new("lease_keys");
/// The last lease ID granted.
const META_LEASE: &str = "lease";
/// How often the expiry thread looks for leases past their deadline.
const EXPIRY_TICK: Duration = Duration::from_millis(100);
/// The last revision written.
const META_REVISION: &str = "revision";
/// Every event at or below this revision is gone from the history.
const META_COMPACTED: &str = "compacted";

/// Tuning of the embedded store.
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// How many past events are kept for watches to resume from.
    pub history: usize,
    /// Deadline of each call.
    pub timeout: Duration,
    /// How often an idle watch gets a progress event (bookmark).
    pub progress_interval: Duration,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            history: 10_000,
            timeout: Duration::from_secs(5),
            progress_interval: Duration::from_secs(10),
        }
    }
}

/// The embedded store. Cheap to clone; clones share the file.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    /// Held by the writer thread while it commits a batch (and by compaction), so that
    /// events are published in revision order.
    writer: Mutex<()>,
    /// Writes waiting for the writer thread's next batch (group commit: every write queued
    /// while one batch commits goes into the next, one transaction and one fsync for all).
    queue: Arc<WriteQueue>,
    /// Shared, not cloned per watcher: each watch clones only the events under its prefix.
    events: broadcast::Sender<Arc<WatchEvent>>,
    /// The last revision whose event has been published.
    published: AtomicI64,
    /// The last write failed for want of space (until one succeeds).
    full: AtomicBool,
    options: EmbeddedOptions,
    path: Option<PathBuf>,
    /// Held for the life of the store: the lock file other processes see.
    _lock: Option<File>,
    /// The live leases' TTLs and deadlines (the file has their IDs and TTLs).
    leases: Mutex<HashMap<LeaseId, LiveLease>>,
    /// Whether the expiry thread runs.
    expiring: AtomicBool,
}

/// A lease's TTL and when it ends unless kept alive.
#[derive(Clone, Copy, Debug)]
struct LiveLease {
    ttl: Duration,
    deadline: Instant,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .field("options", &self.inner.options)
            .finish()
    }
}

fn db_error<E: Into<redb::Error>>(op: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::EmbeddedTransactionFailed {
        op,
        source: e.into(),
    }
}

/// A counter of the `meta` table (0 when never written).
fn read_meta(
    meta: &impl ReadableTable<&'static str, u64>,
    name: &str,
    op: &'static str,
) -> Result<u64, StoreError> {
    Ok(meta
        .get(name)
        .map_err(db_error(op))?
        .map_or(0, |g| g.value()))
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the lock file next to `path`, or says who has it.
fn take_lock(path: &Path) -> Result<File, StoreError> {
    let lock = lock_path(path);
    let open_failed = |source| StoreError::StoreOpenFailed {
        path: lock.display().to_string(),
        source,
    };
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)
        .map_err(open_failed)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let pid = holder.trim();
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            return Err(StoreError::StoreLocked {
                path: path.display().to_string(),
                holder: if pid.is_empty() {
                    "another process".to_owned()
                } else if name.trim().is_empty() {
                    format!("process {pid}")
                } else {
                    format!("process {pid} ({})", name.trim())
                },
            });
        }
        Err(TryLockError::Error(e)) => return Err(open_failed(e)),
    }
    file.set_len(0).map_err(open_failed)?;
    file.rewind().map_err(open_failed)?;
    write!(file, "{}", std::process::id()).map_err(open_failed)?;
    file.sync_all().map_err(open_failed)?;
    Ok(file)
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store file at `path`.
    pub fn open(path: &Path, options: EmbeddedOptions) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::StoreOpenFailed {
                path: path.display().to_string(),
                source,
            })?;
        }
        let lock = take_lock(path)?;
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::StoreLocked {
                path: path.display().to_string(),
                holder: "another process".to_owned(),
            },
            other => db_error("open")(other),
        })?;
        Self::with_database(db, options, Some(path.to_owned()), Some(lock))
    }

    /// A store in memory, with the same code and semantics: the fake for fast tests.
    pub fn in_memory(options: EmbeddedOptions) -> Result<Self, StoreError> {
        let db = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .map_err(db_error("open"))?;
        Self::with_database(db, options, None, None)
    }

    fn with_database(
        db: Database,
        options: EmbeddedOptions,
        path: Option<PathBuf>,
        lock: Option<File>,
    ) -> Result<Self, StoreError> {
        let txn = db.begin_write().map_err(db_error("open"))?;
        let mut leases = HashMap::new();
        let revision = {
            txn.open_table(KV).map_err(db_error("open"))?;
            txn.open_table(EVENTS).map_err(db_error("open"))?;
            txn.open_table(KEY_LEASE).map_err(db_error("open"))?;
            txn.open_multimap_table(LEASE_KEYS)
                .map_err(db_error("open"))?;
            // Every lease gets a full TTL from now: its holder may be about to keep it alive.
            let now = Instant::now();
            let stored = txn.open_table(LEASES).map_err(db_error("open"))?;
            for entry in stored.iter().map_err(db_error("open"))? {
                let (id, secs) = entry.map_err(db_error("open"))?;
                let ttl = Duration::from_secs(secs.value());
                leases.insert(
                    id.value(),
                    LiveLease {
                        ttl,
                        deadline: now + ttl,
                    },
                );
            }
            let meta = txn.open_table(META).map_err(db_error("open"))?;
            read_meta(&meta, META_REVISION, "open")?
        };
        txn.commit().map_err(db_error("open"))?;
        let any_lease = !leases.is_empty();
        let (events, _) = broadcast::channel(4096);
        let queue = Arc::new(WriteQueue::default());
        let store = EmbeddedStore {
            inner: Arc::new(Inner {
                db,
                writer: Mutex::new(()),
                queue: queue.clone(),
                events,
                published: AtomicI64::new(to_revision(revision)),
                full: AtomicBool::new(false),
                options,
                path,
                _lock: lock,
                leases: Mutex::new(leases),
                expiring: AtomicBool::new(false),
            }),
        };
        let weak = Arc::downgrade(&store.inner);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || write_batches(&queue, &weak))
            .map_err(|source| StoreError::StoreOpenFailed {
                path: store
                    .inner
                    .path
                    .as_ref()
                    .map_or_else(|| "(in memory)".to_owned(), |p| p.display().to_string()),
                source,
            })?;
        if any_lease {
            store.start_expiry();
        }
        Ok(store)
    }

    /// Starts the thread that revokes expired leases, unless it runs. It holds the store
    /// weakly and ends with it.
    fn start_expiry(&self) {
        if self.inner.expiring.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let started = std::thread::Builder::new()
            .name("store-leases".into())
            .spawn(move || expire_leases(&weak));
        if started.is_err() {
            // No thread: leases would never expire. Let the next grant try again.
            self.inner.expiring.store(false, Ordering::SeqCst);
            tracing::error!("cannot start the embedded store's lease expiry thread");
        }
    }

    /// Runs one write (batched with whatever else is waiting: `Inner::write`).
    async fn submit(&self, op: Op) -> Result<Reply, StoreError> {
        let was_full = self.inner.full.load(Ordering::Relaxed);
        let name = op.name();
        let answer = self.inner.enqueue(op);
        let result = with_deadline(name, self.inner.options.timeout, async move {
            answer.await.unwrap_or_else(|_| Err(unanswered(name)))
        })
        .await
        .map_err(|e| full_if_no_space(e, was_full));
        match &result {
            Err(StoreError::Full { .. }) => self.inner.full.store(true, Ordering::Relaxed),
            Ok(_) => self.inner.full.store(false, Ordering::Relaxed),
            Err(_) => {}
        }
        result
    }

    /// The store file, unless in memory.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        with_deadline(op, self.inner.options.timeout, async move {
            tokio::task::spawn_blocking(move || f(&inner))
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::RecordCorrupt {
                        what: format!("{op}: the worker thread panicked"),
                    })
                })
        })
        .await
    }
}

/// redb's "no space left on the device" as `StoreError::Full` (and, after one, its
/// "previous I/O error", which it answers every write with until the file is reopened).
fn full_if_no_space(e: StoreError, was_full: bool) -> StoreError {
    let no_space = match &e {
        StoreError::EmbeddedTransactionFailed {
            source: redb::Error::PreviousIo,
            ..
        } => was_full,
        StoreError::EmbeddedTransactionFailed { source, .. } => {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source);
            let mut found = false;
            while let Some(c) = cause {
                if let Some(io) = c.downcast_ref::<std::io::Error>() {
                    found |= io.kind() == std::io::ErrorKind::StorageFull
                        || io.raw_os_error() == Some(28);
                }
                found |= c.to_string().contains("No space left on device");
                cause = c.source();
            }
            found
        }
        _ => false,
    };
    match e {
        StoreError::EmbeddedTransactionFailed { op, source } if no_space => StoreError::Full {
            detail: format!("embedded store {op}: {source}"),
            remedy: super::EMBEDDED_FULL_REMEDY,
        },
        other => other,
    }
}

fn to_revision(r: u64) -> Revision {
    Revision::try_from(r).unwrap_or(Revision::MAX)
}

/// The expiry thread: every tick, revokes the leases past their deadline (their keys are
/// deleted like any other, with watch events). A revocation that fails is tried again on the
/// next tick.
fn expire_leases(store: &Weak<Inner>) {
    loop {
        std::thread::sleep(EXPIRY_TICK);
        let Some(inner) = store.upgrade() else {
            return;
        };
        let now = Instant::now();
        let expired: Vec<LeaseId> = {
            let mut leases = lock(&inner.leases);
            let ids: Vec<LeaseId> = leases
                .iter()
                .filter(|(_, l)| l.deadline <= now)
                .map(|(id, _)| *id)
                .collect();
            for id in &ids {
                leases.remove(id);
            }
            ids
        };
        for lease in expired {
            match inner.write(Op::Revoke { lease }) {
                Ok(_) | Err(StoreError::LeaseNotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(lease, error = %e, "cannot revoke an expired lease; retrying");
                    lock(&inner.leases).insert(
                        lease,
                        LiveLease {
                            ttl: EXPIRY_TICK,
                            deadline: now,
                        },
                    );
                }
            }
        }
    }
}

// --- record encoding -------------------------------------------------------------------------

fn encode_kv(out: &mut Vec<u8>, kv: &KeyValue) {
    out.extend_from_slice(&kv.create_revision.to_le_bytes());
    out.extend_from_slice(&kv.mod_revision.to_le_bytes());
    out.extend_from_slice(&(kv.value.len() as u64).to_le_bytes());
    out.extend_from_slice(&kv.value);
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn kv(&mut self, key: &str) -> Option<KeyValue> {
        let create_revision = self.i64()?;
        let mod_revision = self.i64()?;
        let len = usize::try_from(self.u64()?).ok()?;
        Some(KeyValue {
            key: key.to_owned(),
            value: self.take(len)?.to_vec(),
            create_revision,
            mod_revision,
        })
    }
}

fn decode_kv(key: &str, bytes: &[u8]) -> Result<KeyValue, StoreError> {
    Cursor(bytes)
        .kv(key)
        .ok_or_else(|| StoreError::RecordCorrupt {
            what: format!("key {key}"),
        })
}

fn encode_event(event: &WatchEvent) -> Vec<u8> {
    let mut out = Vec::new();
    let (tag, key, prev) = match event {
        WatchEvent::Put { kv, prev } => (0u8, kv.key.as_str(), prev),
        WatchEvent::Delete { key, prev, .. } => (1u8, key.as_str(), prev),
        WatchEvent::Progress { .. } => return out,
    };
    out.push(tag);
    out.extend_from_slice(&(key.len() as u64).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    match prev {
        Some(p) => {
            out.push(1);
            encode_kv(&mut out, p);
        }
        None => out.push(0),
    }
    if let WatchEvent::Put { kv, .. } = event {
        encode_kv(&mut out, kv);
    }
    out
}

fn decode_event(revision: u64, bytes: &[u8]) -> Result<WatchEvent, StoreError> {
    let corrupt = || StoreError::RecordCorrupt {
        what: format!("event at revision {revision}"),
    };
    let mut c = Cursor(bytes);
    let tag = c.u8().ok_or_else(corrupt)?;
    let key_len = c
        .u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(corrupt)?;
    let key = std::str::from_utf8(c.take(key_len).ok_or_else(corrupt)?)
        .map_err(|_| corrupt())?
        .to_owned();
    let prev = match c.u8().ok_or_else(corrupt)? {
        0 => None,
        _ => Some(c.kv(&key).ok_or_else(corrupt)?),
    };
    match tag {
        0 => Ok(WatchEvent::Put {
            kv: c.kv(&key).ok_or_else(corrupt)?,
            prev,
        }),
        1 => Ok(WatchEvent::Delete {
            key,
            revision: to_revision(revision),
            prev,
        }),
        _ => Err(corrupt()),
    }
}

// --- transactions ----------------------------------------------------------------------------

type KvTable<'t> = redb::Table<'t, &'static str, &'static [u8]>;

/// A write, as data: batched with others and, if its batch fails, tried again alone.
enum Op {
    Create {
        key: String,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    },
    Update {
        key: String,
        value: Vec<u8>,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    Grant {
        ttl: Duration,
    },
    Revoke {
        lease: LeaseId,
    },
}

/// What a write answers.
enum Reply {
    Stored(KeyValue),
    Deleted(Deleted),
    Granted(LeaseId),
    Revoked,
}

/// The tables a write transaction touches.
struct Tables<'t> {
    kv: KvTable<'t>,
    meta: redb::Table<'t, &'static str, u64>,
    leases: redb::Table<'t, i64, u64>,
    key_lease: redb::Table<'t, &'static str, i64>,
    lease_keys: redb::MultimapTable<'t, i64, &'static str>,
}

struct Pending {
    op: Op,
    reply: tokio::sync::oneshot::Sender<Result<Reply, StoreError>>,
}

/// A write's answer, with where to send it.
type Answer = (
    tokio::sync::oneshot::Sender<Result<Reply, StoreError>>,
    Result<Reply, StoreError>,
);

/// A commit this long is logged.
const SLOW_COMMIT: Duration = Duration::from_secs(1);

/// The writes waiting for the writer thread.
#[derive(Default)]
struct WriteQueue {
    pending: Mutex<Vec<Pending>>,
    /// Signalled when a write is queued or the store closes.
    ready: std::sync::Condvar,
    /// The store is gone: the thread ends.
    closed: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.queue.closed.store(true, Ordering::SeqCst);
        self.queue.ready.notify_all();
    }
}

/// The writer thread: takes every write queued, commits them as one batch, answers each,
/// and again, until the store is dropped. One thread and no polling: a caller queues its
/// write and waits for its answer, and the writes queued while a batch commits make the
/// next one.
fn write_batches(queue: &WriteQueue, store: &Weak<Inner>) {
    loop {
        let batch = {
            let mut pending = lock(&queue.pending);
            while pending.is_empty() {
                if queue.closed.load(Ordering::SeqCst) {
                    return;
                }
                pending = queue
                    .ready
                    .wait(pending)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            std::mem::take(&mut *pending)
        };
        let Some(inner) = store.upgrade() else {
            for p in batch {
                let _ = p.reply.send(Err(StoreError::RecordCorrupt {
                    what: format!("{}: the store was closed", p.op.name()),
                }));
            }
            return;
        };
        let writes = batch.len();
        let committing = std::time::Instant::now();
        let answers = {
            let _writer = lock(&inner.writer);
            inner.commit(batch)
        };
        let took = committing.elapsed();
        if took >= SLOW_COMMIT {
            // Every write queued meanwhile waited as long: say it, so a client's timeout
            // ("the store is not answering") can be told from a lost write.
            tracing::warn!(
                writes,
                elapsed_ms = took.as_millis(),
                "a store commit took over a second (the disk's fsync, or a compaction holding the writer)"
            );
        }
        // The store let go before anyone hears back: a caller that drops it after its last
        // write can open the file again at once.
        drop(inner);
        for (reply, answer) in answers {
            let _ = reply.send(answer);
        }
    }
}

impl Reply {
    /// The stored value, for a create or an update.
    fn stored(self) -> Result<KeyValue, StoreError> {
        match self {
            Reply::Stored(kv) => Ok(kv),
            _ => Err(mismatched()),
        }
    }

    /// What a delete removed.
    fn deleted(self) -> Result<Deleted, StoreError> {
        match self {
            Reply::Deleted(deleted) => Ok(deleted),
            _ => Err(mismatched()),
        }
    }

    /// The lease a grant made.
    fn granted(self) -> Result<LeaseId, StoreError> {
        match self {
            Reply::Granted(lease) => Ok(lease),
            _ => Err(mismatched()),
        }
    }
}

/// A write answered with another kind's reply: cannot happen (each `Op` answers its own).
fn mismatched() -> StoreError {
    StoreError::RecordCorrupt {
        what: "a write's answer was of another kind".into(),
    }
}

fn unanswered(op: &str) -> StoreError {
    StoreError::RecordCorrupt {
        what: format!("{op}: its batch was dropped unanswered"),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Create { .. } => "create",
            Op::Update { .. } => "update",
            Op::Delete { .. } => "delete",
            Op::Grant { .. } => "grant lease",
            Op::Revoke { .. } => "revoke lease",
        }
    }

    /// Checks the write's precondition and applies it; its events take the revisions from
    /// `revision` on, one each (a revocation deletes several keys, each at its own revision).
    fn apply(
        &self,
        t: &mut Tables<'_>,
        revision: Revision,
    ) -> Result<(Reply, Vec<WatchEvent>), StoreError> {
        let op = self.name();
        match self {
            Op::Create { key, value, lease } => {
                if let Some(existing) = stored(&t.kv, key, op)? {
                    return Err(StoreError::AlreadyExists {
                        key: key.clone(),
                        current: Box::new(existing),
                    });
                }
                if let Some(lease) = *lease {
                    if t.leases.get(lease).map_err(db_error(op))?.is_none() {
                        return Err(StoreError::LeaseNotFound { lease });
                    }
                    t.key_lease
                        .insert(key.as_str(), lease)
                        .map_err(db_error(op))?;
                    t.lease_keys
                        .insert(lease, key.as_str())
                        .map_err(db_error(op))?;
                }
                let kv = KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: revision,
                    mod_revision: revision,
                };
                put(&mut t.kv, &kv, op)?;
                Ok((
                    Reply::Stored(kv.clone()),
                    vec![WatchEvent::Put { kv, prev: None }],
                ))
            }
            Op::Update {
                key,
                value,
                expected,
            } => {
                let Some(prev) = stored(&t.kv, key, op)? else {
                    return Err(StoreError::NotFound { key: key.clone() });
                };
                if prev.mod_revision != *expected {
                    return Err(StoreError::Conflict {
                        key: key.clone(),
                        expected: *expected,
                        current: Some(Box::new(prev)),
                    });
                }
                // The key keeps its lease, if it has one (etcd's put with ignore_lease).
                let kv = KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision: prev.create_revision,
                    mod_revision: revision,
                };
                put(&mut t.kv, &kv, op)?;
                Ok((
                    Reply::Stored(kv.clone()),
                    vec![WatchEvent::Put {
                        kv,
                        prev: Some(prev),
                    }],
                ))
            }
            Op::Delete { key, expected } => {
                let Some(prev) = stored(&t.kv, key, op)? else {
                    return Err(StoreError::NotFound { key: key.clone() });
                };
                if expected.is_some_and(|e| e != prev.mod_revision) {
                    return Err(StoreError::Conflict {
                        key: key.clone(),
                        expected: expected.unwrap_or_default(),
                        current: Some(Box::new(prev)),
                    });
                }
                let event = remove_key(t, key, prev.clone(), revision, op)?;
                Ok((Reply::Deleted(Deleted { prev, revision }), vec![event]))
            }
            Op::Grant { ttl } => {
                let id = read_meta(&t.meta, META_LEASE, op)? + 1;
                t.meta.insert(META_LEASE, id).map_err(db_error(op))?;
                let lease = LeaseId::try_from(id).map_err(|_| StoreError::RecordCorrupt {
                    what: "the lease counter".into(),
                })?;
                t.leases
                    .insert(lease, ttl.as_secs())
                    .map_err(db_error(op))?;
                Ok((Reply::Granted(lease), Vec::new()))
            }
            Op::Revoke { lease } => {
                if t.leases.remove(*lease).map_err(db_error(op))?.is_none() {
                    return Err(StoreError::LeaseNotFound { lease: *lease });
                }
                let keys: Vec<String> = t
                    .lease_keys
                    .remove_all(*lease)
                    .map_err(db_error(op))?
                    .map(|k| k.map(|k| k.value().to_owned()).map_err(db_error(op)))
                    .collect::<Result<_, _>>()?;
                let mut events = Vec::with_capacity(keys.len());
                for key in keys {
                    if let Some(prev) = stored(&t.kv, &key, op)? {
                        let at = revision + to_revision(events.len() as u64);
                        events.push(remove_key(t, &key, prev, at, op)?);
                    }
                }
                Ok((Reply::Revoked, events))
            }
        }
    }
}

/// The value at `key` in `table`.
fn stored(
    table: &KvTable<'_>,
    key: &str,
    op: &'static str,
) -> Result<Option<KeyValue>, StoreError> {
    table
        .get(key)
        .map_err(db_error(op))?
        .map(|bytes| decode_kv(key, bytes.value()))
        .transpose()
}

/// Writes `kv` to `table`.
fn put(table: &mut KvTable<'_>, kv: &KeyValue, op: &'static str) -> Result<(), StoreError> {
    let mut record = Vec::with_capacity(kv.value.len() + 24);
    encode_kv(&mut record, kv);
    table
        .insert(kv.key.as_str(), record.as_slice())
        .map_err(db_error(op))?;
    Ok(())
}

/// Removes `key` (whose value was `prev`) and its lease binding; the delete event.
fn remove_key(
    t: &mut Tables<'_>,
    key: &str,
    prev: KeyValue,
    revision: Revision,
    op: &'static str,
) -> Result<WatchEvent, StoreError> {
    t.kv.remove(key).map_err(db_error(op))?;
    let bound = t
        .key_lease
        .remove(key)
        .map_err(db_error(op))?
        .map(|l| l.value());
    if let Some(lease) = bound {
        t.lease_keys.remove(lease, key).map_err(db_error(op))?;
    }
    Ok(WatchEvent::Delete {
        key: key.to_owned(),
        revision,
        prev: Some(prev),
    })
}

impl Inner {
    /// Queues one write for the writer thread, which commits it with whatever other writes
    /// are waiting at the same moment (group commit). Each write is checked and applied in
    /// order, with its own revision, as if alone; a precondition that fails
    /// (`AlreadyExists`, `NotFound`, `Conflict`) fails that write only. Its answer comes
    /// after the commit (fsync), once its events are published.
    fn enqueue(&self, op: Op) -> tokio::sync::oneshot::Receiver<Result<Reply, StoreError>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        lock(&self.queue.pending).push(Pending { op, reply });
        self.queue.ready.notify_one();
        answer
    }

    /// `enqueue`, waiting for the answer on this thread (not in async code).
    fn write(&self, op: Op) -> Result<Reply, StoreError> {
        let name = op.name();
        self.enqueue(op)
            .blocking_recv()
            .unwrap_or_else(|_| Err(unanswered(name)))
    }

    /// Commits `batch` in one transaction and answers each write (to be sent by the caller).
    /// If the transaction itself fails, each write is tried again alone, so that one write's
    /// storage error is not every write's.
    fn commit(&self, batch: Vec<Pending>) -> Vec<Answer> {
        let ops: Vec<&Op> = batch.iter().map(|p| &p.op).collect();
        let result = self.transact(&ops);
        drop(ops);
        match result {
            Ok((answers, events)) => {
                self.publish(events);
                batch.into_iter().map(|p| p.reply).zip(answers).collect()
            }
            Err(e) if batch.len() == 1 => batch
                .into_iter()
                .map(|p| p.reply)
                .zip(std::iter::once(Err(e)))
                .collect(),
            Err(_) => batch
                .into_iter()
                .map(|pending| {
                    let answer = match self.transact(&[&pending.op]) {
                        Ok((mut answers, events)) => {
                            self.publish(events);
                            answers.pop().unwrap_or_else(|| {
                                Err(StoreError::RecordCorrupt {
                                    what: format!("{}: no answer", pending.op.name()),
                                })
                            })
                        }
                        Err(e) => Err(e),
                    };
                    (pending.reply, answer)
                })
                .collect(),
        }
    }

    fn publish(&self, events: Vec<WatchEvent>) {
        for event in events {
            let revision = event.revision();
            // No receiver is fine: nobody is watching.
            let _ = self.events.send(Arc::new(event));
            self.published.store(revision, Ordering::SeqCst);
        }
    }

    /// One write transaction for `ops`: each one's answer, and the events of those that
    /// wrote. `Err` when the transaction failed (nothing of it is stored).
    #[allow(
        clippy::type_complexity,
        reason = "one answer per op and the events: naming the pair would not make it clearer"
    )]
    fn transact(
        &self,
        ops: &[&Op],
    ) -> Result<(Vec<Result<Reply, StoreError>>, Vec<WatchEvent>), StoreError> {
        let op = ops.first().map_or("write", |o| o.name());
        let txn = self.db.begin_write().map_err(db_error(op))?;
        let mut answers = Vec::with_capacity(ops.len());
        let mut written = Vec::new();
        let mut changed = false;
        {
            let mut t = Tables {
                kv: txn.open_table(KV).map_err(db_error(op))?,
                meta: txn.open_table(META).map_err(db_error(op))?,
                leases: txn.open_table(LEASES).map_err(db_error(op))?,
                key_lease: txn.open_table(KEY_LEASE).map_err(db_error(op))?,
                lease_keys: txn.open_multimap_table(LEASE_KEYS).map_err(db_error(op))?,
            };
            let mut revision = read_meta(&t.meta, META_REVISION, op)?;
            let mut events = txn.open_table(EVENTS).map_err(db_error(op))?;
            for o in ops {
                match o.apply(&mut t, to_revision(revision + 1)) {
                    Ok((answer, new_events)) => {
                        changed = true;
                        for event in new_events {
                            revision += 1;
                            events
                                .insert(revision, encode_event(&event).as_slice())
                                .map_err(db_error(op))?;
                            written.push(event);
                        }
                        answers.push(Ok(answer));
                    }
                    // Checked before anything is written: this write fails, the rest go on.
                    Err(
                        e @ (StoreError::AlreadyExists { .. }
                        | StoreError::NotFound { .. }
                        | StoreError::Conflict { .. }
                        | StoreError::LeaseNotFound { .. }),
                    ) => answers.push(Err(e)),
                    Err(e) => return Err(e),
                }
            }
            if !changed {
                // Nothing to store (the transaction is dropped, so aborted).
                return Ok((answers, written));
            }
            t.meta
                .insert(META_REVISION, revision)
                .map_err(db_error(op))?;
            let excess = events
                .len()
                .map_err(db_error(op))?
                .saturating_sub(self.options.history as u64);
            let mut compacted = None;
            for _ in 0..excess {
                if let Some((k, _)) = events.pop_first().map_err(db_error(op))? {
                    compacted = Some(k.value());
                }
            }
            if let Some(c) = compacted {
                t.meta.insert(META_COMPACTED, c).map_err(db_error(op))?;
            }
        }
        txn.commit().map_err(db_error(op))?;
        Ok((answers, written))
    }

    fn read_kv(&self, op: &'static str, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let txn = self.db.begin_read().map_err(db_error(op))?;
        let table = txn.open_table(KV).map_err(db_error(op))?;
        let value = table.get(key).map_err(db_error(op))?;
        value.map(|v| decode_kv(key, v.value())).transpose()
    }

    /// Events under `prefix` after `after`, and the revision they run up to.
    fn history(
        &self,
        prefix: &str,
        after: Revision,
    ) -> Result<(Vec<WatchEvent>, Revision), StoreError> {
        let op = "watch";
        let txn = self.db.begin_read().map_err(db_error(op))?;
        let meta = txn.open_table(META).map_err(db_error(op))?;
        let current = to_revision(read_meta(&meta, META_REVISION, op)?);
        let compacted = to_revision(read_meta(&meta, META_COMPACTED, op)?);
        if after < compacted && after < current {
            return Err(StoreError::Gone {
                requested: after,
                oldest: compacted,
            });
        }
        let events = txn.open_table(EVENTS).map_err(db_error(op))?;
        let start = u64::try_from(after.max(0)).unwrap_or(0) + 1;
        let mut out = Vec::new();
        for entry in events.range(start..).map_err(db_error(op))? {
            let (rev, bytes) = entry.map_err(db_error(op))?;
            let event = decode_event(rev.value(), bytes.value())?;
            if event_key(&event).is_some_and(|k| k.starts_with(prefix)) {
                out.push(event);
            }
        }
        Ok((out, current.max(after)))
    }
}

fn event_key(event: &WatchEvent) -> Option<&str> {
    match event {
        WatchEvent::Put { kv, .. } => Some(&kv.key),
        WatchEvent::Delete { key, .. } => Some(key),
        WatchEvent::Progress { .. } => None,
    }
}

impl Store for EmbeddedStore {
    async fn writable(&self) -> Result<(), StoreError> {
        if self.inner.full.load(Ordering::Relaxed) {
            return Err(StoreError::Full {
                detail: "embedded: the last write found no space left on the device".into(),
                remedy: super::EMBEDDED_FULL_REMEDY,
            });
        }
        Ok(())
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue, StoreError> {
        let op = Op::Create {
            key: key.to_owned(),
            value,
            lease: None,
        };
        self.submit(op).await?.stored()
    }

    async fn create_with_lease(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: LeaseId,
    ) -> Result<KeyValue, StoreError> {
        let op = Op::Create {
            key: key.to_owned(),
            value,
            lease: Some(lease),
        };
        self.submit(op).await?.stored()
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let ttl = Duration::from_secs(lease_seconds(ttl).unsigned_abs());
        let lease = self.submit(Op::Grant { ttl }).await?.granted()?;
        lock(&self.inner.leases).insert(
            lease,
            LiveLease {
                ttl,
                deadline: Instant::now() + ttl,
            },
        );
        self.start_expiry();
        Ok(lease)
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), StoreError> {
        let mut leases = lock(&self.inner.leases);
        match leases.get_mut(&lease) {
            Some(live) if live.deadline > Instant::now() => {
                live.deadline = Instant::now() + live.ttl;
                Ok(())
            }
            // Past its deadline: the expiry thread is about to revoke it.
            _ => Err(StoreError::LeaseNotFound { lease }),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        lock(&self.inner.leases).remove(&lease);
        self.submit(Op::Revoke { lease }).await.map(drop)
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let key = key.to_owned();
        self.blocking("get", move |inner| inner.read_kv("get", &key))
            .await
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        self.blocking("revision", move |inner| {
            let op = "revision";
            let txn = inner.db.begin_read().map_err(db_error(op))?;
            let meta = txn.open_table(META).map_err(db_error(op))?;
            Ok(to_revision(read_meta(&meta, META_REVISION, op)?))
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<ListResult, StoreError> {
        let prefix = prefix.to_owned();
        self.blocking("list", move |inner| {
            let op = "list";
            let txn = inner.db.begin_read().map_err(db_error(op))?;
            let meta = txn.open_table(META).map_err(db_error(op))?;
            let revision = to_revision(read_meta(&meta, META_REVISION, op)?);
            let table = txn.open_table(KV).map_err(db_error(op))?;
            let mut items = Vec::new();
            for entry in table.range(prefix.as_str()..).map_err(db_error(op))? {
                let (key, value) = entry.map_err(db_error(op))?;
                if !key.value().starts_with(prefix.as_str()) {
                    break;
                }
                items.push(decode_kv(key.value(), value.value())?);
            }
            Ok(ListResult { items, revision })
        })
        .await
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
    ) -> Result<KeyValue, StoreError> {
        let op = Op::Update {
            key: key.to_owned(),
            value,
            expected,
        };
        self.submit(op).await?.stored()
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted, StoreError> {
        let op = Op::Delete {
            key: key.to_owned(),
            expected,
        };
        self.submit(op).await?.deleted()
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        let after = after.max(0);
        // Subscribe before reading the history so that nothing falls between the two.
        let mut live = self.inner.events.subscribe();
        let owned = prefix.to_owned();
        let (backlog, mut last) = self
            .blocking("watch", move |inner| inner.history(&owned, after))
            .await?;
        let (tx, rx) = mpsc::channel::<Result<WatchEvent, StoreError>>(256);
        let inner = self.inner.clone();
        let prefix = prefix.to_owned();
        tokio::spawn(async move {
            for event in backlog {
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            let mut ticker = tokio::time::interval(inner.options.progress_interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                tokio::select! {
                    received = live.recv() => match received {
                        Ok(event) => {
                            if event.revision() <= last {
                                continue;
                            }
                            last = event.revision();
                            if event_key(&event).is_some_and(|k| k.starts_with(prefix.as_str()))
                                && tx.send(Ok(WatchEvent::clone(&event))).await.is_err()
                            {
                                return;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            // Too slow for the live feed: catch up from the file, or say Gone.
                            let from = last;
                            let p = prefix.clone();
                            let inner2 = inner.clone();
                            let caught_up = tokio::task::spawn_blocking(move || inner2.history(&p, from)).await;
                            match caught_up {
                                Ok(Ok((events, upto))) => {
                                    for event in events {
                                        if tx.send(Ok(event)).await.is_err() {
                                            return;
                                        }
                                    }
                                    last = upto;
                                }
                                Ok(Err(e)) => {
                                    let _ = tx.send(Err(e)).await;
                                    return;
                                }
                                Err(_) => return,
                            }
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    _ = ticker.tick() => {
                        // Events are published before `published` moves, so with nothing
                        // queued every event up to it has been seen.
                        let published = inner.published.load(Ordering::SeqCst);
                        if live.is_empty() && published >= last {
                            last = published;
                            if tx.send(Ok(WatchEvent::Progress { revision: published })).await.is_err() {
                                return;
                            }
                        }
                    }
                    () = tx.closed() => return,
                }
            }
        });
        Ok(tokio_stream_from(rx))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.blocking("compact", move |inner| {
            let op = "compact";
            let _writer = inner
                .writer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let txn = inner.db.begin_write().map_err(db_error(op))?;
            {
                let upto = u64::try_from(revision.max(0)).unwrap_or(0);
                let mut events = txn.open_table(EVENTS).map_err(db_error(op))?;
                loop {
                    let first = events
                        .first()
                        .map_err(db_error(op))?
                        .map(|(k, _)| k.value());
                    match first {
                        Some(k) if k <= upto => {
                            events.remove(k).map_err(db_error(op))?;
                        }
                        _ => break,
                    }
                }
                let mut meta = txn.open_table(META).map_err(db_error(op))?;
                let compacted = read_meta(&meta, META_COMPACTED, op)?;
                meta.insert(META_COMPACTED, compacted.max(upto))
                    .map_err(db_error(op))?;
            }
            txn.commit().map_err(db_error(op))
        })
        .await
    }
}

/// A watch stream over an mpsc receiver.
pub(crate) fn tokio_stream_from(
    mut rx: mpsc::Receiver<Result<WatchEvent, StoreError>>,
) -> WatchStream {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_should_encode_and_decode() {
        let kv = KeyValue {
            key: "cargoes/global/web".into(),
            value: b"{}".to_vec(),
            create_revision: 3,
            mod_revision: 7,
        };
        let put = WatchEvent::Put {
            kv: kv.clone(),
            prev: Some(KeyValue {
                mod_revision: 3,
                ..kv.clone()
            }),
        };
        assert_eq!(decode_event(7, &encode_event(&put)).ok(), Some(put));
        let delete = WatchEvent::Delete {
            key: kv.key.clone(),
            revision: 8,
            prev: Some(kv),
        };
        assert_eq!(decode_event(8, &encode_event(&delete)).ok(), Some(delete));
        assert!(decode_event(9, &[0, 1]).is_err());
    }
}
