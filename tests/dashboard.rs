//! The dashboard at `/ui`, in a real headless Chromium driven over WebDriver
//! (chromedriver, both from Debian, installed by `make dev-env`): the page loads and shows a
//! cargo this test applied with its replicas ready, updates by itself when a replica's
//! container is killed (the watch API; the page never polls), and its Scale button scales
//! the cargo. A screenshot is kept in `target/test-artifacts/dashboard.png`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nanocl_e2e::docker::{docker, running, Scope};
use nanocl_e2e::hosts::free_port;
use nanocl_e2e::{bin_dir, stderr, stdout, test_image, Daemon, StoreKind};
use serde_json::{json, Value};

/// One WebDriver request to chromedriver on `port`: the answer's JSON.
fn webdriver(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("chromedriver answers");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    // One request per connection (chromedriver speaks HTTP/1.1 only).
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("request");
    // The answer's length is in its head (Content-Length, or chunks).
    let mut reader = std::io::BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut reader, &mut line).expect("answer");
        if n == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let mut body = Vec::new();
    if head.contains("transfer-encoding: chunked") {
        loop {
            let mut size = String::new();
            std::io::BufRead::read_line(&mut reader, &mut size).expect("chunk size");
            let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).expect("chunk");
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or_else(|| panic!("{method} {path}: no length in {head}"));
        body.resize(length, 0);
        reader.read_exact(&mut body).expect("body");
    }
    serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}: {}", String::from_utf8_lossy(&body)))
}

/// chromedriver's process group, killed on drop (the browsers it started with it).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.wait();
    }
}

/// A headless Chromium session; chromedriver and the browser stop on drop.
struct Browser {
    _driver: Driver,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let port = free_port();
        // A process group of its own: chromedriver and the browser it starts stop together,
        // whatever happens to the session.
        use std::os::unix::process::CommandExt;
        let driver = Driver(
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("chromedriver runs (package chromium-driver; `make dev-env` installs it)"),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().expect("tempdir");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,1000", "--no-first-run", "--disable-extensions",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        }}});
        let created = webdriver(port, "POST", "/session", Some(&capabilities));
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Browser {
            _driver: driver,
            port,
            session,
            _profile: profile,
        }
    }

    fn go(&self, url: &str) {
        let path = format!("/session/{}/url", self.session);
        let answer = webdriver(self.port, "POST", &path, Some(&json!({ "url": url })));
        assert!(answer["value"].is_null(), "{answer}");
    }

    /// Runs `script` in the page; its return value.
    fn run(&self, script: &str) -> Value {
        let path = format!("/session/{}/execute/sync", self.session);
        let answer = webdriver(
            self.port,
            "POST",
            &path,
            Some(&json!({ "script": script, "args": [] })),
        );
        answer["value"].clone()
    }

    /// Waits until `script` returns `expected` (what it returned last, on failure).
    fn wait_for(&self, what: &str, script: &str, expected: &Value) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let got = self.run(script);
            if &got == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: the page says {got}; its text:\n{}",
                self.run("return document.body.innerText")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn screenshot(&self, to: &std::path::Path) {
        use base64::Engine as _;
        let path = format!("/session/{}/screenshot", self.session);
        let answer = webdriver(self.port, "GET", &path, None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(answer["value"].as_str().unwrap_or_default())
            .expect("a base64 PNG");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).expect("artifact directory");
        }
        std::fs::write(to, png).expect("screenshot written");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Closing the session closes the browser; the driver's group goes with `driver`.
        let path = format!("/session/{}", self.session);
        let _ = std::panic::catch_unwind(|| webdriver(self.port, "DELETE", &path, None));
    }
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

