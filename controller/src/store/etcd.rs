//! The etcd backend: keys `{prefix}/{key}`, values as given; transactions compare
//! `mod_revision` (or absence) so that a lost update is impossible; watches resume after a
//! broken stream from the last delivered revision, with no gap and no duplicate.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType,
    GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchOptions,
};
use tokio::sync::mpsc;

use super::embedded::tokio_stream_from;
use super::{
    lease_seconds, with_deadline, Deleted, KeyValue, LeaseId, ListResult, Revision, Store,
    StoreError, WatchEvent, WatchStream,
};
use crate::backoff::Backoff;

/// How to reach etcd.
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    /// `host:port` endpoints.
    pub endpoints: Vec<String>,
    /// Prefix of every key (`--store-prefix`, default `/nanocl`).
    pub prefix: String,
    /// Deadline of each call.
    pub timeout: Duration,
    /// How often a watch asks etcd for a progress event (bookmark).
    pub progress_interval: Duration,
    /// Entries fetched per page when listing.
    pub page_size: i64,
}

impl EtcdOptions {
    /// Options for `endpoints` with the defaults.
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdOptions {
            endpoints,
            prefix: "/nanocl".to_owned(),
            timeout: Duration::from_secs(5),
            progress_interval: Duration::from_secs(10),
            page_size: 500,
        }
    }
}

/// The etcd store. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct EtcdStore {
    // Boxed: the client is several KiB, and stores are moved into tasks and enums.
    client: Box<Client>,
    options: Arc<EtcdOptions>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("options", &self.options)
            .finish()
    }
}

fn etcd_error(op: &'static str) -> impl FnOnce(etcd_client::Error) -> StoreError {
    move |source| match &source {
        // "etcdserver: mvcc: database space exceeded": the NOSPACE alarm is raised, and
        // every write fails until it is disarmed.
        etcd_client::Error::GRpcStatus(status)
            if status.code() == tonic::Code::ResourceExhausted =>
        {
            StoreError::Full {
                detail: format!("etcd: {}", status.message()),
                remedy: super::ETCD_FULL_REMEDY,
            }
        }
        _ if unavailable(&source) => StoreError::EtcdUnreachable {
            op,
            detail: match &source {
                etcd_client::Error::GRpcStatus(status) => match std::error::Error::source(status) {
                    Some(cause) => root_cause(cause),
                    None => status.message().to_owned(),
                },
                other => root_cause(other),
            },
        },
        _ => StoreError::EtcdRequestFailed { op, source },
    }
}

/// The innermost cause of an error, which says what happened ("Connection refused (os
/// error 111)") where the outer ones repeat the layers it went through.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// As [`etcd_error`], but etcd's "requested lease not found" (gRPC NotFound) is
/// [`StoreError::LeaseNotFound`].
fn lease_error(op: &'static str, lease: LeaseId) -> impl FnOnce(etcd_client::Error) -> StoreError {
    move |source| match &source {
        etcd_client::Error::GRpcStatus(status) if status.code() == tonic::Code::NotFound => {
            StoreError::LeaseNotFound { lease }
        }
        _ => StoreError::EtcdRequestFailed { op, source },
    }
}

/// Whether etcd could not take the call: it was between leaders ("leader changed", "no
/// leader") or the connection to the member broke. Such a call is sent again until its
/// deadline: a read always; a write too, its outcome then checked against what is stored
/// (`EtcdStore::txn`).
fn unavailable(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(status) => status.code() == tonic::Code::Unavailable,
        etcd_client::Error::TransportError(_) => true,
        _ => false,
    }
}

/// Pause before sending a call again that etcd could not take (doubling, at most 500 ms).
const RETRY_FIRST: Duration = Duration::from_millis(50);

