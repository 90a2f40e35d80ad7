//! The channel behind [`Body::channel`](crate::Body::channel): a writer and a
//! reader that hand over one chunk at a time. It does not buffer more than
//! that chunk, so a slow reader slows the writer.

use super::Next;
use crate::BodyError;
use bytes::Bytes;
use http_body::Frame;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// The sending half of [`Body::channel`](crate::Body::channel). Dropping it ends the body.
pub struct BodyWriter(pub(super) Arc<Mutex<Channel>>);

/// Holds at most one chunk: a writer waits for the reader, so a slow client
/// slows the producer instead of growing memory.
#[derive(Default)]
pub(super) struct Channel {
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

pub(super) struct Receiver(pub(super) Arc<Mutex<Channel>>);

impl http_body::Body for Receiver {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Next> {
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
