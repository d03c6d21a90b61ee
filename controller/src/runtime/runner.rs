//! The runner: takes keys from triggers and the scheduler, reconciles them with bounded
//! concurrency, never two reconciles of one key at once, and reschedules per the outcome:
//! `Requeue(after)`, wait for the next change, or per-object exponential backoff on errors.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::scheduler::Scheduler;
use crate::backoff::Backoff;

/// What a reconcile asks for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Run again after this delay (e.g. to watch a rollout progress).
    Requeue(Duration),
    /// Nothing to do until something changes.
    AwaitChange,
}

/// Whether a reconcile error is worth retrying on its own.
pub trait Transient {
    /// `true`: retry with backoff; `false`: wait for a change to the object.
    fn is_transient(&self) -> bool;
}

/// Tuning of the runner.
#[derive(Clone, Debug)]
pub struct Config {
    /// Most reconciles running at once.
    pub concurrency: usize,
    /// First retry delay after an error.
    pub backoff_initial: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Every key is reconciled again this often, whatever happened (None: never).
    pub resync: Option<Duration>,
    /// Counts reconciles that panicked (for `/metrics`); `None`: not counted.
    pub panics: Option<Arc<AtomicU64>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            concurrency: 16,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(60),
            resync: Some(Duration::from_secs(300)),
            panics: None,
        }
    }
}

