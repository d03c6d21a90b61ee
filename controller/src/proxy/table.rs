//! The proxy's routes, built from the caches: a pure function of the ProxyRules, Cargoes,
//! Clusters, Nodes and Replicas it reads.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use nanocl_api_types::cargo::v1::Cargo as CargoObject;
use nanocl_api_types::cluster::v1::Cluster as ClusterObject;
use nanocl_api_types::node::v1::Node as NodeObject;
use nanocl_api_types::proxy_rule::v1::{
    HeaderChanges, ListenerProtocol, ProxyRule as ProxyRuleObject, Redirect,
};

use serde::{Deserialize, Serialize};

use crate::controllers::hub::Hub;
use crate::objects::api::ObjectRef;

/// A listen address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Listen {
    /// The IP.
    pub ip: String,
    /// The port.
    pub port: u16,
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => write!(f, "[{}]:{}", self.ip, self.port),
            _ => write!(f, "{}:{}", self.ip, self.port),
        }
    }
}

/// A replica's address, and the relay of the node it runs on when that is another node
/// (container addresses are the node's own: another node's replica is reached through
/// that node's proxy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Target {
    /// The replica's address and port.
    pub addr: SocketAddr,
    /// The relay of its node, when it runs on another node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<SocketAddr>,
}

impl Target {
    /// A replica of this node.
    pub fn local(addr: SocketAddr) -> Target {
        Target { addr, via: None }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.via {
            None => write!(f, "{}", self.addr),
            Some(via) => write!(f, "{} via {via}", self.addr),
        }
    }
}

/// This node's relay: where the other nodes' proxies connect to reach its replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relay {
    /// Where it listens (the node's `proxyRelay`).
    pub listen: SocketAddr,
    /// The other nodes' addresses: the only peers it takes connections from.
    pub peers: Vec<IpAddr>,
}

/// The ready replicas of one cargo port, and where round robin is.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Backends {
    /// `namespace/cargo`, for messages.
    pub cargo: String,
    /// Where they are.
    pub targets: Vec<Target>,
    /// The next to use.
    #[serde(skip)]
    pub next: AtomicUsize,
}

/// One HTTP route of a listener.
#[derive(Debug, Serialize, Deserialize)]
pub struct HttpEntry {
    /// The rule it comes from (`namespace/name`).
    pub rule: String,
    /// The host pattern, rendered (`None`: any host).
    pub host: Option<String>,
    /// The path prefix.
    pub path: String,
    /// Where requests go.
    pub backends: Arc<Backends>,
    /// Headers set or removed on the request.
    #[serde(default)]
    pub request_headers: Option<HeaderChanges>,
    /// Headers set or removed on the response.
    #[serde(default)]
    pub response_headers: Option<HeaderChanges>,
    /// A redirect answered instead.
    #[serde(default)]
    pub redirect: Option<Redirect>,
    /// The largest request body, in bytes.
    #[serde(default)]
    pub max_body: Option<u64>,
}

/// A certificate of an https listener.
#[derive(Serialize, Deserialize)]
pub struct Certificate {
    /// The rule it comes from (`namespace/name`).
    pub rule: String,
    /// The name it serves, rendered (`None`: the default).
    pub host: Option<String>,
    /// The chain, PEM.
    pub crt: String,
    /// Its key, PEM.
    pub key: String,
    /// Both, parsed (`Table::load`).
    #[serde(skip)]
    pub certified: Option<Arc<rustls::sign::CertifiedKey>>,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("rule", &self.rule)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// What a listener serves.
#[derive(Debug, Serialize, Deserialize)]
pub enum Routes {
    /// HTTP routes, the most specific first.
    Http {
        /// The rule that opened the listener (`namespace/name`).
        rule: String,
        /// The routes.
        entries: Vec<HttpEntry>,
        /// An https listener's certificates, the most specific name first, defaults last.
        tls: Option<Vec<Certificate>>,
        /// Every request is redirected to this https port.
        redirect: Option<u16>,
    },
    /// One cargo port.
    Tcp {
        /// The rule (`namespace/name`).
        rule: String,
        /// Where streams go.
        backends: Arc<Backends>,
    },
}

impl Routes {
    /// The protocol.
    pub fn protocol(&self) -> ListenerProtocol {
        match self {
            Routes::Http { tls: Some(_), .. } => ListenerProtocol::Https,
            Routes::Http { .. } => ListenerProtocol::Http,
            Routes::Tcp { .. } => ListenerProtocol::Tcp,
        }
    }

