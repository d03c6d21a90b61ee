//! The handoff between a node's replica runner and its proxy: before the runner removes a
//! container the proxy sends traffic to, the proxy stops sending it new requests and the
//! requests in flight to it finish (up to a timeout) — so a rollout, a scale-down or a
//! deletion drops nothing a client sent.
//!
//! The proxy says which backend addresses its routes use now and counts the requests (and
//! TCP streams) in flight to each; the runner, having said in the Replica's status where the
//! slot's traffic goes now (the successor, or nowhere), waits for the routes to leave the
//! container's address and its in-flight count to reach zero. Should the routes not follow
//! within `propagation` (the status write lost, say), the address is taken out of rotation
//! here at once.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// How long the routes get to follow a status change before an address is taken out of
/// rotation by hand.
pub const PROPAGATION: Duration = Duration::from_secs(2);
/// The longest wait for requests in flight to a container about to be removed (kamal-proxy's
/// and Kubernetes' default grace period).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct Inner {
    /// The addresses the routes send traffic to now.
    routed: HashSet<IpAddr>,
    /// Requests and streams in flight, by backend address.
    in_flight: HashMap<IpAddr, usize>,
    /// Addresses out of rotation whatever the routes say, with how many drains hold each.
    draining: HashMap<IpAddr, usize>,
}

/// What the runner and the proxy of one node share. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Handoff {
    inner: Arc<(Mutex<Inner>, Notify)>,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Nothing was in flight any more.
    Idle,
    /// The timeout came first: this many requests or streams were still in flight.
    TimedOut(usize),
}

impl Handoff {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The proxy's routes now send traffic to `addresses` (and no other).
    pub fn set_routed(&self, addresses: HashSet<IpAddr>) {
        self.lock().routed = addresses;
        self.inner.1.notify_waiters();
    }

    /// Whether the routes send traffic to one of `addresses`, or something is in flight to
    /// one.
    pub fn busy(&self, addresses: &[IpAddr]) -> bool {
        let inner = self.lock();
        addresses
            .iter()
            .any(|a| inner.routed.contains(a) || inner.in_flight.contains_key(a))
    }

    /// Whether `address` is out of rotation, being drained.
    pub fn is_draining(&self, address: &IpAddr) -> bool {
        self.lock().draining.contains_key(address)
    }

    /// One request or stream to `address` begins; it ends when the guard is dropped.
    pub fn begin(&self, address: IpAddr) -> InFlight {
        *self.lock().in_flight.entry(address).or_default() += 1;
        InFlight {
            handoff: self.clone(),
            address,
        }
    }

    /// Waits until the routes no longer send traffic to `addresses` and nothing is in flight
    /// to them, or `timeout`; after `propagation`, they are taken out of rotation whatever
    /// the routes say. They stay out of rotation until the returned guard is dropped (once
    /// their containers are removed: Docker may give the address to a new container).
    pub async fn drain(
        &self,
        addresses: &[IpAddr],
        propagation: Duration,
        timeout: Duration,
    ) -> (Drained, DrainGuard) {
        let guard = DrainGuard {
            handoff: self.clone(),
            addresses: Vec::new(),
        };
        let (started, mut guard) = (Instant::now(), guard);
        loop {
            let notified = self.inner.1.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let busy = {
                let mut inner = self.lock();
                if guard.addresses.is_empty() && started.elapsed() >= propagation {
                    for a in addresses {
                        *inner.draining.entry(*a).or_default() += 1;
                    }
                    guard.addresses = addresses.to_vec();
                }
                let routed = addresses
                    .iter()
                    .any(|a| inner.routed.contains(a) && !inner.draining.contains_key(a));
                let in_flight: usize = addresses
                    .iter()
                    .filter_map(|a| inner.in_flight.get(a))
                    .sum();
                (routed, in_flight)
            };
            match busy {
                (false, 0) => return (Drained::Idle, guard),
                (_, n) if started.elapsed() >= timeout => return (Drained::TimedOut(n), guard),
                _ => {}
            }
            // The next change, or the moment to take them out by hand, or the timeout.
            let next = if guard.addresses.is_empty() {
                propagation.min(timeout)
            } else {
                timeout
            };
            let _ = tokio::time::timeout_at(started + next, notified).await;
        }
    }
}

/// One request or stream in flight to a backend.
#[derive(Debug)]
pub struct InFlight {
    handoff: Handoff,
    address: IpAddr,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut inner = self.handoff.lock();
        if let Some(n) = inner.in_flight.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inner.in_flight.remove(&self.address);
            }
        }
        drop(inner);
        self.handoff.inner.1.notify_waiters();
    }
}

/// Addresses kept out of rotation until dropped.
#[derive(Debug)]
pub struct DrainGuard {
    handoff: Handoff,
    addresses: Vec<IpAddr>,
}

impl Drop for DrainGuard {
    fn drop(&mut self) {
        let mut inner = self.handoff.lock();
        for a in &self.addresses {
            if let Some(n) = inner.draining.get_mut(a) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    inner.draining.remove(a);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_should_wait_for_the_routes_then_for_requests_in_flight() {
        let handoff = Handoff::default();
        handoff.set_routed([ip(1), ip(2)].into());
        let request = handoff.begin(ip(1));
        let waiter = {
            let h = handoff.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let (how, _guard) = h.drain(&[ip(1)], PROPAGATION, DRAIN_TIMEOUT).await;
                (how, started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The routes follow the status: ip(1) leaves; a request is still in flight.
        handoff.set_routed([ip(2)].into());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!waiter.is_finished(), "a request is in flight");
        drop(request);
        let (how, took) = waiter.await.expect("drained");
        assert_eq!(how, Drained::Idle);
        assert_eq!(took, Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn routes_that_do_not_follow_should_be_overridden_after_the_propagation_time() {
        let handoff = Handoff::default();
        handoff.set_routed([ip(1)].into());
        let started = Instant::now();
        let (how, guard) = handoff.drain(&[ip(1)], PROPAGATION, DRAIN_TIMEOUT).await;
        assert_eq!((how, started.elapsed()), (Drained::Idle, PROPAGATION));
        assert!(handoff.is_draining(&ip(1)));
        drop(guard);
        assert!(
            !handoff.is_draining(&ip(1)),
            "back once its container is gone"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_never_ends_should_be_given_up_on_at_the_timeout() {
        let handoff = Handoff::default();
        let _stuck = handoff.begin(ip(3));
        let _other = handoff.begin(ip(4));
        let started = Instant::now();
        let (how, _guard) = handoff.drain(&[ip(3)], PROPAGATION, DRAIN_TIMEOUT).await;
        assert_eq!(how, Drained::TimedOut(1));
        assert_eq!(started.elapsed(), DRAIN_TIMEOUT);
    }

    #[tokio::test]
    async fn an_address_nothing_routes_to_should_drain_at_once() {
        let handoff = Handoff::default();
        handoff.set_routed([ip(2)].into());
        let (how, _guard) = handoff.drain(&[ip(1)], PROPAGATION, DRAIN_TIMEOUT).await;
        assert_eq!(how, Drained::Idle);
        assert!(!handoff.is_draining(&ip(1)));
    }
}
