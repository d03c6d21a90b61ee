//! HTTP/1.1 through the proxy: the route by `Host` and path, then a backend connection per
//! client connection's request (the request's own: no pooling yet).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::{BoxBody, UnsyncBoxBody};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::handoff::InFlight;
use super::{connect, Listen, State, Target};

type Body = UnsyncBoxBody<Bytes, hyper::Error>;
/// A request body on its way to a replica (its length limit may stop it).
type Outgoing = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;
/// The connection to a replica for one exchange.
type BackendConnection =
    hyper::client::conn::http1::Connection<TokioIo<tokio::net::TcpStream>, Outgoing>;

/// Applies a route's header changes.
fn change(
    headers: &mut hyper::HeaderMap,
    changes: Option<&nanocl_api_types::proxy_rule::v1::HeaderChanges>,
) {
    let Some(changes) = changes else { return };
    for name in &changes.remove {
        if let Ok(name) = header::HeaderName::from_bytes(name.as_bytes()) {
            headers.remove(name);
        }
    }
    for (name, value) in &changes.set {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
}

/// Removes the hop-by-hop headers (RFC 9110 §7.6.1): those `Connection` names and the
/// connection's own (`Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`,
/// `Transfer-Encoding`, `Upgrade`). Each side of the proxy is a connection of its own: a
/// replica closing after each response must not close the client's kept-alive connection,
/// and the body is framed again for each side.
fn strip_hop_by_hop(headers: &mut hyper::HeaderMap) {
    let named: Vec<header::HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| header::HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::HeaderName::from_static("keep-alive"),
        header::HeaderName::from_static("proxy-connection"),
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// Whether an exchange stopped because the request body went over its route's limit.
fn over_limit(e: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Where ACME http-01 challenges are answered (never redirected).
const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

/// A backend's response body, in flight to the backend until it is dropped. It drives its
/// connection itself, in the client connection's task (no task per exchange).
struct Tracked {
    body: Incoming,
    connection: Option<std::pin::Pin<Box<BackendConnection>>>,
    _flight: Option<InFlight>,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        use std::future::Future as _;
        let this = self.get_mut();
        if let Some(connection) = this.connection.as_mut() {
            // Reads the socket into the body; done when the replica closed it.
            if connection.as_mut().poll(cx).is_ready() {
                this.connection = None;
            }
        }
        std::pin::Pin::new(&mut this.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Serves one client connection (keep-alive: several requests), over TLS when `https`.
pub async fn serve<T>(stream: T, peer: SocketAddr, listen: Listen, https: bool, state: Arc<State>)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let (state, listen) = (state.clone(), listen.clone());
        async move { Ok::<_, Infallible>(route(request, peer, &listen, https, &state).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// A response of the proxy itself (no backend): its status and a line saying why.
fn said(status: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(text + "\n"))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The request's host, without its port.
fn host_of(request: &Request<Incoming>) -> String {
    let raw = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().host().map(str::to_owned))
        .unwrap_or_default();
    // `[::1]:8080`, `example.com:8080`, `example.com`.
    let host = match raw.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest).to_owned(),
        None => raw
            .rsplit_once(':')
            .map_or(raw.as_str(), |(h, _)| h)
            .to_owned(),
    };
    host.to_ascii_lowercase()
}

/// Idempotent methods: sent again after a failure midway when they have no body.
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// Routes one request, then counts it and writes its access log line (JSON, on the
/// `nanocl::access` log target).
async fn route(
    request: Request<Incoming>,
    peer: SocketAddr,
    listen: &Listen,
    https: bool,
    state: &State,
) -> Response<Body> {
    let started = std::time::Instant::now();
    let (method, host, path) = (
        request.method().clone(),
        host_of(&request),
        request.uri().path().to_owned(),
    );
    let (response, rule, backend) = forward(request, &host, peer, listen, https, state).await;
    let seconds = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    let rule_name = rule.as_deref().unwrap_or("<none>");
    state.metrics.record_proxied(rule_name, status, seconds);
    if tracing::enabled!(target: "nanocl::access", tracing::Level::INFO) {
        let line = AccessLine {
            peer,
            listen,
            method: method.as_str(),
            host: &host,
            path: &path,
            status,
            rule: rule.as_deref(),
            backend,
            seconds,
        };
        tracing::info!(target: "nanocl::access", "{line}");
    }
    response
}

/// One request's access log line: a JSON object, written straight into the log line (no
/// `Value` built per request).
struct AccessLine<'a> {
    peer: SocketAddr,
    listen: &'a Listen,
    method: &'a str,
    host: &'a str,
    path: &'a str,
    status: u16,
    rule: Option<&'a str>,
    backend: Option<Target>,
    seconds: f64,
}

/// `text` as a JSON string.
struct Json<'a>(&'a str);

impl std::fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if u32::from(c) < 0x20 => write!(f, "\\u{:04x}", u32::from(c))?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

impl std::fmt::Display for AccessLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{{\"client\":\"{}\",\"listener\":\"{}\",\"method\":{},\"host\":{},\"path\":{},\"status\":{},\"rule\":",
            self.peer,
            self.listen,
            Json(self.method),
            Json(self.host),
            Json(self.path),
            self.status
        )?;
        match self.rule {
            Some(rule) => write!(f, "{}", Json(rule))?,
            None => f.write_str("null")?,
        }
        f.write_str(",\"backend\":")?;
        match self.backend {
            Some(b) => write!(f, "\"{b}\"")?,
            None => f.write_str("null")?,
        }
        write!(
            f,
            ",\"ms\":{}}}",
            (self.seconds * 1000.0 * 1000.0).round() / 1000.0
        )
    }
}

/// The response, the rule that routed it and the backend that answered.
async fn forward(
    request: Request<Incoming>,
    host: &str,
    peer: SocketAddr,
    listen: &Listen,
    https: bool,
    state: &State,
) -> (Response<Body>, Option<String>, Option<Target>) {
    let path = request.uri().path().to_owned();
    let table = state.table();
    if let Some(answer) = path
        .strip_prefix(ACME_CHALLENGE)
        .and_then(|token| table.challenges.get(token))
    {
        let mut response = said(StatusCode::OK, String::new());
        *response.body_mut() = Full::new(Bytes::from(answer.clone()))
            .map_err(|never| match never {})
            .boxed_unsync();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        return (response, None, None);
    }
    if let Some(port) = table
        .redirect(listen)
        .filter(|_| !path.starts_with(ACME_CHALLENGE))
    {
        let target = match port {
            443 => format!("https://{host}"),
            _ => format!("https://{host}:{port}"),
        };
        let path_and_query = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let location = format!("{target}{path_and_query}");
        let mut response = said(
            StatusCode::PERMANENT_REDIRECT,
            format!("this listener redirects to https: {location}"),
        );
        if let Ok(v) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, v);
        }
        return (
            response,
            table.listeners.get(listen).map(|r| r.rule().to_owned()),
            None,
        );
    }
    let Some(entry) = table.http(listen, host, &path) else {
        let response = said(
            StatusCode::NOT_FOUND,
            format!("no route for host {host:?} and path {path:?} on {listen}"),
        );
        return (response, None, None);
    };
    let (backends, rule) = (entry.backends.clone(), Some(entry.rule.clone()));
    let (request_headers, response_headers) = (
        entry.request_headers.clone(),
        entry.response_headers.clone(),
    );
    let (redirect, max_body) = (entry.redirect.clone(), entry.max_body);
    drop(table);
    if let Some(redirect) = redirect {
        let path_and_query = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let location = format!("{}{path_and_query}", redirect.url.trim_end_matches('/'));
        let status = redirect
            .status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::PERMANENT_REDIRECT);
        let mut response = said(status, format!("redirected to {location}"));
        if let Ok(v) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, v);
        }
        change(response.headers_mut(), response_headers.as_ref());
        return (response, rule, None);
    }
    if let Some(max) = max_body {
        let length = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(length) = length.filter(|l| *l > max) {
            let response = said(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "a request body of {length} bytes is over this route's limit of {max} bytes"
                ),
            );
            return (response, rule, None);
        }
    }
    if backends.targets.is_empty() {
        let response = said(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no ready replica of cargo {}", backends.cargo),
        );
        return (response, rule, None);
    }
    let (mut parts, body) = request.into_parts();
    // Only the path and query go to the backend; the Host stays the client's.
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    parts.uri = path_and_query.parse().unwrap_or_default();
    strip_hop_by_hop(&mut parts.headers);
    let forwarded = match parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(before) => format!("{before}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        parts.headers.insert("x-forwarded-for", v);
    }
    parts.headers.insert(
        "x-forwarded-proto",
        HeaderValue::from_static(if https { "https" } else { "http" }),
    );
    change(&mut parts.headers, request_headers.as_ref());
    // A body without a length is counted as it streams: past the limit, the exchange stops.
    let body: Outgoing = match max_body {
        Some(max) => {
            http_body_util::Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX)).boxed()
        }
        None => body.map_err(Into::into).boxed(),
    };
    // A request whose body is known to be empty can be sent again as it was.
    let replayable = idempotent(&parts.method) && hyper::body::Body::is_end_stream(&body);
    let mut body = Some(body);
    let order = state.order(&backends);
    let mut tried = 0;
    let mut last_error = String::new();
    while tried < order.len() {
        let Some((addr, stream, flight)) = connect(state, &order[tried..]).await else {
            break;
        };
        tried += order[tried..].iter().position(|a| *a == addr).unwrap_or(0) + 1;
        let (mut sender, connection) =
            match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok(pair) => pair,
                Err(e) => {
                    last_error = format!("{addr}: {e}");
                    continue;
                }
            };
        let mut connection: Option<std::pin::Pin<Box<BackendConnection>>> =
            Some(Box::pin(connection));
        let outgoing = match body.take() {
            Some(b) => b.boxed(),
            // Sent once already and failed midway: again, without a body.
            None if replayable => http_body_util::Empty::new()
                .map_err(|never| match never {})
                .boxed(),
            None => break,
        };
        let request = Request::from_parts(parts.clone(), outgoing);
        // The exchange and its connection, driven here until the response's head is in.
        let sent = {
            let send = sender.send_request(request);
            tokio::pin!(send);
            loop {
                tokio::select! {
                    biased;
                    sent = &mut send => break sent,
                    _ = async { connection.as_mut()?.as_mut().await.ok() }, if connection.is_some() => {
                        connection = None;
                    }
                }
            }
        };
        match sent {
            // In flight until the client has the whole body (or went away).
            Ok(mut response) => {
                strip_hop_by_hop(response.headers_mut());
                change(response.headers_mut(), response_headers.as_ref());
                let response = response.map(|body| {
                    Tracked {
                        body,
                        connection,
                        _flight: flight,
                    }
                    .boxed_unsync()
                });
                return (response, rule, Some(addr));
            }
            Err(e) if over_limit(&e) => {
                let response = said(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the request body is over this route's limit of {} bytes",
                        max_body.unwrap_or_default()
                    ),
                );
                return (response, rule, None);
            }
            Err(e) => {
                state.mark_down(addr);
                last_error = format!("{addr}: {e}");
                if !replayable {
                    break;
                }
            }
        }
    }
    let response = said(
        StatusCode::BAD_GATEWAY,
        format!(
            "no replica of cargo {} answered{}",
            backends.cargo,
            if last_error.is_empty() {
                String::new()
            } else {
                format!(" (last: {last_error})")
            }
        ),
    );
    (response, rule, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_access_line_should_be_json() {
        let listen = Listen {
            ip: "127.0.0.1".into(),
            port: 80,
        };
        let line = AccessLine {
            peer: "127.0.0.1:5000".parse().expect("addr"),
            listen: &listen,
            method: "GET",
            host: "a\"b\\c",
            path: "/x\ny\u{1}",
            status: 200,
            rule: Some("ns/front"),
            backend: Some(Target::local("10.0.0.2:8080".parse().expect("addr"))),
            seconds: 0.001_234_5,
        }
        .to_string();
        let json: serde_json::Value = serde_json::from_str(&line).expect(&line);
        assert_eq!(json["host"], "a\"b\\c");
        assert_eq!(json["path"], "/x\ny\u{1}");
        assert_eq!(json["rule"], "ns/front");
        assert_eq!(json["backend"], "10.0.0.2:8080");
        assert_eq!(json["status"], 200);
        assert_eq!(json["ms"], 1.235);
        assert_eq!(json["client"], "127.0.0.1:5000");
    }

    #[test]
    fn hop_by_hop_headers_should_stay_on_their_side() {
        let mut headers = hyper::HeaderMap::new();
        for (name, value) in [
            ("connection", "close, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("content-type", "text/plain"),
            ("x-end-to-end", "kept"),
        ] {
            headers.insert(
                header::HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        strip_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(header::HeaderName::as_str).collect();
        assert_eq!(left, ["content-type", "x-end-to-end"]);
    }

    #[test]
    fn only_idempotent_methods_should_be_sent_again() {
        assert!(idempotent(&Method::GET) && idempotent(&Method::PUT));
        assert!(!idempotent(&Method::POST) && !idempotent(&Method::PATCH));
    }
}
