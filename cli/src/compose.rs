//! `nanocl convert --from compose`: a Compose file (the v2/v3 Compose specification) as
//! nanocl objects — a Namespace and a Cluster for the project, a Network per top-level
//! network, a Cargo per service.
//!
//! Every key is either converted or reported with its line and why (never dropped without a
//! word); `x-` extension keys (anchors' homes) and the obsolete `version` are skipped as
//! Compose skips them. Variables are interpolated as Compose does (`${VAR}`, `${VAR:-default}`,
//! `${VAR-default}`, `${VAR:?error}`, `$VAR`, `$$`), from the environment and the project's
//! `.env` file; merge keys (`<<: *anchor`) are resolved.
//!
//! `depends_on` is recorded, not enforced: nanocl starts every cargo at once, and a replica
//! whose dependency is not up yet fails its health check or exits and is restarted until it
//! is (the annotation `compose.nanocl.io/depends-on` keeps the list).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use nanocl_api_types::manifest::node::{parse_stream, Node, Pos, Value as Yaml};
use serde_json::{json, Map, Value};

/// A key reported: not converted, or converted differently than Compose runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Where it is.
    pub pos: Pos,
    /// Its path, e.g. `services.web.privileged`.
    pub field: String,
    /// What happened to it.
    pub message: String,
}

/// The objects, and what was reported on the way.
#[derive(Debug, Default)]
pub struct Conversion {
    /// Namespace, Cluster, Networks, Cargoes (nanocl.io/v1), in that order.
    pub objects: Vec<Value>,
    /// Keys not converted, or converted with a difference.
    pub notes: Vec<Note>,
}

/// What a conversion needs besides the file's text.
#[derive(Clone, Debug)]
pub struct Options {
    /// The namespace (and cluster) of the objects; default: the file's `name`, else its
    /// directory's name.
    pub namespace: Option<String>,
    /// The directory relative paths (build contexts, bind mounts, env files) are in.
    pub base_dir: PathBuf,
    /// Variables for interpolation (the environment, over the `.env` file).
    pub variables: HashMap<String, String>,
}

impl Options {
    /// For `file`: its directory, and the process environment over `DIR/.env`.
    pub fn for_file(file: &Path, namespace: Option<String>) -> Options {
        let base_dir = std::path::absolute(file)
            .ok()
            .and_then(|f| f.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        let mut variables: HashMap<String, String> = std::fs::read_to_string(base_dir.join(".env"))
            .map(|text| parse_env_file(&text).into_iter().collect())
            .unwrap_or_default();
        variables.extend(std::env::vars());
        Options {
            namespace,
            base_dir,
            variables,
        }
    }
}

/// `KEY=VALUE` lines (`#` comments, blank lines and `export ` skipped; quotes removed).
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            (k.trim().to_owned(), v.to_owned())
        })
        .collect()
}

/// Interpolates Compose variables in `text`; unset ones without a default are empty and
/// named in `unset`.
pub fn interpolate(
    text: &str,
    vars: &HashMap<String, String>,
    unset: &mut Vec<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('{') {
            let end = r
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
            let expr = &r[..end];
            rest = &r[end + 1..];
            let name_end = expr
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expr.len());
            let (name, op) = expr.split_at(name_end);
            if name.is_empty() {
                return Err(format!("invalid variable ${{{expr}}} in {text:?}"));
            }
            let value = vars.get(name);
            let value = match op {
                "" => value.cloned().unwrap_or_else(|| {
                    unset.push(name.to_owned());
                    String::new()
                }),
                _ if op.starts_with(":-") => match value.filter(|v| !v.is_empty()) {
                    Some(v) => v.clone(),
                    None => interpolate(&op[2..], vars, unset)?,
                },
                _ if op.starts_with('-') => match value {
                    Some(v) => v.clone(),
                    None => interpolate(&op[1..], vars, unset)?,
                },
                _ if op.starts_with(":?") || op.starts_with('?') => {
                    let empty_fails = op.starts_with(':');
                    let message = op.trim_start_matches(':').trim_start_matches('?');
                    match value.filter(|v| !(empty_fails && v.is_empty())) {
                        Some(v) => v.clone(),
                        None => {
                            return Err(format!(
                                "variable {name} is required: {}",
                                if message.is_empty() {
                                    "not set"
                                } else {
                                    message
                                }
                            ))
                        }
                    }
                }
                _ if op.starts_with(":+") || op.starts_with('+') => {
                    let alt = op.trim_start_matches(':').trim_start_matches('+');
                    let set = match op.starts_with(':') {
                        true => value.is_some_and(|v| !v.is_empty()),
                        false => value.is_some(),
                    };
                    if set {
                        interpolate(alt, vars, unset)?
                    } else {
                        String::new()
                    }
                }
                _ => return Err(format!("invalid variable ${{{expr}}} in {text:?}")),
            };
            out.push_str(&value);
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if end == 0 {
                out.push('$');
                continue;
            }
            let name = &rest[..end];
            rest = &rest[end..];
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => unset.push(name.to_owned()),
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Splits a command string as a POSIX shell splits words (quotes and backslashes; no
/// expansion), as Compose does for `command: "…"`.
pub fn shell_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' if in_word => {
                words.push(std::mem::take(&mut word));
                in_word = false;
            }
            ' ' | '\t' | '\n' => {}
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed ' in {text:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unclosed \" in {text:?}")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed \" in {text:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    word.push(c);
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// A DNS-1123 label made of `name`: lowercase, `_` and other characters as `-`.
fn label(name: &str) -> String {
    let mut out: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    out = out.trim_matches('-').to_owned();
    out.truncate(63);
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() {
        "compose".to_owned()
    } else {
        out
    }
}

/// The conversion's state: notes, and where a path sits.
struct Cx<'a> {
    notes: Vec<Note>,
    options: &'a Options,
}

