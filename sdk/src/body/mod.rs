//! Request and response bodies: whole or streamed, the same type either way.
//!
//! A [`Body`] is bytes known up front, a stream that a [`BodyWriter`] feeds,
//! any other [`http_body::Body`] (an axum response, a `Stream` of bytes), or
//! (for requests) the client's upload read from the host. It implements
//! `http_body::Body` and is `Send`, so it moves freely through tower and axum.
//! It does not know either world's stream types: the world layer plugs
//! those in behind [`Source`]. The writer's channel is in `channel`, the
//! adapters from other bodies, streams and sources in `adapt`.

mod adapt;
mod channel;

pub use channel::BodyWriter;

use crate::BodyError;
use adapt::{Foreign, FromStream, Pull, PullState};
use bytes::Bytes;
use channel::{Channel, Receiver};
use http::StatusCode;
use http_body::{Frame, SizeHint};
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// The body of a request or response.
///
/// Build a whole body from a string or bytes (`"hi".into()`), stream one
/// with [`Body::channel`], or wrap any [`http_body::Body`] with [`Body::new`]
/// or a `Stream` with [`Body::from_stream`]. Read one with [`Body::chunk`],
/// [`Body::bytes_limited`], [`Body::bytes`] or [`Body::text`], or as the
/// `http_body::Body` it is (its frames include trailers).
pub struct Body(Kind);

enum Kind {
    Full(Bytes),
    Stream(Pin<Box<dyn http_body::Body<Data = Bytes, Error = BodyError> + Send>>),
    /// A request body that nothing has read yet: made a stream (a box)
    /// only at its first read, so that the many handlers that never read
    /// theirs allocate nothing for it. Only p2 hands bodies over this way.
    #[cfg_attr(not(feature = "p2"), allow(dead_code))]
    Unread(Unread),
}

/// A world's request body before its first read: the resource it comes
/// from, as a handle, and the world's functions to open that as a stream
/// or to let it go.
pub(crate) struct Unread {
    handle: u32,
    hint: SizeHint,
    open: fn(u32, SizeHint) -> Body,
    discard: fn(u32),
}

impl Unread {
    /// The body as the stream `open` makes of it.
    fn open(self) -> Body {
        let this = std::mem::ManuallyDrop::new(self); // `open` takes the handle
        (this.open)(this.handle, this.hint)
    }
}

impl Drop for Unread {
    fn drop(&mut self) {
        (self.discard)(self.handle);
    }
}

/// The error type foreign bodies and streams may fail with.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What reading a body gives next: a frame, the error that ends it, or
/// `None` at its end. Every body here polls for one.
pub(crate) type Next = Option<Result<Frame<Bytes>, BodyError>>;

/// The [`Next`] of a streamed body, read by async code.
pub(crate) type NextFrame<'a> = Pin<Box<dyn Future<Output = Next> + 'a>>;

/// Where a streamed request body's frames come from: each world's upload,
/// read by async code that borrows it between frames.
pub(crate) trait Source: Unpin + 'static {
    fn next_frame(&mut self) -> NextFrame<'_>;
}

impl Body {
    /// A body with no bytes.
    ///
    /// ```
    /// let response = reprise::Response::new(reprise::Body::empty());
    /// # let _ = response;
    /// ```
    pub fn empty() -> Self {
        Body(Kind::Full(Bytes::new()))
    }

    /// Wraps any [`http_body::Body`] (an axum or hyper body, an
    /// `http_body_util` combinator): its frames stream through unchanged.
    ///
    /// ```
    /// let body = reprise::Body::new(String::from("from another crate"));
    /// # let _ = body;
    /// ```
    pub fn new<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        // A reprise body stays as it is, instead of growing a layer per trip
        // through a framework.
        let mut slot = Some(body);
        if let Some(body) = (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<Body>>() {
            return body.take().unwrap_or_default();
        }
        let body = slot.unwrap_or_else(|| unreachable!("taken only when it is a reprise body"));
        Body(Kind::Stream(Box::pin(Foreign(body))))
    }

    /// A body streamed from a [`Stream`](futures_core::Stream) of chunks; an
    /// `Err` item ends it with that error.
    ///
    /// ```
    /// # use reprise::bytes::Bytes;
    /// fn relay(chunks: impl futures_core::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static) -> reprise::Body {
    ///     reprise::Body::from_stream(chunks)
    /// }
    /// ```
    pub fn from_stream<S, T, E>(stream: S) -> Self
    where
        S: futures_core::Stream<Item = Result<T, E>> + Send + 'static,
        T: Into<Bytes>,
        E: Into<BoxError>,
    {
        Body(Kind::Stream(Box::pin(FromStream(Box::pin(stream)))))
    }

