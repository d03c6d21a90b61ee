//! `nanocld`, the nanocl daemon. For now it only reports its version: the store, the API
//! server and the controllers arrive with their issues.

use clap::Parser;

/// nanocld: keeps Docker matching the objects stored in nanocl.
#[derive(Debug, Parser)]
#[command(name = "nanocld", version)]
struct Args {}

fn main() {
    let _args = Args::parse();
    println!(
        "nanocld {}: serves {} (the API server and controllers are not built yet)",
        env!("CARGO_PKG_VERSION"),
        nanocl_api_types::Version::ALL
            .iter()
            .map(|v| v.api_version())
            .collect::<Vec<_>>()
            .join(", ")
    );
}
