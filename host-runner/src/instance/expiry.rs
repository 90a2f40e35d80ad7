//! The `ProxyHandler`'s [`WorkerExpiration`] for one instance: when it is
//! given up on, checked from outside the store's event loop so that it
//! holds while guest code is stuck in a busy loop or a blocking host call.
//! An idle instance goes after `--idle-instance-timeout` (or at once when
//! another thread needs its `--max-instances` slot), a busy one once its
//! most recent request is past `--request-timeout`, and one whose work
//! outlives its responses once that work had the same allowance (the idle
//! timeout from the last response, without a request timeout).
//!
//! This module records why the instance ends (in its [`InstanceInfo`]);
//! it does not count or log it (the worker does).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::time::Sleep;
use wasmtime_wasi_http::handler::{WorkerExpiration, WorkerStatus};

use super::config::EffectiveConfig;
use super::info::{EndCause, InstanceInfo};
use super::slots::Slots;

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
    pub(super) fn new(
        info: Arc<InstanceInfo>,
        config: &EffectiveConfig,
        slots: Arc<Slots>,
    ) -> Self {
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
            this.slots.not_idle(this.info.id());
        } else if this.slots.step_down(this.info.id(), cx.waker()) {
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
            WorkerStatus::PostReturn if !info.responses_open() => EndCause::Lingering,
            _ => EndCause::Timeout,
        });
        Poll::Ready(())
    }
}
