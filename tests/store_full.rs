//! A full store says so, against a real etcd with a tiny quota: once etcd raises its
//! NOSPACE alarm, a write is refused with 507 and a message that says the store is full and
//! what frees it (never "not answering"), `/readyz` is not ready, reads keep working; once
//! room is made and the alarm disarmed, writes and `/readyz` are back.

use std::time::Duration;

use nanocl_e2e::hosts::EtcdCluster;
use nanocl_e2e::{stderr, stdout, Daemon};

fn namespace(i: usize) -> String {
    // 200 KiB of annotation: a few fill a 2 MiB etcd.
    format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata:\n  name: full-{i}\n  annotations:\n    filler: \"{}\"\n",
        "x".repeat(200 * 1024)
    )
}

#[test]
fn a_full_etcd_should_be_said_as_such_and_recover() {
    let etcd = EtcdCluster::start_with(1, &["--quota-backend-bytes", "2097152"]);
    let d = Daemon::start_configured(&["--store", &etcd.store_url()], &[]);
    let file = d.dir.path().join("ns.yaml");
    let mut refused = None;
    for i in 0..60 {
        std::fs::write(&file, namespace(i)).expect("write");
        let out = d.nanocl(&["apply", "-f", &file.display().to_string()]);
        if out.status.code() != Some(0) {
            refused = Some(out);
            break;
        }
    }
    let out = refused.expect("a 2 MiB etcd fills up");
    let err = stderr(&out);
    assert!(
        err.contains("the store is full") && err.contains("database space exceeded"),
        "{err}"
    );
    assert!(
        err.contains("etcdctl alarm disarm"),
        "says what frees it: {err}"
    );
    assert!(!err.contains("not answering"), "{err}");
    let ready = d.http_get("/readyz");
    assert!(
        ready.contains("the store is full") && ready.contains("NOSPACE"),
        "{ready}"
    );
    // Reads still work.
    let out = d.nanocl(&["get", "namespaces", "-o", "name"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("namespace/full-0"),
        "{}",
        stdout(&out)
    );

    // Room made (compact, defragment, disarm): writes and readiness are back.
    let (ok, status) = etcd.ctl(&["endpoint", "status", "-w", "json"]);
    assert!(ok, "{status}");
    let revision = serde_json::from_str::<serde_json::Value>(&status).unwrap_or_default()[0]
        ["Status"]["header"]["revision"]
        .as_u64()
        .expect("a revision");
    assert!(etcd.ctl(&["compact", &revision.to_string()]).0);
    assert!(etcd.ctl(&["defrag"]).0);
    assert!(etcd.ctl(&["alarm", "disarm"]).0);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while d.http_get("/readyz") != "ok\n" {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            d.http_get("/readyz")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A write goes through again. (A small one: deleting the big namespaces would write
    // new 200 KiB revisions of each — their deletion marks — and fill the 2 MiB etcd again;
    // the etcd is the test's own and goes with them.)
    std::fs::write(
        &file,
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {name: room-again}\n",
    )
    .expect("write");
    let out = d.nanocl(&["apply", "-f", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// A tmpfs of `size` of the test's own, unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("tmp");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

#[test]
fn a_full_disk_under_the_embedded_store_should_be_said_as_such() {
    let disk = Tmpfs::mount("4m");
    let store = format!("embedded:{}", disk.0.path().join("store.redb").display());
    let d = Daemon::start_configured(&["--store", &store], &[]);
    let file = d.dir.path().join("ns.yaml");
    let mut refused = None;
    for i in 0..60 {
        std::fs::write(&file, namespace(i)).expect("write");
        let out = d.nanocl(&["apply", "-f", &file.display().to_string()]);
        if out.status.code() != Some(0) {
            refused = Some(out);
            break;
        }
    }
    let out = refused.expect("a 4 MiB disk fills up");
    let err = stderr(&out);
    assert!(
        err.contains("the store is full") && err.contains("free space on the disk"),
        "{err}"
    );
    let ready = d.http_get("/readyz");
    assert!(ready.contains("the store is full"), "{ready}");
    let out = d.nanocl(&["get", "namespaces", "-o", "name"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "reads still work: {}",
        stderr(&out)
    );
    let before = stdout(&out);

    // Room made (a larger disk), nanocld restarted as the message says: every namespace
    // acknowledged before is there, and writes work again.
    let out = std::process::Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(disk.0.path())
        .output()
        .expect("mount runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut d = d;
    d.restart();
    assert_eq!(
        stdout(&d.nanocl(&["get", "namespaces", "-o", "name"])),
        before
    );
    std::fs::write(&file, namespace(100)).expect("write");
    let out = d.nanocl(&["apply", "-f", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(d.http_get("/readyz"), "ok\n");
    drop(d);
}
