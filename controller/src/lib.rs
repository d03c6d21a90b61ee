//! nanocld: the store backends, the API server, the reconcile runtime and its controllers,
//! the Docker adapter, and the node agent that registers this host.

pub mod agent;
pub mod apiserver;
pub mod backoff;
pub mod builds;
pub mod controllers;
pub mod deploy;
pub mod docker;
pub mod metrics;
pub mod objects;
pub mod proxy;
pub mod runtime;
pub mod store;
