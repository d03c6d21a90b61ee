//! The controllers against the real dockerd: containers appear with the right labels, env and
//! networks; killed, removed and stopped replicas come back; scaling is exact; a spec change
//! rolls; deletion removes exactly what nanocl made; foreign containers are never touched;
//! a crash of nanocld doubles nothing.

use std::time::Duration;

use nanocl_e2e::docker::{containers, docker, labels_of, running, wait_until, Scope};
use nanocl_e2e::{condition, stderr, stdout, test_image, Daemon, StoreKind};

fn base(ns: &str) -> String {
    format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\nspec:\n  variables: {{GREETING: hello}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Network\nmetadata: {{name: back, namespace: {ns}}}\nspec: {{cluster: dev}}\n"
    )
}

fn cargo(ns: &str, name: &str, replicas: u32, message: &str, image: &str) -> String {
    format!(
        "apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  cluster: dev\n  replicas: {replicas}\n  networks: [back]\n  container:\n    image: {image}\n    command: [sleep, \"300\"]\n    env:\n      MSG: \"{message} {{{{ vars.GREETING }}}}\"\n"
    )
}

fn status(d: &Daemon, ns: &str, name: &str) -> serde_json::Value {
    let out = d.nanocl(&["-n", ns, "get", "cargo", name, "-o", "json"]);
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()["status"].clone()
}

