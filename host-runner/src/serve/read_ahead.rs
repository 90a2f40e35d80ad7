//! Holding a response's head until the start of its body is there.
//!
//! A guest hands back its response before it writes the body: a p3 guest
//! returns the response and streams the body from a task, a p2 guest sets
//! the response and then writes. Sending the head at once has two costs:
//!
//! - a fault in that gap cannot be reported any more. When the instance
//!   traps or times out after the head went out but before the body did
//!   (under concurrent reuse, another request's fault is enough), all the
//!   client can be told is a connection closed mid-body. Held back, the
//!   head is replaced by a 500 or a 504 like any other failure;
//! - a short body costs a second write: two syscalls and two packets where
//!   one would do, and the client wakes twice.
//!
//! So the head waits for the body, within bounds: the whole of a body that
//! declares a length of at most [`MAX_BYTES`] (the guest has promised those
//! bytes; they come, or the instance dies), and of any other body only what
//! is ready after letting other tasks run once, up to [`MAX_BYTES`]. It
//! never waits on a timer, and never holds a head back for a stream that is
//! not ready: server-sent events and long polls go out as before.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use hyper::{Method, Response};
use wasmtime_wasi_http::WasiBody;

use super::response::has_body;

/// Most body bytes read ahead of the head.
const MAX_BYTES: usize = 64 * 1024;

type FrameResult = Result<Frame<Bytes>, wasmtime_wasi_http::Error>;

/// `response` (to a `method` request) with the start of its body read,
/// ready to go out with the head; or the error that ended the body while it
/// was read ahead, in which case the head was never sent and the request can
/// still fail cleanly.
pub(crate) async fn read_ahead(
    method: &Method,
    response: Response<WasiBody>,
) -> Result<Response<WasiBody>, wasmtime_wasi_http::Error> {
    let (parts, mut body) = response.into_parts();
    if !has_body(method, parts.status) || body.is_end_stream() {
        return Ok(Response::from_parts(parts, body));
    }
    let promised = body
        .size_hint()
        .exact()
        .is_some_and(|length| length <= MAX_BYTES as u64);
    let mut ahead = Ahead::default();
    let mut bytes = 0;
    let mut ended = false;
    let mut yielded = false;
    while bytes < MAX_BYTES {
        let next = if promised {
            Poll::Ready(body.frame().await)
        } else {
            next_frame_now(&mut body).await
        };
        match next {
            Poll::Ready(Some(Ok(frame))) => {
                bytes += frame.data_ref().map_or(0, Bytes::len);
                ahead.push(frame);
            }
            // Nothing is on the wire yet, so even with bytes read ahead the
            // failure can still be answered with a status.
            Poll::Ready(Some(Err(error))) => return Err(error),
            Poll::Ready(None) => {
                ended = true;
                break;
            }
            Poll::Pending if !yielded => {
                yielded = true;
                tokio::task::yield_now().await;
            }
            Poll::Pending => break,
        }
    }
    if ahead.is_empty() && !ended {
        return Ok(Response::from_parts(parts, body));
    }
    let body = ReadAhead { ahead, ended, body }.boxed_unsync();
    Ok(Response::from_parts(parts, body))
}

/// The body's next frame if it is ready now, without waiting for it.
async fn next_frame_now(body: &mut WasiBody) -> Poll<Option<FrameResult>> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx))).await
}

/// A body whose first frames were read already.
///
/// A body of its own rather than a [`Watch`](crate::watched::Watch) on the
/// guest's: it answers from the frames it holds before it polls the body,
/// and its size hint counts them; a watch only sees frames go by.
struct ReadAhead {
    ahead: Ahead,
    /// `body` has no more frames.
    ended: bool,
    body: WasiBody,
}

/// The frames read ahead, in order. Most bodies read ahead are one frame:
/// that one is held inline, so reading it ahead allocates nothing.
#[derive(Default)]
struct Ahead {
    first: Option<Frame<Bytes>>,
    rest: VecDeque<Frame<Bytes>>,
}

impl Ahead {
    fn push(&mut self, frame: Frame<Bytes>) {
        match self.first {
            None if self.rest.is_empty() => self.first = Some(frame),
            _ => self.rest.push_back(frame),
        }
    }

    fn pop(&mut self) -> Option<Frame<Bytes>> {
        self.first.take().or_else(|| self.rest.pop_front())
    }

    fn is_empty(&self) -> bool {
        self.first.is_none() && self.rest.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = &Frame<Bytes>> {
        self.first.iter().chain(&self.rest)
    }
}

impl Body for ReadAhead {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<FrameResult>> {
        if let Some(frame) = self.ahead.pop() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if self.ended {
            return Poll::Ready(None);
        }
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.ahead.is_empty() && (self.ended || self.body.is_end_stream())
    }

    /// The bytes read ahead plus what the rest of the body says about
    /// itself. hyper frames the response by an exact hint, so the hint must
    /// count the bytes read ahead, which the inner body no longer does.
    fn size_hint(&self) -> SizeHint {
        let mut ahead = 0;
        for frame in self.ahead.iter() {
            match frame.data_ref() {
                Some(data) => ahead += data.len() as u64,
                // Trailers still need chunked encoding.
                None => return SizeHint::default(),
            }
        }
        if self.ended {
            // All of it is here (and it is all the `content-length` it
            // declared, if any: the body is checked): hyper sends
            // `content-length`.
            return SizeHint::with_exact(ahead);
        }
        let rest = self.body.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + ahead);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + ahead);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    fn response(frames: Vec<FrameResult>) -> Response<WasiBody> {
        Response::new(Frames(frames.into()).boxed_unsync())
    }

