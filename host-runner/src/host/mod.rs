//! Per-instance host state (the `T` of `Store<T>`) and the linker that
//! provides WASI to both HTTP worlds: what a component can reach from the
//! host, decided before any component is loaded.
//!
//! Everything an instance can reach from the host is decided here: WASI cli
//! and http always, `wasi:config` and `wasi:keyvalue` when `-S` asks, and
//! outgoing HTTP as the outbound policy allows. The store keeps count of the
//! instance's linear memory and holds each memory to `--max-memory-size`,
//! and every instance together to `--max-total-memory` ([`MemoryBudget`]).
//! What outlives an instance (the key-value store, the configuration, the
//! memory budget) lives in [`HostServices`], shared by every store. This module does not build
//! stores from the serving configuration (`instance/store.rs` does) and does
//! not decide when instances are created, reused or dropped (`instance/`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, StoreLimits};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub(crate) mod guest_output;
pub(crate) mod keyvalue;

use crate::exchange::Exchanges;
use crate::options::WasiOptions;
use crate::outbound::HttpHooks;
use crate::pool::Pool;
use crate::units::HumanSize;
use guest_output::{RequestLabels, StderrTail};
use keyvalue::{KeyValueStore, KeyValueView, Quota};

/// The host side of one component instance.
pub struct Host {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: HttpHooks,
    services: Arc<HostServices>,
    memory: MemoryMeter,
    labels: Arc<RequestLabels>,
    stderr_tail: Option<Arc<StderrTail>>,
}

/// What every instance of a server shares, and so what outlives any one
/// of them: the key-value store and the configuration variables.
pub(crate) struct HostServices {
    keyvalue: KeyValueStore,
    config: Arc<WasiConfigVariables>,
    /// `--max-memory-size`: what one key-value call may copy out of the
    /// store is the room left below it in the calling instance.
    max_memory_size: u64,
    /// `--max-total-memory`: what every store's memory meter reserves from.
    memory_budget: Arc<MemoryBudget>,
    /// Keep-alive connections for outgoing HTTP (`serve` only).
    outbound_pool: Option<Arc<Pool>>,
    /// Where outgoing calls are recorded (`serve --record`) or answered
    /// from (`check`'s replay); set once, before the first instance.
    exchanges: OnceLock<Exchanges>,
}

impl HostServices {
    /// Services whose key-value store is in memory, holding the
    /// `-Skeyvalue-in-memory-data` seed, whatever the `-S` options say:
    /// what `host-runner check` runs on ([`Self::reset_keyvalue`] puts it
    /// back, so every run starts from the same data). Their instances'
    /// memory together is not bounded: `check` runs a few at a time.
    pub(crate) fn new(wasi: &WasiOptions, max_memory_size: u64) -> Arc<Self> {
        Arc::new(Self {
            keyvalue: KeyValueStore::in_memory(&wasi.keyvalue_data, Quota::from_options(wasi)),
            config: Arc::new(WasiConfigVariables::from_iter(
                wasi.config_vars.iter().cloned(),
            )),
            max_memory_size,
            memory_budget: Arc::new(MemoryBudget::new(None, Arc::default(), Arc::default())),
            outbound_pool: None,
            exchanges: OnceLock::new(),
        })
    }

    /// Puts the key-value store back to its `-Skeyvalue-in-memory-data`
    /// seed, under every instance that uses it (`check`, between arms).
    pub(crate) fn reset_keyvalue(&self, wasi: &WasiOptions) {
        self.keyvalue.reset(&wasi.keyvalue_data);
    }

    /// The services `serve` runs on: the key-value store the `-S` options
    /// ask for (a file by default, see `keyvalue`), opened only with
    /// `-Skeyvalue`; outgoing HTTP goes through `outbound_pool`, and every
    /// instance's memory is reserved from `memory_budget`.
    pub(crate) fn open(
        wasi: &WasiOptions,
        max_memory_size: u64,
        memory_budget: MemoryBudget,
        outbound_pool: Arc<Pool>,
    ) -> anyhow::Result<Arc<Self>> {
        let keyvalue = match wasi.keyvalue {
            true => KeyValueStore::open(wasi)?,
            false => KeyValueStore::in_memory(&[], Quota::from_options(wasi)),
        };
        Ok(Arc::new(Self {
            keyvalue,
            config: Arc::new(WasiConfigVariables::from_iter(
                wasi.config_vars.iter().cloned(),
            )),
            max_memory_size,
            memory_budget: Arc::new(memory_budget),
            outbound_pool: Some(outbound_pool),
            exchanges: OnceLock::new(),
        }))
    }

