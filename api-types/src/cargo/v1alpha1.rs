//! `Cargo` in `nanocl.io/v1alpha1`: the legacy flat shape (`image`, `env` as `KEY=VALUE`,
//! `binds`, Docker-style port strings), converted to and from v1 without loss.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::v1::{self, Healthcheck, ImagePullPolicy, PortSpec, Protocol, Resources, VolumeMount};
use crate::conversion::{self, from_key_value_list, to_key_value_list, V1_FIELDS_ANNOTATION};
use crate::meta::Object;
use crate::path::{FieldPath, Segment};
use crate::validation::{quoted, FieldErrors};

/// A Cargo as v1alpha1 writes it.
pub type Cargo = Object<CargoSpec, v1::CargoStatus>;

/// What a Cargo should be, in the legacy flat shape.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CargoSpec {
    /// The Cluster this cargo runs in. Required.
    #[serde(default)]
    pub cluster: String,
    /// How many containers to run (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Networks of the cluster to attach to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    /// Image reference. Required.
    #[serde(default)]
    pub image: String,
    /// Replaces the image's entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    /// Replaces the image's default arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    /// Environment as `KEY=VALUE` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Mounts as `SOURCE:TARGET[:ro|:rw]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binds: Vec<String>,
    /// Ports as `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]`, e.g. `127.0.0.1:8080:80`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
}

/// v1 container fields that have no place in the flat shape.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Stash {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image_pull_policy: Option<ImagePullPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    healthcheck: Option<Healthcheck>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    privileged: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    cap_add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    devices: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    host_pid: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    host_ipc: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    placement: Option<v1::Placement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    build: Option<v1::BuildSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    files: Vec<v1::SecretFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    update: Option<v1::UpdateSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revision_history_limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    autoscale: Option<v1::AutoscaleSpec>,
    // Set only when the flat form cannot hold these exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    env: Option<BTreeMap<String, v1::EnvValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    volumes: Option<Vec<VolumeMount>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ports: Option<Vec<PortSpec>>,
}

/// Prints a port the way Docker's `-p` reads it.
pub fn format_port(port: &PortSpec) -> String {
    let mut out = String::new();
    if let Some(ip) = &port.host_ip {
        if ip.contains(':') {
            out.push_str(&format!("[{ip}]:"));
        } else {
            out.push_str(&format!("{ip}:"));
        }
        if let Some(host_port) = port.host_port {
            out.push_str(&host_port.to_string());
        }
        out.push(':');
    } else if let Some(host_port) = port.host_port {
        out.push_str(&format!("{host_port}:"));
    }
    out.push_str(&port.container_port.to_string());
    if let Some(protocol) = port.protocol {
        out.push('/');
        out.push_str(protocol.as_docker());
    }
    out
}

/// Reads `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]`.
pub fn parse_port(value: &str) -> Result<PortSpec, String> {
    let bad = |why: &str| format!("invalid port {}: {why}", quoted(value));
    let (addr, protocol) = match value.rsplit_once('/') {
        Some((addr, proto)) => {
            let protocol = match proto.to_ascii_lowercase().as_str() {
                "tcp" => Protocol::TCP,
                "udp" => Protocol::UDP,
                "sctp" => Protocol::SCTP,
                _ => return Err(bad("the protocol must be tcp, udp or sctp")),
            };
            (addr, Some(protocol))
        }
        None => (value, None),
    };
    let (host_ip, rest) = if let Some(bracketed) = addr.strip_prefix('[') {
        let (ip, rest) = bracketed.split_once("]:").ok_or_else(|| {
            bad("an IPv6 host address is written [ADDRESS]:HOST_PORT:CONTAINER_PORT")
        })?;
        (Some(ip.to_owned()), rest)
    } else {
        match addr.matches(':').count() {
            2 => {
                let (ip, rest) = addr.split_once(':').ok_or_else(|| bad("unreachable"))?;
                (Some(ip.to_owned()), rest)
            }
            0 | 1 => (None, addr),
            _ => {
                return Err(bad(
                    "expected [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]",
                ))
            }
        }
    };
    let number = |s: &str| {
        s.parse::<i32>()
            .map_err(|_| bad("ports are whole numbers from 1 to 65535"))
    };
    let (host_port, container_port) = match rest.split_once(':') {
        Some(("", c)) if host_ip.is_some() => (None, number(c)?),
        Some((h, c)) => (Some(number(h)?), number(c)?),
        None if host_ip.is_none() => (None, number(rest)?),
        None => return Err(bad("expected HOST_IP:HOST_PORT:CONTAINER_PORT")),
    };
    Ok(PortSpec {
        container_port,
        host_port,
        host_ip,
        protocol,
    })
}

