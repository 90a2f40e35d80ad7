//! Request and response bodies: whole or streamed, the same type either way.
//!
//! A [`Body`] is bytes known up front, a stream that a [`BodyWriter`] feeds,
//! any other [`http_body::Body`] (an axum response, a `Stream` of bytes), or
//! (for requests) the client's upload read from the host. It implements
//! `http_body::Body` and is `Send`, so it moves freely through tower and axum.
//! It does not know either world's stream types: `rt` plugs those in behind
//! [`Source`].

use bytes::Bytes;
use http::StatusCode;
use http_body::{Frame, SizeHint};
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

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
}

/// The error type foreign bodies and streams may fail with.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One frame of a streamed body, or `None` at its end.
pub(crate) type NextFrame<'a> =
    Pin<Box<dyn Future<Output = Option<Result<Frame<Bytes>, BodyError>>> + 'a>>;

/// Where a streamed request body's frames come from: each world's upload,
/// read by async code that borrows it between frames.
pub(crate) trait Source: Unpin + 'static {
    fn next_frame(&mut self) -> NextFrame<'_>;
}

/// Why a body could not be read or written: the client went away, the
/// upload broke off or was too large, a producer called
/// [`BodyWriter::abort`], or (with the `json` feature) the body was not the
/// JSON expected.
///
/// As a response it is its [`status`](BodyError::status) with its message,
/// so `?` on a request body answers the client sensibly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError {
    message: String,
    status: StatusCode,
}

impl BodyError {
    /// A body error answered with `400 Bad Request`.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        BodyError {
            message: message.into(),
            status: StatusCode::BAD_REQUEST,
        }
    }

    /// A body error answered with `502 Bad Gateway`: another service's
    /// response broke off.
    pub(crate) fn upstream(message: impl Into<String>) -> Self {
        BodyError {
            message: message.into(),
            status: StatusCode::BAD_GATEWAY,
        }
    }

    /// The status that answers a request whose body failed this way: `413`
    /// for a body over its limit, `502` for another service's response that
    /// broke off, `400` otherwise.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    fn from_box(error: BoxError) -> Self {
        match error.downcast::<BodyError>() {
            Ok(error) => *error,
            Err(error) => BodyError::new(error.to_string()),
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "body error: {}", self.message)
    }
}