    /// The rule that opened it.
    pub fn rule(&self) -> &str {
        match self {
            Routes::Http { rule, .. } | Routes::Tcp { rule, .. } => rule,
        }
    }
}

/// Every listener and its routes: what the proxy serves, sent whole to its process.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Table {
    /// By listen address.
    #[serde(with = "pairs")]
    pub listeners: BTreeMap<Listen, Routes>,
    /// The ACME http-01 challenges being answered (every rule's), by token.
    pub challenges: std::collections::HashMap<String, String>,
    /// This node's relay, open while another node and a rule exist.
    #[serde(default)]
    pub relay: Option<Relay>,
    /// This node's address: the source of its connections to other nodes' relays (which
    /// take connections from node addresses only).
    #[serde(default)]
    pub source: Option<IpAddr>,
    /// The replicas of this node that take traffic, of every rule's routes (those of rules
    /// whose listeners open on other nodes too): what the relay may reach, and what a drain
    /// waits for the routes to leave.
    #[serde(default)]
    pub local: std::collections::HashSet<SocketAddr>,
}

/// A map whose keys are not strings, as a list of pairs in JSON.
mod pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

impl Table {
    /// Parses the certificates (once received).
    pub fn load(&mut self) {
        for routes in self.listeners.values_mut() {
            if let Routes::Http {
                tls: Some(certs), ..
            } = routes
            {
                for c in certs {
                    c.certified = certified_key(c.crt.as_bytes(), c.key.as_bytes())
                        .ok()
                        .map(Arc::new);
                }
            }
        }
    }

    /// Every address of this node's replicas the routes send traffic to.
    pub fn addresses(&self) -> std::collections::HashSet<IpAddr> {
        self.local.iter().map(SocketAddr::ip).collect()
    }

    /// The route of an HTTP request, if any: the first whose host and path match.
    pub fn http(&self, listen: &Listen, host: &str, path: &str) -> Option<&HttpEntry> {
        let Some(Routes::Http { entries, .. }) = self.listeners.get(listen) else {
            return None;
        };
        use nanocl_api_types::proxy_rule::v1::{host_matches, path_matches};
        entries.iter().find(|e| {
            e.host.as_deref().is_none_or(|h| host_matches(h, host)) && path_matches(&e.path, path)
        })
    }

    /// The certificate of https listener `listen` for the name a client asks for (SNI): the
    /// most specific that serves it, else the default.
    pub fn certificate(
        &self,
        listen: &Listen,
        name: Option<&str>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let Some(Routes::Http {
            tls: Some(certs), ..
        }) = self.listeners.get(listen)
        else {
            return None;
        };
        use nanocl_api_types::proxy_rule::v1::host_matches;
        certs
            .iter()
            .find(|c| match (&c.host, name) {
                (Some(h), Some(name)) => host_matches(h, name),
                _ => false,
            })
            .or_else(|| certs.iter().find(|c| c.host.is_none()))
            .and_then(|c| c.certified.clone())
    }

    /// The https port listener `listen` redirects every request to, if it does.
    pub fn redirect(&self, listen: &Listen) -> Option<u16> {
        match self.listeners.get(listen) {
            Some(Routes::Http { redirect, .. }) => *redirect,
            _ => None,
        }
    }
}

/// Where the replicas of `cargo` (in `namespace`) that take traffic are (their status'
/// `serving`: ready containers only), port `port`: those of node `node` at their address,
/// those of other Ready nodes through their node's relay (`relays`: node → relay).
fn backends(
    hub: &Hub,
    node: &str,
    relays: &BTreeMap<String, SocketAddr>,
    namespace: &str,
    cargo: &str,
    port: u16,
) -> Backends {
    let mut targets: Vec<Target> = hub
        .replicas_of(namespace, cargo)
        .iter()
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .filter_map(|r| {
            let status = r.status.as_ref()?;
            // The node that reports it is the node it is placed on.
            if status.node.as_deref() != Some(r.spec.node.as_str()) {
                return None;
            }
            let ip: IpAddr = status.serving.as_deref()?.parse().ok()?;
            let addr = SocketAddr::new(ip, port);
            if r.spec.node == node {
                Some(Target::local(addr))
            } else {
                let via = *relays.get(&r.spec.node)?;
                Some(Target {
                    addr,
                    via: Some(via),
                })
            }
        })
        .collect();
    // A cargo being deleted takes no more traffic: its containers are drained and removed.
    if hub
        .get(&ObjectRef::<CargoObject>::new(Some(namespace), cargo))
        .is_some_and(|c| c.metadata.deletion_timestamp.is_some())
    {
        targets.clear();
    }
    targets.sort();
    Backends {
        cargo: format!("{namespace}/{cargo}"),
        targets,
        next: AtomicUsize::new(0),
    }
}

