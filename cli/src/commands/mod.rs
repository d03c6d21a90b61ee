//! One module per command, plus what several of them share.

pub mod apply;
pub mod build;
pub mod certs;
pub mod complete;
pub mod context;
pub mod convert;
pub mod delete;
pub mod describe;
pub mod diff;
pub mod edit;
pub mod events;
pub mod exec;
pub mod explain;
pub mod get;
pub mod logs;
pub mod man;
pub mod node;
pub mod rollout;
pub mod scale;
pub mod top;
pub mod version;
pub mod wait;
pub mod watch;

use std::io::Write;

use nanocl_api_types::manifest::DecodeOptions;
use serde_json::Value;

use crate::args::{Cli, FileArgs, Output, PruneArgs};
use nanocl_api_types::manifest::Manifest;
use nanocl_api_types::APPLYSET_LABEL;

/// Decoding options from the global flags: `-n` sets and enforces the namespace.
pub fn decode_options(cli: &Cli) -> DecodeOptions {
    DecodeOptions {
        default_namespace: cli.namespace_or_default(),
        required_namespace: cli.namespace.clone(),
        base_dir: None,
    }
}

/// Objects named on a command line: (kind, name) pairs.
pub type Named = Vec<(nanocl_api_types::Kind, String)>;

/// The objects named on a command line: `KIND [NAME…]` (the kind, and its names) or
/// `TYPE/NAME…` as `get -o name` prints them (no single kind). Mixing both is refused.
pub fn named(
    first: &str,
    rest: &[String],
) -> anyhow::Result<(Option<nanocl_api_types::Kind>, Named)> {
    if first.contains('/') {
        let mut objects = Vec::new();
        for arg in std::iter::once(first).chain(rest.iter().map(String::as_str)) {
            let Some((kind, name)) = arg.split_once('/') else {
                anyhow::bail!(
                    "{arg:?}: mix no TYPE/NAME with KIND NAME: write every object as TYPE/NAME"
                );
            };
            if name.is_empty() {
                anyhow::bail!("{arg:?}: a name after the slash");
            }
            objects.push((get::parse_kind(kind)?, name.to_owned()));
        }
        return Ok((None, objects));
    }
    let kind = get::parse_kind(first)?;
    if let Some(typed) = rest.iter().find(|n| n.contains('/')) {
        anyhow::bail!("{typed:?}: a name has no slash; give KIND NAME… or TYPE/NAME…, not both");
    }
    Ok((Some(kind), rest.iter().map(|n| (kind, n.clone())).collect()))
}

/// `kind/name`, as kubectl prints objects.
pub fn object_name(value: &Value) -> String {
    let kind = value["kind"]
        .as_str()
        .unwrap_or("object")
        .to_ascii_lowercase();
    let name = value["metadata"]["name"].as_str().unwrap_or("");
    format!("{kind}/{name}")
}

/// Prints objects as YAML documents, JSON (one object, or a `List`), or names.
pub fn print_objects(values: &[Value], output: Output, out: &mut impl Write) -> anyhow::Result<()> {
    match output {
        Output::Yaml => {
            for (i, value) in values.iter().enumerate() {
                if i > 0 {
                    writeln!(out, "---")?;
                }
                write!(out, "{}", crate::yaml::to_string(value))?;
            }
        }
        Output::Json => {
            let doc = match values {
                [one] => one.clone(),
                many => serde_json::json!({
                    "apiVersion": "nanocl.io/v1",
                    "kind": "List",
                    "items": many,
                }),
            };
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        }
        Output::Name => {
            for value in values {
                writeln!(out, "{}", object_name(value))?;
            }
        }
    }
    Ok(())
}

/// What `apply` and `diff` work from: the decoded objects in apply order (namespaces,
/// clusters, networks, cargoes), labelled with the applyset when pruning, and its name.
#[derive(Debug)]
pub struct Desired {
    /// The objects.
    pub manifests: Vec<Manifest>,
    /// The applyset, with `--prune`.
    pub applyset: Option<String>,
}

/// Loads the inputs for `apply`/`diff`; `None` (after reporting every error, ending with
/// "`nothing_done`") when any input is invalid.
pub fn load_desired(
    cli: &Cli,
    files: &FileArgs,
    prune: &PruneArgs,
    nothing_done: &str,
) -> anyhow::Result<Option<Desired>> {
    let mut loaded = crate::input::load(files, &decode_options(cli));
    loaded
        .errors
        .extend(remote_contexts(cli, &loaded.manifests));
    if !loaded.errors.is_empty() {
        loaded.report_errors(nothing_done);
        return Ok(None);
    }
    // Apply order: namespaces, clusters, networks, then cargoes, so references exist as early
    // as possible (they are level-triggered, so order is a courtesy, not a requirement).
    let mut manifests = loaded.manifests;
    manifests.sort_by_key(|m| m.object.kind());
    let applyset = if prune.prune {
        let name = crate::remote::applyset_name(
            prune.applyset.as_deref(),
            files.files.first().map(|p| p.as_path()),
        )?;
        for m in &mut manifests {
            m.object
                .metadata_mut()
                .labels
                .insert(APPLYSET_LABEL.to_owned(), name.clone());
        }
        Some(name)
    } else {
        None
    };
    Ok(Some(Desired {
        manifests,
        applyset,
    }))
}

pub use nanocl_client::signal::wait_for_interrupt;

/// A build `context` is a directory of the nanocld host: from this machine it can only be
/// built by a nanocld on this machine (a unix socket, or TCP on loopback). One error per
/// manifest that asks otherwise, at its document.
fn remote_contexts(cli: &Cli, manifests: &[Manifest]) -> Vec<String> {
    let Ok(nanocl_client::http::Host::Tcp(addr)) = cli.endpoint().map(|e| e.host) else {
        return Vec::new();
    };
    let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let local = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if local {
        return Vec::new();
    }
    manifests
        .iter()
        .filter_map(|m| match &m.object {
            nanocl_api_types::AnyObject::Cargo(c) => c
                .spec
                .container
                .build
                .as_ref()
                .and_then(|b| b.context.as_ref())
                .map(|dir| {
                    format!(
                        "{}:{}: spec.container.build.context: {dir} is a directory of this machine, and the nanocld at tcp://{addr} runs on another, which cannot read it: build from git (build.git), or apply on that host",
                        m.file, m.pos
                    )
                }),
            _ => None,
        })
        .collect()
}