impl Cx<'_> {
    fn note(&mut self, node: &Node, field: &str, message: impl Into<String>) {
        self.notes.push(Note {
            pos: node.pos,
            field: field.to_owned(),
            message: message.into(),
        });
    }

    fn unsupported(&mut self, node: &Node, field: &str, why: &str) {
        self.note(node, field, format!("not converted: {why}"));
    }

    /// A scalar as text (numbers and booleans too); a note when it is not one.
    fn text(&mut self, node: &Node, field: &str) -> Option<String> {
        match &node.value {
            Yaml::Str(s) | Yaml::BigInt(s) => Some(s.clone()),
            Yaml::Int(i) => Some(i.to_string()),
            Yaml::Float(f) => Some(f.to_string()),
            Yaml::Bool(b) => Some(b.to_string()),
            Yaml::Null => None,
            other => {
                self.note(
                    node,
                    field,
                    format!("not converted: expected text, got {}", other.type_name()),
                );
                None
            }
        }
    }

    /// A sequence of scalars, or one string split as a shell would.
    fn words(&mut self, node: &Node, field: &str) -> Option<Vec<String>> {
        match &node.value {
            Yaml::Seq(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, n)| self.text(n, &format!("{field}[{i}]")))
                    .collect(),
            ),
            Yaml::Str(s) => match shell_words(s) {
                Ok(words) => Some(words),
                Err(e) => {
                    self.note(node, field, format!("not converted: {e}"));
                    None
                }
            },
            _ => self.text(node, field).map(|t| vec![t]),
        }
    }

    /// `KEY: VALUE` mappings or `KEY=VALUE` lists (environment, labels, build args).
    fn pairs(&mut self, node: &Node, field: &str, from_env: bool) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        match &node.value {
            Yaml::Map(entries) => {
                for (k, v) in entries {
                    let key = k.key_text();
                    let path = format!("{field}.{key}");
                    match self.text(v, &path) {
                        Some(value) => {
                            out.insert(key, value);
                        }
                        None if matches!(v.value, Yaml::Null) => {
                            self.host_value(v, &path, &key, from_env, &mut out);
                        }
                        None => {}
                    }
                }
            }
            Yaml::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let path = format!("{field}[{i}]");
                    let Some(text) = self.text(item, &path) else {
                        continue;
                    };
                    match text.split_once('=') {
                        Some((k, v)) => {
                            out.insert(k.to_owned(), v.to_owned());
                        }
                        None => self.host_value(item, &path, &text, from_env, &mut out),
                    }
                }
            }
            Yaml::Null => {}
            other => self.note(
                node,
                field,
                format!(
                    "not converted: expected a mapping or a list of KEY=VALUE, got {}",
                    other.type_name()
                ),
            ),
        }
        out
    }

    /// `KEY` without a value: Compose takes it from the environment of `docker compose`.
    fn host_value(
        &mut self,
        node: &Node,
        field: &str,
        key: &str,
        from_env: bool,
        out: &mut BTreeMap<String, String>,
    ) {
        match self.options.variables.get(key).filter(|_| from_env) {
            Some(value) => {
                out.insert(key.to_owned(), value.clone());
                self.note(
                    node,
                    field,
                    format!("{key} has no value: written with its value from this environment now (Compose reads it at every run)"),
                );
            }
            None => self.note(
                node,
                field,
                format!("not converted: {key} has no value, and none is set here"),
            ),
        }
    }

    /// A path of the project as an absolute path (`~` is the home directory).
    fn host_path(&self, path: &str) -> String {
        let home = std::env::var("HOME").unwrap_or_default();
        let path = match path.strip_prefix("~/") {
            Some(rest) => PathBuf::from(home).join(rest),
            None => self.options.base_dir.join(path),
        };
        // Lexically normalized: `./data/../logs` is `logs`.
        let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
        for c in path.components() {
            match c {
                std::path::Component::ParentDir => {
                    parts.pop();
                }
                std::path::Component::Normal(p) => parts.push(p),
                _ => {}
            }
        }
        let mut out = PathBuf::from("/");
        out.extend(parts);
        out.display().to_string()
    }
}

/// Resolves merge keys (`<<: *anchor` or a list of them) and interpolates every scalar.
fn prepare(node: &Node, cx: &mut Cx<'_>, field: &str) -> Node {
    let value = match &node.value {
        Yaml::Str(s) => {
            let mut unset = Vec::new();
            match interpolate(s, &cx.options.variables, &mut unset) {
                Ok(text) => {
                    for name in unset {
                        cx.note(
                            node,
                            field,
                            format!("variable {name} is not set: it is empty here, as in Compose"),
                        );
                    }
                    Yaml::Str(text)
                }
                Err(e) => {
                    cx.note(node, field, format!("not converted: {e}"));
                    Yaml::Null
                }
            }
        }
        Yaml::Seq(items) => Yaml::Seq(
            items
                .iter()
                .enumerate()
                .map(|(i, n)| prepare(n, cx, &format!("{field}[{i}]")))
                .collect(),
        ),
        Yaml::Map(entries) => {
            let mut out: Vec<(Node, Node)> = Vec::new();
            let mut merged: Vec<(Node, Node)> = Vec::new();
            for (k, v) in entries {
                let key = k.key_text();
                if key == "<<" {
                    let sources: Vec<&Node> = match &v.value {
                        Yaml::Seq(items) => items.iter().collect(),
                        _ => vec![v],
                    };
                    for source in sources {
                        if let Yaml::Map(more) = &prepare(source, cx, field).value {
                            merged.extend(more.iter().cloned());
                        }
                    }
                    continue;
                }
                let path = if field.is_empty() {
                    key.clone()
                } else {
                    format!("{field}.{key}")
                };
                if key.starts_with("x-") {
                    out.push((k.clone(), v.clone()));
                } else {
                    out.push((k.clone(), prepare(v, cx, &path)));
                }
            }
            for (k, v) in merged {
                if !out.iter().any(|(o, _)| o.key_text() == k.key_text()) {
                    out.push((k, v));
                }
            }
            Yaml::Map(out)
        }
        other => other.clone(),
    };
    Node {
        value,
        pos: node.pos,
    }
}

fn entries(node: &Node) -> &[(Node, Node)] {
    match &node.value {
        Yaml::Map(entries) => entries,
        _ => &[],
    }
}