/// How specific an HTTP route is: exact hosts before wildcards before any host, then longer
/// paths first.
fn specificity(host: Option<&str>, path: &str) -> (u8, std::cmp::Reverse<usize>) {
    let host_rank = match host {
        Some(h) if h.starts_with("*.") => 1,
        Some(_) => 0,
        None => 2,
    };
    (
        host_rank,
        std::cmp::Reverse(path.trim_end_matches('/').len()),
    )
}

/// The routes of node `node`, and the problems of routes left out, by rule
/// (`namespace/name`). Rules are read in key order: where two claim the same listener for
/// different protocols (or the same tcp listener), the first keeps it.
pub fn build(hub: &Hub, node: &str) -> (Table, Vec<(String, String)>) {
    let mut table = Table::default();
    let mut problems = Vec::new();
    let mut rules: Vec<Arc<ProxyRuleObject>> = hub.cache::<ProxyRuleObject>().list();
    rules.retain(|r| r.metadata.deletion_timestamp.is_none());
    rules.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    // The nodes: this one's labels and addresses, the others' relays (Ready ones only) and
    // addresses.
    let relay_of = |n: &NodeObject| {
        n.status
            .as_ref()
            .and_then(|s| s.proxy_relay.as_deref())
            .and_then(|r| r.parse::<SocketAddr>().ok())
    };
    let addresses_of = |n: &NodeObject| -> Vec<IpAddr> {
        n.status
            .iter()
            .flat_map(|s| &s.addresses)
            .filter_map(|a| a.parse().ok())
            .collect()
    };
    let (mut relays, mut peers) = (BTreeMap::new(), Vec::new());
    let mut me: Option<Arc<NodeObject>> = None;
    for n in hub.cache::<NodeObject>().list() {
        if n.metadata.name == node {
            me = Some(n);
            continue;
        }
        peers.extend(addresses_of(&n));
        if let Some(relay) = relay_of(&n).filter(|_| crate::controllers::cargo::node_ready(&n)) {
            relays.insert(n.metadata.name.clone(), relay);
        }
    }
    let labels = me
        .as_ref()
        .map(|n| n.metadata.labels.clone())
        .unwrap_or_default();
    table.source = me.as_deref().and_then(|n| addresses_of(n).first().copied());
    if !rules.is_empty() && !peers.is_empty() {
        peers.sort();
        peers.dedup();
        table.relay = me
            .as_deref()
            .and_then(relay_of)
            .map(|listen| Relay { listen, peers });
    }
    for rule in rules {
        let namespace = rule.metadata.namespace.clone().unwrap_or_default();
        let key = format!("{namespace}/{}", rule.metadata.name);
        let spec = &rule.spec;
        for c in rule.status.iter().flat_map(|s| &s.challenges) {
            table
                .challenges
                .insert(c.token.clone(), c.key_authorization.clone());
        }
        // Whatever node opens the listeners, this node's replicas behind them take traffic.
        let no_relays = BTreeMap::new();
        let ports = spec
            .http
            .iter()
            .filter(|r| r.redirect.is_none())
            .map(|r| (r.cargo.as_str(), r.port))
            .chain(spec.tcp.iter().map(|r| (r.cargo.as_str(), r.port)));
        for (cargo, port) in ports {
            let here = backends(hub, node, &no_relays, &namespace, cargo, port);
            table.local.extend(
                here.targets
                    .iter()
                    .filter(|t| t.via.is_none())
                    .map(|t| t.addr),
            );
        }
        // Not a node of the rule's: its listeners open elsewhere.
        if let Some(selector) = spec.nodes.as_deref() {
            match nanocl_api_types::selector::Selector::parse(selector) {
                Ok(s) if s.matches(&labels) => {}
                Ok(_) => continue,
                Err(e) => {
                    problems.push((key.clone(), format!("nodes: {e}: the rule is left out")));
                    continue;
                }
            }
        }
        let cluster = hub.get(&ObjectRef::<ClusterObject>::new(
            Some(&namespace),
            &spec.cluster,
        ));
        let vars = cluster
            .as_ref()
            .map(|c| c.spec.variables.clone())
            .unwrap_or_default();
        // A cargo of another cluster (or none) gets nothing: the rule's cluster is its scope.
        let in_cluster = |cargo: &str, problems: &mut Vec<(String, String)>| {
            match hub.get(&ObjectRef::<CargoObject>::new(Some(&namespace), cargo)) {
                Some(c) if c.spec.cluster == spec.cluster => true,
                Some(c) => {
                    problems.push((
                        key.clone(),
                        format!(
                            "cargo {cargo:?} is in cluster {:?}, not the rule's {:?}: its route is left out",
                            c.spec.cluster, spec.cluster
                        ),
                    ));
                    false
                }
                // Not applied yet: its route serves 503 until it is.
                None => true,
            }
        };
        for l in &spec.listeners {
            let listen = Listen {
                ip: l.host_ip().to_owned(),
                port: l.port,
            };
            let protocol = l.protocol();
            match table.listeners.get(&listen) {
                None if protocol.is_http() => {
                    table.listeners.insert(
                        listen.clone(),
                        Routes::Http {
                            rule: key.clone(),
                            entries: Vec::new(),
                            tls: (protocol == ListenerProtocol::Https).then(Vec::new),
                            redirect: l.https_redirect,
                        },
                    );
                }
                Some(Routes::Http { redirect, .. })
                    if protocol.is_http()
                        && table.listeners[&listen].protocol() == protocol
                        && *redirect == l.https_redirect => {}
                Some(other) => problems.push((
                    key.clone(),
                    format!(
                        "listener {listen} is already {}'s ({:?}): this rule's is left out",
                        other.rule(),
                        other.protocol()
                    ),
                )),
                None => {}
            }
            if protocol == ListenerProtocol::Https {
                let certs = certificates(hub, &key, &namespace, &spec.tls, &vars, &mut problems);
                if let Some(Routes::Http { tls: Some(all), .. }) = table.listeners.get_mut(&listen)
                {
                    all.extend(certs);
                }
            }
        }
        for r in &spec.tcp {
            let Some(l) = spec
                .listeners
                .iter()
                .find(|l| l.port == r.listener && l.protocol() == ListenerProtocol::Tcp)
            else {
                continue;
            };
            let listen = Listen {
                ip: l.host_ip().to_owned(),
                port: l.port,
            };
            if table.listeners.contains_key(&listen) || !in_cluster(&r.cargo, &mut problems) {
                continue;
            }
            table.listeners.insert(
                listen,
                Routes::Tcp {
                    rule: key.clone(),
                    backends: Arc::new(backends(hub, node, &relays, &namespace, &r.cargo, r.port)),
                },
            );
        }
        for (r, port) in spec
            .http
            .iter()
            .flat_map(|r| spec.http_listeners(r).into_iter().map(move |p| (r, p)))
        {
            let Some(l) = spec.listeners.iter().find(|l| l.port == port) else {
                continue;
            };
            let listen = Listen {
                ip: l.host_ip().to_owned(),
                port,
            };
            let host = match r
                .host
                .as_deref()
                .map(|h| nanocl_api_types::template::render(h, &vars))
            {
                None => None,
                Some(Ok(h)) => Some(h),
                Some(Err(e)) => {
                    problems.push((
                        key.clone(),
                        format!("host {:?}: {e}: its route is left out", r.host),
                    ));
                    continue;
                }
            };
            if r.redirect.is_none() && !in_cluster(&r.cargo, &mut problems) {
                continue;
            }
            let Some(Routes::Http {
                rule: owner,
                entries,
                ..
            }) = table.listeners.get_mut(&listen)
            else {
                continue;
            };
            if entries.iter().any(|e| e.host == host && e.path == r.path()) {
                problems.push((
                    key.clone(),
                    format!(
                        "listener {listen} host {} path {} is already routed (listener opened by {owner}): this route is left out",
                        host.as_deref().unwrap_or("*"),
                        r.path()
                    ),
                ));
                continue;
            }
            entries.push(HttpEntry {
                rule: key.clone(),
                host,
                path: r.path().to_owned(),
                backends: Arc::new(if r.redirect.is_some() {
                    Backends::default()
                } else {
                    backends(hub, node, &relays, &namespace, &r.cargo, r.port)
                }),
                request_headers: r.request_headers.clone(),
                response_headers: r.response_headers.clone(),
                redirect: r.redirect.clone(),
                max_body: r
                    .max_body_size
                    .as_deref()
                    .and_then(|m| nanocl_api_types::quantity::parse_memory(m).ok()),
            });
        }
    }
    for routes in table.listeners.values_mut() {
        if let Routes::Http { entries, tls, .. } = routes {
            entries.sort_by_key(|e| specificity(e.host.as_deref(), &e.path));
            if let Some(certs) = tls {
                certs.sort_by_key(|c| specificity(c.host.as_deref(), "/"));
            }
        }
    }
    (table, problems)
}

