//! What builds are made of: the git client and build contexts. The workflow that runs them
//! is `controllers::build`.

pub mod context;
pub mod git;
