//! WASI, locked down: what Rust's standard library needs to start, and nothing that reaches out.

use super::RunState;
use std::time::Duration;
use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::{HostWallClock, WasiCtx};

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
    clocks::monotonic_clock::add_to_linker::<RunState, VirtualClock>(l, |s| VirtualClockView {
        now: &mut s.clock_ns,
        table: &mut s.table,
    })?;
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

/// `wasi:clocks/monotonic-clock` as a module sees it: virtual time that advances one
/// microsecond per reading and by the length of every wait, and waits that are over at once.
///
/// A module cannot time the host's work with it, and cannot block in it: WASI's own clock
/// would sleep in real time inside `poll`, a host call that the epoch deadline cannot interrupt,
/// so one `sleep(Duration::MAX)` would pin a worker for good. Here every subscription is ready
/// immediately; a module that sleeps in a loop spins, and the deadline traps it like any loop.
struct VirtualClock;
impl HasData for VirtualClock {
    type Data<'a> = VirtualClockView<'a>;
}

/// The run's virtual time (nanoseconds) and resource table.
pub(super) struct VirtualClockView<'a> {
    now: &'a mut u64,
    table: &'a mut ResourceTable,
}

/// A pollable that is always ready.
struct Ready;

#[async_trait::async_trait]
impl wasmtime_wasi::p2::Pollable for Ready {
    async fn ready(&mut self) {}
}

impl VirtualClockView<'_> {
    fn ready_after(
        &mut self,
        nanos: u64,
    ) -> wasmtime::Result<wasmtime::component::Resource<wasmtime_wasi::p2::DynPollable>> {
        *self.now = self.now.saturating_add(nanos);
        let ready = self.table.push(Ready)?;
        wasmtime_wasi::p2::subscribe(self.table, ready)
    }
}

impl wasmtime_wasi::p2::bindings::clocks::monotonic_clock::Host for VirtualClockView<'_> {
    fn now(&mut self) -> wasmtime::Result<u64> {
        *self.now = self.now.saturating_add(1_000);
        Ok(*self.now)
    }

    fn resolution(&mut self) -> wasmtime::Result<u64> {
        Ok(1_000)
    }

    fn subscribe_instant(
        &mut self,
        when: u64,
    ) -> wasmtime::Result<wasmtime::component::Resource<wasmtime_wasi::p2::DynPollable>> {
        let wait = when.saturating_sub(*self.now);
        self.ready_after(wait)
    }

    fn subscribe_duration(
        &mut self,
        duration: u64,
    ) -> wasmtime::Result<wasmtime::component::Resource<wasmtime_wasi::p2::DynPollable>> {
        self.ready_after(duration)
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
/// stdout/stderr, a frozen wall clock and randomness seeded from the job id. (The context's own
/// monotonic clock is never linked: modules get `VirtualClock`.)
pub(super) fn locked_down_ctx(job_id: &str) -> (WasiCtx, Console) {
    let stdout = MemoryOutputPipe::new(CONSOLE_CAPACITY);
    let stderr = MemoryOutputPipe::new(CONSOLE_CAPACITY);
    let seed = crate::keys::sha256(format!("oar-guest-random\0{job_id}").as_bytes()).to_vec();
    let mut b = WasiCtx::builder();
    b.stdout(stdout.clone())
        .stderr(stderr.clone())
        .wall_clock(FrozenWallClock)
        .secure_random(wasmtime_wasi::Deterministic::new(seed.clone()))
        .insecure_random(wasmtime_wasi::Deterministic::new(seed))
        .insecure_random_seed(0);
    (b.build(), Console { stdout, stderr })
}