#[test]
fn replicas_should_converge_heal_scale_roll_and_go() {
    let scope = Scope::new("life");
    let ns = scope.ns.clone();
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let file = d.dir.path().join("app.yaml");
    let manifest = format!(
        "{}---\n{}",
        base(&ns),
        cargo(&ns, "app", 2, "v1", &test_image())
    );
    std::fs::write(&file, manifest).expect("write");
    let out = d.nanocl(&[
        "apply",
        "-f",
        &file.display().to_string(),
        "--wait",
        "--timeout",
        "60s",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "apply --wait: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let printed = stdout(&out);
    assert!(
        printed.contains("waiting for 4 objects to be ready..."),
        "{printed}"
    );
    for object in ["namespace/", "cluster/dev", "network/back", "cargo/app"] {
        assert!(
            printed
                .lines()
                .any(|l| l.starts_with(object) && l.ends_with(" ready")),
            "{object} ready: {printed}"
        );
    }
    // Not a terminal: how far the cargo was, a plain line per change, before it was ready.
    assert!(
        printed.lines().any(|l| l.starts_with("cargo/app")
            && l.contains(&format!("(namespace {ns}): "))
            && l.contains("/2 replicas ready")),
        "progress lines: {printed}"
    );
    let app = scope.cargo("app");
    assert_eq!(
        running(&app).len(),
        2,
        "apply --wait returned once both replicas ran"
    );

    let names = running(&app);
    let labels = labels_of(&names[0]);
    for (k, v) in [
        ("io.nanocl.managed", "true"),
        ("io.nanocl.namespace", ns.as_str()),
        ("io.nanocl.cluster", "dev"),
        ("io.nanocl.cargo", "app"),
    ] {
        assert_eq!(
            labels.get(k).map(String::as_str),
            Some(v),
            "{k} on {}",
            names[0]
        );
    }
    assert!(labels.contains_key("io.nanocl.spec-hash") && labels.contains_key("io.nanocl.slot"));
    assert!(names[0].ends_with(&format!(".dev.{ns}")), "{}", names[0]);
    let env = docker(&["inspect", "-f", "{{json .Config.Env}}", &names[0]]);
    assert!(
        env.contains("\"MSG=v1 hello\""),
        "env rendered from the cluster variable: {env}"
    );
    let nets = docker(&[
        "inspect",
        "-f",
        "{{json .NetworkSettings.Networks}}",
        &names[0],
    ]);
    assert!(nets.contains(&format!("\"back.dev.{ns}\"")), "{nets}");
    wait_until("Ready=True", || {
        condition(&status(&d, &ns, "app"), "Ready").0 == "True"
    });

    // Self-healing: kill, remove, stop.
    docker(&["kill", &names[0]]);
    wait_until("the killed replica back", || {
        running(&app).contains(&names[0])
    });
    docker(&["rm", "-f", &names[1]]);
    wait_until("the removed replica back", || running(&app).len() == 2);
    docker(&["stop", "-t", "1", &names[0]]);
    wait_until("the stopped replica running again", || {
        running(&app).contains(&names[0])
    });

    // Scaling is exact, highest slots go first.
    let out = d.nanocl(&["-n", &ns, "scale", "cargo", "app", "--replicas", "5"]);
    assert_eq!(
        stdout(&out),
        format!("cargo/app (namespace {ns}) scaled to 5\n"),
        "{}",
        stderr(&out)
    );
    wait_until("5 replicas", || {
        running(&app).len() == 5 && containers(&app).len() == 5
    });
    d.apply(&cargo(&ns, "app", 2, "v1", &test_image()));
    wait_until("2 replicas", || {
        containers(&app).len() == 2 && running(&app).len() == 2
    });
    let slots: Vec<String> = running(&app)
        .iter()
        .map(|n| labels_of(n)["io.nanocl.slot"].clone())
        .collect();
    assert_eq!(
        {
            let mut s = slots.clone();
            s.sort();
            s
        },
        vec!["0", "1"]
    );

    // A spec change rolls every replica to the new spec.
    let before = running(&app);
    d.apply(&cargo(&ns, "app", 2, "v2", &test_image()));
    wait_until("2 new replicas and no old one", || {
        let now = running(&app);
        containers(&app).len() == 2 && now.len() == 2 && now.iter().all(|n| !before.contains(n))
    });
    let env = docker(&["inspect", "-f", "{{json .Config.Env}}", &running(&app)[0]]);
    assert!(env.contains("\"MSG=v2 hello\""), "{env}");

    // Deleting the namespace removes everything nanocl made for it.
    let out = d.nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        containers(&[scope.label()]).is_empty(),
        "containers left: {:?}",
        containers(&[scope.label()])
    );
    let nets = docker(&[
        "network",
        "ls",
        "-q",
        "--filter",
        &format!("label={}", scope.label()),
    ]);
    assert!(nets.is_empty(), "networks left: {nets}");
}

#[test]
fn foreign_names_strays_and_missing_images_should_be_handled_without_touching_others() {
    let scope = Scope::new("own");
    let ns = scope.ns.clone();
    let mut d = Daemon::start_with_controllers(StoreKind::Embedded);
    d.apply(&format!(
        "{}---\n{}",
        base(&ns),
        cargo(&ns, "solo", 1, "x", &test_image())
    ));
    let solo = scope.cargo("solo");
    wait_until("the replica", || running(&solo).len() == 1);
    let name = running(&solo)[0].clone();
    let instance = labels_of(&name)["io.nanocl.instance"].clone();
    let out = d.nanocl(&["-n", &ns, "delete", "cargo", "solo", "--wait"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    wait_until("the replica removed", || containers(&solo).is_empty());

    // A container of the same name that nanocl does not manage: left alone, reason on status.
    let foreign = docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        &scope.label(),
        &test_image(),
        "sleep",
        "300",
    ]);
    assert!(!foreign.is_empty());
    d.apply(&cargo(&ns, "solo", 1, "x", &test_image()));
    wait_until("NameConflict on the status", || {
        condition(&status(&d, &ns, "solo"), "Degraded") == ("True".into(), "NameConflict".into())
    });
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &name]),
        "true",
        "the foreign container keeps running"
    );
    assert_eq!(
        labels_of(&name).get("io.nanocl.managed"),
        None,
        "and stays unlabelled"
    );
    docker(&["rm", "-f", &name]);
    wait_until("the replica once the name is free", || {
        running(&solo).len() == 1
    });

    // A stray labelled as this nanocld's, whose cargo does not exist: collected.
    let stray = docker(&[
        "run",
        "-d",
        "--label",
        "io.nanocl.managed=true",
        "--label",
        &scope.label(),
        "--label",
        "io.nanocl.cargo=ghost",
        "--label",
        &format!("io.nanocl.instance={instance}"),
        &test_image(),
        "sleep",
        "300",
    ]);
    d.restart();
    wait_until("the stray removed", || {
        docker(&["ps", "-aq", "--filter", &format!("id={stray}")]).is_empty()
    });
    assert_eq!(running(&solo).len(), 1, "the owned replica stays");

    // A missing image: a reason, then convergence once the image exists.
    let missing = format!("nanocl-test/missing-{}:v1", scope.ns);
    d.apply(&cargo(&ns, "late", 1, "x", &missing));
    wait_until("ImagePullBackOff", || {
        condition(&status(&d, &ns, "late"), "Degraded")
            == ("True".into(), "ImagePullBackOff".into())
    });
    let said = stdout(&d.nanocl(&["-n", &ns, "describe", "cargo", "late"]));
    assert!(
        said.contains(&format!(
            "image {missing} is not on this host, and pulling it failed"
        )) && said.contains("check the name and tag"),
        "{said}"
    );
    docker(&["tag", &test_image(), &missing]);
    wait_until("the replica once the image exists", || {
        running(&scope.cargo("late")).len() == 1
    });
    let out = d.nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    docker(&["rmi", &missing]);
}

