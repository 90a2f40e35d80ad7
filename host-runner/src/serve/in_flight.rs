//! A request counted from its arrival until its response is over
//! ([`InFlight`]): in `reprise_requests_in_flight` while it lasts, in
//! `reprise_requests_total` under its outcome at its end, and its ticket
//! told that it is over.
//!
//! This module does not decide the outcome (the request handler does).

use std::sync::Arc;
use std::time::Instant;

use crate::instance::request::RequestTicket;
use crate::metrics::{Metrics, Outcome};

/// A request counted in `reprise_requests_in_flight` from its arrival until
/// this is dropped (with its response body, once sent, or with the request
/// when the client goes away first), and in `reprise_requests_total` under
/// its outcome then.
pub(super) struct InFlight {
    metrics: Arc<Metrics>,
    /// The serving thread it arrived on.
    thread: usize,
    ticket: Arc<RequestTicket>,
    started: Instant,
    outcome: Option<Outcome>,
}

impl InFlight {
    pub(super) fn start(metrics: Arc<Metrics>, thread: usize, ticket: Arc<RequestTicket>) -> Self {
        metrics.request_started(thread);
        Self {
            metrics,
            thread,
            ticket,
            started: Instant::now(),
            outcome: None,
        }
    }

    /// The request being counted.
    pub(super) fn ticket(&self) -> &RequestTicket {
        &self.ticket
    }

    /// Records how the request ended, once its head is decided. It is
    /// counted when its response is over: hyper drops the body before it
    /// flushes the last bytes, so a client that has its response can already
    /// see it in `/metrics`, and a body cut off on the way is not counted
    /// as a success first.
    pub(super) fn answer(&mut self, outcome: Outcome) {
        self.outcome = Some(outcome);
    }

    /// The response's head went out, then its body failed: the request is
    /// counted under `outcome` instead, and as a response cut off.
    pub(super) fn cut_off(&mut self, outcome: Outcome) {
        self.metrics.response_cut_off();
        self.outcome = Some(outcome);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.ticket.finished();
        self.metrics
            .request_done(self.thread, self.started.elapsed(), self.outcome);
    }
}
