//! Secrets against the real dockerd and the real embedded store: a secret reaches a
//! container as env and as read-only files; its value is nowhere else — not in `get`,
//! `describe`, `diff`, Events, nanocld's log, nor the store file read raw; a changed value
//! rolls the cargo; an unchanged file applies as `unchanged`.

use nanocl_e2e::docker::{docker, running, wait_until, Scope};
use nanocl_e2e::{condition, stderr, stdout, test_image, Daemon, StoreKind};

const VALUE: &str = "Sup3r-s3cret-VALUE-one";
const CHANGED: &str = "Sup3r-s3cret-VALUE-two";

fn secret(ns: &str, password: &str) -> String {
    format!(
        "apiVersion: nanocl.io/v1\nkind: Secret\nmetadata: {{name: db, namespace: {ns}}}\nspec:\n  stringData:\n    password: \"{password}\"\n    config.ini: \"user=app\"\n"
    )
}

fn manifests(ns: &str, password: &str) -> String {
    format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n---\n\
         {}---\n\
         apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: app, namespace: {ns}}}\nspec:\n  cluster: dev\n  container:\n    image: {}\n    command: [sleep, \"3600\"]\n    env:\n      PLAIN: visible\n      PASSWORD: {{valueFrom: {{secret: db, key: password}}}}\n    files:\n      - {{secret: db, path: /run/secrets/db}}\n      - {{secret: db, key: password, path: /etc/app/password}}\n",
        secret(ns, password),
        test_image()
    )
}

