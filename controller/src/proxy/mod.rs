//! The node proxy: the listeners of every ProxyRule, routing HTTP requests by host and path
//! and TCP streams to the ready replicas of this node, as the caches say now.
//!
//! It runs as a task of the node's agent (`controllers::spawn_node_tasks`): the routes are
//! rebuilt from the hub's caches on every change of a ProxyRule, Replica, Cargo or Cluster
//! (and every few seconds), and swapped in whole; a listener whose rules are unchanged keeps
//! its socket, and connections already accepted keep running whatever the routes become.
//! Backends are the addresses the agent reports in each Replica's status (`address`), only
//! of replicas that are `ready` (running the current spec, healthy when they have a check,
//! up for `minReadySeconds`), so a replacement gets traffic once ready and a replica that
//! stops being ready leaves the rotation at once. A backend that refuses a connection is
//! left out for a few seconds (passive check) and the connection is tried on the next
//! (nothing was sent yet, so for any request); a request without a body whose exchange
//! failed midway is sent again if its method is idempotent.

pub mod handoff;
mod http;
pub mod plane;
mod relay;
mod table;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use nanocl_api_types::proxy_rule::v1::{ListenerProtocol, ProxyRule as ProxyRuleObject};
use nanocl_api_types::{Kind, Resource as _};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::controllers::events;
use crate::controllers::hub::Hub;
use crate::metrics::Metrics;
use crate::store::Store;
pub use handoff::Handoff;
pub use plane::{Mode, Plane};
pub use table::{build, Backends, Listen, Relay, Routes, Table, Target};

/// How long a backend that refused a connection is left out.
const DOWN_FOR: Duration = Duration::from_secs(5);
/// The longest wait for a backend to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest a client may take to finish a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the routes are rebuilt without a change (a safety net).
const RESYNC: Duration = Duration::from_secs(5);

/// What every connection of the proxy reads: the routes now, and the backends out of
/// rotation.
#[derive(Debug, Default)]
pub struct State {
    table: RwLock<Arc<Table>>,
    down: Mutex<HashMap<Target, Instant>>,
    metrics: Arc<Metrics>,
    handoff: Handoff,
}

impl State {
    /// The routes now.
    pub fn table(&self) -> Arc<Table> {
        self.table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set(&self, table: Table) {
        *self
            .table
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(table);
    }

    /// Whether `target` is out of rotation.
    fn is_down(&self, target: &Target) -> bool {
        let mut down = self
            .down
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match down.get(target) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                down.remove(target);
                false
            }
            None => false,
        }
    }

    /// Takes `target` out of rotation for `DOWN_FOR`.
    fn mark_down(&self, target: Target) {
        tracing::info!(backend = %target, "proxy: backend refused a connection; out of rotation for a moment");
        self.down
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(target, Instant::now() + DOWN_FOR);
    }

    /// The backends to try, in order: round robin from the next one, those that refused a
    /// connection a moment ago last (better than nothing when all did); none being drained
    /// (this node's: another node's relay refuses what its node drains).
    fn order(&self, backends: &Backends) -> Vec<Target> {
        let n = backends.targets.len();
        if n == 0 {
            return Vec::new();
        }
        let start = backends
            .next
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let rotated: Vec<Target> = (0..n)
            .map(|i| backends.targets[(start + i) % n])
            .filter(|t| t.via.is_some() || !self.handoff.is_draining(&t.addr.ip()))
            .collect();
        let (up, down): (Vec<_>, Vec<_>) = rotated.into_iter().partition(|a| !self.is_down(a));
        up.into_iter().chain(down).collect()
    }
}

/// Connects to the first backend of `order` that accepts (another node's through its
/// relay), marking those that refuse; what is sent on a connection to a replica of this node
/// is in flight to it until the guard is dropped (another node's relay counts its own).
async fn connect(
    state: &State,
    order: &[Target],
) -> Option<(Target, tokio::net::TcpStream, Option<handoff::InFlight>)> {
    for target in order {
        let flight = target
            .via
            .is_none()
            .then(|| state.handoff.begin(target.addr.ip()));
        let attempt = async {
            match target.via {
                None => tokio::net::TcpStream::connect(target.addr).await,
                Some(via) => relay::open(via, target.addr, state.table().source).await,
            }
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Some((*target, stream, flight));
            }
            Ok(Err(e)) => {
                tracing::debug!(backend = %target, error = %e, "proxy: cannot connect");
                state.mark_down(*target);
            }
            Err(_) => state.mark_down(*target),
        }
    }
    None
}