    /// The pool outgoing HTTP goes through, if any.
    pub(crate) fn outbound_pool(&self) -> Option<Arc<Pool>> {
        self.outbound_pool.clone()
    }

    /// Outgoing calls are recorded or replayed as `exchanges` says, in
    /// every instance created from now on (the first call wins).
    pub(crate) fn set_exchanges(&self, exchanges: Exchanges) {
        let _ = self.exchanges.set(exchanges);
    }

    /// What outgoing calls are recorded to or answered from, if anything.
    pub(crate) fn exchanges(&self) -> Option<Exchanges> {
        self.exchanges.get().cloned()
    }
}

/// Where `-Skeyvalue` keeps the store, as start-up reports it (the options
/// that cannot go together are refused when the server opens it).
pub fn keyvalue_location(wasi: &WasiOptions) -> String {
    match keyvalue::Location::chosen(wasi) {
        Ok(location) => format!("wasi:keyvalue {location}, shared by all instances"),
        Err(e) => format!("wasi:keyvalue not opened: {e}"),
    }
}

impl Host {
    /// The host side of a new instance: its WASI context, what it may send
    /// over HTTP, the services it shares with other instances, and the
    /// memory it may grow to.
    pub(crate) fn new(
        wasi: WasiCtx,
        hooks: HttpHooks,
        services: Arc<HostServices>,
        limits: StoreLimits,
        labels: Arc<RequestLabels>,
        stderr_tail: Option<Arc<StderrTail>>,
    ) -> Self {
        let memory = MemoryMeter {
            bytes: 0,
            refused: false,
            limits,
            budget: services.memory_budget.clone(),
        };
        Self {
            table: ResourceTable::new(),
            wasi,
            http: WasiHttpCtx::new(),
            hooks,
            services,
            memory,
            labels,
            stderr_tail,
        }
    }

    /// Lets the store's limiter see every memory growth.
    pub(crate) fn memory_meter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.memory
    }

    /// The instance's id and the requests it is serving, as its output is
    /// labelled.
    pub(crate) fn request_labels(&self) -> &Arc<RequestLabels> {
        &self.labels
    }

    /// Bytes of linear memory the instance has now, all its memories
    /// together.
    pub(crate) fn linear_memory_bytes(&self) -> usize {
        self.memory.bytes
    }

    /// The panic the guest printed last, if its stderr is kept (`check`)
    /// and it printed one since the last call.
    pub(crate) fn take_panic_message(&self) -> Option<String> {
        self.stderr_tail.as_ref()?.take_panic()
    }

    /// Whether `--max-total-memory` refused this store's memory a growth:
    /// read after a failed instantiation, it says why.
    pub(crate) fn total_memory_full(&self) -> Option<TotalMemoryFull> {
        let limit = self.memory.budget.limit?;
        self.memory.refused.then_some(TotalMemoryFull { limit })
    }

    /// The outgoing calls that failed since the last call, if they are kept
    /// (`check`).
    pub(crate) fn take_failed_calls(&self) -> Vec<String> {
        self.hooks
            .failed_calls
            .as_ref()
            .map_or_else(Vec::new, |calls| calls.take())
    }
}

/// `--max-total-memory`: the linear memory of every live instance together,
/// against its bound. Each store's [`MemoryMeter`] reserves its growth here
/// before it happens and gives all of it back when its instance is dropped
/// (linear memory never shrinks while an instance lives), so the sum can
/// never pass the bound, however many instances grow at once.
pub(crate) struct MemoryBudget {
    /// `None`: no bound, only the count.
    limit: Option<u64>,
    /// Bytes reserved now: the `reprise_linear_memory_bytes` gauge.
    held: Arc<AtomicU64>,
    /// Growths refused: the `reprise_memory_growths_refused_total` counter.
    refused: Arc<AtomicU64>,
}

impl MemoryBudget {
    /// A budget of `limit` bytes (`None`: unbounded) that keeps what it
    /// holds in `held` and counts refusals in `refused` (the metrics'
    /// atomics).
    pub(crate) fn new(limit: Option<u64>, held: Arc<AtomicU64>, refused: Arc<AtomicU64>) -> Self {
        Self {
            limit,
            held,
            refused,
        }
    }

