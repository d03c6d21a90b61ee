//! Writes JSON values as block-style YAML that reads back to the same values.

use nanocl_api_types::manifest::node::plain_reads_as_string;
use serde_json::Value;

/// The value as a YAML document (no leading `---`).
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(map, 0, &mut out),
        Value::Array(items) if !items.is_empty() => write_seq(items, 0, &mut out),
        scalar => {
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
    out
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn write_map(map: &serde_json::Map<String, Value>, level: usize, out: &mut String) {
    for (i, (key, value)) in map.iter().enumerate() {
        // The first key of a map inside a sequence item follows the "- " on the same line.
        if i > 0 || !out.ends_with("- ") {
            indent(out, level);
        }
        out.push_str(&string_text(key));
        out.push(':');
        write_value(value, level, out);
    }
}

fn write_seq(items: &[Value], level: usize, out: &mut String) {
    for item in items {
        if !out.ends_with("- ") {
            indent(out, level);
        }
        out.push_str("- ");
        match item {
            Value::Object(map) if !map.is_empty() => write_map(map, level + 2, out),
            Value::Array(inner) if !inner.is_empty() => write_seq(inner, level + 2, out),
            scalar => {
                out.push_str(&scalar_text(scalar));
                out.push('\n');
            }
        }
    }
}

fn write_value(value: &Value, level: usize, out: &mut String) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(map, level + 2, out);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(items, level + 2, out);
        }
        scalar => {
            out.push(' ');
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string_text(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A string plain when that reads back as the same string, double-quoted (JSON escapes are
/// valid YAML) otherwise.
fn string_text(s: &str) -> String {
    let first_ok = s
        .chars()
        .next()
        .is_some_and(|c| !"-?:,[]{}#&*!|>'\"%@`".contains(c) && !c.is_whitespace());
    let plain = first_ok
        && !s.ends_with(char::is_whitespace)
        && !s.ends_with(':')
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.chars().any(|c| c.is_control() || c == '\u{feff}')
        && plain_reads_as_string(s);
    if plain {
        s.to_owned()
    } else {
        serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_should_quote_what_would_change_type() {
        let value = json!({
            "a": "3", "b": "true", "c": "plain text", "d": "- x", "e": "a: b", "f": "",
            "g": 3, "h": null, "i": ["x", {"k": "v", "l": [1, 2]}], "j": {}, "k": [],
            "m": "line\nbreak", "n": "{{ vars.X }}"
        });
        assert_eq!(
            to_string(&value),
            "a: \"3\"\nb: \"true\"\nc: plain text\nd: \"- x\"\ne: \"a: b\"\nf: \"\"\ng: 3\nh: null\ni:\n  - x\n  - k: v\n    l:\n      - 1\n      - 2\nj: {}\nk: []\nm: \"line\\nbreak\"\nn: \"{{ vars.X }}\"\n"
        );
    }
}
