//! The README's command lines, run as written, against a real nanocld and dockerd:
//!
//! - "Using the CLI": the block runs as one bash session (so `export` holds for the lines
//!   after it), line by line, in a clone of this repository's HEAD (the examples build
//!   from it) with the files its lines name (`deploy/`, `web.yaml`, `old.yaml`). Each line
//!   must exit 0 (`diff`: 0 or 1); a line that follows forever (`-f`, `-w`, `watch`) must
//!   still be running after 5 s and stop on Ctrl-C; `-it` runs under a terminal of
//!   script(1) and types `exit`.
//! - "Running nanocld": each line is started with only what isolates it (its own state
//!   directory and socket, a unique etcd prefix, a free TCP port, a temporary deploy
//!   directory) and must become ready.
//!
//! A README line that stops working fails this test, and a new line is run as it is.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nanocl_e2e::docker::docker;
use nanocl_e2e::{bin_dir, binary, etcd_endpoint, unique_prefix, Daemon, StoreKind};

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The command lines of the first ```sh block under `heading`, without their comments.
fn block(readme: &str, heading: &str) -> Vec<String> {
    let section = readme
        .split_once(&format!("\n{heading}\n"))
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("the README has a section {heading:?}"));
    let code = section
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .map(|(code, _)| code)
        .unwrap_or_else(|| panic!("{heading:?} has a sh block"));
    code.lines()
        .map(|l| match l.find("  # ") {
            Some(at) => l[..at].trim_end(),
            None => l.trim_end(),
        })
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// How a line of "Using the CLI" is run and what it must exit with.
fn shape(line: &str) -> (String, &'static [i32]) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let has = |w: &str| words.contains(&w);
    if has("-it") {
        // A terminal of its own, into which `exit` is typed once the shell is up.
        let command = format!(
            "script -qec {} /dev/null < <(sleep 3; printf 'exit\\n'; sleep 20)",
            quote(line)
        );
        return (command, &[0]);
    }
    let follows = has("-w") || has("watch") || (has("logs") && has("-f") && !has("--build"));
    if follows {
        // Still running after 5 s (timeout's 124), stopped as Ctrl-C would.
        return (format!("timeout -s INT 5 {line}"), &[124]);
    }
    if has("diff") {
        return (line.to_owned(), &[0, 1]);
    }
    (line.to_owned(), &[0])
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The namespaces the examples and the README's files create.
const NAMESPACES: [&str; 4] = ["getting-started", "build-demo", "rollouts", "shop"];

fn ours(what: &str) -> BTreeSet<String> {
    NAMESPACES
        .iter()
        .flat_map(|ns| {
            let filter = format!("label=io.nanocl.namespace={ns}");
            let listed = match what {
                "containers" => docker(&["ps", "-aq", "--filter", &filter]),
                _ => docker(&["network", "ls", "-q", "--filter", &filter]),
            };
            listed.lines().map(str::to_owned).collect::<Vec<_>>()
        })
        .collect()
}

fn built_images() -> BTreeSet<String> {
    docker(&[
        "images",
        "-q",
        "--no-trunc",
        "--filter",
        "reference=nanocl.local/build-demo/*",
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Removes what the examples made in Docker (checked empty before the test began) and the
/// images built meanwhile.
struct Cleanup {
    images_before: BTreeSet<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for id in ours("containers") {
            docker(&["rm", "-f", &id]);
        }
        for id in ours("networks") {
            docker(&["network", "rm", &id]);
        }
        for id in built_images().difference(&self.images_before) {
            docker(&["rmi", "-f", id]);
        }
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_readmes_cli_lines_should_work_as_written() {
    let readme = std::fs::read_to_string(repository().join("README.md")).expect("README.md");
    let lines = block(&readme, "## Using the CLI");
    assert!(lines.len() > 20, "{lines:?}");
    assert!(
        ours("containers").is_empty() && ours("networks").is_empty(),
        "Docker already runs the examples (`make run`?): stop it, or delete their namespaces \
         ({NAMESPACES:?}) with --wait, before this test"
    );
    let _cleanup = Cleanup {
        images_before: built_images(),
    };
    let d = Daemon::start_with_controllers(StoreKind::Embedded);

    // A clone of HEAD: the examples as committed (the build example builds this repository
    // at HEAD, found as `../..` from its file), and room for the files the lines name.
    let dir = tempfile::tempdir().expect("tmp");
    let work = dir.path().join("nanocl");
    let out = Command::new("git")
        .args(["clone", "-q", "--shared"])
        .arg(repository())
        .arg(&work)
        .output()
        .expect("git clone runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    git(&work, &["config", "user.email", "readme@test"]);
    git(&work, &["config", "user.name", "readme test"]);
    let copy = |from: &str, to: &str| {
        let out = Command::new("cp")
            .args(["-r", from, to])
            .current_dir(&work)
            .output()
            .expect("cp runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    copy("examples/gitops/deploy", "deploy");
    copy("examples/getting-started/04-web.yaml", "web.yaml");
    let old = Command::new(binary("nanocl"))
        .args([
            "convert",
            "-f",
            "web.yaml",
            "--output-version",
            "nanocl.io/v1alpha1",
        ])
        .current_dir(&work)
        .output()
        .expect("nanocl convert runs");
    assert!(
        old.status.success(),
        "{}",
        String::from_utf8_lossy(&old.stderr)
    );
    std::fs::write(work.join("old.yaml"), &old.stdout).expect("old.yaml");

    let mut script = String::from("set +e\n");
    for (i, line) in lines.iter().enumerate() {
        let (command, _) = shape(line);
        script.push_str(&format!(
            "echo '::run {i}'\n{command}\necho \"::exit {i} $?\"\n"
        ));
    }
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let started = Instant::now();
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&work)
        .env("PATH", path)
        .env("NANOCL_HOST", &d.host)
        .env("EDITOR", "true")
        .env("HOME", dir.path())
        .env_remove("NANOCL_NAMESPACE")
        .env_remove("VISUAL")
        .env_remove("NANOCL_EDITOR")
        .stdin(Stdio::null())
        .output()
        .expect("bash runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let errors = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut failed = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let (_, expected) = shape(line);
        let code = text
            .lines()
            .find_map(|l| l.strip_prefix(&format!("::exit {i} ")))
            .and_then(|c| c.trim().parse::<i32>().ok());
        if !code.is_some_and(|c| expected.contains(&c)) {
            failed.push(format!("{line}  → exit {code:?}, expected {expected:?}"));
        }
    }
    assert!(
        failed.is_empty(),
        "README lines that do not work as written:\n{}\n\n--- output ({:?}) ---\n{text}\n--- stderr ---\n{errors}",
        failed.join("\n"),
        started.elapsed()
    );
    // What some lines promise, seen.
    assert!(text.contains("namespace/getting-started created"), "{text}");
    assert!(text.contains("Edit cancelled, no changes made."), "{text}");
    assert!(text.contains("CPU(cores)"), "top: {text}");

    let out = d.nanocl(&[
        "delete",
        "ns",
        "getting-started",
        "build-demo",
        "rollouts",
        "shop",
        "--wait",
        "--timeout",
        "120s",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs one `nanocld …` line of the README, isolated, until it answers; its output when it
/// does not.
fn starts(line: &str, dir: &Path) -> Result<(), String> {
    let state = dir.join("state");
    let socket = dir.join("nanocl.sock");
    let tcp_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())?;
    let deploy = dir.join("deploy");
    std::fs::create_dir_all(&deploy).map_err(|e| e.to_string())?;
    let isolated = line
        .replace(
            "--store-prefix /nanocl",
            &format!("--store-prefix /{}", unique_prefix("readme")),
        )
        .replace(
            "tcp://127.0.0.1:8585",
            &format!("tcp://127.0.0.1:{tcp_port}"),
        )
        .replace("/srv/deploy", &deploy.display().to_string());
    let command = format!(
        "exec {isolated} --state-dir {} --listen unix://{}",
        state.display(),
        socket.display()
    );
    // `NANOCL_LOG=debug nanocld …`: the assignment before exec's command.
    let command = match isolated.split_once(" nanocld") {
        Some((env, rest)) if env.contains('=') => format!(
            "{env} exec nanocld{rest} --state-dir {} --listen unix://{}",
            state.display(),
            socket.display()
        ),
        _ => command,
    };
    let log = std::fs::File::create(dir.join("log")).map_err(|e| e.to_string())?;
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&command)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| e.to_string())?;
    let host = format!("unix://{}", socket.display());
    let deadline = Instant::now() + Duration::from_secs(30);
    let result = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!("exited with {status}"));
        }
        let out = Command::new(binary("nanocl"))
            .args(["get", "namespaces", "-o", "name"])
            .env("NANOCL_HOST", &host)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            break Ok(());
        }
        if Instant::now() > deadline {
            break Err("not ready within 30 s".to_owned());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    nanocl_e2e::stop_proxy(&state);
    result.map_err(|e| {
        format!(
            "{e}\n{}",
            std::fs::read_to_string(dir.join("log")).unwrap_or_default()
        )
    })
}

#[test]
fn the_readmes_nanocld_lines_should_start_as_written() {
    let readme = std::fs::read_to_string(repository().join("README.md")).expect("README.md");
    let lines = block(&readme, "## Running nanocld");
    assert!(lines.len() > 5, "{lines:?}");
    // The etcd line names the dev environment's etcd (`make dev-env`), so it works as written.
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("etcd://{}", etcd_endpoint()))),
        "the README's etcd line is not the dev etcd {}: {lines:?}",
        etcd_endpoint()
    );
    let mut failed = Vec::new();
    for line in &lines {
        let dir = tempfile::tempdir().expect("tmp");
        if let Err(e) = starts(line, dir.path()) {
            failed.push(format!("{line}: {e}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}
