//! `Secret` in `nanocl.io/v1` (the only version it is served in).
//!
//! Its values live in `spec` like every nanocl kind's desired state (Kubernetes keeps them
//! at the top level; one shape for every kind keeps decoding, validation and schemas one).

use std::collections::BTreeMap;

use base64::Engine as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::Object;
use crate::path::FieldPath;
use crate::validation::{quoted, FieldErrors};

/// A Secret: namespaced values a cargo's env and files, or a build's git credentials,
/// refer to by name and key.
pub type Secret = Object<SecretSpec, SecretStatus>;

/// Most bytes of all of a secret's values together.
pub const MAX_BYTES: usize = 512 * 1024;

/// What a secret holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretSpec {
    /// `opaque` (default: any keys) or `tls` (keys `tls.crt` and `tls.key`, PEM).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<SecretType>,
    /// Values, base64-encoded, by key (letters, digits, `-`, `_`, `.`). What the API
    /// answers in place of each value is `<hidden: N bytes, digest D>`: the values
    /// themselves are never served.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// Values as plain text, a convenience for writing: merged into `data` (where both
    /// name a key, this one wins) and never stored as such.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub string_data: BTreeMap<String, String>,
}

/// The kinds of secret.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SecretType {
    /// Any keys.
    #[default]
    #[serde(rename = "opaque")]
    Opaque,
    /// A TLS certificate and its key: `tls.crt` and `tls.key`, PEM.
    #[serde(rename = "tls")]
    Tls,
}

/// Nothing is observed of a secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretStatus {}

/// The prefix of the text the API serves in place of a value.
pub const HIDDEN_PREFIX: &str = "<hidden: ";

impl SecretSpec {
    /// The decoded value of `key`, if the secret has it (and it decodes).
    pub fn value(&self, key: &str) -> Option<Vec<u8>> {
        self.data
            .get(key)
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
    }
}

/// Merges `stringData` into `data` and defaults `type` to `opaque`.
pub fn apply_defaults(secret: &mut Secret) {
    let spec = &mut secret.spec;
    spec.type_.get_or_insert(SecretType::Opaque);
    for (key, value) in std::mem::take(&mut spec.string_data) {
        spec.data.insert(
            key,
            base64::engine::general_purpose::STANDARD.encode(value.as_bytes()),
        );
    }
}

/// A secret key: what a file of it is named, so letters, digits, `-`, `_`, `.`.
pub fn key_name(key: &str) -> Result<(), String> {
    let ok = !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid key {}: letters, digits, '-', '_' and '.' only (it names a file)",
            quoted(key)
        ))
    }
}

/// Checks a Secret, collecting every problem. No message ever quotes a value.
pub fn validate(secret: &Secret) -> FieldErrors {
    let mut errors = FieldErrors::new();
    secret
        .metadata
        .validate(&FieldPath::keys("metadata"), true, &mut errors);
    let spec = &secret.spec;
    let data = FieldPath::keys("spec.data");
    let mut total = 0usize;
    for (key, value) in &spec.data {
        let p = data.key(key.clone());
        errors.check(&p, key_name(key));
        if value.starts_with(HIDDEN_PREFIX) {
            errors.push(
                p.clone(),
                "is the placeholder the API shows, not a value: write the value (base64) in data, or as text in stringData",
            );
            continue;
        }
        match base64::engine::general_purpose::STANDARD.decode(value) {
            Ok(bytes) => total += bytes.len(),
            Err(_) => errors.push(
                p,
                "is not valid base64 (write plain text in stringData instead)",
            ),
        }
    }
    let string_data = FieldPath::keys("spec.stringData");
    for (key, value) in &spec.string_data {
        errors.check(&string_data.key(key.clone()), key_name(key));
        total += value.len();
    }
    if total > MAX_BYTES {
        errors.push(
            data.clone(),
            format!("holds {total} bytes: at most {MAX_BYTES} bytes in all"),
        );
    }
    if spec.type_ == Some(SecretType::Tls) {
        for key in ["tls.crt", "tls.key"] {
            if !spec.data.contains_key(key) && !spec.string_data.contains_key(key) {
                errors.push(
                    data.clone(),
                    format!("a tls secret needs {} (PEM)", quoted(key)),
                );
            }
        }
    }
    errors
}
