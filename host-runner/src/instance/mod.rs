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
//! It also keeps the instance-side books: `--max-instances` (checked before
//! each instantiation, whichever allocator is in use), the instance metrics,
//! and why each instance was dropped. `ProxyHandler` only reports whether a
//! worker ended in error, so each instance records the first of its timers
//! that ends it (a request expired, the idle timer fired, guest work
//! outlived its requests); an instance that ends with none recorded either
//! trapped, used up its reuse count, or its guest stopped taking requests
//! itself (backpressure: its policy or `retire()`).
//!
//! Work that outlives its requests gets a grace rather than a life: once
//! every response of an instance is over (each [`RequestTicket`] says when
//! its own is), the instance has the idle timeout (or the request timeout)
//! to finish what its guest left running, and a request whose client left
//! has the same grace to finish; then the instance is dropped. Without
//! that, a task that never ends would pin its instance forever.
//!
//! This module does not speak HTTP (`serve/` turns outcomes into
//! responses) and does not decide what an instance can import (`host/`
//! does).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::task::AtomicWaker;
use tokio::sync::watch;
use tokio::time::Sleep;
use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus,
};

pub mod config;
pub(crate) mod request;
mod slots;
pub(crate) mod store;

use crate::component::LoadedComponent;
use crate::errors::one_line;
use crate::host::{Host, HostServices};
use crate::metrics::{Metrics, RetireReason};
use crate::units::HumanDuration;
use config::EffectiveConfig;
use request::RequestTicket;
pub(crate) use slots::InstanceLimitError;
use slots::{InstanceSlot, Slots};

/// The least time instantiation is given when requests have a timeout.
const INSTANTIATION_TIMEOUT_FLOOR: Duration = Duration::from_secs(1);

/// Identity and counters of one component instance, shared with the
/// requests it serves.
#[derive(Debug)]
pub struct InstanceInfo {
    id: u64,
    accepted: AtomicUsize,
    /// Why the instance is ending, once something decided it should: set
    /// once, by whichever of its timers fires first.
    end: OnceLock<EndCause>,
    /// Requests accepted whose response is not over yet (sent, cut off, or
    /// abandoned by the client).
    open_responses: AtomicUsize,
    /// When the last open response ended (the instance's creation before
    /// any did): the grace for lingering work counts from there.
    last_response_over: Mutex<Instant>,
    /// The instance's expiry, waiting for `open_responses` to reach zero.
    responses_over: AtomicWaker,
    /// Set when the instance is dropped: whether its worker ended in error.
    ended: watch::Sender<Option<bool>>,
    /// Told when the instance turns quiet (no response open) and busy again,
    /// so a request on another thread may wait for its slot.
    slots: Arc<Slots>,
}

impl InstanceInfo {
    fn new(id: u64, slots: Arc<Slots>) -> Self {
        Self {
            id,
            accepted: AtomicUsize::new(0),
            end: OnceLock::new(),
            open_responses: AtomicUsize::new(0),
            last_response_over: Mutex::new(Instant::now()),
            responses_over: AtomicWaker::new(),
            ended: watch::Sender::new(None),
            slots,
        }
    }

    /// Whether the instance ends in error (a trap) within `wait`.
    ///
    /// A request whose instance traps may be failed before the instance is
    /// reported dropped, and for p2 its error does not say why (the handler
    /// only reports that no response was set); the instance's end, which
    /// follows at once, does.
    pub(crate) async fn failed_within(&self, wait: Duration) -> bool {
        let mut ended = self.ended.subscribe();
        matches!(
            tokio::time::timeout(wait, ended.wait_for(Option::is_some)).await,
            Ok(Ok(end)) if *end == Some(true)
        )
    }

    pub(super) fn response_opened(&self) {
        if self.open_responses.fetch_add(1, Ordering::AcqRel) == 0 {
            self.slots.quiet(self.id, false);
        }
    }

    pub(super) fn response_over(&self) {
        if self.open_responses.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self
                .last_response_over
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Instant::now();
            self.responses_over.wake();
            self.slots.quiet(self.id, true);
        }
    }

    /// When the last of the instance's responses ended, or `None` while some
    /// are still open, in which case `cx` is woken once none is.
    fn quiet_since(&self, cx: &Context<'_>) -> Option<Instant> {
        self.responses_over.register(cx.waker());
        (self.open_responses.load(Ordering::Acquire) == 0).then(|| {
            *self
                .last_response_over
                .lock()
                .unwrap_or_else(|e| e.into_inner())
        })
    }

    /// Whether the instance was dropped after a failure (a trap, a
    /// timeout): its requests' bodies end there, unfinished.
    pub(crate) fn failed(&self) -> bool {
        *self.ended.borrow() == Some(true)
    }

    /// Instances are numbered 1, 2, 3… in creation order.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the instance is ending because a request ran past the
    /// request timeout. Requests it was serving fail with 504, not 500.
    pub fn timed_out(&self) -> bool {
        self.end.get() == Some(&EndCause::Timeout)
    }

    /// Records why the instance is ending; a later cause does not replace
    /// the first.
    fn ending(&self, cause: EndCause) {
        let _ = self.end.set(cause);
    }
}

