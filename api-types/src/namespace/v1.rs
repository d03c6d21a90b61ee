//! `Namespace` in `nanocl.io/v1`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::Object;
use crate::path::FieldPath;
use crate::validation::FieldErrors;

/// A Namespace: cluster-scoped; its name prefixes everything stored in it.
pub type Namespace = Object<NamespaceSpec, NamespaceStatus>;

/// What a Namespace configures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceSpec {
    /// What the containers of the namespace's cargoes may do to the host. Default (and
    /// `global`'s): the restricted policy — no bind mount of the host's own paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<ContainerPolicy>,

    /// Who may use the namespace over the TLS API, by the common name (CN) of their client
    /// certificate. Left out, every authenticated user may read and write it. Clients of the
    /// unix socket (and of plaintext loopback TCP) are the host's own and are not restricted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
}

/// The users who may read and write a namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Access {
    /// The users who may create, change and delete the namespace's objects, the namespace
    /// itself included, and exec in its cargoes. Left out, every authenticated user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write: Option<Vec<String>>,
    /// The users who may read them (writers always may). Left out, every authenticated user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<Vec<String>>,
}

/// What a user may do in a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// Get, list, watch, logs, usage, events.
    Read,
    /// Create, replace, delete, exec.
    Write,
}

impl Access {
    /// Whether `user` may `verb`.
    pub fn allows(&self, user: &str, verb: Verb) -> bool {
        let listed =
            |list: &Option<Vec<String>>| list.as_ref().is_none_or(|l| l.iter().any(|u| u == user));
        match verb {
            Verb::Write => listed(&self.write),
            Verb::Read => {
                listed(&self.read)
                    || self
                        .write
                        .as_ref()
                        .is_some_and(|l| l.iter().any(|u| u == user))
            }
        }
    }
}

/// What containers may do to the host. Left out, the restricted policy: no privileged
/// container, no added capability, no device, no host pid or ipc namespace, no bind mount of
/// the host's own paths. (A host network is not offered at all: a replica is on its
/// cluster's networks.)
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerPolicy {
    /// Cargoes may be privileged (`spec.container.privileged`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// The capabilities cargoes may add to Docker's default set (`spec.container.capAdd`),
    /// e.g. `[NET_ADMIN]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// The host devices cargoes may be given (`spec.container.devices`), by host path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Cargoes may share the host's process namespace (`spec.container.hostPid`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_pid: bool,
    /// Cargoes may share the host's IPC namespace (`spec.container.hostIpc`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_ipc: bool,
    /// The host paths cargoes may bind-mount: a path is allowed when it is one of these or
    /// under one, and refused otherwise. Left out, any path is allowed except the host's own
    /// (`/`, `/etc`, `/proc`, `/sys`, `/dev`, `/boot`, `/root`, `/run`, `/var/run`,
    /// `/var/lib/docker`, `/var/lib/containerd`, `/var/lib/nanocl`, what is under them,
    /// and what holds them, such as `/var`); listing one of those here allows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_paths: Option<Vec<String>>,
}

/// The host's own paths: a container that mounts one (or what holds one) controls the
/// host — Docker's socket is under `/run` and `/var/run`.
pub const SENSITIVE_PATHS: &[&str] = &[
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/root",
    "/run",
    "/var/run",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/lib/nanocl",
];

