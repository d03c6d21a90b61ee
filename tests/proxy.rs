//! The node proxy end to end, against a real nanocld and dockerd: one HTTP listener routes
//! by host and by path to two cargoes, an unknown host gets the proxy's 404, requests spread
//! over the replicas, a TCP listener streams to an echo, a replica killed under a loop of
//! requests costs none of them, and a route change is served without a restart; a rollout
//! under load fails no request, sends none to a replica before its health check passes, and
//! lets a slow request to the replaced replica finish.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use nanocl_e2e::docker::{docker, running, wait_until, Scope};
use nanocl_e2e::{stderr, stdout, test_image, Daemon, StoreKind};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `GET path` with `Host: host` on 127.0.0.1:`port`: the status code and the body.
fn get(port: u16, host: &str, path: &str) -> Option<(u16, String)> {
    nanocl_e2e::http_get(port, host, path)
}

/// Two `GET /` with `Host: host` one after the other on one connection to 127.0.0.1:`port`
/// (the replicas, busybox httpd, close theirs after each response): both statuses.
fn twice_on_one_connection(port: u16, host: &str) -> Vec<u16> {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return Vec::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut statuses = Vec::new();
    for _ in 0..2 {
        if write!(stream, "GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").is_err() {
            break;
        }
        // The head, then the body by its length.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return statuses,
            }
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        if stream.read_exact(&mut body).is_err() {
            return statuses;
        }
        if let Some(status) = head.split(' ').nth(1).and_then(|s| s.parse().ok()) {
            statuses.push(status);
        }
    }
    statuses
}

fn cargo(ns: &str, name: &str, replicas: u32, script: &str) -> String {
    format!(
        "---\napiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: {name}, namespace: {ns}}}\n\
         spec:\n  cluster: dev\n  replicas: {replicas}\n  container:\n    image: {}\n    \
         command: [sh, -c, '{script}']\n",
        test_image()
    )
}

fn rule(ns: &str, http: u16, tcp: u16, api_path: &str) -> String {
    format!(
        "---\napiVersion: nanocl.io/v1\nkind: ProxyRule\nmetadata: {{name: front, namespace: {ns}}}\n\
         spec:\n  cluster: dev\n  listeners:\n    - {{port: {http}}}\n    - {{port: {tcp}, protocol: tcp}}\n  \
         http:\n    - {{host: \"{{{{ vars.DOMAIN }}}}\", cargo: web, port: 8080}}\n    \
         - {{host: \"{{{{ vars.DOMAIN }}}}\", path: {api_path}, cargo: api, port: 8080}}\n    \
         - {{host: \"*.apps.test\", cargo: api, port: 8080}}\n  \
         tcp:\n    - {{listener: {tcp}, cargo: echo, port: 9000}}\n"
    )
}

