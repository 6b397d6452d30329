//! The sandbox: wasmtime components with only our imports, a memory cap and a deadline.
//!
//! [`Runtime`] is long-lived and shared (engine, linker, compiled-code cache keyed by the verified
//! module hash, the epoch ticker). The linker holds `oar:runtime/host` (its bindings generated from
//! `guest-sdk/wit/oar.wit` in `bindings.rs`) and only the WASI interfaces
//! Rust's standard library needs; filesystem and sockets are not linked at all, and a component
//! importing anything else is refused before instantiation. Each run gets a fresh `Store` holding
//! its [`Session`], a locked-down WASI context (no environment or arguments, stdin closed,
//! stdout/stderr captured, a frozen wall clock, a virtual monotonic clock and randomness seeded from
//! the job id), a memory cap (a `ResourceLimiter` that also records when it fired) and an epoch
//! deadline.

mod bindings;
mod code_cache;
mod wasi;

use crate::module_text::bounded;
use crate::session::Session;
use crate::verify::VerifiedModule;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::WasiCtx;

/// The WIT interface a module imports from OAR.
pub const HOST_INTERFACE: &str = "oar:runtime/host@0.1.0";

/// Interfaces a module may import besides ours: what Rust's standard library needs on
/// `wasm32-wasip2` (console streams, exit, environment) plus virtual clocks and seeded randomness
/// for modules that use `HashMap` or `Instant`. All are linked locked down (see [`wasi`]).
/// Anything else, including `wasi:filesystem` and `wasi:sockets`, is refused before instantiation.
const ALLOWED_WASI: &[&str] = &[
    "wasi:cli/environment@",
    "wasi:cli/exit@",
    "wasi:cli/stdin@",
    "wasi:cli/stdout@",
    "wasi:cli/stderr@",
    "wasi:cli/terminal-input@",
    "wasi:cli/terminal-output@",
    "wasi:cli/terminal-stdin@",
    "wasi:cli/terminal-stdout@",
    "wasi:cli/terminal-stderr@",
    "wasi:io/error@",
    "wasi:io/poll@",
    "wasi:io/streams@",
    "wasi:clocks/wall-clock@",
    "wasi:clocks/monotonic-clock@",
    "wasi:random/random@",
    "wasi:random/insecure@",
    "wasi:random/insecure-seed@",
];

/// The epoch ticks every this often; deadlines are whole ticks.
const TICK: Duration = Duration::from_millis(5);

/// Why a run did not complete.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The bytes are not a valid component.
    #[error("the module is not a valid WebAssembly component: {0}")]
    InvalidComponent(String),
    /// The component imports something outside our world.
    #[error("the module imports '{0}', which OAR does not provide (modules may import only {HOST_INTERFACE} and the locked-down WASI interfaces the standard library needs); rebuild a Rust module against the oar-guest SDK without network, HTTP or socket crates, and a Python module with `componentize-py ... componentize --stub-wasi` (then it imports only {HOST_INTERFACE}; write to the run log with ctx.log, not print)")]
    ForbiddenImport(String),
    /// The component does not export `run` with the right type.
    #[error("the module does not export `run(params: string) -> result<_, string>`: {0}")]
    MissingExport(String),
    /// The run hit its deadline.
    #[error("the module exceeded its time limit of {0:?} and was stopped")]
    Deadline(Duration),
    /// The run tried to grow memory past the cap.
    #[error("the module tried to use more than {0} MiB of memory and was stopped")]
    Memory(u64),
    /// The module trapped.
    #[error("the module crashed: {0}")]
    Trap(String),
    /// The module returned an error.
    #[error("the module reported an error: {0}")]
    Module(String),
    /// Setting up the engine or the instance failed.
    #[error("sandbox setup failed: {0}")]
    Setup(String),
}

/// Resource limits of one run.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    /// Linear memory cap, in MiB.
    pub memory_mib: u64,
    /// Wall-clock deadline.
    pub time: Duration,
}

