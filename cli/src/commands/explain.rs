//! `nanocl explain KIND[.FIELD…]`: a kind's or a field's type, description and fields, from
//! the JSON Schemas (the same the API serves and editors read), like `kubectl explain`.

use std::io::Write;

use anyhow::{anyhow, bail};
use nanocl_api_types::Version;
use serde_json::{Map, Value};

use crate::args::ExplainArgs;
use crate::commands::get::parse_kind;
use crate::Outcome;

/// Runs `explain`.
pub fn run(args: &ExplainArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let version = match args.api_version.trim_start_matches("nanocl.io/") {
        "v1" => Version::V1,
        "v1alpha1" => Version::V1alpha1,
        other => bail!("unknown version {other:?}: v1 or v1alpha1"),
    };
    let mut parts = args.path.split('.');
    let kind = parse_kind(parts.next().unwrap_or_default())?;
    let schema = nanocl_api_types::schema::schema(version, kind).ok_or_else(|| {
        anyhow!(
            "{} is not served in {}: use --api-version v1",
            kind.as_str(),
            version.api_version()
        )
    })?;
    let empty = Map::new();
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut here = &schema;
    let mut walked = Vec::new();
    for field in parts {
        let object = object_of(defs, here);
        let properties = object
            .and_then(|o| o.get("properties"))
            .and_then(Value::as_object);
        let Some(next) = properties.and_then(|p| p.get(field)) else {
            let known: Vec<&str> = properties
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let at = if walked.is_empty() {
                kind.as_str().to_ascii_lowercase()
            } else {
                format!(
                    "{}.{}",
                    kind.as_str().to_ascii_lowercase(),
                    walked.join(".")
                )
            };
            if known.is_empty() {
                bail!("{at} has no fields: {field:?} is not one");
            }
            bail!(
                "field {field:?} does not exist in {at}; its fields: {}",
                known.join(", ")
            );
        };
        walked.push(field.to_owned());
        here = next;
    }
    writeln!(out, "KIND:     {}", kind.as_str())?;
    writeln!(out, "VERSION:  {}", version.api_version())?;
    if !walked.is_empty() {
        writeln!(
            out,
            "FIELD:    {} <{}>",
            walked.join("."),
            type_name(defs, here)
        )?;
    }
    let text = description(defs, here);
    writeln!(out, "\nDESCRIPTION:")?;
    if text.is_empty() {
        writeln!(out, "  <empty>")?;
    } else {
        for line in text.lines() {
            writeln!(out, "  {line}")?;
        }
    }
    if let Some(properties) = object_of(defs, here)
        .and_then(|o| o.get("properties"))
        .and_then(Value::as_object)
    {
        let required: Vec<&str> = object_of(defs, here)
            .and_then(|o| o.get("required"))
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        writeln!(out, "\nFIELDS:")?;
        for (name, field) in properties {
            let mark = if required.contains(&name.as_str()) {
                " -required-"
            } else {
                ""
            };
            writeln!(out, "  {name}\t<{}>{mark}", type_name(defs, field))?;
            let text = description(defs, field);
            let first = text.split("\n\n").next().unwrap_or("").replace('\n', " ");
            if !first.is_empty() {
                writeln!(out, "    {first}")?;
            }
        }
    }
    Ok(Outcome::Success)
}

fn resolve<'a>(defs: &'a Map<String, Value>, mut schema: &'a Value) -> &'a Value {
    for _ in 0..16 {
        let Some(name) = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
        else {
            break;
        };
        match defs.get(name) {
            Some(d) => schema = d,
            None => break,
        }
    }
    schema
}

/// The object schema a field stands for (through `$ref`, an optional's `anyOf`, a list's
/// items), if any.
fn object_of<'a>(defs: &'a Map<String, Value>, schema: &'a Value) -> Option<&'a Value> {
    let schema = resolve(defs, schema);
    if schema.get("properties").is_some() {
        return Some(schema);
    }
    if let Some(items) = schema.get("items") {
        return object_of(defs, items);
    }
    schema
        .get("anyOf")
        .and_then(Value::as_array)?
        .iter()
        .find_map(|b| object_of(defs, b))
}

/// The field's own description, else its type's.
fn description(defs: &Map<String, Value>, schema: &Value) -> String {
    if let Some(d) = schema.get("description").and_then(Value::as_str) {
        return d.to_owned();
    }
    resolve(defs, schema)
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

/// `string`, `integer`, `[]PortSpec`, `map[string]string`, `ContainerSpec`, …
fn type_name(defs: &Map<String, Value>, schema: &Value) -> String {
    if let Some(name) = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        let resolved = resolve(defs, schema);
        return match resolved.get("enum").or_else(|| resolved.get("oneOf")) {
            Some(_) => format!("{name}: {}", values(resolved).join(" | ")),
            None => name.to_owned(),
        };
    }
    if let Some(branches) = schema.get("anyOf").and_then(Value::as_array) {
        let names: Vec<String> = branches
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
            .map(|b| type_name(defs, b))
            .collect();
        return names.join(" | ");
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let main = types.into_iter().find(|t| *t != "null").unwrap_or("any");
    match main {
        "array" => format!(
            "[]{}",
            schema
                .get("items")
                .map_or_else(|| "any".to_owned(), |i| type_name(defs, i))
        ),
        "object" => match schema.get("additionalProperties") {
            Some(v @ Value::Object(_)) => format!("map[string]{}", type_name(defs, v)),
            _ => "object".to_owned(),
        },
        other => {
            let names = values(schema);
            if names.is_empty() {
                other.to_owned()
            } else {
                format!("{other}: {}", names.join(" | "))
            }
        }
    }
}

/// The values an enum allows.
fn values(schema: &Value) -> Vec<String> {
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        return e
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
    }
    schema
        .get("oneOf")
        .and_then(Value::as_array)
        .map(|b| {
            b.iter()
                .filter_map(|v| v.get("const").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
