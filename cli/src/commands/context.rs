//! `nanocl context create|use|list|remove|show`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use nanocl_client::http::Host;

use crate::args::{Cli, ContextArgs, ContextCommand, ContextCreateArgs};
use crate::context::{config_path, Config, Context, ContextTls};
use crate::Outcome;

/// `path` made absolute (contexts are used from any directory), and readable now.
fn absolute(path: &Path, what: &str) -> anyhow::Result<PathBuf> {
    let path = std::path::absolute(path)
        .with_context(|| format!("--{what} {}: cannot make it absolute", path.display()))?;
    std::fs::metadata(&path).with_context(|| format!("--{what} {}", path.display()))?;
    Ok(path)
}

fn create(args: &ContextCreateArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    nanocl_api_types::validation::dns1123_label(&args.name)
        .map_err(|e| anyhow::anyhow!("context name {:?}: {e}", args.name))?;
    let host = Host::parse(Some(&args.server))?;
    let tls = match (&args.ca, &args.cert, &args.key) {
        (Some(ca), Some(cert), Some(key)) => Some(ContextTls {
            ca: absolute(ca, "ca")?,
            cert: absolute(cert, "cert")?,
            key: absolute(key, "key")?,
        }),
        _ => None,
    };
    if let Some(tls) = &tls {
        if matches!(host, Host::Unix(_)) {
            bail!("--ca, --cert and --key are for tcp:// hosts; a unix socket has no TLS");
        }
        // Checked now, not at the first command.
        nanocl_client::tls::TlsSettings {
            ca: nanocl_client::tls::Pem::File(tls.ca.clone()),
            cert: nanocl_client::tls::Pem::File(tls.cert.clone()),
            key: nanocl_client::tls::Pem::File(tls.key.clone()),
        }
        .client_config()?;
    }
    let path = config_path();
    let mut config = Config::load(&path)?;
    let context = Context {
        name: args.name.clone(),
        host: host.to_string(),
        tls,
    };
    let replaced = match config.contexts.iter_mut().find(|c| c.name == args.name) {
        Some(existing) => {
            *existing = context;
            true
        }
        None => {
            config.contexts.push(context);
            false
        }
    };
    if args.use_it {
        config.current_context = Some(args.name.clone());
    }
    config.save(&path)?;
    writeln!(
        out,
        "context {:?} {} in {}{}",
        args.name,
        if replaced { "replaced" } else { "created" },
        path.display(),
        if args.use_it {
            "; it is the current context"
        } else {
            ""
        }
    )?;
    Ok(Outcome::Success)
}

/// Runs `nanocl context`.
pub fn run(cli: &Cli, args: &ContextArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let path = config_path();
    match &args.command {
        ContextCommand::Create(create_args) => create(create_args, out),
        ContextCommand::Use(name) => {
            let mut config = Config::load(&path)?;
            config.get(&name.name, &path)?;
            config.current_context = Some(name.name.clone());
            config.save(&path)?;
            writeln!(out, "current context: {}", name.name)?;
            Ok(Outcome::Success)
        }
        ContextCommand::List => {
            let config = Config::load(&path)?;
            let in_use = cli.endpoint().ok().and_then(|e| e.context);
            let mut rows = Vec::new();
            for c in &config.contexts {
                rows.push(vec![
                    if in_use.as_deref() == Some(&c.name) {
                        "*"
                    } else {
                        ""
                    }
                    .to_owned(),
                    c.name.clone(),
                    c.host.clone(),
                    c.tls
                        .as_ref()
                        .map_or("-".to_owned(), |t| t.cert.display().to_string()),
                ]);
            }
            if config.contexts.is_empty() {
                writeln!(
                    out,
                    "no contexts in {}: create one with `nanocl context create NAME --server URL`",
                    path.display()
                )?;
                return Ok(Outcome::Success);
            }
            crate::commands::get::print_table(
                &["CURRENT", "NAME", "HOST", "CERTIFICATE"],
                &rows,
                out,
            )?;
            Ok(Outcome::Success)
        }
        ContextCommand::Remove(name) => {
            let mut config = Config::load(&path)?;
            config.get(&name.name, &path)?;
            config.contexts.retain(|c| c.name != name.name);
            if config.current_context.as_deref() == Some(&name.name) {
                config.current_context = None;
            }
            config.save(&path)?;
            writeln!(out, "context {:?} removed", name.name)?;
            Ok(Outcome::Success)
        }
        ContextCommand::Show(show) => {
            let config = Config::load(&path)?;
            let name = match &show.name {
                Some(name) => name.clone(),
                None => match cli.endpoint()?.context {
                    Some(name) => name,
                    None => bail!(
                        "no context is in use (-H, NANOCL_HOST or the default socket is); name one: `nanocl context show NAME`"
                    ),
                },
            };
            let context = config.get(&name, &path)?;
            let value = serde_json::to_value(context)?;
            write!(out, "{}", crate::yaml::to_string(&value))?;
            Ok(Outcome::Success)
        }
    }
}