    fn data(bytes: &'static str) -> FrameResult {
        Ok(Frame::data(Bytes::from_static(bytes.as_bytes())))
    }

    async fn collect(response: Response<WasiBody>) -> Bytes {
        response.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_short_body_gets_an_exact_length_and_keeps_its_bytes() {
        let response = read_ahead(&Method::GET, response(vec![data("Hello, "), data("WASI!")]))
            .await
            .unwrap();
        assert_eq!(response.body().size_hint().exact(), Some(12));
        assert_eq!(collect(response).await, "Hello, WASI!");
    }

    #[tokio::test]
    async fn a_body_read_in_part_still_counts_the_bytes_read_ahead() {
        // Like a guest body with `content-length: 12` whose end is not
        // known yet: the inner body now has 0 bytes left to promise.
        let body = ReadAhead {
            ahead: {
                let mut ahead = Ahead::default();
                ahead.push(Frame::data(Bytes::from_static(b"Hello, WASI!")));
                ahead
            },
            ended: false,
            body: Known(empty()).boxed_unsync(),
        };
        assert_eq!(body.size_hint().exact(), Some(12));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "Hello, WASI!");
    }

    #[tokio::test]
    async fn a_stream_with_nothing_ready_is_left_alone() {
        let response = read_ahead(&Method::GET, Response::new(Pending.boxed_unsync()))
            .await
            .unwrap();
        assert_eq!(response.body().size_hint().exact(), None);
        assert!(!response.body().is_end_stream());
    }

    #[tokio::test]
    async fn a_promised_body_is_waited_for() {
        let (sender, receiver) = tokio::sync::oneshot::channel::<FrameResult>();
        let late = Late(Some(receiver)).boxed_unsync();
        tokio::spawn(async move {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            sender.send(data("late")).unwrap();
        });
        let response = read_ahead(&Method::GET, Response::new(late)).await.unwrap();
        assert_eq!(response.body().size_hint().exact(), Some(4));
        assert_eq!(collect(response).await, "late");
    }

    #[tokio::test]
    async fn a_body_that_fails_before_its_first_byte_fails_the_response() {
        let failed = Err(wasmtime_wasi_http::Error::ConnectionTerminated);
        let outcome = read_ahead(&Method::GET, response(vec![failed])).await;
        assert!(outcome.is_err(), "the head must not go out");
    }

    #[tokio::test]
    async fn a_body_that_fails_while_read_ahead_fails_the_response() {
        let failed = Err(wasmtime_wasi_http::Error::ConnectionTerminated);
        let outcome = read_ahead(&Method::GET, response(vec![data("x"), failed])).await;
        assert!(outcome.is_err(), "the head must not go out");
    }

    #[tokio::test]
    async fn the_body_of_an_answer_to_head_is_left_unread() {
        // A guest may declare the length of what GET would return, and
        // write nothing.
        let short = Err(wasmtime_wasi_http::Error::HttpResponseBodySize(Some(0)));
        let response = read_ahead(&Method::HEAD, response(vec![short])).await;
        assert!(response.is_ok());
    }

    #[tokio::test]
    async fn trailers_keep_the_length_open() {
        let trailers = Ok(Frame::trailers(Default::default()));
        let response = read_ahead(&Method::GET, response(vec![data("x"), trailers]))
            .await
            .unwrap();
        assert_eq!(response.body().size_hint().exact(), None);
        let collected = response.into_body().collect().await.unwrap();
        assert!(collected.trailers().is_some());
    }

    #[tokio::test]
    async fn an_empty_body_stays_empty() {
        let response = read_ahead(&Method::GET, Response::new(empty()))
            .await
            .unwrap();
        assert!(response.body().is_end_stream());
    }

    fn empty() -> WasiBody {
        Full::new(Bytes::new())
            .map_err(|never| match never {})
            .boxed_unsync()
    }

    /// Frames that are all ready at once.
    struct Frames(VecDeque<FrameResult>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = wasmtime_wasi_http::Error;

        fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<FrameResult>> {
            Poll::Ready(self.0.pop_front())
        }
    }

    /// A body that knows it has no bytes left but has not said it ended.
    struct Known(WasiBody);

    impl Body for Known {
        type Data = Bytes;
        type Error = wasmtime_wasi_http::Error;

        fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<FrameResult>> {
            Pin::new(&mut self.0).poll_frame(cx)
        }

        fn is_end_stream(&self) -> bool {
            false
        }

        fn size_hint(&self) -> SizeHint {
            SizeHint::with_exact(0)
        }
    }

    /// A body of 4 promised bytes that arrive some time later.
    struct Late(Option<tokio::sync::oneshot::Receiver<FrameResult>>);

    impl Body for Late {
        type Data = Bytes;
        type Error = wasmtime_wasi_http::Error;

        fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<FrameResult>> {
            let Some(receiver) = self.0.as_mut() else {
                return Poll::Ready(None);
            };
            let frame = std::task::ready!(Pin::new(receiver).poll(cx)).unwrap();
            self.0 = None;
            Poll::Ready(Some(frame))
        }

        fn size_hint(&self) -> SizeHint {
            SizeHint::with_exact(if self.0.is_some() { 4 } else { 0 })
        }
    }

    /// A body whose first frame never comes, like a stream still waiting
    /// for its first event.
    struct Pending;

    impl Body for Pending {
        type Data = Bytes;
        type Error = wasmtime_wasi_http::Error;

        fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<FrameResult>> {
            Poll::Pending
        }
    }
}