fn apply(d: &Daemon, file: &std::path::Path, yaml: &str) {
    std::fs::write(file, yaml).expect("write");
    let out = d.nanocl(&["apply", "-f", &file.display().to_string()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn the_proxy_should_route_by_host_path_and_port_to_ready_replicas() {
    let scope = Scope::new("proxy");
    let ns = scope.ns.clone();
    // The access log is at info, the tests' nanocld logs warnings only: this one both.
    let d = Daemon::start_configured(&[], &[("NANOCL_LOG", "warn,nanocl::access=info")]);
    let (http, tcp) = (free_port(), free_port());
    let file = d.dir.path().join("proxy.yaml");
    let web = "mkdir -p /www && echo web $(cat /etc/hostname) > /www/index.html && exec httpd -f -p 8080 -h /www";
    let api = "mkdir -p /www/api /www/v2 && echo api-root > /www/index.html && echo api > /www/api/index.html && echo api-v2 > /www/v2/index.html && exec httpd -f -p 8080 -h /www";
    let echo = "while true; do nc -l -p 9000 -e cat; done";
    let manifests = |api_path: &str| {
        format!(
            "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
             apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n\
             spec: {{variables: {{DOMAIN: web.test}}}}\n{}{}{}{}",
            cargo(&ns, "web", 3, web),
            cargo(&ns, "api", 1, api),
            cargo(&ns, "echo", 1, echo),
            rule(&ns, http, tcp, api_path)
        )
    };
    apply(&d, &file, &manifests("/api"));
    wait_until("the replicas", || {
        running(&scope.cargo("web")).len() == 3
            && running(&scope.cargo("api")).len() == 1
            && running(&scope.cargo("echo")).len() == 1
    });

    // By host (from the cluster's variable), by path, by wildcard host; others: 404.
    wait_until("the web cargo behind the proxy", || {
        get(http, "web.test", "/").is_some_and(|(s, b)| s == 200 && b.starts_with("web "))
    });
    assert_eq!(
        get(http, "web.test", "/api/"),
        Some((200, "api\n".to_owned()))
    );
    assert_eq!(
        get(http, "WEB.test:8080", "/api/index.html"),
        Some((200, "api\n".to_owned())),
        "the host without its port, any case"
    );
    assert_eq!(
        get(http, "shop.apps.test", "/"),
        Some((200, "api-root\n".to_owned()))
    );
    let (status, body) = get(http, "other.test", "/").expect("an answer, not a hang");
    assert_eq!(status, 404, "{body}");
    // The client's connection is kept alive though each replica closes its own.
    assert_eq!(twice_on_one_connection(http, "web.test"), [200, 200]);
    assert!(body.contains("no route for host \"other.test\""), "{body}");

    // Requests spread over the three replicas, once all three are ready.
    wait_until("every web replica served", || {
        let seen: std::collections::BTreeSet<String> = (0..12)
            .filter_map(|_| get(http, "web.test", "/"))
            .map(|(_, b)| b)
            .collect();
        seen.len() == 3
    });

    // TCP: an echo.
    wait_until("the echo behind the tcp listener", || {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", tcp)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"hello proxy\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).is_ok() && &buf == b"hello proxy\n"
    });

    // A replica killed under a loop of requests: none of them fails.
    let victim = running(&scope.cargo("web")).pop().expect("a replica");
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        docker(&["kill", &victim]);
    });
    let mut failed = Vec::new();
    for i in 0..60 {
        match get(http, "web.test", "/") {
            Some((200, body)) if body.starts_with("web ") => {}
            other => failed.push(format!("request {i}: {other:?}")),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    killer.join().expect("killed");
    assert!(failed.is_empty(), "failed requests: {failed:?}");

    // What it answered, per rule, in /metrics (the proxy process's counts, fetched every
    // second).
    let rule = format!("{ns}/front");
    wait_until("the proxy's counts in /metrics", || {
        let metrics = d.metrics();
        metrics.contains(&format!(
            "nanocl_proxy_requests_total{{rule=\"{rule}\",class=\"2xx\"}}"
        )) && metrics.contains("nanocl_proxy_requests_total{rule=\"<none>\",class=\"4xx\"}")
    });
    let metrics = d.metrics();
    assert!(
        metrics.contains(&format!(
            "nanocl_proxy_request_duration_seconds_bucket{{rule=\"{rule}\",le=\"+Inf\"}}"
        )),
        "{metrics}"
    );
    // And an access log line per request, JSON.
    let log = d.log();
    let line = log
        .lines()
        .find(|l| l.contains("nanocl::access") && l.contains("\"status\":404"))
        .unwrap_or_else(|| panic!("no access line of the 404 in:\n{log}"));
    let json: serde_json::Value = serde_json::from_str(&line[line.find('{').unwrap_or(0)..])
        .unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(json["host"], "other.test", "{line}");
    assert_eq!(json["listener"], format!("127.0.0.1:{http}"), "{line}");
    wait_until("the killed replica back in rotation", || {
        d.metrics().contains(&format!(
            "nanocl_proxy_ready_backends{{rule=\"{rule}\",cargo=\"{ns}/web\"}} 3"
        ))
    });

    // A route change is served at once, by the same proxy.
    apply(&d, &file, &manifests("/v2"));
    wait_until("the new path routed", || {
        get(http, "web.test", "/v2/") == Some((200, "api-v2\n".to_owned()))
    });
    let (_, body) = get(http, "web.test", "/api/").expect("an answer");
    assert_ne!(body, "api\n", "/api is the web cargo's now");
    let table = stdout(&d.nanocl(&["-n", &ns, "get", "proxyrules", "-o", "wide"]));
    assert!(
        table.contains("READY-BACKENDS") && table.contains(&format!("127.0.0.1:{http}/http")),
        "{table}"
    );
    assert!(
        table.contains("{{ vars.DOMAIN }}/→web:8080") && table.contains("web:3"),
        "{table}"
    );
}

#[test]
fn a_proxy_rule_should_be_validated_with_located_errors() {
    let d = Daemon::start(StoreKind::Embedded);
    let file = d.dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: nanocl.io/v1\nkind: ProxyRule\nmetadata: {name: bad}\nspec:\n  cluster: dev\n  \
         listeners:\n    - {port: 8080, httpsRedirect: 8082}\n    - {port: 8081, protocol: https}\n  \
         http:\n    - {host: \"bad host\", cargo: web, port: 80}\n    - {listener: 9999, cargo: web, port: 80}\n    \
         - {host: r.test, cargo: web, port: 80, redirect: {url: \"ftp://x\"}, requestHeaders: {remove: [Content-Length]}, maxBodySize: lots}\n  \
         tcp:\n    - {listener: 8080, cargo: db, port: 5432}\n",
    )
    .expect("write");
    let out = d.nanocl(&["apply", "-f", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for expected in [
        "spec.listeners[0].httpsRedirect: 8082 is not an https listener of this rule",
        "spec.listeners[1].protocol: an https listener needs a certificate: tls: [{secret: NAME}]",
        "spec.http[0].host: invalid host \"bad host\"",
        "spec.http[1].listener: 9999 is not an http or https listener of this rule",
        "spec.tcp[0].listener: 8080 is not a tcp listener of this rule",
        "spec.http[2].redirect: a redirect answers by itself: leave cargo and port out",
        "spec.http[2].redirect.url: invalid url \"ftp://x\"",
        "spec.http[2].requestHeaders.remove[0]: \"Content-Length\" is HTTP's own framing",
        "spec.http[2].maxBodySize: invalid memory size \"lots\"",
    ] {
        assert!(err.contains(expected), "{expected}: {err}");
    }
    assert!(err.contains("bad.yaml:"), "located: {err}");

    // Two rules claiming the same listener, host and path: the second is refused, naming the
    // first; another host on the same listener is fine.
    let rule = |name: &str, host: &str| {
        format!(
            "apiVersion: nanocl.io/v1\nkind: ProxyRule\nmetadata: {{name: {name}}}\nspec:\n  cluster: dev\n  \
             listeners: [{{port: 18999}}]\n  http: [{{host: {host}, cargo: web, port: 80}}]\n"
        )
    };
    for (name, host, code) in [("a", "a.test", 0), ("b", "a.test", 1), ("c", "c.test", 0)] {
        std::fs::write(&file, rule(name, host)).expect("write");
        let out = d.nanocl(&["apply", "-f", &file.display().to_string()]);
        assert_eq!(out.status.code(), Some(code), "{name}: {}", stderr(&out));
        if code == 1 {
            let err = stderr(&out);
            assert!(
                err.contains("spec.http[0]")
                    && err.contains("host \"a.test\" path \"/\"")
                    && err.contains("proxyrule global/a"),
                "{err}"
            );
        }
    }
}

/// What a loop of requests saw.
#[derive(Debug, Default)]
struct Seen {
    ok: usize,
    /// Bodies by count (`v1 <host>`, ...).
    bodies: std::collections::BTreeMap<String, usize>,
    /// Everything else: non-200 answers, socket errors, a replica answering before it was
    /// ready.
    failed: Vec<String>,
}

/// Loops of requests from `threads` clients until `stop`: what they saw.
fn load(
    port: u16,
    host: &'static str,
    threads: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Seen> {
    std::thread::spawn(move || {
        let clients: Vec<_> = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut seen = Seen::default();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        match get(port, host, "/") {
                            Some((200, body)) if !body.starts_with("early") => {
                                seen.ok += 1;
                                *seen.bodies.entry(body.trim().to_owned()).or_default() += 1;
                            }
                            other => seen.failed.push(format!("{other:?}")),
                        }
                    }
                    seen
                })
            })
            .collect();
        let mut all = Seen::default();
        for c in clients {
            let seen = c.join().expect("a client");
            all.ok += seen.ok;
            for (b, n) in seen.bodies {
                *all.bodies.entry(b).or_default() += n;
            }
            all.failed.extend(seen.failed);
        }
        all
    })
}

