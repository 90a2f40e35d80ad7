//! Sending a response's head and the start of its body in one write.
//!
//! A guest hands back its response before it writes the body (a p3 guest
//! returns the response and streams the body from a task; a p2 guest sets
//! the response before it writes), and the body's bytes come from the
//! instance's task. hyper writes the head as soon as it has it, so a short
//! body costs a second write: two syscalls and two packets instead of one,
//! and the client wakes twice. Reading whatever part of the body is already
//! there, after letting other tasks run once, fixes that for short bodies;
//! a body read to its end also gets a `content-length` instead of chunked
//! encoding.
//!
//! This module never waits on a timer and never holds a head back for a
//! body that is not ready: slow streams (server-sent events, long polls) go
//! out as before.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Response;
use hyper::body::{Body, Frame, SizeHint};
use wasmtime_wasi_http::WasiBody;

/// How many times the head lets other tasks run while the body has nothing
/// ready. One is enough for a guest that writes right after responding.
const YIELDS: u32 = 1;

/// Most body bytes read ahead to go out with the head.
const MAX_BYTES: usize = 64 * 1024;

type FrameResult = Result<Frame<Bytes>, wasmtime_wasi_http::Error>;

/// `response` with whatever of its body is ready read ahead, so that hyper
/// sends it together with the head.
pub(crate) async fn read_ahead(response: Response<WasiBody>) -> Response<WasiBody> {
    let (parts, mut body) = response.into_parts();
    if body.is_end_stream() {
        return Response::from_parts(parts, body);
    }
    let mut ahead = VecDeque::new();
    let mut ended = false;
    let mut bytes = 0;
    let mut yields = YIELDS;
    while !ended && bytes < MAX_BYTES {
        match next_frame_now(&mut body).await {
            Poll::Ready(Some(Ok(frame))) => {
                bytes += frame.data_ref().map_or(0, Bytes::len);
                ahead.push_back(Ok(frame));
            }
            Poll::Ready(Some(Err(error))) => {
                ahead.push_back(Err(error));
                break;
            }
            Poll::Ready(None) => ended = true,
            Poll::Pending if yields > 0 => {
                yields -= 1;
                tokio::task::yield_now().await;
            }
            Poll::Pending => break,
        }
    }
    if ahead.is_empty() && !ended {
        return Response::from_parts(parts, body);
    }
    let body = ReadAhead { ahead, ended, body }.boxed_unsync();
    Response::from_parts(parts, body)
}

/// The body's next frame if it is ready now, without waiting for it.
async fn next_frame_now(body: &mut WasiBody) -> Poll<Option<FrameResult>> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx))).await
}

/// A body whose first frames were read already.
struct ReadAhead {
    ahead: VecDeque<FrameResult>,
    /// `body` has no more frames.
    ended: bool,
    body: WasiBody,
}

impl Body for ReadAhead {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<FrameResult>> {
        if let Some(frame) = self.ahead.pop_front() {
            return Poll::Ready(Some(frame));
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
    /// itself. hyper trusts an exact hint to frame the response, so it must
    /// count the bytes read ahead, which the inner body no longer does.
    fn size_hint(&self) -> SizeHint {
        let mut ahead = 0;
        for frame in &self.ahead {
            match frame.as_ref().map(Frame::data_ref) {
                Ok(Some(data)) => ahead += data.len() as u64,
                // Trailers or an error still need chunked encoding.
                _ => return SizeHint::default(),
            }
        }
        if self.ended {
            // All of it is here: hyper sends `content-length`.
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

    #[tokio::test]
    async fn a_short_body_gets_an_exact_length_and_keeps_its_bytes() {
        let response = read_ahead(response(vec![data("Hello, "), data("WASI!")])).await;
        assert_eq!(response.body().size_hint().exact(), Some(12));
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "Hello, WASI!");
    }

    #[tokio::test]
    async fn a_body_read_in_part_still_counts_the_bytes_read_ahead() {
        // Like a guest body with `content-length: 12` whose end is not
        // known yet: the inner body now has 0 bytes left to promise.
        let known = Full::new(Bytes::new()).map_err(|never| match never {});
        let body = ReadAhead {
            ahead: VecDeque::from([data("Hello, WASI!")]),
            ended: false,
            body: Known(known.boxed_unsync()).boxed_unsync(),
        };
        assert_eq!(body.size_hint().exact(), Some(12));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "Hello, WASI!");
    }

    #[tokio::test]
    async fn a_body_with_nothing_ready_is_left_alone() {
        let response = read_ahead(Response::new(Pending.boxed_unsync())).await;
        assert_eq!(response.body().size_hint().exact(), None);
        assert!(!response.body().is_end_stream());
    }

    #[tokio::test]
    async fn trailers_keep_the_length_open() {
        let trailers = Ok(Frame::trailers(Default::default()));
        let response = read_ahead(response(vec![data("x"), trailers])).await;
        assert_eq!(response.body().size_hint().exact(), None);
        let collected = response.into_body().collect().await.unwrap();
        assert!(collected.trailers().is_some());
    }

    #[tokio::test]
    async fn an_empty_body_stays_empty() {
        let empty = Full::new(Bytes::new()).map_err(|never| match never {});
        let response = read_ahead(Response::new(empty.boxed_unsync())).await;
        assert!(response.body().is_end_stream());
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
