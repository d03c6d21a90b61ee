//! Builds against the real dockerd and real git (no registry): a repository the test makes,
//! served as a local path, as `file://` and by `git daemon` on a loopback port, with a
//! Dockerfile `FROM busybox:stable` whose page busybox httpd serves; and a directory next
//! to the manifest as a build context.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nanocl_e2e::docker::{docker, running, Scope};
use nanocl_e2e::{condition, stderr, stdout, Daemon, StoreKind};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "nanocl test")
        .env("GIT_AUTHOR_EMAIL", "test@nanocl.invalid")
        .env("GIT_COMMITTER_NAME", "nanocl test")
        .env("GIT_COMMITTER_EMAIL", "test@nanocl.invalid")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

const DOCKERFILE: &str = "FROM busybox:stable\nARG GREETING=hello\nCOPY index.html /www/index.html\nRUN echo \"$GREETING\" > /www/greeting.txt\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n";

/// Writes the page and commits everything; answers the commit.
fn commit(repo: &Path, page: &str, dockerfile: &str, message: &str) -> String {
    std::fs::create_dir_all(repo.join("site")).expect("mkdir");
    std::fs::write(repo.join("site/index.html"), page).expect("page");
    std::fs::write(repo.join("site/Dockerfile"), dockerfile).expect("Dockerfile");
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-qm", message]);
    git(repo, &["rev-parse", "HEAD"])
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The body of `GET /path` on a loopback port, or empty.
fn page(port: u16, path: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return String::new();
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.trim().to_owned())
        .unwrap_or_default()
}

fn wait(what: &str, timeout: Duration, done: impl FnMut() -> bool) {
    wait_explained(what, timeout, done, String::new);
}

