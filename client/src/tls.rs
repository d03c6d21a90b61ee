//! Mutual TLS on the client side: the CA that signed nanocld's certificate, and this
//! client's own certificate and key (its common name is the user nanocld knows).
//!
//! Each comes from a file or, for CI jobs whose secrets are variables, from the PEM text
//! itself (`NANOCL_TLS_CA`, `NANOCL_TLS_CERT`, `NANOCL_TLS_KEY` hold either).

use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};

/// Where one PEM item comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pem {
    /// A file.
    File(PathBuf),
    /// The PEM text itself (from an environment variable).
    Text(String),
}

impl Pem {
    /// A setting's value: PEM text when it starts with `-----BEGIN`, else a file's path.
    pub fn from_setting(value: &str) -> Pem {
        if value.trim_start().starts_with("-----BEGIN") {
            Pem::Text(value.to_owned())
        } else {
            Pem::File(value.into())
        }
    }

    /// Where it comes from, for messages.
    pub fn shown(&self, setting: &str) -> String {
        match self {
            Pem::File(path) => path.display().to_string(),
            Pem::Text(_) => format!("the PEM text of {setting}"),
        }
    }

    fn bytes(&self, setting: &str) -> Result<Vec<u8>> {
        match self {
            Pem::File(path) => std::fs::read(path)
                .map_err(|e| Error::Tls(format!("{setting}: cannot read {}: {e}", path.display()))),
            Pem::Text(text) => Ok(text.as_bytes().to_vec()),
        }
    }
}

/// The three items of a TLS client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// The CA nanocld's certificate must come from.
    pub ca: Pem,
    /// This client's certificate.
    pub cert: Pem,
    /// Its private key.
    pub key: Pem,
}

fn certificates(pem: &Pem, setting: &str) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = pem.bytes(setting)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::Tls(format!(
                "{setting} ({}): not PEM certificates: {e}",
                pem.shown(setting)
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "{setting} ({}): holds no certificate (expected PEM, BEGIN CERTIFICATE)",
            pem.shown(setting)
        )));
    }
    Ok(certs)
}

impl TlsSettings {
    /// The rustls configuration: trust only `ca`, show `cert`.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for ca in certificates(&self.ca, "ca")? {
            roots.add(ca).map_err(|e| {
                Error::Tls(format!(
                    "ca ({}): not a CA certificate: {e}",
                    self.ca.shown("ca")
                ))
            })?;
        }
        let chain = certificates(&self.cert, "cert")?;
        let key = PrivateKeyDer::from_pem_slice(&self.key.bytes("key")?).map_err(|e| {
            Error::Tls(format!(
                "key ({}): no PEM private key: {e}",
                self.key.shown("key")
            ))
        })?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(format!("TLS protocol versions: {e}")))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| {
                Error::Tls(format!(
                    "cert ({}) and key ({}) do not make a usable pair: {e}",
                    self.cert.shown("cert"),
                    self.key.shown("key")
                ))
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// From `NANOCL_TLS_CA`, `NANOCL_TLS_CERT` and `NANOCL_TLS_KEY` (each a path or PEM
    /// text): `None` when none is set, an error when only some are.
    pub fn from_env() -> Result<Option<TlsSettings>> {
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (ca, cert, key) = (
            get("NANOCL_TLS_CA"),
            get("NANOCL_TLS_CERT"),
            get("NANOCL_TLS_KEY"),
        );
        match (ca, cert, key) {
            (None, None, None) => Ok(None),
            (Some(ca), Some(cert), Some(key)) => Ok(Some(TlsSettings {
                ca: Pem::from_setting(&ca),
                cert: Pem::from_setting(&cert),
                key: Pem::from_setting(&key),
            })),
            (ca, cert, key) => {
                let missing: Vec<&str> = [
                    ("NANOCL_TLS_CA", ca.is_none()),
                    ("NANOCL_TLS_CERT", cert.is_none()),
                    ("NANOCL_TLS_KEY", key.is_none()),
                ]
                .into_iter()
                .filter_map(|(n, m)| m.then_some(n))
                .collect();
                Err(Error::Tls(format!(
                    "TLS from the environment needs NANOCL_TLS_CA, NANOCL_TLS_CERT and NANOCL_TLS_KEY; {} not set",
                    missing.join(" and ")
                )))
            }
        }
    }
}