/// Per-store state.
pub(crate) struct RunState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: MemoryCap,
    session: Session,
    /// The module's virtual monotonic time, in nanoseconds (see `wasi::VirtualClock`).
    clock_ns: u64,
}

/// Caps the instance's memory **in total**: every linear memory (a component may hold several,
/// and multi-memory allows many) and every table (counted at [`TABLE_ELEMENT_BYTES`] a slot)
/// add up against one budget. Remembers whether the cap was hit, so a trap can be reported as
/// what it is.
///
/// What it does not cover: the host's own memory for a query (bounded by the plan cost checks
/// in `query`) and for parsing what the module emits (bounded by the size limits in
/// `session`).
struct MemoryCap {
    max_bytes: usize,
    used: usize,
    hit: bool,
}

/// Bytes one table slot is counted as (a function reference and its metadata).
const TABLE_ELEMENT_BYTES: usize = 16;

impl MemoryCap {
    /// Grows the total by `desired - current` if it stays under the cap.
    fn grow(&mut self, current: usize, desired: usize) -> bool {
        let total = self.used.saturating_sub(current).saturating_add(desired);
        if total > self.max_bytes {
            self.hit = true;
            return false;
        }
        self.used = total;
        true
    }
}

/// Most table elements a module may have (function tables of real modules are far smaller).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if !self.grow(current, desired) {
            wasmtime::bail!("memory cap of {} bytes reached", self.max_bytes);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        let bytes = |n: usize| n.saturating_mul(TABLE_ELEMENT_BYTES);
        if !self.grow(bytes(current), bytes(desired)) {
            wasmtime::bail!("memory cap of {} bytes reached", self.max_bytes);
        }
        Ok(true)
    }

    // Python components (componentize-py) instantiate 17 core instances or more: CPython, its
    // libraries and adapters. Each instance costs the host a little bookkeeping; their memories
    // and tables count against the one cap above.
    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}

impl wasmtime_wasi::WasiView for RunState {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Long-lived, shared: engine, linker, compiled-code cache and epoch ticker.
pub struct Runtime {
    engine: Engine,
    linker: Linker<RunState>,
    cache: Mutex<HashMap<String, Component>>,
    disk_cache: Option<code_cache::CodeCache>,
    ticker_stop: Arc<AtomicBool>,
}

/// What a run produced besides the session record.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    /// Time to get a compiled component (cache hit or compile).
    pub prepare: Duration,
    /// Time to instantiate.
    pub instantiate: Duration,
    /// Time inside the guest, including host calls.
    pub execute: Duration,
    /// Whether the compiled code came from the cache.
    pub cache_hit: bool,
    /// What the module wrote to stdout and stderr (truncated).
    pub console: String,
    /// The module's memory at the end of the run: every linear memory and table, as the cap
    /// counts them (they never shrink, so this is also the peak).
    pub memory_bytes: usize,
}

