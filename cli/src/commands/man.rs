//! `nanocl __man DIR`: man pages generated from the clap definitions (clap_mangen), so they
//! say what `--help` says: `nanocl.1`, and `nanocl-SUBCOMMAND.1` for each subcommand (and
//! `nanocl-rollout-status.1` for nested ones), as git names its pages.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;

use crate::args::Cli;

fn write_page(command: &clap::Command, name: &str, dir: &Path) -> anyhow::Result<usize> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .title(name)
        .render(&mut page)
        .with_context(|| format!("cannot render the man page of {name}"))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    let mut written = 1;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        written += write_page(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(written)
}

/// Writes every page into `dir`.
pub fn write_all(dir: &Path, out: &mut impl Write) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut command = Cli::command();
    command.build();
    let n = write_page(&command, "nanocl", dir)?;
    writeln!(out, "{n} man pages written to {}", dir.display())?;
    Ok(())
}
