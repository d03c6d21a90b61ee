//! `nanocld`, the nanocl daemon: parses its configuration and runs the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use nanocl_controller::agent;
use nanocl_controller::apiserver::listen::{self, ListenUrl};
use nanocl_controller::apiserver::tls::{TlsFiles, TlsListener};
use nanocl_controller::apiserver::{self, App};
use nanocl_controller::controllers::tasks::Tasks;
use nanocl_controller::controllers::RunError;
use nanocl_controller::deploy;
use nanocl_controller::docker::Engine;
use nanocl_controller::metrics::Metrics;
use nanocl_controller::runtime::leader::{self, Election};
use nanocl_controller::store::{
    AnyStore, EmbeddedOptions, EmbeddedStore, EtcdOptions, EtcdStore, StoreUrl,
};
use tracing_subscriber::EnvFilter;

/// nanocld: stores nanocl objects and serves the nanocl API.
#[derive(Debug, Parser)]
#[command(name = "nanocld", version, max_term_width = 100)]
struct Args {
    /// Where objects are stored: embedded:PATH (one file) or etcd://HOST:PORT[,HOST:PORT...].
    /// Default: embedded:STATE_DIR/store.redb.
    #[arg(long, value_name = "URL", env = "NANOCL_STORE")]
    store: Option<String>,

    /// Prefix of every etcd key.
    #[arg(long, value_name = "PREFIX", default_value = "/nanocl")]
    store_prefix: String,

    /// Directory for nanocld's own files. Default: /var/lib/nanocl as root, else
    /// $XDG_STATE_HOME/nanocl (or ~/.local/state/nanocl).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// The key file Secrets are sealed with in the store: one key per line (base64 of 32
    /// bytes), the newest first. Created with one random key (mode 0600) when missing.
    /// Every nanocld of one store needs the same file; to rotate, put a new key on the
    /// first line everywhere and restart: the leader seals every secret again with it.
    /// Default: STATE_DIR/secrets.key.
    #[arg(long, value_name = "FILE")]
    secrets_key: Option<PathBuf>,

    /// This nanocld's API as other nodes reach it, tcp://HOST:PORT: where their agents
    /// fetch the images built here (no registry needed). Default: the first
    /// --listen tcp:// address.
    #[arg(long, value_name = "URL")]
    advertise_url: Option<String>,

    /// Where to listen: unix:///PATH or tcp://IP:PORT. Repeatable. Without any unix://
    /// address the default socket is used: /run/nanocl/nanocl.sock as root, else
    /// $XDG_RUNTIME_DIR/nanocl/nanocl.sock. TCP is plaintext and loopback only, unless
    /// --tls-cert, --tls-key and --tls-client-ca are given: then every tcp:// address
    /// (any IP) serves mutual TLS.
    #[arg(long, value_name = "URL")]
    listen: Vec<ListenUrl>,

