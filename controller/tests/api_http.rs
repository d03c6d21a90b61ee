//! End-to-end HTTP tests of the API server (DESIGN §5): a real nanocld router served in-process
//! on 127.0.0.1, spoken to with a minimal HTTP/1.1 client over `TcpStream`, once on the
//! embedded store and once on the dev environment's etcd (under a unique prefix, removed
//! afterwards). Every await is bounded.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use nanocl_controller::apiserver::{self, App};
use nanocl_controller::store::{
    AnyStore, EmbeddedOptions, EmbeddedStore, EtcdOptions, EtcdStore, Store,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The bound of every single step (a request, a store call, a watch line).
const STEP: Duration = Duration::from_secs(15);

/// How long a watch must stay silent to count as "nothing more was sent".
const QUIET: Duration = Duration::from_millis(700);

const V1: &str = "/apis/nanocl.io/v1";
const V1ALPHA1: &str = "/apis/nanocl.io/v1alpha1";
const IMAGE: &str = "nanocl-test/busybox:latest";

// ---------------------------------------------------------------------------------------------
// Harness: one server per test, on either store.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Embedded,
    Etcd,
}

/// What a test body gets: where the server listens, and the store behind it.
#[derive(Clone, Debug)]
struct Ctx {
    addr: SocketAddr,
    store: AnyStore,
    backend: Backend,
    /// Flips the server's shutdown signal.
    stop: Arc<tokio::sync::watch::Sender<bool>>,
}

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {STEP:?}"))
}

/// Starts a server on `backend`, runs `body` against it, stops the server, and on etcd removes
/// every key the test wrote (also when the body panicked).
async fn run<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let store = match backend {
        Backend::Embedded => AnyStore::Embedded(
            EmbeddedStore::open(&dir.path().join("store.redb"), EmbeddedOptions::default())
                .expect("open the embedded store"),
        ),
        Backend::Etcd => {
            let endpoint = nanocl_e2e::etcd_endpoint();
            let options = EtcdOptions {
                prefix: format!("/{}", nanocl_e2e::unique_prefix("api")),
                ..EtcdOptions::new(vec![endpoint.clone()])
            };
            let store = within("connect to etcd", EtcdStore::connect(options))
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot reach the dev etcd at {endpoint}: {e}; {}",
                        nanocl_e2e::HOW_TO_START
                    )
                });
            AnyStore::Etcd(store)
        }
    };
    within(
        "ensure_default_namespace",
        apiserver::ensure_default_namespace(&store),
    )
    .await
    .expect("create the global namespace");
    let (tx, rx) = tokio::sync::watch::channel(false);
    let tx = Arc::new(tx);
    let app = Arc::new(App {
        store: store.clone(),
        metrics: Default::default(),
        shutdown: rx.clone(),
        store_kind: match backend {
            Backend::Embedded => "embedded",
            Backend::Etcd => "etcd",
        },
        docker: None,
        audit: None,
    });
    let listener = within("bind", TcpListener::bind("127.0.0.1:0"))
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let server = tokio::spawn(apiserver::serve(
        apiserver::router(app),
        apiserver::Listeners {
            tcp: vec![listener],
            ..Default::default()
        },
        rx,
    ));
    let ctx = Ctx {
        addr,
        store: store.clone(),
        backend,
        stop: tx.clone(),
    };
    let outcome = tokio::spawn(body(ctx)).await;
    let _ = tx.send(true);
    let stopped = tokio::time::timeout(STEP, server).await;
    if backend == Backend::Etcd {
        let listed = within("list the test prefix", store.list(""))
            .await
            .expect("list the test prefix");
        for kv in listed.items {
            within("delete a test key", store.delete(&kv.key, None))
                .await
                .expect("delete a test key");
        }
        let left = within("list the test prefix", store.list(""))
            .await
            .expect("list the test prefix");
        assert!(left.items.is_empty(), "the test prefix is not empty");
    }
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("the test body did not finish: {e}"),
        }
    }
    match stopped {
        Ok(Ok(Ok(()))) => {}
        other => panic!("the server did not shut down cleanly: {other:?}"),
    }
}

/// One `#[tokio::test]` per store for each body: `NAME::embedded` and `NAME::etcd`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::run(super::Backend::Embedded, super::$name).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn etcd() {
                super::run(super::Backend::Etcd, super::$name).await;
            }
        }
    )*};
}

on_both_stores!(
    service_endpoints,
    crud_lifecycle,
    dry_run,
    v1alpha1_round_trip,
    finalizers,
    namespace_finalizer,
    watch_streams,
    shutdown_ends_watches,
    bad_input_corpus,
    events_api,
    status_races,
);

/// An Event as the controllers store it, under `events/{ns}/{name}`.
fn event(ns: &str, name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "nanocl.io/v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "involvedObject": {"kind": "Cargo", "namespace": ns, "name": "web"},
        "type": "Normal",
        "reason": "ReplicasCreated",
        "message": "created replica(s) 0",
        "count": 1,
        "firstTimestamp": "2026-12-01T00:00:00Z",
        "lastTimestamp": "2026-12-01T00:00:00Z",
    })
}

/// `.../events` lists and watches through the shared watch: label selectors apply to both,
/// and a resourceVersion the store never issued is refused at once.
async fn events_api(ctx: Ctx) {
    let put = |name: &str, labels: Value| {
        let (store, key, value) = (
            ctx.store.clone(),
            format!("events/ev/{name}"),
            event("ev", name, labels).to_string(),
        );
        async move {
            within("store an event", store.create(&key, value.into_bytes()))
                .await
                .expect("store an event");
        }
    };
    put("a", json!({"team": "red"})).await;
    put("b", json!({})).await;
    let path = format!("{V1}/namespaces/ev/events");
    let all = ctx.get(&path).await.expect(200, "list events");
    assert_eq!(names(&all), vec!["a", "b"], "{all}");
    let red = ctx
        .get(&format!("{path}?labelSelector=team%3Dred"))
        .await
        .expect(200, "list selected events");
    assert_eq!(names(&red), vec!["a"], "{red}");

    let rv = all["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_owned();
    let mut watch = open_watch(
        &ctx,
        &format!("{path}?watch=true&labelSelector=team%3Dred&resourceVersion={rv}"),
    )
    .await
    .unwrap_or_else(|r| panic!("watch events: {}", r.text()));
    put("c", json!({})).await;
    put("d", json!({"team": "red"})).await;
    watch.expect("ADDED", "d").await;
    watch.expect_quiet().await;

    let beyond = ctx
        .get(&format!(
            "{path}?watch=true&resourceVersion=9223372036854775807"
        ))
        .await;
    assert_failure(
        &beyond,
        400,
        "BadRequest",
        None,
        "is newer than this store's current revision",
        "an events watch from beyond the store's revision",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_compacted_history_embedded() {
    run(Backend::Embedded, watch_from_compacted_history).await;
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client.
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Headers,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {}", self.text()))
    }

    /// The JSON body, after checking the status code.
    fn expect(&self, code: u16, what: &str) -> Value {
        assert_eq!(self.status, code, "{what}: {}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{what}"
        );
        self.json()
    }
}

/// The bytes of one request; `Connection: close` so the response ends at EOF.
fn request(method: &str, path: &str, content_type: Option<&str>, body: Option<&[u8]>) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body.unwrap_or_default());
    raw
}

fn json_request(method: &str, path: &str, body: &Value) -> Vec<u8> {
    request(
        method,
        path,
        Some("application/json"),
        Some(body.to_string().as_bytes()),
    )
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses a status line and headers; returns them and where the body starts.
/// Header names and values, in order.
type Headers = Vec<(String, String)>;

fn parse_head(raw: &[u8]) -> Option<(u16, Headers, usize)> {
    let end = find(raw, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Some((status, headers, end + 4))
}

/// Moves every complete chunk of `raw` into `body`. Returns true after the last chunk.
fn dechunk(raw: &mut Vec<u8>, body: &mut Vec<u8>) -> bool {
    loop {
        let Some(line_end) = find(raw, b"\r\n") else {
            return false;
        };
        let size_text = String::from_utf8_lossy(&raw[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {size_text:?}"));
        if size == 0 {
            raw.clear();
            return true;
        }
        let start = line_end + 2;
        if raw.len() < start + size + 2 {
            return false;
        }
        body.extend_from_slice(&raw[start..start + size]);
        raw.drain(..start + size + 2);
    }
}

/// Sends `raw` and reads the whole response. The request is written while the response is
/// read, so a server answering early (413) is heard even if it stops reading.
async fn exchange(addr: SocketAddr, raw: Vec<u8>) -> Response {
    within("an HTTP exchange", async move {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut reader, mut writer) = stream.into_split();
        let write = tokio::spawn(async move {
            let _ = writer.write_all(&raw).await;
            let _ = writer.flush().await;
            // Returned, not dropped: dropping would half-close the connection.
            writer
        });
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                // A reset after the response (the server refused to read the rest of a
                // huge body) still leaves the response we read.
                Err(e) if !buf.is_empty() => {
                    let _ = e;
                    break;
                }
                Err(e) => panic!("reading the response failed: {e}"),
            }
        }
        drop(write.await);
        let (status, headers, start) = parse_head(&buf)
            .unwrap_or_else(|| panic!("no HTTP response: {:?}", String::from_utf8_lossy(&buf)));
        let mut rest = buf[start..].to_vec();
        let chunked = headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
        });
        let body = if chunked {
            let mut body = Vec::new();
            assert!(dechunk(&mut rest, &mut body), "truncated chunked body");
            body
        } else if let Some((_, len)) = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        {
            let len: usize = len.parse().expect("content-length");
            assert!(rest.len() >= len, "truncated body");
            rest.truncate(len);
            rest
        } else {
            rest
        };
        Response {
            status,
            headers,
            body,
        }
    })
    .await
}

impl Ctx {
    async fn send(&self, raw: Vec<u8>) -> Response {
        exchange(self.addr, raw).await
    }

    async fn get(&self, path: &str) -> Response {
        self.send(request("GET", path, None, None)).await
    }

    async fn delete(&self, path: &str) -> Response {
        self.send(request("DELETE", path, None, None)).await
    }

    async fn post(&self, path: &str, body: &Value) -> Response {
        self.send(json_request("POST", path, body)).await
    }

    async fn put(&self, path: &str, body: &Value) -> Response {
        self.send(json_request("PUT", path, body)).await
    }

    /// GET that must answer 200 with JSON.
    async fn read(&self, path: &str) -> Value {
        self.get(path).await.expect(200, &format!("GET {path}"))
    }