impl Runtime {
    /// A runtime whose compiled-code cache lives in memory and, if `cache_dir` is set, on disk
    /// (`.cwasm` files this host wrote and tagged for the verified module hash; see
    /// [`code_cache`]).
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self, SandboxError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = Engine::new(&config).map_err(|e| SandboxError::Setup(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasi::link(&mut linker).map_err(|e| SandboxError::Setup(e.to_string()))?;
        bindings::link(&mut linker).map_err(|e| SandboxError::Setup(e.to_string()))?;
        let disk_cache = cache_dir
            .as_deref()
            .map(code_cache::CodeCache::open)
            .transpose()
            .map_err(|e| {
                SandboxError::Setup(format!(
                    "compiled-code cache {}: {e}",
                    cache_dir.as_deref().unwrap_or(Path::new("")).display()
                ))
            })?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = ticker_stop.clone();
            std::thread::Builder::new()
                .name("oar-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| SandboxError::Setup(e.to_string()))?;
        }
        Ok(Runtime {
            engine,
            linker,
            cache: Mutex::new(HashMap::new()),
            disk_cache,
            ticker_stop,
        })
    }

    /// The compiled component for `module`, from the cache or freshly compiled; checks imports.
    pub fn prepare(&self, module: &VerifiedModule) -> Result<(Component, bool), SandboxError> {
        let hash = module.module_hash();
        if let Some(c) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash)
        {
            return Ok((c.clone(), true));
        }
        let mut hit = false;
        let mut component = None;
        if let Some(code) = self.disk_cache.as_ref().and_then(|c| c.load(hash)) {
            // SAFETY: `load` returns only bytes this host's `Component::serialize` produced for
            // this verified module hash (tagged under the cache's private key); wasmtime also
            // checks that they were compiled by a compatible engine.
            match unsafe { Component::deserialize(&self.engine, &code) } {
                Ok(c) => {
                    component = Some(c);
                    hit = true;
                }
                Err(e) => {
                    tracing::warn!(module = %hash, error = %e, "ignoring unusable compiled-code cache entry")
                }
            }
        }
        let component = match component {
            Some(c) => c,
            None => {
                let c = Component::new(&self.engine, module.component())
                    .map_err(|e| SandboxError::InvalidComponent(format!("{e:#}")))?;
                if let Some(cache) = &self.disk_cache {
                    if let Ok(bytes) = c.serialize() {
                        cache.store(hash, &bytes);
                    }
                }
                c
            }
        };
        check_imports(&self.engine, &component)?;
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(hash.to_string(), component.clone());
        Ok((component, hit))
    }

    /// Runs `module` with `params` in a fresh store holding `session`.
    ///
    /// Whatever happens, the session comes back so its record (charges already made, outputs)
    /// can be accounted for; outputs of a failed run must not be released.
    ///
    /// The run has one deadline, `limits.time` from this call: compiling, instantiating, the
    /// guest's code, its host calls and the queries they run all count against it. The session
    /// refuses to start a query past it, a query still running at the deadline is cancelled,
    /// and either way the run ends with a trap rather than a refusal the module could read.
    pub fn run(
        &self,
        module: &VerifiedModule,
        mut session: Session,
        params: &str,
        limits: RunLimits,
    ) -> (Result<RunStats, SandboxError>, Session) {
        let span =
            tracing::info_span!("run", job = %session.job_id(), module = %module.module_hash());
        let _guard = span.enter();
        let mut stats = RunStats::default();
        let started = Instant::now();
        let deadline = started + limits.time;
        session.set_deadline(deadline);
        let (component, hit) = match self.prepare(module) {
            Ok(c) => c,
            Err(e) => return (Err(e), session),
        };
        stats.prepare = started.elapsed();
        stats.cache_hit = hit;
        if Instant::now() >= deadline {
            return (Err(SandboxError::Deadline(limits.time)), session);
        }

        let memory_bytes = limits.memory_mib.saturating_mul(1 << 20);
        let (wasi, console) = wasi::locked_down_ctx(session.job_id());
        let state = RunState {
            wasi,
            table: ResourceTable::new(),
            limits: MemoryCap {
                max_bytes: usize::try_from(memory_bytes).unwrap_or(usize::MAX),
                used: 0,
                hit: false,
            },
            session,
            clock_ns: 0,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let left = deadline.saturating_duration_since(Instant::now());
        let ticks = (left.as_nanos() / TICK.as_nanos()).max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();

        let t = Instant::now();
        let result = self
            .linker
            .instantiate(&mut store, &component)
            .map_err(|e| classify(e, limits, store.data().limits.hit))
            .and_then(|instance| {
                stats.instantiate = t.elapsed();
                bindings::ModuleWorld::new(&mut store, &instance)
                    .map_err(|e| SandboxError::MissingExport(format!("{e:#}")))
            })
            .and_then(|module| {
                let t = Instant::now();
                let out = module.call_run(&mut store, params);
                stats.execute = t.elapsed();
                match out {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(msg)) => Err(SandboxError::Module(bounded(
                        &msg,
                        crate::module_text::MAX_MODULE_ERROR_CHARS,
                    ))),
                    Err(_) if store.data().session.deadline_hit() => {
                        Err(SandboxError::Deadline(limits.time))
                    }
                    Err(e) => Err(classify(e, limits, store.data().limits.hit)),
                }
            });
        // A module that hit the memory cap ends as capped, whatever it did next: a language
        // that turns the refused growth into an exception (Python's MemoryError) could
        // otherwise catch it and return normally or with its own error.
        let result = match result {
            Ok(()) | Err(SandboxError::Module(_)) if store.data().limits.hit => {
                Err(SandboxError::Memory(limits.memory_mib))
            }
            other => other,
        };
        stats.console = console.contents();
        stats.memory_bytes = store.data().limits.used;
        let session = store.into_data().session;
        match &result {
            Ok(()) => tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "module finished"
            ),
            Err(e) => tracing::warn!(error = %e, "module failed"),
        }
        (result.map(|()| stats), session)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

fn classify(e: wasmtime::Error, limits: RunLimits, memory_cap_hit: bool) -> SandboxError {
    if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return SandboxError::Deadline(limits.time);
    }
    if memory_cap_hit {
        return SandboxError::Memory(limits.memory_mib);
    }
    // A trap's text can hold names the module chose (its function names in the backtrace).
    SandboxError::Trap(bounded(
        &format!("{e:#}"),
        crate::module_text::MAX_MODULE_ERROR_CHARS,
    ))
}

