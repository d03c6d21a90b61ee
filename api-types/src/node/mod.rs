//! `Node`: one Docker host of nanocl, registered and kept alive by the nanocld on it.

pub mod v1;
