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

/// A cargo of `ns` whose container has `setting` (YAML lines under `container:`).
fn dangerous(ns: &str, setting: &str) -> String {
    format!(
        "apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: tool, namespace: {ns}}}\n\
         spec:\n  cluster: dev\n  container:\n    image: {image}\n    command: [sleep, \"300\"]\n{setting}",
        image = nanocl_e2e::test_image()
    )
}

#[test]
fn each_dangerous_setting_should_be_refused_with_its_field_unless_the_namespace_allows_it() {
    let d = Daemon::start(StoreKind::Embedded);
    let ns = format!("t{}-danger", std::process::id());
    let file = d.dir.path().join("danger.yaml");
    let apply = |yaml: &str| {
        std::fs::write(&file, yaml).expect("write");
        d.nanocl(&["apply", "-f", &file.display().to_string()])
    };
    let namespace = |policy: &str| {
        format!(
            "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n{policy}---\n"
        )
    };
    let settings = [
        (
            "    privileged: true\n",
            "spec.container.privileged: a privileged container controls the host",
        ),
        (
            "    capAdd: [NET_ADMIN]\n",
            "spec.container.capAdd[0]: capability NET_ADMIN is beyond Docker's default set",
        ),
        (
            "    devices: [\"/dev/null:/dev/extra-null:r\"]\n",
            "spec.container.devices[0]: device /dev/null of the host",
        ),
        (
            "    hostPid: true\n",
            "spec.container.hostPid: the host's processes",
        ),
        (
            "    hostIpc: true\n",
            "spec.container.hostIpc: the host's IPC namespace",
        ),
    ];
    // The restricted default (no policy), `global`'s too: each refused, naming its field.
    for (setting, said) in settings {
        let out = apply(&format!("{}{}", namespace(""), dangerous(&ns, setting)));
        assert_eq!(out.status.code(), Some(1), "{setting}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("\n  {said}")) && err.contains("danger.yaml:4:1"),
            "{setting}: {err}"
        );
    }
    let out = d.nanocl(&["-n", &ns, "get", "cargo", "tool"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "nothing stored: {}",
        stdout(&out)
    );
    // A namespace whose policy allows them: all accepted together.
    let allowing = namespace(
        "spec:\n  policy:\n    privileged: true\n    capabilities: [NET_ADMIN]\n    devices: [/dev/null]\n    hostPid: true\n    hostIpc: true\n",
    );
    let all: String = settings.iter().map(|(s, _)| *s).collect();
    let out = apply(&format!("{allowing}{}", dangerous(&ns, &all)));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Allowed is not everything: another capability is still refused.
    let out = apply(&format!(
        "{allowing}{}",
        dangerous(&ns, "    capAdd: [SYS_ADMIN]\n")
    ));
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("capability SYS_ADMIN"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn allowed_dangerous_settings_should_reach_docker() {
    use nanocl_e2e::docker::{docker, running, wait_until, Scope};
    // Declared first, dropped last: nanocld stops before its containers are removed.
    let scope = Scope::new("danger");
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let file = d.dir.path().join("danger.yaml");
    let privileged = dangerous(
        &scope.ns,
        "    privileged: true
",
    )
    .replace("name: tool", "name: priv");
    let yaml = format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\nspec:\n  policy:\n    privileged: true\n    capabilities: [NET_ADMIN]\n    devices: [/dev/null]\n    hostPid: true\n    hostIpc: true\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n---\n{}---\n{privileged}",
        dangerous(
            &scope.ns,
            "    capAdd: [cap_net_admin]\n    devices: [\"/dev/null:/dev/extra-null:r\"]\n    hostPid: true\n    hostIpc: true\n"
        ),
        ns = scope.ns
    );
    std::fs::write(&file, yaml).expect("write");
    let out = d.nanocl(&["apply", "-f", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    wait_until("the replica to run", || {
        running(&scope.cargo("tool")).len() == 1
    });
    let name = running(&scope.cargo("tool")).remove(0);
    let inspected = docker(&[
        "inspect",
        "-f",
        "{{.HostConfig.CapAdd}} {{.HostConfig.PidMode}} {{.HostConfig.IpcMode}} {{range .HostConfig.Devices}}{{.PathOnHost}}>{{.PathInContainer}}:{{.CgroupPermissions}}{{end}}",
        &name,
    ]);
    assert_eq!(
        inspected.trim(),
        "[NET_ADMIN] host host /dev/null>/dev/extra-null:r"
    );
    // A privileged container is created as such (this machine's dockerd has not the
    // capabilities to start one: it is asked, and says so on the cargo).
    let label = "label=io.nanocl.cargo=priv".to_owned();
    let ns_label = format!("label={}", scope.label());
    let created = || docker(&["ps", "-aq", "--filter", &label, "--filter", &ns_label]);
    wait_until("the privileged replica's container", || {
        !created().trim().is_empty()
    });
    let id = created().lines().next().unwrap_or_default().to_owned();
    assert_eq!(
        docker(&["inspect", "-f", "{{.HostConfig.Privileged}}", &id]).trim(),
        "true"
    );
    let out = d.nanocl(&["delete", "namespace", &scope.ns, "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
