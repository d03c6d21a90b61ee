//! The relay between nodes' proxies: how a proxy reaches the replicas of another node.
//!
//! A container's address is its node's own (each node has its own Docker bridges, with the
//! same subnets), so a proxy never connects to another node's replica directly: it connects
//! to that node's relay (the Node's `proxyRelay`, `IP:PORT`), says which replica in one line,
//! `NANOCL-RELAY/1 ADDR:PORT`, and the relay answers `OK` once it has connected to it (or
//! `ERR why`), then carries the bytes both ways. The relay takes connections from the other
//! nodes' addresses only, and reaches only the replicas its own routes send traffic to now —
//! not one being drained — so it is no way into anything else on the node, and a replica
//! that is going away refuses new connections from every node at once (the caller tries its
//! next backend, as for a refused connection).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::{State, Target, CONNECT_TIMEOUT};

/// The first word of a relayed connection.
const HELLO: &str = "NANOCL-RELAY/1";
/// The longest line either way.
const MAX_LINE: usize = 256;
/// The longest a peer may take to say which replica.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads one line (without its `\n`) byte by byte: nothing after it is consumed, so the
/// replica's first bytes stay in the stream.
async fn read_line(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut line = Vec::new();
    loop {
        let byte = stream.read_u8().await?;
        if byte == b'\n' {
            break;
        }
        if line.len() == MAX_LINE {
            return Err(std::io::Error::other("line too long"));
        }
        line.push(byte);
    }
    String::from_utf8(line).map_err(|_| std::io::Error::other("not UTF-8"))
}

