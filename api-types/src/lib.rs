//! nanocl resource types: kinds and versions, conversion, defaulting, validation, manifest
//! decoding with `FILE:LINE:COLUMN` errors, and JSON Schemas.
//!
//! This crate is the bottom of the stack: no async runtime, no Docker, no store.

pub mod cargo;
pub mod cluster;
pub mod conversion;
pub mod event;
pub mod manifest;
pub mod meta;
pub mod namespace;
pub mod network;
pub mod node;
pub mod object;
pub mod path;
pub mod proxy_rule;
pub mod quantity;
pub mod reference;
pub mod replica;
pub mod resource;
pub mod schema;
pub mod secret;
pub mod selector;
pub mod template;
pub mod validation;

pub use object::{AnyObject, Kind, ObjectKey, Version, GROUP, V1, V1ALPHA1};
pub use resource::Resource;

/// Label carried by objects written by `nanocl apply --prune` and the watch mode: the name of
/// the set they belong to, so a later prune removes exactly that set's vanished objects.
pub const APPLYSET_LABEL: &str = "nanocl.io/applyset";

/// Where nanocld listens by default, and so where the CLI looks: `/run/nanocl/nanocl.sock` for
/// root, `$XDG_RUNTIME_DIR/nanocl/nanocl.sock` for other users.
pub fn default_socket_path() -> std::path::PathBuf {
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !is_root => std::path::PathBuf::from(dir).join("nanocl/nanocl.sock"),
        _ => std::path::PathBuf::from("/run/nanocl/nanocl.sock"),
    }
}