/// Checks `bytes` as [`Runtime::prepare`] will before a run: it must compile as a component
/// and import nothing outside [`HOST_INTERFACE`] and [`ALLOWED_WASI`]. For authors, before they
/// sign (`oar build`).
pub fn check_component(bytes: &[u8]) -> Result<(), SandboxError> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    let engine = Engine::new(&config).map_err(|e| SandboxError::Setup(e.to_string()))?;
    let component = Component::new(&engine, bytes)
        .map_err(|e| SandboxError::InvalidComponent(format!("{e:#}")))?;
    check_imports(&engine, &component)
}

/// Refuses a component that imports anything outside [`HOST_INTERFACE`] and [`ALLOWED_WASI`].
fn check_imports(engine: &Engine, component: &Component) -> Result<(), SandboxError> {
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        let ok = name == HOST_INTERFACE || ALLOWED_WASI.iter().any(|p| name.starts_with(p));
        if !ok {
            return Err(SandboxError::ForbiddenImport(name.to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Then: the cap applied to each memory on its own, and multi-memory allows 16 of them, so a
    /// module could hold 16 times the cap. Now every memory and table counts against one total.
    #[test]
    fn the_memory_cap_counts_every_memory_and_table_together() {
        let mib = 1 << 20;
        let mut cap = MemoryCap {
            max_bytes: 64 * mib,
            used: 0,
            hit: false,
        };
        assert!(cap.memory_growing(0, 40 * mib, None).unwrap());
        // A second memory of 40 MiB would take the total to 80: refused, and remembered.
        assert!(cap.memory_growing(0, 40 * mib, None).is_err());
        assert!(cap.hit);
        // Growing the first memory counts only the difference.
        assert!(cap.memory_growing(40 * mib, 60 * mib, None).unwrap());
        // Tables count too: 4 MiB free is 262,144 slots of 16 bytes.
        assert!(cap.table_growing(0, 200_000, None).unwrap());
        assert!(cap.table_growing(200_000, 300_000, None).is_err());
        assert_eq!(cap.used, 60 * mib + 200_000 * TABLE_ELEMENT_BYTES);
    }
}