#[test]
fn the_dashboard_should_show_a_cargo_update_live_and_scale_it() {
    // Declared first, dropped last: nanocld stops before its containers are removed.
    let scope = Scope::new("ui");
    let port = free_port();
    let d = Daemon::start_with(
        StoreKind::Embedded,
        &["--listen", &format!("tcp://127.0.0.1:{port}")],
    );
    let file = d.dir.path().join("web.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
             apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n---\n\
             apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: web, namespace: {ns}}}\n\
             spec:\n  cluster: dev\n  replicas: 2\n  container:\n    image: {image}\n    \
             command: [httpd, -f, -p, \"8080\"]\n",
            ns = scope.ns,
            image = test_image()
        ),
    )
    .expect("write");
    ok(&d.nanocl(&["apply", "-f", &file.display().to_string(), "--wait"]));

    let browser = Browser::start();
    browser.go(&format!(
        "http://127.0.0.1:{port}/ui?namespace={}",
        scope.ns
    ));
    browser.wait_for(
        "the page to follow the namespace live",
        "return document.querySelector('#connection').dataset.state",
        &json!("live"),
    );
    let ready = "return document.querySelector('[data-cargo=\"web\"] .ready')?.textContent ?? null";
    browser.wait_for("web to show 2/2 ready", ready, &json!("2/2"));
    let rows = "return document.querySelectorAll('[data-cargo=\"web\"] tr[data-slot]').length";
    assert_eq!(browser.run(rows), json!(2));
    let cell = |slot: u32, field: &str| {
        format!(
            "return document.querySelector('[data-cargo=\"web\"] tr[data-slot=\"{slot}\"] [data-field=\"{field}\"]')?.textContent ?? null"
        )
    };
    assert_eq!(browser.run(&cell(0, "phase")), json!("Running"));
    let before = browser.run(&cell(0, "container"));

    // A replica's container is killed: the page shows it replaced, by itself.
    let slot0: Vec<String> = running(&scope.cargo("web"))
        .into_iter()
        .filter(|name| {
            docker(&[
                "inspect",
                "-f",
                "{{index .Config.Labels \"io.nanocl.slot\"}}",
                name,
            ])
            .trim()
                == "0"
        })
        .collect();
    assert_eq!(slot0.len(), 1, "one container of slot 0: {slot0:?}");
    docker(&["kill", &slot0[0]]);
    let changed = format!(
        "const c = document.querySelector('[data-cargo=\"web\"] tr[data-slot=\"0\"]'); \
         return c !== null && (c.querySelector('[data-field=\"restarts\"]').textContent !== '0' \
           || c.querySelector('[data-field=\"container\"]').textContent !== {before}) \
           && c.querySelector('[data-field=\"phase\"]').textContent === 'Running'"
    );
    browser.wait_for(
        "the killed replica to show as replaced",
        &changed,
        &json!(true),
    );
    browser.wait_for("web to be 2/2 again", ready, &json!("2/2"));
    let events = "return document.querySelectorAll('#events tbody tr').length > 0";
    browser.wait_for("events to show", events, &json!(true));

    // The Scale button, through the same API.
    browser.run(
        "const i = document.querySelector('input[data-scale=\"web\"]'); i.value = '3'; \
         document.querySelector('[data-cargo=\"web\"] button[data-action=\"scale\"]').click(); return null",
    );
    browser.wait_for("web to show 3/3 ready", ready, &json!("3/3"));
    let spec = ok(&d.nanocl(&["-n", &scope.ns, "get", "cargo", "web", "-o", "json"]));
    let spec: Value = serde_json::from_str(&spec).expect("JSON");
    assert_eq!(spec["spec"]["replicas"], 3);

    // A replica's logs, followed in the page.
    browser.run(
        "document.querySelector('[data-cargo=\"web\"] tr[data-slot=\"0\"] button').click(); return null",
    );
    browser.wait_for(
        "the logs panel of web-0",
        "return document.querySelector('#logs-panel').hidden === false && document.querySelector('#logs-title').textContent",
        &json!("web-0"),
    );

    // A second revision, then the Rollout undo button takes the first one back.
    let changed = std::fs::read_to_string(&file)
        .expect("read")
        .replace("    command:", "    env: {MODE: two}\n    command:");
    std::fs::write(&file, changed).expect("write");
    ok(&d.nanocl(&["apply", "-f", &file.display().to_string(), "--wait"]));
    browser.run(
        "document.querySelector('[data-cargo=\"web\"] button[data-action=\"undo\"]').click(); return null",
    );
    browser.wait_for(
        "the page to say it rolls back",
        "return document.querySelector('#notice').textContent",
        &json!("web: rolling back to revision 1"),
    );
    let spec = ok(&d.nanocl(&["-n", &scope.ns, "get", "cargo", "web", "-o", "json"]));
    let spec: Value = serde_json::from_str(&spec).expect("JSON");
    assert!(
        spec["spec"]["container"].get("env").is_none(),
        "revision 1's container: {}",
        spec["spec"]["container"]
    );
    ok(&d.nanocl(&[
        "-n",
        &scope.ns,
        "rollout",
        "status",
        "cargo",
        "web",
        "--timeout",
        "90s",
    ]));
    // The logs panel followed web-0 through its replacements, and web-0 only.
    browser.wait_for(
        "the logs panel to follow web-0 into its new container",
        "return document.querySelector('#logs').textContent.includes('[web-0] --- following')",
        &json!(true),
    );
    let logs = browser.run("return document.querySelector('#logs').textContent");
    assert!(
        !logs.as_str().unwrap_or_default().contains("[web-1]"),
        "{logs}"
    );

    let artifact = bin_dir().join("../test-artifacts/dashboard.png");
    browser.screenshot(&artifact);
    drop(browser);
    ok(&d.nanocl(&["delete", "namespace", &scope.ns, "--wait"]));
}