/// How one reconcile ended.
enum Outcome<E> {
    Done(Result<Action, E>),
    /// It panicked: the panic is caught inside the task, with its key, so the key is retried
    /// with backoff like a transient error instead of being lost for good.
    Panicked(String),
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Runs until `shutdown` resolves, then waits for the reconciles in flight.
///
/// `all_keys` lists every key for the periodic resync (typically the reflector's keys).
pub async fn run<K, T, R, Fut, E>(
    mut triggers: T,
    all_keys: impl Fn() -> Vec<K>,
    reconcile: R,
    config: Config,
    shutdown: impl Future<Output = ()>,
) where
    K: Clone + Eq + Hash + Ord + Display + Send + 'static,
    T: Stream<Item = K> + Unpin,
    R: Fn(K) -> Fut,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: Transient + Display + Send + 'static,
{
    let mut scheduler: Scheduler<K> = Scheduler::default();
    let mut running: HashSet<K> = HashSet::new();
    let mut rerun: HashSet<K> = HashSet::new();
    let mut backoffs: HashMap<K, Backoff> = HashMap::new();
    let mut tasks: JoinSet<(K, Outcome<E>)> = JoinSet::new();
    let mut triggers_open = true;
    let resync_every = config
        .resync
        .unwrap_or(Duration::from_secs(365 * 24 * 3600));
    let mut resync = tokio::time::interval_at(Instant::now() + resync_every, resync_every);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                let (key, outcome) = match joined {
                    Ok(done) => done,
                    // Only a cancelled task gets here (panics are caught with their key).
                    Err(e) => {
                        tracing::error!(error = %e, "a reconcile task was cancelled");
                        continue;
                    }
                };
                running.remove(&key);
                let now = Instant::now();
                let mut retry = |key: &K| {
                    let delay = backoffs
                        .entry(key.clone())
                        .or_insert_with(|| Backoff::new(config.backoff_initial, config.backoff_max))
                        .next_delay();
                    scheduler.schedule(key.clone(), now + delay);
                    delay
                };
                match outcome {
                    Outcome::Done(Ok(Action::Requeue(after))) => {
                        backoffs.remove(&key);
                        scheduler.schedule(key.clone(), now + after);
                    }
                    Outcome::Done(Ok(Action::AwaitChange)) => {
                        backoffs.remove(&key);
                    }
                    Outcome::Done(Err(e)) if e.is_transient() => {
                        let delay = retry(&key);
                        tracing::warn!(%key, error = %e, retry_in = ?delay, "reconcile failed; retrying");
                    }
                    Outcome::Done(Err(e)) => {
                        backoffs.remove(&key);
                        tracing::warn!(%key, error = %e, "reconcile failed; waiting for a change");
                    }
                    Outcome::Panicked(message) => {
                        if let Some(panics) = &config.panics {
                            panics.fetch_add(1, Ordering::Relaxed);
                        }
                        let delay = retry(&key);
                        tracing::error!(%key, panic = %message, retry_in = ?delay, "reconcile panicked; retrying");
                    }
                }
                if rerun.remove(&key) {
                    scheduler.schedule(key, now);
                }
            }
            next = triggers.next(), if triggers_open => match next {
                Some(key) => scheduler.schedule(key, Instant::now()),
                None => triggers_open = false,
            },
            key = scheduler.next(), if running.len() < config.concurrency.max(1) => {
                if running.contains(&key) {
                    // Never two at once: run it again when the current one ends.
                    rerun.insert(key);
                    continue;
                }
                running.insert(key.clone());
                let span = tracing::info_span!("reconcile", %key);
                // Building the future may panic too: catch both, with the key.
                let fut = std::panic::catch_unwind(AssertUnwindSafe(|| reconcile(key.clone())));
                tasks.spawn(tracing::Instrument::instrument(async move {
                    let outcome = match fut {
                        Ok(fut) => match AssertUnwindSafe(fut).catch_unwind().await {
                            Ok(result) => Outcome::Done(result),
                            Err(payload) => Outcome::Panicked(panic_message(&*payload)),
                        },
                        Err(payload) => Outcome::Panicked(panic_message(&*payload)),
                    };
                    (key, outcome)
                }, span));
            }
            _ = resync.tick() => {
                let now = Instant::now();
                for key in all_keys() {
                    scheduler.schedule(key, now);
                }
            }
        }
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Debug)]
    struct Failure(bool);

    impl Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "failure (transient: {})", self.0)
        }
    }

    impl Transient for Failure {
        fn is_transient(&self) -> bool {
            self.0
        }
    }

    /// Records (key, start, end) of every reconcile.
    type Log = Arc<Mutex<Vec<(String, Instant, Instant)>>>;

    fn config(concurrency: usize) -> Config {
        Config {
            concurrency,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(8),
            resync: None,
            panics: None,
        }
    }

    fn keys(v: &[&str]) -> futures::stream::BoxStream<'static, String> {
        futures::stream::iter(v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).boxed()
    }

    fn max_overlap(log: &[(String, Instant, Instant)], key: Option<&str>) -> usize {
        let spans: Vec<_> = log
            .iter()
            .filter(|(k, _, _)| key.is_none_or(|key| k == key))
            .collect();
        spans
            .iter()
            .map(|(_, s, _)| spans.iter().filter(|(_, s2, e2)| s2 <= s && s < e2).count())
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn runner_should_never_reconcile_one_key_twice_at_once() {
        let log: Log = Arc::default();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let l = log.clone();
        let reconcile = move |key: String| {
            let l = l.clone();
            async move {
                let start = Instant::now();
                tokio::time::sleep(Duration::from_secs(1)).await;
                l.lock().unwrap().push((key, start, Instant::now()));
                Ok::<_, Failure>(Action::AwaitChange)
            }
        };
        let triggers = tokio_stream_from(rx);
        let runner = run(
            triggers,
            Vec::new,
            reconcile,
            config(4),
            tokio::time::sleep(Duration::from_secs(10)),
        );
        let feeder = async {
            for _ in 0..5 {
                tx.send("a".into()).unwrap();
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        };
        tokio::join!(runner, feeder);
        let log = log.lock().unwrap();
        assert_eq!(max_overlap(&log, Some("a")), 1);
        assert!(
            log.len() >= 2,
            "changes during a reconcile cause one more run: {log:?}"
        );
        assert!(
            log.len() <= 3,
            "triggers during a run are merged: {}",
            log.len()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn runner_should_bound_concurrency() {
        let log: Log = Arc::default();
        let l = log.clone();
        let reconcile = move |key: String| {
            let l = l.clone();
            async move {
                let start = Instant::now();
                tokio::time::sleep(Duration::from_secs(1)).await;
                l.lock().unwrap().push((key, start, Instant::now()));
                Ok::<_, Failure>(Action::AwaitChange)
            }
        };
        let all: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
        let triggers = futures::stream::iter(all.clone()).boxed();
        run(
            triggers,
            Vec::new,
            reconcile,
            config(3),
            tokio::time::sleep(Duration::from_secs(10)),
        )
        .await;
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 10, "every key reconciled once");
        assert_eq!(max_overlap(&log, None), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_should_back_off_exponentially_and_reset_on_success() {
        let calls: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let c = calls.clone();
        let reconcile = move |_key: String| {
            let c = c.clone();
            async move {
                let n = {
                    let mut calls = c.lock().unwrap();
                    calls.push(Instant::now());
                    calls.len()
                };
                match n {
                    1..=4 => Err(Failure(true)),
                    5 => Ok(Action::Requeue(Duration::from_secs(2))),
                    6 => Err(Failure(true)),
                    _ => Ok(Action::AwaitChange),
                }
            }
        };
        run(
            keys(&["a"]),
            Vec::new,
            reconcile,
            config(1),
            tokio::time::sleep(Duration::from_secs(60)),
        )
        .await;
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 7, "{calls:?}");
        let gaps: Vec<f64> = calls
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64())
            .collect();
        // 1 s, 2 s, 4 s, 8 s (capped), each with up to 20 % jitter below; then the requeue's
        // 2 s; then the backoff starts over at 1 s.
        for (gap, max) in gaps.iter().zip([1.0, 2.0, 4.0, 8.0, 2.0, 1.0]) {
            assert!(
                *gap <= max + 1e-6 && *gap >= max * 0.8 - 1e-6,
                "gaps {gaps:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_should_wait_for_a_change() {
        let calls = Arc::new(Mutex::new(0));
        let c = calls.clone();
        let reconcile = move |_key: String| {
            let c = c.clone();
            async move {
                *c.lock().unwrap() += 1;
                Err::<Action, _>(Failure(false))
            }
        };
        run(
            keys(&["a"]),
            Vec::new,
            reconcile,
            config(1),
            tokio::time::sleep(Duration::from_secs(60)),
        )
        .await;
        assert_eq!(*calls.lock().unwrap(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn resync_should_reconcile_every_key_periodically() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c = calls.clone();
        let reconcile = move |key: String| {
            let c = c.clone();
            async move {
                c.lock().unwrap().push(key);
                Ok::<_, Failure>(Action::AwaitChange)
            }
        };
        let cfg = Config {
            resync: Some(Duration::from_secs(10)),
            ..config(2)
        };
        let all = || vec!["x".to_owned(), "y".to_owned()];
        run(
            futures::stream::empty().boxed(),
            all,
            reconcile,
            cfg,
            tokio::time::sleep(Duration::from_secs(25)),
        )
        .await;
        let mut calls = calls.lock().unwrap().clone();
        calls.sort();
        assert_eq!(calls, vec!["x", "x", "y", "y"], "two resyncs in 25 s");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_should_let_reconciles_in_flight_finish() {
        let finished = Arc::new(Mutex::new(false));
        let f = finished.clone();
        let reconcile = move |_key: String| {
            let f = f.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                *f.lock().unwrap() = true;
                Ok::<_, Failure>(Action::AwaitChange)
            }
        };
        run(
            keys(&["a"]),
            Vec::new,
            reconcile,
            config(1),
            tokio::time::sleep(Duration::from_secs(1)),
        )
        .await;
        assert!(*finished.lock().unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_reconcile_that_panics_should_be_counted_and_retried_with_backoff() {
        let calls: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let c = calls.clone();
        let reconcile = move |_key: String| {
            let c = c.clone();
            async move {
                let n = {
                    let mut calls = c.lock().unwrap();
                    calls.push(Instant::now());
                    calls.len()
                };
                assert!(n > 2, "reconcile number {n} panics");
                Ok::<_, Failure>(Action::AwaitChange)
            }
        };
        let panics = Arc::new(AtomicU64::new(0));
        let cfg = Config {
            panics: Some(panics.clone()),
            ..config(1)
        };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        tx.send("a".into()).unwrap();
        let feeder = async {
            // After it recovered, a trigger still reaches the key: nothing is stuck.
            tokio::time::sleep(Duration::from_secs(20)).await;
            tx.send("a".into()).unwrap();
        };
        let runner = run(
            tokio_stream_from(rx),
            Vec::new,
            reconcile,
            cfg,
            tokio::time::sleep(Duration::from_secs(30)),
        );
        tokio::join!(runner, feeder);
        let calls = calls.lock().unwrap();
        assert_eq!(
            calls.len(),
            4,
            "two panics, the retry that worked, the trigger: {calls:?}"
        );
        assert_eq!(panics.load(Ordering::Relaxed), 2);
        let gap = (calls[1] - calls[0]).as_secs_f64();
        assert!(
            (0.8..=1.0 + 1e-6).contains(&gap),
            "backoff after a panic: {gap}"
        );
        let gap = (calls[2] - calls[1]).as_secs_f64();
        assert!((1.6..=2.0 + 1e-6).contains(&gap), "and it grows: {gap}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reconcile_that_panics_before_its_future_should_be_retried_too() {
        let calls = Arc::new(Mutex::new(0u32));
        let c = calls.clone();
        let reconcile = move |_key: String| {
            let n = {
                let mut calls = c.lock().unwrap();
                *calls += 1;
                *calls
            };
            assert!(n > 1, "building reconcile number {n} panics");
            async move { Ok::<_, Failure>(Action::AwaitChange) }
        };
        run(
            keys(&["a"]),
            Vec::new,
            reconcile,
            config(1),
            tokio::time::sleep(Duration::from_secs(10)),
        )
        .await;
        assert_eq!(*calls.lock().unwrap(), 2);
    }

    fn tokio_stream_from(
        mut rx: tokio::sync::mpsc::UnboundedReceiver<String>,
    ) -> futures::stream::BoxStream<'static, String> {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
    }
}
