//! The watch loop: an initial sync, then a sync after every burst of changes.
//!
//! File events come from `notify` (inotify on Linux), recursively under the directory, plus
//! the directory's parent so that the directory coming back after a removal is noticed. A
//! burst of events (an editor's save, a `git pull` touching 50 files) is debounced into one
//! sync: the sync starts once no relevant event arrived for `debounce`, or `max_delay` after
//! the first one when events never stop. Events during a sync cause another sync after it,
//! so the last content is always the one applied.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{files, PruneGate, SyncError, SyncReport, Syncer};
use crate::error::{Error, Result};
use crate::transport::Transport;

/// Timing of the loop.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Quiet period after the last event before syncing.
    pub debounce: Duration,
    /// Longest wait after the first event of a burst.
    pub max_delay: Duration,
    /// A full sync this often even without events (repairs edits made through the API);
    /// zero disables it.
    pub resync: Duration,
    /// How often the directory's existence is checked, in case an event was missed.
    pub poll: Duration,
    /// First retry delay when nanocld is unavailable; doubles up to 30 s.
    pub retry: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            debounce: Duration::from_millis(400),
            max_delay: Duration::from_secs(5),
            resync: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            retry: Duration::from_millis(500),
        }
    }
}

/// Why a sync ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The first sync.
    Start,
    /// Files changed.
    Change,
    /// The periodic full sync.
    Resync,
    /// A retry after nanocld was unavailable.
    Retry,
}

/// What the loop reports.
#[derive(Debug)]
pub enum Report<'a> {
    /// A sync finished.
    Synced(Trigger, &'a SyncReport),
    /// The directory is missing: nothing is applied or pruned until it is back.
    Missing(&'a Path, &'a std::io::Error),
    /// nanocld could not be reached or failed; the sync is retried after `delay`.
    Retrying(&'a Error, Duration),
    /// The file watcher failed (e.g. the inotify watch limit): syncs still run on the periodic
    /// and existence checks.
    WatchError(String),
}

/// Runs until `shutdown` turns true. Errors only when the file watcher cannot be created.
pub async fn run(
    mut syncer: Syncer,
    api: &impl Transport,
    timing: Timing,
    mut report: impl FnMut(Report<'_>),
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let root = std::path::absolute(&syncer.config().dir).map_err(|source| Error::Io {
        what: format!(
            "cannot resolve the directory {}",
            syncer.config().dir.display()
        ),
        source,
    })?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Relevant changes seen, counted as they happen: a sync compares the count before and
    // after, and does not prune if files changed meanwhile.
    let changes = Arc::new(AtomicU64::new(0));
    let mut watcher = {
        let (root, changes) = (root.clone(), changes.clone());
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event
                .as_ref()
                .map_or(true, |e| files::is_relevant(&root, e))
            {
                changes.fetch_add(1, Ordering::SeqCst);
            }
            let _ = tx.send(event);
        })
        .map_err(|source| Error::WatchFailed {
            what: "cannot start watching files".into(),
            source,
        })?
    };
    let mut root_watched = false;
    let mut parent_watched = false;
    let mut missing_reported = false;
    let mut retry_delay = timing.retry;
    let mut trigger = Some(Trigger::Start);
    let mut debounce = false;
    let mut next_resync = resync_deadline(timing);
    let mut poll = tokio::time::interval(timing.poll);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        if let Some(why) = trigger {
            if debounce {
                ensure_watch(&mut watcher, &root, &mut root_watched, &mut report);
                let first = Instant::now();
                let mut last = first;
                loop {
                    let deadline = (last + timing.debounce).min(first + timing.max_delay);
                    tokio::select! {
                        event = rx.recv() => match event {
                            Some(event) => {
                                if relevant(&root, event, &mut root_watched, &mut report) {
                                    last = Instant::now();
                                    // The directory came back: watch it now, so the files
                                    // arriving in it extend this quiet period.
                                    ensure_watch(&mut watcher, &root, &mut root_watched, &mut report);
                                }
                            }
                            None => break,
                        },
                        () = tokio::time::sleep_until(deadline) => break,
                        () = stopped(&mut shutdown) => return Ok(()),
                    }
                }
            }
            // Events already queued are covered by this sync; later ones bring another.
            while let Ok(event) = rx.try_recv() {
                relevant(&root, event, &mut root_watched, &mut report);
            }
            if !parent_watched {
                if let Some(parent) = root.parent().filter(|p| p.is_dir()) {
                    parent_watched = watcher.watch(parent, RecursiveMode::NonRecursive).is_ok();
                }
            }
            ensure_watch(&mut watcher, &root, &mut root_watched, &mut report);
            trigger = None;
            debounce = false;
            let before = changes.load(Ordering::SeqCst);
            let came_back = missing_reported;
            let gate = || {
                if came_back {
                    PruneGate::Wait("the directory just came back; the next sync prunes".into())
                } else if changes.load(Ordering::SeqCst) != before {
                    PruneGate::Wait("files changed during the sync; the next sync prunes".into())
                } else {
                    PruneGate::Open
                }
            };
            let result = syncer.sync_guarded(api, gate).await;
            next_resync = resync_deadline(timing);
            match result {
                Ok(sync) => {
                    missing_reported = false;
                    retry_delay = timing.retry;
                    report(Report::Synced(why, &sync));
                    if sync.again {
                        // Something is pending: look again soon.
                        next_resync =
                            Some(Instant::now() + timing.debounce.max(Duration::from_secs(1)));
                    }
                }
                Err(SyncError::Missing(e)) => {
                    root_watched = false;
                    if !missing_reported {
                        report(Report::Missing(&syncer.config().dir, &e));
                        missing_reported = true;
                    }
                }
                Err(SyncError::Retry(e)) => {
                    report(Report::Retrying(&e, retry_delay));
                    tokio::select! {
                        () = tokio::time::sleep(retry_delay) => {}
                        () = stopped(&mut shutdown) => return Ok(()),
                    }
                    retry_delay = (retry_delay * 2).min(Duration::from_secs(30));
                    trigger = Some(Trigger::Retry);
                    continue;
                }
            }
        }

        tokio::select! {
            event = rx.recv() => match event {
                Some(event) => {
                    if relevant(&root, event, &mut root_watched, &mut report) {
                        trigger = Some(Trigger::Change);
                        debounce = true;
                    }
                }
                // The watcher is gone; keep going on polls and resyncs.
                None => {
                    poll.tick().await;
                }
            },
            _ = poll.tick() => {
                let exists = root.is_dir();
                if exists != root_watched {
                    // Removed, or back: resync (reporting the removal once).
                    root_watched = root_watched && exists;
                    trigger = Some(Trigger::Change);
                    debounce = exists;
                }
            }
            () = sleep_until_opt(next_resync) => trigger = Some(Trigger::Resync),
            () = stopped(&mut shutdown) => return Ok(()),
        }
        if trigger == Some(Trigger::Change) && !root.is_dir() && missing_reported {
            // Still gone: nothing to do until it is back.
            trigger = None;
        }
    }
}

