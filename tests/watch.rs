//! `nanocl watch DIR` against a real nanocld: debounce, editor saves, half-written files,
//! invalid files that never prune, deletions with and without --prune, duplicates, VCS noise,
//! the directory removed and re-created, nanocld briefly unavailable.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use nanocl_e2e::{unique_prefix, Daemon, StoreKind, WatchProcess};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(20);
/// Long enough that a sync the debounce let through would have printed.
const SETTLE: Duration = Duration::from_millis(1500);

fn base(ns: &str) -> String {
    format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n"
    )
}

fn cargo(ns: &str, name: &str, arg: &str) -> String {
    format!(
        "apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  cluster: dev\n  container:\n    image: busybox:stable\n    command: [\"sleep\", \"{arg}\"]\n"
    )
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

fn get(d: &Daemon, ns: &str, kind: &str, name: &str) -> Option<Value> {
    let out = d.nanocl(&["-n", ns, "get", kind, name, "-o", "json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

fn command_arg(object: &Value) -> String {
    object["spec"]["container"]["command"][1]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A deploy dir with the namespace, its cluster and one cargo `web` running `sleep 100`,
/// watched (after its first sync).
struct Setup {
    daemon: Daemon,
    ns: String,
    tmp: tempfile::TempDir,
}

impl Setup {
    fn new(test: &str) -> Setup {
        let daemon = Daemon::start(StoreKind::Embedded);
        let ns = unique_prefix(test);
        let tmp = tempfile::tempdir().expect("tempdir");
        let setup = Setup { daemon, ns, tmp };
        write(&setup.dir().join("base.yaml"), &base(&setup.ns));
        write(
            &setup.dir().join("web.yaml"),
            &cargo(&setup.ns, "web", "100"),
        );
        setup
    }

    fn dir(&self) -> std::path::PathBuf {
        self.tmp.path().join("deploy")
    }

    fn watch(&self, extra: &[&str]) -> WatchProcess {
        self.watch_with("300ms", extra)
    }

    /// With another quiet period: tests whose writes are spread out use a longer one, so a
    /// loaded CI machine cannot stretch a gap between writes past it.
    fn watch_with(&self, debounce: &str, extra: &[&str]) -> WatchProcess {
        let dir = self.dir().display().to_string();
        let mut args = vec![dir.as_str(), "--debounce", debounce, "-v"];
        args.extend(extra);
        let watch = WatchProcess::start(&self.daemon, &args);
        watch.wait_sync(1, TIMEOUT);
        watch
    }

    fn get(&self, kind: &str, name: &str) -> Option<Value> {
        get(&self.daemon, &self.ns, kind, name)
    }
}

#[test]
fn first_sync_applies_everything_and_labels_it() {
    let s = Setup::new("wfirst");
    let w = s.watch(&[]);
    let first = &w.syncs()[0];
    assert!(
        first.contains(": 3 created, 0 configured, 0 unchanged, 0 pruned, 0 invalid (2 files,"),
        "{first}"
    );
    let web = s.get("cargo", "web").expect("web exists");
    assert_eq!(web["metadata"]["labels"]["nanocl.io/applyset"], "deploy");
    assert_eq!(
        web["metadata"]["annotations"]["nanocl.io/source-file"],
        "web.yaml"
    );
    assert!(
        w.stdout()
            .iter()
            .any(|l| l == &format!("cargo/web (namespace {}) created", s.ns)),
        "{}",
        w.output()
    );
}

#[test]
fn a_burst_of_50_writes_is_one_sync() {
    let s = Setup::new("wburst");
    let w = s.watch_with("1s", &[]);
    for i in 0..50 {
        write(
            &s.dir().join(format!("burst/c{i}.yaml")),
            &cargo(&s.ns, &format!("c{i}"), "100"),
        );
    }
    let second = w.wait_sync(2, TIMEOUT);
    assert!(
        second.contains(": 50 created, 0 configured, 3 unchanged, 0 pruned, 0 invalid (52 files,"),
        "{second}"
    );
    std::thread::sleep(SETTLE);
    assert_eq!(w.syncs().len(), 2, "{}", w.output());
    let out = s
        .daemon
        .nanocl(&["-n", &s.ns, "get", "cargoes", "-o", "name"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 51);
}

#[test]
fn an_editor_save_through_a_temp_file_and_rename_applies_once() {
    let s = Setup::new("wrename");
    let w = s.watch(&[]);
    let dir = s.dir();
    // vim's dance: a write test file, a swap file, a backup, then the new content renamed in.
    write(&dir.join("4913"), "");
    std::fs::remove_file(dir.join("4913")).expect("rm 4913");
    write(&dir.join(".web.yaml.swp"), "swap");
    std::fs::copy(dir.join("web.yaml"), dir.join("web.yaml~")).expect("backup");
    write(&dir.join("web.yaml.tmp"), &cargo(&s.ns, "web", "200"));
    std::fs::rename(dir.join("web.yaml.tmp"), dir.join("web.yaml")).expect("rename");
    std::fs::remove_file(dir.join(".web.yaml.swp")).expect("rm swap");
    let second = w.wait_sync(2, TIMEOUT);
    assert!(
        second.contains(": 0 created, 1 configured, 2 unchanged, 0 pruned, 0 invalid (2 files,"),
        "{second}"
    );
    std::thread::sleep(SETTLE);
    assert_eq!(w.syncs().len(), 2, "{}", w.output());
    assert_eq!(command_arg(&s.get("cargo", "web").expect("web")), "200");
}

#[test]
fn truncate_then_write_in_chunks_applies_the_final_content_once() {
    let s = Setup::new("wchunks");
    let w = s.watch_with("1s", &[]);
    let text = cargo(&s.ns, "web", "300");
    let bytes = text.as_bytes();
    let mut file = std::fs::File::create(s.dir().join("web.yaml")).expect("truncate");
    std::thread::sleep(Duration::from_millis(100));
    for chunk in bytes.chunks(bytes.len() / 3 + 1) {
        file.write_all(chunk).expect("write chunk");
        file.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(file);
    let second = w.wait_sync(2, TIMEOUT);
    assert!(second.contains(" 1 configured,"), "{second}");
    std::thread::sleep(SETTLE);
    assert_eq!(w.syncs().len(), 2, "{}", w.output());
    assert_eq!(command_arg(&s.get("cargo", "web").expect("web")), "300");
}

#[test]
fn a_half_written_file_is_kept_out_until_it_is_complete() {
    let s = Setup::new("whalf");
    let w = s.watch(&["--prune"]);
    let before = s.get("cargo", "web").expect("web");
    let text = cargo(&s.ns, "web", "400");
    let cut = text.find("[\"sleep\"").expect("command") + 5;
    write(&s.dir().join("web.yaml"), &text[..cut]);
    let second = w.wait_sync(2, TIMEOUT);
    assert!(
        second.contains(" 0 configured, 2 unchanged, 0 pruned, 1 invalid"),
        "{second}"
    );
    let file = s.dir().join("web.yaml").display().to_string();
    assert!(
        w.stderr()
            .iter()
            .any(|l| l.starts_with(&format!("{file}:10:15: invalid YAML"))),
        "the error names the file and line: {}",
        w.output()
    );
    let during = s.get("cargo", "web").expect("web is not pruned");
    assert_eq!(
        during["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    write(&s.dir().join("web.yaml"), &text);
    let third = w.wait_sync(3, TIMEOUT);
    assert!(
        third.contains(" 1 configured, 2 unchanged, 0 pruned, 0 invalid"),
        "{third}"
    );
    assert_eq!(command_arg(&s.get("cargo", "web").expect("web")), "400");
}

#[test]
fn an_invalid_file_never_prunes_its_objects_even_after_a_restart() {
    let s = Setup::new("winvalid");
    write(&s.dir().join("api.yaml"), &cargo(&s.ns, "api", "100"));
    let w = s.watch(&["--prune"]);
    let api_before = s.get("cargo", "api").expect("api");
    // Break web.yaml and change api.yaml in the same burst: api applies, web stays.
    write(
        &s.dir().join("web.yaml"),
        &cargo(&s.ns, "web", "100").replace("cluster: dev", "cluster: [dev"),
    );
    write(&s.dir().join("api.yaml"), &cargo(&s.ns, "api", "101"));
    let second = w.wait_sync(2, TIMEOUT);
    assert!(
        second.contains(": 0 created, 1 configured, 2 unchanged, 0 pruned, 1 invalid"),
        "{second}"
    );
    assert!(s.get("cargo", "web").is_some(), "web was pruned");
    assert_ne!(
        s.get("cargo", "api").expect("api")["metadata"]["resourceVersion"],
        api_before["metadata"]["resourceVersion"]
    );
    drop(w);

    // A new watcher knows nothing of the past: the source annotation protects web.
    let w = s.watch(&["--prune"]);
    let first = &w.syncs()[0];
    assert!(first.contains(" 0 pruned, 1 invalid"), "{first}");
    assert!(
        s.get("cargo", "web").is_some(),
        "web was pruned after a restart"
    );

    // Deleting the file (with --prune) does prune it.
    std::fs::remove_file(s.dir().join("web.yaml")).expect("rm");
    let second = w.wait_sync(2, TIMEOUT);
    assert!(second.contains(" 1 pruned, 0 invalid"), "{second}");
    assert!(s.get("cargo", "web").is_none(), "web was not pruned");
}

#[test]
fn a_deleted_file_is_pruned_only_with_prune() {
    let s = Setup::new("wdelete");
    write(&s.dir().join("api.yaml"), &cargo(&s.ns, "api", "100"));
    let w = s.watch(&[]);
    std::fs::remove_file(s.dir().join("api.yaml")).expect("rm");
    let second = w.wait_sync(2, TIMEOUT);
    assert!(second.contains(" 0 pruned, 0 invalid, 1 kept"), "{second}");
    let file = s.dir().join("api.yaml").display().to_string();
    let kept = format!(
        "cargo/api (namespace {}) kept: its file {file} was deleted; run with --prune to delete it",
        s.ns
    );
    assert!(w.stdout().contains(&kept), "{}", w.output());
    assert!(
        s.get("cargo", "api").is_some(),
        "api was deleted without --prune"
    );
    drop(w);

    let w = s.watch(&["--prune"]);
    let first = &w.syncs()[0];
    assert!(first.contains(" 1 pruned, 0 invalid"), "{first}");
    assert!(
        w.stdout().contains(&format!(
            "cargo/api (namespace {}) pruned (its file {file} was deleted)",
            s.ns
        )),
        "{}",
        w.output()
    );
    assert!(s.get("cargo", "api").is_none(), "api was not pruned");
}

#[test]
fn an_object_defined_in_two_files_is_applied_from_neither() {
    let s = Setup::new("wdup");
    let w = s.watch(&["--prune"]);
    let before = s.get("cargo", "web").expect("web");
    write(&s.dir().join("copy.yaml"), &cargo(&s.ns, "web", "999"));
    write(&s.dir().join("new1.yaml"), &cargo(&s.ns, "fresh", "1"));
    write(&s.dir().join("new2.yaml"), &cargo(&s.ns, "fresh", "2"));
    let second = w.wait_sync(2, TIMEOUT);
    assert!(
        second.contains(": 0 created, 0 configured, 2 unchanged, 0 pruned, 2 invalid"),
        "{second}"
    );
    let dir = s.dir().display().to_string();
    let web_error = w
        .stderr()
        .into_iter()
        .find(|l| {
            l.contains(&format!(
                "cargo/web (namespace {}) is defined more than once",
                s.ns
            ))
        })
        .unwrap_or_else(|| panic!("no duplicate error for web: {}", w.output()));
    assert!(
        web_error.starts_with(&format!("{dir}/copy.yaml:1:1: "))
            && web_error.contains(&format!("also at {dir}/web.yaml:1:1"))
            && web_error.ends_with("neither definition is applied"),
        "{web_error}"
    );
    let after = s.get("cargo", "web").expect("web is not pruned");
    assert_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    assert!(s.get("cargo", "fresh").is_none(), "a duplicate was applied");

    std::fs::remove_file(s.dir().join("copy.yaml")).expect("rm");
    let third = w.wait_sync(3, TIMEOUT);
    assert!(third.contains(" 0 pruned, 1 invalid"), "{third}");
}

#[test]
fn vcs_and_editor_noise_does_not_sync() {
    let s = Setup::new("wnoise");
    let w = s.watch(&[]);
    let dir = s.dir();
    for i in 0..20 {
        write(&dir.join(format!(".git/objects/{i:02x}/abcdef")), "blob");
    }
    write(&dir.join(".git/index.lock"), "");
    std::fs::remove_file(dir.join(".git/index.lock")).expect("rm lock");
    write(&dir.join(".git/refs/heads/main.yaml"), "not: ours");
    write(&dir.join(".web.yaml.swp"), "swap");
    write(&dir.join(".web.yaml.swx"), "swap");
    write(&dir.join("web.yaml~"), "backup");
    write(&dir.join(".#web.yaml"), "lock");
    write(&dir.join("4913"), "");
    write(&dir.join("README.md"), "# notes");
    write(&dir.join("notes.txt"), "text");
    std::thread::sleep(SETTLE);
    assert_eq!(w.syncs().len(), 1, "noise caused a sync: {}", w.output());
}

#[test]
fn the_directory_removed_and_recreated_prunes_nothing_then_applies() {
    let s = Setup::new("wrecreate");
    let w = s.watch(&["--prune"]);
    let moved = s.tmp.path().join("moved-away");
    std::fs::rename(s.dir(), &moved).expect("move the directory away");
    w.wait_stderr(TIMEOUT, |l| l.contains("waiting for it"));
    std::thread::sleep(SETTLE);
    assert!(s.get("cargo", "web").is_some(), "web was pruned");
    assert!(s.get("namespace", &s.ns).is_some());

    // Re-created the way a slow checkout does it: the folder, then its files one by one. The
    // folder is watched as soon as it appears, so the files extend the quiet period and the
    // first sync sees them all (without that, the cluster would look deleted).
    std::fs::create_dir(s.dir()).expect("re-create");
    std::thread::sleep(Duration::from_millis(150));
    write(&s.dir().join("web.yaml"), &cargo(&s.ns, "web", "500"));
    std::thread::sleep(Duration::from_millis(150));
    std::fs::copy(moved.join("base.yaml"), s.dir().join("base.yaml")).expect("copy");
    let next = w.wait_sync(2, TIMEOUT);
    assert!(
        next.contains(": 0 created, 1 configured, 2 unchanged, 0 pruned, 0 invalid"),
        "{next}"
    );
    assert_eq!(command_arg(&s.get("cargo", "web").expect("web")), "500");

    // Removed for good: still nothing pruned.
    std::fs::remove_dir_all(s.dir()).expect("rm -r");
    std::thread::sleep(SETTLE);
    assert!(s.get("cargo", "web").is_some(), "web was pruned");
}

#[test]
fn nanocld_briefly_unavailable_loses_nothing() {
    let mut s = Setup::new("wunavailable");
    let w = s.watch(&["--prune"]);
    s.daemon.stop();
    write(&s.dir().join("web.yaml"), &cargo(&s.ns, "web", "600"));
    write(&s.dir().join("api.yaml"), &cargo(&s.ns, "api", "600"));
    w.wait_stderr(TIMEOUT, |l| {
        l.starts_with("warning: sync failed, retrying in") && l.contains("cannot reach nanocld")
    });
    s.daemon.restart();
    let next = w.wait_sync(2, Duration::from_secs(40));
    assert!(
        next.contains(": 1 created, 1 configured, 2 unchanged, 0 pruned, 0 invalid"),
        "{next}"
    );
    assert_eq!(command_arg(&s.get("cargo", "web").expect("web")), "600");
    assert_eq!(command_arg(&s.get("cargo", "api").expect("api")), "600");
}

#[test]
fn watch_once_reports_and_exits() {
    let s = Setup::new("wonce");
    let dir = s.dir().display().to_string();
    let out = s.daemon.nanocl(&["watch", &dir, "--once"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    write(&s.dir().join("bad.yaml"), "kind: [");
    let out = s.daemon.nanocl(&["watch", &dir, "--once"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{dir}/bad.yaml:2:1: invalid YAML")),
        "{err}"
    );
    let missing = s.tmp.path().join("nope").display().to_string();
    let out = s.daemon.nanocl(&["watch", &missing, "--once"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("error: {missing}: No such file")),
        "{out:?}"
    );
}

#[test]
fn an_object_also_in_an_invalid_file_waits_for_that_file_whatever_the_order() {
    let s = Setup::new("wheld");
    let w = s.watch(&["--prune"]);
    let before = s.get("cargo", "web").expect("web");
    // web.yaml breaks while a.yaml (sorted first) takes a copy of web: web waits.
    write(
        &s.dir().join("web.yaml"),
        &cargo(&s.ns, "web", "100").replace("cluster: dev", "cluster: [dev"),
    );
    write(&s.dir().join("a.yaml"), &cargo(&s.ns, "web", "700"));
    let second = w.wait_sync(2, TIMEOUT);
    assert!(
        second.contains(" 0 configured, 2 unchanged, 0 pruned, 2 invalid"),
        "{second}"
    );
    let dir = s.dir().display().to_string();
    assert!(
        w.stderr().iter().any(|l| l.starts_with(&format!("{dir}/a.yaml:1:1: cargo/web (namespace {}) is also defined by {dir}/web.yaml, which is invalid", s.ns))),
        "{}",
        w.output()
    );
    let after = s.get("cargo", "web").expect("web");
    assert_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
}

#[test]
fn the_periodic_resync_undoes_edits_made_behind_the_files_back() {
    let s = Setup::new("wresync");
    let w = s.watch(&["--resync", "1s"]);
    let out = s
        .daemon
        .nanocl(&["-n", &s.ns, "scale", "cargo", "web", "--replicas", "3"]);
    assert!(out.status.success(), "{out:?}");
    let repaired = w.wait_sync(2, TIMEOUT);
    assert!(
        repaired.contains(": 0 created, 1 configured, 2 unchanged, 0 pruned, 0 invalid"),
        "{repaired}"
    );
    assert_eq!(s.get("cargo", "web").expect("web")["spec"]["replicas"], 1);
    // Quiet resyncs print nothing.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(w.syncs().len(), 2, "{}", w.output());
}
