//! The `relapse` command line: list, validate, run and scaffold scenarios; start a simulated cluster.

mod cli;

use std::process::ExitCode;

/// The simulated cluster allocates and frees JSON objects at a high rate; mimalloc does that in
/// well under the time glibc's malloc takes (see README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::main()
}