/// `path` as components, `.` and `..` resolved (`None`: not absolute).
fn components(path: &str) -> Option<Vec<&str>> {
    if !path.starts_with('/') {
        return None;
    }
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// Whether `path` is `base` or under it (both as components).
fn under(path: &[&str], base: &[&str]) -> bool {
    path.starts_with(base)
}

/// Why bind-mounting host path `path` is refused by `policy` (`None`: the default), if it is.
pub fn host_path_refusal(policy: Option<&ContainerPolicy>, path: &str) -> Option<String> {
    let mine = components(path)?;
    let shown = format!("/{}", mine.join("/"));
    match policy.and_then(|p| p.host_paths.as_ref()) {
        Some(allowed) => {
            let ok = allowed
                .iter()
                .filter_map(|a| components(a))
                .any(|a| under(&mine, &a));
            (!ok).then(|| {
                format!(
                    "host path {shown} is not under the namespace's spec.policy.hostPaths ({})",
                    allowed.join(", ")
                )
            })
        }
        None => SENSITIVE_PATHS.iter().find_map(|s| {
            let s = components(s)?;
            // The path itself, under it, or holding it.
            (under(&mine, &s) || under(&s, &mine)).then(|| {
                format!(
                    "host path {shown} is the host's own (/{}): a container with it controls the host; the namespace's spec.policy.hostPaths can allow it",
                    s.join("/")
                )
            })
        }),
    }
}

/// The settings of `container` that `policy` (`None`: the restricted default) refuses: the
/// field, and why. Bind mounts are [`host_path_refusal`]'s.
pub fn setting_refusals(
    policy: Option<&ContainerPolicy>,
    container: &crate::cargo::v1::ContainerSpec,
) -> Vec<(String, String)> {
    use crate::cargo::v1::{capability_name, device_host_path};
    let default = ContainerPolicy::default();
    let p = policy.unwrap_or(&default);
    let mut out = Vec::new();
    if container.privileged && !p.privileged {
        out.push((
            "spec.container.privileged".to_owned(),
            "a privileged container controls the host; the namespace's spec.policy.privileged: true allows it".to_owned(),
        ));
    }
    let allowed: Vec<String> = p.capabilities.iter().map(|c| capability_name(c)).collect();
    for (i, cap) in container.cap_add.iter().enumerate() {
        let name = capability_name(cap);
        if !allowed.contains(&name) && !allowed.iter().any(|a| a == "ALL") {
            out.push((
                format!("spec.container.capAdd[{i}]"),
                format!("capability {name} is beyond Docker's default set; the namespace's spec.policy.capabilities can allow it"),
            ));
        }
    }
    for (i, device) in container.devices.iter().enumerate() {
        let host = device_host_path(device);
        if !p.devices.iter().any(|d| d == host) {
            out.push((
                format!("spec.container.devices[{i}]"),
                format!(
                    "device {host} of the host; the namespace's spec.policy.devices can allow it"
                ),
            ));
        }
    }
    if container.host_pid && !p.host_pid {
        out.push((
            "spec.container.hostPid".to_owned(),
            "the host's processes would be visible and signalable; the namespace's spec.policy.hostPid: true allows it".to_owned(),
        ));
    }
    if container.host_ipc && !p.host_ipc {
        out.push((
            "spec.container.hostIpc".to_owned(),
            "the host's IPC namespace; the namespace's spec.policy.hostIpc: true allows it"
                .to_owned(),
        ));
    }
    out
}

/// Lifecycle of a Namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum NamespacePhase {
    /// In use.
    Active,
    /// Being deleted together with everything in it.
    Terminating,
}

/// What nanocl observed of a Namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceStatus {
    /// `Active` or `Terminating`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<NamespacePhase>,
}

