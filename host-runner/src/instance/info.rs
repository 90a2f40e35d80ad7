//! What the server and an instance's requests know of the instance
//! ([`InstanceInfo`]): its id, how many requests it accepted, which of its
//! responses are still open, and how it ended ([`EndCause`] once one of its
//! timers decides, then whether it was dropped in error).
//!
//! This module keeps the books; it decides nothing (the worker and the
//! expiry do) and holds no timers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Context;
use std::time::{Duration, Instant};

use futures::task::AtomicWaker;
use tokio::sync::watch;

use super::slots::Slots;

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
    pub(super) fn new(id: u64, slots: Arc<Slots>) -> Self {
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
    pub(super) fn quiet_since(&self, cx: &Context<'_>) -> Option<Instant> {
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
    pub(super) fn ending(&self, cause: EndCause) {
        let _ = self.end.set(cause);
    }

    /// Why the instance is ending, if one of its timers decided it.
    pub(super) fn end_cause(&self) -> Option<EndCause> {
        self.end.get().copied()
    }

    /// Counts a request accepted; its position among them, from 1.
    pub(super) fn accept(&self) -> usize {
        self.accepted.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Requests accepted so far.
    pub(super) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Whether some accepted request's response is not over yet.
    pub(super) fn responses_open(&self) -> bool {
        self.open_responses.load(Ordering::Acquire) != 0
    }

    /// The instance was dropped, after a failure or not.
    pub(super) fn dropped(&self, failed: bool) {
        self.ended.send_replace(Some(failed));
    }
}

/// What ended an instance, when one of its timers did; an instance that
/// ends without any (its reuse count used up, its guest holding
/// backpressure, a trap) is told apart when its worker ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum EndCause {
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
