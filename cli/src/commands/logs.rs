//! `nanocl logs cargo NAME [-f] [--tail N] [--build]`.

use std::io::Write;

use anyhow::bail;
use http_body_util::BodyExt;
use nanocl_api_types::{Kind, ObjectKey};

use crate::args::{Cli, LogsArgs};
use crate::client::{Client, Host};
use crate::commands::get::parse_kind;
use crate::remote;
use crate::Outcome;

/// Streams the cargo's output to stdout as it arrives.
pub async fn run(cli: &Cli, args: &LogsArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    if parse_kind(&args.kind)? != Kind::Cargo {
        bail!("only cargoes have logs");
    }
    let key = ObjectKey {
        kind: Kind::Cargo,
        namespace: Some(cli.namespace_or_default()),
        name: args.name.clone(),
    };
    let mut query = Vec::new();
    if args.follow {
        query.push("follow=true".to_owned());
    }
    if let Some(n) = args.tail {
        query.push(format!("tailLines={n}"));
    }
    if args.build {
        query.push("build=true".to_owned());
    }
    let path = format!(
        "{}/log{}{}",
        remote::item_path(&key),
        if query.is_empty() { "" } else { "?" },
        query.join("&")
    );
    let client = Client::new(Host::parse(cli.host.as_deref())?);
    let mut body = match client.stream(&path).await? {
        Ok(body) => body,
        Err(answer) => bail!("{}", answer.error_message()),
    };
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            out.write_all(&data)?;
            out.flush()?;
        }
    }
    Ok(Outcome::Success)
}
