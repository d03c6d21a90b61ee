//! Changes made to nanocl's containers behind its back, as Docker's events tell them:
//! `docker update` (resources) and `docker rename`. nanocl never updates or renames a
//! container itself, so every such event is someone else's change; the cargo controller
//! replaces the container (and reconnects one disconnected from its networks, which it sees in
//! the listing).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::docker::Event;

/// What was done to which container.
#[derive(Clone, Debug, Default)]
pub struct Drifts {
    seen: Arc<Mutex<HashMap<String, String>>>,
}

impl Drifts {
    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes note of a container event: `update`, `rename`; `destroy` forgets.
    pub fn record(&self, event: &Event) {
        if event.kind != "container" {
            return;
        }
        let what = match event.action.as_str() {
            "update" => "its resources were changed (docker update)".to_owned(),
            "rename" => format!(
                "it was renamed from {} to {} (docker rename)",
                event
                    .labels
                    .get("oldName")
                    .map_or("?", |n| n.trim_start_matches('/')),
                event.labels.get("name").map_or("?", String::as_str)
            ),
            "destroy" => {
                self.seen().remove(&event.id);
                return;
            }
            _ => return,
        };
        self.seen().insert(event.id.clone(), what);
    }

    /// What was done to container `id`, if anything.
    pub fn of(&self, id: &str) -> Option<String> {
        self.seen().get(id).cloned()
    }

    /// Forgets container `id` (it is being replaced).
    pub fn forget(&self, id: &str) {
        self.seen().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn event(action: &str, attributes: &[(&str, &str)]) -> Event {
        Event {
            kind: "container".into(),
            action: action.into(),
            id: "c1".into(),
            labels: attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn update_and_rename_should_be_remembered_until_destroy() {
        let d = Drifts::default();
        d.record(&event("start", &[]));
        assert_eq!(d.of("c1"), None);
        d.record(&event(
            "rename",
            &[("oldName", "/web-0-abc"), ("name", "mine")],
        ));
        assert_eq!(
            d.of("c1").as_deref(),
            Some("it was renamed from web-0-abc to mine (docker rename)")
        );
        d.record(&event("update", &[]));
        assert!(d.of("c1").is_some_and(|w| w.contains("docker update")));
        d.record(&event("destroy", &[]));
        assert_eq!(d.of("c1"), None);
    }
}