/// The first key after every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl EtcdStore {
    /// Connects to etcd. The connection is re-established by itself when lost; calls made
    /// meanwhile fail at their deadline.
    pub async fn connect(options: EtcdOptions) -> Result<Self, StoreError> {
        let connect = ConnectOptions::new()
            .with_connect_timeout(options.timeout)
            .with_timeout(options.timeout)
            .with_keep_alive(Duration::from_secs(5), options.timeout)
            .with_keep_alive_while_idle(true);
        let client = with_deadline("connect", options.timeout, async {
            Client::connect(&options.endpoints, Some(connect))
                .await
                .map_err(etcd_error("connect"))
        })
        .await?;
        Ok(EtcdStore {
            client: Box::new(client),
            options: Arc::new(EtcdOptions {
                prefix: options.prefix.trim_end_matches('/').to_owned(),
                ..options
            }),
        })
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}/{key}", self.options.prefix)
    }

    fn convert(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue, StoreError> {
        let full = kv.key_str().map_err(|_| StoreError::RecordCorrupt {
            what: format!("a key under {} that is not UTF-8", self.options.prefix),
        })?;
        let key = full
            .strip_prefix(&self.options.prefix)
            .and_then(|k| k.strip_prefix('/'))
            .ok_or_else(|| StoreError::RecordCorrupt {
                what: format!("key {full} outside the prefix {}", self.options.prefix),
            })?;
        Ok(KeyValue {
            key: key.to_owned(),
            value: kv.value().to_vec(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
        })
    }

    /// Runs `call` under the deadline, sending it again while etcd is unavailable (between
    /// leaders, a member gone: the client moves to another endpoint); any other error is
    /// mapped by `error`. Also says whether the call was sent more than once.
    async fn retrying<T, F, Fut>(
        &self,
        op: &'static str,
        error: impl FnOnce(etcd_client::Error) -> StoreError,
        mut call: F,
    ) -> Result<(T, bool), StoreError>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let client = (*self.client).clone();
        let after = self.options.timeout;
        let deadline = tokio::time::Instant::now() + after;
        let mut delay = RETRY_FIRST;
        let mut resent = false;
        loop {
            match tokio::time::timeout_at(deadline, call(client.clone())).await {
                Ok(Ok(value)) => return Ok((value, resent)),
                Ok(Err(e)) if unavailable(&e) => {
                    // No time left for another try: say why the last one failed (etcd not
                    // listening, say), which says more than "did not finish in time".
                    if tokio::time::Instant::now() + delay >= deadline {
                        return Err(error(e));
                    }
                    tracing::debug!(op, error = %e, "etcd unavailable; sending again");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(500));
                    resent = true;
                }
                Ok(Err(e)) => return Err(error(e)),
                Err(_) => return Err(StoreError::DeadlineExceeded { op, after }),
            }
        }
    }

    /// A transaction, sent again while etcd is unavailable. A write sent again may have been
    /// applied the first time: the answer says so (`true`), and the caller treats finding
    /// exactly its own value as its success.
    async fn txn(
        &self,
        op: &'static str,
        txn: Txn,
        lease: Option<LeaseId>,
    ) -> Result<(TxnResponse, bool), StoreError> {
        let error = move |e: etcd_client::Error| match lease {
            Some(lease) => lease_error(op, lease)(e),
            None => etcd_error(op)(e),
        };
        self.retrying(op, error, |mut client| {
            let txn = txn.clone();
            async move { client.txn(txn).await }
        })
        .await
    }

    /// The value read by the `or_else` get of a failed transaction.
    fn failed_get(&self, resp: &TxnResponse) -> Result<Option<KeyValue>, StoreError> {
        for op in resp.op_responses() {
            if let TxnOpResponse::Get(get) = op {
                return get.kvs().first().map(|kv| self.convert(kv)).transpose();
            }
        }
        Ok(None)
    }
}

fn header_revision(resp: &TxnResponse) -> Revision {
    resp.header().map_or(0, |h| h.revision())
}

impl EtcdStore {
    /// Create, bound to `lease` when one is given.
    async fn create_leased(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: Option<LeaseId>,
    ) -> Result<KeyValue, StoreError> {
        let full = self.full_key(key);
        let put = lease.map(|l| PutOptions::new().with_lease(l));
        let txn = Txn::new()
            .when([Compare::version(full.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(full.clone(), value.clone(), put)])
            .or_else([TxnOp::get(full, None)]);
        let (resp, resent) = self.txn("create", txn, lease).await?;
        if resp.succeeded() {
            let revision = header_revision(&resp);
            return Ok(KeyValue {
                key: key.to_owned(),
                value,
                create_revision: revision,
                mod_revision: revision,
            });
        }
        match self.failed_get(&resp)? {
            // Sent twice and the first went through: the key holds exactly what we wrote,
            // created at the revision it was written at.
            Some(current)
                if resent
                    && current.value == value
                    && current.create_revision == current.mod_revision =>
            {
                Ok(current)
            }
            Some(current) => Err(StoreError::AlreadyExists {
                key: key.to_owned(),
                current: Box::new(current),
            }),
            // Deleted between the compare and the get: still "it existed".
            None => Err(StoreError::Conflict {
                key: key.to_owned(),
                expected: 0,
                current: None,
            }),
        }
    }
}

impl Store for EtcdStore {
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue, StoreError> {
        self.create_leased(key, value, None).await
    }

