//! Request paths: `/apis/nanocl.io/{version}/...` into what they address, with clear errors.

use nanocl_api_types::{validation, Kind, Version};

use super::status::ApiError;

/// A subresource of one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subresource {
    /// `/status`: read or replace the status only.
    Status,
    /// `/log`: a cargo's container output.
    Log,
    /// `/exec`: a command run in one of a cargo's replicas (an upgraded connection).
    Exec,
    /// `/usage`: what a cargo's replicas use now (`nanocl top`).
    Usage,
}

/// What a path addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The API version of the path, which is the version of the response.
    pub version: Version,
    /// The kind.
    pub kind: Kind,
    /// The namespace; `None` for namespaces, and for lists across all namespaces.
    pub namespace: Option<String>,
    /// The object's name; `None` for a collection.
    pub name: Option<String>,
    /// A subresource of the object.
    pub subresource: Option<Subresource>,
}

fn percent_decode(segment: &str) -> Result<String, ApiError> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "malformed percent-encoding in path segment {segment:?}"
                    ))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| ApiError::bad_request(format!("path segment {segment:?} is not UTF-8")))
}

/// Decodes `%XX` escapes of a query component (and `+` as space).
pub fn query_decode(value: &str) -> Result<String, ApiError> {
    percent_decode(&value.replace('+', " "))
}

fn name(segment: &str, what: &str) -> Result<String, ApiError> {
    let decoded = percent_decode(segment)?;
    validation::dns1123_label(&decoded)
        .map_err(|e| ApiError::bad_request(format!("invalid {what} in the path: {e}")))?;
    Ok(decoded)
}