fn object(kind: &str, name: &str, namespace: Option<&str>, spec: Value) -> Value {
    let mut metadata = json!({ "name": name });
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    let mut o = json!({
        "apiVersion": "nanocl.io/v1",
        "kind": kind,
        "metadata": metadata,
    });
    if spec.as_object().is_some_and(|m| !m.is_empty()) {
        o["spec"] = spec;
    }
    o
}

/// Converts the Compose file `text` (named `file` in messages).
pub fn convert(file: &str, text: &str, options: &Options) -> Result<Conversion, Vec<Note>> {
    let (documents, syntax) = parse_stream(text);
    if let Some(e) = syntax {
        return Err(vec![Note {
            pos: e.pos,
            field: String::new(),
            message: e.message,
        }]);
    }
    let Some(raw) = documents.into_iter().find_map(|d| d.root) else {
        return Err(vec![Note {
            pos: Pos { line: 1, column: 1 },
            field: String::new(),
            message: format!("{file} is empty: a Compose file has services"),
        }]);
    };
    let mut cx = Cx {
        notes: Vec::new(),
        options,
    };
    let root = prepare(&raw, &mut cx, "");
    if !matches!(root.value, Yaml::Map(_)) {
        return Err(vec![Note {
            pos: root.pos,
            field: String::new(),
            message: format!(
                "a Compose file is a mapping with services, got {}",
                root.value.type_name()
            ),
        }]);
    }
    let Some(services) = root
        .get("services")
        .filter(|s| matches!(s.value, Yaml::Map(_)))
    else {
        return Err(vec![Note {
            pos: root.pos,
            field: "services".into(),
            message: "a Compose file needs a mapping of services".into(),
        }]);
    };

    // The project: namespace and cluster.
    let project = match (&options.namespace, root.get("name")) {
        (Some(ns), _) => ns.clone(),
        (None, Some(name)) => cx.text(name, "name").unwrap_or_default(),
        (None, None) => options
            .base_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let namespace = label(&project);
    let cluster = namespace.clone();
    let mut objects = vec![
        object("Namespace", &namespace, None, json!({})),
        object("Cluster", &cluster, Some(&namespace), json!({})),
    ];

    for (k, _) in entries(&root) {
        let key = k.key_text();
        match key.as_str() {
            "services" | "networks" | "volumes" | "name" | "version" => {}
            _ if key.starts_with("x-") => {}
            "secrets" | "configs" => cx.unsupported(
                k,
                &key,
                "write them as nanocl Secrets and mount them with spec.container.files",
            ),
            _ => cx.unsupported(k, &key, "no such top-level key in nanocl"),
        }
    }

    // Networks. A service listing `default` joins Compose's default network: then it is a
    // Network of its own, which the services listing none join too.
    let uses_default = entries(services)
        .iter()
        .any(|(_, s)| match s.get("networks") {
            Some(Node {
                value: Yaml::Seq(items),
                ..
            }) => items.iter().any(|n| n.key_text() == "default"),
            Some(Node {
                value: Yaml::Map(m),
                ..
            }) => m.iter().any(|(n, _)| n.key_text() == "default"),
            _ => false,
        });
    let mut networks: BTreeMap<String, String> = BTreeMap::new();
    if uses_default {
        networks.insert("default".into(), "default".into());
        objects.push(object(
            "Network",
            "default",
            Some(&namespace),
            json!({ "cluster": cluster }),
        ));
    }
    if let Some(top) = root.get("networks") {
        for (k, v) in entries(top) {
            let name = k.key_text();
            let field = format!("networks.{name}");
            let nanocl_name = label(&name);
            if name == "default" && uses_default {
                continue;
            }
            if nanocl_name != name {
                cx.note(
                    k,
                    &field,
                    format!("network {name:?} is named {nanocl_name:?} (a DNS label)"),
                );
            }
            let mut spec = Map::new();
            spec.insert("cluster".into(), json!(cluster));
            for (nk, nv) in entries(v) {
                let key = nk.key_text();
                let path = format!("{field}.{key}");
                match key.as_str() {
                    "driver" => {
                        if let Some(d) = cx.text(nv, &path) {
                            spec.insert("driver".into(), json!(d));
                        }
                    }
                    "internal" => {
                        if let Yaml::Bool(b) = nv.value {
                            spec.insert("internal".into(), json!(b));
                        }
                    }
                    "ipam" => {
                        let subnet = nv
                            .get("config")
                            .and_then(|c| match &c.value {
                                Yaml::Seq(items) => items.first(),
                                _ => None,
                            })
                            .and_then(|c| c.get("subnet"));
                        match subnet.and_then(|s| cx.text(s, &format!("{path}.config[0].subnet"))) {
                            Some(s) => {
                                spec.insert("subnet".into(), json!(s));
                            }
                            None => cx.unsupported(
                                nv,
                                &path,
                                "only ipam.config[0].subnet has an equivalent (spec.subnet)",
                            ),
                        }
                    }
                    _ => cx.unsupported(nk, &path, "no equivalent in a nanocl Network"),
                }
            }
            networks.insert(name.clone(), nanocl_name.clone());
            objects.push(object(
                "Network",
                &nanocl_name,
                Some(&namespace),
                Value::Object(spec),
            ));
        }
    }
    if let Some(top) = root.get("volumes") {
        for (k, v) in entries(top) {
            for (vk, _) in entries(v) {
                let path = format!("volumes.{}.{}", k.key_text(), vk.key_text());
                cx.unsupported(
                    vk,
                    &path,
                    "nanocl mounts named volumes with Docker's defaults (the local driver)",
                );
            }
        }
    }

    let mut cargo_names = BTreeMap::new();
    for (k, _) in entries(services) {
        cargo_names.insert(k.key_text(), label(&k.key_text()));
    }
    for (k, v) in entries(services) {
        let service = k.key_text();
        let cargo = convert_service(
            &mut cx,
            &service,
            v,
            &cargo_names,
            &networks,
            uses_default,
            &cluster,
        );
        let mut o = object(
            "Cargo",
            &cargo_names[&service],
            Some(&namespace),
            cargo.spec,
        );
        if !cargo.annotations.is_empty() {
            o["metadata"]["annotations"] = json!(cargo.annotations);
        }
        if cargo_names[&service] != service {
            cx.note(
                k,
                &format!("services.{service}"),
                format!(
                    "service {service:?} is cargo {:?} (a DNS label): other services reach it by that name",
                    cargo_names[&service]
                ),
            );
        }
        objects.push(o);
    }
    cx.notes.sort_by_key(|n| n.pos);
    Ok(Conversion {
        objects,
        notes: cx.notes,
    })
}

/// What a converted dangerous setting needs (SETTING is the policy's line).
const POLICY_NOTE: &str = "converted, and refused at apply unless the namespace's spec.policy allows it (SETTING): it gives the container the host";

struct Cargo {
    spec: Value,
    annotations: BTreeMap<String, String>,
}

#[allow(
    clippy::too_many_lines,
    clippy::too_many_arguments,
    reason = "one match over the keys of a Compose service"
)]
fn convert_service(
    cx: &mut Cx<'_>,
    service: &str,
    node: &Node,
    cargo_names: &BTreeMap<String, String>,
    networks: &BTreeMap<String, String>,
    uses_default: bool,
    cluster: &str,
) -> Cargo {
    let base = format!("services.{service}");
    let mut container = Map::new();
    let mut spec = Map::new();
    let mut annotations = BTreeMap::new();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut env_files: BTreeMap<String, String> = BTreeMap::new();
    let mut resources = Map::new();
    let mut image: Option<(String, &Node)> = None;
    let mut image_key: Option<&Node> = None;
    let mut joined: Option<Vec<String>> = None;
    for (k, v) in entries(node) {
        let key = k.key_text();
        let field = format!("{base}.{key}");
        match key.as_str() {
            _ if key.starts_with("x-") => {}
            "image" => {
                if let Some(i) = cx.text(v, &field) {
                    image = Some((i, v));
                    image_key = Some(k);
                }
            }
            "build" => {
                if let Some(build) = convert_build(cx, v, &field) {
                    container.insert("build".into(), build);
                }
            }
            "command" => {
                if let Some(words) = cx.words(v, &field) {
                    container.insert("args".into(), json!(words));
                }
            }
            "entrypoint" => {
                if let Some(words) = cx.words(v, &field) {
                    container.insert("command".into(), json!(words));
                }
            }
            "environment" => env = cx.pairs(v, &field, true),
            "env_file" => {
                let files: Vec<&Node> = match &v.value {
                    Yaml::Seq(items) => items.iter().collect(),
                    _ => vec![v],
                };
                for (i, f) in files.into_iter().enumerate() {
                    let (path_node, required) = match f.get("path") {
                        Some(p) => (p, !matches!(f.get("required").map(|r| &r.value), Some(Yaml::Bool(false)))),
                        None => (f, true),
                    };
                    let Some(path) = cx.text(path_node, &format!("{field}[{i}]")) else {
                        continue;
                    };
                    let full = cx.host_path(&path);
                    match std::fs::read_to_string(&full) {
                        Ok(text) => env_files.extend(parse_env_file(&text)),
                        Err(_) if !required => {}
                        Err(e) => cx.note(f, &field, format!("not converted: cannot read {full}: {e}")),
                    }
                }
            }
            "ports" => {
                let ports = convert_ports(cx, v, &field);
                if !ports.is_empty() {
                    container.insert("ports".into(), json!(ports));
                }
            }
            "expose" => cx.note(
                k,
                &field,
                "not needed: every port of a cargo is reachable from the cargoes of its networks",
            ),
            "volumes" => {
                let volumes = convert_volumes(cx, v, &field);
                if !volumes.is_empty() {
                    container.insert("volumes".into(), json!(volumes));
                }
            }
            "healthcheck" => {
                if let Some(h) = convert_healthcheck(cx, v, &field) {
                    container.insert("healthcheck".into(), h);
                }
            }
            "deploy" => {
                for (dk, dv) in entries(v) {
                    let key = dk.key_text();
                    let path = format!("{field}.{key}");
                    match key.as_str() {
                        "replicas" => match dv.value {
                            Yaml::Int(n) => {
                                spec.insert("replicas".into(), json!(n));
                            }
                            _ => cx.unsupported(dv, &path, "expected a number"),
                        },
                        "resources" => {
                            for (rk, rv) in entries(dv) {
                                let rpath = format!("{path}.{}", rk.key_text());
                                if rk.key_text() != "limits" {
                                    cx.unsupported(rk, &rpath, "nanocl has limits only (spec.container.resources)");
                                    continue;
                                }
                                for (lk, lv) in entries(rv) {
                                    let lpath = format!("{rpath}.{}", lk.key_text());
                                    limit(cx, &lk.key_text(), lv, &lpath, &mut resources);
                                }
                            }
                        }
                        "restart_policy" => cx.note(
                            dk,
                            &path,
                            "not converted: nanocl restarts a replica whenever it stops",
                        ),
                        "mode" if matches!(&dv.value, Yaml::Str(s) if s == "replicated") => {}
                        _ => cx.unsupported(dk, &path, "no equivalent in a nanocl Cargo"),
                    }
                }
            }
            "scale" => match v.value {
                Yaml::Int(n) => {
                    spec.insert("replicas".into(), json!(n));
                }
                _ => cx.unsupported(v, &field, "expected a number"),
            },
            "cpus" | "mem_limit" => limit(
                cx,
                if key == "cpus" { "cpus" } else { "memory" },
                v,
                &field,
                &mut resources,
            ),
            "depends_on" => {
                let deps: Vec<(String, &Node)> = match &v.value {
                    Yaml::Seq(items) => items.iter().map(|n| (n.key_text(), n)).collect(),
                    Yaml::Map(m) => m.iter().map(|(n, c)| (n.key_text(), c)).collect(),
                    _ => Vec::new(),
                };
                let names: Vec<String> = deps
                    .iter()
                    .map(|(d, _)| cargo_names.get(d).cloned().unwrap_or_else(|| label(d)))
                    .collect();
                for (d, _) in &deps {
                    if !cargo_names.contains_key(d) {
                        cx.note(v, &field, format!("{d:?} is not a service of this file"));
                    }
                }
                if !names.is_empty() {
                    annotations.insert("compose.nanocl.io/depends-on".to_owned(), names.join(","));
                    cx.note(
                        k,
                        &field,
                        "recorded (annotation compose.nanocl.io/depends-on), not enforced: nanocl starts every cargo at once, and restarts a replica that fails until what it needs is up",
                    );
                }
            }
            "networks" => {
                let listed: Vec<(String, &Node)> = match &v.value {
                    Yaml::Seq(items) => items.iter().map(|n| (n.key_text(), n)).collect(),
                    Yaml::Map(m) => m.iter().map(|(n, c)| (n.key_text(), c)).collect(),
                    _ => Vec::new(),
                };
                let mut names = Vec::new();
                for (name, settings) in listed {
                    for (sk, _) in entries(settings) {
                        cx.unsupported(
                            sk,
                            &format!("{field}.{name}.{}", sk.key_text()),
                            "a cargo is reachable by its name on each of its networks; no other alias or fixed address",
                        );
                    }
                    match networks.get(&name) {
                        Some(n) => names.push(n.clone()),
                        None => cx.note(
                            v,
                            &field,
                            format!("not converted: network {name:?} is not defined under the top-level networks"),
                        ),
                    }
                }
                joined = Some(names);
            }
            "working_dir" | "user" => {
                if let Some(t) = cx.text(v, &field) {
                    let name = if key == "user" { "user" } else { "workingDir" };
                    container.insert(name.into(), json!(t));
                }
            }
            "labels" => {
                let labels = cx.pairs(v, &field, false);
                if !labels.is_empty() {
                    container.insert("labels".into(), json!(labels));
                }
            }
            "restart" => match cx.text(v, &field).as_deref() {
                Some("always" | "unless-stopped") => {}
                _ => cx.note(
                    k,
                    &field,
                    "not converted: nanocl restarts a replica whenever it stops (as `always`)",
                ),
            },
            "pull_policy" => match cx.text(v, &field).as_deref() {
                Some("always") => {
                    container.insert("imagePullPolicy".into(), json!("Always"));
                }
                Some("never") => {
                    container.insert("imagePullPolicy".into(), json!("Never"));
                }
                Some("missing" | "if_not_present") => {}
                _ => cx.unsupported(v, &field, "nanocl has Always, Never and IfNotPresent"),
            },
            "container_name" => cx.unsupported(
                k,
                &field,
                "nanocl names the containers of a cargo itself (CARGO-N.NAMESPACE); the cargo's name is its DNS name",
            ),
            "privileged" => {
                if matches!(v.value, Yaml::Bool(true)) {
                    container.insert("privileged".into(), json!(true));
                    cx.note(k, &field, POLICY_NOTE.replace("SETTING", "privileged: true"));
                }
            }
            "cap_add" | "devices" => {
                if let Some(list) = cx.words(v, &field).filter(|l| !l.is_empty()) {
                    let (name, allow) = if key == "cap_add" {
                        ("capAdd", "capabilities")
                    } else {
                        ("devices", "devices")
                    };
                    container.insert(name.into(), json!(list));
                    cx.note(k, &field, POLICY_NOTE.replace("SETTING", &format!("{allow}: {list:?}")));
                }
            }
            "pid" | "ipc" => match cx.text(v, &field).as_deref() {
                Some("host") => {
                    let (name, allow) = if key == "pid" {
                        ("hostPid", "hostPid: true")
                    } else {
                        ("hostIpc", "hostIpc: true")
                    };
                    container.insert(name.into(), json!(true));
                    cx.note(k, &field, POLICY_NOTE.replace("SETTING", allow));
                }
                _ => cx.unsupported(k, &field, "only `host` has an equivalent (hostPid, hostIpc)"),
            },
            "network_mode" | "security_opt" | "userns_mode" => cx.unsupported(
                k,
                &field,
                "a replica is on its cluster's networks, with Docker's default security options",
            ),
            _ => cx.unsupported(k, &field, "no equivalent in a nanocl Cargo"),
        }
    }
    match (image, container.contains_key("build")) {
        (Some((i, n)), true) => cx.note(
            image_key.unwrap_or(n),
            &format!("{base}.image"),
            format!("not used: the image is built (build), and nanocl names the images it builds itself, not {i:?}"),
        ),
        (Some((i, _)), false) => {
            container.insert("image".into(), json!(i));
        }
        (None, false) => cx.note(node, &base, "not converted: a service needs an image or a build"),
        (None, true) => {}
    }
    env_files.extend(env);
    if !env_files.is_empty() {
        container.insert("env".into(), json!(env_files));
    }
    if !resources.is_empty() {
        container.insert("resources".into(), Value::Object(resources));
    }
    match joined {
        Some(names) if names.len() == 1 && names[0] == "default" && uses_default => {
            spec.insert("networks".into(), json!(names));
        }
        Some(names) if !names.is_empty() => {
            spec.insert("networks".into(), json!(names));
        }
        _ if uses_default => {
            spec.insert("networks".into(), json!(["default"]));
        }
        _ => {}
    }
    let mut out = Map::new();
    out.insert("cluster".into(), json!(cluster));
    out.extend(spec);
    out.insert("container".into(), Value::Object(container));
    Cargo {
        spec: Value::Object(out),
        annotations,
    }
}