#[test]
fn a_rollout_under_load_should_fail_no_request_and_send_none_before_the_health_check_passes() {
    let scope = Scope::new("proxy-roll");
    let ns = scope.ns.clone();
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let http = free_port();
    let file = d.dir.path().join("roll.yaml");
    // Each replica answers `early` from its start, and its version only once its health
    // check passes: an `early` through the proxy is a request sent before readiness.
    let manifests = |version: &str| {
        format!(
            "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
             apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n---\n\
             apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: web, namespace: {ns}}}\n\
             spec:\n  cluster: dev\n  replicas: 1\n  container:\n    image: {}\n    \
             env: {{VERSION: {version}}}\n    \
             command: [sh, -c, 'mkdir -p /www/cgi-bin && printf \"#!/bin/sh\\nsleep 4\\necho Content-Type: text/plain\\necho\\necho slow $VERSION\\n\" > /www/cgi-bin/slow && chmod +x /www/cgi-bin/slow && echo early > /www/index.html && (httpd -f -p 8080 -h /www &) && sleep 2 && echo $VERSION $(hostname) > /www/index.html && touch /tmp/ready && exec sleep 600']\n    \
             healthcheck: {{command: [sh, -c, \"test -f /tmp/ready\"], interval: 1s, timeout: 1s, retries: 1, startPeriod: 5s}}\n---\n\
             apiVersion: nanocl.io/v1\nkind: ProxyRule\nmetadata: {{name: front, namespace: {ns}}}\n\
             spec:\n  cluster: dev\n  listeners: [{{port: {http}}}]\n  http: [{{host: roll.test, cargo: web, port: 8080}}]\n",
            test_image()
        )
    };
    apply(&d, &file, &manifests("v1"));
    wait_until("v1 behind the proxy", || {
        get(http, "roll.test", "/").is_some_and(|(s, b)| s == 200 && b.starts_with("v1 "))
    });

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loader = load(http, "roll.test", 4, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    apply(&d, &file, &manifests("v2"));
    // A slow request (4 s) to the old replica, still in flight when its successor is ready
    // (about 3 s from now): it finishes before the old replica is removed.
    let slow = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(800));
        get(http, "roll.test", "/cgi-bin/slow")
    });
    wait_until("v2 alone behind the proxy", || {
        running(&scope.cargo("web")).len() == 1
            && get(http, "roll.test", "/").is_some_and(|(s, b)| s == 200 && b.starts_with("v2 "))
    });
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = loader.join().expect("the load");
    let slow = slow.join().expect("the slow request");
    assert!(
        slow.as_ref()
            .is_some_and(|(s, b)| *s == 200 && b.contains("slow v1\n")),
        "drained, not cut: {slow:?}"
    );
    assert!(
        seen.failed.is_empty(),
        "{} of {} requests failed: {:?}",
        seen.failed.len(),
        seen.ok + seen.failed.len(),
        &seen.failed[..seen.failed.len().min(20)]
    );
    let versions: std::collections::BTreeSet<&str> = seen
        .bodies
        .keys()
        .filter_map(|b| b.split(' ').next())
        .collect();
    assert_eq!(
        versions,
        ["v1", "v2"].into(),
        "both versions served: {:?}",
        seen.bodies
    );
    assert!(seen.ok > 50, "a real load: {seen:?}");
}