#[test]
fn a_crash_of_nanocld_while_creating_should_double_nothing() {
    let scope = Scope::new("crash");
    let ns = scope.ns.clone();
    // What nanocld did, for a failure's message (this test has stalled under load before).
    let mut d = Daemon::start_configured(&[], &[("NANOCL_LOG", "info")]);
    d.apply(&format!(
        "{}---\n{}",
        base(&ns),
        cargo(&ns, "many", 20, "x", &test_image())
    ));
    let many = scope.cargo("many");
    wait_until("some replicas created", || !containers(&many).is_empty());
    d.kill9();
    let at_crash = containers(&many).len();
    d.restart();
    wait_until("exactly 20 running", || {
        running(&many).len() == 20 && containers(&many).len() == 20
    });
    std::thread::sleep(Duration::from_secs(2));
    let all = containers(&many);
    assert_eq!(
        all.len(),
        20,
        "still exactly 20 after settling (had {at_crash} at the crash)"
    );
    let mut slots: Vec<u32> = all
        .iter()
        .map(|(n, _)| labels_of(n)["io.nanocl.slot"].parse().unwrap_or(99))
        .collect();
    slots.sort_unstable();
    assert_eq!(slots, (0..20).collect::<Vec<_>>());
    let out = d.nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_rolling_replacement_should_keep_a_replica_running_at_every_instant() {
    let scope = Scope::new("roll");
    let ns = scope.ns.clone();
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    d.apply(&format!(
        "{}---\n{}",
        base(&ns),
        cargo(&ns, "web", 2, "v1", &test_image())
    ));
    let web = scope.cargo("web");
    wait_until("2 replicas", || running(&web).len() == 2);
    let before = running(&web);

    // A probe samples the running replicas while the spec changes.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = {
        let stop = stop.clone();
        let web = web.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                samples.push(running(&web).len());
                std::thread::sleep(Duration::from_millis(30));
            }
            samples
        })
    };
    d.apply(&cargo(&ns, "web", 2, "v2", &test_image()));
    wait_until("both replicas replaced", || {
        let now = running(&web);
        containers(&web).len() == 2 && now.len() == 2 && now.iter().all(|n| !before.contains(n))
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = probe.join().expect("probe");
    assert!(
        samples.len() > 5,
        "the probe sampled the rollout: {samples:?}"
    );
    assert!(
        samples.iter().all(|n| *n >= 1),
        "a moment without any running replica: {samples:?}"
    );
    assert!(
        samples.iter().all(|n| *n <= 3),
        "one slot at a time: at most one extra replica: {samples:?}"
    );
}

#[test]
fn logs_should_show_every_replica_prefixed() {
    let scope = Scope::new("logs");
    let ns = scope.ns.clone();
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let talk = format!(
        "apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: talk, namespace: {ns}}}\nspec:\n  cluster: dev\n  replicas: 2\n  container:\n    image: {}\n    command: [sh, -c, \"echo first; echo second; sleep 300\"]\n",
        test_image()
    );
    d.apply(&format!("{}---\n{talk}", base(&ns)));
    wait_until("2 replicas", || running(&scope.cargo("talk")).len() == 2);
    let mut lines = Vec::new();
    wait_until("4 log lines", || {
        let out = d.nanocl(&["-n", &ns, "logs", "cargo", "talk"]);
        lines = stdout(&out).lines().map(str::to_owned).collect();
        lines.len() >= 4
    });
    assert_eq!(
        lines,
        vec![
            "[talk-0] first",
            "[talk-0] second",
            "[talk-1] first",
            "[talk-1] second"
        ]
    );
    let out = d.nanocl(&["-n", &ns, "logs", "cargo", "talk", "--tail", "1"]);
    assert_eq!(
        stdout(&out),
        "[talk-0] second\n[talk-1] second\n",
        "{}",
        stderr(&out)
    );
    let out = d.nanocl(&["-n", &ns, "logs", "cargo", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cargo \"nope\" not found"),
        "{}",
        stderr(&out)
    );
    let out = d.nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_crash_loop_should_back_off_and_say_why() {
    let scope = Scope::new("crashy");
    let ns = scope.ns.clone();
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let crashy = format!(
        "apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: crashy, namespace: {ns}}}\nspec:\n  cluster: dev\n  container:\n    image: {}\n    command: [sh, -c, \"exit 3\"]\n",
        test_image()
    );
    d.apply(&format!("{}---\n{crashy}", base(&ns)));
    wait_until("CrashLoopBackOff on the status", || {
        let status = status(&d, &ns, "crashy");
        condition(&status, "Degraded") == ("True".into(), "CrashLoopBackOff".into())
            && condition(&status, "Ready").0 == "False"
    });
    let status = status(&d, &ns, "crashy");
    let degraded = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Degraded"))
        .cloned()
        .unwrap_or_default();
    assert!(
        degraded["message"]
            .as_str()
            .unwrap_or("")
            .contains("exited with code 3"),
        "{degraded}"
    );
    // The back-off schedule itself is unit-tested with paused time (cargo::tests).
    let out = d.nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn objects_stored_before_the_controllers_start_should_converge_at_start() {
    let scope = Scope::new("late");
    let ns = scope.ns.clone();
    let mut d = Daemon::start(StoreKind::Embedded);
    d.apply(&format!(
        "{}---\n{}",
        base(&ns),
        cargo(&ns, "app", 2, "x", &test_image())
    ));
    assert!(
        containers(&scope.cargo("app")).is_empty(),
        "no controllers yet, no containers"
    );
    d.restart_with_controllers();
    wait_until("2 replicas once the controllers run", || {
        running(&scope.cargo("app")).len() == 2
    });
    let out = d.nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

fn etcdctl(args: &[&str]) -> String {
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(nanocl_e2e::etcd_endpoint())
        .args(args)
        .output()
        .expect("run etcdctl");
    assert!(out.status.success(), "etcdctl {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// A stored cargo this nanocld cannot decode (a field from a newer version) keeps its running
/// replica through resyncs, garbage collection and a restart; it is reported and listed
/// beside the others, and `nanocl delete` removes it.
#[test]
fn an_undecodable_cargo_should_keep_its_replica_and_stay_visible_and_deletable() {
    let scope = Scope::new("undec");
    let ns = scope.ns.clone();
    let mut d = Daemon::start_with_controllers(StoreKind::Etcd);
    d.apply(&format!(
        "{}---\n{}---\n{}",
        base(&ns),
        cargo(&ns, "old", 1, "v1", &test_image()),
        cargo(&ns, "fine", 1, "v1", &test_image())
    ));
    wait_until("both replicas running", || {
        running(&scope.cargo("old")).len() == 1 && running(&scope.cargo("fine")).len() == 1
    });
    let before = running(&scope.cargo("old"));

    // What a newer nanocld would store: one field this version does not know.
    let key = format!(
        "{}/cargoes/{ns}/old",
        d.etcd_prefix.clone().expect("etcd prefix")
    );
    let stored = etcdctl(&["get", &key, "--print-value-only"]);
    let mut value: serde_json::Value = serde_json::from_str(stored.trim()).expect("stored json");
    value["spec"]["container"]["futureField"] = serde_json::json!(true);
    etcdctl(&["put", &key, &value.to_string()]);

    // The garbage collector runs at start and every 30 s: a restart is its next pass.
    std::thread::sleep(Duration::from_secs(2));
    d.restart();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        running(&scope.cargo("old")),
        before,
        "its replica is left running"
    );
    let log = d.log();
    assert!(
        log.contains("a stored object cannot be decoded")
            && log.contains(&format!("cargoes/{ns}/old")),
        "logged with its key:\n{log}"
    );

    let out = d.nanocl(&["-n", &ns, "get", "cargoes"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("old ") && l.contains("<undecodable>")),
        "marked:\n{table}"
    );
    assert!(
        table.lines().any(|l| l.starts_with("fine ")),
        "and the others listed:\n{table}"
    );
    assert!(
        stderr(&out).contains("futureField"),
        "the warning names what cannot be read: {}",
        stderr(&out)
    );
    let events = d.nanocl(&["-n", &ns, "events"]);
    assert!(
        stdout(&events).contains("Undecodable"),
        "{}",
        stdout(&events)
    );

    let out = d.nanocl(&["-n", &ns, "delete", "cargo", "old"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        etcdctl(&["get", &key, "--print-value-only"]).trim(),
        "",
        "deleted"
    );
    assert_eq!(
        running(&scope.cargo("fine")).len(),
        1,
        "the other one untouched"
    );
}

#[test]
fn a_host_port_held_elsewhere_should_say_port_in_use_until_it_is_free() {
    let scope = Scope::new("port");
    let ns = scope.ns.clone();
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to hold");
    let port = holder.local_addr().expect("addr").port();
    d.apply(&format!(
        "{}---\napiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  cluster: dev\n  container:\n    image: {}\n    command: [sleep, \"3600\"]\n    ports: [{{containerPort: 80, hostPort: {port}}}]\n",
        base(&ns),
        test_image()
    ));
    let said = |reason: &str| {
        let (_, r) = condition(&status(&d, &ns, "web"), "Ready");
        r == reason
    };
    wait_until("PortInUse", || said("PortInUse"));
    let message = status(&d, &ns, "web")["conditions"][0]["message"].to_string();
    assert!(
        message.contains(&port.to_string()),
        "names the port: {message}"
    );
    // Retried with backoff, still said as what it is, never a crash loop.
    std::thread::sleep(Duration::from_secs(8));
    assert!(said("PortInUse"), "{:#}", status(&d, &ns, "web"));
    let events = stdout(&d.nanocl(&["-n", &ns, "events"]));
    assert!(events.contains("PortInUse"), "{events}");
    // Freed: the replica starts.
    drop(holder);
    wait_until("the replica running", || {
        running(&scope.cargo("web")).len() == 1
    });
    let out = d.nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
