//! Request and response bodies: whole or streamed, the same type either way.
//!
//! A [`Body`] is bytes known up front, a stream that a [`BodyWriter`] feeds,
//! or (for requests) the client's upload read from the host. It does not know
//! either world's stream types: `rt` plugs those in behind [`Source`].

use bytes::Bytes;
use std::cell::RefCell;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// The body of a request or response.
///
/// Build a whole body from a string or bytes (`"hi".into()`), or stream one
/// with [`Body::channel`]. Read one with [`Body::chunk`], [`Body::bytes`] or
/// [`Body::text`].
pub struct Body(Kind);

enum Kind {
    Full(Bytes),
    Stream(Box<dyn Source>),
}

/// One chunk of a streamed body, or `None` at its end.
pub(crate) type NextChunk<'a> =
    Pin<Box<dyn Future<Output = Option<Result<Bytes, BodyError>>> + 'a>>;

/// Where a streamed body's chunks come from.
pub(crate) trait Source {
    fn next_chunk(&mut self) -> NextChunk<'_>;
}

/// Why a body could not be read or written: the client went away, the
/// upload broke off, or a producer called [`BodyWriter::abort`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError(pub(crate) String);

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "body error: {}", self.0)
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
        let channel = Rc::new(RefCell::new(Channel::default()));
        let body = Body::stream(Receiver(channel.clone()));
        (BodyWriter(channel), body)
    }

    pub(crate) fn stream(source: impl Source + 'static) -> Self {
        Body(Kind::Stream(Box::new(source)))
    }

    /// The body's bytes, if they are all known without reading a stream.
    pub(crate) fn as_full(&self) -> Option<&Bytes> {
        match &self.0 {
            Kind::Full(bytes) => Some(bytes),
            Kind::Stream(_) => None,
        }
    }

    /// The next chunk of the body, or `None` at its end.
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
        match &mut self.0 {
            Kind::Full(bytes) if bytes.is_empty() => None,
            Kind::Full(bytes) => Some(Ok(std::mem::take(bytes))),
            Kind::Stream(source) => source.next_chunk().await,
        }
    }

    /// Reads the whole body.
    ///
    /// ```no_run
    /// # async fn handler(request: reprise::Request) -> Result<(), reprise::BodyError> {
    /// let upload = request.into_body().bytes().await?;
    /// println!("{} bytes uploaded", upload.len());
    /// # Ok(()) }
    /// ```
    pub async fn bytes(mut self) -> Result<Bytes, BodyError> {
        if let Kind::Full(bytes) = self.0 {
            return Ok(bytes);
        }
        let mut all = Vec::new();
        while let Some(chunk) = self.chunk().await {
            all.extend_from_slice(&chunk?);
        }
        Ok(all.into())
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
        String::from_utf8(bytes.into()).map_err(|_| BodyError("body is not UTF-8".into()))
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

/// The sending half of [`Body::channel`]. Dropping it ends the body.
pub struct BodyWriter(Rc<RefCell<Channel>>);

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

impl BodyWriter {
    /// Sends one chunk, waiting while the previous one is still unread.
    ///
    /// Fails once the reader is gone (for a response: the client disconnected
    /// or the host dropped the body), so a producer knows to stop.
    pub async fn write(&mut self, chunk: impl Into<Bytes>) -> Result<(), BodyError> {
        let mut chunk = Some(chunk.into());
        poll_fn(|cx| {
            let mut channel = self.0.borrow_mut();
            if channel.reader_gone {
                return Poll::Ready(Err(BodyError("the body's reader is gone".into())));
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
}

impl BodyWriter {
    /// Ends the body with an error instead of a clean end.
    ///
    /// Dropping the writer tells the client the body is complete; a producer
    /// that fails halfway calls this instead, and the host aborts the
    /// response, so the client never mistakes a cut-off body for a whole one.
    pub fn abort(self, reason: impl Into<String>) {
        self.0.borrow_mut().aborted = Some(reason.into());
    }
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        let mut channel = self.0.borrow_mut();
        channel.writer_gone = true;
        if let Some(waker) = channel.reader_waker.take() {
            waker.wake();
        }
    }
}

struct Receiver(Rc<RefCell<Channel>>);

impl Receiver {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyError>>> {
        let mut channel = self.0.borrow_mut();
        if let Some(chunk) = channel.chunk.take() {
            if let Some(waker) = channel.writer_waker.take() {
                waker.wake();
            }
            return Poll::Ready(Some(Ok(chunk)));
        }
        if let Some(reason) = channel.aborted.take() {
            return Poll::Ready(Some(Err(BodyError(reason))));
        }
        if channel.writer_gone {
            return Poll::Ready(None);
        }
        channel.reader_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Source for Receiver {
    fn next_chunk(&mut self) -> NextChunk<'_> {
        Box::pin(poll_fn(|cx| self.poll_chunk(cx)))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut channel = self.0.borrow_mut();
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
    fn writer_fails_once_reader_is_dropped() {
        let (mut writer, body) = Body::channel();
        drop(body);
        assert!(block_on(writer.write("lost")).is_err());
    }
}