    /// Creates a namespace.
    async fn namespace(&self, name: &str) -> Value {
        self.post(&format!("{V1}/namespaces"), &namespace(name))
            .await
            .expect(201, &format!("create namespace {name}"))
    }

    /// Creates a v1 object.
    async fn create(&self, path: &str, object: &Value) -> Value {
        self.post(path, object)
            .await
            .expect(201, &format!("POST {path}"))
    }

    /// Replaces a v1 object.
    async fn replace(&self, path: &str, object: &Value) -> Value {
        self.put(path, object)
            .await
            .expect(200, &format!("PUT {path}"))
    }

    /// Every object the server holds, read over HTTP; with the store revision on the embedded
    /// store (etcd's revision also moves with other tests' writes).
    async fn snapshot(&self) -> Value {
        let mut out = json!({});
        for plural in ["namespaces", "clusters", "networks", "cargoes"] {
            let list = self.read(&format!("{V1}/{plural}")).await;
            out[plural] = list["items"].clone();
            if self.backend == Backend::Embedded {
                out[format!("{plural}Revision")] = list["metadata"]["resourceVersion"].clone();
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Watch streams.
// ---------------------------------------------------------------------------------------------

/// An open `?watch=true` response, read line by line.
#[derive(Debug)]
struct Watch {
    stream: TcpStream,
    raw: Vec<u8>,
    body: Vec<u8>,
    ended: bool,
}

/// Opens a watch: `Ok` with the stream when the server answers 200, else the whole response.
async fn open_watch(ctx: &Ctx, path: &str) -> Result<Watch, Response> {
    let mut stream = within("connect", TcpStream::connect(ctx.addr))
        .await
        .expect("connect");
    within(
        "send the watch request",
        stream.write_all(&request("GET", path, None, None)),
    )
    .await
    .expect("send the watch request");
    let mut raw = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let (status, headers, start) = loop {
        if let Some(head) = parse_head(&raw) {
            break head;
        }
        let n = within("read the watch response head", stream.read(&mut chunk))
            .await
            .expect("read the watch response head");
        assert!(n > 0, "the connection closed before the response head");
        raw.extend_from_slice(&chunk[..n]);
    };
    if status != 200 {
        loop {
            let n = within("read an error response", stream.read(&mut chunk))
                .await
                .expect("read an error response");
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&chunk[..n]);
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().expect("content-length"))
            .unwrap_or(raw.len() - start);
        return Err(Response {
            status,
            body: raw[start..start + len].to_vec(),
            headers,
        });
    }
    assert!(
        headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("content-type")
                && v.starts_with("application/json")),
        "a watch answers JSON lines: {headers:?}"
    );
    assert!(
        headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding")
                && v.eq_ignore_ascii_case("chunked")),
        "a watch streams a chunked body: {headers:?}"
    );
    Ok(Watch {
        stream,
        raw: raw[start..].to_vec(),
        body: Vec::new(),
        ended: false,
    })
}

impl Watch {
    /// The next line within `wait`: `Ok(None)` when the stream ended, `Err(())` on silence.
    async fn line_within(&mut self, wait: Duration) -> Result<Option<Value>, ()> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            self.ended = self.ended || dechunk(&mut self.raw, &mut self.body);
            if let Some(end) = self.body.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.body.drain(..=end).collect();
                let value: Value = serde_json::from_slice(&line).unwrap_or_else(|e| {
                    panic!(
                        "watch line is not JSON ({e}): {}",
                        String::from_utf8_lossy(&line)
                    )
                });
                return Ok(Some(value));
            }
            if self.ended {
                return Ok(None);
            }
            let mut chunk = vec![0u8; 16 * 1024];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Err(()),
                Ok(Ok(0)) => {
                    self.ended = true;
                    return Ok(None);
                }
                Ok(Ok(n)) => self.raw.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => panic!("reading the watch failed: {e}"),
            }
        }
    }

    /// The next event that is not a BOOKMARK.
    async fn next(&mut self) -> Value {
        loop {
            match self.line_within(STEP).await {
                Ok(Some(event)) if event["type"] == "BOOKMARK" => {
                    assert!(
                        event["object"]["metadata"]["resourceVersion"].is_string(),
                        "a bookmark carries a resourceVersion: {event}"
                    );
                }
                Ok(Some(event)) => return event,
                Ok(None) => panic!("the watch ended while an event was expected"),
                Err(()) => panic!("no watch event within {STEP:?}"),
            }
        }
    }

    /// The next event, checked to be `kind` for the object `name`.
    async fn expect(&mut self, kind: &str, name: &str) -> Value {
        let event = self.next().await;
        assert_eq!(event["type"], kind, "event {event}");
        assert_eq!(event["object"]["metadata"]["name"], name, "event {event}");
        event
    }

    /// Nothing but bookmarks for a while.
    async fn expect_quiet(&mut self) {
        loop {
            match self.line_within(QUIET).await {
                Err(()) => return,
                Ok(Some(event)) if event["type"] == "BOOKMARK" => {}
                Ok(other) => panic!("expected no event, got {other:?}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Objects.
// ---------------------------------------------------------------------------------------------

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "nanocl.io/v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn cargo(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "nanocl.io/v1",
        "kind": "Cargo",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"cluster": "dev", "container": {"image": IMAGE}},
    })
}

fn cargoes(ns: &str) -> String {
    format!("{V1}/namespaces/{ns}/cargoes")
}

fn cargo_path(ns: &str, name: &str) -> String {
    format!("{V1}/namespaces/{ns}/cargoes/{name}")
}

