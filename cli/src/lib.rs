//! The nanocl client: argument parsing, manifest input, and the commands.

pub mod args;
pub mod commands;
pub mod compose;
pub mod context;
pub mod input;
pub mod yaml;

// The client library, under the names the commands have always used.
pub use nanocl_client::{deploy, http as client, remote, transport};

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

/// How a command ended, mapped to the exit codes of the design: 0 success, 1 error, and for
/// `diff` 1 differences, 2 or more errors.
#[derive(Debug)]
pub enum Outcome {
    /// Everything done.
    Success,
    /// `diff` found differences (exit 1).
    Differences,
    /// The command failed; its messages are already printed.
    Failed,
    /// Exit with this status (`exec`: the command's own).
    Exit(u8),
}

/// Runs the CLI with the process's arguments and returns its exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    ExitCode::SUCCESS
                }
                // diff's errors are 2 or more, so that 1 always means "differences".
                _ if subcommand_name().as_deref() == Some("diff") => ExitCode::from(2),
                _ => ExitCode::from(1),
            };
        }
    };
    let is_diff = matches!(cli.command, Command::Diff(_));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(if is_diff { 2 } else { 1 });
        }
    };
    // diff: 0 same, 1 differences, 2 errors; everything else: 0 success, 1 error.
    let failed = if is_diff { 2 } else { 1 };
    match runtime.block_on(run(cli)) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Differences) => ExitCode::from(1),
        Ok(Outcome::Failed) => ExitCode::from(failed),
        Ok(Outcome::Exit(code)) => ExitCode::from(code),
        Err(e) => {
            let _ = std::io::stdout().flush();
            eprintln!("error: {e:#}");
            ExitCode::from(failed)
        }
    }
}

/// The subcommand named on the command line, skipping global options and their values.
fn subcommand_name() -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-H" | "--host" | "-n" | "--namespace" => {
                args.next();
            }
            a if a.starts_with('-') => {}
            a => return Some(a.to_owned()),
        }
    }
    None
}

/// Runs one parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let mut stdout = std::io::stdout().lock();
    match &cli.command {
        Command::Apply(args) => commands::apply::run(&cli, args, &mut stdout).await,
        Command::Diff(args) => commands::diff::run(&cli, args, &mut stdout).await,
        Command::Get(args) => commands::get::run(&cli, args, &mut stdout).await,
        Command::Describe(args) => commands::describe::run(&cli, args, &mut stdout).await,
        Command::Delete(args) => commands::delete::run(&cli, args, &mut stdout).await,
        Command::Edit(args) => commands::edit::run(&cli, args, &mut stdout).await,
        Command::Scale(args) => commands::scale::run(&cli, args, &mut stdout).await,
        Command::Cordon(args) => {
            commands::node::run(&cli, commands::node::Action::Cordon, args, &mut stdout).await
        }
        Command::Uncordon(args) => {
            commands::node::run(&cli, commands::node::Action::Uncordon, args, &mut stdout).await
        }
        Command::Drain(args) => {
            commands::node::run(&cli, commands::node::Action::Drain, args, &mut stdout).await
        }
        Command::Rollout(args) => commands::rollout::run(&cli, args, &mut stdout).await,
        Command::Build(args) => commands::build::run(&cli, args, &mut stdout).await,
        Command::Logs(args) => commands::logs::run(&cli, args, &mut stdout).await,
        Command::Top(args) => commands::top::run(&cli, args, &mut stdout).await,
        Command::Exec(args) => {
            drop(stdout);
            commands::exec::run(&cli, args).await
        }
        Command::Events(args) => commands::events::run(&cli, args, &mut stdout).await,
        Command::Watch(args) => commands::watch::run(&cli, args, &mut stdout).await,
        Command::Convert(args) => commands::convert::run(&cli, args, &mut stdout),
        Command::Context(args) => commands::context::run(&cli, args, &mut stdout),
        Command::Certs(args) => commands::certs::run(args, &mut stdout),
        Command::Version(args) => commands::version::run(&cli, args, &mut stdout).await,
        Command::Explain(args) => commands::explain::run(args, &mut stdout),
        Command::Completion(args) => {
            commands::complete::script(args.shell, &mut stdout)?;
            Ok(Outcome::Success)
        }
        Command::Man(args) => {
            commands::man::write_all(&args.dir, &mut stdout)?;
            Ok(Outcome::Success)
        }
        Command::Complete(args) => {
            // From the raw words: the line being typed is rarely a valid command yet.
            commands::complete::complete(cli.host.as_deref(), &args.words, &mut stdout).await?;
            Ok(Outcome::Success)
        }
    }
}
