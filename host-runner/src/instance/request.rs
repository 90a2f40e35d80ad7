//! The ticket a request carries through the `ProxyHandler`
//! ([`RequestTicket`]), through which the server and the instance serving
//! the request learn about each other: the instance writes it once, when it
//! accepts the request; the server reads it, and says when the request is
//! over.
//!
//! This module decides nothing about responses (the server module does)
//! and does not give requests their ids (the server does).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Poll;

use futures::task::AtomicWaker;

use super::InstanceInfo;
use crate::host::guest_output::RequestLabels;

/// The host data travelling with one request through the `ProxyHandler`.
///
/// The handler decides which instance serves a request; this is how the
/// server learns which one did (for logs and the debug headers), and how the
/// instance learns the request's id (to label guest output).
#[derive(Debug)]
pub struct RequestTicket {
    id: Arc<str>,
    served_by: OnceLock<(Arc<InstanceInfo>, usize)>,
    /// The serving instance's output labels, which list this request until
    /// [`RequestTicket::finished`].
    labels: OnceLock<Arc<RequestLabels>>,
    /// [`RequestTicket::finished`] was called: the response is over, or
    /// the client went away.
    over: AtomicBool,
    /// Woken once `over` is set. One waker, not a `Notify`'s list of
    /// waiters: only the serving instance's request timer waits (and a
    /// waker costs less per request than a list behind a lock).
    gone: AtomicWaker,
}

impl RequestTicket {
    /// A ticket for the request with this id (`x-request-id`).
    pub fn new(id: Arc<str>) -> Self {
        Self {
            id,
            served_by: OnceLock::new(),
            labels: OnceLock::new(),
            over: AtomicBool::new(false),
            gone: AtomicWaker::new(),
        }
    }

    /// The request's id, as the logs and the guest see it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `instance` accepted the request, its `nth` from 1, and labels its
    /// guest output with `labels` from now on. A ticket is handed to the
    /// handler once and accepted once; a second call changes nothing.
    pub(super) fn accepted(
        &self,
        instance: Arc<InstanceInfo>,
        nth: usize,
        labels: &Arc<RequestLabels>,
    ) {
        instance.response_opened();
        let _ = self.served_by.set((instance.clone(), nth));
        if self.over.load(Ordering::Acquire) {
            // The client left while the request was queued: nobody will
            // finish it again.
            instance.response_over();
        }
        labels.request_started(self.id.clone());
        let _ = self.labels.set(labels.clone());
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
        self.gone.wake();
    }

    /// Resolves once the request is over; see [`RequestTicket::finished`].
    pub(super) async fn over(&self) {
        std::future::poll_fn(|cx| {
            if self.over.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            self.gone.register(cx.waker());
            // Checked again: a `finished` between the first check and the
            // registration woke no one.
            match self.over.load(Ordering::Acquire) {
                true => Poll::Ready(()),
                false => Poll::Pending,
            }
        })
        .await
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
