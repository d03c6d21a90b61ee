//! `ProxyRule`: listeners of the node proxy and the cargoes behind them (HTTP by host and
//! path, TCP streams), served to ready replicas only.

pub mod v1;
