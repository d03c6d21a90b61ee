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
    /// nanocld's address, e.g. unix:///run/nanocl/nanocl.sock or tcp://10.0.0.5:8586 (env:
    /// NANOCL_HOST). TLS certificates for it: NANOCL_TLS_CA, NANOCL_TLS_CERT, NANOCL_TLS_KEY.
    #[arg(short = 'H', long = "host", global = true, value_name = "URL")]
    pub host: Option<String>,

    /// The context to use (`nanocl context list`), instead of the current one (env:
    /// NANOCL_CONTEXT).
    #[arg(long = "context", global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// Namespace for objects that name none (default: global). Objects naming another
    /// namespace are refused.
    #[arg(short = 'n', long = "namespace", global = true, value_name = "NS")]
    pub namespace: Option<String>,

    /// The namespace when -n is not given (default: global). Unlike -n, objects that name
    /// another namespace are not refused.
    #[arg(
        long = "default-namespace",
        global = true,
        env = "NANOCL_NAMESPACE",
        value_name = "NS",
        hide_short_help = true
    )]
    pub default_namespace: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The client of the nanocld that -H, --context, the environment or the configuration
    /// names (see [`crate::context::resolve`]).
    pub fn client(&self) -> anyhow::Result<nanocl_client::http::Client> {
        self.endpoint()?.client()
    }

    /// Which nanocld, and how to reach it.
    pub fn endpoint(&self) -> anyhow::Result<crate::context::Endpoint> {
        crate::context::resolve(self.host.as_deref(), self.context.as_deref())
    }

    /// The namespace of namespaced objects named on the command line: `-n`, else
    /// `NANOCL_NAMESPACE` (`--default-namespace`), else `global`.
    pub fn namespace_or_default(&self) -> String {
        self.namespace
            .clone()
            .or_else(|| self.default_namespace.clone().filter(|n| !n.is_empty()))
            .unwrap_or_else(|| nanocl_api_types::meta::DEFAULT_NAMESPACE.to_owned())
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update objects from files, directories or stdin.
    ///
    /// Every document of every file is decoded and validated first: if any is invalid, nothing
    /// is applied and every problem is listed as FILE:LINE:COLUMN: field: message.
    Apply(ApplyArgs),
    /// Show what `apply` would change: a unified diff of live objects against the files.
    ///
    /// Exit status: 0 no differences, 1 differences, 2 or more on error, so a CI job can branch.
    Diff(DiffArgs),
    /// List objects, or show one.
    Get(GetArgs),
    /// Show one object in detail: spec summary, status and conditions.
    Describe(DescribeArgs),
    /// Delete objects by name, or every object of some files.
    Delete(DeleteArgs),
    /// Edit a live object in your editor ($NANOCL_EDITOR, $VISUAL, $EDITOR, else vi).
    ///
    /// The object is written as YAML (its spec and metadata; the status is the server's);
    /// when you save and quit, it is validated like `apply`. An invalid edit reopens the
    /// editor with the problems listed at the end of the file (quit without changing it to
    /// give up; the edit is kept in a temporary file). An object changed by someone else
    /// since it was opened is not overwritten: the edit is kept and the command fails.
    /// Secrets cannot be edited (their values are never shown): change their file and apply.
    ///
    /// Example: `nanocl -n shop edit cargo web`
    Edit(EditArgs),
    /// Set a cargo's replica count.
    Scale(ScaleArgs),
    /// Mark a node unschedulable: no new replica is placed on it; those running stay.
    Cordon(NodeArgs),
    /// Let replicas be placed on a cordoned node again.
    Uncordon(NodeArgs),
    /// Cordon a node, then move every replica placed on it to other nodes (for
    /// maintenance: its agent removes its containers as the slots are placed elsewhere).
    Drain(NodeArgs),
    /// Follow, inspect, undo, restart, pause or resume a cargo's rollout.
    ///
    /// Every change of a cargo's container (or of the cluster variables it uses) is a new
    /// revision, rolled out to its replicas as spec.update says; `rollout` follows one, lists
    /// the revisions kept, goes back to one, or restarts every replica.
    Rollout(RolloutArgs),
    /// Look at a built cargo's source again now, and build it if it changed.
    ///
    /// For a cargo with spec.container.build: resolves its git ref again (or reads its
    /// context directory again) and builds what is not built yet, a build that failed
    /// included; the new image is rolled out as any change. The same commit or an identical
    /// directory is never built twice (remove its image to force that). Sets the annotation
    /// build.nanocl.io/requestedAt to now; `apply` keeps it.
    ///
    /// Example: `nanocl build cargo web`, then `nanocl rollout status cargo web`
    Build(RolloutTarget),
    /// Print a cargo's output, every replica's lines prefixed with the replica.
    ///
    /// With --build, the output of the cargo's latest image build (-f follows a running
    /// build to its end).
    ///
    /// Examples: `nanocl logs cargo web -f --tail 20`, `nanocl logs cargo web --build -f`
    Logs(LogsArgs),
    /// Show what each running replica of a cargo uses now: CPU (millicores) and memory.
    ///
    /// Read from Docker at the time of asking, over half a second; without NAME, every cargo
    /// of the namespace.
    ///
    /// Example: `nanocl -n shop top cargo web`
    Top(TopArgs),
    /// Run a command in one of a cargo's running replicas.
    ///
    /// The command runs in the lowest-numbered running replica unless --replica names one;
    /// nanocl exits with the command's exit status. -i passes your input to it, -t gives it a
    /// terminal (both for a shell).
    ///
    /// Examples: `nanocl exec cargo web -- cat /etc/hostname`,
    /// `nanocl exec cargo web --replica 2 -it -- sh`
    Exec(ExecArgs),
    /// Show what the controllers did and what went wrong.
    Events(EventsArgs),
    /// Keep a directory of manifests applied: sync it now, then after every change.
    ///
    /// DIR is read recursively (*.yaml, *.yml, *.json; hidden files and folders such as .git,
    /// editor swap and backup files are ignored). Changes are debounced, so a save or a `git
    /// pull` is one sync, and each sync prints one summary line. An invalid file is reported
    /// and skipped, its objects left as they are; an object defined in two files is applied
    /// from neither. Objects are labelled with the applyset, so with --prune the objects of a
    /// deleted file are deleted. Stop with Ctrl-C.
    Watch(WatchArgs),
    /// Rewrite manifests in another API version, or a Compose file as nanocl objects.
    ///
    /// `--from compose FILE`: a docker-compose.yml becomes a Namespace and a Cluster for the
    /// project (-n, else its `name`, else its directory's name), a Network per network and a
    /// Cargo per service, printed for `nanocl apply -f -`. Every key nanocl has no
    /// equivalent for, or converts differently, is reported on stderr as FILE:LINE:COLUMN.
    /// depends_on is recorded, not enforced: cargoes start together and restart until what
    /// they need is up.
    ///
    /// Examples: `nanocl convert -f old.yaml --output-version nanocl.io/v1`,
    /// `nanocl convert --from compose docker-compose.yml | nanocl apply -f -`
    Convert(ConvertArgs),
    /// Name the nanocld hosts you use and their certificates, and pick one.
    ///
    /// Contexts live in ~/.config/nanocl/config.yaml ($XDG_CONFIG_HOME, or the file
    /// NANOCL_CONFIG names). Which nanocld a command talks to, first match wins: -H,
    /// --context, NANOCL_HOST, NANOCL_CONTEXT, the current context, the local socket.
    ///
    /// Example: `nanocl context create prod --server tcp://10.0.0.5:8586 --ca ca.pem --cert
    /// alice.pem --key alice-key.pem --use`
    Context(ContextArgs),
    /// Make the certificates of mutual TLS: a CA, nanocld's certificate, users' certificates.
    ///
    /// Run on the machine that keeps the CA's key; copy each certificate and its key where
    /// it is used. Example: `nanocl certs init`, `nanocl certs issue server --san
    /// 10.0.0.5`, `nanocl certs issue client alice`, then `nanocld --listen
    /// tcp://0.0.0.0:8586 --tls-cert server.pem --tls-key server-key.pem --tls-client-ca ca.pem`.
    Certs(CertsArgs),
    /// Print the client version, and nanocld's.
    Version(VersionArgs),
    /// Describe a kind or one of its fields: type, meaning, and the fields under it.
    ///
    /// Read from the JSON Schemas the API serves (`manifests/schemas/`), so it needs no
    /// nanocld.
    ///
    /// Examples: `nanocl explain cargo`, `nanocl explain cargo.spec.container.build.git`
    Explain(ExplainArgs),
    /// Print a shell completion script: subcommands, flags, kinds, and the names of live
    /// objects and namespaces, asked of nanocld as you type.
    ///
    /// bash: `source <(nanocl completion bash)`; zsh: `nanocl completion zsh > "${fpath[1]}/_nanocl"`;
    /// fish: `nanocl completion fish > ~/.config/fish/completions/nanocl.fish`.
    Completion(CompletionArgs),
    /// Write the man pages (nanocl.1 and one per subcommand) into DIR (`make install`).
    #[command(name = "__man", hide = true)]
    Man(ManArgs),
    /// The completion candidates of a command line (used by the completion scripts).
    #[command(name = "__complete", hide = true)]
    Complete(CompleteArgs),
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

    #[command(flatten)]
    pub prune: PruneArgs,

    /// After applying, wait until every applied object is Ready.
    #[arg(long)]
    pub wait: bool,

    /// How long --wait waits, e.g. 90s or 5m.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration, requires = "wait")]
    pub timeout: std::time::Duration,
}

