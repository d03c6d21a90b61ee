//! `nanocl watch DIR`: the deploy-directory mode, through the API.

use std::io::Write;

use anyhow::bail;

use crate::args::{Cli, WatchArgs};
use crate::commands::decode_options;
use crate::deploy::watch::{self, Report, Timing, Trigger};
use crate::deploy::{Config, SyncError, SyncReport, Syncer};
use crate::Outcome;

/// Runs `watch`.
pub async fn run(cli: &Cli, args: &WatchArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let applyset = crate::remote::applyset_name(args.applyset.as_deref(), Some(&args.dir))?;
    let config = Config {
        dir: args.dir.clone(),
        applyset: applyset.clone(),
        explicit_applyset: args.applyset.is_some(),
        prune: args.prune,
        decode: decode_options(cli),
    };
    let client = cli.client()?;
    let mut syncer = Syncer::new(config);

    if args.once {
        return match syncer.sync(&client).await {
            Ok(report) => {
                print_sync(&report, args, out)?;
                Ok(if report.invalid == 0 {
                    Outcome::Success
                } else {
                    Outcome::Failed
                })
            }
            Err(SyncError::Missing(e)) => bail!("{}: {e}", args.dir.display()),
            Err(SyncError::Retry(e)) => Err(e.into()),
        };
    }

    eprintln!(
        "watching {} (applyset {applyset}, {}); Ctrl-C stops",
        args.dir.display(),
        if args.prune {
            "pruning what leaves it"
        } else {
            "not pruning: objects whose file is deleted stay"
        }
    );
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::commands::wait_for_interrupt().await;
        let _ = stop.send(true);
    });
    let timing = Timing {
        debounce: args.debounce,
        resync: args.resync,
        ..Timing::default()
    };
    let mut failed = None;
    watch::run(
        syncer,
        &client,
        timing,
        |report| {
            let result = match report {
                Report::Synced(Trigger::Resync, sync) if !sync.eventful() => Ok(()),
                Report::Synced(_, sync) => print_sync(sync, args, out),
                Report::Missing(dir, e) => {
                    eprintln!(
                        "warning: {}: {e}; waiting for it (nothing is applied or pruned meanwhile)",
                        dir.display()
                    );
                    Ok(())
                }
                Report::Retrying(e, delay) => {
                    eprintln!(
                        "warning: sync failed, retrying in {}: {e:#}",
                        humantime::format_duration(delay)
                    );
                    Ok(())
                }
                Report::WatchError(e) => {
                    eprintln!("warning: {e}");
                    Ok(())
                }
            };
            if let Err(e) = result {
                failed.get_or_insert(e);
            }
        },
        shutdown,
    )
    .await?;
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(Outcome::Success),
    }
}

fn print_sync(report: &SyncReport, args: &WatchArgs, out: &mut impl Write) -> std::io::Result<()> {
    for problem in &report.problems {
        eprintln!("{problem}");
    }
    if args.verbose {
        for line in &report.objects {
            writeln!(out, "{line}")?;
        }
    }
    for notice in &report.notices {
        writeln!(out, "{notice}")?;
    }
    writeln!(out, "{}", report.summary(&args.dir))?;
    out.flush()
}
