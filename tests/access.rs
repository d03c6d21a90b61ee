//! Who may do what, against a real nanocld: the container policy of a namespace through the
//! CLI (a cargo that bind-mounts the host's own paths, Docker's socket or `/etc`, is refused
//! at apply, located in the file and naming the field; a namespace whose `spec.policy.hostPaths`
//! lists the path allows it, and then refuses any path outside the list), and the API
//! socket's mode and group, kept across restarts.

use nanocl_e2e::{stderr, stdout, Daemon, StoreKind};

fn cargo(ns: &str, source: &str) -> String {
    format!(
        "apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: agent, namespace: {ns}}}\n\
         spec:\n  cluster: dev\n  container:\n    image: busybox\n    volumes:\n      \
         - {{source: data, target: /data}}\n      - {{source: {source}, target: /x}}\n"
    )
}

#[test]
fn a_namespace_should_refuse_bind_mounts_of_the_host_unless_its_policy_allows_them() {
    // API only: nothing here reaches Docker.
    let d = Daemon::start(StoreKind::Embedded);
    let ns = format!("t{}-policy", std::process::id());
    let file = d.dir.path().join("policy.yaml");
    let apply = |yaml: &str| {
        std::fs::write(&file, yaml).expect("write");
        d.nanocl(&["apply", "-f", &file.display().to_string()])
    };
    let namespace = |policy: &str| {
        format!(
            "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n{policy}---\n"
        )
    };

    // The restricted default: Docker's socket and /etc are the host's.
    for (source, own) in [("/var/run/docker.sock", "/var/run"), ("/etc/ssl/", "/etc")] {
        let out = apply(&format!("{}{}", namespace(""), cargo(&ns, source)));
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        let err = stderr(&out);
        assert!(
            err.contains("policy.yaml:4:1")
                && err.contains("cargo/agent")
                && err.contains("\n  spec.container.volumes[1].source: host path ")
                && err.contains(&format!("is the host's own ({own})")),
            "{err}"
        );
        let got = d.nanocl(&["-n", &ns, "get", "cargo", "agent"]);
        assert_eq!(
            got.status.code(),
            Some(1),
            "nothing stored: {}",
            stdout(&got)
        );
    }
    // A path of the user's own is fine.
    let out = apply(&format!("{}{}", namespace(""), cargo(&ns, "/srv/www")));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Allowed by the namespace's policy; then only what it lists.
    let allowing = namespace("spec: {policy: {hostPaths: [/var/run/docker.sock]}}\n");
    let out = apply(&format!("{allowing}{}", cargo(&ns, "/var/run/docker.sock")));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = apply(&format!("{allowing}{}", cargo(&ns, "/srv/www")));
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("host path /srv/www is not under the namespace's spec.policy.hostPaths (/var/run/docker.sock)"),
        "{}",
        stderr(&out)
    );
    // A relative path in the policy is refused at the namespace.
    let out = apply(&namespace("spec: {policy: {hostPaths: [srv]}}\n"));
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("spec.policy.hostPaths[0]: must be an absolute path"),
        "{}",
        stderr(&out)
    );
    // The store is the daemon's own, gone with it: nothing to remove.
}

#[test]
fn the_socket_should_keep_mode_0660_and_its_group_across_restarts() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // `nogroup` (65534) is in every Debian's /etc/group.
    let mut d = Daemon::start_with(
        StoreKind::Embedded,
        &["--controllers", "none", "--socket-group", "nogroup"],
    );
    let socket = std::path::PathBuf::from(d.host.trim_start_matches("unix://"));
    let owner = |what: &str| {
        let meta = std::fs::metadata(&socket).unwrap_or_else(|e| panic!("{what}: {e}"));
        (meta.permissions().mode() & 0o777, meta.gid())
    };
    assert_eq!(owner("started"), (0o660, 65534));
    d.restart();
    assert_eq!(owner("restarted"), (0o660, 65534));
}