/// What ended an instance, when one of its timers did; an instance that
/// ends without any (its reuse count used up, its guest holding
/// backpressure, a trap) is told apart when its worker ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EndCause {
    /// A request ran past the request timeout, seen from inside the event
    /// loop (the request's own timer) or from outside it (a busy loop or a
    /// blocking call).
    Timeout,
    /// No request came within the idle timeout.
    Idle,
    /// Guest work outlived its requests past the grace: work left running
    /// after the last response, or a request whose client left and which
    /// never finished.
    Lingering,
}

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
            info.id,
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
        let proxy = proxy.inspect_err(|error| {
            self.metrics.instantiation_failed(started.elapsed());
            tracing::warn!(
                instance = info.id,
                "instance could not be created: {}",
                one_line(error)
            );
        })?;
        self.metrics.instance_created(started.elapsed());
        tracing::debug!(instance = info.id, "instance created");
        Ok(Instance {
            store,
            proxy,
            view: Host::http,
            expiration: InstanceExpiry::new(info.clone(), &self.config, self.slots.clone()),
            state: InstanceWorker {
                info,
                config: self.config.clone(),
                metrics: self.metrics.clone(),
                closing: self.closing.clone(),
                _slot: slot,
            },
        })
    }
}

/// The `ProxyHandler`'s [`WorkerState`] for one instance: applies the reuse
/// limits and hands out request numbers.
pub struct InstanceWorker {
    info: Arc<InstanceInfo>,
    config: Arc<EffectiveConfig>,
    metrics: Arc<Metrics>,
    closing: Arc<AtomicBool>,
    /// Held for as long as the worker (and so the instance) lives.
    _slot: InstanceSlot,
}

impl InstanceWorker {
    /// Why the instance is being dropped, from how the worker ended and
    /// what this instance saw happen.
    fn retire_reason(&self, result: &wasmtime::Result<()>) -> RetireReason {
        let reuse_used_up =
            self.info.accepted.load(Ordering::Relaxed) >= self.config.max_instance_reuse_count;
        match (result, self.info.end.get()) {
            (_, Some(EndCause::Timeout)) => RetireReason::Timeout,
            (_, Some(EndCause::Lingering)) => RetireReason::Lingering,
            // An idle instance is dropped without an error, so an error
            // after its idle timer fired is the guest's own.
            (Err(_), _) => RetireReason::Trap,
            (Ok(()), Some(EndCause::Idle)) => RetireReason::Idle,
            (Ok(()), None) if reuse_used_up => RetireReason::ReuseLimit,
            // Still allowed more requests, not idle long, no error: the
            // guest itself stopped taking requests (backpressure held by its
            // reuse policy, by `retire()` or by the handler).
            (Ok(()), None) => RetireReason::Guest,
        }
    }
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
        store: StoreContextMut<'_, Host>,
        ticket: Arc<RequestTicket>,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        let nth = self.info.accepted.fetch_add(1, Ordering::Relaxed) + 1;
        // A ticket is handed to the handler once and accepted once, so the
        // slots are always empty here; a second `set` would be ignored anyway.
        self.info.response_opened();
        let _ = ticket.served_by.set((self.info.clone(), nth));
        if ticket.over.load(Ordering::Acquire) {
            // The client left while the request was queued: nobody will
            // finish it again.
            self.info.response_over();
        }
        let labels = store.data().request_labels();
        labels.request_started(ticket.id.clone());
        let _ = ticket.labels.set(labels.clone());
        let info = self.info.clone();
        let timeout = self.config.request_timeout;
        let grace = lingering_grace(&self.config);
        // The handler only lets this finish when the request has not
        // produced a response yet: finishing means it expired. Without a
        // timeout, a request whose client left still expires once it has
        // had the grace to finish, so that it cannot pin its instance.
        Box::pin(async move {
            let abandoned = async {
                ticket.over().await;
                tokio::time::sleep(grace).await;
            };
            let expired = async {
                match timeout {
                    Some(limit) => tokio::time::sleep(limit).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = expired => info.ending(EndCause::Timeout),
                () = abandoned => info.ending(EndCause::Lingering),
            }
        })
    }

