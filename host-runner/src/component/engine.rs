//! The wasmtime [`Engine`]: which features it compiles with, which instance
//! allocator it uses, and the epoch ticker that makes running guest code
//! interruptible.
//!
//! This module decides *how* guest code can be interrupted (epoch checks
//! compiled in, a thread advancing the epoch); *when* a request has run too
//! long is decided by the worker module. It sizes the pooling allocator for
//! `--max-instances` instances of one component ([`PoolSizing`]), but does
//! not load components; the instance count and `--max-memory-size` are
//! enforced elsewhere (worker and host modules) whichever allocator is in
//! use, so that both fail the same way: at instantiation, with a 503.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How much of a dropped instance's linear memory is reset in place (and
/// kept resident) for the next instance in its slot, rather than discarded.
/// A hello-world instance touches a few hundred KiB.
const MEMORY_KEEP_RESIDENT: usize = 1 << 20;

/// The same for its tables.
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// How instances get their memories, tables and stacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocator {
    /// Slots reserved up front and recycled: much cheaper instantiation when
    /// instances are short-lived.
    Pooling,
    /// Everything mapped at instantiation; used when the machine cannot
    /// reserve the pool's address space.
    OnDemand,
}

/// How big the pooling allocator's pools are: enough for `instances`
/// instances of one component.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PoolSizing {
    instances: u32,
    /// What one instance of the component takes from the pools.
    footprint: Footprint,
}

/// Core instances, linear memories and tables one instance of a component
/// allocates, counted from its binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Footprint {
    core_instances: u32,
    memories: u32,
    tables: u32,
}

impl PoolSizing {
    /// Sizing for `instances` instances of the component in `wasm`.
    pub(crate) fn for_component(wasm: &[u8], instances: u32) -> Self {
        Self {
            instances: instances.max(1),
            footprint: Footprint::of(wasm),
        }
    }

    fn pooling_config(&self) -> PoolingAllocationConfig {
        let per_instance = |need: u32| self.instances.saturating_mul(need.max(1));
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(self.instances)
            .total_core_instances(per_instance(self.footprint.core_instances))
            .total_memories(per_instance(self.footprint.memories))
            .total_tables(per_instance(self.footprint.tables))
            // One fiber stack per instance, as wasmtime's defaults have it.
            .total_stacks(self.instances)
            // A slot freed by a dropped instance is reset for the next one.
            // By default wasmtime discards the whole memory (madvise), and
            // the next instance faults every page it touches back in. With
            // Linux's PAGEMAP_SCAN (6.7+; elsewhere this is the default
            // again) it finds the pages the instance dirtied and zeroes
            // them in place. Without reuse this cut hello-p3's CPU per
            // request to 0.7-0.8x and raised requests/s by 20-50%; keeping
            // memory resident without the scan (memset of the whole 1 MiB)
            // gained nothing.
            .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
            .table_keep_resident(TABLE_KEEP_RESIDENT)
            .pagemap_scan(Enabled::Auto);
        pool
    }
}

impl Footprint {
    /// Counts what instantiating `wasm` allocates, assuming each embedded
    /// core module is instantiated once (what component toolchains emit).
    /// An undercount only means the pool may run out before
    /// `--max-instances` does, which is still answered with a 503.
    fn of(wasm: &[u8]) -> Self {
        let mut footprint = Footprint {
            core_instances: 0,
            memories: 0,
            tables: 0,
        };
        for payload in wasmparser::Parser::new(0).parse_all(wasm) {
            // Structural errors are for the compiler to report.
            let Ok(payload) = payload else { break };
            match payload {
                wasmparser::Payload::InstanceSection(instances) => {
                    for instance in instances.into_iter().flatten() {
                        if matches!(instance, wasmparser::Instance::Instantiate { .. }) {
                            footprint.core_instances += 1;
                        }
                    }
                }
                wasmparser::Payload::MemorySection(memories) => {
                    footprint.memories += memories.count();
                }
                wasmparser::Payload::TableSection(tables) => footprint.tables += tables.count(),
                _ => {}
            }
        }
        footprint
    }
}

/// Builds the engine shared by every instance of a component.
///
/// `interruptible` compiles epoch checks into guest code; it is needed for
/// request timeouts to stop busy loops, and costs a little speed otherwise.
///
/// The pooling allocator is used when its pools fit this machine's address
/// space (each memory slot reserves several GiB so that bounds checks can be
/// elided; 39-bit address spaces or a strict `ulimit -v` may not have
/// room); otherwise instances are allocated on demand.
pub(crate) fn build(
    interruptible: bool,
    sizing: &PoolSizing,
) -> wasmtime::Result<(Engine, Allocator)> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    config.epoch_interruption(interruptible);
    // Copy-on-write initialisation maps a component's data segments instead
    // of copying them, so a fresh instance costs little more than a reused
    // one. It is wasmtime's default; set it so no future default changes it.
    config.memory_init_cow(true);

    config.allocation_strategy(InstanceAllocationStrategy::Pooling(sizing.pooling_config()));
    // The pools are reserved when the engine is created, so this is where
    // a machine without room for them says so.
    if let Ok(engine) = Engine::new(&config) {
        return Ok((engine, Allocator::Pooling));
    }
    config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
    Ok((Engine::new(&config)?, Allocator::OnDemand))
}

/// A thread advancing the engine's epoch at a fixed period while it lives.
///
/// Each tick makes running guest code yield to the async executor (see the
/// stores' epoch callback), which is what gives the worker a chance to notice
/// an expired request even when the guest never awaits anything.
pub(crate) struct EpochTicker {
    // Dropping the sender wakes the thread at once, so shutdown does not wait
    // for a full period.
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine, period: Duration) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                    engine.increment_epoch();
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The tick period for a given request timeout: fine enough that a busy
    /// guest overruns its timeout by at most a few milliseconds, coarse
    /// enough that the ticker costs nothing measurable.
    pub(crate) fn period_for(request_timeout: Duration) -> Duration {
        request_timeout.clamp(Duration::from_millis(1), Duration::from_millis(10))
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // The thread only loops on a channel; it cannot panic in a way
            // worth reporting while the server is going away.
            let _ = thread.join();
        }
    }
}