/// Checks a Namespace.
pub fn validate(ns: &Namespace) -> FieldErrors {
    let mut errors = FieldErrors::new();
    ns.metadata
        .validate(&FieldPath::keys("metadata"), false, &mut errors);
    let paths = ns
        .spec
        .policy
        .iter()
        .flat_map(|p| p.host_paths.iter().flatten());
    for (i, path) in paths.enumerate() {
        if components(path).is_none() {
            errors.push(
                FieldPath::keys("spec.policy.hostPaths").index(i),
                format!("must be an absolute path, got {path:?}"),
            );
        }
    }
    let access = ns.spec.access.iter();
    for (field, list) in access.flat_map(|a| [("write", &a.write), ("read", &a.read)]) {
        for (i, user) in list.iter().flatten().enumerate() {
            if user.trim().is_empty() || user.chars().any(char::is_control) {
                errors.push(
                    FieldPath::keys("spec.access").key(field).index(i),
                    format!(
                        "must be a user name (a client certificate's common name), got {user:?}"
                    ),
                );
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_should_refuse_the_hosts_own_paths_and_what_holds_them() {
        for refused in [
            "/",
            "/etc",
            "/etc/nginx/",
            "/var/run/docker.sock",
            "/run/docker.sock",
            "/var",
            "/proc/1",
            "/home/../etc",
            "//sys",
        ] {
            assert!(host_path_refusal(None, refused).is_some(), "{refused}");
        }
        for allowed in [
            "/srv/www",
            "/home/me/data",
            "/var/lib/app",
            "/tmp/x",
            "data-volume",
        ] {
            assert_eq!(host_path_refusal(None, allowed), None, "{allowed}");
        }
        let why = host_path_refusal(None, "/var/run/docker.sock").unwrap_or_default();
        assert!(
            why.contains("/var/run/docker.sock is the host's own (/var/run)"),
            "{why}"
        );
    }

    #[test]
    fn dangerous_settings_should_be_refused_unless_allowed() {
        let container = crate::cargo::v1::ContainerSpec {
            privileged: true,
            cap_add: vec!["cap_net_admin".into(), "SYS_TIME".into()],
            devices: vec!["/dev/fuse".into()],
            host_pid: true,
            host_ipc: true,
            ..Default::default()
        };
        let fields: Vec<String> = setting_refusals(None, &container)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            fields,
            [
                "spec.container.privileged",
                "spec.container.capAdd[0]",
                "spec.container.capAdd[1]",
                "spec.container.devices[0]",
                "spec.container.hostPid",
                "spec.container.hostIpc"
            ]
        );
        let policy = ContainerPolicy {
            privileged: true,
            capabilities: vec!["NET_ADMIN".into()],
            devices: vec!["/dev/fuse".into()],
            host_pid: true,
            host_ipc: true,
            ..ContainerPolicy::default()
        };
        let left: Vec<String> = setting_refusals(Some(&policy), &container)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(left, ["spec.container.capAdd[1]"], "SYS_TIME is not listed");
    }

    #[test]
    fn access_should_restrict_only_what_it_lists() {
        let open = Access::default();
        assert!(open.allows("anyone", Verb::Write) && open.allows("anyone", Verb::Read));
        let writers = Access {
            write: Some(vec!["alice".into()]),
            read: None,
        };
        assert!(writers.allows("alice", Verb::Write));
        assert!(!writers.allows("bob", Verb::Write));
        assert!(writers.allows("bob", Verb::Read));
        let closed = Access {
            write: Some(vec!["alice".into()]),
            read: Some(vec!["carol".into()]),
        };
        assert!(closed.allows("alice", Verb::Read), "writers read");
        assert!(closed.allows("carol", Verb::Read));
        assert!(!closed.allows("carol", Verb::Write));
        assert!(!closed.allows("bob", Verb::Read));
    }

    #[test]
    fn a_listed_policy_should_allow_only_what_it_lists() {
        let policy = ContainerPolicy {
            host_paths: Some(vec!["/srv".into(), "/var/run/docker.sock".into()]),
            ..ContainerPolicy::default()
        };
        assert_eq!(host_path_refusal(Some(&policy), "/srv/www"), None);
        assert_eq!(
            host_path_refusal(Some(&policy), "/var/run/docker.sock"),
            None
        );
        let why = host_path_refusal(Some(&policy), "/home/me").unwrap_or_default();
        assert!(
            why.contains(
                "not under the namespace's spec.policy.hostPaths (/srv, /var/run/docker.sock)"
            ),
            "{why}"
        );
        assert!(host_path_refusal(Some(&policy), "/srv/../etc").is_some());
    }
}