/// `wait`, saying on a timeout what `explain` tells (the cargo's story, say).
fn wait_explained(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
    explain: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            explain()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What `describe` and `events` say of cargo `name`, for a failure's message.
fn story(d: &Daemon, ns: &str, name: &str) -> String {
    format!(
        "--- describe ---\n{}\n--- events ---\n{}",
        stdout(&d.nanocl(&["-n", ns, "describe", "cargo", name])),
        stdout(&d.nanocl(&["-n", ns, "events"]))
    )
}

fn cargo_json(d: &Daemon, ns: &str, name: &str) -> serde_json::Value {
    let out = d.nanocl(&["-n", ns, "get", "cargo", name, "-o", "json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

fn build_status(d: &Daemon, ns: &str, name: &str) -> serde_json::Value {
    cargo_json(d, ns, name)["status"]["build"].clone()
}

/// A cargo that builds `git` (a YAML flow mapping) and publishes 8080 on `port`; a replica
/// counts once up for 2 s (a crash right after its start fails the update).
fn git_cargo(ns: &str, name: &str, git: &str, port: u16) -> String {
    format!(
        "apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  cluster: dev\n  update: {{minReadySeconds: 2}}\n  container:\n    build:\n      git: {git}\n      args: {{GREETING: \"{{{{ vars.GREETING }}}}\"}}\n    ports: [{{containerPort: 8080, hostPort: {port}}}]\n"
    )
}

fn base(ns: &str) -> String {
    format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\napiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\nspec:\n  variables: {{GREETING: bonjour}}\n"
    )
}

fn apply(d: &Daemon, file: &Path, yaml: &str) {
    std::fs::write(file, yaml).expect("write manifest");
    let out = d.nanocl(&["apply", "-f", &file.display().to_string()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "apply: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// `git daemon` serving `base` on a loopback port, killed on drop.
struct GitDaemon(Child);

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn git_daemon(base: &Path, port: u16) -> GitDaemon {
    let child = Command::new("git")
        .args([
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--listen=127.0.0.1",
            &format!("--port={port}"),
            &format!("--base-path={}", base.display()),
            &base.display().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("git daemon starts");
    wait("git daemon", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    GitDaemon(child)
}

fn image_of(container: &str) -> String {
    docker(&["inspect", "-f", "{{.Image}}", container])
}

fn events(d: &Daemon, ns: &str) -> String {
    stdout(&d.nanocl(&["-n", ns, "events"]))
}

#[test]
fn a_git_repository_should_build_run_follow_its_branch_and_say_what_failed() {
    let scope = Scope::new("build");
    let ns = scope.ns.clone();
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let work = tempfile::tempdir().expect("tmp");
    let repo = work.path().join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    git(&repo, &["init", "-q", "-b", "main"]);
    let first = commit(&repo, "version one", DOCKERFILE, "one");
    let manifests = work.path().join("manifests");
    std::fs::create_dir_all(&manifests).expect("mkdir");
    let file = manifests.join("web.yaml");
    let port = free_port();
    let url = repo.display().to_string();
    let yaml = format!(
        "{}---\n{}",
        base(&ns),
        git_cargo(
            &ns,
            "web",
            &format!("{{url: \"{url}\", ref: main, path: site, poll: 1s}}"),
            port
        )
    );

    // Apply: built from the local path, running, serving the committed page.
    apply(&d, &file, &yaml);
    wait(
        "the page of the first commit",
        Duration::from_secs(120),
        || page(port, "/") == "version one",
    );
    let build = build_status(&d, &ns, "web");
    assert_eq!(build["phase"], "Succeeded", "{build:#}");
    assert_eq!(build["commit"], first.as_str(), "{build:#}");
    let tag = format!("nanocl.local/{ns}/web:{}", &first[..12]);
    assert!(
        build["image"]
            .as_str()
            .is_some_and(|i| i.starts_with(&format!("{tag}-"))),
        "tagged by commit (and a suffix for path and args): {build:#}"
    );
    assert_eq!(
        page(port, "/greeting.txt"),
        "bonjour",
        "args rendered from the cluster's variables"
    );
    let web = scope.cargo("web");
    let replica = running(&web).pop().expect("a replica");
    assert_eq!(
        image_of(&replica),
        build["imageId"].as_str().unwrap_or_default()
    );
    let started = build["started"].clone();
    let log = stdout(&d.nanocl(&["-n", &ns, "logs", "cargo", "web", "--build"]));
    assert!(
        log.contains(&format!("building {tag}"))
            && log.contains("Step 1/")
            && log.contains("built nanocl.local/"),
        "the build's output: {log}"
    );

    // The same file again: nothing is built.
    apply(&d, &file, &yaml);
    std::thread::sleep(Duration::from_secs(3));
    let again = build_status(&d, &ns, "web");
    assert_eq!(again["started"], started, "not built again: {again:#}");
    assert_eq!(
        events(&d, &ns).matches("BuildSucceeded").count(),
        1,
        "{}",
        events(&d, &ns)
    );

    // A new commit on the branch: polled, built, rolled out.
    let second = commit(&repo, "version two", DOCKERFILE, "two");
    wait(
        "the page of the second commit",
        Duration::from_secs(120),
        || page(port, "/") == "version two",
    );
    assert_eq!(build_status(&d, &ns, "web")["commit"], second.as_str());

    // A Dockerfile that fails: BuildFailed with the failing step, the old replica serves.
    let broken = DOCKERFILE.replace("CMD", "RUN echo about to fail && exit 3\nCMD");
    // (The page as before: the steps before the failing one are Docker's cached layers, so
    // the failure leaves no untagged image behind.)
    let third = commit(&repo, "version two", &broken, "three");
    wait(
        "the failed build, said on the cargo",
        Duration::from_secs(120),
        || {
            let c = cargo_json(&d, &ns, "web");
            c["status"]["build"]["phase"] == "Failed"
                && c["status"]["build"]["commit"] == third.as_str()
                && condition(&c["status"], "Ready") == ("False".into(), "BuildFailed".into())
        },
    );
    let cargo = cargo_json(&d, &ns, "web");
    let failed = &cargo["status"]["build"];
    let log = failed["log"].to_string();
    assert!(
        log.contains("about to fail"),
        "the output's last lines: {failed:#}"
    );
    assert!(
        failed["message"]
            .as_str()
            .unwrap_or("")
            .contains("returned a non-zero code: 3"),
        "{failed:#}"
    );
    assert_eq!(
        condition(&cargo["status"], "Ready"),
        ("False".into(), "BuildFailed".into()),
        "{cargo:#}"
    );
    assert_eq!(
        page(port, "/"),
        "version two",
        "the previous image still serves"
    );
    let log = stdout(&d.nanocl(&["-n", &ns, "logs", "cargo", "web", "--build", "--tail", "3"]));
    assert_eq!(log.lines().count(), 3, "{log}");
    assert!(
        log.contains("error: The command") && log.contains("non-zero code: 3"),
        "{log}"
    );
    let describe = stdout(&d.nanocl(&["-n", &ns, "describe", "cargo", "web"]));
    assert!(
        describe.contains("Build:")
            && describe.contains("Failed")
            && describe.contains("Events:")
            && describe
                .lines()
                .any(|l| l.contains("Warning") && l.contains("BuildFailed")),
        "{describe}"
    );

    // A commit that builds but crashes: the update fails and rolls back to the image of
    // the revision before, which serves again.
    let crashing = DOCKERFILE.replace(
        "CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]",
        "CMD [\"sh\", \"-c\", \"exit 3\"]",
    );
    assert_ne!(crashing, DOCKERFILE);
    let fourth = commit(&repo, "version four", &crashing, "four");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let c = cargo_json(&d, &ns, "web");
        if c["status"]["build"]["commit"] == fourth.as_str()
            && c["status"]["rollout"]["phase"] == "RolledBack"
        {
            break;
        }
        assert!(Instant::now() < deadline, "no rollback: {:#}", c["status"]);
        std::thread::sleep(Duration::from_millis(200));
    }
    wait(
        "the page of the second commit again",
        Duration::from_secs(60),
        || page(port, "/") == "version two",
    );
    let history = stdout(&d.nanocl(&["-n", &ns, "rollout", "history", "cargo", "web"]));
    assert!(
        history.contains(&format!(":{}", &fourth[..12])),
        "{history}"
    );

    // Bad sources: each says which field and why.
    let bad = [
        (
            "bad-ref",
            format!("{{url: \"{url}\", ref: nope}}"),
            "spec.container.build.git.ref",
            "\"nope\"",
        ),
        (
            "bad-url",
            "{url: \"git://127.0.0.1:9/none\"}".to_owned(),
            "spec.container.build.git.url",
            "git://127.0.0.1:9/none",
        ),
        (
            "bad-path",
            format!("{{url: \"{url}\", path: missing}}"),
            "spec.container.build.git.path",
            "\"missing\"",
        ),
    ];
    let mut bad_yaml = String::new();
    for (name, git, _, _) in &bad {
        bad_yaml.push_str(&format!("---\n{}", git_cargo(&ns, name, git, free_port())));
    }
    apply(&d, &manifests.join("bad.yaml"), &bad_yaml);
    for (name, _, field, detail) in &bad {
        wait(&format!("{name} to fail"), Duration::from_secs(60), || {
            let c = cargo_json(&d, &ns, name);
            c["status"]["build"]["phase"] == "Failed"
                && condition(&c["status"], "Ready") == ("False".into(), "BuildFailed".into())
        });
        let cargo = cargo_json(&d, &ns, name);
        let message = cargo["status"]["build"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(
            message.starts_with(field) && message.contains(detail),
            "{name}: {message}"
        );
        assert_eq!(
            condition(&cargo["status"], "Ready"),
            ("False".into(), "BuildFailed".into()),
            "{cargo:#}"
        );
    }

    // The same repository as file:// and through git daemon.
    let git_port = free_port();
    let _daemon = git_daemon(work.path(), git_port);
    let (file_port, daemon_port) = (free_port(), free_port());
    let others = format!(
        "{}---\n{}",
        git_cargo(
            &ns,
            "via-file",
            &format!("{{url: \"file://{url}\", ref: {second}, path: site}}"),
            file_port
        ),
        git_cargo(
            &ns,
            "via-daemon",
            &format!("{{url: \"git://127.0.0.1:{git_port}/repo\", ref: main, path: site}}"),
            daemon_port
        ),
    );
    // `main` is broken now: the daemon's cargo builds the commit before, by id.
    let others = others.replace(
        "ref: main, path: site}",
        &format!("ref: {second}, path: site}}"),
    );
    apply(&d, &manifests.join("others.yaml"), &others);
    wait(
        "file:// and git:// builds serving",
        Duration::from_secs(120),
        || page(file_port, "/") == "version two" && page(daemon_port, "/") == "version two",
    );

    let out = d.nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// A test of its own: its scope, a nanocld, a work directory and its `app` directory
/// holding `dockerfile`.
fn with_app_dir(
    test: &str,
    dockerfile: &str,
) -> (Scope, Daemon, tempfile::TempDir, std::path::PathBuf) {
    let scope = Scope::new(test);
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let work = tempfile::tempdir().expect("tmp");
    let app = work.path().join("app");
    std::fs::create_dir_all(&app).expect("mkdir");
    std::fs::write(app.join("Dockerfile"), dockerfile).expect("Dockerfile");
    (scope, d, work, app)
}

#[test]
fn a_directory_next_to_the_manifest_should_build_once_per_content() {
    let dockerfile = DOCKERFILE
        .replace("index.html", "page.txt")
        .replace("/www/page.txt", "/www/index.html");
    let (scope, d, work, app) = with_app_dir("ctx", &dockerfile);
    let ns = scope.ns.clone();
    std::fs::write(app.join("page.txt"), "from a directory").expect("page");
    std::fs::write(app.join(".dockerignore"), "*.log\n").expect("ignore");
    let port = free_port();
    let yaml = format!(
        "{}---\napiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: site, namespace: {ns}}}\nspec:\n  cluster: dev\n  container:\n    build: {{context: ./app}}\n    ports: [{{containerPort: 8080, hostPort: {port}}}]\n",
        base(&ns)
    );
    let file = work.path().join("site.yaml");
    apply(&d, &file, &yaml);
    wait("the page", Duration::from_secs(120), || {
        page(port, "/") == "from a directory"
    });
    let live = cargo_json(&d, &ns, "site");
    assert_eq!(
        live["spec"]["container"]["build"]["context"],
        app.display().to_string(),
        "resolved against the manifest's directory"
    );
    let first = live["status"]["build"].clone();
    assert!(
        first["contextHash"]
            .as_str()
            .is_some_and(|h| h.starts_with("sha256:")),
        "{first:#}"
    );

    // An ignored file changes nothing; `nanocl build` looks again and builds nothing new.
    std::fs::write(app.join("debug.log"), "noise").expect("log");
    let out = d.nanocl(&["-n", &ns, "build", "cargo", "site"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    wait("the forced look", Duration::from_secs(30), || {
        let b = build_status(&d, &ns, "site");
        b["phase"] == "Succeeded" && b["key"] != first["key"]
    });
    let b = build_status(&d, &ns, "site");
    assert_eq!(
        b["image"], first["image"],
        "identical content, same image: {b:#}"
    );
    assert_eq!(events(&d, &ns).matches("BuildSucceeded").count(), 1);

    // Changed content: a new image, rolled out; five times: the oldest images go.
    let images = || {
        let mut tags: Vec<String> = docker(&[
            "images",
            "--format",
            "{{.Tag}}",
            "--filter",
            &format!("reference=nanocl.local/{ns}/*"),
        ])
        .lines()
        .map(str::to_owned)
        .collect();
        tags.sort();
        tags
    };
    for n in 1..=5 {
        let content = format!("changed {n}");
        std::fs::write(app.join("page.txt"), &content).expect("page");
        let out = d.nanocl(&["-n", &ns, "build", "cargo", "site"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        wait("the new page", Duration::from_secs(120), || {
            page(port, "/") == content
        });
    }
    let current = build_status(&d, &ns, "site")["image"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    wait("the old images collected", Duration::from_secs(30), || {
        images().len() == 3
    });
    assert!(
        images().iter().any(|t| current.ends_with(&format!(":{t}"))),
        "the running image stays: {:?} {current}",
        images()
    );

    // Follow a slow build from its start to its end.
    let dockerfile = std::fs::read_to_string(app.join("Dockerfile")).expect("read");
    std::fs::write(
        app.join("Dockerfile"),
        format!("{dockerfile}RUN sleep 2 && echo slow step done\n"),
    )
    .expect("Dockerfile");
    let out = d.nanocl(&["-n", &ns, "build", "cargo", "site"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    wait("the slow build to start", Duration::from_secs(30), || {
        build_status(&d, &ns, "site")["phase"] == "Building"
    });
    let followed = d.nanocl(&["-n", &ns, "logs", "cargo", "site", "--build", "-f"]);
    assert_eq!(followed.status.code(), Some(0), "{}", stderr(&followed));
    let text = stdout(&followed);
    assert!(
        text.contains("slow step done")
            && text
                .lines()
                .last()
                .is_some_and(|l| l.starts_with("built nanocl.local/")),
        "followed to the end: {text}"
    );

    // A remote nanocld cannot read this machine's directory: refused before any request
    // (192.0.2.1 is TEST-NET, never reached).
    let out = Command::new(nanocl_e2e::bin_dir().join("nanocl"))
        .args(["apply", "-f", &file.display().to_string()])
        .env("NANOCL_HOST", "tcp://192.0.2.1:9")
        .output()
        .expect("nanocl");
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains(&format!("{}:", file.display()))
            && text.contains("spec.container.build.context:")
            && text.contains("build from git"),
        "{text}"
    );

    // From stdin there is no directory to resolve against: refused, saying why.
    let mut child = Command::new(nanocl_e2e::bin_dir().join("nanocl"))
        .args(["apply", "-f", "-"])
        .env("NANOCL_HOST", &d.host)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nanocl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains("spec.container.build.context") && text.contains("absolute path"),
        "{text}"
    );
    let out = d.nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// busybox httpd serving `git http-backend` for the bare repositories under `repos`, behind
/// basic authentication (`user:password`), on a loopback port; killed on drop.
struct HttpGit(Child);

impl Drop for HttpGit {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_git(root: &Path, repos: &Path, user: &str, password: &str, port: u16) -> HttpGit {
    let www = root.join("www");
    std::fs::create_dir_all(www.join("cgi-bin")).expect("mkdir");
    let git_bin = Command::new("sh")
        .args(["-c", "command -v git"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .expect("git is installed");
    let script = www.join("cgi-bin/git");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexport GIT_PROJECT_ROOT='{}'\nexport GIT_HTTP_EXPORT_ALL=1\nexec '{git_bin}' http-backend\n",
            repos.display()
        ),
    )
    .expect("cgi");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let conf = root.join("httpd.conf");
    std::fs::write(&conf, format!("/cgi-bin:{user}:{password}\n")).expect("conf");
    let child = Command::new("busybox")
        .args(["httpd", "-f", "-p", &format!("127.0.0.1:{port}"), "-h"])
        .arg(&www)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("busybox httpd starts");
    wait("busybox httpd", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    HttpGit(child)
}

#[test]
fn a_private_repository_should_be_read_with_the_credentials_of_a_secret() {
    const PASSWORD: &str = "pr1vate-Passw0rd";
    let scope = Scope::new("gitauth");
    let ns = scope.ns.clone();
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let work = tempfile::tempdir().expect("tmp");
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    git(&src, &["init", "-q", "-b", "main"]);
    commit(&src, "private page", DOCKERFILE, "one");
    let repos = work.path().join("repos");
    std::fs::create_dir_all(&repos).expect("mkdir");
    git(
        work.path(),
        &[
            "clone",
            "-q",
            "--bare",
            &src.display().to_string(),
            &repos.join("site.git").display().to_string(),
        ],
    );
    let http_port = free_port();
    let _server = http_git(work.path(), &repos, "alice", PASSWORD, http_port);
    let url = format!("http://127.0.0.1:{http_port}/cgi-bin/git/site.git");
    let port = free_port();
    let cargo = git_cargo(
        &ns,
        "private",
        &format!("{{url: \"{url}\", path: site, secret: creds}}"),
        port,
    );
    let file = work.path().join("private.yaml");
    let creds = |password: &str| {
        format!("apiVersion: nanocl.io/v1\nkind: Secret\nmetadata: {{name: creds, namespace: {ns}}}\nspec:\n  stringData: {{username: alice, password: \"{password}\"}}\n")
    };
    let failed_with = |what: &str| {
        let c = cargo_json(&d, &ns, "private");
        c["status"]["build"]["phase"] == "Failed"
            && c["status"]["build"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(what))
    };

    // No secret yet; then a wrong password; then the right one.
    apply(&d, &file, &format!("{}---\n{cargo}", base(&ns)));
    wait("the missing secret said", Duration::from_secs(30), || {
        failed_with("spec.container.build.git.secret: secret \"creds\" does not exist")
    });
    apply(
        &d,
        &file,
        &format!("{}---\n{}---\n{cargo}", base(&ns), creds("wrong")),
    );
    wait("the refusal said", Duration::from_secs(30), || {
        failed_with("spec.container.build.git.url: cannot read the git repository")
    });
    apply(
        &d,
        &file,
        &format!("{}---\n{}---\n{cargo}", base(&ns), creds(PASSWORD)),
    );
    wait_explained(
        "the private page",
        Duration::from_secs(120),
        || page(port, "/") == "private page",
        || story(&d, &ns, "private"),
    );

    let everything = [
        stdout(&d.nanocl(&["-n", &ns, "get", "cargo", "private", "-o", "yaml"])),
        stdout(&d.nanocl(&["-n", &ns, "describe", "cargo", "private"])),
        stdout(&d.nanocl(&["-n", &ns, "events"])),
        stdout(&d.nanocl(&["-n", &ns, "logs", "cargo", "private", "--build"])),
        d.log(),
    ]
    .join("\n");
    assert!(
        !everything.contains(PASSWORD),
        "the password shows:\n{everything}"
    );
    let out = d.nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_slow_build_should_time_out_and_give_way_to_a_new_spec() {
    let (scope, d, work, _app) = with_app_dir(
        "slow",
        "FROM busybox:stable\nARG N=1\nARG FAST\nRUN echo \"step $N\" && if [ -z \"$FAST\" ]; then sleep 25; fi\nCMD [\"sleep\", \"3600\"]\n",
    );
    let ns = scope.ns.clone();
    let file = work.path().join("slow.yaml");
    let cargo = |args: &str, timeout: &str| {
        format!(
            "{}---\napiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: slow, namespace: {ns}}}\nspec:\n  cluster: dev\n  container:\n    build: {{context: ./app, args: {{{args}}}, timeout: {timeout}}}\n",
            base(&ns)
        )
    };
    let status = || build_status(&d, &ns, "slow");

    // Longer than its timeout: stopped, failed, and not tried again.
    apply(&d, &file, &cargo("N: \"1\"", "3s"));
    wait("the timeout", Duration::from_secs(60), || {
        let b = status();
        b["phase"] == "Failed"
            && b["message"]
                .as_str()
                .is_some_and(|m| m.contains("took longer than its timeout (3s)"))
    });
    let failed = status();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(status()["finished"], failed["finished"], "not tried again");

    // A spec that changes mid-build: the running build gives way at once (a build that
    // ran to its end would hold the builder's slot for this cargo 25 s).
    apply(&d, &file, &cargo("N: \"2\"", "5m"));
    wait("the second build", Duration::from_secs(30), || {
        status()["phase"] == "Building"
    });
    apply(&d, &file, &cargo("N: \"3\", FAST: \"yes\"", "5m"));
    wait(
        "the third build, the second one cancelled",
        Duration::from_secs(15),
        || status()["phase"] == "Succeeded",
    );
    let log = stdout(&d.nanocl(&["-n", &ns, "logs", "cargo", "slow", "--build"]));
    assert!(log.contains("step 3") && !log.contains("step 2"), "{log}");
    wait("the replica", Duration::from_secs(60), || {
        running(&scope.cargo("slow")).len() == 1
    });
    let out = d.nanocl(&["delete", "ns", &ns, "--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
