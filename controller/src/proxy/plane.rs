//! The proxy's data plane, and the process it runs in.
//!
//! nanocld builds the routes (`Table`) from its caches; the data plane serves them: its
//! listeners, their connections, the requests in flight. On a host nanocld runs the data plane
//! in a process of its own (`nanocld proxy`), started by the first nanocld that needs it and
//! adopted by every nanocld after it, so restarting (or upgrading, or losing) nanocld does not
//! stop the proxy: it serves the last routes it was given until a nanocld gives it new ones.
//! nanocld talks to it over a unix socket in its state directory (mode 0600), one JSON line
//! per message: the routes (whole, on every change and on connecting), the handoff's
//! questions (is an address busy; drain these), and its request counts for `/metrics`.
//! In-process (`Plane::Local`) is the same data plane without the socket, for the tests and
//! benchmarks that run the controllers in their own process.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nanocl_api_types::proxy_rule::v1::ListenerProtocol;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use super::handoff::{DrainGuard, Drained, Handoff};
use super::{Listen, Open, State, Table, Workers};
use crate::metrics::Metrics;

/// A listener that could not be opened: the rule that wants it, and why.
pub type Problem = (String, String);

/// The version both ends must share (a proxy of another build is replaced).
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The data plane in this process: listeners accepting on worker threads, the routes they
/// read, the handoff's counts.
pub struct Local {
    state: Arc<State>,
    workers: Workers,
    open: tokio::sync::Mutex<BTreeMap<Listen, Open>>,
    /// The relay's listener, where it listens.
    relay: tokio::sync::Mutex<Option<(std::net::SocketAddr, Vec<tokio::task::JoinHandle<()>>)>>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local").finish_non_exhaustive()
    }
}

impl Local {
    /// A data plane counting its requests in `metrics`.
    pub fn start(metrics: Arc<Metrics>) -> std::io::Result<Arc<Local>> {
        Ok(Arc::new(Local {
            state: Arc::new(State {
                metrics,
                ..State::default()
            }),
            workers: Workers::start()?,
            open: tokio::sync::Mutex::new(BTreeMap::new()),
            relay: tokio::sync::Mutex::new(None),
        }))
    }

    /// Serves `table` from now on: listeners no rule wants any more close (connections
    /// already accepted run on), new ones open. The listeners that could not be opened.
    pub async fn apply(&self, mut table: Table) -> Vec<Problem> {
        table.load();
        let mut open = self.open.lock().await;
        let wanted: BTreeMap<Listen, (ListenerProtocol, String)> = table
            .listeners
            .iter()
            .map(|(l, r)| (l.clone(), (r.protocol(), r.rule().to_owned())))
            .collect();
        open.retain(|listen, o| {
            let keep = wanted.get(listen).is_some_and(|(p, _)| *p == o.protocol);
            if !keep {
                tracing::info!(listener = %listen, "proxy: closing a listener no rule uses");
                o.close();
            }
            keep
        });
        let routed = table.addresses();
        let relay = table.relay.as_ref().map(|r| r.listen);
        self.state.set(table);
        self.state.handoff.set_routed(routed);
        self.open_relay(relay).await;
        let mut problems = Vec::new();
        for (listen, (protocol, rule)) in wanted {
            if open.contains_key(&listen) {
                continue;
            }
            let bound = match TcpListener::bind((listen.ip.as_str(), listen.port)).await {
                Ok(listener) => listener
                    .into_std()
                    .and_then(|l| self.workers.serve(l, &listen, protocol, &self.state)),
                Err(e) => Err(e),
            };
            match bound {
                Ok(tasks) => {
                    tracing::info!(listener = %listen, ?protocol, %rule, "proxy: listening");
                    open.insert(listen, Open { protocol, tasks });
                }
                Err(e) => problems.push((rule, format!("cannot listen on {listen}: {e}"))),
            }
        }
        problems
    }

