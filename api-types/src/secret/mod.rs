//! `Secret`: named values (passwords, tokens, keys, certificates) for cargoes' env and files
//! and for builds' git credentials; encrypted at rest in the store, never printed.

pub mod v1;
