//! Remote use over mutual TLS, against a real nanocld and the real CLI: certificates made by
//! `nanocl certs`, a context made by `nanocl context`, clients without a certificate, with
//! one from another CA and with an expired one refused at the handshake; plaintext TCP
//! refused beyond loopback; a namespace's `spec.access` answering 403 to users it does not
//! list, and every write in the audit log.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nanocl_e2e::hosts::free_port;
use nanocl_e2e::{binary, stderr, stdout, Daemon, StoreKind};

/// The CLI with its own configuration directory and no NANOCL_* from the test's
/// environment.
fn cli(home: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(binary("nanocl"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("NO_COLOR", "1")
        .envs(envs.iter().copied())
        .output()
        .expect("nanocl runs")
}

fn ok(out: Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// A CA, nanocld's certificate for 127.0.0.1, users alice and bob; another CA with user
/// mallory; and an expired certificate of the right CA for user eve.
struct Pki {
    home: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let home = tempfile::tempdir().expect("tempdir");
        let pki = home.path().join("pki");
        let other = home.path().join("other");
        let dir = |d: &Path| d.display().to_string();
        for args in [
            vec!["certs", "init", "--dir", &dir(&pki)],
            vec![
                "certs",
                "issue",
                "server",
                "--san",
                "127.0.0.1",
                "--dir",
                &dir(&pki),
            ],
            vec!["certs", "issue", "client", "alice", "--dir", &dir(&pki)],
            vec!["certs", "issue", "client", "bob", "--dir", &dir(&pki)],
            vec![
                "certs",
                "init",
                "--name",
                "another CA",
                "--dir",
                &dir(&other),
            ],
            vec!["certs", "issue", "client", "mallory", "--dir", &dir(&other)],
        ] {
            ok(cli(home.path(), &args, &[]));
        }
        // An existing CA is never replaced.
        let again = cli(home.path(), &["certs", "init", "--dir", &dir(&pki)], &[]);
        assert_eq!(again.status.code(), Some(1));
        assert!(
            stderr(&again).contains("a CA is already in"),
            "{}",
            stderr(&again)
        );
        // Keys are the owner's only.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(pki.join("alice-key.pem"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        // Eve's certificate, from the right CA, expired yesterday.
        let ca_pem = std::fs::read_to_string(pki.join("ca.pem")).expect("ca");
        let ca_key = rcgen::KeyPair::from_pem(
            &std::fs::read_to_string(pki.join("ca-key.pem")).expect("ca key"),
        )
        .expect("CA key");
        let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).expect("issuer");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "eve");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(30);
        params.not_after = now - time::Duration::days(1);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &issuer).expect("signed");
        std::fs::write(pki.join("eve.pem"), cert.pem()).expect("write");
        std::fs::write(pki.join("eve-key.pem"), key.serialize_pem()).expect("write");
        Pki { home }
    }

    fn file(&self, name: &str) -> String {
        self.home
            .path()
            .join("pki")
            .join(name)
            .display()
            .to_string()
    }

    fn other(&self, name: &str) -> String {
        self.home
            .path()
            .join("other")
            .join(name)
            .display()
            .to_string()
    }

    /// `nanocl ARGS` with this home's configuration.
    fn cli(&self, args: &[&str]) -> Output {
        cli(self.home.path(), args, &[])
    }

    /// Creates context `name` for `user`'s certificate (from `cert`, `key`).
    fn context(&self, name: &str, port: u16, cert: &str, key: &str) {
        ok(self.cli(&[
            "context",
            "create",
            name,
            "--server",
            &format!("tcp://127.0.0.1:{port}"),
            "--ca",
            &self.file("ca.pem"),
            "--cert",
            cert,
            "--key",
            key,
        ]));
    }

    /// nanocld (API only) with its unix socket and mutual TLS on `port`.
    fn daemon(&self, port: u16, audit: &Path) -> Daemon {
        Daemon::start_with(
            StoreKind::Embedded,
            &[
                "--controllers",
                "none",
                "--listen",
                &format!("tcp://127.0.0.1:{port}"),
                "--tls-cert",
                &self.file("server.pem"),
                "--tls-key",
                &self.file("server-key.pem"),
                "--tls-client-ca",
                &self.file("ca.pem"),
                "--audit-log",
                &audit.display().to_string(),
            ],
        )
    }
}

/// A TLS client without a certificate: what the server answers to its first request.
fn without_certificate(pki: &Pki, port: u16) -> String {
    use std::io::{Read, Write};
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(pki.file("ca.pem")).expect("ca");
    for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(&ca) {
        roots.add(cert.expect("PEM")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("connection");
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut answer = String::new();
    let sent =
        tls.write_all(b"GET /version HTTP/1.1\r\nHost: nanocld\r\nConnection: close\r\n\r\n");
    match sent.and_then(|()| tls.read_to_string(&mut answer)) {
        Ok(_) => answer,
        Err(e) => format!("error: {e}"),
    }
}

fn audit_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("an audit line is JSON"))
        .collect()
}

