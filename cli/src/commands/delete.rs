//! `nanocl delete`: by kind and name, or every object of some files; `--wait` until gone.

use std::io::Write;

use hyper::{Method, StatusCode};
use nanocl_api_types::ObjectKey;

use crate::args::{Cli, DeleteArgs, FileArgs};
use crate::commands::decode_options;
use crate::remote::{self, display_key};
use crate::{input, Outcome};

/// Runs `delete`.
pub async fn run(cli: &Cli, args: &DeleteArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let mut keys: Vec<ObjectKey> = Vec::new();
    let client = cli.client()?;
    if args.files.is_empty() {
        let Some(first) = &args.kind else {
            anyhow::bail!("give KIND NAME…, KIND -l SELECTOR, TYPE/NAME…, or -f PATH");
        };
        let key_of = |kind: nanocl_api_types::Kind, name: &str| ObjectKey {
            kind,
            namespace: kind.namespaced().then(|| cli.namespace_or_default()),
            name: name.to_owned(),
        };
        let (kind, objects) = crate::commands::named(first, &args.names)?;
        if let Some(kind) = kind {
            match (&args.selector, objects.is_empty()) {
                (Some(_), false) => anyhow::bail!("give NAMEs or -l SELECTOR, not both"),
                (None, true) => anyhow::bail!(
                    "give the {} to delete: NAME…, or -l SELECTOR",
                    kind.plural()
                ),
                (None, false) => keys.extend(objects.iter().map(|(k, n)| key_of(*k, n))),
                (Some(selector), true) => {
                    nanocl_api_types::selector::Selector::parse(selector)
                        .map_err(|e| anyhow::anyhow!("-l: {e}"))?;
                    let namespace = kind.namespaced().then(|| cli.namespace_or_default());
                    let path = format!(
                        "{}?labelSelector={}",
                        remote::collection_path(kind, namespace.as_deref()),
                        crate::commands::get::encode(selector)
                    );
                    let answer = client.request(Method::GET, &path, None).await?;
                    if answer.status != StatusCode::OK {
                        anyhow::bail!("{}", answer.error_message());
                    }
                    let list = answer.json()?;
                    keys.extend(
                        list["items"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(remote::key_of),
                    );
                    if keys.is_empty() {
                        eprintln!("No {} match {selector:?}.", kind.plural());
                        return Ok(Outcome::Success);
                    }
                }
            }
        } else {
            if args.selector.is_some() {
                anyhow::bail!("-l selects within one kind: give KIND -l SELECTOR, not TYPE/NAME");
            }
            keys.extend(objects.iter().map(|(k, n)| key_of(*k, n)));
        }
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
