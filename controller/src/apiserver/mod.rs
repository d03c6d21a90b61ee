//! The API server: DESIGN §5 over axum, on a unix socket, optional loopback TCP, and TCP with
//! mutual TLS ([`tls`]), each request authorized ([`authz`]) and every write audited.
//!
//! `serve(listeners, app)` takes its listeners and shutdown signal from the caller, so tests
//! start a real server in-process on a temp socket (the mini-redis shape).

pub mod authz;
pub mod cargo_docker;
pub mod discovery;
pub mod events;
pub mod exec;
pub mod handlers;
pub mod images;
pub mod listen;
pub mod logs;
pub mod objects;
pub mod patch;
pub mod path;
pub mod status;
pub mod table;
pub mod tls;
pub mod ui;
pub mod usage;
pub mod watch;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use nanocl_api_types::Version;
use serde_json::json;
use tokio::sync::watch as signal;
use tracing::Instrument;

use self::path::Subresource;
use self::status::ApiError;
use crate::metrics::Metrics;
use crate::store::Store;

/// Shared state of the server.
#[derive(Debug)]
pub struct App<S> {
    /// The store.
    pub store: S,
    /// Counters for `/metrics`, shared with the controllers and the deploy directories.
    pub metrics: Arc<Metrics>,
    /// Flips to `true` on shutdown; long-lived watches end then.
    pub shutdown: signal::Receiver<bool>,
    /// `etcd` or `embedded`, for `/version` and `/metrics`.
    pub store_kind: &'static str,
    /// The Docker engine of this nanocld (`--docker`; `None`: `DOCKER_HOST` or the local
    /// socket), where `/images/export` reads built images.
    pub docker: Option<String>,
    /// The audit log (`--audit-log`): a JSON line per write.
    pub audit: Option<Arc<authz::Audit>>,
}

pub use crate::objects::ensure_default_namespace;

/// The router of every endpoint.
pub fn router<S: Store + Clone>(app: Arc<App<S>>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz::<S>))
        .route("/version", get(version::<S>))
        .route("/metrics", get(metrics_text::<S>))
        .route("/openapi/v3", get(openapi_index))
        .route("/openapi/v3/apis/nanocl.io/{version}", get(openapi))
        .route("/images/export", get(images::export::<S>))
        .route("/api", get(discovery::core))
        .route("/apis", get(discovery::groups))
        .route(
            "/api/v1/namespaces/{name}",
            get(discovery::core_namespace::<S>),
        )
        .route("/apis/nanocl.io", get(discovery::nanocl_group))
        .route("/apis/nanocl.io/{version}", get(discovery::resources))
        .route("/ui", get(ui::index))
        .route("/ui/", get(ui::index))
        .route("/ui/app.js", get(ui::script))
        .route("/ui/style.css", get(ui::style))
        .fallback(resource::<S>)
        .layer(middleware::from_fn_with_state(
            app.clone(),
            log_request::<S>,
        ))
        .with_state(app)
}

/// Who sent `request`: its connection's [`Peer`](tls::Peer). A router served without
/// connection info (in-process tests) is the host's own.
pub fn peer_of<B>(request: &axum::http::Request<B>) -> tls::Peer {
    request
        .extensions()
        .get::<ConnectInfo<tls::Peer>>()
        .map_or(tls::Peer::Local("in process"), |c| c.0.clone())
}

/// One span per request with method, path, user and status; counts requests; audits writes.
async fn log_request<S: Store>(
    State(app): State<Arc<App<S>>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let peer = peer_of(&request);
    let span = match &peer {
        tls::Peer::User(user) => {
            tracing::info_span!("request", method = %method, path = %path, user = %user)
        }
        tls::Peer::Local(_) => tracing::info_span!("request", method = %method, path = %path),
    };
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let code = response.status().as_u16();
    app.metrics.record(method.as_str(), code);
    let write = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if let (true, Some(audit)) = (write, &app.audit) {
        let mut reason = None;
        if code >= 400 {
            // Errors are small Status objects: read the message, then answer it as it was.
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default();
            reason = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned));
            response = Response::from_parts(parts, Body::from(bytes));
        }
        audit.record(&peer, method.as_str(), &path, code, reason.as_deref());
    }
    span.in_scope(|| {
        tracing::info!(
            status = code,
            elapsed = %format!("{:.3}ms", started.elapsed().as_secs_f64() * 1000.0),
            "answered"
        );
    });
    response
}