    /// Opens the relay on `at` (closing one elsewhere), or closes it (`None`). A relay that
    /// cannot be opened is said in the log and tried again with the next routes.
    async fn open_relay(&self, at: Option<std::net::SocketAddr>) {
        let mut relay = self.relay.lock().await;
        if relay.as_ref().map(|(a, _)| *a) == at {
            return;
        }
        if let Some((was, tasks)) = relay.take() {
            tracing::info!(relay = %was, "proxy: closing the relay");
            for t in tasks {
                t.abort();
            }
        }
        let Some(at) = at else { return };
        let bound = match TcpListener::bind(at).await {
            Ok(listener) => listener
                .into_std()
                .and_then(|l| self.workers.serve_relay(l, &self.state)),
            Err(e) => Err(e),
        };
        match bound {
            Ok(tasks) => {
                tracing::info!(relay = %at, "proxy: relay listening (the other nodes' proxies reach this node's replicas through it)");
                *relay = Some((at, tasks));
            }
            Err(e) => {
                tracing::warn!(relay = %at, error = %e, "proxy: cannot open the relay: the other nodes' proxies cannot reach this node's replicas (see --proxy-relay-port)")
            }
        }
    }

    /// The handoff's side of this data plane.
    pub fn handoff(&self) -> &Handoff {
        &self.state.handoff
    }
}

/// Where nanocld's proxy runs.
#[derive(Clone, Debug, Default)]
pub enum Mode {
    /// In this process (tests, benchmarks).
    #[default]
    InProcess,
    /// In a process of its own: `exe proxy --control DIR/proxy.sock`, adopted when it runs.
    Process {
        /// The nanocld binary.
        exe: PathBuf,
        /// Where its socket and pid file are (nanocld's state directory).
        dir: PathBuf,
    },
}

/// nanocld's handle on the data plane, wherever it runs.
#[derive(Clone, Debug, Default)]
pub enum Plane {
    /// No proxy here (a controllers-only nanocld).
    #[default]
    None,
    /// In this process.
    Local(Arc<Local>),
    /// In the proxy process.
    Remote(Arc<Remote>),
}

/// Keeps drained addresses out of rotation until dropped (their containers removed).
#[derive(Debug)]
pub enum Release {
    /// Nothing to release.
    None,
    /// In this process.
    Local(DrainGuard),
    /// In the proxy process: drain `id`.
    Remote(mpsc::UnboundedSender<Outgoing>, u64),
}

impl Drop for Release {
    fn drop(&mut self) {
        if let Release::Remote(tx, id) = self {
            let _ = tx.send(Outgoing::Release(*id));
        }
    }
}

impl Plane {
    /// The data plane for `mode`, counting in `metrics`.
    pub fn start(mode: &Mode, metrics: &Arc<Metrics>) -> Plane {
        match mode {
            Mode::InProcess => match Local::start(metrics.clone()) {
                Ok(local) => Plane::Local(local),
                Err(e) => {
                    tracing::error!(error = %e, "proxy: cannot start its worker threads; no listener opens");
                    Plane::None
                }
            },
            Mode::Process { exe, dir } => Plane::Remote(Remote::start(exe.clone(), dir)),
        }
    }

    /// Serves `table` from now on; the listeners that could not be opened.
    pub async fn apply(&self, table: Table) -> Vec<Problem> {
        match self {
            Plane::None => Vec::new(),
            Plane::Local(local) => local.apply(table).await,
            Plane::Remote(remote) => match remote
                .call(Request::Apply { table }, Duration::from_secs(10))
                .await
            {
                Some(Response::Applied { problems }) => problems,
                _ => Vec::new(),
            },
        }
    }

