//! Command-line arguments (clap), kept apart from the code that acts on them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

/// nanocl: declarative orchestration for Docker hosts.
///
/// Describe namespaces, clusters, networks and cargoes (replicated containers) in YAML, and
/// nanocl keeps Docker matching them.
#[derive(Debug, Parser)]
#[command(
    name = "nanocl",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// nanocld's address, e.g. unix:///run/nanocl/nanocl.sock or tcp://127.0.0.1:8585.
    #[arg(
        short = 'H',
        long = "host",
        env = "NANOCL_HOST",
        global = true,
        value_name = "URL"
    )]
    pub host: Option<String>,

    /// Namespace for objects that name none (default: global). Objects naming another
    /// namespace are refused.
    #[arg(short = 'n', long = "namespace", global = true, value_name = "NS")]
    pub namespace: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update objects from files, directories or stdin.
    ///
    /// Every document of every file is decoded and validated first: if any is invalid, nothing
    /// is applied and every problem is listed as FILE:LINE:COLUMN: field: message.
    Apply(ApplyArgs),
    /// Rewrite manifests in another API version (nanocl.io/v1 or nanocl.io/v1alpha1).
    Convert(ConvertArgs),
    /// Print the client version.
    Version(VersionArgs),
    /// Print a shell completion script.
    ///
    /// bash: `source <(nanocl completion bash)`; zsh: `nanocl completion zsh > "${fpath[1]}/_nanocl"`;
    /// fish: `nanocl completion fish > ~/.config/fish/completions/nanocl.fish`.
    Completion(CompletionArgs),
}

/// Where manifests come from.
#[derive(Debug, Args)]
pub struct FileArgs {
    /// A manifest file, a directory of them (*.yaml, *.yml, *.json), or - for stdin.
    /// Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub files: Vec<PathBuf>,

    /// Also read the subdirectories of directories.
    #[arg(short = 'R', long = "recursive")]
    pub recursive: bool,
}

/// Where a dry run stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    /// Apply for real.
    None,
    /// Decode, default and validate locally; send nothing.
    Client,
    /// Have nanocld validate without storing anything.
    Server,
}

/// How to print objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// YAML documents.
    Yaml,
    /// JSON: one object, or a List of them.
    Json,
    /// kind/name, one per line.
    Name,
}

/// `nanocl apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub files: FileArgs,

    /// `client` validates locally and sends nothing; `server` asks nanocld to validate
    /// without storing.
    #[arg(long, value_enum, default_value = "none", num_args = 0..=1, default_missing_value = "client", require_equals = true)]
    pub dry_run: DryRun,

    /// Print the objects as they would be applied (defaults filled in) instead of a summary.
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<Output>,
}

/// `nanocl convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    #[command(flatten)]
    pub files: FileArgs,

    /// The version to write.
    #[arg(long, value_name = "VERSION", value_parser = ["nanocl.io/v1", "nanocl.io/v1alpha1"])]
    pub output_version: String,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    pub output: Output,
}

/// `nanocl version`.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<Output>,
}

/// `nanocl completion`.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}
