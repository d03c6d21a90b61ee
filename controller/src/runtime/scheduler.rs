//! The scheduler: a queue of keys, deduplicated (a key is queued at most once, at its
//! earliest requested time), released when their time comes.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

use tokio::time::Instant;

/// Keys waiting for their time.
#[derive(Debug)]
pub struct Scheduler<K> {
    /// Ordered by (time, sequence) so equal times leave in arrival order.
    queue: BTreeSet<(Instant, u64, K)>,
    at: HashMap<K, (Instant, u64)>,
    sequence: u64,
}

impl<K: Clone + Eq + Hash + Ord> Default for Scheduler<K> {
    fn default() -> Self {
        Scheduler {
            queue: BTreeSet::new(),
            at: HashMap::new(),
            sequence: 0,
        }
    }
}

impl<K: Clone + Eq + Hash + Ord> Scheduler<K> {
    /// Queues `key` for `when`; if it is already queued, the earlier time wins.
    pub fn schedule(&mut self, key: K, when: Instant) {
        if let Some((existing, seq)) = self.at.get(&key).copied() {
            if existing <= when {
                return;
            }
            self.queue.remove(&(existing, seq, key.clone()));
        }
        self.sequence += 1;
        self.queue.insert((when, self.sequence, key.clone()));
        self.at.insert(key, (when, self.sequence));
    }

    /// When the next key is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.first().map(|(t, _, _)| *t)
    }

    /// Removes and returns the next key if it is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<K> {
        let (when, _, _) = self.queue.first()?;
        if *when > now {
            return None;
        }
        let (_, _, key) = self.queue.pop_first()?;
        self.at.remove(&key);
        Some(key)
    }

    /// Waits until a key is due and returns it; pending forever when empty (use in `select!`
    /// next to the sources that add keys).
    pub async fn next(&mut self) -> K {
        loop {
            // A key already due leaves at once: the timer would round its deadline up to the
            // next millisecond tick of the time driver, and every hop of a change through a
            // controller (a key scheduled for `now`) would wait for it.
            if let Some(key) = self.pop_due(Instant::now()) {
                return key;
            }
            match self.next_due() {
                None => std::future::pending::<()>().await,
                Some(when) => tokio::time::sleep_until(when).await,
            }
        }
    }

    /// How many keys are queued.
    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn scheduler_dedupe_should_keep_earlier_item() {
        let mut s = Scheduler::default();
        let now = Instant::now();
        s.schedule("a", now + Duration::from_secs(10));
        s.schedule("a", now + Duration::from_secs(5));
        s.schedule("a", now + Duration::from_secs(20));
        assert_eq!(s.len(), 1);
        assert_eq!(s.next_due(), Some(now + Duration::from_secs(5)));
        assert_eq!(s.next().await, "a");
        assert_eq!(Instant::now(), now + Duration::from_secs(5));
        assert!(s.is_empty());
    }

    /// A key due now leaves at once, not at the time driver's next millisecond tick (the
    /// clock is paused: it moves only if `next` waits on the timer).
    #[tokio::test(start_paused = true)]
    async fn a_key_due_now_should_leave_without_waiting_for_the_timer() {
        let mut s = Scheduler::default();
        tokio::time::advance(Duration::from_micros(500)).await;
        let now = Instant::now();
        s.schedule("due", now);
        assert_eq!(s.next().await, "due");
        assert_eq!(Instant::now(), now, "next() waited for a timer tick");
    }

    #[tokio::test(start_paused = true)]
    async fn scheduler_should_release_keys_in_time_order() {
        let mut s = Scheduler::default();
        let now = Instant::now();
        s.schedule("late", now + Duration::from_secs(3));
        s.schedule("first", now);
        s.schedule("second", now);
        assert_eq!(s.next().await, "first");
        assert_eq!(s.next().await, "second");
        assert_eq!(s.pop_due(Instant::now()), None, "late is not due yet");
        assert_eq!(s.next().await, "late");
        assert_eq!(Instant::now(), now + Duration::from_secs(3));
    }
}
