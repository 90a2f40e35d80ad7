//! The instance lifecycle, as seen by `wasmtime_wasi_http`'s
//! [`ProxyHandler`](wasmtime_wasi_http::handler::ProxyHandler): how instances
//! are created ([`Instances`]), how many requests each accepts
//! ([`InstanceWorker`]), and when each is given up on ([`InstanceExpiry`]).
//!
//! Timeouts are enforced twice, as `handler.rs` asks: a per-request timer
//! inside the store's event loop (precise, but starved while the guest runs a
//! busy loop or a blocking host call), and [`InstanceExpiry`], polled from
//! outside the event loop, which drops the whole instance once its most
//! recent request is past the timeout. The epoch yields set up by the host
//! module are what give the outside check a chance to run.
//!
//! This module does not speak HTTP (the server module turns outcomes into
//! responses) and does not build stores (the host module does).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::time::Sleep;
use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus,
};

use crate::component::LoadedComponent;
use crate::config::{EffectiveConfig, HumanDuration};
use crate::host::{self, Host};

/// The least time instantiation is given when requests have a timeout.
const INSTANTIATION_TIMEOUT_FLOOR: Duration = Duration::from_secs(1);

/// Identity and counters of one component instance, shared with the
/// requests it serves.
#[derive(Debug)]
pub struct InstanceInfo {
    id: u64,
    accepted: AtomicUsize,
    timed_out: AtomicBool,
}

impl InstanceInfo {
    fn new(id: u64) -> Self {
        Self {
            id,
            accepted: AtomicUsize::new(0),
            timed_out: AtomicBool::new(false),
        }
    }

    /// Instances are numbered 1, 2, 3… in creation order.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the instance was dropped because a request ran past the
    /// request timeout. Requests it was serving fail with 504, not 500.
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }
}

/// The host data travelling with one request through the `ProxyHandler`.
///
/// The handler decides which instance serves a request; this is how the
/// server learns which one did (for logs and the debug headers).
#[derive(Debug, Default)]
pub struct RequestTicket {
    served_by: OnceLock<(Arc<InstanceInfo>, usize)>,
}

impl RequestTicket {
    /// The instance that accepted the request, if one did yet.
    pub fn instance(&self) -> Option<&Arc<InstanceInfo>> {
        self.served_by.get().map(|(instance, _)| instance)
    }

    /// This request's position among the requests its instance accepted,
    /// from 1.
    pub fn nth_on_instance(&self) -> Option<usize> {
        self.served_by.get().map(|&(_, nth)| nth)
    }
}

/// The `ProxyHandler`'s [`HandlerState`]: creates instances of one
/// component.
pub struct Instances {
    component: LoadedComponent,
    config: Arc<EffectiveConfig>,
    next_id: AtomicU64,
    /// Set once the server stopped: instances dropped from then on are
    /// being torn down with the runtime, not failing.
    closing: Arc<AtomicBool>,
}