/// A listener's accept loop, and what it was opened for.
struct Open {
    protocol: ListenerProtocol,
    /// One per worker.
    tasks: Vec<JoinHandle<()>>,
}

impl Open {
    fn close(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The proxy's worker threads, one per CPU: each a single-threaded runtime accepting on every
/// listener, so a connection and its backend exchange never hop between threads (nginx's
/// workers, in tokio), and the proxy never waits behind the controllers' work.
struct Workers {
    handles: Vec<tokio::runtime::Handle>,
    stop: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl Workers {
    fn start() -> std::io::Result<Workers> {
        let n = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let (mut handles, mut stop) = (Vec::new(), Vec::new());
        for i in 0..n {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            handles.push(runtime.handle().clone());
            stop.push(tx);
            std::thread::Builder::new()
                .name(format!("proxy-{i}"))
                .spawn(move || {
                    runtime.block_on(async {
                        let _ = rx.await;
                    });
                    // Connections still open end with the runtime.
                    runtime.shutdown_timeout(Duration::from_secs(1));
                })?;
        }
        Ok(Workers { handles, stop })
    }

    /// Accepts on `listener` in every worker.
    fn serve(
        &self,
        listener: std::net::TcpListener,
        listen: &Listen,
        protocol: ListenerProtocol,
        state: &Arc<State>,
    ) -> std::io::Result<Vec<JoinHandle<()>>> {
        let mut tasks = Vec::new();
        for handle in &self.handles {
            let (listener, listen, state) = (listener.try_clone()?, listen.clone(), state.clone());
            tasks.push(handle.spawn(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => accept(listener, listen, protocol, state).await,
                    Err(e) => {
                        tracing::error!(listener = %listen, error = %e, "proxy: cannot accept")
                    }
                }
            }));
        }
        Ok(tasks)
    }
}

impl Workers {
    /// Accepts relayed connections on `listener` in every worker.
    fn serve_relay(
        &self,
        listener: std::net::TcpListener,
        state: &Arc<State>,
    ) -> std::io::Result<Vec<JoinHandle<()>>> {
        let mut tasks = Vec::new();
        for handle in &self.handles {
            let (listener, state) = (listener.try_clone()?, state.clone());
            tasks.push(handle.spawn(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => relay::serve(listener, state).await,
                    Err(e) => tracing::error!(error = %e, "proxy relay: cannot accept"),
                }
            }));
        }
        Ok(tasks)
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for tx in self.stop.drain(..) {
            let _ = tx.send(());
        }
    }
}

