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
            Value::String(text) if block_ok(text) => write_block(text, level + 2, out),
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
        Value::String(text) if block_ok(text) => {
            out.push(' ');
            write_block(text, level + 2, out);
        }
        scalar => {
            out.push(' ');
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
}

/// Whether a string reads better, and back the same, as a literal block (`|`): several
/// lines, no first line starting with a space (that would need an indentation indicator),
/// nothing a block cannot hold.
fn block_ok(text: &str) -> bool {
    text.trim_end_matches('\n').contains('\n')
        && !text.starts_with(' ')
        && !text.starts_with('\n')
        && !text
            .chars()
            .any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{feff}')
}

/// `text` as a literal block at `indent` (the header, then its lines), with the chomping
/// indicator that keeps its trailing newlines as they are.
fn write_block(text: &str, indent_by: usize, out: &mut String) {
    let body = text.trim_end_matches('\n');
    let trailing = text.len() - body.len();
    out.push_str(match trailing {
        0 => "|-",
        1 => "|",
        _ => "|+",
    });
    out.push('\n');
    for line in body.split('\n') {
        if !line.is_empty() {
            indent(out, indent_by);
            out.push_str(line);
        }
        out.push('\n');
    }
    for _ in 1..trailing {
        out.push('\n');
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
            "a: \"3\"\nb: \"true\"\nc: plain text\nd: \"- x\"\ne: \"a: b\"\nf: \"\"\ng: 3\nh: null\ni:\n  - x\n  - k: v\n    l:\n      - 1\n      - 2\nj: {}\nk: []\nm: |-\n  line\n  break\nn: \"{{ vars.X }}\"\n"
        );
    }

    #[test]
    fn multi_line_strings_should_be_literal_blocks_that_read_back_the_same() {
        let value = serde_json::json!({
            "a": "line one\nline two\n",
            "b": "no newline at the end\nsecond",
            "c": ["x\n\ny\n\n"],
            "d": " starts with a space\nso quoted",
            "e": "one line\n"
        });
        let text = to_string(&value);
        assert_eq!(
            text,
            "a: |\n  line one\n  line two\nb: |-\n  no newline at the end\n  second\nc:\n  - |+\n    x\n\n    y\n\nd: \" starts with a space\\nso quoted\"\ne: \"one line\\n\"\n"
        );
        let (documents, error) = nanocl_api_types::manifest::node::parse_stream(&text);
        assert!(error.is_none(), "{error:?}");
        let decoded: Value = nanocl_api_types::manifest::de::from_node(
            documents[0].root.as_ref().expect("a document"),
            &nanocl_api_types::path::FieldPath::root(),
        )
        .expect("reads back");
        assert_eq!(decoded, value);
    }
}