fn limit(cx: &mut Cx<'_>, key: &str, node: &Node, field: &str, resources: &mut Map<String, Value>) {
    match key {
        "cpus" => {
            let cpus = match &node.value {
                Yaml::Int(i) => Some(*i as f64),
                Yaml::Float(f) => Some(*f),
                Yaml::Str(s) => s.parse::<f64>().ok(),
                _ => None,
            };
            match cpus {
                Some(c) => {
                    resources.insert("cpus".into(), json!(c));
                }
                None => cx.unsupported(node, field, "expected a number of CPUs"),
            }
        }
        "memory" => {
            let Some(text) = cx.text(node, field) else {
                return;
            };
            // Compose writes 512m, 1gb, 256M, or bytes; nanocl 512m, 1g, 256Mi, or bytes.
            let lower = text.to_ascii_lowercase();
            let memory = lower
                .strip_suffix('b')
                .filter(|s| s.ends_with(['k', 'm', 'g']))
                .unwrap_or(&lower)
                .to_owned();
            match nanocl_api_types::quantity::parse_memory(&memory) {
                Ok(_) => {
                    resources.insert("memory".into(), json!(memory));
                }
                Err(e) => cx.unsupported(node, field, &e),
            }
        }
        _ => cx.unsupported(node, field, "nanocl limits cpus and memory only"),
    }
}