/// `nanocl events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// After listing, keep printing new events.
    #[arg(short = 'w', long = "watch")]
    pub watch: bool,

    /// Every namespace.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
}

/// `nanocl edit`.
#[derive(Debug, Args)]
pub struct EditArgs {
    /// The kind (then NAME), or TYPE/NAME as `get -o name` prints it.
    pub kind: String,

    /// The object's name.
    pub name: Option<String>,
}

/// `nanocl top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The kind: only `cargo`.
    pub kind: String,

    /// The cargo's name; every cargo of the namespace when omitted.
    pub name: Option<String>,
}

/// `nanocl exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The kind: only `cargo` runs commands.
    pub kind: String,

    /// The cargo's name.
    pub name: String,

    /// The replica (its slot number, as `nanocl get replicas` lists them).
    #[arg(long, value_name = "N")]
    pub replica: Option<u32>,

    /// Pass this terminal's input to the command.
    #[arg(short = 'i', long = "stdin")]
    pub stdin: bool,

    /// Give the command a terminal (with -i: an interactive shell).
    #[arg(short = 't', long = "tty")]
    pub tty: bool,

    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `nanocl logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The kind: only `cargo` has logs.
    pub kind: String,

    /// The cargo's name.
    pub name: String,

    /// Keep printing new output until interrupted.
    #[arg(short = 'f', long = "follow")]
    pub follow: bool,

    /// Only the last N lines of each replica (of the build, with --build).
    #[arg(long, value_name = "N")]
    pub tail: Option<u32>,

    /// Only output newer than a duration (10s, 5m, 2h) or since an RFC 3339 time
    /// (2026-12-03T09:00:00Z).
    #[arg(long, value_name = "DURATION|TIME", conflicts_with = "build")]
    pub since: Option<String>,

    /// Start each line with the time Docker received it (RFC 3339, nanoseconds).
    #[arg(long, conflicts_with = "build")]
    pub timestamps: bool,

    /// The output of the cargo's latest image build instead (spec.container.build); with
    /// -f, until the build ends.
    #[arg(long)]
    pub build: bool,
}

/// `nanocl cordon|uncordon|drain`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The kind: `node` (or `no`, `nodes`).
    pub kind: String,

    /// The node's name, as `nanocl get nodes` lists it.
    pub name: String,
}

/// `nanocl rollout`.
#[derive(Debug, Args)]
pub struct RolloutArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: RolloutCommand,
}

/// The `nanocl rollout` subcommands.
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Follow a cargo's rollout until every replica runs the spec's revision.
    ///
    /// Prints a line each time the rollout progresses. Exit status: 0 when every replica runs
    /// the spec's revision and is ready; 1 when the update failed (rolled back, or stopped
    /// when autoRollback is false), when --timeout passes first, or when the cargo does not
    /// exist. A paused rollout is reported once and waited for.
    ///
    /// Example, in CI after `nanocl apply`: `nanocl rollout status cargo web --timeout 5m`
    Status(RolloutStatusArgs),
    /// List a cargo's revisions, or show one of them in full.
    ///
    /// STATUS says which revision runs everywhere (`current`), which one replicas are being
    /// moved to (`updating`), and which updates failed and why.
    ///
    /// Example: `nanocl rollout history cargo web --revision 2`
    History(RolloutHistoryArgs),
    /// Go back to an earlier revision: write its container and networks into the cargo's
    /// spec.
    ///
    /// Without --to-revision, the newest revision before the spec's. The revision is rolled
    /// out as a new one (`back to revision N` in the history). Cluster variables are rendered
    /// with their values of today: a warning says when the revision used other values.
    ///
    /// Example: `nanocl rollout undo cargo web --to-revision 2`
    Undo(RolloutUndoArgs),
    /// Replace every replica of a cargo with a new container, as a rolling update.
    ///
    /// Sets the annotation rollout.nanocl.io/restartedAt to now; `apply` keeps it.
    ///
    /// Example: `nanocl rollout restart cargo web`
    Restart(RolloutTarget),
    /// Stop replacing a cargo's replicas: changes applied meanwhile wait until `resume`.
    ///
    /// Sets the annotation rollout.nanocl.io/paused: "true"; `apply` keeps it. Replicas that
    /// die are still replaced, with the revision they ran.
    ///
    /// Example: `nanocl rollout pause cargo web`
    Pause(RolloutTarget),
    /// Let a paused cargo's rollout go on.
    ///
    /// Example: `nanocl rollout resume cargo web`
    Resume(RolloutTarget),
}

/// The cargo a `nanocl rollout` subcommand acts on.
#[derive(Debug, Args)]
pub struct RolloutTarget {
    /// The kind: only `cargo` (or `cargoes`, `cg`).
    pub kind: String,

    /// The cargo's name.
    pub name: String,
}

/// `nanocl rollout status`.
#[derive(Debug, Args)]
pub struct RolloutStatusArgs {
    #[command(flatten)]
    pub target: RolloutTarget,

    /// How long to wait, e.g. 90s or 5m; 0s waits for as long as it takes.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
}

/// `nanocl rollout history`.
#[derive(Debug, Args)]
pub struct RolloutHistoryArgs {
    #[command(flatten)]
    pub target: RolloutTarget,

    /// Show this revision in full: its container, networks and cluster variables.
    #[arg(long, value_name = "N")]
    pub revision: Option<u32>,
}

/// `nanocl rollout undo`.
#[derive(Debug, Args)]
pub struct RolloutUndoArgs {
    #[command(flatten)]
    pub target: RolloutTarget,

    /// The revision to go back to (default: the newest one before the spec's).
    #[arg(long, value_name = "N")]
    pub to_revision: Option<u32>,
}

/// `nanocl scale`.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The kind: only `cargo` scales.
    pub kind: String,

    /// The cargo's name.
    pub name: String,

    /// The replica count (0 to 1000).
    #[arg(long, value_name = "N")]
    pub replicas: i32,
}

/// Pruning: deleting the objects of a set that are no longer in the input.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Delete the objects of the applyset that are no longer in the input. Objects applied
    /// with --prune carry the label nanocl.io/applyset=NAME.
    #[arg(long)]
    pub prune: bool,

    /// The applyset's name (default: derived from the first -f path, e.g. `deploy` for
    /// `-f deploy/`).
    #[arg(long, value_name = "NAME", requires = "prune")]
    pub applyset: Option<String>,
}

/// `nanocl diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub files: FileArgs,

    #[command(flatten)]
    pub prune: PruneArgs,
}