    /// This nanocld's TLS certificate (PEM, the chain): with --tls-key and
    /// --tls-client-ca, the tcp:// listeners serve mutual TLS. `nanocl certs issue server`
    /// makes one. It is also this nanocld's client certificate towards other nodes.
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_client_ca"])]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_client_ca"])]
    tls_key: Option<PathBuf>,

    /// The CA whose client certificates get in (PEM); the common name of a client's
    /// certificate is its user, which namespaces' spec.access names. It is also the CA
    /// other nodes' certificates must come from.
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_key"])]
    tls_client_ca: Option<PathBuf>,

    /// Where the audit log goes: one JSON line per write (who, what, the result), whoever
    /// sends it. `-` is standard error. Default: STATE_DIR/audit.log.
    #[arg(long, value_name = "FILE")]
    audit_log: Option<PathBuf>,

    /// What this nanocld does among several hosts: `all` (the default, one host: the
    /// API, a candidate for the lead of the controllers and the scheduler, and this host's
    /// agent), `controller` (the API and a candidate for the lead; no containers run
    /// here) or `agent` (this host's node: registers it and runs the replicas placed on
    /// it; it answers the API on its socket too).
    #[arg(long, value_enum, default_value = "all")]
    role: Role,

    /// The Docker engine this host's agent runs replicas on: unix:///PATH or
    /// tcp://HOST:PORT. Default: DOCKER_HOST, else the local socket.
    #[arg(long, value_name = "URL")]
    docker: Option<String>,

    /// The group that owns the unix sockets (a name or a gid): its members may use nanocl
    /// without root, as with dockerd's `--group`. Set at every start (mode 0660); without
    /// it, a socket left by a killed nanocld passes its group on.
    #[arg(long, value_name = "GROUP", value_parser = parse_group)]
    socket_group: Option<u32>,

    /// Run the controllers that converge Docker (`all`), or serve the API only (`none`).
    #[arg(long, value_enum, default_value = "all")]
    controllers: Controllers,

    /// Keep the manifests under DIR applied, as `nanocl watch DIR` does: an initial sync, then
    /// one after every change. Repeatable; each directory's applyset is its name.
    #[arg(long, value_name = "DIR")]
    deploy_dir: Vec<PathBuf>,

    /// With --deploy-dir: delete objects whose definition left the directory. Without it they
    /// stay and the log says so. Namespace objects are never pruned by the daemon.
    #[arg(long, requires = "deploy_dir")]
    deploy_prune: bool,

    /// With --deploy-dir: quiet period after a change before syncing.
    #[arg(long, value_name = "DURATION", default_value = "400ms", value_parser = humantime::parse_duration)]
    deploy_debounce: std::time::Duration,

    /// Where the subnets of the Docker networks of Clusters and Networks (those without a
    /// `subnet` of their own) come from: CIDR[/SIZE], a private range and the size of each
    /// subnet. The default holds 1,024 networks of 254 addresses; subnets that overlap the
    /// host's routes or any Docker network are skipped.
    #[arg(long, value_name = "CIDR[/SIZE]", default_value = nanocl_controller::controllers::subnets::DEFAULT_POOL)]
    network_pool: nanocl_controller::controllers::subnets::Pool,

    /// How often this node samples the CPU and memory of the replicas of autoscaled cargoes
    /// (one Docker stats call per replica each time; nothing for cargoes without
    /// `autoscale`). The autoscaler reacts within one interval (plus a second).
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_metrics_interval)]
    metrics_interval: std::time::Duration,

    /// This host's name among several: its identity as a candidate for the lead of the
    /// controllers (one nanocld at a time runs them when several share an etcd). Default: the
    /// host name. A DNS-1123 label.
    #[arg(long, value_name = "NAME", env = "NANOCL_NODE")]
    node: Option<String>,

    /// A label of this node's Node object, KEY=VALUE (repeatable): what placement rules
    /// select hosts by. Set at every start; labels set otherwise are left alone.
    #[arg(long = "node-label", value_name = "KEY=VALUE", value_parser = parse_label)]
    node_labels: Vec<(String, String)>,

    /// An address of this host for the other hosts and the proxy (repeatable). Default: the
    /// source address of the default route.
    #[arg(long = "node-address", value_name = "IP")]
    node_addresses: Vec<std::net::IpAddr>,

    /// The port this node's proxy takes the other nodes' proxies' connections on, to reach
    /// the replicas that run here (on the node's first address; published in the Node's
    /// status). Open only while another node and a ProxyRule exist, and only to the other
    /// nodes' addresses. 0: none (replicas here get traffic from this node's proxy only).
    #[arg(long, value_name = "PORT", default_value_t = 7470)]
    proxy_relay_port: u16,

    /// How long a leader that stopped answering (crashed, paused, cut off) keeps the lead
    /// of the controllers before another nanocld takes over. A leader that stops gracefully
    /// hands over at once.
    #[arg(long, value_name = "DURATION", default_value = "4s", value_parser = parse_lease_ttl)]
    leader_ttl: std::time::Duration,

    /// How long a node whose nanocld stopped answering stays Ready. Longer than --leader-ttl:
    /// a node marked lost has its replicas moved, which a short stall should not cause.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_lease_ttl)]
    node_ttl: std::time::Duration,

    /// The ACME server ProxyRules' `acme` certificates come from (its directory URL).
    #[arg(
        long,
        value_name = "URL",
        env = "NANOCL_ACME_DIRECTORY",
        default_value = nanocl_controller::controllers::acme::LETS_ENCRYPT
    )]
    acme_directory: String,

    /// A contact address for the ACME account (the ACME server's expiry notices).
    #[arg(long, value_name = "EMAIL", env = "NANOCL_ACME_EMAIL")]
    acme_email: Option<String>,

    /// A PEM file of the CA that issued the ACME server's own HTTPS certificate, when it is
    /// not a public one (a private ACME server; Pebble in tests).
    #[arg(long, value_name = "FILE", env = "NANOCL_ACME_CA_FILE")]
    acme_ca_file: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,

    /// Log format; the level comes from NANOCL_LOG (RUST_LOG syntax, default info; a bare
    /// `debug` or `trace` is nanocld's own, its libraries stay at info).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Role {
    /// The controllers and this host's agent.
    All,
    /// The controllers only.
    Controller,
    /// This host's agent only.
    Agent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Controllers {
    /// Every controller.
    All,
    /// None: the API server alone.
    None,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    /// Readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

fn parse_label(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {value:?}")),
    }
}