fn convert_build(cx: &mut Cx<'_>, node: &Node, field: &str) -> Option<Value> {
    let mut build = Map::new();
    let context = |cx: &mut Cx<'_>, text: String, build: &mut Map<String, Value>| {
        // A git URL: `URL#REF[:DIR]`.
        if text.starts_with("https://")
            || text.starts_with("git@")
            || text.starts_with("git://")
            || text.ends_with(".git")
        {
            let (url, fragment) = text.split_once('#').unwrap_or((&text, ""));
            let (reference, dir) = fragment.split_once(':').unwrap_or((fragment, ""));
            let mut git = json!({ "url": url });
            if !reference.is_empty() {
                git["ref"] = json!(reference);
            }
            if !dir.is_empty() {
                git["path"] = json!(dir);
            }
            build.insert("git".into(), git);
        } else {
            build.insert("context".into(), json!(cx.host_path(&text)));
        }
    };
    match &node.value {
        Yaml::Str(s) => context(cx, s.clone(), &mut build),
        Yaml::Map(entries) => {
            for (k, v) in entries {
                let key = k.key_text();
                let path = format!("{field}.{key}");
                match key.as_str() {
                    "context" => {
                        if let Some(t) = cx.text(v, &path) {
                            context(cx, t, &mut build);
                        }
                    }
                    "dockerfile" | "target" => {
                        if let Some(t) = cx.text(v, &path) {
                            build.insert(key.clone(), json!(t));
                        }
                    }
                    "args" => {
                        let args = cx.pairs(v, &path, true);
                        if !args.is_empty() {
                            build.insert("args".into(), json!(args));
                        }
                    }
                    _ => cx.unsupported(k, &path, "no equivalent in spec.container.build"),
                }
            }
            if !build.contains_key("context") && !build.contains_key("git") {
                context(cx, ".".into(), &mut build);
            }
        }
        other => {
            cx.unsupported(
                node,
                field,
                &format!("expected a path or a mapping, got {}", other.type_name()),
            );
            return None;
        }
    }
    Some(Value::Object(build))
}