/// Output formats of `get`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GetOutput {
    /// A table.
    Table,
    /// A table with more columns.
    Wide,
    /// YAML documents.
    Yaml,
    /// JSON.
    Json,
    /// kind/name, one per line.
    Name,
}

/// `nanocl get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The kind: namespace(s)/ns, cluster(s)/cl, network(s)/net, secret(s), cargo(es)/cg,
    /// node(s)/no, replica(s)/rep; or TYPE/NAME arguments as `get -o name` prints them.
    pub kind: String,

    /// The objects' names; every object of the kind when omitted.
    pub names: Vec<String>,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: GetOutput,

    /// After listing, keep printing changes.
    #[arg(short = 'w', long = "watch")]
    pub watch: bool,

    /// Every namespace.
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,

    /// Only objects whose labels match, e.g. app=web,tier!=db.
    #[arg(short = 'l', long = "selector", value_name = "SELECTOR")]
    pub selector: Option<String>,
}

/// `nanocl describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// The kind, or TYPE/NAME arguments as `get -o name` prints them.
    pub kind: String,

    /// The objects' names.
    pub names: Vec<String>,
}

/// `nanocl delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The kind (then NAMEs, or -l), or TYPE/NAME arguments as `get -o name` prints them,
    /// when not deleting from files.
    #[arg(required_unless_present = "files", conflicts_with = "files")]
    pub kind: Option<String>,

    /// The objects' names.
    #[arg(requires = "kind")]
    pub names: Vec<String>,

    /// Every object of the kind whose labels match, e.g. app=web,tier!=db.
    #[arg(
        short = 'l',
        long = "selector",
        value_name = "SELECTOR",
        conflicts_with = "files"
    )]
    pub selector: Option<String>,

    /// Delete every object defined in these files or directories.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    pub files: Vec<PathBuf>,

    /// Read subdirectories of -f directories.
    #[arg(short = 'R', long = "recursive", requires = "files")]
    pub recursive: bool,

    /// Wait until the objects are gone (their finalizers have run).
    #[arg(long)]
    pub wait: bool,

    /// How long --wait waits, e.g. 60s or 2m.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
}