    /// A body streamed by the returned [`BodyWriter`], which ends when the
    /// writer is dropped.
    ///
    /// Write from a task started with [`spawn`](crate::spawn) after returning
    /// the response, so the client sees headers before the body is done:
    ///
    /// ```no_run
    /// # async fn f() -> reprise::Response {
    /// let (mut writer, body) = reprise::Body::channel();
    /// reprise::spawn(async move {
    ///     for line in ["one\n", "two\n"] {
    ///         if writer.write(line).await.is_err() {
    ///             return; // the client went away
    ///         }
    ///     }
    /// });
    /// reprise::Response::new(body)
    /// # }
    /// ```
    pub fn channel() -> (BodyWriter, Body) {
        let channel = Arc::new(Mutex::new(Channel::default()));
        let body = Body(Kind::Stream(Box::pin(Receiver(channel.clone()))));
        (BodyWriter(channel), body)
    }

    /// A request body read from the host, `hint` its announced size.
    pub(crate) fn from_source(source: impl Source, hint: SizeHint) -> Self {
        let pull = Pull {
            state: PullState::Idle(source),
            hint,
        };
        Body(Kind::Stream(Box::pin(crate::local::Local::new(pull))))
    }

    /// A request body the world hands over as the resource `handle`, `hint`
    /// its announced size: `open` makes it a stream at its first read, and
    /// `discard` drops the resource if it is never read. Each is called at
    /// most once, and only one of them.
    #[cfg_attr(not(feature = "p2"), allow(dead_code))]
    pub(crate) fn unread(
        handle: u32,
        hint: SizeHint,
        open: fn(u32, SizeHint) -> Body,
        discard: fn(u32),
    ) -> Self {
        Body(Kind::Unread(Unread {
            handle,
            hint,
            open,
            discard,
        }))
    }

    /// The body's bytes, if they are all known without reading a stream.
    pub(crate) fn as_full(&self) -> Option<&Bytes> {
        match &self.0 {
            Kind::Full(bytes) => Some(bytes),
            Kind::Stream(_) | Kind::Unread(_) => None,
        }
    }

    /// The next frame: data or trailers, `None` at the end.
    pub(crate) async fn frame(&mut self) -> Next {
        poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut *self), cx)).await
    }

    /// The next chunk of the body, or `None` at its end. Trailers, where the
    /// client sent any, are skipped; read frames through `http_body::Body`
    /// to see them.
    ///
    /// Reads a stream without holding all of it in memory:
    ///
    /// ```no_run
    /// # async fn handler(request: reprise::Request) -> Result<usize, reprise::BodyError> {
    /// let mut body = request.into_body();
    /// let mut total = 0;
    /// while let Some(chunk) = body.chunk().await {
    ///     total += chunk?.len();
    /// }
    /// # Ok(total) }
    /// ```
    pub async fn chunk(&mut self) -> Option<Result<Bytes, BodyError>> {
        loop {
            match self.frame().await? {
                Ok(frame) => match frame.into_data() {
                    Ok(bytes) => return Some(Ok(bytes)),
                    Err(_trailers) => continue,
                },
                Err(error) => return Some(Err(error)),
            }
        }
    }

    /// Reads the whole body, failing with a `413 Payload Too Large`
    /// [`BodyError`] as soon as it is known to exceed `max` bytes, so an
    /// oversized upload is neither buffered nor (when the client announced
    /// its size) read at all.
    ///
    /// ```no_run
    /// # use reprise::Request;
    /// async fn upload(request: Request) -> Result<String, reprise::BodyError> {
    ///     let bytes = request.into_body().bytes_limited(64 * 1024).await?;
    ///     Ok(format!("{} bytes\n", bytes.len()))
    /// }
    /// ```
    pub async fn bytes_limited(mut self, max: usize) -> Result<Bytes, BodyError> {
        let too_large = || {
            BodyError::with_status(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than its limit of {max} bytes"),
            )
        };
        let max_u64 = u64::try_from(max).unwrap_or(u64::MAX);
        if http_body::Body::size_hint(&self).lower() > max_u64 {
            return Err(too_large());
        }
        if let Kind::Full(bytes) = self.0 {
            return Ok(bytes);
        }
        let mut all = Vec::new();
        while let Some(chunk) = self.chunk().await {
            let chunk = chunk?;
            if all.len() + chunk.len() > max {
                return Err(too_large());
            }
            all.extend_from_slice(&chunk);
        }
        Ok(all.into())
    }

    /// Reads the whole body, however large; prefer [`Body::bytes_limited`]
    /// for anything a client sends.
    ///
    /// ```no_run
    /// # async fn handler(request: reprise::Request) -> Result<(), reprise::BodyError> {
    /// let upload = request.into_body().bytes().await?;
    /// println!("{} bytes uploaded", upload.len());
    /// # Ok(()) }
    /// ```
    pub async fn bytes(self) -> Result<Bytes, BodyError> {
        self.bytes_limited(usize::MAX).await
    }

    /// Reads the whole body as UTF-8 text.
    ///
    /// ```no_run
    /// # async fn handler(request: reprise::Request) -> Result<(), reprise::BodyError> {
    /// let form = request.into_body().text().await?;
    /// # Ok(()) }
    /// ```
    pub async fn text(self) -> Result<String, BodyError> {
        let bytes = self.bytes().await?;
        String::from_utf8(bytes.into()).map_err(|_| BodyError::new("the body is not UTF-8"))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Next> {
        if let Kind::Unread(_) = self.0 {
            let Kind::Unread(unread) = std::mem::replace(&mut self.0, Kind::Full(Bytes::new()))
            else {
                unreachable!("matched just above")
            };
            *self = unread.open();
        }
        match &mut self.0 {
            Kind::Full(bytes) if bytes.is_empty() => Poll::Ready(None),
            Kind::Full(bytes) => Poll::Ready(Some(Ok(Frame::data(std::mem::take(bytes))))),
            Kind::Stream(body) => body.as_mut().poll_frame(cx),
            Kind::Unread(_) => unreachable!("opened above"),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Full(bytes) => bytes.is_empty(),
            Kind::Stream(body) => body.is_end_stream(),
            // As the stream it opens to: ended once read to its end.
            Kind::Unread(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.len() as u64),
            Kind::Stream(body) => body.size_hint(),
            Kind::Unread(unread) => unread.hint,
        }
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Full(bytes) => f.debug_tuple("Body").field(bytes).finish(),
            Kind::Stream(_) | Kind::Unread(_) => f.write_str("Body(<stream>)"),
        }
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Body(Kind::Full(bytes))
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Self {
        Bytes::from_static(text.as_bytes()).into()
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Bytes::from(text).into()
    }
}

