//! The `ProxyHandler`'s [`HandlerState`]: creates the instances of one
//! component, numbered, within `--max-instances`, with instantiation
//! bounded in time when requests are.
//!
//! This module does not decide how many requests an instance takes (the
//! worker does) nor when it is given up on (the expiry does).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{HandlerState, Instance};

use super::config::EffectiveConfig;
use super::expiry::InstanceExpiry;
use super::info::InstanceInfo;
use super::slots::Slots;
use super::store;
use super::worker::InstanceWorker;
use crate::component::LoadedComponent;
use crate::errors::one_line;
use crate::host::{Host, HostServices};
use crate::metrics::Metrics;
use crate::units::HumanDuration;

/// The least time instantiation is given when requests have a timeout.
const INSTANTIATION_TIMEOUT_FLOOR: Duration = Duration::from_secs(1);

/// The `ProxyHandler`'s [`HandlerState`]: creates instances of one
/// component.
///
/// Clones are for the server's threads, one `ProxyHandler` each: they share
/// the numbering, the `max_instances` slots (`slots.rs`: an idle instance
/// on one thread steps down for a request on another) and the metrics, so
/// limits and ids hold across threads.
#[derive(Clone)]
pub struct Instances {
    component: Arc<LoadedComponent>,
    config: Arc<EffectiveConfig>,
    /// The key-value store and configuration every instance shares.
    services: Arc<HostServices>,
    metrics: Arc<Metrics>,
    /// Instances alive or being created, against `max_instances`, and
    /// their numbering.
    slots: Arc<Slots>,
    /// Set once the server stopped: instances dropped from then on are
    /// being torn down with the runtime, not failing.
    closing: Arc<AtomicBool>,
}

impl Instances {
    pub(crate) fn new(
        component: LoadedComponent,
        config: Arc<EffectiveConfig>,
        metrics: Arc<Metrics>,
        services: Arc<HostServices>,
    ) -> Self {
        let max_instances = config.max_instances;
        Self {
            component: Arc::new(component),
            services,
            config,
            metrics,
            slots: Slots::new(max_instances),
            closing: Arc::new(AtomicBool::new(false)),
        }
    }

    pub(crate) fn component(&self) -> &LoadedComponent {
        &self.component
    }

    /// Marks the end of serving; see `closing`.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }
}

impl HandlerState for Instances {
    type StoreData = Host;
    type WorkerExpiration = InstanceExpiry;
    type WorkerState = InstanceWorker;

    async fn instantiate(
        &self,
    ) -> wasmtime::Result<Instance<Host, InstanceExpiry, InstanceWorker>> {
        let slot = self.slots.take().await.inspect_err(|error| {
            tracing::debug!("no instance created: {error}");
        })?;
        let info = Arc::new(InstanceInfo::new(slot.id(), self.slots.clone()));
        let mut store = store::new_store(
            self.component.engine(),
            info.id(),
            &self.config,
            &self.services,
        );
        let started = Instant::now();
        let instantiation = self.component.pre().instantiate_async(&mut store);
        // Instantiation runs guest code (start functions, static
        // initialisers) that could loop forever and stall every request
        // queued for this instance, so it is bounded when requests are.
        // It is the host's cost rather than one request's, hence the
        // floor: a 100us request timeout must not turn into 503s.
        let proxy = match self.config.request_timeout {
            Some(limit) => {
                match tokio::time::timeout(limit.max(INSTANTIATION_TIMEOUT_FLOOR), instantiation)
                    .await
                {
                    Ok(proxy) => proxy,
                    Err(_) => Err(wasmtime::format_err!(
                        "instantiation took longer than {}",
                        HumanDuration(limit.max(INSTANTIATION_TIMEOUT_FLOOR))
                    )),
                }
            }
            None => instantiation.await,
        };
        // The memory budget's refusal is transient, unlike the error it
        // causes (a memory below its minimum size): say which it was.
        let proxy = proxy.map_err(|error| match store.data().total_memory_full() {
            Some(full) => wasmtime::Error::new(full),
            None => error,
        });
        let proxy = proxy.inspect_err(|error| {
            self.metrics.instantiation_failed(started.elapsed());
            tracing::warn!(
                instance = info.id(),
                "instance could not be created: {}",
                one_line(error)
            );
        })?;
        self.metrics.instance_created(started.elapsed());
        tracing::debug!(instance = info.id(), "instance created");
        Ok(Instance {
            store,
            proxy,
            view: Host::http,
            expiration: InstanceExpiry::new(info.clone(), &self.config, self.slots.clone()),
            state: InstanceWorker::new(
                info,
                self.config.clone(),
                self.metrics.clone(),
                self.closing.clone(),
                slot,
            ),
        })
    }
}