/// The certificates of rule `key`'s `tls` entries, from their Secrets; what cannot be used is
/// said in `problems` and left out.
fn certificates(
    hub: &Hub,
    key: &str,
    namespace: &str,
    tls: &[nanocl_api_types::proxy_rule::v1::TlsCertificate],
    vars: &BTreeMap<String, String>,
    problems: &mut Vec<(String, String)>,
) -> Vec<Certificate> {
    use nanocl_api_types::secret::v1::{Secret as SecretObject, SecretType};
    let mut out = Vec::new();
    for t in tls {
        let secret = hub.get(&ObjectRef::<SecretObject>::new(Some(namespace), &t.secret));
        let loaded = match secret {
            // Not obtained yet: the rule's status says how it goes.
            None if t.acme => continue,
            None => Err(format!("secret {:?} not found", t.secret)),
            Some(s) if s.spec.type_ != Some(SecretType::Tls) => {
                Err(format!("secret {:?} is not of type tls", t.secret))
            }
            Some(s) => {
                let crt = s.spec.value("tls.crt").unwrap_or_default();
                let pem_key = s.spec.value("tls.key").unwrap_or_default();
                certified_key(&crt, &pem_key)
                    .map(|k| {
                        (
                            String::from_utf8_lossy(&crt).into_owned(),
                            String::from_utf8_lossy(&pem_key).into_owned(),
                            Arc::new(k),
                        )
                    })
                    .map_err(|e| format!("secret {:?}: {e}", t.secret))
            }
        };
        let (crt, pem_key, certified) = match loaded {
            Ok(k) => k,
            Err(e) => {
                problems.push((key.to_owned(), format!("certificate left out: {e}")));
                continue;
            }
        };
        let certificate = |host: Option<String>| Certificate {
            rule: key.to_owned(),
            host,
            crt: crt.clone(),
            key: pem_key.clone(),
            certified: Some(certified.clone()),
        };
        if t.hosts.is_empty() {
            out.push(certificate(None));
        }
        for h in &t.hosts {
            match nanocl_api_types::template::render(h, vars) {
                Ok(host) => out.push(certificate(Some(host.to_ascii_lowercase()))),
                Err(e) => problems.push((key.to_owned(), format!("tls host {h:?}: {e}: left out"))),
            }
        }
    }
    out
}