impl From<&'static [u8]> for Body {
    fn from(bytes: &'static [u8]) -> Self {
        Bytes::from_static(bytes).into()
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes::from(bytes).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    #[test]
    fn full_body_reads_back_whole() {
        assert_eq!(block_on(Body::from("hi").text()).unwrap(), "hi");
        assert_eq!(block_on(Body::empty().bytes()).unwrap(), Bytes::new());
    }

    #[test]
    fn channel_delivers_chunks_in_order_then_ends() {
        let (mut writer, mut body) = Body::channel();
        block_on(writer.write("a")).unwrap();
        assert_eq!(block_on(body.chunk()), Some(Ok(Bytes::from("a"))));
        block_on(writer.write("b")).unwrap();
        drop(writer);
        assert_eq!(block_on(body.text()).unwrap(), "b");
    }

    #[test]
    fn aborted_body_ends_with_its_error() {
        let (mut writer, body) = Body::channel();
        block_on(writer.write("partial")).unwrap();
        writer.abort("upstream failed");
        let error = block_on(body.bytes()).unwrap_err();
        assert_eq!(error.to_string(), "upstream failed");
    }

    #[test]
    fn bodies_and_their_writers_are_send() {
        fn send<T: Send>() {}
        send::<Body>();
        send::<BodyWriter>();
    }

    #[test]
    fn a_body_over_its_limit_is_a_413_even_before_it_is_read() {
        let whole = block_on(Body::from("four").bytes_limited(3)).unwrap_err();
        assert_eq!(whole.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let (mut writer, body) = Body::channel();
        let mut cx = Context::from_waker(Waker::noop());
        let mut read = std::pin::pin!(body.bytes_limited(3));
        assert!(read.as_mut().poll(&mut cx).is_pending());
        block_on(writer.write("ab")).unwrap();
        assert!(read.as_mut().poll(&mut cx).is_pending());
        block_on(writer.write("cd")).unwrap();
        let Poll::Ready(reading) = read.as_mut().poll(&mut cx) else {
            panic!("the fourth byte is over the limit");
        };
        assert_eq!(reading.unwrap_err().status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(block_on(Body::from("abc").bytes_limited(3)).unwrap(), "abc");
    }

    #[test]
    fn foreign_bodies_stream_through_and_reprise_bodies_are_not_rewrapped() {
        assert_eq!(
            block_on(Body::new(String::from("hyper")).text()).unwrap(),
            "hyper"
        );
        let whole = Body::new(Body::from("whole"));
        assert_eq!(whole.as_full(), Some(&Bytes::from("whole")));
    }

    #[test]
    fn an_unread_body_is_opened_at_its_first_read_or_else_discarded() {
        thread_local! {
            static OPENED: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
            static DISCARDED: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
        }
        let open = |handle, hint: SizeHint| {
            OPENED.set(Some(handle));
            assert_eq!(hint.exact(), Some(5));
            Body::from("hello")
        };
        let discard = |handle| DISCARDED.set(Some(handle));
        let body = Body::unread(7, SizeHint::with_exact(5), open, discard);
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(5));
        assert!(!http_body::Body::is_end_stream(&body));
        assert_eq!(block_on(body.text()).unwrap(), "hello");
        assert_eq!((OPENED.get(), DISCARDED.get()), (Some(7), None));
        drop(Body::unread(8, SizeHint::with_exact(5), open, discard));
        assert_eq!((OPENED.get(), DISCARDED.get()), (Some(7), Some(8)));
    }

    #[test]
    fn writer_fails_once_reader_is_dropped() {
        let (mut writer, body) = Body::channel();
        drop(body);
        assert!(block_on(writer.write("lost")).is_err());
    }
}
