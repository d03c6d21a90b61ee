//! Helpers for lossless conversion between versions: `KEY=VALUE` lists and the annotation
//! that carries v1 fields an older version cannot express.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::meta::ObjectMeta;
use crate::path::FieldPath;
use crate::validation::{quoted, FieldErrors};

/// Annotation that carries, as JSON, the v1 fields a v1alpha1 object cannot express, so that
/// v1 → v1alpha1 → v1 loses nothing (the way Kubernetes keeps fields across API versions).
pub const V1_FIELDS_ANNOTATION: &str = "nanocl.io/v1-fields";

/// A map as a `KEY=VALUE` list, or `None` when a key contains `=` or is empty and so could
/// not be read back.
pub fn to_key_value_list(map: &BTreeMap<String, String>) -> Option<Vec<String>> {
    if map.keys().any(|k| k.is_empty() || k.contains('=')) {
        return None;
    }
    Some(map.iter().map(|(k, v)| format!("{k}={v}")).collect())
}

/// Reads a `KEY=VALUE` list; every malformed or repeated entry is an error at its index.
pub fn from_key_value_list(
    list: &[String],
    path: &FieldPath,
    errors: &mut FieldErrors,
) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for (i, entry) in list.iter().enumerate() {
        match entry.split_once('=') {
            Some((key, value)) if !key.is_empty() => {
                if map.insert(key.to_owned(), value.to_owned()).is_some() {
                    errors.push(
                        path.index(i),
                        format!("duplicate entry for {}", quoted(key)),
                    );
                }
            }
            _ => errors.push(
                path.index(i),
                format!("expected KEY=VALUE, got {}", quoted(entry)),
            ),
        }
    }
    map
}

/// Stores `fields` in the annotation unless it is empty (serializes to `{}`).
pub fn stash_v1_fields<T: Serialize>(meta: &mut ObjectMeta, fields: &T) {
    match serde_json::to_string(fields) {
        Ok(json) if json != "{}" => {
            meta.annotations
                .insert(V1_FIELDS_ANNOTATION.to_owned(), json);
        }
        // Serializing plain data to a String cannot fail; an empty stash needs no annotation.
        _ => {}
    }
}

/// Takes the stashed fields out of the annotation (default when absent).
pub fn take_v1_fields<T: DeserializeOwned + Default>(
    meta: &mut ObjectMeta,
    errors: &mut FieldErrors,
) -> T {
    match meta.annotations.remove(V1_FIELDS_ANNOTATION) {
        None => T::default(),
        Some(json) => serde_json::from_str(&json).unwrap_or_else(|e| {
            errors.push(
                FieldPath::keys("metadata.annotations").key(V1_FIELDS_ANNOTATION),
                format!("cannot read the v1 fields kept in this annotation: {e}"),
            );
            T::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_list_should_round_trip_and_report_bad_entries() {
        let map = BTreeMap::from([
            ("A".to_owned(), "1=2".to_owned()),
            ("B".to_owned(), String::new()),
        ]);
        let list = to_key_value_list(&map).expect("representable");
        assert_eq!(list, vec!["A=1=2", "B="]);
        let mut errors = FieldErrors::new();
        assert_eq!(
            from_key_value_list(&list, &FieldPath::root(), &mut errors),
            map
        );
        assert!(errors.is_empty());

        let bad = vec![
            "NOEQ".to_owned(),
            "A=1".to_owned(),
            "A=2".to_owned(),
            "=x".to_owned(),
        ];
        from_key_value_list(&bad, &FieldPath::keys("spec.env"), &mut errors);
        let printed: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            printed,
            vec![
                "spec.env[0]: expected KEY=VALUE, got \"NOEQ\"",
                "spec.env[2]: duplicate entry for \"A\"",
                "spec.env[3]: expected KEY=VALUE, got \"=x\"",
            ]
        );
        assert_eq!(
            to_key_value_list(&BTreeMap::from([("a=b".to_owned(), String::new())])),
            None
        );
    }
}