async fn readyz<S: Store>(State(app): State<Arc<App<S>>>) -> Response {
    // Readable, and writable as far as the store knows (a full etcd answers reads).
    let ready = match app.store.get("namespaces/global").await {
        Ok(_) => app.store.writable().await,
        Err(e) => Err(e),
    };
    match ready {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => ApiError::unavailable(format!(
            "the store is not ready: {}",
            status::error_chain(&e)
        ))
        .into_response(),
    }
}

async fn version<S: Store>(State(app): State<Arc<App<S>>>) -> Response {
    let body = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "apiVersions": Version::ALL.iter().map(|v| v.api_version()).collect::<Vec<_>>(),
        "store": app.store_kind,
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string() + "\n",
    )
        .into_response()
}

async fn metrics_text<S: Store>(State(app): State<Arc<App<S>>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(app.store_kind),
    )
        .into_response()
}

/// `GET /openapi/v3`: where each group version's document is, as Kubernetes serves it
/// (client-go and kubectl read it to learn which query parameters PATCH takes).
async fn openapi_index() -> Response {
    let paths: serde_json::Map<String, serde_json::Value> = Version::ALL
        .iter()
        .map(|v| {
            let path = format!("apis/{}", v.api_version());
            (
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}")}),
            )
        })
        .collect();
    (
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "paths": paths }).to_string(),
    )
        .into_response()
}

/// `GET /openapi/v3/apis/nanocl.io/{version}`: the OpenAPI 3 document of the API.
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        nanocl_api_types::schema::openapi().to_string(),
    )
        .into_response()
}

