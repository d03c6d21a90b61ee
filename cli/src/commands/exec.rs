//! `nanocl exec cargo NAME [--replica N] [-i] [-t] -- COMMAND…`: runs a command in a
//! replica over nanocld's `exec` subresource and exits with its status.

use std::io::{IsTerminal, Write};

use anyhow::{bail, Context};
use nanocl_api_types::{Kind, ObjectKey};
use nanocl_client::exec::{self as wire, Frame};

use crate::args::{Cli, ExecArgs};
use crate::client::encode_query;
use crate::commands::get::parse_kind;
use crate::remote;
use crate::Outcome;

/// Runs `exec`.
pub async fn run(cli: &Cli, args: &ExecArgs) -> anyhow::Result<Outcome> {
    if parse_kind(&args.kind)? != Kind::Cargo {
        bail!("only cargoes run commands: nanocl exec cargo NAME -- COMMAND");
    }
    let key = ObjectKey {
        kind: Kind::Cargo,
        namespace: Some(cli.namespace_or_default()),
        name: args.name.clone(),
    };
    let terminal = args.tty && std::io::stdin().is_terminal();
    if args.tty && !terminal {
        eprintln!("warning: -t: the input is not a terminal; the command gets one anyway");
    }
    let mut query: Vec<String> = args
        .command
        .iter()
        .map(|c| format!("command={}", encode_query(c)))
        .collect();
    if let Some(n) = args.replica {
        query.push(format!("replica={n}"));
    }
    if args.tty {
        query.push("tty=true".into());
        if let Some((rows, cols)) = terminal.then(size).flatten() {
            query.push(format!("rows={rows}&cols={cols}"));
        }
    }
    if args.stdin {
        query.push("stdin=true".into());
    }
    let path = format!("{}/exec?{}", remote::item_path(&key), query.join("&"));
    let client = cli.client()?;
    let io = match client.upgrade(&path, wire::PROTOCOL).await? {
        Ok(io) => io,
        Err(answer) => bail!("{}", answer.error_message()),
    };
    let (mut from_server, mut to_server) = tokio::io::split(io);
    // Raw mode while a terminal is attached; restored on every way out.
    let _raw = if terminal && args.stdin {
        Some(RawMode::enter()?)
    } else {
        None
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Frame>(16);
    if args.stdin {
        read_stdin(tx.clone());
    }
    if terminal {
        watch_resizes(tx.clone())?;
    }
    drop(tx);
    let outbound = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if wire::write(&mut to_server, &frame).await.is_err() {
                break;
            }
        }
        // Keep the write half open: closing it would end the upgraded connection.
        std::future::pending::<()>().await;
    });
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    let outcome = loop {
        match wire::read(&mut from_server).await {
            Ok(Some(Frame::Stdout(b))) => {
                stdout.write_all(&b)?;
                stdout.flush()?;
            }
            Ok(Some(Frame::Stderr(b))) => {
                stderr.write_all(&b)?;
                stderr.flush()?;
            }
            Ok(Some(Frame::Exit(code))) => {
                break Outcome::Exit(u8::try_from(code.clamp(0, 255)).unwrap_or(255));
            }
            Ok(Some(Frame::Error(message))) => bail!("{message}"),
            Ok(Some(_)) => bail!("nanocld sent a frame it should not (an older or newer nanocld?)"),
            Ok(None) => bail!("the connection to nanocld ended before the command did"),
            Err(e) => return Err(e).context("reading the command's output from nanocld"),
        }
    };
    outbound.abort();
    Ok(outcome)
}

/// The terminal's (rows, columns).
fn size() -> Option<(u16, u16)> {
    let ws = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    (ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Reads standard input on a thread of its own (a blocked read never holds the process
/// when the command has ended) and sends it on, then its end.
fn read_stdin(tx: tokio::sync::mpsc::Sender<Frame>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 8192];
        let mut stdin = std::io::stdin().lock();
        loop {
            match std::io::Read::read(&mut stdin, &mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.blocking_send(Frame::StdinClosed);
                    return;
                }
                Ok(n) => {
                    if tx.blocking_send(Frame::Stdin(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

/// Sends the terminal's new size on every SIGWINCH.
fn watch_resizes(tx: tokio::sync::mpsc::Sender<Frame>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut changes = signal(SignalKind::window_change()).context("watching the terminal size")?;
    tokio::spawn(async move {
        while changes.recv().await.is_some() {
            if let Some((rows, cols)) = size() {
                if tx.send(Frame::Resize { rows, cols }).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(())
}

/// The terminal in raw mode (keys go to the command as typed, Ctrl-C included) until
/// dropped.
struct RawMode {
    saved: rustix::termios::Termios,
}

impl std::fmt::Debug for RawMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawMode")
    }
}

impl RawMode {
    fn enter() -> anyhow::Result<RawMode> {
        use rustix::termios::{tcgetattr, tcsetattr, OptionalActions};
        let saved = tcgetattr(std::io::stdin()).context("reading the terminal's mode")?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(std::io::stdin(), OptionalActions::Now, &raw)
            .context("switching the terminal to raw mode")?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        use rustix::termios::{tcsetattr, OptionalActions};
        let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &self.saved);
    }
}