/// A certificate chain and its private key from PEM, the key matching the first
/// certificate.
pub fn certified_key(crt: &[u8], key: &[u8]) -> Result<rustls::sign::CertifiedKey, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(crt)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.crt: not a PEM certificate chain ({e})"))?;
    if chain.is_empty() {
        return Err("tls.crt: no certificate in it (PEM, -----BEGIN CERTIFICATE-----)".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| format!("tls.key: not a PEM private key ({e})"))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("tls.key: {e}"))?;
    let certified = rustls::sign::CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| format!("tls.key does not match the certificate of tls.crt ({e})"))?;
    Ok(certified)
}

impl Table {
    /// The ready backends of each (rule, cargo), for `/metrics`.
    pub fn backend_counts(&self) -> BTreeMap<(String, String), usize> {
        let mut counts = BTreeMap::new();
        for routes in self.listeners.values() {
            match routes {
                Routes::Http { entries, .. } => {
                    for e in entries {
                        counts.insert(
                            (e.rule.clone(), e.backends.cargo.clone()),
                            e.backends.targets.len(),
                        );
                    }
                }
                Routes::Tcp { rule, backends } => {
                    counts.insert(
                        (rule.clone(), backends.cargo.clone()),
                        backends.targets.len(),
                    );
                }
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specific_routes_should_come_first() {
        let mut routes = vec![
            (None, "/"),
            (Some("*.example.com"), "/"),
            (Some("shop.example.com"), "/"),
            (Some("shop.example.com"), "/api"),
        ];
        routes.sort_by_key(|(h, p)| specificity(*h, p));
        assert_eq!(
            routes,
            [
                (Some("shop.example.com"), "/api"),
                (Some("shop.example.com"), "/"),
                (Some("*.example.com"), "/"),
                (None, "/"),
            ]
        );
    }
}