    /// Whether the routes send traffic to one of `addresses`, or something is in flight to
    /// one (unknown: not busy).
    pub async fn busy(&self, addresses: &[IpAddr]) -> bool {
        match self {
            Plane::None => false,
            Plane::Local(local) => local.handoff().busy(addresses),
            Plane::Remote(remote) => matches!(
                remote
                    .call(
                        Request::Busy {
                            addresses: addresses.to_vec()
                        },
                        Duration::from_secs(2)
                    )
                    .await,
                Some(Response::Busy { busy: true })
            ),
        }
    }

    /// Drains `addresses` (`Handoff::drain`); they stay out of rotation while the release
    /// lives. A proxy that cannot be reached has nothing in flight to drain.
    pub async fn drain(
        &self,
        addresses: &[IpAddr],
        propagation: Duration,
        timeout: Duration,
    ) -> (Drained, Release) {
        match self {
            Plane::None => (Drained::Idle, Release::None),
            Plane::Local(local) => {
                let (how, guard) = local.handoff().drain(addresses, propagation, timeout).await;
                (how, Release::Local(guard))
            }
            Plane::Remote(remote) => {
                let request = Request::Drain {
                    addresses: addresses.to_vec(),
                    propagation_ms: u64::try_from(propagation.as_millis()).unwrap_or(u64::MAX),
                    timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                };
                match remote.call(request, timeout + Duration::from_secs(5)).await {
                    Some(Response::Drained { in_flight, drain }) => (
                        if in_flight == 0 {
                            Drained::Idle
                        } else {
                            Drained::TimedOut(in_flight)
                        },
                        Release::Remote(remote.requests.clone(), drain),
                    ),
                    _ => (Drained::Idle, Release::None),
                }
            }
        }
    }

    /// The proxy process's request counts (Prometheus text), when it runs apart.
    pub async fn remote_metrics(&self) -> Option<String> {
        let Plane::Remote(remote) = self else {
            return None;
        };
        match remote.call(Request::Metrics, Duration::from_secs(2)).await {
            Some(Response::Metrics { text }) => Some(text),
            _ => None,
        }
    }
}

/// What nanocld asks the proxy process.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Request {
    /// Its version and pid.
    Hello,
    /// Serve these routes.
    Apply {
        /// The routes.
        table: Table,
    },
    /// `Handoff::busy`.
    Busy {
        /// The addresses.
        addresses: Vec<IpAddr>,
    },
    /// `Handoff::drain`.
    #[serde(rename_all = "camelCase")]
    Drain {
        /// The addresses.
        addresses: Vec<IpAddr>,
        /// The propagation time.
        propagation_ms: u64,
        /// The timeout.
        timeout_ms: u64,
    },
    /// The addresses of drain `id` may take traffic again.
    Release {
        /// The drain.
        id: u64,
    },
    /// Its request counts.
    Metrics,
    /// Stop (another version takes over).
    Exit,
}

/// What the proxy process answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Response {
    /// Its version and pid.
    Hello {
        /// Its version.
        version: String,
        /// Its pid.
        pid: u32,
    },
    /// The listeners it could not open.
    Applied {
        /// By rule.
        problems: Vec<Problem>,
    },
    /// Whether busy.
    Busy {
        /// Busy.
        busy: bool,
    },
    /// Drained.
    #[serde(rename_all = "camelCase")]
    Drained {
        /// Still in flight at the timeout.
        in_flight: usize,
        /// The drain, to release.
        drain: u64,
    },
    /// Its request counts, Prometheus text.
    Metrics {
        /// The text.
        text: String,
    },
    /// Done.
    Ok,
}

/// One message either way: a request or its response, by id.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope<T> {
    id: u64,
    #[serde(flatten)]
    body: T,
}

/// What nanocld's connection task is asked.
#[derive(Debug)]
pub enum Outgoing {
    /// A request and where its response goes.
    Call(Request, oneshot::Sender<Response>),
    /// Release a drain (no response).
    Release(u64),
}

