//! Long-lived tasks, tracked: every watcher, runner and collector the controllers start is
//! named and joined here, so one that ends or panics before shutdown is noticed (and makes
//! nanocld stop with an error) instead of leaving a cache or a loop silently frozen.

use std::collections::HashMap;
use std::future::Future;

use tokio::task::{Id, JoinSet};

/// A set of named tasks.
#[derive(Debug, Default)]
pub struct Tasks {
    set: JoinSet<()>,
    names: HashMap<Id, String>,
}

/// A tracked task ended before it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum TaskEnded {
    /// It returned.
    #[error("the {name} task ended unexpectedly")]
    Returned {
        /// Which.
        name: String,
    },
    /// It panicked.
    #[error("the {name} task panicked: {message}")]
    Panicked {
        /// Which.
        name: String,
        /// The panic's message.
        message: String,
    },
}

impl Tasks {
    /// Starts `task` under `name`.
    pub fn spawn(
        &mut self,
        name: impl Into<String>,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        let handle = self.set.spawn(task);
        self.names.insert(handle.id(), name.into());
    }

    /// Waits for the next task to end, and says which and how. `None`: none is left.
    pub async fn next_ended(&mut self) -> Option<TaskEnded> {
        let joined = self.set.join_next_with_id().await?;
        Some(match joined {
            Ok((id, ())) => TaskEnded::Returned {
                name: self.names.remove(&id).unwrap_or_default(),
            },
            Err(e) => {
                let name = self.names.remove(&e.id()).unwrap_or_default();
                let message = if e.is_panic() {
                    let payload = e.into_panic();
                    payload
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_default()
                } else {
                    "cancelled".to_owned()
                };
                TaskEnded::Panicked { name, message }
            }
        })
    }

    /// Waits for every task to end (after shutdown was signalled).
    pub async fn join_all(&mut self) {
        while self.set.join_next().await.is_some() {}
        self.names.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_should_name_the_one_that_ended_or_panicked() {
        let mut tasks = Tasks::default();
        tasks.spawn("quiet", async {});
        match tasks.next_ended().await {
            Some(TaskEnded::Returned { name }) => assert_eq!(name, "quiet"),
            other => panic!("{other:?}"),
        }
        tasks.spawn("loud", async { panic!("boom") });
        match tasks.next_ended().await {
            Some(TaskEnded::Panicked { name, message }) => {
                assert_eq!((name.as_str(), message.as_str()), ("loud", "boom"));
            }
            other => panic!("{other:?}"),
        }
        assert!(tasks.next_ended().await.is_none());
    }
}