impl Instances {
    pub(crate) fn new(component: LoadedComponent, config: Arc<EffectiveConfig>) -> Self {
        Self {
            component,
            config,
            next_id: AtomicU64::new(1),
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

    fn instantiate(
        &self,
    ) -> impl Future<Output = wasmtime::Result<Instance<Host, InstanceExpiry, InstanceWorker>>> + Send
    {
        let info = Arc::new(InstanceInfo::new(
            self.next_id.fetch_add(1, Ordering::Relaxed),
        ));
        let mut store = host::new_store(self.component.engine(), info.id, &self.config);
        async move {
            let instantiation = self.component.pre().instantiate_async(&mut store);
            // Instantiation runs guest code (start functions, static
            // initialisers) that could loop forever and stall every request
            // queued for this instance, so it is bounded when requests are.
            // It is the host's cost rather than one request's, hence the
            // floor: a 100us request timeout must not turn into 503s.
            let proxy = match self.config.request_timeout {
                Some(limit) => match tokio::time::timeout(
                    limit.max(INSTANTIATION_TIMEOUT_FLOOR),
                    instantiation,
                )
                .await
                {
                    Ok(proxy) => proxy,
                    Err(_) => Err(wasmtime::format_err!(
                        "instantiation took longer than {}",
                        HumanDuration(limit.max(INSTANTIATION_TIMEOUT_FLOOR))
                    )),
                },
                None => instantiation.await,
            };
            let proxy = proxy.inspect_err(|error| {
                eprintln!(
                    "host-runner: instance {} could not be created: {error:#}",
                    info.id
                );
            })?;
            Ok(Instance {
                store,
                proxy,
                view: Host::http,
                expiration: InstanceExpiry::new(info.clone(), &self.config),
                state: InstanceWorker {
                    info,
                    config: self.config.clone(),
                    closing: self.closing.clone(),
                },
            })
        }
    }
}

/// The `ProxyHandler`'s [`WorkerState`] for one instance: applies the reuse
/// limits and hands out request numbers.
pub struct InstanceWorker {
    info: Arc<InstanceInfo>,
    config: Arc<EffectiveConfig>,
    closing: Arc<AtomicBool>,
}

impl WorkerState for InstanceWorker {
    type StoreData = Host;
    type RequestData = Arc<RequestTicket>;

    fn should_accept_request(&self, concurrent_count: usize, total_count: usize) -> ShouldAccept {
        if total_count >= self.config.max_instance_reuse_count {
            ShouldAccept::Never
        } else if concurrent_count >= self.config.max_instance_concurrent_reuse_count {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, Host>,
        ticket: Arc<RequestTicket>,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        let nth = self.info.accepted.fetch_add(1, Ordering::Relaxed) + 1;
        // A ticket is handed to the handler once and accepted once, so the
        // slot is always empty here; a second `set` would be ignored anyway.
        let _ = ticket.served_by.set((self.info.clone(), nth));
        match self.config.request_timeout {
            Some(limit) => Box::pin(tokio::time::sleep(limit)),
            None => Box::pin(std::future::pending()),
        }
    }

    fn drop(&self, store: Store<Host>, result: wasmtime::Result<()>) {
        // When the runtime shuts down it drops the workers' tasks, which
        // reports an error ("worker panicked") that is not one.
        if let Err(error) = result
            && !self.closing.load(Ordering::Relaxed)
        {
            let id = self.info.id;
            if self.info.timed_out() {
                eprintln!(
                    "host-runner: instance {id} dropped: guest code ran past the request timeout{}",
                    self.config
                        .request_timeout
                        .map(|t| format!(" ({})", HumanDuration(t)))
                        .unwrap_or_default()
                );
            } else {
                eprintln!("host-runner: instance {id} dropped after a failure: {error:#}");
            }
        }
        drop(store);
    }
}

/// The `ProxyHandler`'s [`WorkerExpiration`] for one instance: polled from
/// outside the store's event loop, so it fires even while guest code is
/// stuck in a busy loop or a blocking host call.
pub struct InstanceExpiry {
    info: Arc<InstanceInfo>,
    request_timeout: Option<Duration>,
    idle_timeout: Duration,
    /// The worker status the timer is armed for; re-armed when it changes.
    armed_for: Option<(WorkerStatus, Instant)>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl InstanceExpiry {
    fn new(info: Arc<InstanceInfo>, config: &EffectiveConfig) -> Self {
        Self {
            info,
            request_timeout: config.request_timeout,
            idle_timeout: config.idle_instance_timeout,
            armed_for: None,
            timer: None,
        }
    }
}

impl WorkerExpiration for InstanceExpiry {
    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let this = self.get_mut();
        let limit = match status {
            WorkerStatus::Idle => Some(this.idle_timeout),
            // `start` is when the most recent outstanding request was
            // accepted: once it is past the timeout, every request on the
            // instance is, and the instance can go. Post-response work gets
            // the same allowance, so it cannot pin an instance forever.
            WorkerStatus::Requests | WorkerStatus::PostReturn => this.request_timeout,
        };
        // No limit: the worker polls again whenever its state changes, so
        // there is nothing to wake up for.
        let Some(deadline) = limit.and_then(|limit| start.checked_add(limit)) else {
            this.armed_for = None;
            return Poll::Pending;
        };
        if this.armed_for != Some((status, start)) {
            let deadline = tokio::time::Instant::from_std(deadline);
            match &mut this.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            this.armed_for = Some((status, start));
        }
        let Some(timer) = &mut this.timer else {
            return Poll::Pending;
        };
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if status != WorkerStatus::Idle {
            this.info.timed_out.store(true, Ordering::Relaxed);
        }
        Poll::Ready(())
    }
}