fn apply(d: &Daemon, file: &std::path::Path, yaml: &str) -> String {
    std::fs::write(file, yaml).expect("write");
    let out = d.nanocl(&["apply", "-f", &file.display().to_string()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

fn exec(container: &str, script: &str) -> String {
    docker(&["exec", container, "sh", "-c", script])
}

#[test]
fn a_secret_should_reach_its_container_and_nothing_else() {
    let scope = Scope::new("secrets");
    let ns = scope.ns.clone();
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let file = d.dir.path().join("app.yaml");
    // Before anything exists (its namespace neither): a diff shows the secret, sizes only.
    std::fs::write(&file, manifests(&ns, VALUE)).expect("write");
    let diff = d.nanocl(&["diff", "-f", &file.display().to_string()]);
    assert_eq!(diff.status.code(), Some(1), "{}", stderr(&diff));
    let text = stdout(&diff);
    assert!(text.contains("password: \"<hidden: 22 bytes>\""), "{text}");
    assert!(!text.contains(VALUE), "{text}");
    apply(&d, &file, &manifests(&ns, VALUE));
    let app = scope.cargo("app");
    wait_until("the replica", || running(&app).len() == 1);
    let container = running(&app).pop().expect("a replica");

    // In the container: env and files, read-only.
    assert_eq!(exec(&container, "echo \"$PASSWORD\""), VALUE);
    assert_eq!(exec(&container, "cat /run/secrets/db/password"), VALUE);
    assert_eq!(
        exec(&container, "cat /run/secrets/db/config.ini"),
        "user=app"
    );
    assert_eq!(exec(&container, "cat /etc/app/password"), VALUE);
    let write = exec(
        &container,
        "echo x > /run/secrets/db/password 2>&1 || echo refused",
    );
    assert!(
        write.contains("Read-only") || write.contains("refused"),
        "{write}"
    );

    // Nowhere else.
    let hidden = |what: &str, text: &str| {
        assert!(!text.contains(VALUE), "{what} shows the value:\n{text}");
        assert!(
            !text.contains("U3VwM3Itc2VjcmV0"),
            "{what} shows the value in base64:\n{text}"
        );
    };
    let get = stdout(&d.nanocl(&["-n", &ns, "get", "secret", "db", "-o", "yaml"]));
    assert!(get.contains("<hidden: 22 bytes, digest "), "{get}");
    hidden("get -o yaml", &get);
    hidden(
        "get -o json",
        &stdout(&d.nanocl(&["-n", &ns, "get", "secrets", "-o", "json"])),
    );
    let table = stdout(&d.nanocl(&["-n", &ns, "get", "secrets"]));
    assert!(
        table.contains("db") && table.contains("opaque") && table.contains(" 2 "),
        "{table}"
    );
    hidden(
        "describe secret",
        &stdout(&d.nanocl(&["-n", &ns, "describe", "secret", "db"])),
    );
    hidden(
        "get cargo",
        &stdout(&d.nanocl(&["-n", &ns, "get", "cargo", "app", "-o", "yaml"])),
    );
    hidden(
        "get replicas",
        &stdout(&d.nanocl(&["-n", &ns, "get", "replicas", "-o", "yaml"])),
    );
    hidden(
        "describe cargo",
        &stdout(&d.nanocl(&["-n", &ns, "describe", "cargo", "app"])),
    );
    hidden("events", &stdout(&d.nanocl(&["-n", &ns, "events"])));
    let diff = d.nanocl(&["diff", "-f", &file.display().to_string()]);
    assert_eq!(
        diff.status.code(),
        Some(0),
        "nothing differs: {}{}",
        stdout(&diff),
        stderr(&diff)
    );
    let again = apply(&d, &file, &manifests(&ns, VALUE));
    let line = again.lines().find(|l| l.contains("db")).unwrap_or_default();
    assert!(line.ends_with("unchanged"), "{again}");

    // A changed value: the diff says which key changed, not to what; the cargo rolls.
    std::fs::write(&file, manifests(&ns, CHANGED)).expect("write");
    let diff = d.nanocl(&["diff", "-f", &file.display().to_string()]);
    assert_eq!(diff.status.code(), Some(1), "{}", stderr(&diff));
    let text = stdout(&diff);
    assert!(
        text.contains("password") && text.contains("<hidden: 22 bytes"),
        "{text}"
    );
    assert!(!text.contains(CHANGED) && !text.contains(VALUE), "{text}");
    apply(&d, &file, &manifests(&ns, CHANGED));
    // `docker ps` lists the newest first; the old replica runs until the new one is up,
    // so the rollout is over when the new one is the only one.
    wait_until("the replica with the new value, alone", || {
        let now = running(&app);
        now.len() == 1 && now[0] != container && exec(&now[0], "echo \"$PASSWORD\"") == CHANGED
    });
    let now = running(&app).pop().expect("a replica");
    assert_eq!(exec(&now, "cat /etc/app/password"), CHANGED);

    // A missing secret or key says which.
    let missing = manifests(&ns, CHANGED).replace("key: password, path", "key: nope, path");
    apply(&d, &file, &missing);
    wait_until("SecretKeyNotFound", || {
        let out = d.nanocl(&["-n", &ns, "get", "cargo", "app", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        condition(&v["status"], "Ready").1 == "SecretKeyNotFound"
    });

    // Bad input names the field, never the value.
    let bad = format!(
        "apiVersion: nanocl.io/v1\nkind: Secret\nmetadata: {{name: db, namespace: {ns}}}\nspec:\n  data:\n    password: \"not base64!!\"\n    bad/key: \"eA==\"\n"
    );
    let bad_file = d.dir.path().join("bad.yaml");
    std::fs::write(&bad_file, bad).expect("write");
    let out = d.nanocl(&["apply", "-f", &bad_file.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains("spec.data.password: is not valid base64")
            && text.contains("spec.data[\"bad/key\"]: invalid key")
            && !text.contains("not base64!!"),
        "{text}"
    );

    hidden("nanocld's log", &d.log());
    let out = d.nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // The namespace took its secrets and its Events with it.
    let out = d.nanocl(&["-n", &ns, "get", "secrets", "-o", "name"]);
    assert!(stdout(&out).trim().is_empty(), "{}", stdout(&out));
    let out = d.nanocl(&["-n", &ns, "events"]);
    assert!(
        stderr(&out).contains("No events found"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    // The store file, read raw, holds the sealed value only.
    let raw = std::fs::read(d.dir.path().join("state/store.redb")).expect("the store file");
    let raw = String::from_utf8_lossy(&raw);
    hidden("the store file", &raw);
    hidden("the store file", &raw.replace('\0', ""));
}
