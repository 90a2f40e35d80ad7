//! Per-instance host state (the `T` of `Store<T>`), the stores that hold it,
//! and the linker that provides WASI to both HTTP worlds.
//!
//! Everything an instance can reach from the host is decided here, and each
//! of the instance's linear memories is held to `--max-memory-size`. This
//! module does not decide when instances are created, reused or dropped
//! (that is the worker module).

use std::sync::Arc;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::config::{EffectiveConfig, LogFormat};
use crate::guest_output::{GuestOutput, HostStream, OutputStyle, RequestLabels};

/// The host side of one component instance.
pub struct Host {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    /// `--max-memory-size`. Past it, growth fails in the guest
    /// (`memory.grow` returns -1), which a Rust guest turns into an
    /// allocation-failure trap.
    limits: StoreLimits,
    labels: Arc<RequestLabels>,
}

impl Host {
    /// The instance's id and the requests it is serving, as its output is
    /// labelled.
    pub(crate) fn request_labels(&self) -> &Arc<RequestLabels> {
        &self.labels
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
            // Default hooks: standard forbidden headers, outgoing requests
            // sent by wasmtime's own client.
            hooks: Default::default(),
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

/// A linker providing all of WASI 0.2 and 0.3 plus `wasi:http` for both.
///
/// All of p2 `wasi:cli` is included, not just the proxy world's imports,
/// because Rust std on `wasm32-wasip2` imports `wasi:cli/environment`,
/// `exit` and `terminal-*` even in HTTP components.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<Host>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// A fresh store for instance number `instance_id`.
pub(crate) fn new_store(
    engine: &Engine,
    instance_id: u64,
    config: &EffectiveConfig,
) -> Store<Host> {
    let style = match (config.log_format, config.logging_prefix) {
        (LogFormat::Json, _) => OutputStyle::Events,
        (LogFormat::Text, true) => OutputStyle::Prefixed,
        (LogFormat::Text, false) => OutputStyle::Bare,
    };
    let labels = RequestLabels::new(instance_id);
    let wasi = WasiCtxBuilder::new()
        .envs(&config.env)
        .stdout(GuestOutput::new(
            HostStream::Stdout,
            "stdout",
            style,
            labels.clone(),
        ))
        .stderr(GuestOutput::new(
            HostStream::Stderr,
            "stderr",
            style,
            labels.clone(),
        ))
        .build();
    let mut store = Store::new(
        engine,
        Host {
            table: ResourceTable::new(),
            wasi,
            http: WasiHttpCtx::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(usize::try_from(config.max_memory_size).unwrap_or(usize::MAX))
                .build(),
            labels,
        },
    );
    store.limiter(|host| &mut host.limits);
    // When the engine ticks epochs (request timeouts are on), running guest
    // code yields to the executor at every tick instead of trapping. The
    // yield is what lets the worker check, from outside the store's event
    // loop, whether a request expired: a busy loop never awaits, so without
    // it nothing else would run on this task. Deciding to give up on the
    // instance stays with the worker. Without epoch interruption compiled in,
    // these settings are never consulted.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|_| {
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(tokio::task::yield_now()),
        ))
    });
    store
}