fn rv(object: &Value) -> i64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_else(|| panic!("no resourceVersion in {object}"))
        .parse()
        .unwrap_or_else(|_| panic!("resourceVersion is not a number in {object}"))
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// Checks a `Status` error body: code, reason, a message fragment, and optionally a cause's
/// field.
fn assert_failure(
    response: &Response,
    code: u16,
    reason: &str,
    field: Option<&str>,
    fragment: &str,
    what: &str,
) {
    let status = response.expect(code, what);
    assert_eq!(status["kind"], "Status", "{what}: {status}");
    assert_eq!(status["status"], "Failure", "{what}: {status}");
    assert_eq!(status["code"], code, "{what}: {status}");
    assert_eq!(status["reason"], reason, "{what}: {status}");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(fragment),
        "{what}: message {message:?} lacks {fragment:?}"
    );
    if let Some(field) = field {
        let causes = status["details"]["causes"]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: no details.causes in {status}"));
        assert!(
            causes.iter().any(|c| c["field"] == field),
            "{what}: no cause for field {field:?} in {status}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Good paths.
// ---------------------------------------------------------------------------------------------

async fn service_endpoints(ctx: Ctx) {
    let health = ctx.get("/healthz").await;
    assert_eq!((health.status, health.text().trim()), (200, "ok"));
    let ready = ctx.get("/readyz").await;
    assert_eq!((ready.status, ready.text().trim()), (200, "ok"));

    let version = ctx.get("/version").await.expect(200, "/version");
    let kind = match ctx.backend {
        Backend::Embedded => "embedded",
        Backend::Etcd => "etcd",
    };
    assert_eq!(version["store"], kind, "{version}");
    assert!(version["version"].as_str().is_some_and(|v| !v.is_empty()));
    let api_versions = version["apiVersions"].as_array().expect("apiVersions");
    assert!(api_versions.contains(&json!("nanocl.io/v1")), "{version}");
    assert!(
        api_versions.contains(&json!("nanocl.io/v1alpha1")),
        "{version}"
    );

    // A 404 first, so that the counters hold two codes.
    assert_eq!(ctx.get(&cargo_path("global", "missing")).await.status, 404);
    let metrics = ctx.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("content-type")
        .is_some_and(|ct| ct.starts_with("text/plain")));
    let text = metrics.text();
    assert!(
        text.contains("# TYPE nanocl_apiserver_requests_total counter"),
        "{text}"
    );
    assert!(
        text.contains("nanocl_apiserver_requests_total{method=\"GET\",code=\"200\"}"),
        "{text}"
    );
    assert!(
        text.contains("nanocl_apiserver_requests_total{method=\"GET\",code=\"404\"} 1"),
        "{text}"
    );
    assert!(text.contains(&format!("store=\"{kind}\"")), "{text}");
    assert!(text.contains("nanocl_apiserver_watchers 0"), "{text}");

    let index = ctx.get("/openapi/v3").await.expect(200, "/openapi/v3");
    assert_eq!(
        index["paths"]["apis/nanocl.io/v1"]["serverRelativeURL"],
        "/openapi/v3/apis/nanocl.io/v1"
    );
    let openapi = ctx
        .get("/openapi/v3/apis/nanocl.io/v1")
        .await
        .expect(200, "/openapi/v3/apis/nanocl.io/v1");
    assert!(
        openapi["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with('3')),
        "openapi version: {}",
        openapi["openapi"]
    );
    assert!(openapi.to_string().contains("Cargo"));

    // The default namespace exists.
    let global = ctx.read(&format!("{V1}/namespaces/global")).await;
    assert_eq!(global["kind"], "Namespace");
    assert_eq!(global["metadata"]["generation"], 1);
}

async fn crud_lifecycle(ctx: Ctx) {
    let ns = ctx.namespace("demo").await;
    assert_eq!(ns["kind"], "Namespace");
    assert_eq!(ns["metadata"]["generation"], 1);
    assert!(ns["metadata"]["uid"].is_string() && ns["metadata"]["creationTimestamp"].is_string());

    // Create.
    let path = cargo_path("demo", "web");
    let created = ctx.create(&cargoes("demo"), &cargo("demo", "web")).await;
    assert_eq!(created["apiVersion"], "nanocl.io/v1");
    assert_eq!(created["kind"], "Cargo");
    assert_eq!(created["metadata"]["name"], "web");
    assert_eq!(created["metadata"]["namespace"], "demo");
    assert_eq!(created["metadata"]["generation"], 1);
    assert!(created["metadata"]["uid"].is_string());
    assert!(created["metadata"]["creationTimestamp"].is_string());
    assert!(created.get("status").is_none(), "{created}");
    // Defaults are stored explicitly.
    assert_eq!(created["spec"]["replicas"], 1);
    assert_eq!(
        created["spec"]["container"]["imagePullPolicy"],
        "IfNotPresent"
    );
    let rv1 = rv(&created);

    // Get.
    let got = ctx.read(&path).await;
    assert_eq!(got, created);

    // Server-set fields in a create body are not taken from the client.
    let mut forged = cargo("demo", "forged");
    forged["metadata"]["uid"] = json!("client-uid");
    forged["metadata"]["resourceVersion"] = json!("12345");
    forged["metadata"]["generation"] = json!(7);
    forged["metadata"]["creationTimestamp"] = json!("2000-01-01T00:00:00Z");
    forged["metadata"]["deletionTimestamp"] = json!("2000-01-01T00:00:00Z");
    let made = ctx.create(&cargoes("demo"), &forged).await;
    assert_ne!(made["metadata"]["uid"], "client-uid");
    assert_ne!(
        made["metadata"]["creationTimestamp"],
        "2000-01-01T00:00:00Z"
    );
    assert_eq!(made["metadata"]["generation"], 1);
    assert!(
        made["metadata"].get("deletionTimestamp").is_none(),
        "{made}"
    );
    assert!(rv(&made) > rv1);
    ctx.delete(&cargo_path("demo", "forged"))
        .await
        .expect(200, "DELETE forged");

    // A status in a create body is not stored.
    let mut with_status = cargo("demo", "db");
    with_status["status"] = json!({"replicas": 7, "readyReplicas": 7, "updatedReplicas": 7});
    let db = ctx.create(&cargoes("demo"), &with_status).await;
    assert!(db.get("status").is_none(), "{db}");
    assert!(rv(&db) > rv1);

    // List, with label selectors.
    let list = ctx.read(&cargoes("demo")).await;
    assert_eq!(list["kind"], "CargoList");
    assert_eq!(list["apiVersion"], "nanocl.io/v1");
    assert!(list["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse::<i64>().ok())
        .is_some_and(|v| v >= rv(&db)));
    assert_eq!(names(&list), ["db", "web"]);
    for (selector, expected) in [
        ("app%3Dweb", vec!["web"]),
        ("app%3D%3Dweb", vec!["web"]),
        ("app!%3Dweb", vec!["db"]),
        ("app%20in%20(web%2Cdb)", vec!["db", "web"]),
        ("app%20notin%20(web)", vec!["db"]),
        ("app", vec!["db", "web"]),
        ("!app", vec![]),
        ("tier", vec![]),
        ("app%3Dweb%2Capp%3Ddb", vec![]),
    ] {
        let list = ctx
            .read(&format!("{}?labelSelector={selector}", cargoes("demo")))
            .await;
        assert_eq!(names(&list), expected, "labelSelector={selector}");
    }
    let everywhere = ctx
        .read(&format!("{V1}/cargoes?labelSelector=app%3Dweb"))
        .await;
    assert_eq!(names(&everywhere), ["web"]);
    assert_eq!(everywhere["items"][0]["metadata"]["namespace"], "demo");

    // Replace with a spec change: generation bumps.
    let mut next = got.clone();
    next["spec"]["replicas"] = json!(2);
    let replaced = ctx.replace(&path, &next).await;
    assert_eq!(replaced["metadata"]["generation"], 2);
    assert_eq!(replaced["spec"]["replicas"], 2);
    assert_eq!(replaced["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(
        replaced["metadata"]["creationTimestamp"],
        created["metadata"]["creationTimestamp"]
    );
    let rv2 = rv(&replaced);
    assert!(rv2 > rv1);

    // A labels-only change keeps the generation.
    let mut relabeled = replaced.clone();
    relabeled["metadata"]["labels"]["tier"] = json!("front");
    let relabeled = ctx.replace(&path, &relabeled).await;
    assert_eq!(relabeled["metadata"]["generation"], 2);
    assert_eq!(relabeled["metadata"]["labels"]["tier"], "front");
    let rv3 = rv(&relabeled);
    assert!(rv3 > rv2);

    // An identical PUT writes nothing: same resourceVersion.
    let same = ctx.replace(&path, &relabeled).await;
    assert_eq!(same, relabeled);
    assert_eq!(rv(&ctx.read(&path).await), rv3);
    // Server-set fields in the body do not count: uid, generation and timestamps are kept.
    let mut tampered = relabeled.clone();
    tampered["metadata"]["uid"] = json!("not-the-uid");
    tampered["metadata"]["generation"] = json!(99);
    tampered["metadata"]["creationTimestamp"] = json!("2000-01-01T00:00:00Z");
    let same = ctx.replace(&path, &tampered).await;
    assert_eq!(same, relabeled);
    assert_eq!(rv(&ctx.read(&path).await), rv3);

    // PUT /status: status stored, spec untouched, generation unchanged.
    let mut status_body = relabeled.clone();
    status_body["spec"]["replicas"] = json!(9);
    status_body["status"] = json!({
        "observedGeneration": 2,
        "replicas": 2,
        "readyReplicas": 1,
        "updatedReplicas": 2,
        "conditions": [{"type": "Ready", "status": "False", "reason": "Starting"}],
    });
    let with_status = ctx.replace(&format!("{path}/status"), &status_body).await;
    assert_eq!(with_status["metadata"]["generation"], 2);
    assert_eq!(with_status["spec"], relabeled["spec"]);
    assert_eq!(with_status["status"]["readyReplicas"], 1);
    assert_eq!(with_status["status"]["conditions"][0]["reason"], "Starting");
    let rv4 = rv(&with_status);
    assert!(rv4 > rv3);
    let stored = ctx.read(&path).await;
    assert_eq!(stored, with_status);
    // GET on the status subresource reads the object.
    assert_eq!(ctx.read(&format!("{path}/status")).await, with_status);
    // PUT /status without a resourceVersion replaces the current status.
    let mut unconditional = status_body.clone();
    unconditional["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("resourceVersion");
    unconditional["status"]["readyReplicas"] = json!(2);
    let unconditional = ctx.replace(&format!("{path}/status"), &unconditional).await;
    assert_eq!(unconditional["status"]["readyReplicas"], 2);
    assert_eq!(unconditional["metadata"]["generation"], 2);
    let rv5 = rv(&unconditional);
    assert!(rv5 > rv4);

    // A normal PUT neither overwrites nor drops the status.
    let mut overwrite = unconditional.clone();
    overwrite["status"] = json!({"replicas": 0, "readyReplicas": 0, "updatedReplicas": 0});
    overwrite["spec"]["replicas"] = json!(3);
    let updated = ctx.replace(&path, &overwrite).await;
    assert_eq!(updated["metadata"]["generation"], 3);
    assert_eq!(updated["status"], unconditional["status"]);
    let mut without = updated.clone();
    without.as_object_mut().expect("object").remove("status");
    without["spec"]["replicas"] = json!(4);
    let updated = ctx.replace(&path, &without).await;
    assert_eq!(updated["metadata"]["generation"], 4);
    assert_eq!(updated["status"], unconditional["status"]);
    assert_eq!(ctx.read(&path).await, updated);

    // Delete: 200 with the object, then 404.
    let deleted = ctx.delete(&path).await.expect(200, "DELETE web");
    assert_eq!(deleted["metadata"]["name"], "web");
    assert_eq!(deleted["metadata"]["uid"], created["metadata"]["uid"]);
    assert_failure(
        &ctx.get(&path).await,
        404,
        "NotFound",
        None,
        "cargo \"web\" in namespace \"demo\" not found",
        "GET after DELETE",
    );
    assert_eq!(names(&ctx.read(&cargoes("demo")).await), ["db"]);
    ctx.delete(&cargo_path("demo", "db"))
        .await
        .expect(200, "DELETE db");
    // Now empty, the namespace can go.
    ctx.delete(&format!("{V1}/namespaces/demo"))
        .await
        .expect(200, "DELETE namespace demo");
    assert_eq!(ctx.get(&format!("{V1}/namespaces/demo")).await.status, 404);

    // Other kinds go through the same verbs.
    let cluster = json!({
        "apiVersion": "nanocl.io/v1", "kind": "Cluster",
        "metadata": {"name": "dev"},
        "spec": {"variables": {"GREETING": "hi"}},
    });
    let cluster = ctx
        .create(&format!("{V1}/namespaces/global/clusters"), &cluster)
        .await;
    assert_eq!(cluster["metadata"]["namespace"], "global");
    let network = json!({
        "apiVersion": "nanocl.io/v1", "kind": "Network",
        "metadata": {"name": "front"},
        "spec": {"cluster": "dev"},
    });
    let network = ctx
        .create(&format!("{V1}/namespaces/global/networks"), &network)
        .await;
    assert_eq!(network["spec"]["driver"], "bridge", "{network}");
    assert_eq!(names(&ctx.read(&format!("{V1}/clusters")).await), ["dev"]);
    assert_eq!(names(&ctx.read(&format!("{V1}/networks")).await), ["front"]);
}

async fn dry_run(ctx: Ctx) {
    ctx.namespace("dry").await;
    let path = cargo_path("dry", "web");

    // Create.
    let before = ctx.snapshot().await;
    let created = ctx
        .post(
            &format!("{}?dryRun=All", cargoes("dry")),
            &cargo("dry", "web"),
        )
        .await
        .expect(201, "dry-run create");
    assert_eq!(created["metadata"]["name"], "web");
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created["spec"]["replicas"], 1);
    assert_eq!(ctx.snapshot().await, before);
    assert_eq!(ctx.get(&path).await.status, 404);
    let ns = ctx
        .post(&format!("{V1}/namespaces?dryRun=All"), &namespace("ghost"))
        .await
        .expect(201, "dry-run namespace");
    assert_eq!(ns["metadata"]["name"], "ghost");
    assert_eq!(ctx.snapshot().await, before);
    assert_eq!(ctx.get(&format!("{V1}/namespaces/ghost")).await.status, 404);

    // Replace.
    let stored = ctx.create(&cargoes("dry"), &cargo("dry", "web")).await;
    let before = ctx.snapshot().await;
    let mut next = stored.clone();
    next["spec"]["replicas"] = json!(3);
    let replaced = ctx
        .put(&format!("{path}?dryRun=All"), &next)
        .await
        .expect(200, "dry-run replace");
    assert_eq!(replaced["spec"]["replicas"], 3);
    assert_eq!(replaced["metadata"]["generation"], 2);
    assert_eq!(ctx.snapshot().await, before);
    assert_eq!(ctx.read(&path).await, stored);

    // Replace status.
    let mut status = stored.clone();
    status["status"] = json!({"replicas": 1, "readyReplicas": 1, "updatedReplicas": 1});
    let with_status = ctx
        .put(&format!("{path}/status?dryRun=All"), &status)
        .await
        .expect(200, "dry-run status");
    assert_eq!(with_status["status"]["readyReplicas"], 1);
    assert_eq!(ctx.snapshot().await, before);
    assert_eq!(ctx.read(&path).await, stored);

    // Delete.
    let deleted = ctx
        .delete(&format!("{path}?dryRun=All"))
        .await
        .expect(200, "dry-run delete");
    assert_eq!(deleted["metadata"]["name"], "web");
    assert_eq!(ctx.snapshot().await, before);
    assert_eq!(ctx.read(&path).await, stored);

    // A dry run still reports what a real one would refuse.
    assert_failure(
        &ctx.post(
            &format!("{}?dryRun=All", cargoes("dry")),
            &cargo("dry", "web"),
        )
        .await,
        409,
        "AlreadyExists",
        None,
        "already exists",
        "dry-run create of an existing object",
    );
    assert_eq!(ctx.snapshot().await, before);
}

async fn v1alpha1_round_trip(ctx: Ctx) {
    ctx.namespace("legacy").await;
    let flat = json!({
        "apiVersion": "nanocl.io/v1alpha1",
        "kind": "Cargo",
        "metadata": {"name": "old", "labels": {"app": "old"}},
        "spec": {
            "cluster": "dev",
            "replicas": 1,
            "image": IMAGE,
            "cmd": ["sh", "-c", "sleep 1"],
            "env": ["A=1", "B=x=y"],
            "ports": ["127.0.0.1:8080:80/tcp"],
        },
    });
    let alpha_path = format!("{V1ALPHA1}/namespaces/legacy/cargoes/old");
    let created = ctx
        .post(&format!("{V1ALPHA1}/namespaces/legacy/cargoes"), &flat)
        .await
        .expect(201, "create v1alpha1");
    // The response is in the path's version.
    assert_eq!(created["apiVersion"], "nanocl.io/v1alpha1");
    assert_eq!(created["spec"]["image"], IMAGE);
    assert_eq!(created["spec"]["env"], json!(["A=1", "B=x=y"]));
    assert_eq!(created["metadata"]["namespace"], "legacy");

    // Read back as v1: the nested shape.
    let v1 = ctx.read(&cargo_path("legacy", "old")).await;
    assert_eq!(v1["apiVersion"], "nanocl.io/v1");
    assert_eq!(v1["spec"]["container"]["image"], IMAGE);
    assert_eq!(
        v1["spec"]["container"]["args"],
        json!(["sh", "-c", "sleep 1"])
    );
    assert_eq!(
        v1["spec"]["container"]["env"],
        json!({"A": "1", "B": "x=y"})
    );
    assert_eq!(
        v1["spec"]["container"]["ports"],
        json!([{"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1", "protocol": "TCP"}])
    );
    assert!(v1["spec"].get("image").is_none(), "{v1}");
    assert_eq!(rv(&v1), rv(&created));

    // Read back as v1alpha1.
    let alpha = ctx.read(&alpha_path).await;
    assert_eq!(alpha["apiVersion"], "nanocl.io/v1alpha1");
    assert_eq!(alpha["spec"]["image"], IMAGE);
    assert_eq!(alpha["spec"]["env"], json!(["A=1", "B=x=y"]));
    assert_eq!(alpha["spec"]["ports"].as_array().map(Vec::len), Some(1));
    assert_eq!(alpha, created);
    let list = ctx
        .read(&format!("{V1ALPHA1}/namespaces/legacy/cargoes"))
        .await;
    assert_eq!(list["apiVersion"], "nanocl.io/v1alpha1");
    assert_eq!(list["kind"], "CargoList");
    assert_eq!(list["items"][0]["spec"]["image"], IMAGE);
    let all = ctx.read(&format!("{V1ALPHA1}/cargoes")).await;
    assert_eq!(names(&all), ["old"]);

    // v1-only fields survive a v1alpha1 round trip (they ride in an annotation).
    let mut next = v1.clone();
    next["spec"]["container"]["imagePullPolicy"] = json!("Never");
    next["spec"]["container"]["resources"] = json!({"memory": "64Mi"});
    let replaced = ctx.replace(&cargo_path("legacy", "old"), &next).await;
    assert_eq!(replaced["metadata"]["generation"], 2);
    let alpha = ctx.read(&alpha_path).await;
    assert!(
        alpha["metadata"]["annotations"]["nanocl.io/v1-fields"].is_string(),
        "{alpha}"
    );
    // PUT of what v1alpha1 read, unchanged: nothing changes.
    let same = ctx
        .put(&alpha_path, &alpha)
        .await
        .expect(200, "PUT v1alpha1 unchanged");
    assert_eq!(rv(&same), rv(&replaced));
    let v1_again = ctx.read(&cargo_path("legacy", "old")).await;
    assert_eq!(v1_again, replaced);
    // A change through v1alpha1 keeps the v1-only fields.
    let mut alpha_next = alpha.clone();
    alpha_next["spec"]["replicas"] = json!(0);
    let changed = ctx
        .put(&alpha_path, &alpha_next)
        .await
        .expect(200, "PUT v1alpha1 change");
    assert_eq!(changed["apiVersion"], "nanocl.io/v1alpha1");
    assert_eq!(changed["spec"]["replicas"], 0);
    let v1_again = ctx.read(&cargo_path("legacy", "old")).await;
    assert_eq!(v1_again["spec"]["replicas"], 0);
    assert_eq!(v1_again["metadata"]["generation"], 3);
    assert_eq!(v1_again["spec"]["container"]["imagePullPolicy"], "Never");
    assert_eq!(v1_again["spec"]["container"]["resources"]["memory"], "64Mi");
    assert!(
        v1_again["metadata"].get("annotations").is_none(),
        "the annotation is not stored in v1: {v1_again}"
    );

    // Delete through v1alpha1.
    let deleted = ctx.delete(&alpha_path).await.expect(200, "DELETE v1alpha1");
    assert_eq!(deleted["apiVersion"], "nanocl.io/v1alpha1");
    assert_eq!(ctx.get(&cargo_path("legacy", "old")).await.status, 404);
}

async fn finalizers(ctx: Ctx) {
    ctx.namespace("fin").await;
    let path = cargo_path("fin", "web");
    let mut object = cargo("fin", "web");
    object["metadata"]["finalizers"] = json!(["example.com/cleanup"]);
    let created = ctx.create(&cargoes("fin"), &object).await;
    assert_eq!(
        created["metadata"]["finalizers"],
        json!(["example.com/cleanup"])
    );

    // A dry-run DELETE shows the mark it would set, and sets none.
    let shown = ctx
        .delete(&format!("{path}?dryRun=All"))
        .await
        .expect(200, "dry-run DELETE with finalizer");
    assert!(
        shown["metadata"]["deletionTimestamp"].is_string(),
        "{shown}"
    );
    assert_eq!(ctx.read(&path).await, created, "a dry run changes nothing");

    // DELETE marks it and leaves it.
    let marked = ctx.delete(&path).await.expect(200, "DELETE with finalizer");
    let when = marked["metadata"]["deletionTimestamp"].clone();
    assert!(when.is_string(), "{marked}");
    assert!(rv(&marked) > rv(&created));
    let stored = ctx.read(&path).await;
    assert_eq!(stored, marked);
    assert_eq!(
        stored["metadata"]["finalizers"],
        json!(["example.com/cleanup"])
    );

    // A second DELETE changes nothing.
    let again = ctx.delete(&path).await.expect(200, "DELETE again");
    assert_eq!(again, marked);
    assert_eq!(ctx.read(&path).await, marked);

    // A client cannot clear the deletionTimestamp.
    let mut undelete = marked.clone();
    undelete["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("deletionTimestamp");
    undelete["spec"]["replicas"] = json!(2);
    let kept = ctx.replace(&path, &undelete).await;
    assert_eq!(kept["metadata"]["deletionTimestamp"], when);
    assert_eq!(kept["metadata"]["generation"], 2);

    // The namespace still holds it.
    assert_failure(
        &ctx.delete(&format!("{V1}/namespaces/fin")).await,
        409,
        "Conflict",
        None,
        "still holds 1 cargoes",
        "DELETE namespace holding a terminating cargo",
    );

    // Removing the last finalizer deletes it.
    let mut done = kept.clone();
    done["metadata"]["finalizers"] = json!([]);
    let gone = ctx.replace(&path, &done).await;
    assert_eq!(gone["metadata"]["name"], "web");
    assert_failure(
        &ctx.get(&path).await,
        404,
        "NotFound",
        None,
        "not found",
        "GET after the last finalizer",
    );
    assert_eq!(
        names(&ctx.read(&cargoes("fin")).await),
        Vec::<String>::new()
    );
    ctx.delete(&format!("{V1}/namespaces/fin"))
        .await
        .expect(200, "DELETE empty namespace");
}

/// A PUT's resourceVersion guards the spec and the metadata, not the status: a controller's
/// status written since the caller's read is no conflict (the PUT keeps the stored status),
/// while any other change since is one. `nanocl apply` to a cargo that is scaling lost every
/// attempt to its progress reports before.
async fn status_races(ctx: Ctx) {
    ctx.namespace("races").await;
    let path = cargo_path("races", "web");
    let read = ctx.create(&cargoes("races"), &cargo("races", "web")).await;
    let status_of = |object: &Value, replicas: u32| {
        let mut o = object.clone();
        o["status"] =
            json!({"replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas});
        o
    };

    // Statuses written after the read: the PUT made against the read goes through, keeps
    // the latest status and bumps the generation once.
    let first = ctx
        .replace(&format!("{path}/status"), &status_of(&read, 1))
        .await;
    let second = ctx
        .replace(&format!("{path}/status"), &status_of(&first, 2))
        .await;
    let mut change = read.clone();
    change["spec"]["replicas"] = json!(3);
    let changed = ctx.replace(&path, &change).await;
    assert_eq!(changed["spec"]["replicas"], 3);
    assert_eq!(changed["status"], second["status"]);
    assert_eq!(changed["metadata"]["generation"], 2);
    assert!(rv(&changed) > rv(&second));

    // A spec changed since the read is a conflict, and nothing is written.
    let mut other = changed.clone();
    other["spec"]["replicas"] = json!(4);
    let by_other = ctx.replace(&path, &other).await;
    refused_from(
        &ctx,
        &path,
        &changed,
        &by_other,
        "PUT against a read older than another spec change",
    )
    .await;

    // So is a label or a finalizer changed since the read, even with statuses around it.
    let status_then = ctx
        .replace(&format!("{path}/status"), &status_of(&by_other, 5))
        .await;
    let mut labelled = status_then.clone();
    labelled["metadata"]["labels"]["tier"] = json!("front");
    let labelled = ctx.replace(&path, &labelled).await;
    let after = ctx
        .replace(&format!("{path}/status"), &status_of(&labelled, 6))
        .await;
    refused_from(
        &ctx,
        &path,
        &status_then,
        &after,
        "PUT against a read older than a label change",
    )
    .await;
    let mut finalized = after.clone();
    finalized["metadata"]["finalizers"] = json!(["example.com/keep"]);
    let finalized = ctx.replace(&path, &finalized).await;
    refused_from(
        &ctx,
        &path,
        &after,
        &finalized,
        "PUT against a read older than a finalizer change",
    )
    .await;

    // A resourceVersion from before the object existed, or from the future, is a conflict.
    for bogus in [rv(&read) - 1, rv(&finalized) + 1000] {
        let mut wrong = finalized.clone();
        wrong["metadata"]["resourceVersion"] = json!(bogus.to_string());
        wrong["spec"]["replicas"] = json!(8);
        assert_failure(
            &ctx.put(&path, &wrong).await,
            409,
            "Conflict",
            None,
            "has been modified",
            "PUT with a resourceVersion the object never had",
        );
    }
    assert_eq!(ctx.read(&path).await, finalized);

    // A controller reporting without pause (a status write as soon as the last one is
    // stored) while a client changes the spec 20 times, each from a fresh read: every
    // change goes through.
    let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reporter = {
        let (ctx, path, writing) = (ctx.clone(), path.clone(), writing.clone());
        tokio::spawn(async move {
            let mut n = 0u32;
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                ctx.put(&format!("{path}/status"), &race_report(n))
                    .await
                    .expect(200, "PUT /status by the reporter");
            }
            n
        })
    };
    for replicas in 10..30 {
        let mut fresh = ctx.read(&path).await;
        fresh["spec"]["replicas"] = json!(replicas);
        fresh.as_object_mut().expect("object").remove("status");
        let changed = ctx.replace(&path, &fresh).await;
        assert_eq!(changed["spec"]["replicas"], replicas);
    }
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    let reports = within("the reporter stops", reporter)
        .await
        .expect("the reporter");
    assert!(
        reports > 20,
        "only {reports} status writes raced the changes"
    );
    let last = ctx.read(&path).await;
    assert_eq!(last["spec"]["replicas"], 29);
    assert_eq!(last["status"]["replicas"], reports);

    // A DELETE has no precondition: reports around it, from several writers at once, are
    // no reason to refuse it (it has a finalizer, so it is marked and stays). The remove
    // benchmark's `nanocl delete` of a cargo whose 50 replicas were reporting failed with
    // "keeps changing" before.
    let storm = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reporters: Vec<_> = (0..6u32)
        .map(|k| {
            let (ctx, path, storm) = (ctx.clone(), path.clone(), storm.clone());
            tokio::spawn(async move {
                let mut n = 0u32;
                while storm.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    ctx.put(&format!("{path}/status"), &race_report(1000 * k + n))
                        .await
                        .expect(200, "PUT /status by a reporter");
                }
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    ctx.delete(&path)
        .await
        .expect(200, "DELETE while 6 reporters write");
    storm.store(false, std::sync::atomic::Ordering::Relaxed);
    for r in reporters {
        within("a reporter stops", r).await.expect("a reporter");
    }
    let last = ctx.read(&path).await;
    assert!(
        last["metadata"]["deletionTimestamp"].is_string(),
        "the DELETE did not mark the cargo"
    );

    // Its last finalizer released, the marked cargo goes.
    let mut release = last.clone();
    release["metadata"]["finalizers"] = json!([]);
    ctx.replace(&path, &release).await;
    ctx.get(&path).await.expect(404, "the released cargo");
    ctx.delete(&format!("{V1}/namespaces/races"))
        .await
        .expect(200, "DELETE namespace");
}

/// A reporter's PUT /status of cargo races/web (no resourceVersion) saying `replicas`.
fn race_report(replicas: u32) -> Value {
    json!({
        "apiVersion": "nanocl.io/v1",
        "kind": "Cargo",
        "metadata": {"name": "web", "namespace": "races"},
        "spec": {"cluster": "dev", "container": {"image": IMAGE}},
        "status": {"replicas": replicas},
    })
}

/// A PUT made from `read` (5 replicas) is a 409 and leaves the object as `now`.
async fn refused_from(ctx: &Ctx, path: &str, read: &Value, now: &Value, what: &str) {
    let mut stale = read.clone();
    stale["spec"]["replicas"] = json!(5);
    assert_failure(
        &ctx.put(path, &stale).await,
        409,
        "Conflict",
        None,
        "has been modified",
        what,
    );
    assert_eq!(&ctx.read(path).await, now);
}

async fn namespace_finalizer(ctx: Ctx) {
    let mut ns = namespace("closing");
    ns["metadata"]["finalizers"] = json!(["example.com/drain"]);
    let created = ctx
        .post(&format!("{V1}/namespaces"), &ns)
        .await
        .expect(201, "create namespace with finalizer");
    let path = format!("{V1}/namespaces/closing");
    let marked = ctx.delete(&path).await.expect(200, "DELETE namespace");
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    assert!(rv(&marked) > rv(&created));

    // Nothing new goes into a namespace being deleted.
    let before = ctx.snapshot().await;
    assert_failure(
        &ctx.post(&cargoes("closing"), &cargo("closing", "web"))
            .await,
        409,
        "NamespaceTerminating",
        None,
        "is being deleted",
        "create in a terminating namespace",
    );
    assert_eq!(ctx.snapshot().await, before);

    let mut done = marked.clone();
    done["metadata"]["finalizers"] = json!([]);
    ctx.replace(&path, &done).await;
    assert_eq!(ctx.get(&path).await.status, 404);
}

async fn watch_streams(ctx: Ctx) {
    ctx.namespace("w").await;
    let a = ctx.create(&cargoes("w"), &cargo("w", "a")).await;

    // Without a resourceVersion: the current objects as ADDED, then the changes.
    let mut watch = open_watch(&ctx, &format!("{}?watch=true", cargoes("w")))
        .await
        .expect("watch opens");
    let added = watch.expect("ADDED", "a").await;
    assert_eq!(added["object"], a);

    // A change in another namespace is not seen.
    ctx.create(&cargoes("global"), &cargo("global", "elsewhere"))
        .await;
    let b = ctx.create(&cargoes("w"), &cargo("w", "b")).await;
    let event = watch.expect("ADDED", "b").await;
    assert_eq!(event["object"], b);
    let mut next = b.clone();
    next["spec"]["replicas"] = json!(2);
    let b2 = ctx.replace(&cargo_path("w", "b"), &next).await;
    let event = watch.expect("MODIFIED", "b").await;
    assert_eq!(event["object"], b2);
    assert_eq!(event["object"]["metadata"]["generation"], 2);
    ctx.delete(&cargo_path("w", "b"))
        .await
        .expect(200, "DELETE b");
    let event = watch.expect("DELETED", "b").await;
    let deleted_at = rv(&event["object"]);
    assert!(deleted_at > rv(&b2), "{event}");
    watch.expect_quiet().await;

    // The watcher is counted while open.
    let metrics = ctx.get("/metrics").await.text();
    assert!(metrics.contains("nanocl_apiserver_watchers 1"), "{metrics}");

    // Resume after a resourceVersion: only what came later.
    let mut resumed = open_watch(
        &ctx,
        &format!("{}?watch=true&resourceVersion={}", cargoes("w"), rv(&b)),
    )
    .await
    .expect("resumed watch opens");
    assert_eq!(resumed.expect("MODIFIED", "b").await["object"], b2);
    let event = resumed.expect("DELETED", "b").await;
    assert_eq!(rv(&event["object"]), deleted_at);
    resumed.expect_quiet().await;
    // `resourceVersion=0` means "from now, with the current objects".
    let mut from_zero = open_watch(&ctx, &format!("{}?watch=1&resourceVersion=0", cargoes("w")))
        .await
        .expect("watch from 0 opens");
    from_zero.expect("ADDED", "a").await;
    from_zero.expect_quiet().await;
    drop(from_zero);

    // Across all namespaces, in the path's version, from a revision.
    let mut everywhere = open_watch(
        &ctx,
        &format!("{V1ALPHA1}/cargoes?watch=true&resourceVersion={}", rv(&a)),
    )
    .await
    .expect("all-namespaces watch opens");
    let event = everywhere.expect("ADDED", "elsewhere").await;
    assert_eq!(event["object"]["apiVersion"], "nanocl.io/v1alpha1");
    assert_eq!(event["object"]["spec"]["image"], IMAGE);
    everywhere.expect("ADDED", "b").await;
    everywhere.expect("MODIFIED", "b").await;
    everywhere.expect("DELETED", "b").await;
    everywhere.expect_quiet().await;

    // With a label selector: objects enter and leave the selection.
    let mut selected = open_watch(
        &ctx,
        &format!("{}?watch=true&labelSelector=role%3Dsel", cargoes("w")),
    )
    .await
    .expect("selector watch opens");
    selected.expect_quiet().await;
    let mut c = cargo("w", "c");
    c["metadata"]["labels"]["role"] = json!("other");
    let c = ctx.create(&cargoes("w"), &c).await;
    selected.expect_quiet().await;
    let mut sel = c.clone();
    sel["metadata"]["labels"]["role"] = json!("sel");
    let sel = ctx.replace(&cargo_path("w", "c"), &sel).await;
    assert_eq!(selected.expect("ADDED", "c").await["object"], sel);
    let mut sel2 = sel.clone();
    sel2["spec"]["replicas"] = json!(3);
    let sel2 = ctx.replace(&cargo_path("w", "c"), &sel2).await;
    assert_eq!(selected.expect("MODIFIED", "c").await["object"], sel2);
    let mut unsel = sel2.clone();
    unsel["metadata"]["labels"]["role"] = json!("other");
    let unsel = ctx.replace(&cargo_path("w", "c"), &unsel).await;
    assert_eq!(selected.expect("DELETED", "c").await["object"], unsel);
    ctx.delete(&cargo_path("w", "c"))
        .await
        .expect(200, "DELETE c");
    selected.expect_quiet().await;

    // The first watch saw all of that, in order.
    watch.expect("ADDED", "c").await;
    watch.expect("MODIFIED", "c").await;
    watch.expect("MODIFIED", "c").await;
    watch.expect("MODIFIED", "c").await;
    watch.expect("DELETED", "c").await;
    watch.expect_quiet().await;

    // Closed watches are no longer counted.
    drop((watch, resumed, everywhere, selected));
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let metrics = ctx.get("/metrics").await.text();
        if metrics.contains("nanocl_apiserver_watchers 0") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "watchers still counted after their clients left: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn shutdown_ends_watches(ctx: Ctx) {
    ctx.namespace("s").await;
    ctx.create(&cargoes("s"), &cargo("s", "a")).await;
    let mut watch = open_watch(&ctx, &format!("{}?watch=true", cargoes("s")))
        .await
        .expect("watch opens");
    watch.expect("ADDED", "a").await;
    let mut namespaces = open_watch(&ctx, &format!("{V1}/namespaces?watch=true"))
        .await
        .expect("namespace watch opens");
    namespaces.expect("ADDED", "global").await;
    namespaces.expect("ADDED", "s").await;
    namespaces.expect_quiet().await;
    ctx.stop.send_replace(true);
    // Both streams end (the final chunk, then EOF) instead of hanging.
    for w in [&mut watch, &mut namespaces] {
        loop {
            match w.line_within(STEP).await {
                Ok(None) => break,
                Ok(Some(event)) if event["type"] == "BOOKMARK" => {}
                Ok(Some(event)) => panic!("unexpected event at shutdown: {event}"),
                Err(()) => panic!("the watch did not end within {STEP:?} of shutdown"),
            }
        }
    }
}

async fn watch_from_compacted_history(ctx: Ctx) {
    ctx.namespace("old").await;
    let first = ctx.create(&cargoes("old"), &cargo("old", "a")).await;
    ctx.create(&cargoes("old"), &cargo("old", "b")).await;
    let last = ctx.create(&cargoes("old"), &cargo("old", "c")).await;
    within("compact", ctx.store.compact(rv(&last)))
        .await
        .expect("compact");
    let answer = open_watch(
        &ctx,
        &format!(
            "{}?watch=true&resourceVersion={}",
            cargoes("old"),
            rv(&first)
        ),
    )
    .await
    .expect_err("a watch from before the compaction is refused");
    assert_failure(
        &answer,
        410,
        "Expired",
        None,
        &format!("resourceVersion {} is too old", rv(&first)),
        "watch from a compacted revision",
    );
    // From the compaction point on, the watch works.
    let mut watch = open_watch(
        &ctx,
        &format!(
            "{}?watch=true&resourceVersion={}",
            cargoes("old"),
            rv(&last)
        ),
    )
    .await
    .expect("a watch from the compaction point opens");
    ctx.delete(&cargo_path("old", "a"))
        .await
        .expect(200, "DELETE a");
    watch.expect("DELETED", "a").await;
}

// ---------------------------------------------------------------------------------------------
// Bad input: every request is refused with the right code, reason, field and message, and
// nothing changes.
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Case {
    what: String,
    raw: Vec<u8>,
    code: u16,
    reason: &'static str,
    field: Option<&'static str>,
    message: String,
}

fn case(
    what: impl Into<String>,
    raw: Vec<u8>,
    code: u16,
    reason: &'static str,
    field: Option<&'static str>,
    message: impl Into<String>,
) -> Case {
    Case {
        what: what.into(),
        raw,
        code,
        reason,
        field,
        message: message.into(),
    }
}

/// A valid v1 cargo `name` in `bad`, changed by `edit`, POSTed to the `bad` collection.
fn post_edited(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut object = cargo("bad", "new");
    edit(&mut object);
    json_request("POST", &cargoes("bad"), &object)
}

fn invalid_create(
    what: &str,
    field: &'static str,
    message: &str,
    edit: impl FnOnce(&mut Value),
) -> Case {
    case(
        what,
        post_edited(edit),
        422,
        "Invalid",
        Some(field),
        message,
    )
}

fn malformed_create(
    what: &str,
    field: Option<&'static str>,
    message: &str,
    edit: impl FnOnce(&mut Value),
) -> Case {
    case(what, post_edited(edit), 400, "BadRequest", field, message)
}

fn raw_post(path: &str, body: &str) -> Vec<u8> {
    request(
        "POST",
        path,
        Some("application/json"),
        Some(body.as_bytes()),
    )
}

fn corpus(web: &Value) -> Vec<Case> {
    let collection = cargoes("bad");
    let web_path = cargo_path("bad", "web");
    let web_rv = rv(web);
    let valid = cargo("bad", "new").to_string();
    let big = {
        let mut object = cargo("bad", "big");
        object["metadata"]["annotations"] =
            json!({"example.com/big": "x".repeat(3 * 1024 * 1024 + 16)});
        object.to_string().into_bytes()
    };
    let big_chunked = {
        let mut raw = format!(
            "POST {collection} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .into_bytes();
        for piece in big.chunks(256 * 1024) {
            raw.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            raw.extend_from_slice(piece);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"0\r\n\r\n");
        raw
    };
    let put_web = |edit: &dyn Fn(&mut Value)| {
        let mut object = web.clone();
        edit(&mut object);
        json_request("PUT", &web_path, &object)
    };
    let mut alpha = json!({
        "apiVersion": "nanocl.io/v1alpha1",
        "kind": "Cargo",
        "metadata": {"name": "new", "namespace": "bad"},
        "spec": {"cluster": "dev", "image": IMAGE},
    });
    let alpha_to_v1 = json_request("POST", &collection, &alpha);
    alpha["metadata"]["name"] = json!("web");
    let v1_to_alpha = json_request(
        "POST",
        &format!("{V1ALPHA1}/namespaces/bad/cargoes"),
        &cargo("bad", "new"),
    );

    vec![
        // ---- the body as bytes
        case(
            "body over 3 MiB (Content-Length)",
            request("POST", &collection, Some("application/json"), Some(&big)),
            413,
            "RequestEntityTooLarge",
            None,
            "larger than the 3 MiB limit",
        ),
        case(
            "body over 3 MiB (chunked, no Content-Length)",
            big_chunked,
            413,
            "RequestEntityTooLarge",
            None,
            "larger than the 3 MiB limit",
        ),
        case(
            "content type text/yaml",
            request(
                "POST",
                &collection,
                Some("text/yaml"),
                Some(valid.as_bytes()),
            ),
            415,
            "UnsupportedMediaType",
            None,
            "send application/json",
        ),
        case(
            "no content type",
            request("POST", &collection, None, Some(valid.as_bytes())),
            415,
            "UnsupportedMediaType",
            None,
            "content type \"\" is not supported",
        ),
        case(
            "content type on PUT",
            request(
                "PUT",
                &web_path,
                Some("application/x-www-form-urlencoded"),
                Some(web.to_string().as_bytes()),
            ),
            415,
            "UnsupportedMediaType",
            None,
            "application/x-www-form-urlencoded",
        ),
        case(
            "JSON with trailing garbage",
            raw_post(&collection, &format!("{valid} trailing")),
            400,
            "BadRequest",
            None,
            "the request body is not a valid object: invalid JSON: trailing characters",
        ),
        case(
            "two JSON objects back to back",
            raw_post(&collection, &format!("{valid}{valid}")),
            400,
            "BadRequest",
            None,
            "the request body is not a valid object: invalid JSON",
        ),
        case(
            "malformed JSON (unterminated)",
            raw_post(&collection, "{\"apiVersion\": \"nanocl.io/v1\", \"kind\": "),
            400,
            "BadRequest",
            None,
            "invalid JSON: EOF while parsing a value",
        ),
        case(
            "malformed JSON (unterminated string)",
            raw_post(&collection, "{\"apiVersion\": \"nanocl.io/v1}"),
            400,
            "BadRequest",
            None,
            "invalid JSON: EOF while parsing a string",
        ),
        case(
            "empty body",
            raw_post(&collection, ""),
            400,
            "BadRequest",
            None,
            "no objects found: the file is empty",
        ),
        case(
            "body of only whitespace",
            raw_post(&collection, "  \n\n "),
            400,
            "BadRequest",
            None,
            "no objects found: the file is empty",
        ),
        case(
            "not UTF-8",
            request(
                "POST",
                &collection,
                Some("application/json"),
                Some(b"{\"apiVersion\": \"\xff\xfe\"}"),
            ),
            400,
            "BadRequest",
            None,
            "not valid UTF-8 text",
        ),
        case(
            "a JSON array",
            raw_post(&collection, &format!("[{valid}]")),
            400,
            "BadRequest",
            None,
            "found a sequence",
        ),
        case(
            "two documents",
            raw_post(&collection, &format!("{valid}\n---\n{valid}")),
            400,
            "BadRequest",
            None,
            "invalid JSON: trailing characters",
        ),
        case(
            "duplicate key",
            raw_post(
                &collection,
                &valid.replacen("\"name\":\"new\"", "\"name\":\"new\",\"name\":\"other\"", 1),
            ),
            400,
            "BadRequest",
            None,
            "duplicate key \"name\"",
        ),
        // ---- types and unknown fields
        malformed_create(
            "unknown field in spec.container",
            Some("spec.container.imagee"),
            "unknown field `imagee` (did you mean `image`?), expected one of `image`",
            |o| o["spec"]["container"]["imagee"] = json!("x"),
        ),
        malformed_create(
            "unknown top-level field",
            Some("extra"),
            "unknown field `extra`",
            |o| o["extra"] = json!(1),
        ),
        malformed_create(
            "replicas as a string",
            Some("spec.replicas"),
            "spec.replicas: invalid type: string \"3\", expected an integer",
            |o| o["spec"]["replicas"] = json!("3"),
        ),
        malformed_create(
            "replicas beyond i32",
            Some("spec.replicas"),
            "must be between 0 and 1000, got 99999999999",
            |o| o["spec"]["replicas"] = json!(99_999_999_999_i64),
        ),
        malformed_create(
            "env as a list in v1",
            Some("spec.container.env"),
            "invalid type: a list, expected a mapping of names to",
            |o| o["spec"]["container"]["env"] = json!(["A=1"]),
        ),
        malformed_create(
            "unknown kind",
            Some("kind"),
            "unknown kind \"Service\"",
            |o| o["kind"] = json!("Service"),
        ),
        malformed_create(
            "unknown apiVersion",
            Some("apiVersion"),
            "unknown apiVersion \"nanocl.io/v2\"",
            |o| o["apiVersion"] = json!("nanocl.io/v2"),
        ),
        malformed_create(
            "foreign apiVersion",
            Some("apiVersion"),
            "unknown apiVersion \"apps/v1\"",
            |o| o["apiVersion"] = json!("apps/v1"),
        ),
        malformed_create("missing kind", None, "missing field `kind`", |o| {
            o.as_object_mut().expect("object").remove("kind");
        }),
        // ---- the body against the path
        case(
            "v1alpha1 object POSTed to a v1 path",
            alpha_to_v1,
            400,
            "BadRequest",
            None,
            "the body is nanocl.io/v1alpha1 but the path is for nanocl.io/v1",
        ),
        case(
            "v1 object POSTed to a v1alpha1 path",
            v1_to_alpha,
            400,
            "BadRequest",
            None,
            "the body is nanocl.io/v1 but the path is for nanocl.io/v1alpha1",
        ),
        case(
            "v1alpha1 object PUT to a v1 path",
            json_request("PUT", &web_path, &alpha),
            400,
            "BadRequest",
            None,
            "the body is nanocl.io/v1alpha1",
        ),
        case(
            "kind in the body not matching the path",
            json_request(
                "POST",
                &collection,
                &json!({"apiVersion": "nanocl.io/v1", "kind": "Cluster", "metadata": {"name": "dev"}}),
            ),
            400,
            "BadRequest",
            None,
            "the body is a Cluster but the path is for cargoes",
        ),
        case(
            "a Cargo POSTed to the namespaces collection",
            json_request("POST", &format!("{V1}/namespaces"), &cargo("bad", "new")),
            400,
            "BadRequest",
            None,
            "the body is a Cargo but the path is for namespaces",
        ),
        malformed_create(
            "namespace in the body differs from the path",
            None,
            "metadata.namespace \"other\" does not match the namespace \"bad\"",
            |o| o["metadata"]["namespace"] = json!("other"),
        ),
        case(
            "name in the PUT path differs from the body",
            put_web(&|o| o["metadata"]["name"] = json!("other")),
            400,
            "BadRequest",
            None,
            "metadata.name \"other\" does not match the name \"web\"",
        ),
        case(
            "name in the PUT /status path differs from the body",
            json_request("PUT", &format!("{web_path}/status"), &{
                let mut o = web.clone();
                o["metadata"]["name"] = json!("other");
                o
            }),
            400,
            "BadRequest",
            None,
            "does not match the name \"web\"",
        ),
        // ---- metadata
        invalid_create(
            "uppercase name",
            "metadata.name",
            "invalid name \"Web\"",
            |o| o["metadata"]["name"] = json!("Web"),
        ),
        invalid_create(
            "64-character name",
            "metadata.name",
            "must be at most 63 characters, got 64",
            |o| o["metadata"]["name"] = json!("a".repeat(64)),
        ),
        invalid_create("name ../x", "metadata.name", "invalid name \"../x\"", |o| {
            o["metadata"]["name"] = json!("../x")
        }),
        invalid_create("name a/b", "metadata.name", "invalid name \"a/b\"", |o| {
            o["metadata"]["name"] = json!("a/b")
        }),
        invalid_create(
            "name with NUL",
            "metadata.name",
            "metadata.name: invalid name \"a\\0b\"",
            |o| o["metadata"]["name"] = json!("a\u{0}b"),
        ),
        invalid_create("empty name", "metadata.name", "required", |o| {
            o["metadata"]["name"] = json!("")
        }),
        invalid_create(
            "invalid namespace in the body",
            "metadata.namespace",
            "metadata.namespace: invalid name \"Bad\"",
            |o| o["metadata"]["namespace"] = json!("Bad"),
        ),
        invalid_create(
            "reserved label key",
            "metadata.labels[\"nanocl.io/owner\"]",
            "keys under \"nanocl.io/\" are reserved",
            |o| o["metadata"]["labels"]["nanocl.io/owner"] = json!("me"),
        ),
        invalid_create(
            "v1 object carrying the v1-fields annotation",
            "metadata.annotations[\"nanocl.io/v1-fields\"]",
            "reserved for conversion from nanocl.io/v1alpha1",
            |o| o["metadata"]["annotations"] = json!({"nanocl.io/v1-fields": "{}"}),
        ),
        case(
            "namespace with an uppercase name",
            json_request("POST", &format!("{V1}/namespaces"), &namespace("Bad")),
            422,
            "Invalid",
            Some("metadata.name"),
            "invalid name \"Bad\"",
        ),
        // ---- spec validation
        invalid_create(
            "negative replicas",
            "spec.replicas",
            "must be between 0 and 1000, got -1",
            |o| o["spec"]["replicas"] = json!(-1),
        ),
        invalid_create(
            "too many replicas",
            "spec.replicas",
            "must be between 0 and 1000, got 1001",
            |o| o["spec"]["replicas"] = json!(1001),
        ),
        invalid_create(
            "hostPort with replicas > 1",
            "spec.container.ports[0].hostPort",
            "a fixed host port can serve only one replica, but replicas is 2",
            |o| {
                o["spec"]["replicas"] = json!(2);
                o["spec"]["container"]["ports"] = json!([{"containerPort": 80, "hostPort": 8080}]);
            },
        ),
        invalid_create(
            "containerPort out of range",
            "spec.container.ports[0].containerPort",
            "must be between 1 and 65535, got 70000",
            |o| o["spec"]["container"]["ports"] = json!([{"containerPort": 70000}]),
        ),
        invalid_create(
            "hostPort 0",
            "spec.container.ports[0].hostPort",
            "must be between 1 and 65535, got 0",
            |o| o["spec"]["container"]["ports"] = json!([{"containerPort": 80, "hostPort": 0}]),
        ),
        invalid_create(
            "bad hostIP",
            "spec.container.ports[0].hostIP",
            "invalid IP address",
            |o| {
                o["spec"]["container"]["ports"] =
                    json!([{"containerPort": 80, "hostIP": "localhost"}])
            },
        ),
        invalid_create(
            "bad image",
            "spec.container.image",
            "invalid image reference \"Not An Image::\"",
            |o| o["spec"]["container"]["image"] = json!("Not An Image::"),
        ),
        invalid_create(
            "missing image",
            "spec.container.image",
            "required: the image every replica runs",
            |o| {
                o["spec"]["container"]
                    .as_object_mut()
                    .expect("container")
                    .remove("image");
            },
        ),
        invalid_create(
            "missing cluster",
            "spec.cluster",
            "required: the cluster this cargo runs in",
            |o| {
                o["spec"].as_object_mut().expect("spec").remove("cluster");
            },
        ),
        invalid_create(
            "fractional memory",
            "spec.container.resources.memory",
            "invalid memory size \"1.5Gi\"",
            |o| o["spec"]["container"]["resources"] = json!({"memory": "1.5Gi"}),
        ),
        invalid_create(
            "memory with an unknown unit",
            "spec.container.resources.memory",
            "invalid memory size \"512Mo\"",
            |o| o["spec"]["container"]["resources"] = json!({"memory": "512Mo"}),
        ),
        invalid_create(
            "memory below the minimum",
            "spec.container.resources.memory",
            "below Docker's minimum of 6Mi",
            |o| o["spec"]["container"]["resources"] = json!({"memory": "1Mi"}),
        ),
        invalid_create(
            "zero cpus",
            "spec.container.resources.cpus",
            "greater than 0 and at most 1024, got 0",
            |o| o["spec"]["container"]["resources"] = json!({"cpus": 0}),
        ),
        invalid_create(
            "env name starting with a digit",
            "spec.container.env.1BAD",
            "invalid name \"1BAD\"",
            |o| o["spec"]["container"]["env"] = json!({"1BAD": "x"}),
        ),
        invalid_create(
            "env name with a dot",
            "spec.container.env[\"A.B\"]",
            "invalid name \"A.B\"",
            |o| o["spec"]["container"]["env"] = json!({"A.B": "x"}),
        ),
        invalid_create(
            "template {{ env.X }}",
            "spec.container.env.GREETING",
            "only \"{{ vars.NAME }}\" is supported",
            |o| o["spec"]["container"]["env"] = json!({"GREETING": "{{ env.X }}"}),
        ),
        invalid_create(
            "relative workingDir",
            "spec.container.workingDir",
            "must be an absolute path, got \"relative/dir\"",
            |o| o["spec"]["container"]["workingDir"] = json!("relative/dir"),
        ),
        invalid_create(
            "reserved container label",
            "spec.container.labels[\"io.nanocl.owner\"]",
            "keys under \"io.nanocl.\" are reserved",
            |o| o["spec"]["container"]["labels"] = json!({"io.nanocl.owner": "me"}),
        ),
        // ---- replace preconditions
        case(
            "PUT without metadata.resourceVersion",
            put_web(&|o| {
                o["metadata"]
                    .as_object_mut()
                    .expect("metadata")
                    .remove("resourceVersion");
            }),
            422,
            "Invalid",
            Some("metadata.resourceVersion"),
            "metadata.resourceVersion is required",
        ),
        case(
            "PUT with a stale resourceVersion",
            put_web(&|o| {
                o["metadata"]["resourceVersion"] = json!((web_rv - 1).to_string());
                o["spec"]["replicas"] = json!(5);
            }),
            409,
            "Conflict",
            None,
            format!(
                "resourceVersion {web_rv} is current, the request had {}",
                web_rv - 1
            ),
        ),
        case(
            "PUT /status with a stale resourceVersion",
            json_request("PUT", &format!("{web_path}/status"), &{
                let mut o = web.clone();
                o["metadata"]["resourceVersion"] = json!((web_rv - 1).to_string());
                o["status"] = json!({"replicas": 1, "readyReplicas": 1, "updatedReplicas": 1});
                o
            }),
            409,
            "Conflict",
            None,
            "has been modified",
        ),
        case(
            "PUT with a non-numeric resourceVersion",
            put_web(&|o| o["metadata"]["resourceVersion"] = json!("abc")),
            400,
            "BadRequest",
            None,
            "resourceVersion \"abc\" is not one this server issued",
        ),
        case(
            "PUT with a negative resourceVersion",
            put_web(&|o| o["metadata"]["resourceVersion"] = json!("-1")),
            400,
            "BadRequest",
            None,
            "resourceVersion \"-1\" is not one this server issued (a positive integer)",
        ),
        case(
            "POST of a JSON body with a trailing comma",
            raw_post(
                &cargoes("bad"),
                r#"{"apiVersion": "nanocl.io/v1", "kind": "Cargo", "metadata": {"name": "new",}, "spec": {"cluster": "dev", "container": {"image": "busybox:stable"}}}"#,
            ),
            400,
            "BadRequest",
            None,
            "the request body is not a valid object: invalid JSON: trailing comma",
        ),
        case(
            "PUT of an object that does not exist",
            json_request("PUT", &cargo_path("bad", "new"), &{
                let mut o = cargo("bad", "new");
                o["metadata"]["resourceVersion"] = json!(web_rv.to_string());
                o
            }),
            404,
            "NotFound",
            None,
            "cargo \"new\" in namespace \"bad\" not found",
        ),
        case(
            "create twice",
            json_request("POST", &collection, &cargo("bad", "web")),
            409,
            "AlreadyExists",
            None,
            "cargo \"web\" in namespace \"bad\" already exists",
        ),
        case(
            "create in a namespace that does not exist",
            json_request("POST", &cargoes("nope"), &cargo("nope", "web")),
            404,
            "NotFound",
            None,
            "namespace \"nope\" not found",
        ),
        case(
            "create a namespace twice",
            json_request("POST", &format!("{V1}/namespaces"), &namespace("bad")),
            409,
            "AlreadyExists",
            None,
            "namespace \"bad\" already exists",
        ), // ---- reads and paths
        case(
            "GET a missing object",
            request("GET", &cargo_path("bad", "missing"), None, None),
            404,
            "NotFound",
            None,
            "cargo \"missing\" in namespace \"bad\" not found",
        ),
        case(
            "GET a missing namespace",
            request("GET", &format!("{V1}/namespaces/missing"), None, None),
            404,
            "NotFound",
            None,
            "namespace \"missing\" not found",
        ),
        case(
            "DELETE a missing object",
            request("DELETE", &cargo_path("bad", "missing"), None, None),
            404,
            "NotFound",
            None,
            "not found",
        ),
        case(
            "name .. in the path",
            request("GET", &cargo_path("bad", ".."), None, None),
            400,
            "BadRequest",
            None,
            "invalid name in the path",
        ),
        case(
            "name a%2fb in the path",
            request("DELETE", &cargo_path("bad", "a%2fb"), None, None),
            400,
            "BadRequest",
            None,
            "invalid name in the path",
        ),
        case(
            "name %2e%2e in the path",
            request("DELETE", &cargo_path("bad", "%2e%2e"), None, None),
            400,
            "BadRequest",
            None,
            "invalid name in the path",
        ),
        case(
            "malformed percent-encoding in the path",
            request("GET", &cargo_path("bad", "a%zz"), None, None),
            400,
            "BadRequest",
            None,
            "malformed percent-encoding",
        ),
        case(
            "uppercase namespace in the path",
            json_request("POST", &cargoes("Bad"), &cargo("bad", "new")),
            400,
            "BadRequest",
            None,
            "invalid namespace in the path",
        ),
        case(
            "unknown plural in the path",
            request("GET", &format!("{V1}/namespaces/bad/services"), None, None),
            404,
            "NotFound",
            None,
            "no resource \"services\"",
        ),
        case(
            "unsupported version in the path",
            request(
                "GET",
                "/apis/nanocl.io/v2/namespaces/bad/cargoes",
                None,
                None,
            ),
            404,
            "NotFound",
            None,
            "nanocl.io/v2 is not served",
        ),
        case(
            "a path outside the API",
            request("GET", "/api/v1/pods", None, None),
            404,
            "NotFound",
            None,
            "no such path",
        ),
        case(
            "unknown subresource",
            request("GET", &format!("{web_path}/attach"), None, None),
            404,
            "NotFound",
            None,
            "no subresource \"attach\"",
        ),
        case(
            "namespaces inside a namespace",
            request(
                "GET",
                &format!("{V1}/namespaces/bad/namespaces"),
                None,
                None,
            ),
            404,
            "NotFound",
            None,
            "namespaces are not inside namespaces",
        ),
        // ---- query parameters
        case(
            "unknown query parameter",
            request("GET", &format!("{collection}?frobnicate=10"), None, None),
            400,
            "BadRequest",
            None,
            "unknown query parameter \"frobnicate\"",
        ),
        case(
            "a continue token: lists are not paged",
            request("GET", &format!("{collection}?continue=abc"), None, None),
            400,
            "BadRequest",
            None,
            "lists are not paged here",
        ),
        case(
            "a field selector on another field",
            request(
                "GET",
                &format!("{collection}?fieldSelector=spec.cluster%3Ddev"),
                None,
                None,
            ),
            400,
            "BadRequest",
            None,
            "only metadata.name and metadata.namespace are supported",
        ),
        case(
            "unknown query parameter on a write",
            json_request(
                "POST",
                &format!("{collection}?shoeSize=9"),
                &cargo("bad", "new"),
            ),
            400,
            "BadRequest",
            None,
            "unknown query parameter \"shoeSize\"",
        ),
        case(
            "bad labelSelector",
            request(
                "GET",
                &format!("{collection}?labelSelector=app%20in%20(web"),
                None,
                None,
            ),
            400,
            "BadRequest",
            None,
            "invalid label selector",
        ),
        case(
            "labelSelector with an invalid key",
            request(
                "GET",
                &format!("{collection}?labelSelector=-x%3Dy"),
                None,
                None,
            ),
            400,
            "BadRequest",
            None,
            "invalid label selector",
        ),
        case(
            "dryRun=Some on create",
            json_request(
                "POST",
                &format!("{collection}?dryRun=Some"),
                &cargo("bad", "new"),
            ),
            400,
            "BadRequest",
            None,
            "dryRun must be All, got \"Some\"",
        ),
        case(
            "dryRun=Some on delete",
            request("DELETE", &format!("{web_path}?dryRun=Some"), None, None),
            400,
            "BadRequest",
            None,
            "dryRun must be All",
        ),
        case(
            "watch=maybe",
            request("GET", &format!("{collection}?watch=maybe"), None, None),
            400,
            "BadRequest",
            None,
            "watch must be true or false, got \"maybe\"",
        ),
        case(
            "watch with a non-numeric resourceVersion",
            request(
                "GET",
                &format!("{collection}?watch=true&resourceVersion=abc"),
                None,
                None,
            ),
            400,
            "BadRequest",
            None,
            "resourceVersion \"abc\" is not one this server issued",
        ),
        // ---- methods
        case(
            "POST to an all-namespaces path",
            json_request("POST", &format!("{V1}/cargoes"), &cargo("bad", "new")),
            405,
            "MethodNotAllowed",
            None,
            "POST /apis/nanocl.io/v1/namespaces/NAMESPACE/cargoes",
        ),
        case(
            "PATCH with a body that is not a patch type",
            json_request("PATCH", &web_path, &json!({"spec": {"replicas": 3}})),
            415,
            "UnsupportedMediaType",
            None,
            "is not a patch: send application/merge-patch+json",
        ),
        case(
            "POST to an object",
            json_request("POST", &web_path, &cargo("bad", "web")),
            405,
            "MethodNotAllowed",
            None,
            "POST is not allowed",
        ),
        case(
            "PUT to a collection",
            json_request("PUT", &collection, &cargo("bad", "web")),
            405,
            "MethodNotAllowed",
            None,
            "PUT is not allowed",
        ),
        case(
            "DELETE a collection",
            request("DELETE", &collection, None, None),
            405,
            "MethodNotAllowed",
            None,
            "DELETE is not allowed",
        ),
        case(
            "DELETE on /status",
            request("DELETE", &format!("{web_path}/status"), None, None),
            405,
            "MethodNotAllowed",
            None,
            "DELETE is not allowed",
        ),
        // ---- namespaces
        case(
            "delete a namespace that still holds objects",
            request("DELETE", &format!("{V1}/namespaces/bad"), None, None),
            409,
            "Conflict",
            None,
            "namespace \"bad\" still holds 1 cargoes",
        ),
        case(
            "delete the global namespace",
            request("DELETE", &format!("{V1}/namespaces/global"), None, None),
            403,
            "Forbidden",
            None,
            "cannot be deleted",
        ),
        case(
            "a watch from a negative resourceVersion",
            request(
                "GET",
                &format!("{collection}?watch=true&resourceVersion=-5"),
                None,
                None,
            ),
            400,
            "BadRequest",
            None,
            "not one this server issued",
        ),
        case(
            "a watch from a resourceVersion beyond the store's revision",
            request(
                "GET",
                &format!("{collection}?watch=true&resourceVersion=9223372036854775807"),
                None,
                None,
            ),
            400,
            "BadRequest",
            None,
            "resourceVersion 9223372036854775807 is newer than this store's current revision",
        ),
        case(
            "a list with a resourceVersion that is not a number",
            request(
                "GET",
                &format!("{collection}?resourceVersion=abc"),
                None,
                None,
            ),
            400,
            "BadRequest",
            None,
            "not one this server issued",
        ),
        case(
            "watch on a single object",
            request("GET", &format!("{web_path}?watch=true"), None, None),
            400,
            "BadRequest",
            None,
            "watch is served on collections",
        ),
        case(
            "a Namespace with metadata.namespace",
            json_request("POST", &format!("{V1}/namespaces"), &{
                let mut ns = namespace("inner");
                ns["metadata"]["namespace"] = json!("bad");
                ns
            }),
            422,
            "Invalid",
            Some("metadata.namespace"),
            "not inside a namespace",
        ),
    ]
}

async fn bad_input_corpus(ctx: Ctx) {
    ctx.namespace("bad").await;
    let web = ctx.create(&cargoes("bad"), &cargo("bad", "web")).await;
    let cases = corpus(&web);
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let mut seen = std::collections::BTreeSet::new();
    for case in cases {
        assert!(seen.insert(case.what.clone()), "case {:?} twice", case.what);
        let before = ctx.snapshot().await;
        let response = ctx.send(case.raw).await;
        assert_failure(
            &response,
            case.code,
            case.reason,
            case.field,
            &case.message,
            &case.what,
        );
        assert_eq!(
            ctx.snapshot().await,
            before,
            "{}: the request changed the stored objects",
            case.what
        );
    }
    // The object the cases aimed at is as it was.
    assert_eq!(ctx.read(&cargo_path("bad", "web")).await, web);
    // And the server still works.
    let mut next = web.clone();
    next["spec"]["replicas"] = json!(2);
    ctx.replace(&cargo_path("bad", "web"), &next).await;
    // Media types are case-insensitive (RFC 9110 §8.3.1).
    let body = cargo("bad", "cased").to_string();
    let response = ctx
        .send(request(
            "POST",
            &cargoes("bad"),
            Some("Application/JSON; charset=utf-8"),
            Some(body.as_bytes()),
        ))
        .await;
    response.expect(201, "a POST with Content-Type Application/JSON");
}
