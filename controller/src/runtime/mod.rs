//! The reconcile runtime, kube-runtime's shape on tokio + futures and our `Store`:
//!
//! ```text
//! store watch ─▶ watcher ─▶ reflector cache ─▶ triggers ─▶ scheduler (dedup, delays)
//!                                               ▲              │
//!       related objects / Docker events ────────┘              ▼
//!                                       runner: reconcile(key) -> Action | error → backoff
//! ```

pub mod finalizer;
pub mod leader;
pub mod reflector;
pub mod runner;
pub mod scheduler;
pub mod watcher;
