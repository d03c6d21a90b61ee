//! `nanocl rollout` end to end, against a real nanocld and dockerd: `status` follows an update
//! to its end, `history` lists what changed, `undo` goes back (the containers run the old
//! environment again), `restart` replaces every container while `diff` of the unchanged file
//! still sees no difference, and `pause` holds an applied change until `resume`.

use std::path::Path;
use std::process::Output;

use nanocl_e2e::docker::{docker, running, wait_until, Scope};
use nanocl_e2e::{stderr, stdout, test_image, Daemon, StoreKind};

/// The namespace, its cluster, and a cargo `web` of 2 replicas whose env X is `x`.
fn manifests(ns: &str, x: &str) -> String {
    format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: web, namespace: {ns}}}\n\
         spec:\n  cluster: dev\n  replicas: 2\n  container:\n    image: {}\n    \
         command: [sleep, \"600\"]\n    env: {{X: \"{x}\"}}\n",
        test_image()
    )
}

/// `nanocl -n NS ARGS`.
fn run(d: &Daemon, ns: &str, args: &[&str]) -> Output {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    d.nanocl(&all)
}

/// `nanocl -n NS ARGS`, which must exit with `code`; its stdout.
fn expect(d: &Daemon, ns: &str, args: &[&str], code: i32) -> String {
    let out = run(d, ns, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "nanocl {}\nstdout:\n{}stderr:\n{}",
        args.join(" "),
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// `apply -f FILE` of `text` written to `file`.
fn apply(d: &Daemon, ns: &str, file: &Path, text: &str) -> String {
    std::fs::write(file, text).expect("write the manifest");
    expect(d, ns, &["apply", "-f", &file.display().to_string()], 0)
}

/// `rollout status` until the end (60 s at most), which must succeed with `revision`.
fn rolled_out(d: &Daemon, ns: &str, revision: u32) -> String {
    let out = expect(
        d,
        ns,
        &["rollout", "status", "cargo", "web", "--timeout", "60s"],
        0,
    );
    assert!(
        out.ends_with(&format!(
            "cargo/web (namespace {ns}) successfully rolled out (revision {revision})\n"
        )),
        "{out}"
    );
    out
}

/// The ids of the running containers of the cargo, sorted.
fn ids(labels: &[String]) -> Vec<String> {
    let mut args = vec!["ps".to_owned(), "-q".to_owned(), "--no-trunc".to_owned()];
    for l in labels {
        args.push("--filter".into());
        args.push(format!("label={l}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut ids: Vec<String> = docker(&args).lines().map(str::to_owned).collect();
    ids.sort();
    ids
}

/// The X env of every running container of the cargo, sorted.
fn xs(labels: &[String]) -> Vec<String> {
    let mut out: Vec<String> = running(labels)
        .iter()
        .map(|name| {
            docker(&[
                "inspect",
                "-f",
                "{{range .Config.Env}}{{println .}}{{end}}",
                name,
            ])
            .lines()
            .find_map(|l| l.strip_prefix("X="))
            .unwrap_or_default()
            .to_owned()
        })
        .collect();
    out.sort();
    out
}

/// The rows of `rollout history` (header left out), cells split on runs of spaces.
fn history(d: &Daemon, ns: &str) -> Vec<Vec<String>> {
    let out = expect(d, ns, &["rollout", "history", "cargo", "web"], 0);
    let mut lines = out.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["REVISION", "CREATED", "CHANGE", "STATUS"], "{out}");
    lines
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

#[test]
fn rollout_should_follow_list_undo_restart_and_pause_a_cargo_update() {
    let scope = Scope::new("rollout-cli");
    let ns = scope.ns.clone();
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let web = scope.cargo("web");
    let file = d.dir.path().join("web.yaml");
    let f = file.display().to_string();

    let out = run(&d, &ns, &["rollout", "status", "cargo", "web"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("cargo/web (namespace") && stderr(&out).contains("not found"),
        "{}",
        stderr(&out)
    );

    // Revision 1, then a change of env X: revision 2.
    apply(&d, &ns, &file, &manifests(&ns, "v1"));
    rolled_out(&d, &ns, 1);
    assert_eq!(xs(&web), ["v1", "v1"]);
    apply(&d, &ns, &file, &manifests(&ns, "v2"));
    let out = rolled_out(&d, &ns, 2);
    assert!(
        out.starts_with("Waiting for rollout to finish: "),
        "status follows the update: {out}"
    );
    assert_eq!(xs(&web), ["v2", "v2"]);
    let rows = history(&d, &ns);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0][0], "1");
    assert_eq!(rows[0][2..], ["created"], "{rows:?}");
    assert_eq!(rows[1][0], "2");
    assert_eq!(rows[1][2..], ["env X", "current"], "{rows:?}");
    let one = expect(
        &d,
        &ns,
        &["rollout", "history", "cargo", "web", "--revision", "1"],
        0,
    );
    assert!(one.contains("\n  env:\n    X: v1\n"), "{one}");
    let out = run(
        &d,
        &ns,
        &["rollout", "history", "cargo", "web", "--revision", "9"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("has no revision 9: the revisions kept are 1, 2"),
        "{}",
        stderr(&out)
    );

    // Undo: revision 1's container again, rolled out as revision 3.
    let out = expect(&d, &ns, &["rollout", "undo", "cargo", "web"], 0);
    assert_eq!(
        out,
        format!("cargo/web (namespace {ns}) rolled back to revision 1\n")
    );
    rolled_out(&d, &ns, 3);
    assert_eq!(
        xs(&web),
        ["v1", "v1"],
        "the containers run revision 1's env"
    );
    let rows = history(&d, &ns);
    let last = rows.last().cloned().unwrap_or_default();
    assert_eq!(last[0], "3", "{rows:?}");
    assert_eq!(last[2..], ["back to revision 1", "current"], "{rows:?}");
    let out = run(
        &d,
        &ns,
        &["rollout", "undo", "cargo", "web", "--to-revision", "3"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is already at revision 3"),
        "{}",
        stderr(&out)
    );

    // The file says v1 again; a restart replaces every container, and neither diff nor apply
    // of the unchanged file sees (or undoes) the restart.
    std::fs::write(&file, manifests(&ns, "v1")).expect("write");
    expect(&d, &ns, &["diff", "-f", &f], 0);
    let before = ids(&web);
    assert_eq!(before.len(), 2);
    let out = expect(&d, &ns, &["rollout", "restart", "cargo", "web"], 0);
    assert_eq!(out, format!("cargo/web (namespace {ns}) restarted\n"));
    rolled_out(&d, &ns, 4);
    let after = ids(&web);
    assert_eq!(after.len(), 2);
    assert!(
        after.iter().all(|id| !before.contains(id)),
        "every container is new: {before:?} -> {after:?}"
    );
    let diff = expect(&d, &ns, &["diff", "-f", &f], 0);
    assert_eq!(diff, "", "the restart is not a difference");
    let out = apply(&d, &ns, &file, &manifests(&ns, "v1"));
    assert!(
        out.contains("cargo/web (namespace") && out.contains(") unchanged"),
        "{out}"
    );
    assert_eq!(ids(&web), after, "re-applying the file restarts nothing");

    // Paused: an applied change waits for resume.
    let out = expect(&d, &ns, &["rollout", "pause", "cargo", "web"], 0);
    assert_eq!(out, format!("cargo/web (namespace {ns}) paused\n"));
    let out = expect(&d, &ns, &["rollout", "pause", "cargo", "web"], 0);
    assert_eq!(out, format!("cargo/web (namespace {ns}) already paused\n"));
    expect(&d, &ns, &["diff", "-f", &f], 0);
    apply(&d, &ns, &file, &manifests(&ns, "v3"));
    let out = run(
        &d,
        &ns,
        &["rollout", "status", "cargo", "web", "--timeout", "3s"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(&format!(
            "Rollout of cargo/web (namespace {ns}) is paused (nanocl -n {ns} rollout resume cargo web)\n"
        )),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        stdout(&out).matches("is paused").count(),
        1,
        "said once: {}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("error: timed out after 3s waiting for the rollout of cargo/web"),
        "{}",
        stderr(&out)
    );
    assert_eq!(ids(&web), after, "paused: no container replaced");
    assert_eq!(xs(&web), ["v1", "v1"]);
    let out = expect(&d, &ns, &["rollout", "resume", "cargo", "web"], 0);
    assert_eq!(out, format!("cargo/web (namespace {ns}) resumed\n"));
    rolled_out(&d, &ns, 5);
    assert_eq!(xs(&web), ["v3", "v3"]);
    wait_until("the old containers gone", || ids(&web).len() == 2);

    // get -o wide and describe show the revision.
    let wide = expect(&d, &ns, &["get", "cargo", "web", "-o", "wide"], 0);
    let mut lines = wide.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let at = header.iter().position(|h| *h == "REVISION");
    assert_eq!(at.and_then(|i| row.get(i)), Some(&"5"), "{wide}");
    let described = expect(&d, &ns, &["describe", "cargo", "web"], 0);
    assert!(
        described.contains("\nRevision:     current 5\n"),
        "{described}"
    );
    assert!(described.contains("\nRevisions:\n"), "{described}");

    expect(&d, &ns, &["delete", "-f", &f, "--wait"], 0);
}
