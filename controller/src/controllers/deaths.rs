//! What Docker's events said of containers before its container list does: dockerd sends
//! `die` a moment before its listing stops saying "running" (the listing is a snapshot it
//! updates after the event). The cargo controller reads listings through `overlay`, so a
//! replica that died is restarted on the event itself, not on a later look.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::docker::{Container, Event, State};

/// How long a death is remembered without a `start` or `destroy` after it: by then the
/// listing has long caught up.
const REMEMBERED: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug)]
struct Death {
    exit_code: Option<i64>,
    at: Instant,
}

/// Containers that died since Docker last said they started. Clones share one record.
#[derive(Clone, Debug, Default)]
pub struct Deaths {
    died: Arc<Mutex<HashMap<String, Death>>>,
}

impl Deaths {
    fn died(&self) -> std::sync::MutexGuard<'_, HashMap<String, Death>> {
        self.died
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes note of a container event: `die` (with its `exitCode` attribute), and `start`
    /// or `destroy`, after which the death no longer matters.
    pub fn record(&self, event: &Event) {
        if event.kind != "container" {
            return;
        }
        let mut died = self.died();
        match event.action.as_str() {
            "die" => {
                let exit_code = event.labels.get("exitCode").and_then(|c| c.parse().ok());
                died.insert(
                    event.id.clone(),
                    Death {
                        exit_code,
                        at: Instant::now(),
                    },
                );
            }
            "start" | "destroy" => {
                died.remove(&event.id);
            }
            _ => {}
        }
        died.retain(|_, d| d.at.elapsed() < REMEMBERED);
    }

    /// `observed` (a listing) with what the events already said: a container listed as
    /// running that has died since it last started is shown exited, with its exit code.
    pub fn overlay(&self, mut observed: Vec<Container>) -> Vec<Container> {
        let died = self.died();
        if died.is_empty() {
            return observed;
        }
        for c in &mut observed {
            if c.state != State::Running {
                continue;
            }
            if let Some(death) = died.get(&c.id) {
                c.state = State::Exited;
                c.exit_code = death.exit_code;
            }
        }
        observed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn event(action: &str, id: &str, exit_code: Option<&str>) -> Event {
        let mut labels = BTreeMap::new();
        if let Some(code) = exit_code {
            labels.insert("exitCode".to_owned(), code.to_owned());
        }
        Event {
            kind: "container".into(),
            action: action.into(),
            id: id.into(),
            labels,
        }
    }

    fn running(id: &str) -> Container {
        Container {
            id: id.into(),
            name: id.into(),
            image: "i".into(),
            labels: BTreeMap::new(),
            state: State::Running,
            exit_code: None,
            oom_killed: false,
            health: None,
            started_at: None,
            start_error: None,
            networks: None,
            image_id: None,
        }
    }

    #[test]
    fn a_death_should_show_until_the_container_starts_again() {
        let deaths = Deaths::default();
        deaths.record(&event("die", "a", Some("137")));
        let seen = deaths.overlay(vec![running("a"), running("b")]);
        assert_eq!(seen[0].state, State::Exited);
        assert_eq!(seen[0].exit_code, Some(137));
        assert_eq!(seen[1].state, State::Running, "b did not die");
        deaths.record(&event("start", "a", None));
        assert_eq!(deaths.overlay(vec![running("a")])[0].state, State::Running);
        deaths.record(&event("die", "b", Some("1")));
        deaths.record(&event("destroy", "b", None));
        assert_eq!(deaths.overlay(vec![running("b")])[0].state, State::Running);
    }
}