/// A test CA, and certificates it signs: (CA PEM, [(certificate PEM, key PEM)]).
fn certificates(names: &[&[&str]]) -> (String, Vec<(String, String)>) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "nanocl proxy test CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a CA key"))
        .expect("the CA");
    let issued = names
        .iter()
        .map(|sans| {
            let key = KeyPair::generate().expect("a key");
            let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
            let cert = CertificateParams::new(sans)
                .expect("params")
                .signed_by(&key, &ca)
                .expect("signed");
            (cert.pem(), key.serialize_pem())
        })
        .collect();
    (ca.pem(), issued)
}

/// `GET /` over TLS to 127.0.0.1:`port` asking for `name` (SNI and Host), trusting only
/// `ca`: the status and body, or why the handshake or exchange failed.
fn https_get(port: u16, name: &str, ca: &str) -> Result<(u16, String), String> {
    https_get_path(port, name, "/", ca)
}

/// `GET path` over TLS to 127.0.0.1:`port` asking for `name`, trusting only `ca`.
fn https_get_path(port: u16, name: &str, path: &str, ca: &str) -> Result<(u16, String), String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls_pki_types::CertificateDer::from_pem_slice(ca.as_bytes())
        .map_err(|e| e.to_string())?;
    roots.add(ca).map_err(|e| e.to_string())?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server =
        rustls_pki_types::ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), server)
        .map_err(|e| e.to_string())?;
    let sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, sock);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    match tls.read_to_end(&mut out) {
        Ok(_) => {}
        // A peer that closes without close_notify: what it sent is what it sent.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    let response = String::from_utf8_lossy(&out);
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP response: {response}"))?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((status, body.to_owned()))
}

