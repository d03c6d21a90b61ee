//! `nanocld --deploy-dir DIR` with its controllers on the real dockerd: the directory's
//! cargoes run; an edit converges; a restart of nanocld duplicates nothing and prunes nothing
//! that is live; the last sync shows in `/metrics` and in the log.

use std::time::{Duration, Instant};

use nanocl_e2e::docker::{running, wait_until, Scope};
use nanocl_e2e::{test_image, Daemon, StoreKind};
use serde_json::Value;

fn manifests(ns: &str, replicas: u32, arg: &str) -> String {
    format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  cluster: dev\n  replicas: {replicas}\n  container:\n    image: {}\n    command: [sleep, \"{arg}\"]\n",
        test_image()
    )
}

fn get(d: &Daemon, ns: &str, kind: &str, name: &str) -> Value {
    let out = d.nanocl(&["-n", ns, "get", kind, name, "-o", "json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

fn wait_for_metric(d: &Daemon, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = d.metrics();
        if text.lines().any(|l| l == line) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {line:?} in /metrics:\n{text}\nlog:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn deploy_dir_converges_and_survives_a_restart_of_nanocld() {
    let scope = Scope::new("deploydir");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("site");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("web.yaml"), manifests(&scope.ns, 2, "300")).expect("write");
    let dir_arg = dir.display().to_string();
    let mut d = Daemon::start_with(
        StoreKind::Embedded,
        &[
            "--deploy-dir",
            &dir_arg,
            "--deploy-prune",
            "--deploy-debounce",
            "300ms",
        ],
    );
    let web = scope.cargo("web");
    wait_until("2 replicas", || running(&web).len() == 2);
    wait_for_metric(
        &d,
        &format!("nanocl_deploy_last_sync_objects{{dir=\"{dir_arg}\",result=\"created\"}} 3"),
    );
    // Settled: ready, its update complete (the controller writes nothing more).
    wait_until("the cargo ready and its rollout complete", || {
        let cargo = get(&d, &scope.ns, "cargo", "web");
        nanocl_e2e::condition(&cargo["status"], "Ready").0 == "True"
            && cargo["status"]["rollout"]["phase"] == "Complete"
    });
    let before = get(&d, &scope.ns, "cargo", "web");
    assert_eq!(before["metadata"]["labels"]["nanocl.io/applyset"], "site");
    let containers_before = running(&web);

    // A restart syncs again: nothing created, nothing pruned, the same containers.
    d.set_env("NANOCL_LOG", "warn,nanocl_controller::deploy=info");
    d.restart();
    wait_for_metric(
        &d,
        &format!("nanocl_deploy_last_sync_objects{{dir=\"{dir_arg}\",result=\"unchanged\"}} 3"),
    );
    let text = d.metrics();
    assert!(
        text.contains(&format!(
            "nanocl_deploy_last_sync_objects{{dir=\"{dir_arg}\",result=\"pruned\"}} 0"
        )),
        "{text}"
    );
    let after = get(&d, &scope.ns, "cargo", "web");
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    assert_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        running(&web),
        containers_before,
        "a restart changed the replicas"
    );
    assert!(
        d.log().contains(&format!(
            "synced {dir_arg}: 0 created, 0 configured, 3 unchanged, 0 pruned, 0 invalid"
        )),
        "{}",
        d.log()
    );

    // An edit converges: exactly 3 replicas.
    std::fs::write(dir.join("web.yaml"), manifests(&scope.ns, 3, "300")).expect("write");
    wait_until("3 replicas", || running(&web).len() == 3);
    assert!(
        d.log().contains(&format!(
            "synced {dir_arg}: 0 created, 1 configured, 2 unchanged, 0 pruned, 0 invalid"
        )),
        "{}",
        d.log()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(running(&web).len(), 3);

    // A broken save: logged with its location, counted in /metrics, nothing touched.
    std::fs::write(dir.join("web.yaml"), "kind: Cargo\nmetadata: [oops\n").expect("write");
    wait_for_metric(
        &d,
        &format!("nanocl_deploy_last_sync_objects{{dir=\"{dir_arg}\",result=\"invalid\"}} 1"),
    );
    assert!(
        d.log()
            .contains(&format!("{dir_arg}/web.yaml:3:1: invalid YAML")),
        "{}",
        d.log()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(running(&web).len(), 3, "a broken file changed the replicas");
    assert!(!get(&d, &scope.ns, "cargo", "web").is_null());

    // Cleanup through the API: the namespace's finalizer removes the containers.
    let out = d.nanocl(&["delete", "namespace", &scope.ns, "--wait"]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn two_deploy_dirs_with_the_same_name_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = tmp.path().join("a/site");
    let b = tmp.path().join("b/site");
    std::fs::create_dir_all(&a).expect("mkdir");
    std::fs::create_dir_all(&b).expect("mkdir");
    let out = std::process::Command::new(nanocl_e2e::binary("nanocld"))
        .args(["--controllers", "none", "--state-dir"])
        .arg(tmp.path().join("state"))
        .arg("--listen")
        .arg(format!("unix://{}", tmp.path().join("s.sock").display()))
        .arg("--deploy-dir")
        .arg(&a)
        .arg("--deploy-dir")
        .arg(&b)
        .output()
        .expect("nanocld runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "--deploy-dir {} and {} have the same name, so the same applyset \"site\"",
            a.display(),
            b.display()
        )),
        "{err}"
    );
}

#[test]
fn a_file_restored_right_after_its_prune_brings_the_cargo_back() {
    let scope = Scope::new("deployback");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("back");
    std::fs::create_dir(&dir).expect("mkdir");
    let text = manifests(&scope.ns, 1, "300");
    let (base, web) = text.split_at(
        text.find("kind: Cargo")
            .map_or(0, |i| i - "apiVersion: nanocl.io/v1\n".len()),
    );
    std::fs::write(
        dir.join("base.yaml"),
        base.trim_end().trim_end_matches("---"),
    )
    .expect("write");
    std::fs::write(dir.join("web.yaml"), web).expect("write");
    let dir_arg = dir.display().to_string();
    let d = Daemon::start_with(
        StoreKind::Embedded,
        &[
            "--deploy-dir",
            &dir_arg,
            "--deploy-prune",
            "--deploy-debounce",
            "300ms",
        ],
    );
    let web_labels = scope.cargo("web");
    wait_until("1 replica", || running(&web_labels).len() == 1);
    let uid = get(&d, &scope.ns, "cargo", "web")["metadata"]["uid"].clone();

    // Pruned, then restored while its finalizer may still be at work.
    std::fs::remove_file(dir.join("web.yaml")).expect("rm");
    wait_until("the prune", || {
        let live = get(&d, &scope.ns, "cargo", "web");
        live.is_null() || !live["metadata"]["deletionTimestamp"].is_null()
    });
    std::fs::write(dir.join("web.yaml"), web).expect("restore");
    wait_until("web back, not terminating, 1 replica", || {
        let live = get(&d, &scope.ns, "cargo", "web");
        !live.is_null()
            && live["metadata"]["deletionTimestamp"].is_null()
            && live["metadata"]["uid"] != uid
            && running(&web_labels).len() == 1
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(running(&web_labels).len(), 1);
    let out = d.nanocl(&["delete", "namespace", &scope.ns, "--wait"]);
    assert!(out.status.success(), "{out:?}");
}
