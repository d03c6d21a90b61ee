//! The offline CLI end to end: the real `nanocl` binary on real files.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn nanocl(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nanocl"))
        .args(args)
        .current_dir(repo())
        .env_remove("NANOCL_HOST")
        .env_remove("NANOCL_NAMESPACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nanocl runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("nanocl exits")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn apply_dry_run_should_validate_the_examples_in_apply_order() {
    let out = nanocl(&["apply", "--dry-run=client", "-R", "-f", "examples"], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        vec![
            "namespace/build-demo valid (dry run: nothing applied)",
            "namespace/getting-started valid (dry run: nothing applied)",
            "namespace/shop valid (dry run: nothing applied)",
            "namespace/rollouts valid (dry run: nothing applied)",
            "cluster/dev (namespace build-demo) valid (dry run: nothing applied)",
            "cluster/dev (namespace getting-started) valid (dry run: nothing applied)",
            "cluster/prod (namespace shop) valid (dry run: nothing applied)",
            "cluster/dev (namespace rollouts) valid (dry run: nothing applied)",
            "network/front (namespace getting-started) valid (dry run: nothing applied)",
            "network/back (namespace getting-started) valid (dry run: nothing applied)",
            "cargo/site (namespace build-demo) valid (dry run: nothing applied)",
            "cargo/backend (namespace getting-started) valid (dry run: nothing applied)",
            "cargo/web (namespace getting-started) valid (dry run: nothing applied)",
            "cargo/storefront (namespace shop) valid (dry run: nothing applied)",
            "cargo/api (namespace rollouts) valid (dry run: nothing applied)",
            "proxyrule/front (namespace getting-started) valid (dry run: nothing applied)",
        ]
    );
}

