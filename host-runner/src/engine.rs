//! The wasmtime [`Engine`]: which features it compiles with, which instance
//! allocator it uses, and the epoch ticker that makes running guest code
//! interruptible.
//!
//! This module decides *how* guest code can be interrupted (epoch checks
//! compiled in, a thread advancing the epoch); *when* a request has run too
//! long is decided by the worker module. It does not load components.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, Memory, MemoryType, PoolingAllocationConfig, Store,
};

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

/// Builds the engine shared by every instance of a component.
///
/// `interruptible` compiles epoch checks into guest code; it is needed for
/// request timeouts to stop busy loops, and costs a little speed otherwise.
pub(crate) fn build(interruptible: bool) -> wasmtime::Result<(Engine, Allocator)> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    config.epoch_interruption(interruptible);
    // Copy-on-write initialisation maps a component's data segments instead
    // of copying them, so a fresh instance costs little more than a reused
    // one. It is wasmtime's default; set it so no future default changes it.
    config.memory_init_cow(true);

    let allocator = if pooling_fits_address_space() {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(
            PoolingAllocationConfig::default(),
        ));
        Allocator::Pooling
    } else {
        Allocator::OnDemand
    };
    let engine = Engine::new(&config)?;
    Ok((engine, allocator))
}

/// Whether this machine can reserve the pooling allocator's address space.
///
/// The default pool reserves about 2^42 bytes of virtual memory (1000
/// memories of 4 GiB plus guards). Some kernels and CPUs (39-bit address
/// spaces, strict `ulimit -v`) cannot, and then the engine would fail to
/// start; so try to reserve that much once, and fall back to on-demand
/// allocation when it fails.
fn pooling_fits_address_space() -> bool {
    const POOL_ADDRESS_BITS: u32 = 42;
    const WASM_PAGE_BITS: u32 = 16;
    let mut config = Config::new();
    config.wasm_memory64(true);
    config.memory_reservation(1 << POOL_ADDRESS_BITS);
    let Ok(engine) = Engine::new(&config) else {
        return false;
    };
    let mut store = Store::new(&engine, ());
    // A 64-bit memory whose maximum spans the whole range forces wasmtime to
    // reserve it at creation, which is exactly the question asked.
    let ty = MemoryType::new64(0, Some(1 << (POOL_ADDRESS_BITS - WASM_PAGE_BITS)));
    Memory::new(&mut store, ty).is_ok()
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
