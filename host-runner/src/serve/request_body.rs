//! The client's request body as the guest reads it: given up on when the
//! client stops sending it for `--request-body-idle-timeout`, and let go of
//! by the server as soon as the request has failed.
//!
//! Letting go is what closes the connection on time. hyper keeps reading a
//! request body for as long as something holds its receiving end, and the
//! guest's store does until its instance is dropped: a request that timed
//! out with its body stalled had its 504 written at the timeout but its
//! connection kept open until the instance went, a timeout later. The
//! server keeps a [`BodyHandle`] and drops the body itself.
//!
//! The idle timer runs only while the guest waits for the next bytes: a
//! guest that reads slowly, or not at all, is not the client's fault. This
//! module does not decide the status (the request handler answers 408) and
//! does not bound the body's size (`LimitedBody` does).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::WasiBody;

/// The body, shared by the guest's reader and the server's handle; `None`
/// once the server let it go or the client stalled.
type Shared = Arc<Mutex<Option<WasiBody>>>;

/// The server's hold on a request body it handed to the guest.
pub(super) struct BodyHandle {
    body: Shared,
    stalled: Arc<AtomicBool>,
}

impl BodyHandle {
    /// Drops the body wherever it is: hyper then stops reading it and, when
    /// the client had not finished sending it, closes the connection after
    /// the response.
    pub(super) fn let_go(&self) {
        drop(lock(&self.body).take());
    }

    /// The client sent nothing for the idle timeout while the guest waited.
    pub(super) fn stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }
}

/// The body the guest reads.
pub(super) struct RequestBody {
    body: Shared,
    stalled: Arc<AtomicBool>,
    idle_timeout: Option<Duration>,
    /// Armed when the guest starts waiting, disarmed when bytes come.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl RequestBody {
    /// `body`, given up on after `idle_timeout` without bytes (never with
    /// `None`), and the server's handle on it.
    pub(super) fn new(body: WasiBody, idle_timeout: Option<Duration>) -> (Self, BodyHandle) {
        let shared = Arc::new(Mutex::new(Some(body)));
        let stalled = Arc::new(AtomicBool::new(false));
        let handle = BodyHandle {
            body: shared.clone(),
            stalled: stalled.clone(),
        };
        let body = Self {
            body: shared,
            stalled,
            idle_timeout,
            timer: None,
            armed: false,
        };
        (body, handle)
    }
}

fn lock(body: &Shared) -> MutexGuard<'_, Option<WasiBody>> {
    // A panic while polling the body leaves it as usable as it was.
    body.lock().unwrap_or_else(|e| e.into_inner())
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let mut body = lock(&this.body);
        let Some(inner) = body.as_mut() else {
            // The request is over for the server; the guest learns that
            // its body will not end.
            return Poll::Ready(Some(Err(if this.stalled.load(Ordering::Relaxed) {
                wasmtime_wasi_http::Error::ConnectionReadTimeout
            } else {
                wasmtime_wasi_http::Error::ConnectionTerminated
            })));
        };
        if let Poll::Ready(frame) = Pin::new(inner).poll_frame(cx) {
            this.armed = false;
            return Poll::Ready(frame);
        }
        let Some(idle) = this.idle_timeout else {
            return Poll::Pending;
        };
        let deadline = Instant::now() + idle;
        match (&mut this.timer, this.armed) {
            (Some(_), true) => {}
            (Some(timer), false) => timer.as_mut().reset(deadline),
            (None, _) => this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        this.armed = true;
        let Some(timer) = &mut this.timer else {
            return Poll::Pending;
        };
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.stalled.store(true, Ordering::Relaxed);
        drop(body.take());
        Poll::Ready(Some(Err(wasmtime_wasi_http::Error::ConnectionReadTimeout)))
    }

    fn is_end_stream(&self) -> bool {
        lock(&self.body)
            .as_ref()
            .is_some_and(|body| body.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        lock(&self.body)
            .as_ref()
            .map_or_else(SizeHint::default, |body| body.size_hint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body whose bytes never come, like a client that stopped sending.
    struct Silent;

    impl Body for Silent {
        type Data = Bytes;
        type Error = wasmtime_wasi_http::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_body_that_stops_arriving_fails_after_the_idle_timeout() {
        let idle = Duration::from_millis(50);
        let (mut body, handle) = RequestBody::new(Silent.boxed_unsync(), Some(idle));
        let started = Instant::now();
        let frame = body.frame().await;
        assert!(matches!(
            frame,
            Some(Err(wasmtime_wasi_http::Error::ConnectionReadTimeout))
        ));
        // Not before the timeout: a correctness bound, not a speed claim.
        assert!(started.elapsed() >= idle);
        assert!(handle.stalled());
    }

    #[tokio::test]
    async fn a_body_let_go_fails_for_the_guest_and_is_not_stalled() {
        let (mut body, handle) = RequestBody::new(Silent.boxed_unsync(), None);
        handle.let_go();
        assert!(matches!(
            body.frame().await,
            Some(Err(wasmtime_wasi_http::Error::ConnectionTerminated))
        ));
        assert!(!handle.stalled());
    }
}
