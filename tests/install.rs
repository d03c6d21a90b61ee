//! `make install` and the .deb, into roots of the test's own: the installed binaries run,
//! the man pages and completions are there and say what `--help` says, the systemd unit
//! names the installed nanocld; the .deb installs with dpkg (into a root, maintainer
//! scripts outside a chroot) and removes cleanly, keeping its settings file. Starting the
//! service needs systemd, which this test does not assume (the postinst starts it where
//! /run/systemd/system exists).

use std::path::{Path, PathBuf};
use std::process::Command;

use nanocl_e2e::{bin_dir, stderr, stdout};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(command: &mut Command) -> String {
    let out = command.output().expect("runs");
    assert!(
        out.status.success(),
        "{command:?}\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

fn gunzip(path: &Path) -> String {
    run(Command::new("gzip").arg("-dc").arg(path))
}

#[test]
fn make_install_should_give_working_binaries_man_pages_completions_and_a_unit() {
    let root = tempfile::tempdir().expect("tempdir");
    let install = || {
        run(Command::new("bash")
            .arg(repository().join("scripts/install.sh"))
            .env("DESTDIR", root.path())
            .env("PREFIX", "/usr")
            .env("NANOCL_BIN_DIR", bin_dir()))
    };
    let said = install();
    assert!(said.contains("man pages, completions"), "{said}");
    let usr = root.path().join("usr");
    let version = run(Command::new(usr.join("bin/nanocl")).arg("--version"));
    assert!(version.starts_with("nanocl "), "{version}");
    run(Command::new(usr.join("bin/nanocld")).arg("--version"));

    let man = gunzip(&usr.join("share/man/man1/nanocl.1.gz"));
    assert!(
        man.contains(".TH nanocl 1") && man.contains("apply"),
        "{man}"
    );
    let apply = gunzip(&usr.join("share/man/man1/nanocl-apply.1.gz"));
    assert!(apply.contains("dry\\-run"), "{apply}");
    assert!(usr
        .join("share/man/man1/nanocl-rollout-status.1.gz")
        .exists());
    assert!(
        !usr.join("share/man/man1/nanocl-__man.1.gz").exists(),
        "hidden commands have no page"
    );
    let daemon = gunzip(&usr.join("share/man/man8/nanocld.8.gz"));
    assert!(
        daemon.contains(".TH nanocld 8") && daemon.contains("tls\\-client\\-ca"),
        "{daemon}"
    );

    let bash = usr.join("share/bash-completion/completions/nanocl");
    let registered = run(Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p nanocl", bash.display())));
    assert!(registered.contains("nanocl"), "{registered}");
    assert!(usr.join("share/zsh/site-functions/_nanocl").exists());
    assert!(usr
        .join("share/fish/vendor_completions.d/nanocl.fish")
        .exists());

    let unit =
        std::fs::read_to_string(usr.join("lib/systemd/system/nanocld.service")).expect("unit");
    assert!(
        unit.contains("ExecStart=/usr/bin/nanocld $NANOCLD_ARGS"),
        "{unit}"
    );
    assert!(usr.join("share/doc/nanocl/examples/etcd.conf.yml").exists());

    // A settings file the admin changed survives a second install.
    let settings = root.path().join("etc/default/nanocld");
    std::fs::write(&settings, "NANOCLD_ARGS=\"--socket-group ops\"\n").expect("write");
    let said = install();
    assert!(said.contains("kept"), "{said}");
    assert_eq!(
        std::fs::read_to_string(&settings).expect("settings"),
        "NANOCLD_ARGS=\"--socket-group ops\"\n"
    );
}

#[test]
fn the_deb_should_install_and_remove_with_dpkg() {
    let out = tempfile::tempdir().expect("tempdir");
    let said = run(Command::new("bash")
        .arg(repository().join("scripts/deb.sh"))
        .env("NANOCL_BIN_DIR", bin_dir())
        .env("NANOCL_DEB_DIR", out.path())
        .env("NANOCL_DEB_COMPRESSION", "none"));
    let deb = PathBuf::from(
        said.trim()
            .strip_prefix("deb: ")
            .expect("the package's path"),
    );
    let info = run(Command::new("dpkg-deb").arg("--info").arg(&deb));
    assert!(
        info.contains("Package: nanocl") && info.contains("Depends: adduser"),
        "{info}"
    );
    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for file in [
        "./usr/bin/nanocl",
        "./usr/bin/nanocld",
        "./usr/lib/systemd/system/nanocld.service",
        "./etc/default/nanocld",
        "./usr/share/man/man8/nanocld.8.gz",
    ] {
        assert!(contents.contains(file), "{file} not in\n{contents}");
    }

    // dpkg itself installs it, into a root of the test's own.
    let root = tempfile::tempdir().expect("tempdir");
    let admin = root.path().join("var/lib/dpkg");
    std::fs::create_dir_all(admin.join("updates")).expect("dpkg dirs");
    std::fs::create_dir_all(admin.join("info")).expect("dpkg dirs");
    std::fs::write(admin.join("status"), "").expect("dpkg status");
    let dpkg = |args: &[&str]| {
        run(Command::new("dpkg")
            .arg(format!("--root={}", root.path().display()))
            .args([
                "--force-script-chrootless",
                "--force-depends",
                "--log=/dev/null",
            ])
            .args(args))
    };
    dpkg(&["-i", &deb.display().to_string()]);
    let status = dpkg(&["-s", "nanocl"]);
    assert!(status.contains("Status: install ok installed"), "{status}");
    let version = run(Command::new(root.path().join("usr/bin/nanocld")).arg("--version"));
    assert!(version.starts_with("nanocld "), "{version}");
    dpkg(&["-r", "nanocl"]);
    assert!(!root.path().join("usr/bin/nanocld").exists());
    assert!(
        root.path().join("etc/default/nanocld").exists(),
        "a conffile stays until purge"
    );
}
