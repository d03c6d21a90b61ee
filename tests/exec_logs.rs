//! `nanocl exec` and `nanocl logs` end to end, against a real nanocld and dockerd: exec runs
//! in the asked replica, passes input, gives a terminal and exits with the command's status;
//! logs reads `--since` and `--timestamps`, and `-f` follows a replica's replacement, saying
//! so, and ends when the cargo is deleted.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use nanocl_e2e::docker::{docker, running, wait_until, Scope};
use nanocl_e2e::{binary, stderr, stdout, test_image, Daemon, StoreKind, WatchProcess};

/// A cargo `app` of 2 replicas; each says hello with the value of X, once.
fn manifests(ns: &str, x: &str) -> String {
    format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: app, namespace: {ns}}}\n\
         spec:\n  cluster: dev\n  replicas: 2\n  container:\n    image: {}\n    \
         command: [sh, -c, 'echo \"hello $X from $(cat /etc/hostname)\"; exec sleep 600']\n    \
         env: {{X: \"{x}\"}}\n",
        test_image()
    )
}

fn apply(d: &Daemon, file: &Path, text: &str) {
    std::fs::write(file, text).expect("write the manifest");
    let out = d.nanocl(&["apply", "-f", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

fn nanocl(d: &Daemon, ns: &str, args: &[&str]) -> Output {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    d.nanocl(&all)
}

/// The running container of slot `slot`.
fn container_of(scope: &Scope, slot: u32) -> String {
    let mut labels = scope.cargo("app");
    labels.push(format!("io.nanocl.slot={slot}"));
    running(&labels).pop().expect("a running container")
}

#[test]
fn exec_should_run_in_the_asked_replica_and_exit_with_its_status() {
    let scope = Scope::new("exec");
    let ns = scope.ns.clone();
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let file = d.dir.path().join("app.yaml");
    apply(&d, &file, &manifests(&ns, "one"));
    wait_until("2 replicas", || running(&scope.cargo("app")).len() == 2);

    // Output, error output and the exit status are the command's own.
    let out = nanocl(
        &d,
        &ns,
        &[
            "exec",
            "cargo",
            "app",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");

    // The lowest slot by default, the asked one with --replica.
    let hostname = |c: &str| docker(&["inspect", "-f", "{{.Config.Hostname}}", c]);
    let out = nanocl(
        &d,
        &ns,
        &["exec", "cargo", "app", "--", "cat", "/etc/hostname"],
    );
    assert_eq!(stdout(&out).trim(), hostname(&container_of(&scope, 0)));
    let out = nanocl(
        &d,
        &ns,
        &[
            "exec",
            "cargo",
            "app",
            "--replica",
            "1",
            "--",
            "cat",
            "/etc/hostname",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), hostname(&container_of(&scope, 1)));

    // -i: the input reaches the command, and its end too.
    let mut child = Command::new(binary("nanocl"))
        .args([
            "-n",
            &ns,
            "exec",
            "-i",
            "cargo",
            "app",
            "--",
            "sh",
            "-c",
            "cat; echo done",
        ])
        .env("NANOCL_HOST", &d.host)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nanocl exec starts");
    {
        use std::io::Write;
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(b"line one\nline two\n").expect("written");
    }
    let out = child.wait_with_output().expect("nanocl exec ends");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "line one\nline two\ndone\n");

    // -t: the command has a terminal.
    let out = nanocl(&d, &ns, &["exec", "-t", "cargo", "app", "--", "tty"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("/dev/pts/"), "{}", stdout(&out));
    // Under a real terminal (script(1) makes one, and types our input into it), -it runs an
    // interactive shell, and its exit status comes back through script -e.
    let mut child = Command::new("script")
        .args([
            "-qec",
            &format!(
                "{} -n {ns} exec -it cargo app -- sh",
                binary("nanocl").display()
            ),
            "/dev/null",
        ])
        .env("NANOCL_HOST", &d.host)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script runs");
    {
        use std::io::Write;
        let mut input = child.stdin.take().expect("stdin");
        input
            .write_all(b"echo in-$((6*7))\nexit 4\n")
            .expect("typed");
        // Held open until the shell exits: an end of input would end script first.
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(30));
            drop(input);
        });
    }
    let out = child.wait_with_output().expect("script ends");
    assert!(
        stdout(&out).contains("in-42"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // What cannot run says why, and exits 1.
    let out = nanocl(
        &d,
        &ns,
        &["exec", "cargo", "app", "--replica", "7", "--", "true"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cargo \"app\" has no replica 7 (its replicas: 0, 1)"),
        "{}",
        stderr(&out)
    );
    let out = nanocl(&d, &ns, &["exec", "cargo", "nope", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cargo \"nope\" not found"),
        "{}",
        stderr(&out)
    );
    let out = nanocl(&d, &ns, &["exec", "cargo", "app", "--", "/no/such/program"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("no such file") || stdout(&out).contains("not found"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let out = nanocl(&d, &ns, &["exec", "cargo", "app"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("COMMAND"), "{}", stderr(&out));
}

#[test]
fn logs_should_follow_replacements_and_read_since_and_timestamps() {
    let scope = Scope::new("logs");
    let ns = scope.ns.clone();
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let file = d.dir.path().join("app.yaml");
    apply(&d, &file, &manifests(&ns, "one"));
    wait_until("2 replicas", || running(&scope.cargo("app")).len() == 2);
    wait_until("both hellos", || {
        stdout(&nanocl(&d, &ns, &["logs", "cargo", "app"]))
            .matches("hello one")
            .count()
            == 2
    });

    let out = stdout(&nanocl(&d, &ns, &["logs", "cargo", "app", "--timestamps"]));
    for line in out.lines() {
        let (prefix, rest) = line.split_once(' ').unwrap_or_default();
        assert!(prefix == "[app-0]" || prefix == "[app-1]", "{out}");
        let time = rest.split(' ').next().unwrap_or_default();
        assert!(
            humantime::parse_rfc3339(time).is_ok(),
            "a time first: {out}"
        );
    }
    // The hellos are older than 2 s once 3 s have passed.
    std::thread::sleep(Duration::from_secs(3));
    let out = nanocl(&d, &ns, &["logs", "cargo", "app", "--since", "2s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "nothing in the last 2 s");
    let out = stdout(&nanocl(&d, &ns, &["logs", "cargo", "app", "--since", "1h"]));
    assert_eq!(out.matches("hello one").count(), 2, "{out}");
    let out = nanocl(&d, &ns, &["logs", "cargo", "app", "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--since \"yesterday\""),
        "{}",
        stderr(&out)
    );

    // -f: a changed spec replaces both replicas; the new ones are followed from their
    // first line, and the change is said.
    let follow = WatchProcess::spawn(&d, &["-n", &ns, "logs", "cargo", "app", "-f"]);
    follow.wait_stdout(Duration::from_secs(30), |l| l.contains("hello one"));
    apply(&d, &file, &manifests(&ns, "two"));
    for slot in ["[app-0]", "[app-1]"] {
        follow.wait_stdout(Duration::from_secs(60), |l| {
            l.starts_with(slot) && l.contains("hello two")
        });
        follow.wait_stdout(Duration::from_secs(5), |l| {
            l.starts_with(slot) && l.contains("--- following") && l.contains("a new container")
        });
    }
    follow.wait_stdout(Duration::from_secs(60), |l| l.contains("was removed ---"));
    // Deleting the cargo ends it.
    let out = nanocl(&d, &ns, &["delete", "cargo", "app"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    follow.wait_stdout(Duration::from_secs(30), |l| {
        l == "--- cargo \"app\" was deleted ---"
    });
}

#[test]
fn top_should_show_what_each_running_replica_uses() {
    let scope = Scope::new("top");
    let ns = scope.ns.clone();
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let file = d.dir.path().join("app.yaml");
    let busy = format!(
        "---\napiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: busy, namespace: {ns}}}\n\
         spec:\n  cluster: dev\n  container:\n    image: {}\n    command: [sh, -c, 'while :; do :; done']\n",
        test_image()
    );
    apply(&d, &file, &(manifests(&ns, "one") + &busy));
    wait_until("3 replicas", || {
        running(&scope.cargo("app")).len() == 2 && running(&scope.cargo("busy")).len() == 1
    });
    let millis = |text: &str, name: &str| -> u64 {
        let row = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row {name}: {text}"));
        row.split_whitespace()
            .nth(1)
            .and_then(|c| c.strip_suffix('m'))
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("CPU of {name}: {text}"))
    };
    let out = nanocl(&d, &ns, &["top", "cargo"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("NAME"), "{text}");
    assert!(
        text.contains("CPU(cores)") && text.contains("MEMORY"),
        "{text}"
    );
    // A busy loop uses a good part of a CPU; a sleeping shell next to nothing.
    assert!(millis(&text, "busy-0") > 100, "{text}");
    assert!(millis(&text, "app-0") < millis(&text, "busy-0"), "{text}");
    assert!(text.contains("app-1"), "{text}");
    let out = nanocl(&d, &ns, &["top", "cargo", "app"]);
    assert_eq!(stdout(&out).lines().count(), 3, "{}", stdout(&out));
    let out = nanocl(&d, &ns, &["top", "cargo", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cargo \"nope\" not found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn get_replicas_should_show_restarts_health_and_image() {
    let scope = Scope::new("replicas");
    let ns = scope.ns.clone();
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let file = d.dir.path().join("app.yaml");
    let yaml = format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: app, namespace: {ns}}}\n\
         spec:\n  cluster: dev\n  container:\n    image: {}\n    command: [sleep, \"600\"]\n    \
         healthcheck: {{command: [\"true\"], interval: 1s}}\n",
        test_image()
    );
    apply(&d, &file, &yaml);
    let app = scope.cargo("app");
    wait_until("the replica", || running(&app).len() == 1);
    let container = running(&app).pop().expect("a replica");
    docker(&["kill", &container]);
    let row = || {
        let out = stdout(&nanocl(&d, &ns, &["get", "replicas", "-o", "wide"]));
        out.lines().nth(1).unwrap_or_default().to_owned()
    };
    wait_until("restarted once, healthy", || {
        let r = row();
        let cells: Vec<&str> = r.split_whitespace().collect();
        // NAME CARGO SLOT NODE PHASE READY RESTARTS CONTAINER HEALTH IMAGE REASON? AGE
        cells.get(6) == Some(&"1") && cells.get(8) == Some(&"healthy")
    });
    let header = stdout(&nanocl(&d, &ns, &["get", "replicas", "-o", "wide"]));
    assert!(
        header.starts_with("NAME") && header.contains("RESTARTS") && header.contains("HEALTH"),
        "{header}"
    );
    let r = row();
    assert!(r.contains(&container) && r.contains(&test_image()), "{r}");
    assert!(r.contains("Running") && r.contains("true"), "{r}");
}
