//! The nanocl client: argument parsing, manifest input, and the commands.

pub mod args;
pub mod commands;
pub mod input;
pub mod yaml;

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
    /// The command failed; its messages are already printed.
    Failed,
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
                _ => ExitCode::from(1),
            };
        }
    };
    match run(cli) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(1),
        Err(e) => {
            let _ = std::io::stdout().flush();
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let mut stdout = std::io::stdout().lock();
    match &cli.command {
        Command::Apply(args) => commands::apply::run(&cli, args, &mut stdout),
        Command::Convert(args) => commands::convert::run(&cli, args, &mut stdout),
        Command::Version(args) => commands::version::run(args, &mut stdout),
        Command::Completion(args) => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(args.shell, &mut command, "nanocl", &mut stdout);
            Ok(Outcome::Success)
        }
    }
}