    async fn create_with_lease(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: LeaseId,
    ) -> Result<KeyValue, StoreError> {
        self.create_leased(key, value, Some(lease)).await
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        let seconds = lease_seconds(ttl);
        let (granted, _) = self
            .retrying(
                "grant lease",
                etcd_error("grant lease"),
                |mut client| async move { client.lease_grant(seconds, None).await },
            )
            .await?;
        Ok(granted.id())
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<(), StoreError> {
        // Opening the keep-alive stream sends one keep-alive and reads its answer; the stream
        // is dropped after it (a renewal every few seconds needs no open stream).
        let opened = self
            .retrying(
                "keep alive",
                lease_error("keep alive", lease),
                |mut client| async move { client.lease_keep_alive(lease).await.map(drop) },
            )
            .await;
        match opened {
            Ok(((), _)) => Ok(()),
            // "lease not found", or the stream failed: ask etcd which.
            Err(StoreError::EtcdRequestFailed {
                source: etcd_client::Error::LeaseKeepAliveError(_),
                ..
            }) => {
                let (left, _) = self
                    .retrying(
                        "keep alive",
                        lease_error("keep alive", lease),
                        |mut client| async move { client.lease_time_to_live(lease, None).await },
                    )
                    .await?;
                if left.ttl() <= 0 {
                    Err(StoreError::LeaseNotFound { lease })
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<(), StoreError> {
        self.retrying(
            "revoke lease",
            lease_error("revoke lease", lease),
            |mut client| async move { client.lease_revoke(lease).await.map(drop) },
        )
        .await
        .map(drop)
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let full = self.full_key(key);
        let (resp, _) = self
            .retrying("get", etcd_error("get"), |mut client| {
                let full = full.clone();
                async move { client.get(full, None).await }
            })
            .await?;
        resp.kvs().first().map(|kv| self.convert(kv)).transpose()
    }

    async fn writable(&self) -> Result<(), StoreError> {
        use etcd_client::{AlarmAction, AlarmType};
        let (resp, _) = self
            .retrying("alarm list", etcd_error("alarm list"), |mut client| async move {
                client.alarm(AlarmAction::Get, AlarmType::None, None).await
            })
            .await?;
        if resp
            .alarms()
            .iter()
            .any(|a| a.alarm() == AlarmType::Nospace)
        {
            return Err(StoreError::Full {
                detail: "etcd: its NOSPACE alarm is raised (database space exceeded)".into(),
                remedy: super::ETCD_FULL_REMEDY,
            });
        }
        Ok(())
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        // A count-only read of one key: the response header carries the revision.
        let key = self.full_key("meta/instance");
        let (resp, _) = self
            .retrying("revision", etcd_error("revision"), |mut client| {
                let key = key.clone();
                async move {
                    client
                        .get(key, Some(GetOptions::new().with_count_only()))
                        .await
                }
            })
            .await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    async fn list(&self, prefix: &str) -> Result<ListResult, StoreError> {
        let full = self.full_key(prefix);
        let end = prefix_end(full.as_bytes());
        let mut items = Vec::new();
        let mut start = full.into_bytes();
        let mut revision = 0;
        // Pages read at the first page's revision: one consistent snapshot, in bounded messages.
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(self.options.page_size);
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let (resp, _) = self
                .retrying("list", etcd_error("list"), |mut client| {
                    let (key, options) = (start.clone(), options.clone());
                    async move { client.get(key, Some(options)).await }
                })
                .await?;
            if revision == 0 {
                revision = resp.header().map_or(0, |h| h.revision());
            }
            for kv in resp.kvs() {
                items.push(self.convert(kv)?);
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => break,
            }
        }
        Ok(ListResult { items, revision })
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
    ) -> Result<KeyValue, StoreError> {
        let full = self.full_key(key);
        // A missing key's mod_revision is 0: require the key too, or update would create it.
        let txn = Txn::new()
            .when([
                Compare::version(full.clone(), CompareOp::Greater, 0),
                Compare::mod_revision(full.clone(), CompareOp::Equal, expected),
            ])
            // ignore_lease: a leased key keeps its lease (a plain put would detach it).
            .and_then([TxnOp::put(
                full.clone(),
                value.clone(),
                Some(PutOptions::new().with_prev_key().with_ignore_lease()),
            )])
            .or_else([TxnOp::get(full, None)]);
        let (resp, resent) = self.txn("update", txn, None).await?;
        if resp.succeeded() {
            let revision = header_revision(&resp);
            let mut create_revision = revision;
            for op in resp.op_responses() {
                if let TxnOpResponse::Put(put) = op {
                    if let Some(prev) = put.prev_key() {
                        create_revision = prev.create_revision();
                    }
                }
            }
            return Ok(KeyValue {
                key: key.to_owned(),
                value,
                create_revision,
                mod_revision: revision,
            });
        }
        match self.failed_get(&resp)? {
            None => Err(StoreError::NotFound {
                key: key.to_owned(),
            }),
            // Sent twice and the first went through (exactly our value, written after the
            // revision we replaced).
            Some(current)
                if resent && current.value == value && current.mod_revision > expected =>
            {
                Ok(current)
            }
            Some(current) => Err(StoreError::Conflict {
                key: key.to_owned(),
                expected,
                current: Some(Box::new(current)),
            }),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<Deleted, StoreError> {
        let full = self.full_key(key);
        let compare = match expected {
            Some(e) => Compare::mod_revision(full.clone(), CompareOp::Equal, e),
            None => Compare::version(full.clone(), CompareOp::Greater, 0),
        };
        let txn = Txn::new()
            .when([compare])
            .and_then([TxnOp::delete(
                full.clone(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(full, None)]);
        // A delete sent twice whose first try went through finds the key gone: NotFound,
        // which its callers (finalizers, cleanup) take as done.
        let (resp, _) = self.txn("delete", txn, None).await?;
        if resp.succeeded() {
            let revision = header_revision(&resp);
            for op in resp.op_responses() {
                if let TxnOpResponse::Delete(delete) = op {
                    if let Some(prev) = delete.prev_kvs().first() {
                        return Ok(Deleted {
                            prev: self.convert(prev)?,
                            revision,
                        });
                    }
                }
            }
            return Err(StoreError::NotFound {
                key: key.to_owned(),
            });
        }
        match self.failed_get(&resp)? {
            None => Err(StoreError::NotFound {
                key: key.to_owned(),
            }),
            Some(current) => Err(StoreError::Conflict {
                key: key.to_owned(),
                expected: expected.unwrap_or_default(),
                current: Some(Box::new(current)),
            }),
        }
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream, StoreError> {
        // Revisions start at 1; "after a negative revision" is "from the beginning".
        let after = after.max(0);
        let (tx, rx) = mpsc::channel(256);
        let store = self.clone();
        let full = self.full_key(prefix);
        // The first connection is made here so that a bad start (etcd down, compacted
        // revision) is the caller's error, not a silent retry loop.
        let stream = store.open_watch(&full, after + 1).await?;
        tokio::spawn(async move { store.run_watch(full, after, stream, tx).await });
        Ok(tokio_stream_from(rx))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        let mut client = (*self.client).clone();
        with_deadline("compact", self.options.timeout, async move {
            client
                .compact(revision, Some(CompactionOptions::new().with_physical()))
                .await
                .map(|_| ())
                .map_err(etcd_error("compact"))
        })
        .await
    }
}

type Sender = mpsc::Sender<Result<WatchEvent, StoreError>>;

impl EtcdStore {
    async fn open_watch(
        &self,
        full_prefix: &str,
        start: Revision,
    ) -> Result<etcd_client::WatchStream, StoreError> {
        let mut client = (*self.client).clone();
        let options = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_progress_notify()
            .with_start_revision(start);
        let key = full_prefix.to_owned();
        let mut stream = with_deadline("watch", self.options.timeout, async move {
            client
                .watch(key, Some(options))
                .await
                .map_err(etcd_error("watch"))
        })
        .await?;
        // etcd answers a compacted start revision with a cancel, but only after the watch's
        // "created" answer; a read at the start revision tells at once whether that cancel is
        // coming, so the caller gets Gone from `watch` itself rather than from the stream.
        let compacted = start > 1 && self.revision_compacted(full_prefix, start).await?;
        for _ in 0..2 {
            let next = with_deadline("watch", self.options.timeout, async {
                stream.message().await.map_err(etcd_error("watch"))
            })
            .await?;
            match next {
                Some(resp) if resp.canceled() => {
                    return Err(gone(start - 1, resp.compact_revision()))
                }
                Some(_) if compacted => continue,
                _ => break,
            }
        }
        Ok(stream)
    }

    /// Whether `revision` is older than etcd's compaction point.
    async fn revision_compacted(
        &self,
        full_prefix: &str,
        revision: Revision,
    ) -> Result<bool, StoreError> {
        let mut client = (*self.client).clone();
        let key = full_prefix.to_owned();
        let probe = with_deadline("watch", self.options.timeout, async move {
            client
                .get(
                    key,
                    Some(
                        GetOptions::new()
                            .with_prefix()
                            .with_revision(revision)
                            .with_count_only(),
                    ),
                )
                .await
                .map_err(etcd_error("watch"))
        })
        .await;
        match probe {
            Err(StoreError::EtcdRequestFailed { source, .. })
                if source.to_string().contains("compacted") =>
            {
                Ok(true)
            }
            // A future revision (watching from the head) is fine; so is anything else here:
            // the watch itself reports real trouble.
            Ok(_) | Err(StoreError::EtcdRequestFailed { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Forwards events, reconnecting from the last delivered revision whenever the stream
    /// breaks, until the receiver goes away or the history is gone.
    async fn run_watch(
        self,
        full: String,
        after: Revision,
        first: etcd_client::WatchStream,
        tx: Sender,
    ) {
        let mut last = after;
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut stream = Some(first);
        loop {
            if let Some(s) = stream.take() {
                match self.pump(s, &mut last, &tx, &mut backoff).await {
                    Pump::ReceiverGone => return,
                    Pump::Gone(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                    Pump::Broken => {}
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff.next_delay()) => {}
                () = tx.closed() => return,
            }
            match self.open_watch(&full, last + 1).await {
                Ok(s) => stream = Some(s),
                Err(e @ StoreError::Gone { .. }) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, prefix = %full, "etcd watch reconnect failed; retrying")
                }
            }
        }
    }

    async fn pump(
        &self,
        mut stream: etcd_client::WatchStream,
        last: &mut Revision,
        tx: &Sender,
        backoff: &mut Backoff,
    ) -> Pump {
        let mut ticker = tokio::time::interval(self.options.progress_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        // The highest revision announced as progress. It never moves `last` (the highest
        // event delivered, below which events are dropped as repeats): etcd 3.4 (before
        // 3.4.24, Debian's is 3.4.23) answers a progress request with its current revision
        // at once, ahead of events it has not sent yet to a watcher that fell behind. Taking
        // that answer for "everything up to here was delivered" dropped those events as
        // repeats and left the caches stale (found by tests/perturbation.rs).
        let mut announced = *last;
        loop {
            let resp = tokio::select! {
                resp = stream.message() => resp,
                _ = ticker.tick() => {
                    if stream.request_progress().await.is_err() {
                        return Pump::Broken;
                    }
                    continue;
                }
                () = tx.closed() => return Pump::ReceiverGone,
            };
            let resp = match resp {
                Ok(Some(resp)) => resp,
                Ok(None) | Err(_) => return Pump::Broken,
            };
            backoff.reset();
            if resp.canceled() {
                if resp.compact_revision() > 0 {
                    return Pump::Gone(gone(*last, resp.compact_revision()));
                }
                return Pump::Broken;
            }
            let events = resp.events();
            if events.is_empty() {
                let revision = resp.header().map_or(0, |h| h.revision());
                // At or past what was delivered, and never behind an earlier bookmark: an idle
                // watch keeps getting one at its last event's revision, as on the embedded store.
                if !resp.created() && revision >= announced && revision >= *last {
                    announced = revision;
                    if tx
                        .send(Ok(WatchEvent::Progress { revision }))
                        .await
                        .is_err()
                    {
                        return Pump::ReceiverGone;
                    }
                }
                continue;
            }
            let mut highest = *last;
            for event in events {
                let Some(kv) = event.kv() else { continue };
                let revision = kv.mod_revision();
                // After a reconnect etcd may repeat what was already delivered.
                if revision <= *last {
                    continue;
                }
                let prev = match event.prev_kv().map(|p| self.convert(p)).transpose() {
                    Ok(prev) => prev,
                    Err(e) => return Pump::Gone(e),
                };
                let converted = match event.event_type() {
                    EventType::Put => self.convert(kv).map(|kv| WatchEvent::Put { kv, prev }),
                    EventType::Delete => self.convert(kv).map(|kv| WatchEvent::Delete {
                        key: kv.key,
                        revision,
                        prev,
                    }),
                };
                match converted {
                    Ok(e) => {
                        if tx.send(Ok(e)).await.is_err() {
                            return Pump::ReceiverGone;
                        }
                    }
                    Err(e) => return Pump::Gone(e),
                }
                highest = highest.max(revision);
            }
            *last = highest;
        }
    }
}

enum Pump {
    ReceiverGone,
    Broken,
    Gone(StoreError),
}

fn gone(after: Revision, compact_revision: Revision) -> StoreError {
    StoreError::Gone {
        requested: after,
        oldest: compact_revision.saturating_sub(1).max(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_should_be_the_next_key_range_bound() {
        assert_eq!(prefix_end(b"/nanocl/"), b"/nanocl0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}
