//! Contexts: named nanocld hosts with their TLS certificates, in
//! `$XDG_CONFIG_HOME/nanocl/config.yaml` (`~/.config/nanocl/config.yaml`; `NANOCL_CONFIG`
//! names another file), and which one the CLI talks to.
//!
//! Which nanocld, first match wins: `-H`, `--context`, `NANOCL_HOST`, `NANOCL_CONTEXT`, the
//! config's current context, the default socket. TLS for `-H`/`NANOCL_HOST` comes from
//! `NANOCL_TLS_CA`, `NANOCL_TLS_CERT`, `NANOCL_TLS_KEY` (paths or PEM text, for CI).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use nanocl_api_types::manifest::node::parse_stream;
use nanocl_api_types::path::FieldPath;
use nanocl_client::http::{Client, Host};
use nanocl_client::tls::{Pem, TlsSettings};
use serde::{Deserialize, Serialize};

/// The CLI's configuration file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// The context used when none is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    /// The contexts.
    #[serde(default)]
    pub contexts: Vec<Context>,
}

/// One nanocld and how to reach it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Context {
    /// Its name.
    pub name: String,
    /// nanocld's address: unix:///PATH or tcp://HOST:PORT.
    pub host: String,
    /// The certificates of mutual TLS, for tcp:// hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ContextTls>,
}

/// Certificate files of a context (absolute paths).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContextTls {
    /// The CA that signed nanocld's certificate.
    pub ca: PathBuf,
    /// The client's certificate: its common name is the user.
    pub cert: PathBuf,
    /// The client's private key.
    pub key: PathBuf,
}

impl ContextTls {
    fn settings(&self) -> TlsSettings {
        TlsSettings {
            ca: Pem::File(self.ca.clone()),
            cert: Pem::File(self.cert.clone()),
            key: Pem::File(self.key.clone()),
        }
    }
}

/// Where the configuration file is.
pub fn config_path() -> PathBuf {
    if let Some(path) = std::env::var_os("NANOCL_CONFIG").filter(|p| !p.is_empty()) {
        return path.into();
    }
    config_dir().join("config.yaml")
}

/// nanocl's configuration directory: `$XDG_CONFIG_HOME/nanocl`, else `~/.config/nanocl`.
pub fn config_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("nanocl")
}

impl Config {
    /// Reads `path`; an absent file is an empty configuration. Errors name the file, line
    /// and field.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let (documents, syntax) = parse_stream(&text);
        if let Some(e) = syntax {
            bail!("{}:{}: {}", path.display(), e.pos, e.message);
        }
        let Some(root) = documents.into_iter().find_map(|d| d.root) else {
            return Ok(Config::default());
        };
        let config: Config = nanocl_api_types::manifest::de::from_node(&root, &FieldPath::root())
            .map_err(|e| match &e.location {
            Some((field, pos)) => {
                anyhow::anyhow!("{}:{pos}: {field}: {}", path.display(), e.message)
            }
            None => anyhow::anyhow!("{}: {}", path.display(), e.message),
        })?;
        let mut seen = std::collections::BTreeSet::new();
        for c in &config.contexts {
            if !seen.insert(c.name.as_str()) {
                bail!("{}: context {:?} is defined twice", path.display(), c.name);
            }
        }
        Ok(config)
    }

    /// Writes the file (mode 0600: it names key files), through a temporary file so a
    /// crash never leaves half a configuration.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let value = serde_json::to_value(self).context("cannot serialize the configuration")?;
        let mut file = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        file.write_all(crate::yaml::to_string(&value).as_bytes())
            .and_then(|()| {
                file.as_file()
                    .set_permissions(std::fs::Permissions::from_mode(0o600))
            })
            .with_context(|| format!("cannot write {}", path.display()))?;
        file.persist(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    /// The context named `name`.
    pub fn get(&self, name: &str, path: &Path) -> anyhow::Result<&Context> {
        self.contexts
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.contexts.iter().map(|c| c.name.as_str()).collect();
                anyhow::anyhow!(
                    "no context {name:?} in {}: {}",
                    path.display(),
                    if known.is_empty() {
                        "there is none yet; create one with `nanocl context create`".to_owned()
                    } else {
                        format!("there are {}", known.join(", "))
                    }
                )
            })
    }
}

/// Where requests go, and why there.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// nanocld's address.
    pub host: Host,
    /// Mutual TLS, for tcp:// hosts.
    pub tls: Option<TlsSettings>,
    /// The context it comes from, if any.
    pub context: Option<String>,
}

impl Endpoint {
    /// The client of this endpoint.
    pub fn client(&self) -> anyhow::Result<Client> {
        match (&self.tls, &self.host) {
            (Some(tls), Host::Tcp(_)) => {
                let config = tls.client_config().with_context(|| match &self.context {
                    Some(c) => format!("the TLS certificates of context {c:?}"),
                    None => {
                        "the TLS certificates of NANOCL_TLS_CA, NANOCL_TLS_CERT and NANOCL_TLS_KEY"
                            .to_owned()
                    }
                })?;
                Ok(Client::with_tls(self.host.clone(), config))
            }
            _ => Ok(Client::new(self.host.clone())),
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Which nanocld the command line, the environment and the configuration name.
pub fn resolve(host: Option<&str>, context: Option<&str>) -> anyhow::Result<Endpoint> {
    if host.is_some() && context.is_some() {
        bail!("-H/--host and --context both name a nanocld: give one of them");
    }
    let direct = |host: &str| -> anyhow::Result<Endpoint> {
        Ok(Endpoint {
            host: Host::parse(Some(host))?,
            tls: TlsSettings::from_env()?,
            context: None,
        })
    };
    let named = |name: &str| -> anyhow::Result<Endpoint> {
        let path = config_path();
        let config = Config::load(&path)?;
        let context = config.get(name, &path)?;
        Ok(Endpoint {
            host: Host::parse(Some(&context.host))
                .with_context(|| format!("context {name:?} in {}", path.display()))?,
            tls: match &context.tls {
                Some(tls) => Some(tls.settings()),
                None => TlsSettings::from_env()?,
            },
            context: Some(name.to_owned()),
        })
    };
    if let Some(host) = host {
        return direct(host);
    }
    if let Some(name) = context {
        return named(name);
    }
    if let Some(host) = env("NANOCL_HOST") {
        return direct(&host);
    }
    if let Some(name) = env("NANOCL_CONTEXT") {
        return named(&name);
    }
    let path = config_path();
    if let Some(name) = Config::load(&path)?.current_context {
        return named(&name);
    }
    Ok(Endpoint {
        host: Host::parse(None)?,
        tls: None,
        context: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_should_round_trip_and_errors_should_name_the_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.yaml");
        let config = Config {
            current_context: Some("prod".into()),
            contexts: vec![Context {
                name: "prod".into(),
                host: "tcp://10.0.0.5:8586".into(),
                tls: Some(ContextTls {
                    ca: "/pki/ca.pem".into(),
                    cert: "/pki/alice.pem".into(),
                    key: "/pki/alice-key.pem".into(),
                }),
            }],
        };
        config.save(&path).expect("save");
        assert_eq!(Config::load(&path).expect("load"), config);
        std::fs::write(
            &path,
            "contexts:\n  - name: a\n    host: tcp://x:1\n    colour: red\n",
        )
        .expect("write");
        let e = Config::load(&path).expect_err("unknown field").to_string();
        assert!(e.contains("config.yaml:4:"), "{e}");
        assert!(e.contains("colour"), "{e}");
        assert!(Config::load(&dir.path().join("absent.yaml"))
            .expect("absent is empty")
            .contexts
            .is_empty());
    }
}
