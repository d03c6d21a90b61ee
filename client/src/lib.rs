//! The nanocl client library, shared by `nanocl` and `nanocld`: the HTTP client over the
//! unix socket, TCP or TCP with mutual TLS, the `Transport` trait both binaries send requests through, the
//! object paths and comparisons, apply and prune, and the deploy-directory sync engine.
//! Errors are typed (`Error`); the binaries add their context with `anyhow`.

pub mod apply;
pub mod deploy;
pub mod error;
pub mod exec;
pub mod http;
pub mod read;
pub mod remote;
pub mod signal;
pub mod table;
pub mod tls;
pub mod transport;

pub use self::error::{Error, Result};
