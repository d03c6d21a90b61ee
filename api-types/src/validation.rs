//! Validation that collects every error with its field path instead of stopping at the first.

use std::fmt;
use std::net::IpAddr;

use crate::path::FieldPath;

/// One invalid field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Where the problem is.
    pub path: FieldPath,
    /// What is wrong, lowercase, without the path.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_root() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// All the errors found in one object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an error at `path`.
    pub fn push(&mut self, path: FieldPath, message: impl Into<String>) {
        self.0.push(FieldError {
            path,
            message: message.into(),
        });
    }

    /// Records the outcome of a single-value check.
    pub fn check(&mut self, path: &FieldPath, result: Result<(), String>) {
        if let Err(message) = result {
            self.push(path.clone(), message);
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when empty, the errors otherwise.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }

    /// The recorded errors in the order found.
    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.0.iter()
    }

    /// Appends all errors of `other`.
    pub fn extend(&mut self, other: FieldErrors) {
        self.0.extend(other.0);
    }
}

impl IntoIterator for FieldErrors {
    type Item = FieldError;
    type IntoIter = std::vec::IntoIter<FieldError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldErrors {}

/// Longest DNS-1123 label.
pub const MAX_NAME_LEN: usize = 63;

/// Shows a user value in a message: quoted, escaped, and cut when long.
pub fn quoted(value: &str) -> String {
    const MAX: usize = 80;
    if value.chars().count() > MAX {
        let cut: String = value.chars().take(MAX).collect();
        format!("{cut:?}…")
    } else {
        format!("{value:?}")
    }
}

/// An object name: a DNS-1123 label (lowercase letters, digits, `-`; starts and ends
/// alphanumeric; at most 63 characters).
pub fn dns1123_label(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    let len = value.chars().count();
    if len > MAX_NAME_LEN {
        return Err(format!(
            "must be at most {MAX_NAME_LEN} characters, got {len}"
        ));
    }
    let ok_chars = value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let bytes = value.as_bytes();
    let ok_ends = bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    if !ok_chars || !ok_ends {
        return Err(format!(
            "invalid name {}: a DNS-1123 label consists of lowercase letters, digits and '-', and starts and ends with a letter or digit (e.g. \"my-cargo\")",
            quoted(value)
        ));
    }
    Ok(())
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn dns1123_subdomain(value: &str) -> Result<(), String> {
    if value.len() > 253 {
        return Err(format!(
            "must be at most 253 characters, got {}",
            value.len()
        ));
    }
    for label in value.split('.') {
        dns1123_label(label).map_err(|_| {
            format!(
                "invalid DNS subdomain {}: dot-separated lowercase labels of letters, digits and '-'",
                quoted(value)
            )
        })?;
    }
    Ok(())
}

fn qualified_name_part(value: &str) -> bool {
    let bytes = value.as_bytes();
    !value.is_empty()
        && value.len() <= 63
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A label or annotation key: an optional DNS subdomain prefix and `/`, then a name of at most
/// 63 characters (alphanumerics, `-`, `_`, `.`; starting and ending alphanumeric).
pub fn qualified_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if dns1123_subdomain(prefix).is_err() {
            return Err(format!(
                "invalid key {}: the prefix before '/' must be a DNS subdomain (e.g. \"example.com/role\")",
                quoted(key)
            ));
        }
    }
    if !qualified_name_part(name) {
        return Err(format!(
            "invalid key {}: a name of at most 63 characters made of letters, digits, '-', '_' and '.', starting and ending with a letter or digit, with an optional DNS subdomain prefix and '/'",
            quoted(key)
        ));
    }
    Ok(())
}

/// A label value: empty, or at most 63 characters like the name part of a key.
pub fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || qualified_name_part(value) {
        Ok(())
    } else {
        Err(format!(
            "invalid label value {}: at most 63 characters made of letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
            quoted(value)
        ))
    }
}

/// An environment variable name, as POSIX shells accept it.
pub fn env_name(value: &str) -> Result<(), String> {
    let bytes = value.as_bytes();
    let ok = bytes
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid name {}: letters, digits and '_', not starting with a digit",
            quoted(value)
        ))
    }
}

/// An IPv4 or IPv6 address.
pub fn ip_address(value: &str) -> Result<(), String> {
    value
        .parse::<IpAddr>()
        .map(|_| ())
        .map_err(|_| format!("invalid IP address {}", quoted(value)))
}

/// A subnet in CIDR notation, e.g. `10.42.0.0/16`.
pub fn cidr(value: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "invalid subnet {}: expected CIDR notation such as \"10.42.0.0/16\"",
            quoted(value)
        )
    };
    let (addr, prefix) = value.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    match prefix.parse::<u8>() {
        Ok(p) if p <= max && prefix.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(bad()),
    }
}

/// An absolute path inside a container or on the host, without `..` components or NUL.
pub fn absolute_path(value: &str) -> Result<(), String> {
    if !value.starts_with('/') {
        return Err(format!("must be an absolute path, got {}", quoted(value)));
    }
    if value.contains('\0') {
        return Err("must not contain a NUL character".into());
    }
    if value.split('/').any(|c| c == "..") {
        return Err(format!("must not contain '..', got {}", quoted(value)));
    }
    Ok(())
}

/// Rejects control characters (NUL, newlines...) in free-form strings that end up in Docker.
pub fn no_control_chars(value: &str) -> Result<(), String> {
    if value.chars().any(char::is_control) {
        Err(format!(
            "must not contain control characters, got {}",
            quoted(value)
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_label_should_accept_names_and_reject_the_rest() {
        for ok in ["a", "web", "my-cargo-2", &"a".repeat(63)] {
            assert_eq!(dns1123_label(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a_b",
            "a.b",
            "../x",
            "a/b",
            "a\0b",
            &"a".repeat(64),
        ] {
            assert!(dns1123_label(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn qualified_key_should_follow_kubernetes_rules() {
        for ok in ["app", "nanocl.io/applyset", "a.b-c_d", "example.com/Role"] {
            assert_eq!(qualified_key(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "Example.com/a",
            "a b",
            "-a",
            &"a".repeat(64),
        ] {
            assert!(qualified_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cidr_should_check_prefix_length() {
        assert_eq!(cidr("10.42.0.0/16"), Ok(()));
        assert_eq!(cidr("fd00::/64"), Ok(()));
        assert!(cidr("10.42.0.0/33").is_err());
        assert!(cidr("10.42.0.0").is_err());
        assert!(cidr("x/8").is_err());
    }
}
