//! The `ProxyHandler`'s [`WorkerState`] for one instance: which requests
//! it accepts (the reuse limits), what each accepted request is told (its
//! instance, its number, its output labels), its per-request timer inside
//! the event loop, and why the instance was dropped (metrics and the log
//! line).
//!
//! This module does not create instances and does not watch them from
//! outside the event loop (the expiry does).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::handler::{ShouldAccept, WorkerState};

use super::config::EffectiveConfig;
use super::info::{EndCause, InstanceInfo};
use super::request::RequestTicket;
use super::slots::InstanceSlot;
use crate::errors::one_line;
use crate::host::Host;
use crate::metrics::{Metrics, RetireReason};
use crate::units::HumanDuration;

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
    pub(super) fn new(
        info: Arc<InstanceInfo>,
        config: Arc<EffectiveConfig>,
        metrics: Arc<Metrics>,
        closing: Arc<AtomicBool>,
        slot: InstanceSlot,
    ) -> Self {
        Self {
            info,
            config,
            metrics,
            closing,
            _slot: slot,
        }
    }

    /// Why the instance is being dropped, from how the worker ended and
    /// what this instance saw happen.
    fn retire_reason(&self, result: &wasmtime::Result<()>) -> RetireReason {
        let reuse_used_up = self.info.accepted() >= self.config.max_instance_reuse_count;
        match (result, self.info.end_cause()) {
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
        let nth = self.info.accept();
        ticket.accepted(self.info.clone(), nth, store.data().request_labels());
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
            match timeout {
                Some(limit) => tokio::select! {
                    () = tokio::time::sleep(limit) => info.ending(EndCause::Timeout),
                    () = abandoned => info.ending(EndCause::Lingering),
                },
                // No request timeout (the default): no timer to race, and
                // no `select!` to poll on every request.
                None => {
                    abandoned.await;
                    info.ending(EndCause::Lingering);
                }
            }
        })
    }

    fn drop(&self, store: Store<Host>, result: wasmtime::Result<()>) {
        self.info.dropped(result.is_err());
        // When the runtime shuts down it drops the workers' tasks, which
        // reports an error ("worker panicked") that is not one.
        if self.closing.load(Ordering::Relaxed) {
            self.metrics.instance_discarded();
            return;
        }
        let id = self.info.id();
        let reason = self.retire_reason(&result);
        let requests = self.info.accepted();
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
