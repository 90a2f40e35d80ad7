//! A fresh store for each instance, set up as the serving configuration
//! says: the guest's environment, where its output goes and how it is
//! labelled, what it may send over HTTP, how far its memories may grow, and
//! the epoch yields that let request timeouts be enforced.
//!
//! This module does not decide what an instance can import (the host
//! module's linker does) or when instances are created and dropped (the
//! instance module does).

use std::sync::Arc;

use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;

use super::config::EffectiveConfig;
use crate::host::guest_output::{GuestOutput, HostStream, OutputStyle, RequestLabels, StderrTail};
use crate::host::{Host, HostServices};
use crate::options::LogFormat;
use crate::outbound::{FailedCalls, HttpHooks};

/// Each linear memory of an instance may grow to `--max-memory-size`.
fn memory_limits(config: &EffectiveConfig) -> StoreLimits {
    StoreLimitsBuilder::new()
        .memory_size(usize::try_from(config.max_memory_size).unwrap_or(usize::MAX))
        .build()
}

/// A fresh store for instance number `instance_id`.
pub(crate) fn new_store(
    engine: &Engine,
    instance_id: u64,
    config: &EffectiveConfig,
    services: &Arc<HostServices>,
) -> Store<Host> {
    store(
        engine,
        instance_id,
        config,
        services,
        HostStream::Stdout,
        Kept::default(),
    )
}

/// What a store keeps of its guest's doings for `check` (the tail of its
/// stderr, its failed outgoing calls); the server keeps nothing.
#[derive(Default)]
pub(crate) struct Kept {
    pub(crate) stderr_tail: Option<Arc<StderrTail>>,
    pub(crate) failed_calls: Option<Arc<FailedCalls>>,
}

/// A fresh store whose guest stdout goes to `stdout`, keeping what `kept`
/// asks for (`check` builds its stores with this).
pub(crate) fn store(
    engine: &Engine,
    instance_id: u64,
    config: &EffectiveConfig,
    services: &Arc<HostServices>,
    stdout: HostStream,
    kept: Kept,
) -> Store<Host> {
    let Kept {
        stderr_tail,
        failed_calls,
    } = kept;
    let style = match (config.log_format, config.logging_prefix) {
        (LogFormat::Json, _) => OutputStyle::Events,
        (LogFormat::Text, true) => OutputStyle::Prefixed,
        (LogFormat::Text, false) => OutputStyle::Bare,
    };
    let labels = RequestLabels::new(instance_id);
    let wasi = WasiCtxBuilder::new()
        .envs(&config.env)
        .stdout(GuestOutput::new(
            stdout,
            "stdout",
            style,
            labels.clone(),
            None,
        ))
        .stderr(GuestOutput::new(
            HostStream::Stderr,
            "stderr",
            style,
            labels.clone(),
            stderr_tail.clone(),
        ))
        .build();
    let hooks = HttpHooks {
        policy: config.outbound.clone(),
        p2_outgoing_body_buffer_chunks: config.wasi.http_outgoing_body_buffer_chunks,
        p2_outgoing_body_chunk_size: config.wasi.http_outgoing_body_chunk_size,
        exchanges: services.exchanges(),
        failed_calls,
        pool: services.outbound_pool(),
    };
    let host = Host::new(
        wasi,
        hooks,
        services.clone(),
        memory_limits(config),
        labels,
        stderr_tail,
    );
    let mut store = Store::new(engine, host);
    store.limiter(Host::memory_meter);
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