async fn resource<S: Store + Clone>(State(app): State<Arc<App<S>>>, request: Request) -> Response {
    let peer = peer_of(&request);
    let (mut parts, body) = request.into_parts();
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    match route(app, &peer, &parts, body, upgrade).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn route<S: Store + Clone>(
    app: Arc<App<S>>,
    peer: &tls::Peer,
    parts: &axum::http::request::Parts,
    body: Body,
    upgrade: Option<hyper::upgrade::OnUpgrade>,
) -> Result<Response, ApiError> {
    use nanocl_api_types::namespace::v1::Verb;
    let verb = if parts.method == Method::GET {
        Verb::Read
    } else {
        Verb::Write
    };
    if let Some(namespace) = events::parse(parts.uri.path()) {
        let query = handlers::parse_query(parts.uri.query())?;
        if parts.method != Method::GET {
            return Err(ApiError::method_not_allowed(
                "events are read-only: GET them",
            ));
        }
        let ask = authz::Ask {
            verb,
            kind: nanocl_api_types::Kind::Cargo,
            namespace: namespace.as_deref(),
            name: None,
        };
        authz::check(&app.store, peer, ask).await?;
        return events::serve(app, namespace, &query).await;
    }
    let target = path::parse(parts.uri.path())?;
    let mut query = handlers::parse_query(parts.uri.query())?;
    query.table = table::wanted(&parts.headers);
    let ask = authz::Ask {
        verb,
        kind: target.kind,
        namespace: target.namespace.as_deref(),
        name: target.name.as_deref(),
    };
    authz::check(&app.store, peer, ask).await?;
    let name = target.name.clone();
    match (&parts.method, name.as_deref(), target.subresource) {
        (&Method::GET, None, _) if query.watch => watch::serve(app, target, query).await,
        (_, Some(name), _) if query.watch => Err(ApiError::bad_request(format!(
            "watch is served on collections: watch the collection and look for {name:?}"
        ))),
        (&Method::GET, None, _) => handlers::list(&app, &target, &query).await,
        (&Method::POST, None, _) => {
            handlers::create(&app, &target, &query, &parts.headers, body).await
        }
        (&Method::GET, Some(name), Some(Subresource::Log)) => {
            logs::serve(app.clone(), &target, name, &query).await
        }
        (&Method::POST, Some(name), Some(Subresource::Exec)) => {
            exec::serve(app.clone(), &target, name, &query, &parts.headers, upgrade).await
        }
        (&Method::GET, Some(name), Some(Subresource::Usage)) => {
            usage::serve(app.clone(), &target, name).await
        }
        (_, Some(_), Some(Subresource::Usage)) => {
            Err(ApiError::method_not_allowed("usage is read-only: GET it"))
        }
        (_, Some(_), Some(Subresource::Exec)) => Err(ApiError::method_not_allowed(
            "exec is a POST that switches the connection (Upgrade: nanocl-exec): use nanocl exec",
        )),
        (&Method::GET, Some(name), _) => handlers::get(&app, &target, name, &query).await,
        (&Method::PUT, Some(name), None) => {
            handlers::replace(&app, &target, name, &query, &parts.headers, body).await
        }
        (&Method::PUT, Some(name), Some(Subresource::Status)) => {
            handlers::replace_status(&app, &target, name, &query, &parts.headers, body).await
        }
        (&Method::PATCH, Some(name), None) => {
            patch::serve(&app, &target, name, &query, &parts.headers, body).await
        }
        (&Method::DELETE, Some(name), None) => handlers::delete(&app, &target, name, &query).await,
        (method, _, _) => Err(ApiError::method_not_allowed(format!(
            "{method} is not allowed on {}",
            parts.uri.path()
        ))),
    }
}

/// Where the API is served.
#[derive(Debug, Default)]
pub struct Listeners {
    /// Unix sockets.
    pub unix: Vec<tokio::net::UnixListener>,
    /// Plaintext TCP (loopback only).
    pub tcp: Vec<tokio::net::TcpListener>,
    /// TCP with mutual TLS.
    pub tls: Vec<tls::TlsListener>,
}

/// Serves `router` on every listener until `shutdown` flips, then lets in-flight requests
/// finish.
pub async fn serve(
    router: Router,
    listeners: Listeners,
    shutdown: signal::Receiver<bool>,
) -> std::io::Result<()> {
    fn spawn<L: axum::serve::Listener>(
        tasks: &mut tokio::task::JoinSet<std::io::Result<()>>,
        listener: L,
        router: Router,
        shutdown: &signal::Receiver<bool>,
    ) where
        L::Addr: std::fmt::Debug,
        tls::Peer:
            for<'a> axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
    {
        let mut rx = shutdown.clone();
        tasks.spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<tls::Peer>(),
            )
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|stop| *stop).await;
            })
            .await
        });
    }
    let mut tasks = tokio::task::JoinSet::new();
    for listener in listeners.unix {
        spawn(&mut tasks, listener, router.clone(), &shutdown);
    }
    for listener in listeners.tcp {
        spawn(&mut tasks, listener, router.clone(), &shutdown);
    }
    for listener in listeners.tls {
        spawn(&mut tasks, listener, router.clone(), &shutdown);
    }
    // In-flight requests get a grace period after shutdown starts; then connections close.
    let mut stopping = shutdown.clone();
    let grace = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::pin!(grace);
    loop {
        tokio::select! {
            done = tasks.join_next() => match done {
                Some(done) => done.map_err(std::io::Error::other)??,
                None => return Ok(()),
            },
            () = &mut grace => {
                tracing::warn!("requests still running after {}s of shutdown; closing them", SHUTDOWN_GRACE.as_secs());
                tasks.abort_all();
                return Ok(());
            }
        }
    }
}

/// How long in-flight requests may run once shutdown starts.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
