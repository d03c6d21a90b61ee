//! Leader election on a store lease: one key, created with a lease by whoever gets there
//! first and kept alive while it leads. The others watch the key and try again when it goes
//! (revoked by a leader that stops, or deleted by the store when the lease expires).
//!
//! A leader that cannot renew its lease stops acting before the store can have expired it:
//! `Leadership::lost` resolves once three quarters of the TTL have passed since the last
//! renewal the store acknowledged, so two leaders never act at once as long as clocks run at the same
//! rate (the lease is timed by the store, the margin by the holder).

use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::store::{LeaseId, Store, StoreError, WatchEvent};

/// The store key the controllers' leader holds.
pub const CONTROLLERS_KEY: &str = "meta/leader/controllers";

/// What the leader key holds: who leads, for the logs and `nanocl get nodes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    /// The holder's identity (its node name, and its process to tell two apart on one host).
    pub identity: String,
    /// When it took the lead (RFC 3339).
    pub since: String,
}

/// How to campaign.
#[derive(Clone, Debug)]
pub struct Election {
    /// The key to hold.
    pub key: String,
    /// Who this process is.
    pub identity: String,
    /// The lease's TTL: how long the others wait for a leader that died without resigning.
    pub ttl: Duration,
    /// The store is this process's alone (the embedded store, locked by its file): a leader key
    /// found there was left by an earlier run of this process and is taken over at once,
    /// rather than after its TTL.
    pub exclusive: bool,
}

/// Holding the lead. Resign (or drop) when done.
#[derive(Debug)]
pub struct Leadership<S: Store + Clone> {
    store: S,
    lease: LeaseId,
    lost: watch::Receiver<bool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl<S: Store + Clone> Leadership<S> {
    /// Resolves when the lead is lost: the lease ended, or could not be renewed for three
    /// quarters of its TTL. Stop acting at once.
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|lost| *lost).await;
    }

    /// Whether the lead has been lost.
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Gives the lead up now (revoking the lease deletes the key, so another candidate takes
    /// over at once instead of after the TTL).
    pub async fn resign(self) {
        self.renewer.abort();
        match self.store.revoke_lease(self.lease).await {
            Ok(()) | Err(StoreError::LeaseNotFound { .. }) => {}
            Err(e) => tracing::warn!(error = %e, "cannot resign the lead; it ends with its lease"),
        }
    }
}

impl<S: Store + Clone> Drop for Leadership<S> {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

impl Election {
    /// Campaigns until this process leads, or `shutdown` turns true (then `None`). Store
    /// failures are retried with backoff: a candidate never gives up while running.
    pub async fn campaign<S: Store + Clone>(
        &self,
        store: &S,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Leadership<S>> {
        let mut backoff = Backoff::new(
            Duration::from_millis(200),
            self.ttl.max(Duration::from_secs(1)),
        );
        let mut announced = None;
        loop {
            if *shutdown.borrow() {
                return None;
            }
            let attempt = tokio::select! {
                attempt = self.try_lead(store) => attempt,
                _ = shutdown.wait_for(|v| *v) => return None,
            };
            match attempt {
                Ok(Attempt::Leading(leadership)) => return Some(leadership),
                Ok(Attempt::HeldBy { holder, revision }) => {
                    backoff.reset();
                    if announced.as_ref() != Some(&holder.identity) {
                        tracing::info!(leader = %holder.identity, since = %holder.since, key = %self.key, "another process leads; waiting for it to go");
                        announced = Some(holder.identity.clone());
                    }
                    tokio::select! {
                        () = wait_for_delete(store, &self.key, revision) => {}
                        _ = shutdown.wait_for(|v| *v) => return None,
                    }
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "leader election: the store failed");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = shutdown.wait_for(|v| *v) => return None,
                    }
                }
            }
        }
    }