/// `nanocl convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// A manifest file, a directory of them (*.yaml, *.yml, *.json), or - for stdin.
    /// Repeatable.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "PATH",
        required_unless_present = "from",
        conflicts_with = "from"
    )]
    pub files: Vec<PathBuf>,

    /// Also read the subdirectories of directories.
    #[arg(short = 'R', long = "recursive")]
    pub recursive: bool,

    /// The version to write (required with -f; --from writes nanocl.io/v1).
    #[arg(
        long,
        value_name = "VERSION",
        value_parser = ["nanocl.io/v1", "nanocl.io/v1alpha1"],
        required_unless_present = "from"
    )]
    pub output_version: Option<String>,

    /// Convert another tool's file: `compose` (a Compose file, v2 or v3).
    #[arg(long, value_enum, requires = "source")]
    pub from: Option<ConvertFrom>,

    /// With --from: the file to convert.
    #[arg(value_name = "FILE", requires = "from")]
    pub source: Option<PathBuf>,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    pub output: Output,
}

/// What `convert --from` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ConvertFrom {
    /// A Compose file (docker-compose.yml, compose.yaml).
    Compose,
}

/// `nanocl version`.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<Output>,

    /// Only this client's version: do not ask nanocld.
    #[arg(long)]
    pub client: bool,
}

