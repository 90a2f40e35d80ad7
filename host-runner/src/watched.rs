//! The one way the host wraps an HTTP body: [`Watched`] passes a body's
//! frames on as they are and shows each step to a [`Watch`], which may
//! count, copy or time them, and may fail the body in their place.
//!
//! Every body the host holds to a rule (the request-size limit, the idle
//! timers, `--record`'s copies, the response checks, the in-flight
//! accounting) is a `Watch` on this wrapper, so a reader learns the frame
//! loop once. A hook that fails the body ends it: later polls get its end,
//! as after any error.
//!
//! This module decides nothing about what a body must be; the watches do.
//! A body that does more than watch its frames go by (one that holds
//! frames back, like the response read ahead of its head) is not one.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::Error;

/// What a body yields each step.
pub(crate) type FrameResult = Result<Frame<Bytes>, Error>;

/// What is told about a [`Watched`] body as it goes by. Every hook has a
/// default that changes nothing.
pub(crate) trait Watch {
    /// A frame passes; an error returned goes out in its place.
    fn frame(&mut self, _frame: &Frame<Bytes>) -> Result<(), Error> {
        Ok(())
    }

    /// The body failed with `error`, which goes out as it is.
    fn error(&mut self, _error: &Error) {}

    /// The body ended; an error returned goes out in place of the end.
    fn end(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// The body has no frame ready yet; an error returned goes out now (a
    /// watch that keeps time registers its timer with `cx`).
    fn pending(&mut self, _cx: &mut Context<'_>) -> Result<(), Error> {
        Ok(())
    }

    /// Whether [`Watch::end`] would let the end go out now, so that
    /// `is_end_stream` promises no end that `end` would fail.
    fn end_is_clean(&self) -> bool {
        true
    }

    /// The body is dropped; `at_end` says whether it had reached its end
    /// (not one a hook failed).
    fn dropped(&mut self, _at_end: bool) {}
}

/// `body`, with every step shown to `watch`; see the module documentation.
pub(crate) struct Watched<B: Body, W: Watch> {
    body: B,
    watch: W,
    /// A hook failed the body: it is over.
    failed: bool,
}

impl<B: Body, W: Watch> Watched<B, W> {
    pub(crate) fn new(body: B, watch: W) -> Self {
        Self {
            body,
            watch,
            failed: false,
        }
    }

    fn fail(&mut self, error: Error) -> Poll<Option<FrameResult>> {
        self.failed = true;
        Poll::Ready(Some(Err(error)))
    }
}

impl<B, W> Body for Watched<B, W>
where
    B: Body<Data = Bytes, Error = Error> + Unpin,
    W: Watch + Unpin,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<FrameResult>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        let step = match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => this.watch.frame(&frame).map(|()| Some(frame)),
            Poll::Ready(Some(Err(error))) => {
                this.watch.error(&error);
                return Poll::Ready(Some(Err(error)));
            }
            Poll::Ready(None) => this.watch.end().map(|()| None),
            Poll::Pending => match this.watch.pending(cx) {
                Ok(()) => return Poll::Pending,
                Err(error) => Err(error),
            },
        };
        match step {
            Ok(frame) => Poll::Ready(frame.map(Ok)),
            Err(error) => this.fail(error),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || (self.body.is_end_stream() && self.watch.end_is_clean())
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<B: Body, W: Watch> Drop for Watched<B, W> {
    fn drop(&mut self) {
        let at_end = !self.failed && self.body.is_end_stream();
        self.watch.dropped(at_end);
    }
}

/// Appends `data` to `kept` up to `max` bytes in all; says whether any of
/// it was left out. How `--record` keeps a copy of a body it passes on.
pub(crate) fn keep_up_to(kept: &mut Vec<u8>, data: &[u8], max: usize) -> bool {
    let room = max.saturating_sub(kept.len());
    kept.extend_from_slice(&data[..data.len().min(room)]);
    data.len() > room
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use std::sync::{Arc, Mutex};
    use wasmtime_wasi_http::WasiBody;

    /// Counts data bytes, fails past a limit and notes how it ended.
    struct Probe {
        seen: usize,
        limit: usize,
        ended: Arc<Mutex<Vec<&'static str>>>,
    }

    impl Watch for Probe {
        fn frame(&mut self, frame: &Frame<Bytes>) -> Result<(), Error> {
            self.seen += frame.data_ref().map_or(0, Bytes::len);
            match self.seen > self.limit {
                true => Err(Error::HttpRequestBodySize(Some(self.seen as u64))),
                false => Ok(()),
            }
        }

        fn end(&mut self) -> Result<(), Error> {
            self.ended.lock().unwrap().push("end");
            Ok(())
        }

        fn dropped(&mut self, at_end: bool) {
            self.ended.lock().unwrap().push(if at_end {
                "dropped at end"
            } else {
                "dropped early"
            });
        }
    }

    /// `hello`, watched by a probe that fails it past `limit` bytes; and
    /// what the probe was told of its end.
    fn hello(limit: usize) -> (Watched<WasiBody, Probe>, Arc<Mutex<Vec<&'static str>>>) {
        let ended = Arc::new(Mutex::new(Vec::new()));
        let probe = Probe {
            seen: 0,
            limit,
            ended: ended.clone(),
        };
        let body = Full::new(Bytes::from_static(b"hello"))
            .map_err(|never| match never {})
            .boxed_unsync();
        (Watched::new(body, probe), ended)
    }

    #[tokio::test]
    async fn frames_pass_unchanged_and_the_end_and_drop_are_told() {
        let (body, ended) = hello(100);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
        assert_eq!(*ended.lock().unwrap(), ["end", "dropped at end"]);
    }

    #[tokio::test]
    async fn a_hook_that_fails_the_body_ends_it() {
        let (mut body, ended) = hello(3);
        assert!(matches!(
            body.frame().await,
            Some(Err(Error::HttpRequestBodySize(Some(5))))
        ));
        assert!(body.is_end_stream());
        assert!(body.frame().await.is_none());
        drop(body);
        assert_eq!(*ended.lock().unwrap(), ["dropped early"]);
    }

    #[test]
    fn keep_up_to_keeps_the_first_bytes_and_says_when_it_cut() {
        let mut kept = Vec::new();
        assert!(!keep_up_to(&mut kept, b"abc", 5));
        assert!(keep_up_to(&mut kept, b"defg", 5));
        assert!(keep_up_to(&mut kept, b"h", 5));
        assert_eq!(kept, b"abcde");
    }
}