    /// One try: a lease, and the key created with it.
    async fn try_lead<S: Store + Clone>(&self, store: &S) -> Result<Attempt<S>, StoreError> {
        let lease = store.grant_lease(self.ttl).await?;
        let granted = Instant::now();
        let holder = Holder {
            identity: self.identity.clone(),
            since: crate::objects::now(),
        };
        let value = serde_json::to_vec(&holder).unwrap_or_default();
        let created = store
            .create_with_lease(&self.key, value.clone(), lease)
            .await;
        let outcome = match created {
            Ok(_) => {
                tracing::info!(key = %self.key, identity = %self.identity, "leading");
                return Ok(Attempt::Leading(self.hold(store, lease, granted)));
            }
            Err(StoreError::AlreadyExists { current, .. }) if self.exclusive => {
                // Left by an earlier run of this process: nobody else can hold this store.
                tracing::info!(key = %self.key, "taking over the lead left by an earlier run");
                match store.delete(&self.key, Some(current.mod_revision)).await {
                    Ok(_) | Err(StoreError::NotFound { .. } | StoreError::Conflict { .. }) => {}
                    Err(e) => {
                        let _ = store.revoke_lease(lease).await;
                        return Err(e);
                    }
                }
                match store.create_with_lease(&self.key, value, lease).await {
                    Ok(_) => return Ok(Attempt::Leading(self.hold(store, lease, granted))),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        // Not leading: the lease is of no use.
        let _ = store.revoke_lease(lease).await;
        match outcome {
            Err(StoreError::AlreadyExists { current, .. }) => Ok(Attempt::HeldBy {
                holder: serde_json::from_slice(&current.value).unwrap_or(Holder {
                    identity: "(unreadable leader record)".into(),
                    since: String::new(),
                }),
                revision: current.mod_revision,
            }),
            Err(e) => Err(e),
            Ok(attempt) => Ok(attempt),
        }
    }

    /// Starts renewing `lease` (`renew_period`).
    fn hold<S: Store + Clone>(&self, store: &S, lease: LeaseId, granted: Instant) -> Leadership<S> {
        let (lost_tx, lost) = watch::channel(false);
        let renewer = tokio::spawn(renew(store.clone(), lease, self.ttl, granted, lost_tx));
        Leadership {
            store: store.clone(),
            lease,
            lost,
            renewer,
        }
    }
}

enum Attempt<S: Store + Clone> {
    Leading(Leadership<S>),
    HeldBy {
        holder: Holder,
        revision: crate::store::Revision,
    },
}

/// How often a lease is renewed: an eighth of its TTL, at most once a second. Renewals are
/// not writes, and a short period leaves most of the TTL to ride out an etcd election.
pub fn renew_period(ttl: Duration) -> Duration {
    (ttl / 8).min(Duration::from_secs(1))
}

/// Keeps `lease` alive; says `lost` when it ended, or when three quarters of the TTL passed
/// since the last renewal the store acknowledged (the store expires it at the full TTL: the
/// last quarter is the margin for the leader to stop acting before anyone else can start).
/// Each renewal gets at most a second, then is sent again: one sent to an etcd member that
/// just died, or held by one waiting for a new etcd leader, must not use up the margin.
async fn renew<S: Store>(
    store: S,
    lease: LeaseId,
    ttl: Duration,
    mut renewed: Instant,
    lost: watch::Sender<bool>,
) {
    let give_up = ttl * 3 / 4;
    loop {
        tokio::time::sleep(renew_period(ttl)).await;
        let deadline = renewed + give_up;
        loop {
            let sent = Instant::now();
            let attempt = (sent + Duration::from_secs(1)).min(deadline);
            match tokio::time::timeout_at(attempt, store.keep_alive(lease)).await {
                Ok(Ok(())) => {
                    renewed = sent;
                    break;
                }
                Ok(Err(StoreError::LeaseNotFound { .. })) => {
                    tracing::error!(lease, "the lead's lease has ended; stopping");
                    let _ = lost.send(true);
                    return;
                }
                _ if Instant::now() >= deadline => {
                    tracing::error!(
                        lease,
                        after = ?give_up,
                        "the lead's lease could not be renewed in time; stopping"
                    );
                    let _ = lost.send(true);
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot renew the lead's lease; retrying");
                    let pause = (Instant::now() + Duration::from_millis(100)).min(deadline);
                    tokio::time::sleep_until(pause).await;
                }
                Err(_) => tracing::warn!("renewing the lead's lease takes over a second; retrying"),
            }
        }
    }
}

/// Waits until `key` is deleted after `revision` (or the watch breaks: the caller tries
/// again either way, which is safe).
async fn wait_for_delete<S: Store>(store: &S, key: &str, revision: crate::store::Revision) {
    let Ok(mut events) = store.watch(key, revision).await else {
        tokio::time::sleep(Duration::from_millis(500)).await;
        return;
    };
    while let Some(event) = events.next().await {
        match event {
            Ok(WatchEvent::Delete { key: k, .. }) if k == key => return,
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EmbeddedOptions, EmbeddedStore};

    fn election(identity: &str, exclusive: bool) -> Election {
        Election {
            key: CONTROLLERS_KEY.into(),
            identity: identity.into(),
            ttl: Duration::from_secs(1),
            exclusive,
        }
    }

    /// `identity` campaigns on `store` until it leads.
    async fn lead(
        store: &EmbeddedStore,
        identity: &str,
        exclusive: bool,
    ) -> Leadership<EmbeddedStore> {
        let (_stop, mut shutdown) = watch::channel(false);
        election(identity, exclusive)
            .campaign(store, &mut shutdown)
            .await
            .expect("leads")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_candidate_should_lead_only_once_the_first_resigns() {
        let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store");
        let (_stop, shutdown) = watch::channel(false);
        let first = lead(&store, "a", false).await;
        let second = {
            let store = store.clone();
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move { election("b", false).campaign(&store, &mut shutdown).await })
        };
        // Kept alive by its renewer well past its TTL: b must still be waiting.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!second.is_finished(), "b must not lead while a does");
        assert!(!first.is_lost());
        first.resign().await;
        let second = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("b leads soon after a resigns")
            .expect("no panic")
            .expect("b leads");
        let kv = store.get(CONTROLLERS_KEY).await.expect("get").expect("key");
        let holder: Holder = serde_json::from_slice(&kv.value).expect("holder");
        assert_eq!(holder.identity, "b");
        drop(second);
        // A campaign gives up on shutdown.
        let (stop, mut off) = watch::channel(false);
        let third = tokio::spawn({
            let store = store.clone();
            async move {
                election("c", false)
                    .campaign(&store, &mut off)
                    .await
                    .is_none()
            }
        });
        let _ = stop.send(true);
        assert!(third.await.expect("no panic"), "no lead after shutdown");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_leader_that_stops_renewing_should_be_replaced_after_its_ttl() {
        let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store");
        let first = lead(&store, "a", false).await;
        // A leader that freezes: its renewer stops, its lease runs out.
        first.renewer.abort();
        let started = Instant::now();
        let second = lead(&store, "b", false).await;
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "b waited for the lease to expire: {:?}",
            started.elapsed()
        );
        second.resign().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_exclusive_store_should_take_over_its_own_stale_lead_at_once() {
        let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store");
        let (_stop, shutdown) = watch::channel(false);
        let stale = lead(&store, "earlier run", true).await;
        let stale_lease = stale.lease;
        // Dropped without resigning, as by a crash: the key and its lease stay.
        drop(stale);
        let started = Instant::now();
        let now = tokio::time::timeout(
            Duration::from_millis(900),
            election("this run", true).campaign(&store, &mut shutdown.clone()),
        )
        .await
        .expect("at once, not after the TTL")
        .expect("leads");
        assert!(started.elapsed() < Duration::from_millis(900));
        assert_ne!(now.lease, stale_lease);
        now.resign().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revoked_lease_should_be_reported_lost() {
        let store = EmbeddedStore::in_memory(EmbeddedOptions::default()).expect("store");
        let mut leading = lead(&store, "a", false).await;
        store.revoke_lease(leading.lease).await.expect("revoke");
        tokio::time::timeout(Duration::from_secs(3), leading.lost())
            .await
            .expect("lost within the TTL");
    }
}