#[test]
fn mutual_tls_should_let_in_only_valid_certificates_of_its_ca() {
    let pki = Pki::new();
    let port = free_port();
    let audit: PathBuf = pki.home.path().join("audit.log");
    let d = pki.daemon(port, &audit);

    // The right certificate, through a context made the current one.
    pki.context(
        "lab",
        port,
        &pki.file("alice.pem"),
        &pki.file("alice-key.pem"),
    );
    ok(pki.cli(&["context", "use", "lab"]));
    let listed = ok(pki.cli(&["context", "list"]));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with('*') && l.contains("lab")),
        "{listed}"
    );
    let namespaces = ok(pki.cli(&["get", "namespaces"]));
    assert!(namespaces.contains("global"), "{namespaces}");

    // No certificate at all: the handshake is refused, nothing is answered.
    let answer = without_certificate(&pki, port);
    assert!(
        answer.starts_with("error:") && answer.contains("CertificateRequired"),
        "{answer}"
    );
    // Plain HTTP to the TLS port: the CLI says what is going on.
    let plain = cli(
        pki.home.path(),
        &["-H", &format!("tcp://127.0.0.1:{port}"), "get", "ns"],
        &[],
    );
    assert_eq!(plain.status.code(), Some(1));
    assert!(
        stderr(&plain).contains("does not answer plain HTTP")
            && stderr(&plain).contains("probably serves mutual TLS"),
        "{}",
        stderr(&plain)
    );

    // A certificate from another CA, and an expired one from the right CA.
    pki.context(
        "other",
        port,
        &pki.other("mallory.pem"),
        &pki.other("mallory-key.pem"),
    );
    pki.context(
        "expired",
        port,
        &pki.file("eve.pem"),
        &pki.file("eve-key.pem"),
    );
    for (context, alert) in [("other", "UnknownCA"), ("expired", "CertificateExpired")] {
        let out = pki.cli(&["--context", context, "get", "namespaces"]);
        assert_eq!(out.status.code(), Some(1), "{context}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(
            err.contains("refused this client's certificate") && err.contains(alert),
            "{context}: {err}"
        );
    }

    // From the environment, as a CI job has them: PEM text, or paths.
    let pem = |f: &str| std::fs::read_to_string(pki.file(f)).expect("pem");
    let out = cli(
        pki.home.path(),
        &[
            "-H",
            &format!("tcp://127.0.0.1:{port}"),
            "get",
            "ns",
            "global",
        ],
        &[
            ("NANOCL_TLS_CA", &pem("ca.pem")),
            ("NANOCL_TLS_CERT", &pem("bob.pem")),
            ("NANOCL_TLS_KEY", &pki.file("bob-key.pem")),
        ],
    );
    assert!(ok(out).contains("global"));
    let out = cli(
        pki.home.path(),
        &["-H", &format!("tcp://127.0.0.1:{port}"), "get", "ns"],
        &[("NANOCL_TLS_CA", &pem("ca.pem"))],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("NANOCL_TLS_CERT and NANOCL_TLS_KEY not set"),
        "{}",
        stderr(&out)
    );
    // -H and --context together are ambiguous.
    let out = pki.cli(&["-H", "unix:///nowhere", "--context", "lab", "get", "ns"]);
    assert!(
        stderr(&out).contains("give one of them"),
        "{}",
        stderr(&out)
    );
    drop(d);
}

#[test]
fn plaintext_tcp_should_be_refused_beyond_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(binary("nanocld"))
        .args([
            "--state-dir",
            &dir.path().join("state").display().to_string(),
            "--listen",
            &format!("unix://{}", dir.path().join("s.sock").display()),
            "--listen",
            "tcp://0.0.0.0:1",
            "--controllers",
            "none",
        ])
        .env("NANOCL_LOG", "warn")
        .output()
        .expect("nanocld runs");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--listen tcp://0.0.0.0:1: plaintext TCP is served on loopback only")
            && err.contains("--tls-cert, --tls-key and --tls-client-ca"),
        "{err}"
    );
    assert!(!dir.path().join("s.sock").exists(), "nothing was started");
}