/// Prints a mount as `SOURCE:TARGET[:ro]`.
pub fn format_bind(volume: &VolumeMount) -> String {
    if volume.read_only {
        format!("{}:{}:ro", volume.source, volume.target)
    } else {
        format!("{}:{}", volume.source, volume.target)
    }
}

/// Reads `SOURCE:TARGET[:ro|:rw]`.
pub fn parse_bind(value: &str) -> Result<VolumeMount, String> {
    let parts: Vec<&str> = value.split(':').collect();
    let (source, target, read_only) = match parts.as_slice() {
        [s, t] => (*s, *t, false),
        [s, t, "ro"] => (*s, *t, true),
        [s, t, "rw"] => (*s, *t, false),
        _ => {
            return Err(format!(
                "invalid bind {}: expected SOURCE:TARGET or SOURCE:TARGET:ro",
                quoted(value)
            ))
        }
    };
    Ok(VolumeMount {
        source: source.to_owned(),
        target: target.to_owned(),
        read_only,
    })
}

/// The flat strings for `items`, or `None` if one of them would not read back the same.
fn flatten_exact<T: PartialEq>(
    items: &[T],
    format: impl Fn(&T) -> String,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Option<Vec<String>> {
    items
        .iter()
        .map(|item| {
            let s = format(item);
            (parse(&s).ok().as_ref() == Some(item)).then_some(s)
        })
        .collect()
}

/// v1alpha1 → v1; errors name v1alpha1 fields.
pub fn to_v1(obj: Cargo) -> Result<v1::Cargo, FieldErrors> {
    let mut errors = FieldErrors::new();
    let mut metadata = obj.metadata;
    let stash: Stash = conversion::take_v1_fields(&mut metadata, &mut errors);
    let spec = obj.spec;

    let mut env: BTreeMap<String, v1::EnvValue> =
        from_key_value_list(&spec.env, &FieldPath::keys("spec.env"), &mut errors)
            .into_iter()
            .map(|(k, v)| (k, v1::EnvValue::Text(v)))
            .collect();
    let mut volumes = Vec::new();
    for (i, bind) in spec.binds.iter().enumerate() {
        match parse_bind(bind) {
            Ok(v) => volumes.push(v),
            Err(message) => errors.push(FieldPath::keys("spec.binds").index(i), message),
        }
    }
    let mut ports = Vec::new();
    for (i, port) in spec.ports.iter().enumerate() {
        match parse_port(port) {
            Ok(p) => ports.push(p),
            Err(message) => errors.push(FieldPath::keys("spec.ports").index(i), message),
        }
    }
    let both = "set both here and in the v1 fields annotation: keep one";
    if let Some(stashed) = stash.env {
        if !env.is_empty() {
            errors.push(FieldPath::keys("spec.env"), both);
        }
        env = stashed;
    }
    if let Some(stashed) = stash.volumes {
        if !volumes.is_empty() {
            errors.push(FieldPath::keys("spec.binds"), both);
        }
        volumes = stashed;
    }
    if let Some(stashed) = stash.ports {
        if !ports.is_empty() {
            errors.push(FieldPath::keys("spec.ports"), both);
        }
        ports = stashed;
    }
    errors.into_result()?;
    Ok(Object {
        api_version: crate::V1.to_owned(),
        kind: obj.kind,
        metadata,
        spec: v1::CargoSpec {
            cluster: spec.cluster,
            replicas: spec.replicas,
            networks: spec.networks,
            container: v1::ContainerSpec {
                image: spec.image,
                build: stash.build,
                files: stash.files,
                image_pull_policy: stash.image_pull_policy,
                command: spec.entrypoint,
                args: spec.cmd,
                env,
                ports,
                volumes,
                working_dir: stash.working_dir,
                user: stash.user,
                labels: stash.labels,
                resources: stash.resources,
                healthcheck: stash.healthcheck,
                privileged: stash.privileged,
                cap_add: stash.cap_add,
                devices: stash.devices,
                host_pid: stash.host_pid,
                host_ipc: stash.host_ipc,
            },
            placement: stash.placement,
            update: stash.update,
            revision_history_limit: stash.revision_history_limit,
            autoscale: stash.autoscale,
        },
        status: obj.status,
    })
}

/// v1 → v1alpha1, lossless: what the flat shape cannot hold goes to the
/// `nanocl.io/v1-fields` annotation.
pub fn from_v1(obj: v1::Cargo) -> Cargo {
    let mut metadata = obj.metadata;
    let c = obj.spec.container;
    let mut stash = Stash {
        image_pull_policy: c.image_pull_policy,
        build: c.build,
        files: c.files,
        working_dir: c.working_dir,
        user: c.user,
        labels: c.labels,
        resources: c.resources,
        healthcheck: c.healthcheck,
        privileged: c.privileged,
        cap_add: c.cap_add,
        devices: c.devices,
        host_pid: c.host_pid,
        host_ipc: c.host_ipc,
        placement: obj.spec.placement,
        update: obj.spec.update,
        revision_history_limit: obj.spec.revision_history_limit,
        autoscale: obj.spec.autoscale,
        ..Stash::default()
    };
    // Only text values have a place in the flat `KEY=VALUE` list.
    let text: Option<BTreeMap<String, String>> = c
        .env
        .iter()
        .map(|(k, v)| v.text().map(|t| (k.clone(), t.to_owned())))
        .collect();
    let env = text
        .as_ref()
        .and_then(to_key_value_list)
        .unwrap_or_else(|| {
            stash.env = Some(c.env.clone());
            Vec::new()
        });
    let binds = flatten_exact(&c.volumes, format_bind, parse_bind).unwrap_or_else(|| {
        stash.volumes = Some(c.volumes.clone());
        Vec::new()
    });
    let ports = flatten_exact(&c.ports, format_port, parse_port).unwrap_or_else(|| {
        stash.ports = Some(c.ports.clone());
        Vec::new()
    });
    conversion::stash_v1_fields(&mut metadata, &stash);
    Object {
        api_version: crate::V1ALPHA1.to_owned(),
        kind: obj.kind,
        metadata,
        spec: CargoSpec {
            cluster: obj.spec.cluster,
            replicas: obj.spec.replicas,
            networks: obj.spec.networks,
            image: c.image,
            entrypoint: c.command,
            cmd: c.args,
            env,
            binds,
            ports,
        },
        status: obj.status,
    }
}

/// Where a v1 field path was written in a v1alpha1 document, so validation errors point at
/// what the user wrote.
pub fn source_path(v1_path: &FieldPath) -> FieldPath {
    let container = FieldPath::keys("spec.container");
    let Some(rest) = v1_path.strip_prefix(&container) else {
        return v1_path.clone();
    };
    let (field, tail) = match rest {
        [Segment::Key(field), tail @ ..] => (field.as_str(), tail),
        _ => return FieldPath::keys("spec"),
    };
    let flat = |name: &str, keep_index: bool| {
        let base = FieldPath::keys("spec").key(name);
        match tail.first() {
            Some(Segment::Index(i)) if keep_index => base.index(*i),
            _ => base,
        }
    };
    match field {
        "image" => flat("image", false),
        "command" => flat("entrypoint", true),
        "args" => flat("cmd", true),
        "env" => flat("env", false),
        "ports" => flat("ports", true),
        "volumes" => flat("binds", true),
        _ => FieldPath::keys("metadata.annotations").key(V1_FIELDS_ANNOTATION),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_strings_should_read_like_docker() {
        let p = parse_port("127.0.0.1:8080:80/udp").expect("valid");
        assert_eq!(p.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(p.host_port, Some(8080));
        assert_eq!(p.container_port, 80);
        assert_eq!(p.protocol, Some(Protocol::UDP));
        let p = parse_port("8080:80").expect("valid");
        assert_eq!(
            (p.host_ip, p.host_port, p.container_port),
            (None, Some(8080), 80)
        );
        let p = parse_port("[::1]::80").expect("valid");
        assert_eq!((p.host_ip.as_deref(), p.host_port), (Some("::1"), None));
        assert_eq!(format_port(&p), "[::1]::80");
        for bad in ["", "x", "1:2:3:4", "80/xyz", "127.0.0.1:80", "[::1:80"] {
            assert!(parse_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn binds_should_read_ro_and_rw() {
        assert!(parse_bind("/a:/b:ro").expect("valid").read_only);
        assert!(!parse_bind("data:/b:rw").expect("valid").read_only);
        assert!(parse_bind("/a").is_err());
        assert!(parse_bind("/a:/b:x").is_err());
    }
}