impl std::error::Error for BodyError {}

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

    /// The body's bytes, if they are all known without reading a stream.
    pub(crate) fn as_full(&self) -> Option<&Bytes> {
        match &self.0 {
            Kind::Full(bytes) => Some(bytes),
            Kind::Stream(_) => None,
        }
    }

    /// The next frame: data or trailers, `None` at the end.
    pub(crate) async fn frame(&mut self) -> Option<Result<Frame<Bytes>, BodyError>> {
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
        let too_large = || BodyError {
            message: format!("the body is larger than its limit of {max} bytes"),
            status: StatusCode::PAYLOAD_TOO_LARGE,
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

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.0 {
            Kind::Full(bytes) if bytes.is_empty() => Poll::Ready(None),
            Kind::Full(bytes) => Poll::Ready(Some(Ok(Frame::data(std::mem::take(bytes))))),
            Kind::Stream(body) => body.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Full(bytes) => bytes.is_empty(),
            Kind::Stream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.len() as u64),
            Kind::Stream(body) => body.size_hint(),
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
            Kind::Stream(_) => f.write_str("Body(<stream>)"),
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

/// Another crate's body, its errors turned into [`BodyError`]s.
struct Foreign<B>(B);

impl<B> http_body::Body for Foreign<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        // SAFETY: `self.0` is never moved out of the pinned `Foreign`.
        let body = unsafe { self.map_unchecked_mut(|foreign| &mut foreign.0) };
        body.poll_frame(cx)
            .map(|frame| frame.map(|frame| frame.map_err(|e| BodyError::from_box(e.into()))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// A `Stream` of chunks as a body.
struct FromStream<S>(Pin<Box<S>>);

impl<S, T, E> http_body::Body for FromStream<S>
where
    S: futures_core::Stream<Item = Result<T, E>>,
    T: Into<Bytes>,
    E: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.0.as_mut().poll_next(cx).map(|item| {
            item.map(|chunk| {
                chunk
                    .map(|chunk| Frame::data(chunk.into()))
                    .map_err(|e| BodyError::from_box(e.into()))
            })
        })
    }

    fn size_hint(&self) -> SizeHint {
        let (lower, upper) = self.0.size_hint();
        // A stream counts chunks, not bytes: only "no more chunks" carries over.
        if upper == Some(0) && lower == 0 {
            SizeHint::with_exact(0)
        } else {
            SizeHint::new()
        }
    }
}

/// A [`Source`] as a poll-based body: the read in flight owns the source,
/// and hands it back with the frame.
struct Pull<S> {
    state: PullState<S>,
    hint: SizeHint,
}

type PullRead<S> = Pin<Box<dyn Future<Output = (S, Option<Result<Frame<Bytes>, BodyError>>)>>>;

enum PullState<S> {
    Idle(S),
    Reading(PullRead<S>),
    Ended,
}

impl<S: Source> http_body::Body for Pull<S> {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        loop {
            match std::mem::replace(&mut this.state, PullState::Ended) {
                PullState::Idle(mut source) => {
                    this.state = PullState::Reading(Box::pin(async move {
                        let frame = source.next_frame().await;
                        (source, frame)
                    }));
                }
                PullState::Reading(mut read) => {
                    let Poll::Ready((source, frame)) = read.as_mut().poll(cx) else {
                        this.state = PullState::Reading(read);
                        return Poll::Pending;
                    };
                    if frame.is_some() {
                        this.state = PullState::Idle(source);
                    }
                    this.hint = match &frame {
                        Some(Ok(frame)) => shrink(&this.hint, frame),
                        _ => SizeHint::with_exact(0),
                    };
                    return Poll::Ready(frame);
                }
                PullState::Ended => return Poll::Ready(None),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, PullState::Ended)
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

/// What is left of `hint` once `frame` has been read.
fn shrink(hint: &SizeHint, frame: &Frame<Bytes>) -> SizeHint {
    let read = frame.data_ref().map_or(0, |bytes| bytes.len() as u64);
    let mut left = SizeHint::new();
    if let Some(upper) = hint.upper() {
        left.set_upper(upper.saturating_sub(read));
    }
    left.set_lower(hint.lower().saturating_sub(read));
    left
}

/// The sending half of [`Body::channel`]. Dropping it ends the body.
pub struct BodyWriter(Arc<Mutex<Channel>>);

/// Holds at most one chunk: a writer waits for the reader, so a slow client
/// slows the producer instead of growing memory.
#[derive(Default)]
struct Channel {
    chunk: Option<Bytes>,
    /// Set by [`BodyWriter::abort`]: the body ends with this error.
    aborted: Option<String>,
    writer_gone: bool,
    reader_gone: bool,
    reader_waker: Option<Waker>,
    writer_waker: Option<Waker>,
}

/// Locks a channel. A panic while it is held leaves it consistent (every
/// update is one assignment), so poisoning is ignored.
fn lock(channel: &Mutex<Channel>) -> MutexGuard<'_, Channel> {
    channel
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl BodyWriter {
    /// Sends one chunk, waiting while the previous one is still unread.
    ///
    /// Fails once the reader is gone (for a response: the client disconnected
    /// or the host dropped the body), so a producer knows to stop.
    pub async fn write(&mut self, chunk: impl Into<Bytes>) -> Result<(), BodyError> {
        let mut chunk = Some(chunk.into());
        poll_fn(|cx| {
            let mut channel = lock(&self.0);
            if channel.reader_gone {
                return Poll::Ready(Err(BodyError::new("the body's reader is gone")));
            }
            if channel.chunk.is_some() {
                channel.writer_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            channel.chunk = chunk.take();
            if let Some(waker) = channel.reader_waker.take() {
                waker.wake();
            }
            Poll::Ready(Ok(()))
        })
        .await
    }

    /// Ends the body with an error instead of a clean end.
    ///
    /// Dropping the writer tells the client the body is complete; a producer
    /// that fails halfway calls this instead, and the host aborts the
    /// response, so the client never mistakes a cut-off body for a whole one.
    pub fn abort(self, reason: impl Into<String>) {
        lock(&self.0).aborted = Some(reason.into());
    }
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        let mut channel = lock(&self.0);
        channel.writer_gone = true;
        if let Some(waker) = channel.reader_waker.take() {
            waker.wake();
        }
    }
}

struct Receiver(Arc<Mutex<Channel>>);

impl http_body::Body for Receiver {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut channel = lock(&self.0);
        if let Some(chunk) = channel.chunk.take() {
            if let Some(waker) = channel.writer_waker.take() {
                waker.wake();
            }
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if let Some(reason) = channel.aborted.take() {
            return Poll::Ready(Some(Err(BodyError::new(reason))));
        }
        if channel.writer_gone {
            return Poll::Ready(None);
        }
        channel.reader_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut channel = lock(&self.0);
        channel.reader_gone = true;
        if let Some(waker) = channel.writer_waker.take() {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(error.to_string(), "body error: upstream failed");
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
    fn writer_fails_once_reader_is_dropped() {
        let (mut writer, body) = Body::channel();
        drop(body);
        assert!(block_on(writer.write("lost")).is_err());
    }
}
