//! `ProxyRule` in `nanocl.io/v1` (the only version it is served in).
//!
//! A rule puts cargoes of one cluster behind listeners of the node proxy: HTTP requests
//! routed by host and path prefix, TCP streams as they come, always to ready replicas.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::Object;
use crate::path::FieldPath;
use crate::validation::{self, quoted, FieldErrors};

/// A ProxyRule: listeners of the proxy and the cargoes behind them.
pub type ProxyRule = Object<ProxyRuleSpec, ProxyRuleStatus>;

/// The listeners and routes of a rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyRuleSpec {
    /// The cluster whose cargoes receive the traffic (its variables fill `{{ vars.NAME }}`
    /// in `host`).
    pub cluster: String,
    /// Where the proxy listens.
    pub listeners: Vec<Listener>,
    /// HTTP routes: by host and path prefix, to a cargo's port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpRoute>,
    /// TCP routes: every stream of a listener to a cargo's port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp: Vec<TcpRoute>,
    /// The certificates of the rule's https listeners, chosen by the name the client asks
    /// for (SNI).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<TlsCertificate>,
    /// The nodes whose proxies open the listeners, as a label selector over the nodes'
    /// labels (`role=edge`, `zone in (a,b)`); default every node. Replicas on any node of
    /// the cluster receive the traffic: a node reaches another's through that node's relay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<String>,
}

/// A certificate for https listeners.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsCertificate {
    /// The names it serves (exact or `*.example.com`; may use `{{ vars.NAME }}`); left out,
    /// it is the listeners' default: served to clients that ask for no name, or for one no
    /// other certificate serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// A Secret of type `tls` in the rule's namespace: `tls.crt` (the chain, PEM) and
    /// `tls.key`. With `acme`, nanocl writes it (and renews it).
    pub secret: String,
    /// Obtain the certificate for `hosts` over ACME (http-01: the ACME server asks for
    /// `http://HOST/.well-known/acme-challenge/...` on port 80, which an http listener of the
    /// proxy answers), keep it in `secret` and renew it before it expires. nanocld's
    /// `--acme-directory` says which ACME server (default: Let's Encrypt).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub acme: bool,
}

/// A port the proxy listens on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Listener {
    /// The address to listen on (default `127.0.0.1`; `0.0.0.0` for every interface).
    #[serde(default, rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// The port.
    pub port: u16,
    /// `http` (default), `https` (TLS with the rule's `tls` certificates) or `tcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<ListenerProtocol>,
    /// An http listener only: every request is answered with a redirect (308) to the same
    /// host and path on this https port (ACME http-01 challenges excepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_redirect: Option<u16>,
}

/// What a listener speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListenerProtocol {
    /// HTTP/1.1, routed by host and path.
    #[default]
    Http,
    /// HTTP/1.1 over TLS, routed by host and path; the certificate chosen by SNI.
    Https,
    /// Raw TCP streams.
    Tcp,
}

/// An HTTP route.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRoute {
    /// The listener's port (default: every http and https listener of the rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<u16>,
    /// The `Host` it answers: exact (`shop.example.com`) or a wildcard of one label or more
    /// (`*.example.com`); any host when left out. May use `{{ vars.NAME }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The path prefix it answers (default `/`), matched segment by segment: `/api`
    /// answers `/api` and `/api/x`, not `/apix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The cargo, in the rule's namespace and cluster (not with `redirect`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cargo: String,
    /// The port its containers listen on (not with `redirect`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub port: u16,
    /// Headers set (replaced) or removed on the request sent to the replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<HeaderChanges>,
    /// Headers set (replaced) or removed on the response sent to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<HeaderChanges>,
    /// Answer with a redirect instead of proxying (no `cargo`, no `port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Redirect>,
    /// The largest request body accepted (`10Mi`, `512Ki`, `4096`); a larger one is
    /// answered 413 and never reaches the replica. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_size: Option<String>,
}

/// Headers to set or remove.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderChanges {
    /// Set, replacing any value: name → value.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub set: std::collections::BTreeMap<String, String>,
    /// Removed, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// Where a route redirects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Redirect {
    /// `http(s)://host[:port]`, to which the request's path and query are appended.
    pub url: String,
    /// 301, 302, 303, 307 or 308 (default 308: permanent, method kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

fn is_zero(n: &u16) -> bool {
    *n == 0
}

/// Headers a route may not set or remove: HTTP/1.1's own framing.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

