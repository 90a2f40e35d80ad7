//! What the server attaches to each request on its way to the guest: an id
//! ([`RequestIds`]), the ticket through which the server and the instance
//! serving the request learn about each other ([`RequestTicket`]), the
//! accounting that keeps it counted until its response
//! is sent ([`InFlight`]).
//!
//! This module decides nothing about responses: the server module turns a
//! body found too large into a 413 and an outcome into a status.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};
use tokio::sync::Notify;

use super::InstanceInfo;
use crate::host::guest_output::RequestLabels;
use crate::metrics::{Metrics, Outcome};

/// The header carrying a request's id, read from the client (or a proxy in
/// front) and set for the guest, whose SDK reads it too.
pub(crate) const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied id kept; longer (or non-printable) ones are
/// replaced, so a client cannot flood every log line.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The host data travelling with one request through the `ProxyHandler`.
///
/// The handler decides which instance serves a request; this is how the
/// server learns which one did (for logs and the debug headers), and how the
/// instance learns the request's id (to label guest output).
#[derive(Debug)]
pub struct RequestTicket {
    pub(super) id: Arc<str>,
    pub(super) served_by: OnceLock<(Arc<InstanceInfo>, usize)>,
    /// The serving instance's output labels, which list this request until
    /// [`RequestTicket::finished`].
    pub(super) labels: OnceLock<Arc<RequestLabels>>,
    /// [`RequestTicket::finished`] was called: the response is over, or
    /// the client went away.
    pub(super) over: AtomicBool,
    /// Notified once `over` is set.
    gone: Notify,
}

impl RequestTicket {
    /// A ticket for the request with this id (`x-request-id`).
    pub fn new(id: Arc<str>) -> Self {
        Self {
            id,
            served_by: OnceLock::new(),
            labels: OnceLock::new(),
            over: AtomicBool::new(false),
            gone: Notify::new(),
        }
    }

    /// The request's id, as the logs and the guest see it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The request is over (response sent, or the client went away): guest
    /// output is no longer labelled with it.
    pub fn finished(&self) {
        if self.over.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(labels) = self.labels.get() {
            labels.request_finished(&self.id);
        }
        if let Some((instance, _)) = self.served_by.get() {
            instance.response_over();
        }
        self.gone.notify_one();
    }

    /// Resolves once the request is over; see [`RequestTicket::finished`].
    pub(super) async fn over(&self) {
        if !self.over.load(Ordering::Acquire) {
            // `notify_one` keeps a permit, so a call between the check and
            // this wait is not missed.
            self.gone.notified().await;
        }
    }

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

/// Gives each request an id: the client's `x-request-id` when it is usable,
/// otherwise a fresh one that reveals nothing (not how many requests the
/// process served, not which instance serves it): a counter hashed with a
/// key drawn at random per process.
pub(crate) struct RequestIds {
    /// std's hasher keys are seeded randomly per process: enough to hide
    /// the counter from a client, without a dependency.
    key: RandomState,
    next: AtomicU64,
}

impl RequestIds {
    pub(crate) fn new() -> Self {
        Self {
            key: RandomState::new(),
            next: AtomicU64::new(1),
        }
    }

    /// The request's id, written back to `headers` when it was generated or
    /// replaced, so the guest sees the same id as the logs.
    pub(crate) fn assign(&self, headers: &mut HeaderMap) -> Arc<str> {
        if let Some(id) = headers
            .get(&REQUEST_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .filter(|id| !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN)
        {
            return id.into();
        }
        let id = format!(
            "{:016x}",
            self.key.hash_one(self.next.fetch_add(1, Ordering::Relaxed))
        );
        // Hex digits always make a valid header value.
        if let Ok(value) = HeaderValue::from_str(&id) {
            headers.insert(REQUEST_ID_HEADER, value);
        }
        id.into()
    }
}

/// A request counted in `reprise_requests_in_flight` from its arrival until
/// this is dropped (with its response body, once sent, or with the request
/// when the client goes away first), and in `reprise_requests_total` under
/// its outcome then.
pub(crate) struct InFlight {
    metrics: Arc<Metrics>,
    /// The serving thread it arrived on.
    thread: usize,
    ticket: Arc<RequestTicket>,
    started: Instant,
    outcome: Option<Outcome>,
}

impl InFlight {
    pub(crate) fn start(metrics: Arc<Metrics>, thread: usize, ticket: Arc<RequestTicket>) -> Self {
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
    pub(crate) fn ticket(&self) -> &RequestTicket {
        &self.ticket
    }

    /// Records how the request ended, once its head is decided. It is
    /// counted when its response is over: hyper drops the body before it
    /// flushes the last bytes, so a client that has its response can already
    /// see it in `/metrics`, and a body cut off on the way is not counted
    /// as a success first.
    pub(crate) fn answer(&mut self, outcome: Outcome) {
        self.outcome = Some(outcome);
    }

    /// The response's head went out, then its body failed: the request is
    /// counted under `outcome` instead, and as a response cut off.
    pub(crate) fn cut_off(&mut self, outcome: Outcome) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usable_client_id_is_kept_and_a_missing_one_is_generated_and_set() {
        let ids = RequestIds::new();
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("abc-123"));
        assert_eq!(&*ids.assign(&mut headers), "abc-123");

        let mut headers = HeaderMap::new();
        let first = ids.assign(&mut headers);
        assert_eq!(first.len(), 16);
        assert_eq!(headers[&REQUEST_ID_HEADER], &*first);
        assert_ne!(ids.assign(&mut HeaderMap::new()), first);

        let mut headers = HeaderMap::new();
        let long = "x".repeat(MAX_REQUEST_ID_LEN + 1);
        headers.insert(
            REQUEST_ID_HEADER,
            HeaderValue::from_str(&long).expect("ascii"),
        );
        let replaced = ids.assign(&mut headers);
        assert_ne!(&*replaced, long);
        assert_eq!(headers[&REQUEST_ID_HEADER], &*replaced);
    }
}
