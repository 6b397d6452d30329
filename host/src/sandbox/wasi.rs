//! WASI, locked down: what Rust's standard library needs to start, and nothing that reaches out.

use super::RunState;
use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx};

/// Bytes of stdout/stderr kept per run.
const CONSOLE_CAPACITY: usize = 64 * 1024;

/// Links the WASI p2 interfaces. Sockets are linked but every use is denied by the context; the
/// import check refuses components that import them at all.
pub(super) fn link(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)
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
/// stdout/stderr, denied sockets, virtual clocks and randomness seeded from the job id.
pub(super) fn locked_down_ctx(job_id: &str) -> (WasiCtx, Console) {
    let stdout = MemoryOutputPipe::new(CONSOLE_CAPACITY);
    let stderr = MemoryOutputPipe::new(CONSOLE_CAPACITY);
    let seed = crate::keys::sha256(format!("oar-guest-random\0{job_id}").as_bytes()).to_vec();
    let mut b = WasiCtx::builder();
    b.stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .wall_clock(FrozenWallClock)
        .monotonic_clock(VirtualMonotonicClock(Default::default()))
        .secure_random(wasmtime_wasi::Deterministic::new(seed.clone()))
        .insecure_random(wasmtime_wasi::Deterministic::new(seed))
        .insecure_random_seed(0);
    (b.build(), Console { stdout, stderr })
}