/// The agent's configuration; the node's name and labels checked as a Node object would be.
fn agent_config(args: &Args, node: &str) -> anyhow::Result<agent::Config> {
    let labels: std::collections::BTreeMap<String, String> =
        args.node_labels.iter().cloned().collect();
    let mut probe = nanocl_api_types::node::v1::Node::new(
        nanocl_api_types::V1,
        "Node",
        node,
        None,
        Default::default(),
    );
    probe.metadata.labels = labels.clone();
    let errors = nanocl_api_types::AnyObject::Node(probe).validate();
    if let Some(e) = errors.into_iter().next() {
        anyhow::bail!("invalid --node-label: {}: {}", e.path, e.message);
    }
    let addresses: Vec<String> = if args.node_addresses.is_empty() {
        agent::primary_address()
    } else {
        args.node_addresses
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let proxy_relay = match (addresses.first(), args.proxy_relay_port) {
        (Some(ip), port) if port != 0 => ip
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| std::net::SocketAddr::new(ip, port).to_string()),
        _ => None,
    };
    Ok(agent::Config {
        node: node.to_owned(),
        labels,
        addresses,
        proxy_relay,
        ttl: args.node_ttl,
        identity: format!("{node}/{}", std::process::id()),
        check: agent::CHECK,
    })
}

/// `--socket-group`: a gid, or a group name looked up in /etc/group.
fn parse_group(value: &str) -> Result<u32, String> {
    if let Ok(gid) = value.parse::<u32>() {
        return Ok(gid);
    }
    let groups = std::fs::read_to_string("/etc/group")
        .map_err(|e| format!("cannot read /etc/group to find group {value:?}: {e}"))?;
    groups
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            (fields.next() == Some(value))
                .then(|| fields.nth(1).and_then(|gid| gid.parse().ok()))
                .flatten()
        })
        .ok_or_else(|| format!("no group {value:?} in /etc/group (give a name there, or a gid)"))
}

/// `--metrics-interval`: a duration of at least one second.
fn parse_metrics_interval(value: &str) -> Result<std::time::Duration, String> {
    let every = humantime::parse_duration(value).map_err(|e| e.to_string())?;
    if every < std::time::Duration::from_secs(1) {
        return Err(format!("must be at least 1s, got {value}"));
    }
    Ok(every)
}

fn parse_lease_ttl(value: &str) -> Result<std::time::Duration, String> {
    let ttl = humantime::parse_duration(value).map_err(|e| e.to_string())?;
    if ttl < std::time::Duration::from_secs(2) {
        return Err("at least 2s (etcd's shortest lease)".into());
    }
    Ok(ttl)
}

/// `--node`, or the host name; checked as a DNS-1123 label (it names a Node object).
fn node_name(flag: Option<&str>) -> anyhow::Result<String> {
    let (name, from) = match flag {
        Some(name) => (name.to_owned(), "--node"),
        None => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .context("cannot read the host name; pass --node NAME")?;
            (host.trim().to_ascii_lowercase(), "the host name")
        }
    };
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !valid {
        anyhow::bail!(
            "{from} {name:?} is not a valid node name (lowercase letters, digits and '-', at most 63, not starting or ending with '-'); pass --node NAME"
        );
    }
    Ok(name)
}

fn default_state_dir() -> PathBuf {
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if is_root {
        return PathBuf::from("/var/lib/nanocl");
    }
    match (std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME")) {
        (Some(dir), _) => PathBuf::from(dir).join("nanocl"),
        (None, Some(home)) => PathBuf::from(home).join(".local/state/nanocl"),
        (None, None) => PathBuf::from("/var/lib/nanocl"),
    }
}

