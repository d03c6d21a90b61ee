//! A small HTTP/1.1 client for nanocld's API over its unix socket, loopback TCP, or TCP with
//! mutual TLS.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::transport::Transport;

/// Where nanocld is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// A unix socket.
    Unix(PathBuf),
    /// `host:port` over TCP.
    Tcp(String),
}

impl Host {
    /// From `-H`/`NANOCL_HOST` (`unix:///PATH`, `tcp://HOST:PORT`, `http://HOST:PORT`), or
    /// the default socket.
    pub fn parse(value: Option<&str>) -> Result<Host> {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Ok(Host::Unix(nanocl_api_types::default_socket_path()));
        };
        if let Some(path) = value.strip_prefix("unix://") {
            return Ok(Host::Unix(path.into()));
        }
        if let Some(addr) = value
            .strip_prefix("tcp://")
            .or_else(|| value.strip_prefix("http://"))
        {
            return Ok(Host::Tcp(addr.trim_end_matches('/').to_owned()));
        }
        Err(Error::InvalidHost(value.to_owned()))
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Unix(p) => write!(f, "unix://{}", p.display()),
            Host::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// An answer: status and body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).map_err(|source| Error::BadAnswer {
            what: "nanocld answered with something that is not JSON".into(),
            source,
        })
    }

    /// The `Status` message of an error answer, or the raw body.
    pub fn error_message(&self) -> String {
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(v) if v["kind"] == "Status" => {
                let mut message = v["message"].as_str().unwrap_or("").to_owned();
                if let Some(causes) = v["details"]["causes"].as_array() {
                    for cause in causes {
                        message.push_str(&format!(
                            "\n  {}: {}",
                            cause["field"].as_str().unwrap_or(""),
                            cause["message"].as_str().unwrap_or("")
                        ));
                    }
                }
                message
            }
            _ => String::from_utf8_lossy(&self.body).trim().to_owned(),
        }
    }
}

/// The API client.
#[derive(Clone)]
pub struct Client {
    host: Host,
    timeout: Duration,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("host", &self.host)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// The name a TLS server at `addr` (`HOST:PORT`, `[IPv6]:PORT`) must have in its
/// certificate.
fn server_name(addr: &str) -> Result<rustls_pki_types::ServerName<'static>> {
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    rustls_pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
        Error::Tls(format!(
            "tcp://{addr}: {host:?} is not a name TLS can check: {e}"
        ))
    })
}

/// The causes of an error, joined.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// A body of events being streamed.
pub type EventBody = Incoming;

impl Client {
    /// A client for `host`.
    pub fn new(host: Host) -> Self {
        Client {
            host,
            timeout: Duration::from_secs(30),
            tls: None,
        }
    }

    /// A client for `host` that speaks mutual TLS over TCP with `config` (see
    /// [`crate::tls::TlsSettings::client_config`]).
    pub fn with_tls(host: Host, config: Arc<rustls::ClientConfig>) -> Self {
        Client {
            tls: Some(config),
            ..Client::new(host)
        }
    }

