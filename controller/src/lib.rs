//! nanocld: the store backends today; the API server, reconcile runtime, controllers and the
//! Docker adapter as their issues land.

pub mod apiserver;
pub mod backoff;
pub mod controllers;
pub mod deploy;
pub mod docker;
pub mod metrics;
pub mod objects;
pub mod runtime;
pub mod store;