/// `NANOCL_LOG` as a filter. A bare level (`debug`, `trace`) is nanocld's own: the
/// libraries underneath (bollard, hyper, h2, tonic, redb…) stay at `info`, so a debug log
/// says what nanocld does rather than every byte on its sockets; name them to have theirs
/// (`debug,bollard=debug`), as any `tracing` filter.
fn log_filter(value: Option<&str>) -> String {
    const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
    match value.map(str::trim) {
        None | Some("") => "info".to_owned(),
        Some(level) if LEVELS.contains(&level.to_ascii_lowercase().as_str()) => {
            let level = level.to_ascii_lowercase();
            if matches!(level.as_str(), "debug" | "trace") {
                format!("info,nanocl_controller={level},nanocl_client={level},nanocld={level}")
            } else {
                level
            }
        }
        Some(other) => other.to_owned(),
    }
}

fn init_logging(format: LogFormat) {
    let value = std::env::var("NANOCL_LOG").ok();
    let filter =
        EnvFilter::try_new(log_filter(value.as_deref())).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn open_store(
    args: &Args,
    state_dir: &std::path::Path,
) -> anyhow::Result<(AnyStore, &'static str)> {
    let url = match &args.store {
        Some(url) => url.parse::<StoreUrl>()?,
        None => StoreUrl::Embedded(state_dir.join("store.redb")),
    };
    Ok(match url {
        StoreUrl::Embedded(path) => {
            let store = EmbeddedStore::open(&path, EmbeddedOptions::default())
                .with_context(|| format!("cannot open the embedded store {}", path.display()))?;
            tracing::info!(path = %path.display(), "store: embedded");
            (AnyStore::Embedded(store), "embedded")
        }
        StoreUrl::Etcd(endpoints) => {
            let options = EtcdOptions {
                prefix: args.store_prefix.clone(),
                ..EtcdOptions::new(endpoints.clone())
            };
            let store = EtcdStore::connect(options)
                .await
                .with_context(|| format!("cannot connect to etcd at {}", endpoints.join(",")))?;
            tracing::info!(endpoints = %endpoints.join(","), prefix = %args.store_prefix, "store: etcd");
            (AnyStore::Etcd(store), "etcd")
        }
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
    let tls_files = match (&args.tls_cert, &args.tls_key, &args.tls_client_ca) {
        (Some(cert), Some(key), Some(client_ca)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: client_ca.clone(),
        }),
        _ => None,
    };
    if let Some(why) = args
        .listen
        .iter()
        .find_map(|l| l.refusal(tls_files.is_some()))
    {
        anyhow::bail!(why);
    }
    let tls = tls_files
        .as_ref()
        .map(apiserver::tls::server_config)
        .transpose()?;
    // This nanocld's certificate is its client certificate towards other nodes too.
    let peer_tls = tls_files
        .as_ref()
        .map(|files| {
            use nanocl_client::tls::{Pem, TlsSettings};
            TlsSettings {
                ca: Pem::File(files.client_ca.clone()),
                cert: Pem::File(files.cert.clone()),
                key: Pem::File(files.key.clone()),
            }
            .client_config()
            .context("--tls-*: cannot use them towards other nodes")
        })
        .transpose()?;
    let audit_path = args
        .audit_log
        .clone()
        .unwrap_or_else(|| state_dir.join("audit.log"));
    let audit = Arc::new(
        nanocl_controller::apiserver::authz::Audit::open(&audit_path).context("--audit-log")?,
    );
    tracing::info!(audit_log = %audit.shown(), "auditing writes");
    let deploy = deploy::Options {
        dirs: args.deploy_dir.clone(),
        prune: args.deploy_prune,
        debounce: args.deploy_debounce,
    };
    let syncers = deploy::syncers(&deploy)?;
    let node = node_name(args.node.as_deref())?;
    let agent_config = agent_config(&args, &node)?;
    let key_file = args
        .secrets_key
        .clone()
        .unwrap_or_else(|| state_dir.join("secrets.key"));
    let keyring = nanocl_controller::objects::sealing::Keyring::load_or_create(&key_file)
        .context("cannot use the key file secrets are sealed with (--secrets-key)")?;
    nanocl_controller::objects::sealing::install(keyring);
    let secret_files = state_dir.join("secret-files");
    let advertise = args.advertise_url.clone().or_else(|| {
        args.listen.iter().find_map(|l| match l {
            ListenUrl::Tcp(addr) if !addr.ip().is_unspecified() => Some(format!("tcp://{addr}")),
            _ => None,
        })
    });
    let (store, store_kind) = open_store(&args, &state_dir).await?;
    apiserver::ensure_default_namespace(&store)
        .await
        .context("cannot create the global namespace")?;

    let mut unix_paths: Vec<PathBuf> = args
        .listen
        .iter()
        .filter_map(|l| match l {
            ListenUrl::Unix(p) => Some(p.clone()),
            ListenUrl::Tcp(_) => None,
        })
        .collect();
    if unix_paths.is_empty() {
        unix_paths.push(nanocl_api_types::default_socket_path());
    }
    let mut unix = Vec::new();
    for path in &unix_paths {
        unix.push(listen::bind_unix(path, args.socket_group)?);
        tracing::info!(url = %format!("unix://{}", path.display()), "listening");
    }
    let mut listeners = apiserver::Listeners {
        unix,
        ..Default::default()
    };
    for l in &args.listen {
        if let ListenUrl::Tcp(addr) = l {
            let tcp = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on tcp://{addr}"))?;
            match &tls {
                Some(config) => {
                    listeners.tls.push(
                        TlsListener::new(tcp, config.clone())
                            .with_context(|| format!("cannot listen on tcp://{addr}"))?,
                    );
                    tracing::info!(url = %l, tls = "mutual", "listening");
                }
                None => {
                    listeners.tcp.push(tcp);
                    tracing::info!(url = %l, "listening");
                }
            }
        }
    }

    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let stop = Arc::new(stop);
    // Why nanocld stops, when it is not a signal.
    let failed: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            nanocl_client::signal::wait_for_interrupt().await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stop.send(true);
        });
    }
    let metrics = Arc::new(Metrics::default());
    // Every long-lived task is tracked: one that ends before shutdown stops nanocld with an
    // error (its supervisor restarts it), rather than leave it running half-alive.
    let mut tasks = Tasks::default();
    if args.controllers == Controllers::All {
        let agent_role = args.role != Role::Controller;
        // The node registers first: the Node controller must not find this host's own node
        // without its lease (a flap to NotReady at every restart).
        let (registered_tx, registered) = tokio::sync::watch::channel(!agent_role);
        if agent_role {
            {
                let (store, shutdown, failed) = (store.clone(), shutdown.clone(), failed.clone());
                let url = args.docker.clone();
                tasks.spawn("node agent", async move {
                    let Some(docker) = connect_docker(url.as_deref(), shutdown.clone()).await
                    else {
                        return;
                    };
                    if let Err(e) =
                        agent::run(store, docker, agent_config, registered_tx, shutdown).await
                    {
                        tracing::error!(error = %e, "the node agent stopped");
                        if let Ok(mut f) = failed.lock() {
                            f.get_or_insert(e.to_string());
                        }
                    }
                });
            }
            let (store, metrics, shutdown, failed) = (
                store.clone(),
                metrics.clone(),
                shutdown.clone(),
                failed.clone(),
            );
            let (url, pool, node) = (args.docker.clone(), args.network_pool, node.clone());
            let secret_files = secret_files.clone();
            let metrics_interval = args.metrics_interval;
            // The proxy in a process of its own, which outlives this one's restarts.
            let proxy_mode = match std::env::current_exe() {
                Ok(exe) => nanocl_controller::proxy::Mode::Process {
                    exe,
                    dir: state_dir.clone(),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "cannot tell nanocld's own path: the proxy runs in this process");
                    nanocl_controller::proxy::Mode::InProcess
                }
            };
            tasks.spawn("replica runner", async move {
                let Some(docker) = connect_docker(url.as_deref(), shutdown.clone()).await else {
                    return;
                };
                let options = nanocl_controller::controllers::Options {
                    network_pool: pool,
                    metrics_interval,
                    local_node: None,
                    secret_files: Some(secret_files),
                    proxy: proxy_mode,
                    ..Default::default()
                };
                if let Err(e) = nanocl_controller::controllers::run_node(
                    store, docker, node, metrics, options, shutdown,
                )
                .await
                {
                    tracing::error!(error = %e, "the replica runner stopped");
                    if let Ok(mut f) = failed.lock() {
                        f.get_or_insert(e.to_string());
                    }
                }
            });
        }
        if args.role != Role::Agent {
            let (store, metrics, shutdown) = (store.clone(), metrics.clone(), shutdown.clone());
            let (failed, url) = (failed.clone(), args.docker.clone());
            let options = nanocl_controller::controllers::Options {
                network_pool: args.network_pool,
                local_node: None,
                // Builds run on the controllers' Docker: this host's node when it runs one.
                node: (args.role == Role::All).then(|| node.clone()),
                advertise: advertise.clone(),
                peer_tls: peer_tls.clone(),
                acme: nanocl_controller::controllers::acme::Config {
                    directory: args.acme_directory.clone(),
                    email: args.acme_email.clone(),
                    ca_file: args.acme_ca_file.clone(),
                    state_dir: Some(state_dir.clone()),
                },
                ..Default::default()
            };
            let election = Election {
                key: leader::CONTROLLERS_KEY.to_owned(),
                identity: format!("{node}/{}", std::process::id()),
                ttl: args.leader_ttl,
                // The embedded store's file is locked by this process: nobody else can lead it.
                exclusive: matches!(store, AnyStore::Embedded(_)),
            };
            tasks.spawn("controllers", async move {
                if let Err(e) =
                    lead_controllers(store, metrics, options, url, election, registered, shutdown)
                        .await
                {
                    tracing::error!(error = %e, "the controllers stopped");
                    if let Ok(mut f) = failed.lock() {
                        f.get_or_insert(e.to_string());
                    }
                }
            });
        }
    }
    let app = Arc::new(App {
        store,
        metrics,
        shutdown: shutdown.clone(),
        store_kind,
        docker: args.docker.clone(),
        audit: Some(audit),
    });
    let router = apiserver::router(app.clone());
    for syncer in syncers {
        let api = deploy::InProcess::new(router.clone());
        let (app, shutdown) = (app.clone(), shutdown.clone());
        let name = format!("deploy directory {}", syncer.config().dir.display());
        tasks.spawn(
            name,
            deploy::run(syncer, api, app, deploy.debounce, shutdown),
        );
    }
    let supervisor = {
        let (stop, mut shutdown, failed) = (stop.clone(), shutdown.clone(), failed.clone());
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                // No task at all (`--controllers none`, no deploy directory): nothing to watch.
                // A task that ends because nanocld is stopping is no failure (the two signals
                // can arrive together).
                Some(ended) = tasks.next_ended() => {
                    if *stopping.borrow() {
                        tasks.join_all().await;
                        return;
                    }
                    tracing::error!(error = %ended, "stopping nanocld");
                    if let Ok(mut f) = failed.lock() {
                        f.get_or_insert(ended.to_string());
                    }
                    let _ = stop.send(true);
                }
                _ = async { let _ = shutdown.wait_for(|v| *v).await; } => {}
            }
            tasks.join_all().await;
        })
    };
    let result = apiserver::serve(router, listeners, shutdown).await;
    for path in &unix_paths {
        let _ = std::fs::remove_file(path);
    }
    let _ = supervisor.await;
    result.context("the API server failed")?;
    let failure = failed.lock().ok().and_then(|f| f.clone());
    if let Some(why) = failure {
        anyhow::bail!("{why}");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Runs the controllers while this nanocld leads: campaigns, runs them until the lead is lost
/// (then campaigns again) or nanocld stops (then hands the lead over).
async fn lead_controllers(
    store: AnyStore,
    metrics: Arc<Metrics>,
    options: nanocl_controller::controllers::Options,
    docker_url: Option<String>,
    election: Election,
    mut registered: tokio::sync::watch::Receiver<bool>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), RunError> {
    tokio::select! {
        _ = registered.wait_for(|r| *r) => {}
        () = async { let _ = shutdown.wait_for(|v| *v).await; } => return Ok(()),
    }
    loop {
        metrics.set_leading(false);
        let Some(mut leadership) = election.campaign(&store, &mut shutdown).await else {
            return Ok(());
        };
        metrics.set_leading(true);
        // The controllers stop on shutdown or when the lead is lost, whichever comes first.
        let (stop, controllers_shutdown) = tokio::sync::watch::channel(false);
        let mut controllers = Box::pin(run_controllers(
            store.clone(),
            metrics.clone(),
            options.clone(),
            docker_url.clone(),
            controllers_shutdown,
        ));
        let lost = tokio::select! {
            result = &mut controllers => {
                leadership.resign().await;
                return result;
            }
            () = async { let _ = shutdown.wait_for(|v| *v).await; } => false,
            () = leadership.lost() => true,
        };
        if lost {
            // Another nanocld may lead already: every reconcile in flight is dropped where it
            // stands (their tasks are aborted), not finished. Reconciles are idempotent and
            // Docker names deterministic, so the new leader picks up whatever was half done.
            drop(controllers);
            metrics.set_leading(false);
            // A lease given up before it ran out (renewals failing for three quarters of the
            // TTL) is revoked if the store answers, so that the next leader, this nanocld
            // included, need not wait for it.
            leadership.resign().await;
            tracing::warn!(
                "lost the lead; the controllers were stopped at once, campaigning again"
            );
            continue;
        }
        let _ = stop.send(true);
        let result = controllers.await;
        leadership.resign().await;
        return result;
    }
}

/// Connects to Docker, retrying while it is not there; `None` on shutdown.
async fn connect_docker(
    url: Option<&str>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Option<Engine> {
    let mut backoff = nanocl_controller::backoff::Backoff::new(
        std::time::Duration::from_millis(500),
        std::time::Duration::from_secs(30),
    );
    loop {
        match Engine::connect_to(url).await {
            Ok(d) => return Some(d),
            Err(e) => {
                tracing::error!(error = %e, "cannot reach Docker; waiting for it");
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = shutdown.wait_for(|v| *v) => return None,
                }
            }
        }
    }
}

/// Connects to Docker (retrying while it is not there) and runs the controllers.
async fn run_controllers(
    store: AnyStore,
    metrics: Arc<Metrics>,
    options: nanocl_controller::controllers::Options,
    docker_url: Option<String>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), RunError> {
    let Some(docker) = connect_docker(docker_url.as_deref(), shutdown.clone()).await else {
        return Ok(());
    };
    nanocl_controller::controllers::run(store, docker, metrics, options, shutdown).await
}

/// What else nanocld runs as.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// The node proxy's process: serves the routes the nanocld connected to --control sends,
    /// and the last ones while none is. nanocld starts it (in its state directory) and adopts
    /// it after a restart; it stops on SIGTERM.
    Proxy {
        /// The control socket (nanocld's: STATE_DIR/proxy.sock).
        #[arg(long, value_name = "PATH")]
        control: PathBuf,
    },
    /// Write the man page nanocld.8 into DIR (`make install`).
    #[command(name = "__man", hide = true)]
    Man {
        /// Where to write it.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let log_format = args.log_format;
    init_logging(log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nanocld: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match &args.command {
        Some(Command::Proxy { control }) => runtime
            .block_on(nanocl_controller::proxy::plane::serve_process(control))
            .map_err(|e| anyhow::anyhow!("proxy: {e}")),
        Some(Command::Man { dir }) => write_man(dir),
        None => runtime.block_on(run(args)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once: to the terminal as a sentence, or as a JSON log line for a collector.
            match log_format {
                LogFormat::Json => tracing::error!("{e:#}"),
                LogFormat::Text => eprintln!("nanocld: error: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// Writes `DIR/nanocld.8` from the clap definitions.
fn write_man(dir: &std::path::Path) -> anyhow::Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut page = Vec::new();
    clap_mangen::Man::new(Args::command())
        .section("8")
        .render(&mut page)
        .context("cannot render the man page")?;
    let path = dir.join("nanocld.8");
    std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn a_bare_debug_level_should_be_nanoclds_own() {
        assert_eq!(log_filter(None), "info");
        assert_eq!(log_filter(Some("warn")), "warn");
        assert_eq!(
            log_filter(Some("DEBUG")),
            "info,nanocl_controller=debug,nanocl_client=debug,nanocld=debug"
        );
        assert_eq!(
            log_filter(Some("debug,bollard=debug")),
            "debug,bollard=debug"
        );
    }
}