/// nanocld's connection to the proxy process: started if none runs, adopted if one does,
/// replaced if it is another version, reconnected whenever it drops (the last routes sent
/// again).
#[derive(Debug)]
pub struct Remote {
    requests: mpsc::UnboundedSender<Outgoing>,
}

/// The control socket in `dir`.
pub fn socket_in(dir: &Path) -> PathBuf {
    dir.join("proxy.sock")
}

impl Remote {
    fn start(exe: PathBuf, dir: &Path) -> Arc<Remote> {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(connection(exe, socket_in(dir), rx));
        Arc::new(Remote { requests: tx })
    }

    async fn call(&self, request: Request, timeout: Duration) -> Option<Response> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(Outgoing::Call(request, tx)).ok()?;
        tokio::time::timeout(timeout, rx).await.ok()?.ok()
    }
}

/// Connects to the proxy process on `socket`, starting `exe proxy` when none answers and
/// `start` (some listener is wanted: a host without ProxyRules runs no proxy process).
async fn connect(
    exe: &Path,
    socket: &Path,
    start: bool,
    started: &std::sync::Mutex<Option<tokio::time::Instant>>,
) -> std::io::Result<Option<UnixStream>> {
    if let Ok(stream) = UnixStream::connect(socket).await {
        return Ok(Some(stream));
    }
    // Started a moment ago (this future cancelled meanwhile): wait for it, not another.
    let last = *started
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let recently = last.is_some_and(|at| at.elapsed() < Duration::from_secs(10));
    if !start && !recently {
        return Ok(None);
    }
    if recently {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while tokio::time::Instant::now() < deadline {
            if let Ok(stream) = UnixStream::connect(socket).await {
                return Ok(Some(stream));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        return Ok(None);
    }
    *started
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tokio::time::Instant::now());
    tracing::info!(socket = %socket.display(), "proxy: starting its process");
    let mut command = std::process::Command::new(exe);
    command
        .arg("proxy")
        .arg("--control")
        .arg(socket)
        .stdin(std::process::Stdio::null());
    {
        use std::os::unix::process::CommandExt as _;
        // A group of its own: a Ctrl-C or a signal to nanocld's group leaves it serving.
        command.process_group(0);
    }
    let mut child = command.spawn()?;
    // Reaped whenever it ends (a proxy replaced, say).
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match UnixStream::connect(socket).await {
            Ok(stream) => return Ok(Some(stream)),
            Err(e) if tokio::time::Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Sends one request on `writer`; its response goes to `reply`.
async fn send(
    writer: &mut tokio::net::unix::OwnedWriteHalf,
    id: u64,
    request: &Request,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(&Envelope { id, body: request })
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    line.push(b'\n');
    writer.write_all(&line).await
}

/// The connection task: connects (or starts the process), says hello (replacing a proxy of
/// another version), sends the last routes, then carries requests and responses until the
/// connection drops, and again. Requests made while there is no connection are answered by
/// nothing (their callers take the default), the last routes excepted.
async fn connection(exe: PathBuf, socket: PathBuf, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
    let ids = AtomicU64::new(1);
    let started = std::sync::Mutex::new(None);
    let mut last_table: Option<Request> = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        let wanted = matches!(&last_table, Some(Request::Apply { table })
            if !table.listeners.is_empty() || table.relay.is_some());
        let stream = tokio::select! {
            s = connect(&exe, &socket, wanted, &started) => s,
            next = rx.recv() => {
                match next {
                    None => return,
                    Some(Outgoing::Call(request @ Request::Apply { .. }, _)) => last_table = Some(request),
                    Some(_) => {}
                }
                continue;
            }
        };
        let stream = match stream {
            Ok(Some(s)) => s,
            // None runs and none is wanted: wait for routes (or a proxy started meanwhile).
            Ok(None) => {
                tokio::select! {
                    next = rx.recv() => match next {
                        None => return,
                        Some(Outgoing::Call(request @ Request::Apply { .. }, _)) => last_table = Some(request),
                        Some(_) => {}
                    },
                    () = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(socket = %socket.display(), error = %e, "proxy: cannot reach its process; trying again");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let (reader, mut writer) = stream.into_split();
        let mut lines = BufReader::new(reader).lines();
        // Hello: a proxy of another version is asked to stop, and started again.
        let hello = ids.fetch_add(1, Ordering::Relaxed);
        if send(&mut writer, hello, &Request::Hello).await.is_err() {
            continue;
        }
        let answer = tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await;
        let Ok(Ok(Some(line))) = answer else {
            continue;
        };
        match serde_json::from_str::<Envelope<Response>>(&line) {
            Ok(Envelope {
                body: Response::Hello { version, pid },
                ..
            }) if version == VERSION => {
                tracing::info!(pid, "proxy: connected to its process");
            }
            other => {
                tracing::warn!(answer = ?other.map(|e| e.body).ok(), want = VERSION, "proxy: its process is another version; replacing it");
                let _ = send(
                    &mut writer,
                    ids.fetch_add(1, Ordering::Relaxed),
                    &Request::Exit,
                )
                .await;
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                while socket.exists() && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                continue;
            }
        }
        backoff = Duration::from_millis(100);
        let mut pending: HashMap<u64, oneshot::Sender<Response>> = HashMap::new();
        if let Some(table) = &last_table {
            if send(&mut writer, ids.fetch_add(1, Ordering::Relaxed), table)
                .await
                .is_err()
            {
                continue;
            }
        }
        loop {
            tokio::select! {
                next = rx.recv() => {
                    let Some(next) = next else { return };
                    let id = ids.fetch_add(1, Ordering::Relaxed);
                    let sent = match next {
                        Outgoing::Call(request, reply) => {
                            let sent = send(&mut writer, id, &request).await;
                            if matches!(request, Request::Apply { .. }) {
                                last_table = Some(request);
                            }
                            pending.insert(id, reply);
                            sent
                        }
                        Outgoing::Release(drain) => {
                            send(&mut writer, id, &Request::Release { id: drain }).await
                        }
                    };
                    if sent.is_err() {
                        break;
                    }
                }
                line = lines.next_line() => {
                    let Ok(Some(line)) = line else { break };
                    match serde_json::from_str::<Envelope<Response>>(&line) {
                        Ok(e) => {
                            if let Some(reply) = pending.remove(&e.id) {
                                let _ = reply.send(e.body);
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "proxy: an answer of its process not understood"),
                    }
                }
            }
        }
        tracing::warn!(
            "proxy: the connection to its process dropped; reconnecting (it serves on meanwhile)"
        );
    }
}

/// `nanocld proxy --control SOCKET`: the data plane in a process of its own, serving the
/// routes the nanocld connected to `socket` sends, and the last ones when none is, until
/// SIGTERM or a nanocld of another version asks it to stop.
pub async fn serve_process(socket: &Path) -> std::io::Result<()> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // One proxy per socket: the lock is held for the process's life.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(socket.with_extension("lock"))?;
    if lock.try_lock().is_err() || UnixStream::connect(socket).await.is_ok() {
        return Err(std::io::Error::other(format!(
            "a proxy already serves {}",
            socket.display()
        )));
    }
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    }
    let pid_file = socket.with_extension("pid");
    std::fs::write(&pid_file, format!("{}\n", std::process::id()))?;
    let metrics = Arc::new(Metrics::default());
    let local = Local::start(metrics.clone())?;
    let (exit_tx, mut exit_rx) = tokio::sync::watch::channel(false);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    tracing::info!(socket = %socket.display(), pid = std::process::id(), "proxy process serving");
    // A state directory removed (or the socket taken by a successor): nobody can reach this
    // process any more; it stops.
    let mut orphaned = tokio::time::interval(Duration::from_secs(2));
    let me = std::process::id().to_string();
    loop {
        tokio::select! {
            _ = orphaned.tick() => {
                let ours = std::fs::read_to_string(&pid_file)
                    .is_ok_and(|p| p.trim() == me);
                if !socket.exists() || !ours {
                    tracing::info!("proxy process: its socket or pid file is gone; stopping");
                    break;
                }
            }
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let (local, metrics, exit) = (local.clone(), metrics.clone(), exit_tx.clone());
                tokio::spawn(async move {
                    control(stream, local, metrics, exit).await;
                });
            }
            _ = term.recv() => break,
            _ = interrupt.recv() => break,
            _ = exit_rx.changed() => break,
        }
    }
    tracing::info!("proxy process stopping");
    // Only ours: a successor may already have bound its own.
    if std::fs::read_to_string(&pid_file)
        .ok()
        .as_deref()
        .map(str::trim)
        == Some(std::process::id().to_string().as_str())
    {
        let _ = std::fs::remove_file(&pid_file);
        let _ = std::fs::remove_file(socket);
    }
    Ok(())
}

/// One nanocld's control connection. A drain is answered on a task of its own (it waits;
/// nothing else waits behind it); the addresses of the connection's drains come back into
/// rotation when it closes (its nanocld gone: whatever it was removing, its successor
/// drains again if need be).
async fn control(
    stream: UnixStream,
    local: Arc<Local>,
    metrics: Arc<Metrics>,
    exit: tokio::sync::watch::Sender<bool>,
) {
    let (reader, mut writer) = stream.into_split();
    let (tx, mut answers) = mpsc::unbounded_channel::<Vec<u8>>();
    let write = tokio::spawn(async move {
        while let Some(line) = answers.recv().await {
            if writer.write_all(&line).await.is_err() {
                break;
            }
        }
    });
    let answer = |tx: &mpsc::UnboundedSender<Vec<u8>>, id: u64, body: Response| {
        if let Ok(mut line) = serde_json::to_vec(&Envelope { id, body }) {
            line.push(b'\n');
            let _ = tx.send(line);
        }
    };
    let drains: Arc<std::sync::Mutex<HashMap<u64, DrainGuard>>> = Arc::default();
    let next_drain = AtomicU64::new(1);
    let mut lines = BufReader::new(reader).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let request: Envelope<Request> = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "proxy process: a request not understood");
                continue;
            }
        };
        let id = request.id;
        match request.body {
            Request::Hello => answer(
                &tx,
                id,
                Response::Hello {
                    version: VERSION.to_owned(),
                    pid: std::process::id(),
                },
            ),
            Request::Apply { table } => {
                let problems = local.apply(table).await;
                answer(&tx, id, Response::Applied { problems });
            }
            Request::Busy { addresses } => answer(
                &tx,
                id,
                Response::Busy {
                    busy: local.handoff().busy(&addresses),
                },
            ),
            Request::Drain {
                addresses,
                propagation_ms,
                timeout_ms,
            } => {
                let (local, drains, tx) = (local.clone(), drains.clone(), tx.clone());
                let drain = next_drain.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let (how, guard) = local
                        .handoff()
                        .drain(
                            &addresses,
                            Duration::from_millis(propagation_ms),
                            Duration::from_millis(timeout_ms),
                        )
                        .await;
                    drains
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(drain, guard);
                    let in_flight = match how {
                        Drained::Idle => 0,
                        Drained::TimedOut(n) => n,
                    };
                    answer(&tx, id, Response::Drained { in_flight, drain });
                });
            }
            Request::Release { id: drain } => {
                drains
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&drain);
            }
            Request::Metrics => answer(
                &tx,
                id,
                Response::Metrics {
                    text: metrics.render_proxy_requests(),
                },
            ),
            Request::Exit => {
                answer(&tx, id, Response::Ok);
                let _ = exit.send(true);
            }
        }
    }
    drop(tx);
    let _ = write.await;
}