    /// Whether requests go over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some() && matches!(self.host, Host::Tcp(_))
    }

    /// What a failed exchange means: a TLS client whose connection the server ends during
    /// the handshake's last step was refused its certificate.
    fn failed(&self, what: &str, e: &hyper::Error) -> Error {
        let text = chain(e);
        if self.is_tls() && text.contains("alert") {
            return Error::Tls(format!(
                "nanocld at {} refused this client's certificate ({text}): is it signed by the CA nanocld trusts (its --tls-client-ca), and still valid?",
                self.host
            ));
        }
        if !self.is_tls()
            && matches!(self.host, Host::Tcp(_))
            && text.contains("invalid HTTP version")
        {
            return Error::Tls(format!(
                "nanocld at {} does not answer plain HTTP ({text}): it probably serves mutual TLS; use a context with its certificates (`nanocl context create`) or set NANOCL_TLS_CA, NANOCL_TLS_CERT and NANOCL_TLS_KEY",
                self.host
            ));
        }
        Error::Unavailable(format!("{what} failed: {text}"))
    }

    /// The host, for messages.
    pub fn host(&self) -> &Host {
        &self.host
    }

    async fn connect(&self) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
        self.connect_with(false).await
    }

    /// Sends `POST path` asking to switch the connection to `protocol` (`nanocl exec`);
    /// the switched connection, or the answer when the server said no.
    pub async fn upgrade(
        &self,
        path: &str,
        protocol: &str,
    ) -> Result<Result<TokioIo<hyper::upgrade::Upgraded>, Answer>> {
        let mut sender = self.connect_with(true).await?;
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(hyper::header::HOST, "nanocld")
            .header(hyper::header::CONNECTION, "Upgrade")
            .header(hyper::header::UPGRADE, protocol)
            .body(Full::new(Bytes::new()))
            .map_err(|e| Error::RequestBuildFailed(e.to_string()))?;
        let response = tokio::time::timeout(self.timeout, sender.send_request(request))
            .await
            .map_err(|_| {
                Error::Unavailable(format!(
                    "nanocld did not answer POST {path} within {:?}",
                    self.timeout
                ))
            })?
            .map_err(|e| self.failed(&format!("POST {path}"), &e))?;
        let status = response.status();
        if status != hyper::StatusCode::SWITCHING_PROTOCOLS {
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| Error::Unavailable(format!("reading the answer to POST {path}: {e}")))?
                .to_bytes();
            return Ok(Err(Answer { status, body }));
        }
        let upgraded = hyper::upgrade::on(response)
            .await
            .map_err(|e| Error::Unavailable(format!("switching POST {path} to {protocol}: {e}")))?;
        Ok(Ok(TokioIo::new(upgraded)))
    }

    async fn connect_with(
        &self,
        upgrades: bool,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
        let unreachable = |e: std::io::Error| {
            let hint = match &self.host {
                Host::Unix(p) if !p.exists() => format!(
                    "no socket at {}: is nanocld running? Start it with `nanocld` (or `make run`), or point -H / NANOCL_HOST at it",
                    p.display()
                ),
                _ => "is nanocld running? Start it with `nanocld` (or `make run`), or point -H / NANOCL_HOST at it".to_owned(),
            };
            Error::Unavailable(format!(
                "cannot reach nanocld at {}: {e}; {hint}",
                self.host
            ))
        };
        macro_rules! handshake {
            ($stream:expr) => {{
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new($stream))
                    .await
                    .map_err(|e| {
                        Error::Unavailable(format!(
                            "HTTP handshake with nanocld at {} failed: {e}",
                            self.host
                        ))
                    })?;
                tokio::spawn(async move {
                    let _ = if upgrades {
                        conn.with_upgrades().await
                    } else {
                        conn.await
                    };
                });
                Ok(sender)
            }};
        }
        match &self.host {
            Host::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(unreachable)?;
                handshake!(stream)
            }
            Host::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(unreachable)?;
                let Some(config) = &self.tls else {
                    return handshake!(stream);
                };
                let name = server_name(addr)?;
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                let stream = tokio::time::timeout(self.timeout, connector.connect(name, stream))
                    .await
                    .map_err(|_| {
                        Error::Unavailable(format!(
                            "the TLS handshake with nanocld at {} did not finish within {:?}",
                            self.host, self.timeout
                        ))
                    })?
                    .map_err(|e| {
                        let text = chain(&e);
                        if text.contains("certificate") || text.contains("alert") {
                            Error::Tls(format!(
                                "TLS with nanocld at {} failed: {text} (is its certificate signed by this context's CA, for the name or IP in the URL?)",
                                self.host
                            ))
                        } else {
                            Error::Unavailable(format!(
                                "TLS with nanocld at {} failed: {text}",
                                self.host
                            ))
                        }
                    })?;
                handshake!(stream)
            }
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<hyper::Response<Incoming>> {
        let mut sender = self.connect().await?;
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(hyper::header::HOST, "nanocld");
        let bytes = match body {
            Some(v) => {
                request = request.header(hyper::header::CONTENT_TYPE, "application/json");
                Bytes::from(
                    serde_json::to_vec(v).map_err(|e| Error::RequestBuildFailed(e.to_string()))?,
                )
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(bytes))
            .map_err(|e| Error::RequestBuildFailed(e.to_string()))?;
        tokio::time::timeout(self.timeout, sender.send_request(request))
            .await
            .map_err(|_| {
                Error::Unavailable(format!(
                    "nanocld did not answer {method} {path} within {:?}",
                    self.timeout
                ))
            })?
            .map_err(|e| self.failed(&format!("{method} {path}"), &e))
    }

    /// Sends a request and reads the whole answer.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer> {
        let response = self.send(method.clone(), path, body).await?;
        let status = response.status();
        let body = tokio::time::timeout(self.timeout, response.into_body().collect())
            .await
            .map_err(|_| {
                Error::Unavailable(format!("nanocld did not finish answering {method} {path}"))
            })?
            .map_err(|e| Error::Unavailable(format!("reading the answer to {method} {path}: {e}")))?
            .to_bytes();
        Ok(Answer { status, body })
    }

    /// Opens a watch: the answer's body is newline-delimited JSON events.
    pub async fn stream(&self, path: &str) -> Result<Result<EventBody, Answer>> {
        let response = self.send(Method::GET, path, None).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(Ok(response.into_body()));
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::Unavailable(format!("reading the answer to GET {path}: {e}")))?
            .to_bytes();
        Ok(Err(Answer { status, body }))
    }
}

/// Reads newline-delimited JSON values from a streaming body.
#[derive(Debug)]
pub struct Lines {
    body: EventBody,
    buffer: Vec<u8>,
}

impl Lines {
    /// Wraps a streaming body.
    pub fn new(body: EventBody) -> Self {
        Lines {
            body,
            buffer: Vec::new(),
        }
    }

    /// The next JSON line, or `None` at the end of the stream.
    pub async fn next(&mut self) -> Result<Option<Value>> {
        loop {
            if let Some(pos) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=pos).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(serde_json::from_slice(&line).map_err(|source| {
                    Error::BadAnswer {
                        what: "a watch event is not JSON".into(),
                        source,
                    }
                })?));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(frame) => {
                    let frame = frame
                        .map_err(|e| Error::Unavailable(format!("the watch stream broke: {e}")))?;
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

impl Transport for Client {
    async fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Answer> {
        Client::request(self, method, path, body).await
    }
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
pub fn encode_query(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