fn convert_ports(cx: &mut Cx<'_>, node: &Node, field: &str) -> Vec<Value> {
    let Yaml::Seq(items) = &node.value else {
        cx.unsupported(node, field, "expected a list of ports");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("{field}[{i}]");
        let port = match &item.value {
            Yaml::Map(_) => {
                let text = |cx: &mut Cx<'_>, k: &str| {
                    item.get(k).and_then(|n| cx.text(n, &format!("{path}.{k}")))
                };
                for (k, _) in entries(item) {
                    if !["target", "published", "host_ip", "protocol", "mode"]
                        .contains(&k.key_text().as_str())
                    {
                        cx.unsupported(
                            k,
                            &format!("{path}.{}", k.key_text()),
                            "no equivalent in a port",
                        );
                    }
                }
                (
                    text(cx, "host_ip"),
                    text(cx, "published"),
                    text(cx, "target"),
                    text(cx, "protocol"),
                )
            }
            _ => {
                let Some(text) = cx.text(item, &path) else {
                    continue;
                };
                let (spec, protocol) = match text.split_once('/') {
                    Some((s, p)) => (s.to_owned(), Some(p.to_owned())),
                    None => (text.clone(), None),
                };
                // [IP:][HOST:]CONTAINER, IPv6 in brackets.
                let (ip, rest) = match spec.strip_prefix('[') {
                    Some(r) => match r.split_once("]:") {
                        Some((ip, rest)) => (Some(ip.to_owned()), rest.to_owned()),
                        None => (None, spec.clone()),
                    },
                    None => {
                        let parts: Vec<&str> = spec.split(':').collect();
                        match parts.len() {
                            3 => (
                                Some(parts[0].to_owned()),
                                format!("{}:{}", parts[1], parts[2]),
                            ),
                            _ => (None, spec.clone()),
                        }
                    }
                };
                let (host, container) = match rest.split_once(':') {
                    Some((h, c)) => (Some(h.to_owned()).filter(|h| !h.is_empty()), c.to_owned()),
                    None => (None, rest),
                };
                (ip, host, Some(container), protocol)
            }
        };
        let (ip, host, container, protocol) = port;
        let parse = |p: &Option<String>| p.as_deref().map(str::parse::<u16>);
        let (host_port, container_port) = match (parse(&host), parse(&container)) {
            (Some(Err(_)), _) | (_, Some(Err(_)) | None) => {
                cx.unsupported(item, &path, "nanocl publishes single ports, not ranges");
                continue;
            }
            (h, Some(Ok(c))) => (h.and_then(Result::ok), c),
        };
        let mut port = json!({ "containerPort": container_port });
        if let Some(h) = host_port {
            port["hostPort"] = json!(h);
            match ip {
                Some(ip) => port["hostIP"] = json!(ip),
                None => cx.note(
                    item,
                    &path,
                    format!("published on 127.0.0.1 only (nanocl's default), where Compose publishes on every address: write \"0.0.0.0:{h}:{container_port}\" to keep that"),
                ),
            }
        }
        match protocol.as_deref() {
            None | Some("tcp") => {}
            Some("udp") => port["protocol"] = json!("UDP"),
            Some("sctp") => port["protocol"] = json!("SCTP"),
            Some(p) => cx.unsupported(item, &path, &format!("unknown protocol {p:?}")),
        }
        out.push(port);
    }
    out
}

