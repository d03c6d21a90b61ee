//! `{{ vars.NAME }}` placeholders: cluster variables referenced from cargo configuration.

use std::collections::BTreeMap;

use crate::validation::quoted;

/// A piece of a templated string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part<'a> {
    /// Text copied as it is.
    Text(&'a str),
    /// A reference to the cluster variable of that name.
    Var(&'a str),
}

/// Splits `value` into text and `{{ vars.NAME }}` references. `{{` always opens a placeholder;
/// anything but `vars.NAME` inside one is an error, so a typo never reaches a container verbatim.
pub fn parse(value: &str) -> Result<Vec<Part<'_>>, String> {
    let mut parts = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            parts.push(Part::Text(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or_else(|| {
            format!(
                "unclosed placeholder in {}: expected \"{{{{ vars.NAME }}}}\"",
                quoted(value)
            )
        })?;
        let inner = after[..close].trim();
        let name = inner.strip_prefix("vars.").ok_or_else(|| {
            format!(
                "invalid placeholder \"{{{{ {inner} }}}}\" in {}: only \"{{{{ vars.NAME }}}}\" is supported",
                quoted(value)
            )
        })?;
        variable_name(name)
            .map_err(|e| format!("invalid placeholder in {}: {e}", quoted(value)))?;
        parts.push(Part::Var(name));
        rest = &after[close + 2..];
    }
    if rest.contains("}}") {
        return Err(format!(
            "stray \"}}}}\" in {}: placeholders are written \"{{{{ vars.NAME }}}}\"",
            quoted(value)
        ));
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest));
    }
    Ok(parts)
}

/// The names of the variables `value` references.
pub fn references(value: &str) -> Result<Vec<&str>, String> {
    Ok(parse(value)?
        .into_iter()
        .filter_map(|p| match p {
            Part::Var(name) => Some(name),
            Part::Text(_) => None,
        })
        .collect())
}

/// Replaces every placeholder with the variable's value; the error names the missing variable.
pub fn render(value: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    for part in parse(value)? {
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Var(name) => match vars.get(name) {
                Some(v) => out.push_str(v),
                None => return Err(format!("cluster variable {} is not defined", quoted(name))),
            },
        }
    }
    Ok(out)
}

/// A cluster variable name: letters, digits and `_`, not starting with a digit.
pub fn variable_name(name: &str) -> Result<(), String> {
    let bytes = name.as_bytes();
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
            "invalid variable name {}: letters, digits and '_', not starting with a digit",
            quoted(name)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_should_substitute_variables() {
        let vars = BTreeMap::from([("DB".to_owned(), "db.local".to_owned())]);
        assert_eq!(
            render("postgres://{{ vars.DB }}:5432/{{vars.DB}}", &vars),
            Ok("postgres://db.local:5432/db.local".to_owned())
        );
        assert_eq!(render("plain", &vars), Ok("plain".to_owned()));
        assert!(render("{{ vars.NOPE }}", &vars)
            .unwrap_err()
            .contains("\"NOPE\" is not defined"));
    }

    #[test]
    fn parse_should_reject_malformed_placeholders() {
        for bad in [
            "{{ vars.DB",
            "{{ env.DB }}",
            "{{ vars.1DB }}",
            "{{ vars. }}",
            "x }}",
            "{{}}",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(references("a{{ vars.X }}b{{ vars.Y }}"), Ok(vec!["X", "Y"]));
    }
}
