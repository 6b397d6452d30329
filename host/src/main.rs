//! `oar`: the OAR command line (keys, signing, approvals, runs, synthetic data, demo, bench).

mod cli;

/// mimalloc: Polars allocates from every worker thread, and glibc's allocator spent about a fifth
/// of a group-by in the kernel (page faults, unmapping). Measured on the population query over
/// 10M rows: 1.5 s with glibc, 0.9-1.1 s with mimalloc, no gain from jemalloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