#[test]
fn a_namespace_should_let_only_its_users_in_and_the_audit_log_should_say_who_did_what() {
    let pki = Pki::new();
    let port = free_port();
    let audit: PathBuf = pki.home.path().join("audit.log");
    let d = pki.daemon(port, &audit);
    pki.context(
        "alice",
        port,
        &pki.file("alice.pem"),
        &pki.file("alice-key.pem"),
    );
    pki.context("bob", port, &pki.file("bob.pem"), &pki.file("bob-key.pem"));
    let ns = format!("t{}-team", std::process::id());
    let files = pki.home.path();
    let write = |name: &str, yaml: String| {
        let path = files.join(name);
        std::fs::write(&path, yaml).expect("write");
        path.display().to_string()
    };
    let namespace = |access: &str| {
        write(
            "ns.yaml",
            format!("apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}}}\nspec: {{access: {access}}}\n"),
        )
    };
    let cargo = write(
        "cargo.yaml",
        format!("apiVersion: nanocl.io/v1\nkind: Cargo\nmetadata: {{name: web, namespace: {ns}}}\nspec:\n  cluster: dev\n  container: {{image: busybox}}\n"),
    );

    // Alice writes the namespace; bob may read it but not write it.
    ok(pki.cli(&[
        "--context",
        "alice",
        "apply",
        "-f",
        &namespace("{write: [alice]}"),
    ]));
    let out = pki.cli(&["--context", "bob", "apply", "-f", &cargo]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!(
            "user \"bob\" may not write namespace \"{ns}\": its spec.access.write lists alice"
        )),
        "{}",
        stderr(&out)
    );
    let listed = ok(pki.cli(&["--context", "bob", "-n", &ns, "get", "cargoes"]));
    assert!(!listed.contains("web"), "nothing was created: {listed}");
    ok(pki.cli(&["--context", "alice", "apply", "-f", &cargo]));
    let out = pki.cli(&["--context", "bob", "-n", &ns, "delete", "cargo", "web"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    ok(pki.cli(&["--context", "bob", "-n", &ns, "get", "cargo", "web"]));
    // Bob may not take the namespace over either.
    let out = pki.cli(&[
        "--context",
        "bob",
        "apply",
        "-f",
        &namespace("{write: [bob]}"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));

    // Reading restricted too: bob sees nothing of it, nor lists across namespaces.
    ok(pki.cli(&[
        "--context",
        "alice",
        "apply",
        "-f",
        &namespace("{write: [alice], read: [carol]}"),
    ]));
    let out = pki.cli(&["--context", "bob", "-n", &ns, "get", "cargoes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("user \"bob\" may not read namespace \"{ns}\"")),
        "{}",
        stderr(&out)
    );
    let out = pki.cli(&["--context", "bob", "get", "cargoes", "-A"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("per namespace (-n)"),
        "{}",
        stderr(&out)
    );
    ok(pki.cli(&["--context", "alice", "get", "cargoes", "-A"]));

    // Creating namespaces is global's to allow: once global lists its writers, bob cannot.
    let global = write(
        "global.yaml",
        "apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {name: global}\nspec: {access: {write: [alice]}}\n".to_owned(),
    );
    ok(pki.cli(&["--context", "alice", "apply", "-f", &global]));
    let other = write(
        "other.yaml",
        format!("apiVersion: nanocl.io/v1\nkind: Namespace\nmetadata: {{name: {ns}-b}}\n"),
    );
    let out = pki.cli(&["--context", "bob", "apply", "-f", &other]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("user \"bob\" may not write namespace \"global\""),
        "{}",
        stderr(&out)
    );

    // The host's own socket is not restricted, and is audited as such.
    ok(d.nanocl(&["-n", &ns, "delete", "cargo", "web"]));

    let lines = audit_lines(&audit);
    let denied: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["user"] == "bob" && l["result"] == "denied")
        .collect();
    assert!(
        denied.iter().any(|l| l["method"] == "POST"
            && l["code"] == 403
            && l["path"] == format!("/apis/nanocl.io/v1/namespaces/{ns}/cargoes")
            && l["message"]
                .as_str()
                .is_some_and(|m| m.contains("may not write"))),
        "{lines:#?}"
    );
    assert!(
        denied.iter().any(|l| l["method"] == "DELETE"
            && l["path"] == format!("/apis/nanocl.io/v1/namespaces/{ns}/cargoes/web")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l["user"] == "alice"
            && l["method"] == "POST"
            && l["code"] == 201
            && l["path"] == format!("/apis/nanocl.io/v1/namespaces/{ns}/cargoes")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l["user"] == "local (unix socket)"
            && l["method"] == "DELETE"
            && l["result"] == "allowed"),
        "{lines:#?}"
    );
    // Reads are not audited.
    assert!(lines.iter().all(|l| l["method"] != "GET"), "{lines:#?}");
    // The store is the daemon's own, gone with it: nothing to remove.
    drop(d);
}