    fn drop(&self, store: Store<Host>, result: wasmtime::Result<()>) {
        self.info.ended.send_replace(Some(result.is_err()));
        // When the runtime shuts down it drops the workers' tasks, which
        // reports an error ("worker panicked") that is not one.
        if self.closing.load(Ordering::Relaxed) {
            self.metrics.instance_discarded();
            return;
        }
        let id = self.info.id;
        let reason = self.retire_reason(&result);
        let requests = self.info.accepted.load(Ordering::Relaxed);
        self.metrics.instance_retired(reason, requests);
        let in_flight = store.data().request_labels().in_flight().join(",");
        match (reason, result) {
            (RetireReason::Timeout, Err(_)) => tracing::warn!(
                instance = id,
                request_id = in_flight,
                "instance dropped: guest code ran past the request timeout{}",
                self.config
                    .request_timeout
                    .map(|t| format!(" ({})", HumanDuration(t)))
                    .unwrap_or_default()
            ),
            (RetireReason::Lingering, _) => tracing::warn!(
                instance = id,
                "instance dropped: guest work outlived its requests by more than {} ({}), after {requests} request(s)",
                HumanDuration(lingering_grace(&self.config)),
                match self.config.request_timeout {
                    Some(_) => "--request-timeout",
                    None => "--idle-instance-timeout",
                }
            ),
            (_, Err(error)) => tracing::warn!(
                instance = id,
                request_id = in_flight,
                "instance dropped after a failure: {}",
                one_line(&error)
            ),
            (reason, Ok(())) => tracing::debug!(
                instance = id,
                "instance retired ({}) after {requests} request(s)",
                reason.label()
            ),
        }
    }
}

/// How long guest work may outlive its requests: post-response work after
/// the last response is over, or a request after its client left. The
/// request timeout when there is one, otherwise the idle timeout: long
/// enough for a cache update or a log line, short enough that an instance
/// whose work never ends is dropped about as soon as an idle one.
fn lingering_grace(config: &EffectiveConfig) -> Duration {
    config
        .request_timeout
        .unwrap_or(config.idle_instance_timeout)
}

/// The `ProxyHandler`'s [`WorkerExpiration`] for one instance: polled from
/// outside the store's event loop, so it fires even while guest code is
/// stuck in a busy loop or a blocking host call.
pub struct InstanceExpiry {
    info: Arc<InstanceInfo>,
    /// Where an idle instance hears that another thread needs its slot.
    slots: Arc<Slots>,
    request_timeout: Option<Duration>,
    idle_timeout: Duration,
    /// The deadline the timer is armed for; re-armed when it changes.
    armed_for: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl InstanceExpiry {
    fn new(info: Arc<InstanceInfo>, config: &EffectiveConfig, slots: Arc<Slots>) -> Self {
        Self {
            info,
            slots,
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
        if status != WorkerStatus::Idle {
            this.slots.not_idle(this.info.id);
        } else if this.slots.step_down(this.info.id, cx.waker()) {
            // Its slot serves a request on another thread instead.
            this.info.ending(EndCause::Idle);
            return Poll::Ready(());
        }
        let deadline = match (status, this.request_timeout) {
            (WorkerStatus::Idle, _) => start.checked_add(this.idle_timeout),
            // `start` is when the most recent outstanding request was
            // accepted: once it is past the timeout, every request on the
            // instance is, and the instance can go. Post-response work
            // (a body still streaming included) gets the same allowance.
            (WorkerStatus::Requests | WorkerStatus::PostReturn, Some(limit)) => {
                start.checked_add(limit)
            }
            // No timeout: requests and the bodies of their responses may
            // take as long as their clients wait for them, but work left
            // once every response is over gets the idle timeout, so that it
            // cannot pin the instance forever.
            (WorkerStatus::Requests, None) => None,
            (WorkerStatus::PostReturn, None) => this
                .info
                .quiet_since(cx)
                .and_then(|since| since.max(start).checked_add(this.idle_timeout)),
        };
        // No deadline: the worker polls again whenever its state changes
        // (and `quiet_since` wakes it when its last response ends), so
        // there is nothing to wake up for.
        let Some(deadline) = deadline else {
            this.armed_for = None;
            return Poll::Pending;
        };
        if this.armed_for != Some(deadline) {
            let at = tokio::time::Instant::from_std(deadline);
            match &mut this.timer {
                Some(timer) => timer.as_mut().reset(at),
                None => this.timer = Some(Box::pin(tokio::time::sleep_until(at))),
            }
            this.armed_for = Some(deadline);
        }
        let Some(timer) = &mut this.timer else {
            return Poll::Pending;
        };
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let info = &this.info;
        info.ending(match status {
            WorkerStatus::Idle => EndCause::Idle,
            // Every response is over: nothing but the work itself is cut.
            WorkerStatus::PostReturn if info.open_responses.load(Ordering::Acquire) == 0 => {
                EndCause::Lingering
            }
            _ => EndCause::Timeout,
        });
        Poll::Ready(())
    }
}