/// Builds node `node`'s routes from the caches and hands them to the data plane `plane`,
/// on every change (and every few seconds), until `done`; says in Events what the routes
/// leave out and the listeners that cannot be opened. The data plane serves on after `done`
/// when it runs in a process of its own.
pub async fn run<S: Store + Clone>(
    hub: Hub,
    store: S,
    node: String,
    metrics: Arc<Metrics>,
    plane: Plane,
    done: impl std::future::Future<Output = ()>,
) {
    // What was said of listeners that cannot be opened, to say it once.
    let mut said: std::collections::HashSet<(String, String)> = Default::default();
    let mut changes = hub.subscribe();
    tokio::pin!(done);
    hub.wait_ready().await;
    let mut counts = tokio::time::interval(Duration::from_secs(1));
    loop {
        let (table, problems) = build(&hub, &node);
        for (rule, message) in problems {
            warn(&hub, &store, &rule, "ProxyRouteIgnored", message).await;
        }
        metrics.set_proxy_backends(table.backend_counts());
        let failed = plane.apply(table).await;
        said.retain(|p| failed.contains(p));
        for (rule, message) in failed {
            if said.insert((rule.clone(), message.clone())) {
                warn(&hub, &store, &rule, "ListenerFailed", message).await;
            }
        }
        // The next change (a burst of them is one rebuild), or the resync.
        let wait = async {
            loop {
                match changes.recv().await {
                    Ok(c)
                        if matches!(
                            c.kind,
                            Kind::ProxyRule
                                | Kind::Node
                                | Kind::Replica
                                | Kind::Cargo
                                | Kind::Cluster
                                | Kind::Secret
                        ) =>
                    {
                        break
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        std::future::pending::<()>().await;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            while changes.try_recv().is_ok() {}
        };
        tokio::pin!(wait);
        let resync = tokio::time::sleep(RESYNC);
        tokio::pin!(resync);
        loop {
            tokio::select! {
                () = &mut wait => break,
                () = &mut resync => break,
                () = &mut done => return,
                // The proxy process's request counts, for `/metrics`.
                _ = counts.tick() => {
                    if matches!(plane, Plane::Remote(_)) {
                        metrics.set_proxy_requests(plane.remote_metrics().await);
                    }
                }
            }
        }
    }
}

/// A Warning Event on rule `rule` (`namespace/name`).
async fn warn<S: Store>(hub: &Hub, store: &S, rule: &str, reason: &str, message: String) {
    let Some((namespace, name)) = rule.split_once('/') else {
        return;
    };
    let at = crate::objects::api::ObjectRef::<ProxyRuleObject>::new(Some(namespace), name);
    if let Some(object) = hub.get(&at) {
        tracing::warn!(rule, reason, %message, "proxy");
        events::record(
            store,
            &ProxyRuleObject::clone(&object).into_any(),
            true,
            reason,
            message,
        )
        .await;
    }
}

/// Accepts connections on `listener` until aborted, each served on its own task.
async fn accept(
    listener: TcpListener,
    listen: Listen,
    protocol: ListenerProtocol,
    state: Arc<State>,
) {
    let tls = match protocol {
        ListenerProtocol::Https => match tls_acceptor(&listen, &state) {
            Some(acceptor) => Some(acceptor),
            None => return,
        },
        _ => None,
    };
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(listener = %listen, error = %e, "proxy: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (state, listen, tls) = (state.clone(), listen.clone(), tls.clone());
        tokio::spawn(async move {
            match (protocol, tls) {
                (ListenerProtocol::Tcp, _) => tcp(stream, &listen, &state).await,
                (_, Some(tls)) => {
                    let accepted =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await;
                    match accepted {
                        Ok(Ok(stream)) => http::serve(stream, peer, listen, true, state).await,
                        Ok(Err(e)) => {
                            tracing::debug!(listener = %listen, client = %peer, error = %e, "proxy: tls handshake failed");
                        }
                        Err(_) => {
                            tracing::debug!(listener = %listen, client = %peer, "proxy: tls handshake timed out");
                        }
                    }
                }
                _ => http::serve(stream, peer, listen, false, state).await,
            }
        });
    }
}

/// The TLS side of https listener `listen`: the certificate of each handshake is chosen from
/// the routes of the moment by the name the client asks for.
fn tls_acceptor(listen: &Listen, state: &Arc<State>) -> Option<tokio_rustls::TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tracing::error!(error = %e, "proxy: no TLS protocol version"))
        .ok()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Sni {
            listen: listen.clone(),
            state: state.clone(),
        }));
    let mut config = config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Chooses an https listener's certificate by SNI, from the routes now.
#[derive(Debug)]
struct Sni {
    listen: Listen,
    state: Arc<State>,
}

impl rustls::server::ResolvesServerCert for Sni {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let name = hello.server_name().map(str::to_ascii_lowercase);
        let found = self
            .state
            .table()
            .certificate(&self.listen, name.as_deref());
        if found.is_none() {
            tracing::debug!(listener = %self.listen, name = ?name, "proxy: no certificate for this name");
        }
        found
    }
}

/// A TCP stream to the listener's backends.
async fn tcp(mut client: tokio::net::TcpStream, listen: &Listen, state: &State) {
    let table = state.table();
    let Some(Routes::Tcp { backends, .. }) = table.listeners.get(listen) else {
        return;
    };
    let order = state.order(backends);
    let Some((_, mut backend, _flight)) = connect(state, &order).await else {
        tracing::debug!(listener = %listen, "proxy: no backend accepted a tcp stream");
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
}
