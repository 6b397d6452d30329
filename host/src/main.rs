//! `oar`: the OAR command line (keys, signing, approvals, runs, synthetic data, demo, bench).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