fn convert_volumes(cx: &mut Cx<'_>, node: &Node, field: &str) -> Vec<Value> {
    let Yaml::Seq(items) = &node.value else {
        cx.unsupported(node, field, "expected a list of volumes");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("{field}[{i}]");
        let (source, target, read_only) = match &item.value {
            Yaml::Map(_) => {
                for (k, _) in entries(item) {
                    let key = k.key_text();
                    if !["type", "source", "target", "read_only"].contains(&key.as_str()) {
                        cx.unsupported(k, &format!("{path}.{key}"), "no equivalent in a volume");
                    }
                }
                let kind = item
                    .get("type")
                    .and_then(|t| cx.text(t, &format!("{path}.type")));
                if let Some(kind) = kind.filter(|k| k != "bind" && k != "volume") {
                    cx.unsupported(
                        item,
                        &path,
                        &format!("nanocl mounts bind paths and named volumes, not {kind}"),
                    );
                    continue;
                }
                let source = item
                    .get("source")
                    .and_then(|s| cx.text(s, &format!("{path}.source")));
                let target = item
                    .get("target")
                    .and_then(|s| cx.text(s, &format!("{path}.target")));
                let ro = matches!(
                    item.get("read_only").map(|r| &r.value),
                    Some(Yaml::Bool(true))
                );
                (source, target, ro)
            }
            _ => {
                let Some(text) = cx.text(item, &path) else {
                    continue;
                };
                let parts: Vec<&str> = text.split(':').collect();
                match parts.as_slice() {
                    [target] => (None, Some((*target).to_owned()), false),
                    [source, target] => (
                        Some((*source).to_owned()),
                        Some((*target).to_owned()),
                        false,
                    ),
                    [source, target, mode] => {
                        let modes: Vec<&str> = mode.split(',').collect();
                        for m in &modes {
                            if !["ro", "rw"].contains(m) {
                                cx.note(
                                    item,
                                    &path,
                                    format!("mode {m:?} is not converted (nanocl has ro and rw)"),
                                );
                            }
                        }
                        (
                            Some((*source).to_owned()),
                            Some((*target).to_owned()),
                            modes.contains(&"ro"),
                        )
                    }
                    _ => {
                        cx.unsupported(item, &path, "expected SOURCE:TARGET[:MODE]");
                        continue;
                    }
                }
            }
        };
        let Some(target) = target else {
            cx.unsupported(item, &path, "a volume needs a target");
            continue;
        };
        let Some(source) = source else {
            cx.unsupported(
                item,
                &path,
                "an anonymous volume has no equivalent: name it (NAME:TARGET)",
            );
            continue;
        };
        let source =
            if source.starts_with('.') || source.starts_with('/') || source.starts_with('~') {
                cx.host_path(&source)
            } else {
                source
            };
        let mut v = json!({ "source": source, "target": target });
        if read_only {
            v["readOnly"] = json!(true);
        }
        out.push(v);
    }
    out
}