/// `nanocl explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// KIND, or KIND.FIELD.PATH (e.g. `cargo.spec.update`).
    pub path: String,

    /// The version to explain: v1 (default) or v1alpha1.
    #[arg(long = "api-version", value_name = "VERSION", default_value = "v1")]
    pub api_version: String,
}

/// `nanocl completion`.
#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// `nanocl __man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Where to write them.
    pub dir: PathBuf,
}

/// `nanocl __complete`.
#[derive(Debug, Args)]
pub struct CompleteArgs {
    /// The words after `nanocl`, the one being typed last.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub words: Vec<String>,
}

/// `nanocl watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The deploy directory.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// Delete objects whose definition left the directory (a file deleted, an object removed
    /// from its file). Without it they stay, and a line says so.
    #[arg(long)]
    pub prune: bool,

    /// The applyset: every object gets the label nanocl.io/applyset=NAME. Default: the
    /// directory's name. Naming it also lets --prune delete Namespace objects.
    #[arg(long, value_name = "NAME")]
    pub applyset: Option<String>,

    /// Quiet period after a change before syncing, e.g. 400ms.
    #[arg(long, value_name = "DURATION", default_value = "400ms", value_parser = humantime::parse_duration)]
    pub debounce: std::time::Duration,

    /// Sync this often even without changes, undoing edits made behind the files' back; 0s
    /// disables it.
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = humantime::parse_duration)]
    pub resync: std::time::Duration,

    /// Sync once and exit: 0 when everything applied, 1 otherwise.
    #[arg(long)]
    pub once: bool,

    /// Also print a line per object created, configured or pruned.
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("nanocl").chain(args.iter().copied()))
    }

    fn rollout(args: &[&str]) -> RolloutCommand {
        match parse(args).map(|cli| cli.command) {
            Ok(Command::Rollout(r)) => r.command,
            other => panic!("not a rollout command: {other:?}"),
        }
    }

    #[test]
    fn the_command_tree_should_be_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn rollout_status_should_take_a_cargo_a_namespace_and_a_timeout() {
        let cli = parse(&[
            "rollout",
            "status",
            "cargo",
            "web",
            "-n",
            "shop",
            "--timeout",
            "90s",
        ])
        .expect("parses");
        assert_eq!(cli.namespace.as_deref(), Some("shop"));
        let Command::Rollout(RolloutArgs {
            command: RolloutCommand::Status(status),
        }) = cli.command
        else {
            panic!("not rollout status");
        };
        assert_eq!(status.target.kind, "cargo");
        assert_eq!(status.target.name, "web");
        assert_eq!(status.timeout, Duration::from_secs(90));
        let RolloutCommand::Status(default) = rollout(&["rollout", "status", "cg", "web"]) else {
            panic!("not rollout status");
        };
        assert_eq!(default.timeout, Duration::from_secs(600));
    }

    #[test]
    fn rollout_history_and_undo_should_take_a_revision_number() {
        let RolloutCommand::History(h) =
            rollout(&["rollout", "history", "cargo", "web", "--revision", "3"])
        else {
            panic!("not rollout history");
        };
        assert_eq!(h.revision, Some(3));
        let RolloutCommand::Undo(u) =
            rollout(&["rollout", "undo", "cargo", "web", "--to-revision", "2"])
        else {
            panic!("not rollout undo");
        };
        assert_eq!(u.to_revision, Some(2));
        let RolloutCommand::Undo(u) = rollout(&["rollout", "undo", "cargo", "web"]) else {
            panic!("not rollout undo");
        };
        assert_eq!(u.to_revision, None);
        assert!(parse(&["rollout", "undo", "cargo", "web", "--to-revision", "-1"]).is_err());
    }

    #[test]
    fn rollout_restart_pause_and_resume_should_need_a_kind_and_a_name() {
        assert!(matches!(
            rollout(&["rollout", "restart", "cargo", "web"]),
            RolloutCommand::Restart(RolloutTarget { .. })
        ));
        assert!(matches!(
            rollout(&["rollout", "pause", "cargo", "web"]),
            RolloutCommand::Pause(_)
        ));
        assert!(matches!(
            rollout(&["rollout", "resume", "cargo", "web"]),
            RolloutCommand::Resume(_)
        ));
        assert!(parse(&["rollout", "restart", "cargo"]).is_err());
        assert!(parse(&["rollout", "rewind", "cargo", "web"]).is_err());
    }
}

