//! Docker image references (`[registry[:port]/]path[:tag][@digest]`), checked offline.

use crate::validation::quoted;

/// Checks `value` against the grammar of Docker's distribution references.
pub fn image_reference(value: &str) -> Result<(), String> {
    let bad = |why: &str| format!("invalid image reference {}: {why}", quoted(value));
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("must not contain spaces or control characters"));
    }
    let (name_and_tag, digest) = match value.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (value, None),
    };
    if let Some(digest) = digest {
        check_digest(digest).map_err(|why| bad(&why))?;
    }
    // A ':' after the last '/' starts the tag; one before it belongs to a registry port.
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_and_tag[last_slash..].find(':') {
        Some(i) => (
            &name_and_tag[..last_slash + i],
            Some(&name_and_tag[last_slash + i + 1..]),
        ),
        None => (name_and_tag, None),
    };
    if let Some(tag) = tag {
        check_tag(tag).map_err(|why| bad(&why))?;
    }
    if name.len() > 255 {
        return Err(bad("the repository name is longer than 255 characters"));
    }
    let mut components: Vec<&str> = name.split('/').collect();
    if components.len() > 1 {
        let first = components[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            check_domain(first).map_err(|why| bad(&why))?;
            components.remove(0);
        }
    }
    for component in components {
        check_path_component(component).map_err(|why| bad(&why))?;
    }
    Ok(())
}

fn check_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag {} must be 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
            quoted(tag)
        ))
    }
}

fn check_digest(digest: &str) -> Result<(), String> {
    let (algorithm, hex) = digest
        .split_once(':')
        .ok_or_else(|| "a digest is written ALGORITHM:HEX, e.g. sha256:…".to_owned())?;
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '.' | '_' | '-')
        });
    let hex_ok = hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit());
    if algorithm_ok && hex_ok {
        Ok(())
    } else {
        Err(format!("invalid digest {}", quoted(digest)))
    }
}

fn check_domain(domain: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        // [IPv6]:port
        let (ip, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("invalid registry {}", quoted(domain)))?;
        ip.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("invalid registry address {}", quoted(domain)))?;
        (None, after.strip_prefix(':'))
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(host) = host {
        let ok = !host.is_empty()
            && host.split('.').all(|c| {
                !c.is_empty()
                    && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
                    && !c.starts_with('-')
                    && !c.ends_with('-')
            });
        if !ok {
            return Err(format!("invalid registry host {}", quoted(domain)));
        }
    }
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("invalid registry port in {}", quoted(domain)));
        }
    }
    Ok(())
}

fn check_path_component(component: &str) -> Result<(), String> {
    let why = || {
        format!(
            "repository path component {} must be lowercase letters and digits, separated by '.', '_', '__' or dashes",
            quoted(component)
        )
    };
    let bytes = component.as_bytes();
    if bytes.is_empty()
        || !bytes[0].is_ascii_alphanumeric()
        || !bytes[bytes.len() - 1].is_ascii_alphanumeric()
    {
        return Err(why());
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            i += 1;
            continue;
        }
        // A separator: '.', '_', '__' or a run of '-'.
        let start = i;
        match b {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if bytes.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return Err(why()),
        }
        let next_ok = bytes
            .get(i)
            .is_some_and(|n| n.is_ascii_lowercase() || n.is_ascii_digit());
        if start == 0 || !next_ok {
            return Err(why());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_reference_should_accept_what_docker_accepts() {
        for ok in [
            "busybox",
            "busybox:1.36",
            "library/busybox:latest",
            "docker.io/library/busybox:1.36",
            "localhost:5000/team/app:v1.2.3",
            "registry.example.com/a/b/c",
            "ghcr.io/org/my_app__x--y:v1",
            "busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "[::1]:5000/app",
        ] {
            assert_eq!(image_reference(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn image_reference_should_reject_malformed_ones() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "bad image",
            "a//b",
            "-a",
            "a-",
            "a@sha256:xyz",
            "registry.example.com:0/app",
            "registry.example.com:abc/app",
            "app:tag:more",
        ] {
            assert!(image_reference(bad).is_err(), "{bad}");
        }
    }
}
