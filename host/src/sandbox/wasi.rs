//! WASI, locked down: what Rust's standard library needs to start, and nothing that reaches out.

use super::RunState;
use std::time::Duration;
use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx};

/// Bytes of stdout/stderr kept per run.
const CONSOLE_CAPACITY: usize = 64 * 1024;

/// Gives the io bindings their view of the store: the resource table.
struct HasIo;
impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// Links exactly the WASI interfaces of [`super::ALLOWED_WASI`]: console streams and exit,
/// environment (empty), clocks (virtual) and randomness (seeded). No filesystem, no sockets: a
/// component importing them fails the import check, and could not be instantiated anyway.
pub(super) fn link(l: &mut Linker<RunState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::p2::bindings::{cli, clocks, io, random, sync};
    io::error::add_to_linker::<RunState, HasIo>(l, |t| &mut t.table)?;
    sync::io::poll::add_to_linker::<RunState, HasIo>(l, |t| &mut t.table)?;
    sync::io::streams::add_to_linker::<RunState, HasIo>(l, |t| &mut t.table)?;
    clocks::wall_clock::add_to_linker::<RunState, WasiClocks>(l, RunState::clocks)?;
    clocks::monotonic_clock::add_to_linker::<RunState, WasiClocks>(l, RunState::clocks)?;
    random::random::add_to_linker::<RunState, WasiRandom>(l, |t| t.wasi.random())?;
    random::insecure::add_to_linker::<RunState, WasiRandom>(l, |t| t.wasi.random())?;
    random::insecure_seed::add_to_linker::<RunState, WasiRandom>(l, |t| t.wasi.random())?;
    cli::exit::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::environment::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::stdin::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::stdout::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::stderr::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::terminal_input::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::terminal_output::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::terminal_stdin::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::terminal_stdout::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::terminal_stderr::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    Ok(())
}

/// A wall clock frozen at the Unix epoch: modules cannot read the time.
struct FrozenWallClock;
impl HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// A monotonic clock that advances one microsecond per reading: usable for ordering, useless for
/// timing the host's work on the data.
struct VirtualMonotonicClock(std::sync::atomic::AtomicU64);
impl HostMonotonicClock for VirtualMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000
    }
    fn now(&self) -> u64 {
        self.0
            .fetch_add(1_000, std::sync::atomic::Ordering::Relaxed)
    }
}

/// Captured console output of a run.
pub(super) struct Console {
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl Console {
    pub(super) fn contents(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.stdout.contents()).into_owned();
        s.push_str(&String::from_utf8_lossy(&self.stderr.contents()));
        s
    }
}

/// A WASI context with no preopens, arguments or environment, closed stdin, captured
/// stdout/stderr, virtual clocks and randomness seeded from the job id.
pub(super) fn locked_down_ctx(job_id: &str) -> (WasiCtx, Console) {
    let stdout = MemoryOutputPipe::new(CONSOLE_CAPACITY);
    let stderr = MemoryOutputPipe::new(CONSOLE_CAPACITY);
    let seed = crate::keys::sha256(format!("oar-guest-random\0{job_id}").as_bytes()).to_vec();
    let mut b = WasiCtx::builder();
    b.stdout(stdout.clone())
        .stderr(stderr.clone())
        .wall_clock(FrozenWallClock)
        .monotonic_clock(VirtualMonotonicClock(Default::default()))
        .secure_random(wasmtime_wasi::Deterministic::new(seed.clone()))
        .insecure_random(wasmtime_wasi::Deterministic::new(seed))
        .insecure_random_seed(0);
    (b.build(), Console { stdout, stderr })
}