/// Watches the directory (again) if it exists and is not watched.
fn ensure_watch(
    watcher: &mut impl Watcher,
    root: &Path,
    root_watched: &mut bool,
    report: &mut impl FnMut(Report<'_>),
) {
    if *root_watched || !root.is_dir() {
        return;
    }
    let _ = watcher.unwatch(root);
    if let Err(e) = watcher.watch(root, RecursiveMode::Recursive) {
        report(Report::WatchError(format!(
            "cannot watch {}: {e}; changes are picked up by the periodic sync",
            root.display()
        )));
    }
    // Even when watching failed: the poll then only looks for a removal.
    *root_watched = true;
}

/// Resolves once shutdown is asked for (or its sender is gone).
async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

fn resync_deadline(timing: Timing) -> Option<Instant> {
    (!timing.resync.is_zero()).then(|| Instant::now() + timing.resync)
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Whether an event matters; an event about the directory itself means it must be watched
/// again (it was removed, replaced or moved).
fn relevant(
    root: &PathBuf,
    event: notify::Result<notify::Event>,
    root_watched: &mut bool,
    report: &mut impl FnMut(Report<'_>),
) -> bool {
    match event {
        Ok(event) => {
            let relevant = files::is_relevant(root, &event);
            if relevant && event.paths.iter().any(|p| p == root) {
                *root_watched = false;
            }
            relevant
        }
        Err(e) => {
            report(Report::WatchError(format!("file watcher: {e}")));
            true
        }
    }
}
