//! The Docker label filter of what this nanocld owns: defined once, narrowed step by step
//! (`OwnerFilter::instance(id).namespace(ns).cargo(name)`).

use super::plan::labels;

/// Label filters selecting Docker objects managed by one nanocld instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerFilter {
    labels: Vec<String>,
}

impl OwnerFilter {
    /// Everything managed by the nanocld whose store identity is `instance`.
    pub fn instance(instance: &str) -> OwnerFilter {
        OwnerFilter {
            labels: vec![
                format!("{}=true", labels::MANAGED),
                format!("{}={instance}", labels::INSTANCE),
            ],
        }
    }

    fn with(mut self, label: &str, value: &str) -> OwnerFilter {
        self.labels.push(format!("{label}={value}"));
        self
    }

    /// ... in namespace `namespace`.
    pub fn namespace(self, namespace: &str) -> OwnerFilter {
        self.with(labels::NAMESPACE, namespace)
    }

    /// ... belonging to cargo `name`.
    pub fn cargo(self, name: &str) -> OwnerFilter {
        self.with(labels::CARGO, name)
    }

    /// ... belonging to cluster `name`.
    pub fn cluster(self, name: &str) -> OwnerFilter {
        self.with(labels::CLUSTER, name)
    }

    /// ... belonging to Network object `name`.
    pub fn network(self, name: &str) -> OwnerFilter {
        self.with(labels::NETWORK, name)
    }

    /// The filters, for the Docker adapter.
    pub fn labels(&self) -> Vec<String> {
        self.labels.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_filter_should_narrow_by_instance_namespace_and_owner() {
        assert_eq!(
            OwnerFilter::instance("abc")
                .namespace("prod")
                .cargo("web")
                .labels(),
            vec![
                "io.nanocl.managed=true",
                "io.nanocl.instance=abc",
                "io.nanocl.namespace=prod",
                "io.nanocl.cargo=web"
            ]
        );
    }
}
