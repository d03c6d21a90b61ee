//! The API over TCP with mutual TLS (`--tls-cert`, `--tls-key`, `--tls-client-ca`).
//!
//! Every client shows a certificate signed by the client CA; its subject's common name is
//! the user that authorization ([`super::authz`]) and the audit log know. Handshakes run in
//! their own tasks, so a slow or silent client never holds up the others; only finished
//! handshakes reach axum, each with its [`Peer`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio_rustls::server::TlsStream;

/// The files of `--tls-cert`, `--tls-key` and `--tls-client-ca`.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// nanocld's certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The CA that signs the clients' certificates (PEM): only its clients get in.
    pub client_ca: PathBuf,
}

/// Who sent a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A client of the unix socket or of plaintext loopback TCP: the host's own, trusted
    /// as Docker trusts its socket.
    Local(&'static str),
    /// A client of the TLS listener: its certificate's common name.
    User(String),
}

impl Peer {
    /// The user for the audit log.
    pub fn name(&self) -> String {
        match self {
            Peer::Local(via) => format!("local ({via})"),
            Peer::User(user) => user.clone(),
        }
    }
}

impl Connected<IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(_: IncomingStream<'_, UnixListener>) -> Self {
        Peer::Local("unix socket")
    }
}

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(_: IncomingStream<'_, TcpListener>) -> Self {
        Peer::Local("loopback TCP")
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Peer::User(stream.remote_addr().user.clone())
    }
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

/// The PEM certificates of `pem` (from `file`, for errors).
pub fn certificates(pem: &[u8], file: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not PEM certificates", file.display()))?;
    if certs.is_empty() {
        bail!(
            "{}: holds no certificate (expected PEM, BEGIN CERTIFICATE)",
            file.display()
        );
    }
    Ok(certs)
}

/// The server side of mutual TLS: nanocld's certificate, and only clients whose
/// certificate the client CA signed (and that is valid now).
pub fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&read(&files.cert, "--tls-cert")?, &files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key, "--tls-key")?)
        .with_context(|| format!("--tls-key {}: no PEM private key", files.key.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in certificates(
        &read(&files.client_ca, "--tls-client-ca")?,
        &files.client_ca,
    )? {
        roots.add(ca).with_context(|| {
            format!(
                "--tls-client-ca {}: not a CA certificate",
                files.client_ca.display()
            )
        })?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("--tls-client-ca: cannot verify clients with it")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "--tls-cert {} and --tls-key {} do not make a usable pair",
                files.cert.display(),
                files.key.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The user a client certificate names: its subject's common name (else the whole subject).
pub fn user_of(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let user = match subject.iter_common_name().next() {
        Some(cn) => cn.as_str().ok()?.to_owned(),
        None => subject.to_string(),
    };
    (!user.is_empty()).then_some(user)
}

/// Where a TLS client comes from, and who it is.
#[derive(Clone, Debug)]
pub struct PeerAddr {
    /// Its address.
    pub addr: SocketAddr,
    /// Its certificate's common name.
    pub user: String,
}

/// A TCP listener that hands axum connections whose TLS handshake finished.
#[derive(Debug)]
pub struct TlsListener {
    accepted: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, PeerAddr)>,
    local: SocketAddr,
}

/// How long a client may take over its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl TlsListener {
    /// Serves TLS with `config` on `tcp`.
    pub fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, accepted) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (stream, addr) = tokio::select! {
                    () = tx.closed() => return,
                    accepted = tcp.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            // Out of file descriptors and the like: wait, as axum does.
                            tracing::warn!(error = %e, "accepting a TLS connection failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    let tls = match handshake {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::info!(client = %addr, error = %e, "TLS handshake refused");
                            return;
                        }
                        Err(_) => {
                            tracing::info!(client = %addr, "TLS handshake timed out");
                            return;
                        }
                    };
                    let user = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(user_of);
                    let Some(user) = user else {
                        tracing::info!(client = %addr, "TLS client certificate names no user (no subject)");
                        return;
                    };
                    let _ = tx.send((tls, PeerAddr { addr, user })).await;
                });
            }
        });
        Ok(TlsListener { accepted, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = PeerAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The accept task only ends once this listener is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(PeerAddr {
            addr: self.local,
            user: String::new(),
        })
    }
}