fn check_headers(changes: &HeaderChanges, at: &FieldPath, errors: &mut FieldErrors) {
    let token = |name: &str| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    let check = |name: &str, path: FieldPath, errors: &mut FieldErrors| {
        if !token(name) {
            errors.push(path, format!("invalid header name {}", quoted(name)));
        } else if HOP_BY_HOP.contains(&name.to_ascii_lowercase().as_str()) {
            errors.push(
                path,
                format!("{} is HTTP's own framing: the proxy sets it", quoted(name)),
            );
        }
    };
    for (name, value) in &changes.set {
        let p = at.key("set").key(name);
        check(name, p.clone(), errors);
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            errors.push(p, "a header value cannot hold a line break");
        }
    }
    for (i, name) in changes.remove.iter().enumerate() {
        check(name, at.key("remove").index(i), errors);
    }
}

/// A TCP route.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpRoute {
    /// The tcp listener's port.
    pub listener: u16,
    /// The cargo, in the rule's namespace and cluster.
    pub cargo: String,
    /// The port its containers listen on.
    pub port: u16,
}

/// What nanocl did for the rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyRuleStatus {
    /// The `metadata.generation` the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The certificates obtained over ACME, one per `tls` entry with `acme`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<AcmeCertificate>,
    /// The ACME http-01 challenges being answered now (every node's proxy serves them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub challenges: Vec<AcmeChallenge>,
}

/// A certificate obtained over ACME.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcmeCertificate {
    /// The Secret it is kept in.
    pub secret: String,
    /// The names it serves (rendered).
    pub hosts: Vec<String>,
    /// `Valid`, `Issuing` or `Failed`.
    pub state: String,
    /// When it expires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// When it will be renewed (RFC 3339): a third of its lifetime before it expires, 30
    /// days at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_after: Option<String>,
    /// What went wrong with the last attempt, and when the next one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One http-01 challenge: `GET /.well-known/acme-challenge/{token}` answers
/// `keyAuthorization`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcmeChallenge {
    /// The token.
    pub token: String,
    /// The answer.
    pub key_authorization: String,
}

/// The default listen address.
pub const DEFAULT_HOST_IP: &str = "127.0.0.1";

impl Listener {
    /// The listen address.
    pub fn host_ip(&self) -> &str {
        self.host_ip.as_deref().unwrap_or(DEFAULT_HOST_IP)
    }

    /// The protocol.
    pub fn protocol(&self) -> ListenerProtocol {
        self.protocol.unwrap_or_default()
    }
}

impl HttpRoute {
    /// The path prefix.
    pub fn path(&self) -> &str {
        self.path.as_deref().unwrap_or("/")
    }
}

impl ListenerProtocol {
    /// Whether it speaks HTTP (`http`, `https`).
    pub fn is_http(self) -> bool {
        matches!(self, ListenerProtocol::Http | ListenerProtocol::Https)
    }
}

impl ProxyRuleSpec {
    /// The listener ports of an HTTP route: its own, or every http and https listener's of
    /// the rule.
    pub fn http_listeners(&self, route: &HttpRoute) -> Vec<u16> {
        match route.listener {
            Some(port) => vec![port],
            None => {
                let mut ports: Vec<u16> = self
                    .listeners
                    .iter()
                    .filter(|l| l.protocol().is_http())
                    .map(|l| l.port)
                    .collect();
                ports.dedup();
                ports
            }
        }
    }
}

/// Fills in the defaults: `hostIP` 127.0.0.1, protocol `http`, path `/`.
pub fn apply_defaults(rule: &mut ProxyRule) {
    for l in &mut rule.spec.listeners {
        l.host_ip.get_or_insert_with(|| DEFAULT_HOST_IP.to_owned());
        l.protocol.get_or_insert(ListenerProtocol::Http);
    }
    for r in &mut rule.spec.http {
        r.path.get_or_insert_with(|| "/".to_owned());
    }
}

/// A `host`: a DNS name, or `*.` and one; placeholders are checked as templates (their
/// value is checked when rendered).
pub fn host_pattern(host: &str) -> Result<(), String> {
    if host.contains("{{") {
        return crate::template::parse(host).map(|_| ());
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid host {}: a DNS name (shop.example.com) or a wildcard of it (*.example.com), without a port",
            quoted(host)
        ))
    }
}