/// Opens a connection to replica `target` through the relay at `via`, from `source` (this
/// node's address, which the relay checks) when it is an address of this host.
pub async fn open(
    via: SocketAddr,
    target: SocketAddr,
    source: Option<IpAddr>,
) -> std::io::Result<TcpStream> {
    let socket = match via {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(ip) = source.filter(|ip| ip.is_ipv4() == via.is_ipv4()) {
        // Not an address of this host (behind NAT, say): the kernel chooses.
        let _ = socket.bind(SocketAddr::new(ip, 0));
    }
    let mut stream = socket.connect(via).await?;
    let _ = stream.set_nodelay(true);
    stream
        .write_all(format!("{HELLO} {target}\n").as_bytes())
        .await?;
    let answer = read_line(&mut stream).await?;
    match answer.strip_prefix("ERR ") {
        None if answer == "OK" => Ok(stream),
        Some(why) => Err(std::io::Error::other(format!("relay {via}: {why}"))),
        None => Err(std::io::Error::other(format!(
            "relay {via}: unexpected answer {answer:?}"
        ))),
    }
}

/// Accepts relayed connections on `listener` until aborted.
pub async fn serve(listener: TcpListener, state: Arc<State>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let state = state.clone();
                tokio::spawn(async move { relay(stream, peer, &state).await });
            }
            Err(e) => {
                tracing::warn!(error = %e, "proxy relay: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Why a relayed connection is refused, said to the peer.
fn refuse(why: &str) -> Vec<u8> {
    format!("ERR {why}\n").into_bytes()
}

/// One relayed connection: checked, connected, then carried both ways.
async fn relay(mut stream: TcpStream, peer: SocketAddr, state: &State) {
    let _ = stream.set_nodelay(true);
    let allowed = state
        .table()
        .relay
        .as_ref()
        .is_some_and(|r| r.peers.contains(&peer.ip()));
    if !allowed {
        tracing::warn!(%peer, "proxy relay: a connection from an address that is no other node's; closed");
        return;
    }
    let target = match tokio::time::timeout(HELLO_TIMEOUT, read_line(&mut stream)).await {
        Ok(Ok(line)) => line
            .strip_prefix(HELLO)
            .and_then(|rest| rest.trim().parse::<SocketAddr>().ok()),
        _ => None,
    };
    let Some(target) = target else {
        let _ = stream
            .write_all(&refuse("expected NANOCL-RELAY/1 ADDR:PORT"))
            .await;
        return;
    };
    let routed = state.table().local.contains(&target);
    if !routed || state.handoff.is_draining(&target.ip()) {
        let _ = stream
            .write_all(&refuse(&format!(
                "{target} is not a replica this node's proxy sends traffic to now"
            )))
            .await;
        return;
    }
    let _flight = state.handoff.begin(target.ip());
    let mut backend = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await
    {
        Ok(Ok(backend)) => backend,
        Ok(Err(e)) => {
            state.mark_down(Target::local(target));
            let _ = stream.write_all(&refuse(&format!("{target}: {e}"))).await;
            return;
        }
        Err(_) => {
            state.mark_down(Target::local(target));
            let _ = stream
                .write_all(&refuse(&format!("{target}: connection timed out")))
                .await;
            return;
        }
    };
    let _ = backend.set_nodelay(true);
    if stream.write_all(b"OK\n").await.is_err() {
        return;
    }
    state.metrics.count_relayed();
    let _ = tokio::io::copy_bidirectional(&mut stream, &mut backend).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::table::Relay;

    /// A relay on loopback serving `local` to `peers`, and a replica echoing a greeting.
    async fn setup(peers: Vec<IpAddr>) -> (SocketAddr, SocketAddr, Arc<State>) {
        let replica = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let replica_addr = replica.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = replica.accept().await {
                // Speaks first, as a banner does.
                let _ = s.write_all(b"hello\n").await;
                let mut buf = [0u8; 4];
                if s.read_exact(&mut buf).await.is_ok() {
                    let _ = s.write_all(&buf).await;
                }
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let relay_addr = listener.local_addr().expect("addr");
        let state = Arc::new(State::default());
        let mut table = crate::proxy::Table {
            relay: Some(Relay {
                listen: relay_addr,
                peers,
            }),
            ..Default::default()
        };
        table.local.insert(replica_addr);
        state.set(table);
        tokio::spawn(serve(listener, state.clone()));
        (relay_addr, replica_addr, state)
    }

    #[tokio::test]
    async fn a_relay_should_carry_a_peer_to_a_routed_replica_banner_first() {
        let (relay, replica, state) = setup(vec!["127.0.0.1".parse().expect("ip")]).await;
        let mut s = open(relay, replica, None).await.expect("relayed");
        let mut banner = [0u8; 6];
        s.read_exact(&mut banner).await.expect("banner");
        assert_eq!(&banner, b"hello\n");
        s.write_all(b"ping").await.expect("write");
        let mut echo = [0u8; 4];
        s.read_exact(&mut echo).await.expect("echo");
        assert_eq!(&echo, b"ping");
        assert!(state
            .metrics
            .render_proxy_requests()
            .contains("nanocl_proxy_relayed_connections_total 1"));
    }

    #[tokio::test]
    async fn a_relay_should_refuse_what_its_routes_do_not_reach_and_drained_replicas() {
        let (relay, replica, state) = setup(vec!["127.0.0.1".parse().expect("ip")]).await;
        let other: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let e = open(relay, other, None).await.expect_err("refused");
        assert!(
            e.to_string()
                .contains("127.0.0.1:9 is not a replica this node's proxy sends traffic to now"),
            "{e}"
        );
        let (_, _guard) = state
            .handoff
            .drain(&[replica.ip()], Duration::ZERO, Duration::ZERO)
            .await;
        let e = open(relay, replica, None).await.expect_err("draining");
        assert!(e.to_string().contains("is not a replica"), "{e}");
    }

    #[tokio::test]
    async fn a_relay_should_close_connections_from_addresses_of_no_node() {
        let (relay, replica, _) = setup(vec!["10.9.9.9".parse().expect("ip")]).await;
        let e = open(relay, replica, None).await.expect_err("closed");
        // Closed without an answer (reset: the hello was left unread).
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ),
            "{e}"
        );
    }
}
