//! `nanocl`: the command-line client. All the work is in the `nanocl_cli` library.

fn main() -> std::process::ExitCode {
    nanocl_cli::main()
}
