//! `nanocl delete`: by kind and name, or every object of some files; `--wait` until gone.

use std::io::Write;

use hyper::{Method, StatusCode};
use nanocl_api_types::ObjectKey;

use crate::args::{Cli, DeleteArgs, FileArgs};
use crate::client::{Client, Host};
use crate::commands::decode_options;
use crate::commands::get::parse_kind;
use crate::remote::{self, display_key};
use crate::{input, Outcome};

/// Runs `delete`.
pub async fn run(cli: &Cli, args: &DeleteArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let mut keys: Vec<ObjectKey> = Vec::new();
    if args.files.is_empty() {
        let (Some(kind), Some(name)) = (&args.kind, &args.name) else {
            anyhow::bail!("give KIND NAME, or -f PATH");
        };
        let kind = parse_kind(kind)?;
        keys.push(ObjectKey {
            kind,
            namespace: kind.namespaced().then(|| cli.namespace_or_default()),
            name: name.clone(),
        });
    } else {
        let files = FileArgs {
            files: args.files.clone(),
            recursive: args.recursive,
        };
        let loaded = input::load(&files, &decode_options(cli));
        if !loaded.errors.is_empty() {
            loaded.report_errors("nothing was deleted");
            return Ok(Outcome::Failed);
        }
        keys = loaded.manifests.iter().map(|m| m.object.key()).collect();
        // Cargoes before networks before clusters before namespaces.
        keys.sort_by_key(|k| std::cmp::Reverse(k.kind));
    }
    let client = Client::new(Host::parse(cli.host.as_deref())?);
    let mut ok = true;
    let mut pending = Vec::new();
    for key in keys {
        let answer = client
            .request(Method::DELETE, &remote::item_path(&key), None)
            .await?;
        match answer.status {
            StatusCode::OK => {
                let object = answer.json()?;
                let finalizers = object["metadata"]["finalizers"]
                    .as_array()
                    .map_or(0, Vec::len);
                if finalizers > 0 {
                    writeln!(
                        out,
                        "{} marked for deletion (finalizers: {})",
                        display_key(&key),
                        object["metadata"]["finalizers"]
                    )?;
                } else {
                    writeln!(out, "{} deleted", display_key(&key))?;
                }
                pending.push(key);
            }
            _ => {
                eprintln!("error: {}: {}", display_key(&key), answer.error_message());
                ok = false;
            }
        }
    }
    if args.wait && !pending.is_empty() {
        // As kubectl: the "deleted" lines above say it all; only a timeout is reported.
        let quiet = &mut std::io::sink();
        ok &= crate::commands::wait::until_gone(&client, &pending, args.timeout, quiet).await?;
    }
    Ok(if ok {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}
