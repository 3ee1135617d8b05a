//! The `relapse` command line: list, validate, run and scaffold scenarios; start a simulated cluster.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