fn kind_from_plural(plural: &str) -> Result<Kind, ApiError> {
    Kind::ALL
        .into_iter()
        .find(|k| k.plural() == plural)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no resource {plural:?} in nanocl.io: served are {}",
                Kind::ALL
                    .iter()
                    .map(|k| k.plural())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// Parses a request path (still percent-encoded).
pub fn parse(path: &str) -> Result<Target, ApiError> {
    let segments: Vec<&str> = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .collect();
    let rest = match segments.as_slice() {
        ["apis", "nanocl.io", version, rest @ ..] => {
            let version = Version::ALL
                .into_iter()
                .find(|v| v.name() == *version)
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "API version nanocl.io/{version} is not served: served are v1, v1alpha1"
                    ))
                })?;
            (version, rest)
        }
        _ => {
            return Err(ApiError::not_found(format!(
                "no such path {path:?}: the API lives under /apis/nanocl.io/v1"
            )))
        }
    };
    let (version, rest) = rest;
    let target = |kind, namespace, name, subresource| Target {
        version,
        kind,
        namespace,
        name,
        subresource,
    };
    let sub = |s: &str| match s {
        "status" => Ok(Subresource::Status),
        "log" => Ok(Subresource::Log),
        "exec" => Ok(Subresource::Exec),
        "usage" => Ok(Subresource::Usage),
        other => Err(ApiError::not_found(format!(
            "no subresource {other:?}: served are status, log, exec and usage"
        ))),
    };
    let parsed = match rest {
        ["namespaces"] => target(Kind::Namespace, None, None, None),
        ["namespaces", n] => target(
            Kind::Namespace,
            None,
            Some(name(n, "namespace name")?),
            None,
        ),
        ["namespaces", n, "status"] => target(
            Kind::Namespace,
            None,
            Some(name(n, "namespace name")?),
            Some(Subresource::Status),
        ),
        ["namespaces", ns, plural] => {
            let kind = kind_from_plural(plural)?;
            if !kind.namespaced() {
                return Err(ApiError::not_found(format!(
                    "{plural} are not inside namespaces: /apis/nanocl.io/{}/{plural}",
                    version.name()
                )));
            }
            target(kind, Some(name(ns, "namespace")?), None, None)
        }
        ["namespaces", ns, plural, n, rest @ ..] => {
            let kind = kind_from_plural(plural)?;
            if !kind.namespaced() {
                return Err(ApiError::not_found(format!(
                    "{plural} are not inside namespaces: /apis/nanocl.io/{}/{plural}",
                    version.name()
                )));
            }
            let subresource = match rest {
                [] => None,
                [s] => Some(sub(s)?),
                _ => return Err(ApiError::not_found(format!("no such path {path:?}"))),
            };
            target(
                kind,
                Some(name(ns, "namespace")?),
                Some(name(n, "name")?),
                subresource,
            )
        }
        [plural] => {
            let kind = kind_from_plural(plural)?;
            target(kind, None, None, None)
        }
        // A cluster-scoped kind other than namespaces (nodes).
        [plural, n, rest @ ..] if rest.len() <= 1 => {
            let kind = kind_from_plural(plural)?;
            if kind.namespaced() {
                return Err(ApiError::not_found(format!(
                    "{plural} live in namespaces: /apis/nanocl.io/{}/namespaces/{{namespace}}/{plural}/{n}",
                    version.name()
                )));
            }
            let subresource = match rest {
                [s] => Some(sub(s)?),
                _ => None,
            };
            target(kind, None, Some(name(n, "name")?), subresource)
        }
        _ => return Err(ApiError::not_found(format!("no such path {path:?}"))),
    };
    if !parsed.kind.served_in(version) {
        return Err(ApiError::not_found(format!(
            "{} is served only in nanocl.io/v1: /apis/nanocl.io/v1/{}",
            parsed.kind,
            parsed.kind.plural()
        )));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_should_parse_into_targets() {
        let t = parse("/apis/nanocl.io/v1/namespaces/demo/cargoes/web").expect("item");
        assert_eq!(
            (t.version, t.kind, t.namespace.as_deref(), t.name.as_deref()),
            (Version::V1, Kind::Cargo, Some("demo"), Some("web"))
        );
        let t = parse("/apis/nanocl.io/v1alpha1/cargoes").expect("all namespaces");
        assert_eq!((t.kind, t.namespace, t.name), (Kind::Cargo, None, None));
        let t = parse("/apis/nanocl.io/v1/namespaces/demo/status").expect("namespace status");
        assert_eq!(
            (t.kind, t.name.as_deref(), t.subresource),
            (Kind::Namespace, Some("demo"), Some(Subresource::Status))
        );
        let t = parse("/apis/nanocl.io/v1/namespaces/demo/clusters/dev/status").expect("status");
        assert_eq!(t.subresource, Some(Subresource::Status));
        let t = parse("/apis/nanocl.io/v1/nodes").expect("nodes");
        assert_eq!((t.kind, t.namespace, t.name), (Kind::Node, None, None));
        let t = parse("/apis/nanocl.io/v1/nodes/host-1/status").expect("node status");
        assert_eq!(
            (t.kind, t.namespace, t.name.as_deref(), t.subresource),
            (Kind::Node, None, Some("host-1"), Some(Subresource::Status))
        );
    }

    #[test]
    fn bad_paths_should_say_why() {
        for (path, code, text) in [
            (
                "/apis/nanocl.io/v1/namespaces/demo/cargoes/..",
                400,
                "invalid name",
            ),
            (
                "/apis/nanocl.io/v1/namespaces/demo/cargoes/a%2fb",
                400,
                "invalid name",
            ),
            (
                "/apis/nanocl.io/v1/namespaces/demo/cargoes/a%zz",
                400,
                "malformed percent-encoding",
            ),
            ("/apis/nanocl.io/v2/cargoes", 404, "not served"),
            (
                "/apis/nanocl.io/v1/namespaces/demo/services",
                404,
                "no resource \"services\"",
            ),
            ("/api/v1/pods", 404, "no such path"),
            (
                "/apis/nanocl.io/v1alpha1/nodes/host-1",
                404,
                "Node is served only in nanocl.io/v1",
            ),
            (
                "/apis/nanocl.io/v1/cargoes/web",
                404,
                "cargoes live in namespaces",
            ),
            (
                "/apis/nanocl.io/v1/namespaces/demo/nodes",
                404,
                "nodes are not inside namespaces",
            ),
            (
                "/apis/nanocl.io/v1/namespaces/demo/cargoes/web/attach",
                404,
                "no subresource",
            ),
        ] {
            let err = parse(path).expect_err(path);
            assert_eq!(err.code.as_u16(), code, "{path}");
            assert!(err.message.contains(text), "{path}: {}", err.message);
        }
    }
}