/// `nanocl context`.
#[derive(Debug, Args)]
pub struct ContextArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ContextCommand,
}

/// The `nanocl context` subcommands.
#[derive(Debug, Subcommand)]
pub enum ContextCommand {
    /// Add a context, or replace one of that name.
    Create(ContextCreateArgs),
    /// Make a context the current one.
    Use(ContextNameArg),
    /// List the contexts; the current one is marked with *.
    #[command(alias = "ls")]
    List,
    /// Remove a context (its certificate files stay).
    #[command(alias = "rm")]
    Remove(ContextNameArg),
    /// Print the context in use (or NAME) as YAML.
    Show(ContextShowArgs),
}

/// A context's name.
#[derive(Debug, Args)]
pub struct ContextNameArg {
    /// The context.
    pub name: String,
}

/// `nanocl context show`.
#[derive(Debug, Args)]
pub struct ContextShowArgs {
    /// The context (default: the one in use).
    pub name: Option<String>,
}

/// `nanocl context create`.
#[derive(Debug, Args)]
pub struct ContextCreateArgs {
    /// Its name.
    pub name: String,

    /// nanocld's address: tcp://HOST:PORT (mutual TLS) or unix:///PATH.
    #[arg(long = "server", value_name = "URL")]
    pub server: String,