/// Checks a ProxyRule, collecting every problem.
pub fn validate(rule: &ProxyRule) -> FieldErrors {
    let mut errors = FieldErrors::new();
    rule.metadata
        .validate(&FieldPath::keys("metadata"), true, &mut errors);
    let spec = &rule.spec;
    let cluster = FieldPath::keys("spec.cluster");
    if spec.cluster.is_empty() {
        errors.push(cluster, "required: the cluster whose cargoes it routes to");
    } else {
        errors.check(&cluster, validation::dns1123_label(&spec.cluster));
    }
    if let Some(nodes) = &spec.nodes {
        errors.check(
            &FieldPath::keys("spec.nodes"),
            crate::selector::Selector::parse(nodes).map(|_| ()),
        );
    }
    let listeners = FieldPath::keys("spec.listeners");
    if spec.listeners.is_empty() {
        errors.push(listeners.clone(), "at least one listener: {port: 8080}");
    }
    for (i, l) in spec.listeners.iter().enumerate() {
        let p = listeners.index(i);
        if l.port == 0 {
            errors.push(p.key("port"), "must be between 1 and 65535, got 0");
        }
        if let Some(ip) = &l.host_ip {
            errors.check(&p.key("hostIP"), validation::ip_address(ip));
        }
        if l.protocol() == ListenerProtocol::Https && spec.tls.is_empty() {
            errors.push(
                p.key("protocol"),
                "an https listener needs a certificate: tls: [{secret: NAME}], a Secret of type tls",
            );
        }
        if let Some(to) = l.https_redirect {
            if l.protocol() != ListenerProtocol::Http {
                errors.push(
                    p.key("httpsRedirect"),
                    "only an http listener redirects to https",
                );
            } else if !spec
                .listeners
                .iter()
                .any(|o| o.port == to && o.protocol() == ListenerProtocol::Https)
            {
                errors.push(
                    p.key("httpsRedirect"),
                    format!("{to} is not an https listener of this rule"),
                );
            }
        }
        if let Some(j) = spec.listeners[..i]
            .iter()
            .position(|o| o.port == l.port && o.host_ip() == l.host_ip())
        {
            errors.push(p.key("port"), format!("{} is also listeners[{j}]", l.port));
        }
    }
    let is = |port: u16, protocol: ListenerProtocol| {
        spec.listeners
            .iter()
            .any(|l| l.port == port && l.protocol() == protocol)
    };
    let http = FieldPath::keys("spec.http");
    for (i, r) in spec.http.iter().enumerate() {
        let p = http.index(i);
        match r.listener {
            Some(port)
                if !is(port, ListenerProtocol::Http) && !is(port, ListenerProtocol::Https) =>
            {
                errors.push(
                    p.key("listener"),
                    format!("{port} is not an http or https listener of this rule"),
                )
            }
            None if spec.http_listeners(r).is_empty() => errors.push(
                p.key("listener"),
                "the rule has no http or https listener for it",
            ),
            _ => {}
        }
        if let Some(host) = &r.host {
            errors.check(&p.key("host"), host_pattern(host));
        }
        if let Some(path) = &r.path {
            if !path.starts_with('/') || path.contains(char::is_whitespace) || path.contains('?') {
                errors.push(
                    p.key("path"),
                    format!(
                        "invalid path {}: a prefix starting with /, without spaces or a query",
                        quoted(path)
                    ),
                );
            }
        }
        match &r.redirect {
            None => {
                if r.cargo.is_empty() {
                    errors.push(
                        p.key("cargo"),
                        "required: the cargo requests go to (or a redirect)",
                    );
                } else {
                    errors.check(&p.key("cargo"), validation::dns1123_label(&r.cargo));
                }
                if r.port == 0 {
                    errors.push(
                        p.key("port"),
                        "required: the port its containers listen on, 1 to 65535",
                    );
                }
            }
            Some(redirect) => {
                if !r.cargo.is_empty() || r.port != 0 {
                    errors.push(
                        p.key("redirect"),
                        "a redirect answers by itself: leave cargo and port out",
                    );
                }
                let url = redirect.url.as_str();
                let rest = url
                    .strip_prefix("https://")
                    .or_else(|| url.strip_prefix("http://"));
                if !rest.is_some_and(|r| !r.is_empty() && !r.contains(char::is_whitespace)) {
                    errors.push(
                        p.key("redirect").key("url"),
                        format!(
                            "invalid url {}: http(s)://host[:port][/prefix]",
                            quoted(url)
                        ),
                    );
                }
                if let Some(code) = redirect.status {
                    if ![301, 302, 303, 307, 308].contains(&code) {
                        errors.push(
                            p.key("redirect").key("status"),
                            format!("{code} is not a redirect: 301, 302, 303, 307 or 308"),
                        );
                    }
                }
            }
        }
        if let Some(h) = &r.request_headers {
            check_headers(h, &p.key("requestHeaders"), &mut errors);
        }
        if let Some(h) = &r.response_headers {
            check_headers(h, &p.key("responseHeaders"), &mut errors);
        }
        if let Some(size) = &r.max_body_size {
            errors.check(
                &p.key("maxBodySize"),
                crate::quantity::parse_memory(size).map(|_| ()),
            );
        }
        let mine = spec.http_listeners(r);
        let same = |o: &HttpRoute| {
            spec.http_listeners(o).iter().any(|l| mine.contains(l))
                && o.host == r.host
                && o.path() == r.path()
        };
        if let Some(j) = spec.http[..i].iter().position(same) {
            errors.push(
                p.clone(),
                format!("the same listener, host and path as http[{j}]"),
            );
        }
    }
    let tcp = FieldPath::keys("spec.tcp");
    for (i, r) in spec.tcp.iter().enumerate() {
        let p = tcp.index(i);
        if !is(r.listener, ListenerProtocol::Tcp) {
            errors.push(
                p.key("listener"),
                format!("{} is not a tcp listener of this rule", r.listener),
            );
        }
        errors.check(&p.key("cargo"), validation::dns1123_label(&r.cargo));
        if r.port == 0 {
            errors.push(p.key("port"), "must be between 1 and 65535, got 0");
        }
        if let Some(j) = spec.tcp[..i].iter().position(|o| o.listener == r.listener) {
            errors.push(
                p.key("listener"),
                format!(
                    "{} is also tcp[{j}]'s: one cargo per tcp listener",
                    r.listener
                ),
            );
        }
    }
    for (i, l) in spec.listeners.iter().enumerate() {
        let used = match l.protocol() {
            ListenerProtocol::Tcp => spec.tcp.iter().any(|r| r.listener == l.port),
            _ if l.https_redirect.is_some() => true,
            _ => spec
                .http
                .iter()
                .any(|r| spec.http_listeners(r).contains(&l.port)),
        };
        if !used {
            errors.push(
                listeners.index(i),
                format!("no route uses listener {}", l.port),
            );
        }
    }
    let tls = FieldPath::keys("spec.tls");
    if !spec.tls.is_empty()
        && !spec
            .listeners
            .iter()
            .any(|l| l.protocol() == ListenerProtocol::Https)
    {
        errors.push(
            tls.clone(),
            "certificates serve https listeners: the rule has none",
        );
    }
    for (i, t) in spec.tls.iter().enumerate() {
        let p = tls.index(i);
        errors.check(&p.key("secret"), validation::dns1123_subdomain(&t.secret));
        for (j, host) in t.hosts.iter().enumerate() {
            errors.check(&p.key("hosts").index(j), host_pattern(host));
        }
        if t.acme {
            if t.hosts.is_empty() {
                errors.push(
                    p.key("hosts"),
                    "required with acme: the names to obtain the certificate for",
                );
            }
            for (j, host) in t.hosts.iter().enumerate() {
                if host.starts_with("*.") {
                    errors.push(
                        p.key("hosts").index(j),
                        format!(
                            "{}: ACME over http-01 cannot prove a wildcard name; use a certificate from a Secret",
                            quoted(host)
                        ),
                    );
                }
            }
            if let Some(j) = spec.tls[..i].iter().position(|o| o.secret == t.secret) {
                errors.push(
                    p.key("secret"),
                    format!("also tls[{j}]'s: an ACME certificate needs a Secret of its own"),
                );
            }
        }
        let default = |o: &TlsCertificate| o.hosts.is_empty();
        if t.hosts.is_empty() && spec.tls[..i].iter().any(default) {
            errors.push(
                p.key("hosts"),
                "a second default certificate: name the hosts it serves",
            );
        }
    }
    errors
}

/// Whether `host` (a request's, without its port) matches `pattern` (a rendered `host`).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host.len().checked_sub(suffix.len() + 1).is_some_and(|cut| {
            host.is_char_boundary(cut)
                && host[cut..].starts_with('.')
                && host[cut + 1..].eq_ignore_ascii_case(suffix)
                && cut > 0
        }),
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// Whether `path` (a request's) is under `prefix`, segment by segment.
pub fn path_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_should_match_exactly_or_by_wildcard() {
        assert!(host_matches("shop.example.com", "SHOP.example.com"));
        assert!(!host_matches("shop.example.com", "example.com"));
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "aexample.com"));
    }

    #[test]
    fn paths_should_match_by_segment() {
        assert!(path_matches("/", "/anything"));
        assert!(path_matches("/api", "/api"));
        assert!(path_matches("/api", "/api/v1"));
        assert!(path_matches("/api/", "/api/v1"));
        assert!(!path_matches("/api", "/apix"));
    }
}