fn convert_healthcheck(cx: &mut Cx<'_>, node: &Node, field: &str) -> Option<Value> {
    if matches!(
        node.get("disable").map(|d| &d.value),
        Some(Yaml::Bool(true))
    ) {
        cx.note(
            node,
            field,
            "disabled: nanocl uses the image's own health check, if any",
        );
        return None;
    }
    let mut h = Map::new();
    for (k, v) in entries(node) {
        let key = k.key_text();
        let path = format!("{field}.{key}");
        match key.as_str() {
            "test" => {
                let command = match &v.value {
                    Yaml::Str(s) => Some(vec!["sh".to_owned(), "-c".to_owned(), s.clone()]),
                    Yaml::Seq(items) => {
                        let words: Vec<String> = items.iter().map(Node::key_text).collect();
                        match words.first().map(String::as_str) {
                            Some("CMD") => Some(words[1..].to_vec()),
                            Some("CMD-SHELL") => Some(
                                ["sh".to_owned(), "-c".to_owned(), words[1..].join(" ")].to_vec(),
                            ),
                            Some("NONE") => {
                                cx.note(v, &path, "NONE: no health check");
                                return None;
                            }
                            _ => Some(words),
                        }
                    }
                    _ => None,
                };
                match command {
                    Some(c) => {
                        h.insert("command".into(), json!(c));
                    }
                    None => cx.unsupported(v, &path, "expected a command"),
                }
            }
            "interval" | "timeout" | "start_period" => {
                let Some(t) = cx.text(v, &path) else { continue };
                match nanocl_api_types::quantity::parse_duration_ms(&t) {
                    Ok(_) => {
                        let name = if key == "start_period" {
                            "startPeriod"
                        } else {
                            key.as_str()
                        };
                        h.insert(name.into(), json!(t));
                    }
                    Err(e) => cx.unsupported(v, &path, &e),
                }
            }
            "retries" => match v.value {
                Yaml::Int(n) => {
                    h.insert("retries".into(), json!(n));
                }
                _ => cx.unsupported(v, &path, "expected a number"),
            },
            "disable" => {}
            _ => cx.unsupported(k, &path, "no equivalent in spec.container.healthcheck"),
        }
    }
    h.contains_key("command").then_some(Value::Object(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> (PathBuf, String) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/compose")
            .join(name);
        let dir = dir.canonicalize().expect("fixture directory");
        let text = std::fs::read_to_string(dir.join("compose.yaml")).expect("fixture");
        (dir, text)
    }

    fn options(dir: &Path) -> Options {
        Options {
            namespace: None,
            base_dir: dir.to_path_buf(),
            variables: [("TEST_IMAGE", "nanocl-test/busybox:latest")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    fn notes(c: &Conversion) -> Vec<(usize, String)> {
        c.notes
            .iter()
            .map(|n| (n.pos.line, n.field.clone()))
            .collect()
    }

    #[test]
    fn interpolation_should_follow_compose() {
        let vars: HashMap<String, String> = [("A", "1"), ("EMPTY", "")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let mut unset = Vec::new();
        let mut i = |t: &str| interpolate(t, &vars, &mut unset);
        assert_eq!(i("x${A}y$A").as_deref(), Ok("x1y1"));
        assert_eq!(i("${B:-d}${EMPTY:-e}${EMPTY-f}").as_deref(), Ok("de"));
        assert_eq!(i("$$A costs $$5").as_deref(), Ok("$A costs $5"));
        assert_eq!(i("${A:+set}${B:+no}").as_deref(), Ok("set"));
        assert!(i("${B:?needed for the db}")
            .unwrap_err()
            .contains("variable B is required: needed for the db"));
        assert_eq!(i("${NOPE}").as_deref(), Ok(""));
        assert_eq!(unset, vec!["NOPE".to_owned()]);
        assert_eq!(
            shell_words(r#"sh -c 'echo "a b"' "x\"y" z\ w"#),
            Ok(vec![
                "sh".into(),
                "-c".into(),
                "echo \"a b\"".into(),
                "x\"y".into(),
                "z w".into()
            ])
        );
    }

    #[test]
    fn the_web_app_fixture_should_convert_and_report_what_it_drops() {
        let (dir, text) = fixture("webapp");
        let c = convert("compose.yaml", &text, &options(&dir)).expect("converts");
        let kinds: Vec<String> = c
            .objects
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap_or(""),
                    o["metadata"]["name"].as_str().unwrap_or("")
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "Namespace/shop",
                "Cluster/shop",
                "Network/front",
                "Network/back",
                "Cargo/web",
                "Cargo/db",
                "Cargo/cache"
            ]
        );
        let web = &c.objects[4];
        assert_eq!(web["metadata"]["namespace"], "shop");
        assert_eq!(
            web["metadata"]["annotations"]["compose.nanocl.io/depends-on"],
            "db,cache"
        );
        let spec = &web["spec"];
        assert_eq!(spec["cluster"], "shop");
        assert_eq!(spec["networks"], json!(["front", "back"]));
        let container = &spec["container"];
        assert_eq!(
            container["image"], "nanocl-test/busybox:latest",
            "from the anchor"
        );
        assert_eq!(
            container["args"],
            json!(["httpd", "-f", "-p", "8080", "-h", "/www"])
        );
        assert_eq!(container["env"]["GREETING"], "hello from env_file");
        assert_eq!(container["env"]["DATABASE_URL"], "postgres://db:5432/shop");
        assert_eq!(
            container["ports"],
            json!([
                {"containerPort": 8080, "hostPort": 18080, "hostIP": "127.0.0.1"},
                {"containerPort": 9090}
            ])
        );
        assert_eq!(
            container["volumes"],
            json!([
                {"source": dir.join("html").display().to_string(), "target": "/www", "readOnly": true},
                {"source": "shop-data", "target": "/data"}
            ])
        );
        assert_eq!(
            container["healthcheck"],
            json!({"command": ["wget", "-q", "-O-", "http://127.0.0.1:8080/"], "interval": "2s", "timeout": "2s", "retries": 3})
        );
        assert_eq!(
            container["resources"],
            json!({"cpus": 0.5, "memory": "64m"})
        );
        let db = &c.objects[5]["spec"]["container"];
        assert_eq!(db["env"], json!({"POSTGRES_PASSWORD": "example"}));
        assert_eq!(
            db["healthcheck"]["command"],
            json!(["sh", "-c", "wget -q -O- http://127.0.0.1:5432/hostname"])
        );
        assert_eq!(c.objects[6]["spec"]["replicas"], 2);
        assert_eq!(
            c.objects[3]["spec"],
            json!({"cluster": "shop", "internal": true})
        );
        assert_eq!(
            notes(&c),
            [
                (27, "services.web.depends_on".to_owned()),
                (36, "services.web.container_name".to_owned()),
                (37, "services.web.logging".to_owned()),
                (50, "services.db.restart".to_owned()),
                (59, "services.cache.networks.back.aliases".to_owned()),
                (60, "services.cache.expose".to_owned()),
                (69, "volumes.shop-data.driver".to_owned()),
            ]
        );
        let aliases = &c.notes[4].message;
        assert!(aliases.starts_with("not converted:"), "{aliases}");
    }

    #[test]
    fn a_build_should_become_a_build_and_the_image_name_be_reported() {
        let (dir, text) = fixture("build");
        let c = convert("compose.yaml", &text, &options(&dir)).expect("converts");
        assert_eq!(
            c.objects[0]["metadata"]["name"], "build",
            "the directory's name"
        );
        let container = &c.objects[2]["spec"]["container"];
        assert_eq!(
            container["build"],
            json!({
                "context": dir.join("app").display().to_string(),
                "dockerfile": "Dockerfile",
                "args": {"BASE": "nanocl-test/busybox:latest"}
            })
        );
        assert!(container.get("image").is_none());
        assert_eq!(container["labels"], json!({"tier": "app"}));
        assert_eq!(container["workingDir"], "/srv");
        assert_eq!(notes(&c), [(9, "services.app.image".to_owned())]);
    }

    #[test]
    fn dangerous_and_unknown_keys_should_be_reported_at_their_line() {
        let text = "services:\n  a_b:\n    image: x\n    privileged: true\n    cap_add: [NET_ADMIN]\n    ports: [\"8000-8010:8000-8010\"]\n    volumes: [/data]\nsecrets:\n  s: {file: ./s}\n";
        let c = convert("c.yaml", text, &options(Path::new("/p/demo"))).expect("converts");
        assert_eq!(c.objects[0]["metadata"]["name"], "demo");
        assert_eq!(c.objects[2]["metadata"]["name"], "a-b");
        assert_eq!(
            notes(&c),
            [
                (2, "services.a_b".to_owned()),
                (4, "services.a_b.privileged".to_owned()),
                (5, "services.a_b.cap_add".to_owned()),
                (6, "services.a_b.ports[0]".to_owned()),
                (7, "services.a_b.volumes[0]".to_owned()),
                (8, "secrets".to_owned()),
            ]
        );
        assert!(
            c.notes[1].message.contains(
                "refused at apply unless the namespace's spec.policy allows it (privileged: true)"
            ),
            "{:?}",
            c.notes[1]
        );
        let errors = convert("c.yaml", "services: [a]\n", &options(Path::new("/p"))).unwrap_err();
        assert_eq!(
            errors[0].message,
            "a Compose file needs a mapping of services"
        );
        let errors = convert(
            "c.yaml",
            "services:\n  a: {image: [\n",
            &options(Path::new("/p")),
        )
        .unwrap_err();
        assert_eq!(errors[0].pos.line, 3, "{errors:?}");
    }
}