/// A tls Secret's manifest.
fn tls_secret(ns: &str, name: &str, (crt, key): &(String, String)) -> String {
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("      {l}\n"))
            .collect::<String>()
    };
    format!(
        "---\napiVersion: nanocl.io/v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\n\
         spec:\n  type: tls\n  stringData:\n    tls.crt: |\n{}    tls.key: |\n{}",
        indent(crt),
        indent(key)
    )
}

#[test]
fn https_should_serve_the_certificate_of_the_name_asked_and_http_should_redirect_to_it() {
    let scope = Scope::new("proxy-tls");
    let ns = scope.ns.clone();
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let (https, http) = (free_port(), free_port());
    let (ca, issued) = certificates(&[&["secure.test"], &["*.other.test"]]);
    let file = d.dir.path().join("tls.yaml");
    let yaml = format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n\
         spec: {{variables: {{DOMAIN: secure.test}}}}\n{}{}{}\
         ---\napiVersion: nanocl.io/v1\nkind: ProxyRule\nmetadata: {{name: front, namespace: {ns}}}\n\
         spec:\n  cluster: dev\n  listeners:\n    - {{port: {https}, protocol: https}}\n    \
         - {{port: {http}, httpsRedirect: {https}}}\n  \
         http:\n    - {{host: \"{{{{ vars.DOMAIN }}}}\", cargo: web, port: 8080}}\n    \
         - {{host: \"*.other.test\", cargo: web, port: 8080}}\n  \
         tls:\n    - {{hosts: [\"{{{{ vars.DOMAIN }}}}\"], secret: secure-cert}}\n    \
         - {{hosts: [\"*.other.test\"], secret: other-cert}}\n",
        tls_secret(&ns, "secure-cert", &issued[0]),
        tls_secret(&ns, "other-cert", &issued[1]),
        cargo(
            &ns,
            "web",
            1,
            "mkdir -p /www && echo secure web > /www/index.html && exec httpd -f -p 8080 -h /www"
        ),
    );
    apply(&d, &file, &yaml);
    wait_until("the web cargo behind https", || {
        https_get(https, "secure.test", &ca).is_ok_and(|(s, b)| s == 200 && b == "secure web\n")
    });
    // The other name gets its own certificate (the client checks it names the host).
    assert_eq!(
        https_get(https, "shop.other.test", &ca),
        Ok((200, "secure web\n".to_owned()))
    );
    // A name no certificate serves (and no default): the handshake fails, nothing is sent.
    let refused = https_get(https, "unknown.test", &ca).expect_err("no certificate for it");
    assert!(refused.contains("received fatal alert"), "{refused}");
    // Plain HTTP is redirected, path and query kept.
    let (status, body) = get(http, "secure.test", "/x?y=1").expect("an answer");
    assert_eq!(status, 308, "{body}");
    assert!(
        body.contains(&format!("https://secure.test:{https}/x?y=1")),
        "{body}"
    );
    // A certificate that is not one: said on the rule, the others keep serving.
    let broken = tls_secret(
        &ns,
        "secure-cert",
        &("not a certificate".to_owned(), issued[0].1.clone()),
    );
    apply(
        &d,
        &file,
        &yaml.replace(&tls_secret(&ns, "secure-cert", &issued[0]), &broken),
    );
    wait_until("the broken certificate said", || {
        stdout(&d.nanocl(&["-n", &ns, "describe", "proxyrule", "front"]))
            .contains("certificate left out: secret \"secure-cert\": tls.crt")
    });
    assert_eq!(
        https_get(https, "shop.other.test", &ca),
        Ok((200, "secure web\n".to_owned()))
    );
}

/// A Pebble (Let's Encrypt's test ACME server) and its mock DNS, answering 127.0.0.1 for
/// every name, on loopback; both stopped on drop.
struct Pebble {
    children: Vec<std::process::Child>,
    /// The ACME directory URL.
    directory: String,
    /// Pebble's management port (its roots).
    management: u16,
    /// The CA of Pebble's own HTTPS certificate (PEM), and its file.
    ca: String,
    ca_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Pebble {
    /// Validates http-01 challenges on 127.0.0.1:`http_port`.
    fn start(http_port: u16) -> Pebble {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (ca, issued) = certificates(&[&["localhost", "127.0.0.1"]]);
        let (crt, key) = &issued[0];
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("ca.pem"), &ca).expect("write");
        std::fs::write(path("cert.pem"), crt).expect("write");
        std::fs::write(path("key.pem"), key).expect("write");
        let (acme, management, dns, tls) = (free_port(), free_port(), free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{acme}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": path("cert.pem"),
            "privateKey": path("key.pem"),
            "httpPort": http_port,
            "tlsPort": tls,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        std::fs::write(path("pebble.json"), config.to_string()).expect("write");
        let log = |name: &str| std::fs::File::create(path(name)).expect("a log file");
        let dns_server = std::process::Command::new("pebble-challtestsrv")
            .args([
                "-dns01",
                &format!("127.0.0.1:{dns}"),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                &format!("127.0.0.1:{}", free_port()),
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
            ])
            .stdout(log("dns.log"))
            .stderr(log("dns.err"))
            .spawn()
            .expect("pebble-challtestsrv (package pebble; make dev-env installs it)");
        let pebble = std::process::Command::new("pebble")
            .args([
                "-config",
                &path("pebble.json").display().to_string(),
                "-dnsserver",
                &format!("127.0.0.1:{dns}"),
            ])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("pebble (package pebble; make dev-env installs it)");
        let me = Pebble {
            children: vec![dns_server, pebble],
            directory: format!("https://127.0.0.1:{acme}/dir"),
            management,
            ca,
            ca_file: path("ca.pem"),
            _dir: dir,
        };
        wait_until("pebble answering", || {
            https_get_path(acme, "localhost", "/dir", &me.ca).is_ok_and(|(s, _)| s == 200)
        });
        me
    }

    /// The root of the certificates Pebble issues (PEM).
    fn root(&self) -> String {
        let (status, body) = https_get_path(self.management, "localhost", "/roots/0", &self.ca)
            .expect("pebble's root");
        assert_eq!(status, 200, "{body}");
        body
    }

    fn logs(&self) -> String {
        ["pebble.log", "pebble.err"]
            .iter()
            .map(|f| std::fs::read_to_string(self._dir.path().join(f)).unwrap_or_default())
            .collect()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn an_acme_certificate_should_be_obtained_over_http_01_and_served() {
    let scope = Scope::new("proxy-acme");
    let ns = scope.ns.clone();
    let (https, http) = (free_port(), free_port());
    let pebble = Pebble::start(http);
    let ca_file = pebble.ca_file.display().to_string();
    let d = Daemon::start_with(
        StoreKind::Embedded,
        &[
            "--acme-directory",
            &pebble.directory,
            "--acme-ca-file",
            &ca_file,
        ],
    );
    let file = d.dir.path().join("acme.yaml");
    let yaml = format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n\
         spec: {{variables: {{DOMAIN: acme.test}}}}\n{}\
         ---\napiVersion: nanocl.io/v1\nkind: ProxyRule\nmetadata: {{name: front, namespace: {ns}}}\n\
         spec:\n  cluster: dev\n  listeners:\n    - {{port: {https}, protocol: https}}\n    \
         - {{port: {http}, httpsRedirect: {https}}}\n  \
         http:\n    - {{host: \"{{{{ vars.DOMAIN }}}}\", cargo: web, port: 8080}}\n  \
         tls:\n    - {{hosts: [\"{{{{ vars.DOMAIN }}}}\"], acme: true, secret: acme-cert}}\n",
        cargo(
            &ns,
            "web",
            1,
            "mkdir -p /www && echo acme web > /www/index.html && exec httpd -f -p 8080 -h /www"
        ),
    );
    apply(&d, &file, &yaml);
    let root = pebble.root();
    wait_until("the ACME certificate served", || {
        https_get(https, "acme.test", &root).is_ok_and(|(s, b)| s == 200 && b == "acme web\n")
    });
    let describe = stdout(&d.nanocl(&["-n", &ns, "get", "proxyrule", "front", "-o", "json"]));
    let rule: serde_json::Value = serde_json::from_str(&describe).expect("json");
    let cert = &rule["status"]["certificates"][0];
    assert_eq!(cert["state"], "Valid", "{describe}\n{}", pebble.logs());
    assert_eq!(
        cert["hosts"],
        serde_json::json!(["acme.test"]),
        "{describe}"
    );
    assert!(
        cert["notAfter"].is_string() && cert["renewAfter"].is_string(),
        "{describe}"
    );
    assert!(
        rule["status"].get("challenges").is_none(),
        "challenges cleared once answered: {describe}"
    );
    // Kept in the Secret the rule names, labelled as the rule's.
    let secret = stdout(&d.nanocl(&["-n", &ns, "get", "secret", "acme-cert", "-o", "json"]));
    let secret: serde_json::Value = serde_json::from_str(&secret).expect("json");
    assert_eq!(secret["spec"]["type"], "tls", "{secret}");
    assert_eq!(
        secret["metadata"]["labels"]["io.nanocl.acme"],
        format!("{ns}/front"),
        "{secret}"
    );
    let events = stdout(&d.nanocl(&["-n", &ns, "describe", "proxyrule", "front"]));
    assert!(events.contains("CertificateIssued"), "{events}");

    // A Secret nanocl did not create is never overwritten: the rule says so.
    let (_, issued) = certificates(&[&["taken.test"]]);
    let other = format!(
        "{}---\napiVersion: nanocl.io/v1\nkind: ProxyRule\nmetadata: {{name: other, namespace: {ns}}}\n\
         spec:\n  cluster: dev\n  listeners: [{{port: {https}, protocol: https}}]\n  \
         http: [{{host: taken.test, cargo: web, port: 8080}}]\n  \
         tls: [{{hosts: [taken.test], acme: true, secret: taken}}]\n",
        tls_secret(&ns, "taken", &issued[0])
    );
    apply(&d, &d.dir.path().join("other.yaml"), &other);
    wait_until("the refusal said", || {
        let out = stdout(&d.nanocl(&["-n", &ns, "get", "proxyrule", "other", "-o", "json"]));
        out.contains("\"Failed\"") && out.contains("exists and is not the one nanocl keeps")
    });
    let kept = stdout(&d.nanocl(&["-n", &ns, "get", "secret", "taken", "-o", "json"]));
    assert!(!kept.contains("io.nanocl.acme"), "{kept}");
}

#[test]
fn the_proxy_should_keep_serving_while_nanocld_is_killed_and_restarted() {
    let scope = Scope::new("proxy-restart");
    let ns = scope.ns.clone();
    let mut d = Daemon::start_with_controllers(StoreKind::Embedded);
    let http = free_port();
    let file = d.dir.path().join("restart.yaml");
    let yaml = format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n{}\
         ---\napiVersion: nanocl.io/v1\nkind: ProxyRule\nmetadata: {{name: front, namespace: {ns}}}\n\
         spec:\n  cluster: dev\n  listeners: [{{port: {http}}}]\n  http: [{{host: restart.test, cargo: web, port: 8080}}]\n",
        cargo(
            &ns,
            "web",
            2,
            "mkdir -p /www && echo v1 $(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"
        ),
    );
    apply(&d, &file, &yaml);
    wait_until("the web cargo behind the proxy", || {
        get(http, "restart.test", "/").is_some_and(|(s, b)| s == 200 && b.starts_with("v1 "))
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loader = load(http, "restart.test", 4, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    // Killed: nothing stops gracefully; the proxy process serves on, alone.
    d.kill9();
    std::thread::sleep(Duration::from_secs(2));
    d.restart();
    // Adopted: a route change is served by the same process, with nothing dropped.
    apply(
        &d,
        &file,
        &yaml.replace("host: restart.test, cargo", "host: again.test, cargo"),
    );
    wait_until("the new route served after the restart", || {
        get(http, "again.test", "/").is_some_and(|(s, _)| s == 200)
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = loader.join().expect("the load");
    // restart.test is no route any more once the change is applied: 404s after it are the
    // proxy's right answer, anything else is a failure.
    let failed: Vec<&String> = seen
        .failed
        .iter()
        .filter(|f| !f.starts_with("Some((404,"))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        seen.ok + seen.failed.len(),
        &failed[..failed.len().min(20)]
    );
    assert!(seen.ok > 50, "a real load: {seen:?}");
}

/// Sends `request` as written to 127.0.0.1:`port`: the whole response (empty when nothing
/// listens).
fn raw(port: u16, request: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

#[test]
fn routes_should_change_headers_redirect_and_limit_request_bodies() {
    let scope = Scope::new("proxy-edit");
    let ns = scope.ns.clone();
    let d = Daemon::start_with_controllers(StoreKind::Embedded);
    let http = free_port();
    // A CGI that says which request headers it got, and sets one of its own.
    let echo = "mkdir -p /www/cgi-bin && printf \"#!/bin/sh\\necho Content-Type: text/plain\\necho X-Backend: secret\\necho\\necho env=\\$HTTP_X_ENV debug=\\$HTTP_X_DEBUG\\n\" > /www/cgi-bin/echo && chmod +x /www/cgi-bin/echo && exec httpd -f -p 8080 -h /www";
    let yaml = format!(
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n\
         apiVersion: nanocl.io/v1\nkind: Cluster\nmetadata: {{name: dev, namespace: {ns}}}\n{}\
         ---\napiVersion: nanocl.io/v1\nkind: ProxyRule\nmetadata: {{name: front, namespace: {ns}}}\n\
         spec:\n  cluster: dev\n  listeners: [{{port: {http}}}]\n  http:\n    \
         - {{host: h.test, cargo: web, port: 8080, maxBodySize: 1Ki, \
         requestHeaders: {{set: {{X-Env: prod}}, remove: [X-Debug]}}, \
         responseHeaders: {{set: {{X-Proxy: nanocl}}, remove: [X-Backend]}}}}\n    \
         - {{host: old.test, redirect: {{url: \"https://new.test\", status: 301}}}}\n",
        cargo(&ns, "web", 1, echo),
    );
    apply(&d, &d.dir.path().join("edit.yaml"), &yaml);
    let ask = |extra: &str| {
        raw(
            http,
            &format!(
                "GET /cgi-bin/echo HTTP/1.1\r\nHost: h.test\r\n{extra}Connection: close\r\n\r\n"
            ),
        )
    };
    wait_until("the echo behind the proxy", || ask("").contains("200 OK"));
    let response = ask("X-Debug: 1\r\nX-Env: dev\r\n");
    assert!(
        response.contains("env=prod debug=\n"),
        "X-Env replaced, X-Debug removed on the way in: {response}"
    );
    let head = response
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .to_lowercase();
    assert!(
        head.contains("x-proxy: nanocl") && !head.contains("x-backend"),
        "X-Proxy set, X-Backend removed on the way out: {response}"
    );
    // A redirect route answers by itself, path and query kept.
    let response = raw(
        http,
        "GET /a/b?c=1 HTTP/1.1\r\nHost: old.test\r\nConnection: close\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 301"), "{response}");
    assert!(
        response
            .to_lowercase()
            .contains("location: https://new.test/a/b?c=1\r\n"),
        "{response}"
    );
    // Bodies over 1 KiB are refused before the replica, with a length or streamed.
    let big = "x".repeat(2048);
    let response = raw(
        http,
        &format!(
            "POST /cgi-bin/echo HTTP/1.1\r\nHost: h.test\r\nContent-Length: 2048\r\nConnection: close\r\n\r\n{big}"
        ),
    );
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(
        response.contains("over this route's limit of 1024 bytes"),
        "{response}"
    );
    let response = raw(
        http,
        &format!(
            "POST /cgi-bin/echo HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n800\r\n{big}\r\n0\r\n\r\n"
        ),
    );
    assert!(response.starts_with("HTTP/1.1 413"), "streamed: {response}");
    let small = raw(
        http,
        "POST /cgi-bin/echo HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    assert!(small.contains("200 OK"), "{small}");
}