    /// The CA that signed nanocld's certificate (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["cert", "key"])]
    pub ca: Option<PathBuf>,

    /// Your client certificate (PEM): its common name is your user.
    #[arg(long, value_name = "FILE", requires_all = ["ca", "key"])]
    pub cert: Option<PathBuf>,

    /// Its private key (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["ca", "cert"])]
    pub key: Option<PathBuf>,

    /// Make it the current context too.
    #[arg(long = "use")]
    pub use_it: bool,
}

/// `nanocl certs`.
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Where the CA and the certificates are (default: ~/.config/nanocl/pki).
    #[arg(long, value_name = "DIR", global = true)]
    pub dir: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: CertsCommand,
}

/// The `nanocl certs` subcommands.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create a CA: DIR/ca.pem (give it to nanocld as --tls-client-ca and to clients) and
    /// DIR/ca-key.pem (mode 0600; keep it safe). An existing CA is never replaced.
    Init(CertsInitArgs),
    /// Issue a certificate signed by the CA of DIR.
    Issue(CertsIssueArgs),
}

/// `nanocl certs init`.
#[derive(Debug, Args)]
pub struct CertsInitArgs {
    /// The CA's common name.
    #[arg(long, value_name = "NAME", default_value = "nanocl CA")]
    pub name: String,

    /// How long the CA is valid, in days.
    #[arg(long, value_name = "DAYS", default_value_t = 3650)]
    pub days: u32,
}

/// `nanocl certs issue`.
#[derive(Debug, Args)]
pub struct CertsIssueArgs {
    /// For nanocld (`server`: DIR/server.pem, DIR/server-key.pem) or for a user (`client`:
    /// DIR/NAME.pem, DIR/NAME-key.pem).
    pub role: CertRole,

    /// The user (the certificate's common name) of a client certificate; a server
    /// certificate's common name (default: its first --san).
    pub name: Option<String>,

    /// A DNS name or IP address clients reach nanocld at (a subject alternative name).
    /// Repeatable; a server certificate needs one (127.0.0.1 and localhost are always
    /// added).
    #[arg(long = "san", value_name = "NAME|IP")]
    pub sans: Vec<String>,

    /// How long the certificate is valid, in days.
    #[arg(long, value_name = "DAYS", default_value_t = 365)]
    pub days: u32,

    /// Replace existing files of the same name.
    #[arg(long)]
    pub force: bool,
}

/// What a certificate is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CertRole {
    /// nanocld's own (it also authenticates nanocld to other nodes).
    Server,
    /// A user's.
    Client,
}