#[test]
fn directories_should_be_read_only_with_recursive_and_skip_hidden_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ns = "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata:\n  name: NAME\n";
    std::fs::create_dir_all(dir.path().join("sub")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join(".git")).expect("mkdir");
    std::fs::write(dir.path().join("a.yaml"), ns.replace("NAME", "a")).expect("write");
    std::fs::write(dir.path().join("sub/b.yml"), ns.replace("NAME", "b")).expect("write");
    std::fs::write(dir.path().join(".git/c.yaml"), "not: [valid").expect("write");
    std::fs::write(dir.path().join(".hidden.yaml"), "not: [valid").expect("write");
    std::fs::write(dir.path().join("notes.txt"), "not yaml").expect("write");
    let path = dir.path().to_str().expect("utf-8");

    let flat = nanocl(
        &["apply", "--dry-run=client", "-o", "name", "-f", path],
        None,
    );
    assert_eq!(stdout(&flat), "namespace/a\n", "{}", stderr(&flat));
    let deep = nanocl(
        &["apply", "--dry-run=client", "-o", "name", "-R", "-f", path],
        None,
    );
    assert_eq!(
        stdout(&deep),
        "namespace/a\nnamespace/b\n",
        "{}",
        stderr(&deep)
    );

    let empty = tempfile::tempdir().expect("tempdir");
    let out = nanocl(
        &[
            "apply",
            "--dry-run=client",
            "-f",
            empty.path().to_str().expect("utf-8"),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no manifest files (*.yaml, *.yml, *.json) found in"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn stdin_should_be_read_with_dash_and_named_in_errors() {
    let ok = nanocl(
        &["apply", "--dry-run=client", "-o", "json", "-f", "-"],
        Some("apiVersion: nanocl.io/v1\nkind: Network\nmetadata: {name: front}\nspec: {cluster: dev}\n"),
    );
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    let value: serde_json::Value = serde_json::from_slice(&ok.stdout).expect("json");
    assert_eq!(value["spec"]["driver"], "bridge", "defaults are filled in");
    assert_eq!(value["metadata"]["namespace"], "global");

    let bad = nanocl(
        &["apply", "--dry-run=client", "-f", "-"],
        Some("apiVersion: nanocl.io/v1\nkind: Nope\n"),
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).starts_with("<stdin>:2:7: kind: unknown kind \"Nope\""),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn convert_should_round_trip_through_v1alpha1() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The four kinds v1alpha1 serves (the example's ProxyRule is v1 only).
    let files = [
        "examples/getting-started/00-namespace.yaml",
        "examples/getting-started/01-cluster.yaml",
        "examples/getting-started/02-networks.yaml",
        "examples/getting-started/03-backend.yaml",
        "examples/getting-started/04-web.yaml",
    ];
    let with_files = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        for f in &files {
            all.extend(["-f", f]);
        }
        all.iter().map(|a| (*a).to_owned()).collect::<Vec<String>>()
    };
    let args = with_files(&["convert", "--output-version", "nanocl.io/v1alpha1"]);
    let legacy = nanocl(&args.iter().map(String::as_str).collect::<Vec<_>>(), None);
    let refused = nanocl(
        &[
            "convert",
            "-f",
            "examples/getting-started/05-proxy.yaml",
            "--output-version",
            "nanocl.io/v1alpha1",
        ],
        None,
    );
    assert_ne!(refused.status.code(), Some(0));
    assert!(
        stderr(&refused).contains("served only in nanocl.io/v1"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(legacy.status.code(), Some(0), "{}", stderr(&legacy));
    let legacy_text = stdout(&legacy);
    assert!(legacy_text.contains("apiVersion: nanocl.io/v1alpha1"));
    assert!(
        legacy_text.contains("  image: busybox:stable\n"),
        "cargo image is flat in v1alpha1"
    );
    let file = dir.path().join("legacy.yaml");
    std::fs::write(&file, &legacy_text).expect("write");

    let back = nanocl(
        &[
            "convert",
            "-f",
            file.to_str().expect("utf-8"),
            "--output-version",
            "nanocl.io/v1",
        ],
        None,
    );
    assert_eq!(back.status.code(), Some(0), "{}", stderr(&back));
    let args = with_files(&["apply", "--dry-run=client", "-o", "yaml"]);
    let direct = nanocl(&args.iter().map(String::as_str).collect::<Vec<_>>(), None);
    // apply orders by kind; convert keeps input order, which for the examples is the same.
    assert_eq!(stdout(&back), stdout(&direct));
}

#[test]
fn namespace_flag_should_default_and_enforce_the_namespace() {
    let cluster = "apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata:\n  name: dev\n";
    let out = nanocl(
        &[
            "-n",
            "team",
            "apply",
            "--dry-run=client",
            "-o",
            "json",
            "-f",
            "-",
        ],
        Some(cluster),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(value["metadata"]["namespace"], "team");

    let other = format!("{cluster}  namespace: other\n");
    let out = nanocl(
        &["-n", "team", "apply", "--dry-run=client", "-f", "-"],
        Some(&other),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with(
        "<stdin>:5:14: metadata.namespace: the object is in namespace \"other\" but the command was given --namespace \"team\""
    ), "{}", stderr(&out));
}

#[test]
fn version_and_completion_should_print_and_exit_zero() {
    let out = nanocl(&["version", "--client"], None);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out),
        format!(
            "Client Version: {}\nAPI Versions: nanocl.io/v1, nanocl.io/v1alpha1\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    for (shell, marker) in [
        ("bash", "complete -o default -F _nanocl nanocl"),
        ("zsh", "#compdef nanocl"),
        ("fish", "complete -c nanocl"),
        ("elvish", "nanocl"),
        ("powershell", "nanocl"),
    ] {
        let out = nanocl(&["completion", shell], None);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(
            stdout(&out).contains(marker),
            "{shell} script lacks {marker:?}"
        );
        if ["bash", "zsh", "fish"].contains(&shell) {
            assert!(
                stdout(&out).contains("nanocl __complete --"),
                "{shell} asks nanocl for each word"
            );
        }
    }
    // What the scripts ask: the subcommands, without a server.
    let out = nanocl(&["__complete", "--", ""], None);
    assert_eq!(out.status.code(), Some(0));
    for sub in ["apply", "convert", "rollout", "exec"] {
        assert!(
            stdout(&out).lines().any(|l| l == sub),
            "{sub}: {}",
            stdout(&out)
        );
    }
}

#[test]
fn usage_errors_should_exit_one_and_help_zero() {
    let out = nanocl(&["apply"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--filename <PATH>"),
        "{}",
        stderr(&out)
    );
    let out = nanocl(&["frobnicate"], None);
    assert_eq!(out.status.code(), Some(1));
    let out = nanocl(&["apply", "--help"], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("nothing is applied"),
        "help explains the all-or-nothing rule"
    );
}

#[test]
fn apply_without_a_daemon_should_say_where_it_looked_and_apply_nothing() {
    let out = Command::new(env!("CARGO_BIN_EXE_nanocl"))
        .args(["apply", "-R", "-f", "examples"])
        .current_dir(repo())
        .env("NANOCL_HOST", "unix:///nonexistent/nanocl.sock")
        .output()
        .expect("nanocl runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("cannot reach nanocld at unix:///nonexistent/nanocl.sock"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn rollout_should_explain_itself_and_refuse_other_kinds() {
    let out = nanocl(&["rollout", "--help"], None);
    assert_eq!(out.status.code(), Some(0));
    for sub in ["status", "history", "undo", "restart", "pause", "resume"] {
        assert!(stdout(&out).contains(sub), "{sub}: {}", stdout(&out));
    }
    let out = nanocl(&["rollout", "status", "--help"], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("Exit status: 0 when every replica runs"),
        "status documents its exit codes: {}",
        stdout(&out)
    );
    let out = nanocl(&["__complete", "--", "roll"], None);
    assert_eq!(stdout(&out), "rollout\n", "rollout is completed");
    let out = nanocl(&["__complete", "--", "rollout", ""], None);
    assert!(stdout(&out).contains("undo"), "its subcommands too");
    let out = nanocl(&["rollout", "undo", "network", "front"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: only cargoes roll out: nanocl rollout undo cargo NAME\n"
    );
}

#[test]
fn nanocl_namespace_should_default_the_namespace_without_enforcing_it() {
    let cargo = "apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {name: web}\nspec: {cluster: dev, container: {image: busybox}}\n---\napiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {name: api, namespace: other}\nspec: {cluster: dev, container: {image: busybox}}\n";
    let out = Command::new(env!("CARGO_BIN_EXE_nanocl"))
        .args(["apply", "--dry-run=client", "-f", "-"])
        .env_remove("NANOCL_HOST")
        .env("NANOCL_NAMESPACE", "shop")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(cargo.as_bytes())?;
            c.wait_with_output()
        })
        .expect("nanocl runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "cargo/web (namespace shop) valid (dry run: nothing applied)\ncargo/api (namespace other) valid (dry run: nothing applied)\n"
    );
}

#[test]
fn explain_should_describe_kinds_and_fields_and_name_the_fields_of_a_wrong_one() {
    let out = nanocl(&["explain", "cargo.spec.update"], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("FIELD:    spec.update <UpdateSpec>"),
        "{text}"
    );
    assert!(text.contains("  maxSurge\t<IntOrPercent>"), "{text}");
    assert!(
        text.contains("strategy\t<UpdateStrategy: RollingUpdate | Recreate>"),
        "{text}"
    );
    let secret = stdout(&nanocl(&["explain", "secret.spec"], None));
    assert!(
        secret.contains("stringData\t<map[string]string>"),
        "{secret}"
    );
    let out = nanocl(&["explain", "cargo.spec.contaner"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "field \"contaner\" does not exist in cargo.spec; its fields: cluster, replicas"
        ),
        "{}",
        stderr(&out)
    );
    let out = nanocl(&["explain", "node", "--api-version", "v1alpha1"], None);
    assert!(
        stderr(&out).contains("Node is not served in nanocl.io/v1alpha1"),
        "{}",
        stderr(&out)
    );
}
