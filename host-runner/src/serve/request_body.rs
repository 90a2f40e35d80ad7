//! The client's request body as the guest reads it: failed once it grows
//! past `--max-request-body-size`, given up on when the client stops
//! sending it for `--request-body-idle-timeout`, and let go of by the
//! server as soon as the request has failed. The server learns through its
//! [`BodyHandle`] which of these happened.
//!
//! Letting go is what closes the connection on time. hyper keeps reading a
//! request body for as long as something holds its receiving end, and the
//! guest's store does until its instance is dropped: a request that timed
//! out with its body stalled had its 504 written at the timeout but its
//! connection kept open until the instance went, a timeout later. So the
//! guest reads the body through [`Held`], which the server can empty.
//!
//! The idle timer runs only while the guest waits for the next bytes: a
//! guest that reads slowly, or not at all, is not the client's fault. This
//! module does not decide the status (the request handler answers 413 or
//! 408).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::{Error, WasiBody};

use crate::watched::{FrameResult, Watch, Watched};

/// What the guest's reader and the server's handle share. Generic over
/// the body, so that hyper's body is held as it is, not boxed once more
/// to map its error (every request has one).
struct Shared<B> {
    /// The body; `None` once the server let it go or the client stalled.
    body: Mutex<Option<B>>,
    stalled: AtomicBool,
    too_large: AtomicBool,
}

impl<B> Shared<B> {
    fn body(&self) -> MutexGuard<'_, Option<B>> {
        // A panic while polling the body leaves it as usable as it was.
        self.body.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The server's hold on a request body it handed to the guest.
pub(super) struct BodyHandle<B>(Arc<Shared<B>>);

impl<B> BodyHandle<B> {
    /// Drops the body wherever it is: hyper then stops reading it and, when
    /// the client had not finished sending it, closes the connection after
    /// the response.
    pub(super) fn let_go(&self) {
        drop(self.0.body().take());
    }

    /// The client sent nothing for the idle timeout while the guest waited.
    pub(super) fn stalled(&self) -> bool {
        self.0.stalled.load(Ordering::Relaxed)
    }

    /// The body grew past the size limit.
    pub(super) fn too_large(&self) -> bool {
        self.0.too_large.load(Ordering::Relaxed)
    }
}

/// `body` as the guest reads it: failed past `limit` bytes, given up on
/// after `idle_timeout` without bytes (never with `None`); and the
/// server's handle on it.
pub(super) fn request_body<B>(
    body: B,
    limit: u64,
    idle_timeout: Option<Duration>,
) -> (WasiBody, BodyHandle<B>)
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    Error: From<B::Error>,
{
    let shared = Arc::new(Shared {
        body: Mutex::new(Some(body)),
        stalled: AtomicBool::new(false),
        too_large: AtomicBool::new(false),
    });
    let rules = Rules {
        shared: shared.clone(),
        limit,
        seen: 0,
        idle_timeout,
        timer: None,
        armed: false,
    };
    let body = Watched::new(Held(shared.clone()), rules).boxed_unsync();
    (body, BodyHandle(shared))
}

/// The request body while the server holds it: a body that another owner
/// can take away mid-read, so it cannot be a [`Watch`] on the body itself.
struct Held<B>(Arc<Shared<B>>);

impl<B> Body for Held<B>
where
    B: Body<Data = Bytes> + Unpin,
    Error: From<B::Error>,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<FrameResult>> {
        let mut body = self.0.body();
        match body.as_mut() {
            Some(inner) => Pin::new(inner)
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(Error::from))),
            // The request is over for the server; the guest learns that
            // its body will not end.
            None if self.0.stalled.load(Ordering::Relaxed) => {
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
            None => Poll::Ready(Some(Err(Error::ConnectionTerminated))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .body()
            .as_ref()
            .is_some_and(|body| body.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        (self.0.body().as_ref()).map_or_else(SizeHint::default, |body| body.size_hint())
    }
}

/// The size limit and the idle timer, watching the body go by.
struct Rules<B> {
    shared: Arc<Shared<B>>,
    limit: u64,
    /// Data bytes read so far.
    seen: u64,
    idle_timeout: Option<Duration>,
    /// Armed when the guest starts waiting, disarmed when bytes come.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl<B> Watch for Rules<B> {
    fn frame(&mut self, frame: &Frame<Bytes>) -> Result<(), Error> {
        self.armed = false;
        if let Some(data) = frame.data_ref() {
            self.seen = self.seen.saturating_add(data.len() as u64);
            if self.seen > self.limit {
                self.shared.too_large.store(true, Ordering::Relaxed);
                return Err(Error::HttpRequestBodySize(Some(self.seen)));
            }
        }
        Ok(())
    }

    fn error(&mut self, _: &Error) {
        self.armed = false;
    }

    fn end(&mut self) -> Result<(), Error> {
        self.armed = false;
        Ok(())
    }

    fn pending(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        let Some(idle) = self.idle_timeout else {
            return Ok(());
        };
        let deadline = Instant::now() + idle;
        match (&mut self.timer, self.armed) {
            (Some(_), true) => {}
            (Some(timer), false) => timer.as_mut().reset(deadline),
            (None, _) => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        self.armed = true;
        let Some(timer) = &mut self.timer else {
            return Ok(());
        };
        if timer.as_mut().poll(cx).is_pending() {
            return Ok(());
        }
        self.shared.stalled.store(true, Ordering::Relaxed);
        drop(self.shared.body().take());
        Err(Error::ConnectionReadTimeout)
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
        let (mut body, handle) = request_body(Silent.boxed_unsync(), u64::MAX, Some(idle));
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
        let (mut body, handle) = request_body(Silent.boxed_unsync(), u64::MAX, None);
        handle.let_go();
        assert!(matches!(
            body.frame().await,
            Some(Err(wasmtime_wasi_http::Error::ConnectionTerminated))
        ));
        assert!(!handle.stalled());
    }

    #[tokio::test]
    async fn a_body_past_the_limit_fails_and_is_too_large_not_stalled() {
        let ten: WasiBody = http_body_util::Full::new(Bytes::from_static(b"0123456789"))
            .map_err(|never| match never {})
            .boxed_unsync();
        let (mut body, handle) = request_body(ten, 4, None);
        assert!(matches!(
            body.frame().await,
            Some(Err(wasmtime_wasi_http::Error::HttpRequestBodySize(Some(
                10
            ))))
        ));
        assert!(handle.too_large() && !handle.stalled());
        assert!(body.frame().await.is_none(), "a body over the limit ends");
    }
}
