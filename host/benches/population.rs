//! `cargo bench -p oar-host`: the same measurement as `oar bench` (rows from OAR_BENCH_ROWS,
//! default 10 million; OAR_BENCH_PEERS=1 adds the Python peers).

fn main() {
    let rows = std::env::var("OAR_BENCH_ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10_000_000);
    let opts = oar_host::bench::BenchOptions {
        rows,
        repeat: 5,
        dir: std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("oar-bench"),
        peers: std::env::var("OAR_BENCH_PEERS").is_ok_and(|v| v == "1"),
        python: None,
    };
    match oar_host::bench::run(&opts, &mut oar_host::progress::lines(|l| eprintln!("{l}"))) {
        Ok(report) => print!("{report}"),
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            std::process::exit(1);
        }
    }
}