    /// Reserves `bytes` if the sum stays within the bound.
    fn reserve(&self, bytes: u64) -> bool {
        let reserved = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                let after = held.checked_add(bytes)?;
                self.limit
                    .is_none_or(|limit| after <= limit)
                    .then_some(after)
            });
        if let Err(held) = reserved {
            self.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "linear memory growth of {} refused: all instances together hold {} of --max-total-memory {}",
                HumanSize(bytes),
                HumanSize(held),
                HumanSize(self.limit.unwrap_or_default())
            );
        }
        reserved.is_ok()
    }

    fn release(&self, bytes: u64) {
        self.held.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Bytes that may still be reserved.
    fn room(&self) -> u64 {
        self.limit.map_or(u64::MAX, |limit| {
            limit.saturating_sub(self.held.load(Ordering::Acquire))
        })
    }
}

/// Why an instance was not created: its initial memory did not fit in
/// what `--max-total-memory` left (transient: it frees up as instances
/// end).
#[derive(Debug)]
pub(crate) struct TotalMemoryFull {
    pub(crate) limit: u64,
}

impl std::fmt::Display for TotalMemoryFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the instances together hold --max-total-memory {}",
            HumanSize(self.limit)
        )
    }
}

impl std::error::Error for TotalMemoryFull {}

/// Counts linear memory as the instance creates and grows it: the store's
/// limiter is told of every growth, so no access to the guest's (unexported)
/// memories is needed. It allows every growth the memory's type and
/// `limits` allow (`--max-memory-size`; a store has room for one limiter, so
/// this one consults wasmtime's `StoreLimits`) and that fits in the server's
/// [`MemoryBudget`]. Past either, growth fails in the guest (`memory.grow`
/// returns -1), which a Rust guest turns into an allocation-failure trap; at
/// instantiation, the instance is not created.
struct MemoryMeter {
    bytes: usize,
    /// Whether the budget refused a growth of this store's memory.
    refused: bool,
    limits: StoreLimits,
    budget: Arc<MemoryBudget>,
}

impl Drop for MemoryMeter {
    fn drop(&mut self) {
        self.budget.release(self.bytes as u64);
    }
}

impl ResourceLimiter for MemoryMeter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Growth past the memory's own maximum would fail after an `Ok(true)`
        // and be reported through `memory_grow_failed`, which cannot tell
        // which growth failed; refusing it here keeps the count exact. (An
        // allocation failure in the OS is still counted as growth.)
        if maximum.is_some_and(|maximum| desired > maximum)
            || !self.limits.memory_growing(current, desired, maximum)?
        {
            return Ok(false);
        }
        let growth = desired.saturating_sub(current);
        if !self.budget.reserve(growth as u64) {
            self.refused = true;
            return Ok(false);
        }
        self.bytes += growth;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            // Standard forbidden headers; outgoing requests sent by
            // wasmtime's own client where the outbound policy allows.
            hooks: &mut self.hooks,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

/// A linker providing all of WASI 0.2 and 0.3 plus `wasi:http` for both,
/// and `wasi:config` and `wasi:keyvalue` when `wasi` enables them.
///
/// All of p2 `wasi:cli` is included, not just the proxy world's imports,
/// because Rust std on `wasm32-wasip2` imports `wasi:cli/environment`,
/// `exit` and `terminal-*` even in HTTP components. `wasi:config` and
/// `wasi:keyvalue` have no p3 version yet; their (synchronous) p2
/// interfaces serve p3 components as well.
pub(crate) fn linker(engine: &Engine, wasi: &WasiOptions) -> wasmtime::Result<Linker<Host>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    if wasi.config {
        wasmtime_wasi_config::add_to_linker(&mut linker, |host: &mut Host| {
            WasiConfig::from(&*host.services.config)
        })?;
    }
    if wasi.keyvalue {
        keyvalue::add_to_linker(&mut linker, |host: &mut Host| KeyValueView {
            store: &host.services.keyvalue,
            // The result of a call lands in the instance's memory: no call
            // may copy more than the room left there, or among all
            // instances.
            budget: host
                .services
                .max_memory_size
                .saturating_sub(host.memory.bytes as u64)
                .min(host.memory.budget.room()),
        })?;
    }
    Ok(linker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_refuses_a_growth_past_its_bound_and_takes_back_what_is_released() {
        let budget = MemoryBudget::new(Some(64 << 20), Arc::default(), Arc::default());
        assert!(budget.reserve(40 << 20));
        assert!(!budget.reserve(40 << 20), "80MiB would pass 64MiB");
        assert_eq!(budget.refused.load(Ordering::Relaxed), 1);
        assert_eq!(budget.room(), 24 << 20);
        budget.release(40 << 20);
        assert!(budget.reserve(40 << 20), "room again once released");
    }
}
