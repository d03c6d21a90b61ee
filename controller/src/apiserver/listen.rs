//! Where nanocld listens: its unix socket (stale sockets replaced, live ones refused),
//! plaintext TCP on loopback, and TCP with mutual TLS on any address.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// A listening address from `--listen`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenUrl {
    /// `unix:///path/to.sock`
    Unix(PathBuf),
    /// `tcp://IP:PORT`: with mutual TLS when nanocld has `--tls-*`, else loopback only.
    Tcp(std::net::SocketAddr),
}

impl ListenUrl {
    /// Why nanocld may not listen here: plaintext TCP anywhere but loopback.
    pub fn refusal(&self, tls: bool) -> Option<String> {
        match self {
            ListenUrl::Tcp(addr) if !tls && !addr.ip().is_loopback() => Some(format!(
                "--listen {self}: plaintext TCP is served on loopback only (127.0.0.1 or [::1]); to listen on {} give --tls-cert, --tls-key and --tls-client-ca (mutual TLS; `nanocl certs` makes them)",
                addr.ip()
            )),
            _ => None,
        }
    }
}

impl std::str::FromStr for ListenUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(format!("{url:?}: a unix socket URL needs an absolute path, e.g. unix:///run/nanocl/nanocl.sock"));
            }
            return Ok(ListenUrl::Unix(path.into()));
        }
        if let Some(addr) = url.strip_prefix("tcp://") {
            let addr: std::net::SocketAddr = addr.parse().map_err(|_| {
                format!("{url:?}: expected tcp://IP:PORT, e.g. tcp://127.0.0.1:8585")
            })?;
            return Ok(ListenUrl::Tcp(addr));
        }
        Err(format!(
            "{url:?}: expected unix:///PATH or tcp://127.0.0.1:PORT"
        ))
    }
}

impl std::fmt::Display for ListenUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenUrl::Unix(p) => write!(f, "unix://{}", p.display()),
            ListenUrl::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// Binds the unix socket at `path` with mode 0660, owned by `group` (`--socket-group`), else
/// by the group of the socket it replaces. A socket file nobody answers on (left by a killed
/// nanocld) is replaced; one a live process answers on is an error.
pub fn bind_unix(path: &Path, group: Option<u32>) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    // The group of a socket left by a killed nanocld, kept for its successor.
    let mut previous_group = None;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        previous_group = Some(meta.gid());
        if !meta.file_type().is_socket() {
            bail!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            );
        }
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => bail!(
                "another nanocld is already listening on {}; stop it first, or give this one another --listen",
                path.display()
            ),
            // Nobody answers: a socket left by a killed nanocld.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => std::fs::remove_file(path)
                .with_context(|| format!("cannot remove the stale socket {}", path.display()))?,
            Err(e) => bail!("cannot tell whether {} is in use ({e}); refusing to replace it", path.display()),
        }
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    if let Some(gid) = group.or(previous_group) {
        std::os::unix::fs::chown(path, None, Some(gid))
            .with_context(|| format!("cannot give {} to group {gid}", path.display()))?;
    }
    Ok(listener)
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn plaintext_tcp_should_be_refused_beyond_loopback_only() {
        let public: ListenUrl = "tcp://0.0.0.0:8586".parse().expect("parses");
        let why = public.refusal(false).unwrap_or_default();
        assert!(
            why.contains("plaintext TCP is served on loopback only"),
            "{why}"
        );
        assert!(
            why.contains("--tls-cert, --tls-key and --tls-client-ca"),
            "{why}"
        );
        assert_eq!(public.refusal(true), None);
        let local: ListenUrl = "tcp://127.0.0.1:8585".parse().expect("parses");
        assert_eq!(local.refusal(false), None);
        let v6: ListenUrl = "tcp://[::1]:8585".parse().expect("parses");
        assert_eq!(v6.refusal(false), None);
    }
}

#[cfg(test)]
mod socket_tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[tokio::test]
    async fn a_socket_left_by_a_killed_nanocld_should_pass_its_group_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nanocl.sock");
        // A socket nobody answers on any more, given to group 65534 (nogroup).
        drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
        std::os::unix::fs::chown(&path, None, Some(65534)).expect("chown");
        let _listener = bind_unix(&path, None).expect("replaced");
        let meta = std::fs::metadata(&path).expect("socket");
        assert_eq!((meta.mode() & 0o777, meta.gid()), (0o660, 65534));
        // A group given is the group.
        drop(_listener);
        let _listener = bind_unix(&path, Some(0)).expect("replaced");
        assert_eq!(std::fs::metadata(&path).expect("socket").gid(), 0);
    }
}
