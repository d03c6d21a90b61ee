//! Shell completion from the live server: `nanocl completion bash|zsh|fish` prints a small
//! script that asks `nanocl __complete WORDS…` for the candidates of the word being typed —
//! subcommands, flags, kinds, and the names of live objects and namespaces (as kubectl and
//! cobra do). Elvish and PowerShell get clap's static script.

use std::io::Write;
use std::time::Duration;

use clap::CommandFactory;
use clap_complete::Shell;
use hyper::{Method, StatusCode};
use nanocl_api_types::Kind;

use crate::args::Cli;
use crate::remote;

const BASH: &str = r#"# nanocl completion for bash: source <(nanocl completion bash)
_nanocl() {
    local IFS=$'\n'
    COMPREPLY=($(nanocl __complete -- "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -F _nanocl nanocl
"#;

const ZSH: &str = r#"#compdef nanocl
# nanocl completion for zsh: source <(nanocl completion zsh), or save it as _nanocl in $fpath
_nanocl() {
    local -a candidates
    candidates=("${(@f)$(nanocl __complete -- "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    compadd -a candidates
}
if [ "$funcstack[1]" = "_nanocl" ]; then
    _nanocl "$@"
else
    compdef _nanocl nanocl
fi
"#;

const FISH: &str = r#"# nanocl completion for fish: nanocl completion fish > ~/.config/fish/completions/nanocl.fish
complete -c nanocl -f -a '(nanocl __complete -- (commandline -opc)[2..-1] (commandline -ct))'
"#;

/// `nanocl completion SHELL`.
pub fn script(shell: Shell, out: &mut impl Write) -> anyhow::Result<()> {
    match shell {
        Shell::Bash => out.write_all(BASH.as_bytes())?,
        Shell::Zsh => out.write_all(ZSH.as_bytes())?,
        Shell::Fish => out.write_all(FISH.as_bytes())?,
        other => {
            let mut command = Cli::command();
            clap_complete::generate(other, &mut command, "nanocl", out);
        }
    }
    Ok(())
}

/// Commands whose first argument is a kind, then names of that kind.
const KIND_THEN_NAMES: &[&str] = &[
    "get", "describe", "delete", "edit", "logs", "exec", "top", "scale", "build", "cordon",
    "uncordon", "drain",
];

/// What the command line says so far.
#[derive(Debug, Default, PartialEq, Eq)]
struct Line {
    host: Option<String>,
    namespace: Option<String>,
    /// The subcommand words (`rollout`, `status`), then the positional arguments.
    positional: Vec<String>,
    /// The flag whose value is being typed (`-n`, `-o`), if any.
    value_of: Option<String>,
    /// The word being typed.
    current: String,
}

/// Global flags that take a value.
const GLOBAL_VALUED: &[&str] = &["-H", "--host", "-n", "--namespace", "--default-namespace"];

fn parse(words: &[String]) -> Line {
    let (current, before) = match words.split_last() {
        Some((c, b)) => (c.clone(), b),
        None => (String::new(), &[][..]),
    };
    let mut line = Line {
        current,
        ..Line::default()
    };
    let mut i = 0;
    while i < before.len() {
        let w = &before[i];
        let next = before.get(i + 1).cloned();
        if w == "--" {
            // exec's command: nothing more to complete from us.
            line.positional.push(w.clone());
            break;
        }
        if let Some((flag, value)) = w.split_once('=').filter(|_| w.starts_with("--")) {
            match flag {
                "--host" => line.host = Some(value.to_owned()),
                "--namespace" => line.namespace = Some(value.to_owned()),
                _ => {}
            }
        } else if w.starts_with('-') && w.len() > 1 {
            if GLOBAL_VALUED.contains(&w.as_str()) || takes_value(w) {
                match (w.as_str(), &next) {
                    ("-H" | "--host", Some(v)) => line.host = Some(v.clone()),
                    ("-n" | "--namespace", Some(v)) => line.namespace = Some(v.clone()),
                    _ => {}
                }
                if next.is_none() {
                    line.value_of = Some(w.clone());
                }
                i += 1;
            }
        } else {
            line.positional.push(w.clone());
        }
        i += 1;
    }
    line
}

/// Flags of the subcommands that take a value (their value is not a positional argument).
fn takes_value(flag: &str) -> bool {
    matches!(
        flag,
        "-o" | "--output"
            | "-l"
            | "--selector"
            | "-f"
            | "--filename"
            | "--tail"
            | "--since"
            | "--replica"
            | "--replicas"
            | "--timeout"
            | "--to-revision"
            | "--output-version"
            | "--dry-run"
    )
}

/// The candidates for the word being typed, each on its own line.
pub async fn complete(
    cli_host: Option<&str>,
    words: &[String],
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let line = parse(words);
    let mut candidates = candidates(&line, cli_host).await;
    candidates.retain(|c| c.starts_with(&line.current));
    candidates.sort();
    candidates.dedup();
    for c in candidates {
        writeln!(out, "{c}")?;
    }
    Ok(())
}

async fn candidates(line: &Line, cli_host: Option<&str>) -> Vec<String> {
    let host = line.host.as_deref().or(cli_host);
    if let Some(flag) = &line.value_of {
        return match flag.as_str() {
            "-n" | "--namespace" | "--default-namespace" => {
                live_names(host, Kind::Namespace, None).await
            }
            "-o" | "--output" => ["table", "wide", "yaml", "json", "name"]
                .map(String::from)
                .to_vec(),
            "--dry-run" => ["client", "server"].map(String::from).to_vec(),
            _ => Vec::new(),
        };
    }
    let command = Cli::command();
    let Some(first) = line.positional.first() else {
        if line.current.starts_with('-') {
            return flags(&command);
        }
        return command
            .get_subcommands()
            .filter(|c| !c.is_hide_set())
            .map(|c| c.get_name().to_owned())
            .collect();
    };
    let Some(sub) = command.find_subcommand(first) else {
        return Vec::new();
    };
    if line.positional.iter().any(|p| p == "--") {
        return Vec::new();
    }
    // `rollout status cargo NAME`: one more level.
    let (sub, args) = match sub.get_subcommands().next() {
        Some(_) => match line.positional.get(1) {
            None => {
                return sub
                    .get_subcommands()
                    .map(|c| c.get_name().to_owned())
                    .collect()
            }
            Some(name) => match sub.find_subcommand(name) {
                Some(inner) => (inner, &line.positional[2..]),
                None => return Vec::new(),
            },
        },
        None => (sub, &line.positional[1..]),
    };
    if line.current.starts_with('-') {
        return flags(sub);
    }
    let kind_then_names = KIND_THEN_NAMES.contains(&first.as_str()) || first == "rollout";
    match (first.as_str(), args) {
        ("explain", []) => Kind::ALL
            .iter()
            .map(|k| k.as_str().to_ascii_lowercase())
            .collect(),
        ("completion", []) => ["bash", "zsh", "fish", "elvish", "powershell"]
            .map(String::from)
            .to_vec(),
        (_, []) if kind_then_names => {
            let kinds: &[Kind] = match first.as_str() {
                "logs" | "exec" | "top" | "scale" | "build" | "rollout" => &[Kind::Cargo],
                "cordon" | "uncordon" | "drain" => &[Kind::Node],
                _ => &Kind::ALL,
            };
            kinds
                .iter()
                .map(|k| k.as_str().to_ascii_lowercase())
                .collect()
        }
        (_, [kind, ..]) if kind_then_names => {
            let Some(kind) = Kind::from_cli(kind) else {
                return Vec::new();
            };
            // One name for most; several for get, describe and delete.
            let several = matches!(first.as_str(), "get" | "describe" | "delete");
            if args.len() > 1 && !several {
                return Vec::new();
            }
            let namespace = line.namespace.clone().or_else(|| {
                std::env::var("NANOCL_NAMESPACE")
                    .ok()
                    .filter(|n| !n.is_empty())
            });
            let namespace =
                namespace.unwrap_or_else(|| nanocl_api_types::meta::DEFAULT_NAMESPACE.to_owned());
            let mut names = live_names(host, kind, Some(&namespace)).await;
            names.retain(|n| !args[1..].contains(n));
            names
        }
        _ => Vec::new(),
    }
}

fn flags(command: &clap::Command) -> Vec<String> {
    command
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .flat_map(|a| {
            let mut f = Vec::new();
            if let Some(l) = a.get_long() {
                f.push(format!("--{l}"));
            }
            if let Some(s) = a.get_short() {
                f.push(format!("-{s}"));
            }
            f
        })
        .collect()
}

/// The names of the live objects of `kind` (in `namespace`); nothing when nanocld does not
/// answer within 2 s (a completion never hangs the shell).
async fn live_names(host: Option<&str>, kind: Kind, namespace: Option<&str>) -> Vec<String> {
    // -H on the line being completed, else what nanocl itself would use (NANOCL_HOST, a
    // context, the socket).
    let Ok(client) = crate::context::resolve(host, None).and_then(|e| e.client()) else {
        return Vec::new();
    };
    let path = remote::collection_path(kind, kind.namespaced().then_some(namespace).flatten());
    let answer = tokio::time::timeout(
        Duration::from_secs(2),
        client.request(Method::GET, &path, None),
    )
    .await;
    let Ok(Ok(answer)) = answer else {
        return Vec::new();
    };
    if answer.status != StatusCode::OK {
        return Vec::new();
    }
    answer
        .json()
        .ok()
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let mut w: Vec<String> = text.split(' ').map(str::to_owned).collect();
        if text.is_empty() {
            w = vec![String::new()];
        }
        w
    }

    async fn offline(text: &str) -> Vec<String> {
        // No server at this address: only what needs none.
        let mut out = Vec::new();
        complete(
            Some("unix:///nonexistent/nanocl.sock"),
            &words(text),
            &mut out,
        )
        .await
        .expect("completes");
        String::from_utf8(out)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[tokio::test]
    async fn subcommands_kinds_flags_and_values_should_complete_without_a_server() {
        let top = offline("").await;
        for c in ["apply", "get", "exec", "edit", "top", "rollout"] {
            assert!(top.contains(&c.to_owned()), "{top:?}");
        }
        assert!(
            !top.iter().any(|c| c.starts_with("__")),
            "hidden stays hidden: {top:?}"
        );
        assert_eq!(offline("ge").await, ["get"]);
        assert_eq!(offline("get ca").await, ["cargo"]);
        assert_eq!(offline("-n shop logs ").await, ["cargo"]);
        assert_eq!(offline("rollout s").await, ["status"]);
        assert_eq!(offline("rollout status ").await, ["cargo"]);
        assert_eq!(offline("get cargo -o y").await, ["yaml"]);
        assert!(offline("get cargo --wat")
            .await
            .contains(&"--watch".to_owned()));
        assert_eq!(offline("exec cargo web -- ").await, Vec::<String>::new());
        assert_eq!(offline("explain car").await, ["cargo"]);
        // Names need the server: none, and no error, without one.
        assert_eq!(offline("get cargo ").await, Vec::<String>::new());
    }

    #[test]
    fn the_line_should_know_its_namespace_host_and_positionals() {
        let line = parse(&words("-H unix:///x.sock get -n shop cargo -o yaml w"));
        assert_eq!(line.host.as_deref(), Some("unix:///x.sock"));
        assert_eq!(line.namespace.as_deref(), Some("shop"));
        assert_eq!(line.positional, ["get", "cargo"]);
        assert_eq!(line.current, "w");
        assert_eq!(parse(&words("get -n ")).value_of.as_deref(), Some("-n"));
    }
}
