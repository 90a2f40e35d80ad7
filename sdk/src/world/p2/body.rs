//! p2 bodies across the boundary: a response's or an outgoing request's
//! [`Body`] written into a WASI `outgoing-body`, and an incoming request's
//! or a call's response body read as a [`Source`]. Heads are `conv`'s.

use super::{conv, executor};
use crate::Body;
use crate::BodyError;
use crate::body::{NextFrame, Source};
use crate::scope::Scope;
use http_body::Frame;
use wasip2::http::types::{Fields, FutureTrailers, IncomingBody as WasiIncomingBody, OutgoingBody};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

/// Writes `body` into a WASI outgoing body (a response's or an outgoing
/// request's) and finishes it. A streamed body is held to the current
/// request's deadline; a whole one is not, as it needs no more work from
/// the app (and the SDK's own 504 is written after the deadline).
pub(super) async fn stream_out(outgoing: OutgoingBody, mut body: Body) {
    let stream = outgoing.write().expect("a new body's stream is taken once");
    let complete = match body.as_full() {
        Some(bytes) if bytes.is_empty() => Ok(None),
        // What the host must accept at once: one call instead of a round of
        // check-write, write, flush and poll.
        Some(bytes) if bytes.len() <= SMALL_BODY => {
            stream.blocking_write_and_flush(bytes).map(|()| None)
        }
        Some(_) => write_body(&stream, &mut body).await,
        None => {
            let deadline = Scope::current().and_then(|scope| scope.deadline());
            crate::deadline::within(deadline, write_body(&stream, &mut body))
                .await
                .unwrap_or(Err(StreamError::Closed))
        }
    };
    drop(stream);
    if let Ok(trailers) = complete {
        let trailers = trailers.and_then(|map| Fields::from_list(&conv::fields(&map)).ok());
        let _ = OutgoingBody::finish(outgoing, trailers);
    }
    // Otherwise dropping `outgoing` unfinished tells the host the body is
    // incomplete, so the other side does not take a truncated body as whole.
}

/// Largest body written with one `blocking-write-and-flush`: 4096 bytes,
/// the most that call takes.
const SMALL_BODY: usize = 4096;

/// Writes the body's data and returns its trailers, if it has any.
async fn write_body(
    stream: &OutputStream,
    body: &mut Body,
) -> Result<Option<http::HeaderMap>, StreamError> {
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        match frame.map_err(|_| StreamError::Closed)?.into_data() {
            Ok(bytes) => write_all(stream, &bytes).await?,
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    flush(stream).await.map(|()| trailers)
}

async fn write_all(stream: &OutputStream, mut bytes: &[u8]) -> Result<(), StreamError> {
    while !bytes.is_empty() {
        let permitted = stream.check_write()?;
        if permitted == 0 {
            executor::ready(stream.subscribe()).await;
            continue;
        }
        let n = bytes
            .len()
            .min(usize::try_from(permitted).unwrap_or(usize::MAX));
        stream.write(&bytes[..n])?;
        bytes = &bytes[n..];
    }
    Ok(())
}

async fn flush(stream: &OutputStream) -> Result<(), StreamError> {
    stream.flush()?;
    executor::ready(stream.subscribe()).await;
    stream.check_write().map(drop)
}

/// An incoming request's body or an outgoing call's response body, as the
/// host streams it. `C` opens it: `consume` of the request or response.
pub(super) enum IncomingBody<C> {
    /// Not read yet. Opening the body costs host calls that a handler
    /// which never reads it should not pay.
    Unread(C),
    Reading {
        // Declared before `body`: a stream must be dropped before its body.
        stream: InputStream,
        body: WasiIncomingBody,
    },
    Ended,
}

const READ_SIZE: u64 = 16 * 1024;

impl<C: FnOnce() -> Result<WasiIncomingBody, ()>> IncomingBody<C> {
    /// Opens the body stream, on the first read.
    fn open(&mut self) -> Result<(), BodyError> {
        match std::mem::replace(self, IncomingBody::Ended) {
            IncomingBody::Unread(consume) => {
                let (stream, body) = consume()
                    .and_then(|body| Ok((body.stream()?, body)))
                    .map_err(|()| BodyError::new("body already taken"))?;
                *self = IncomingBody::Reading { stream, body };
            }
            opened => *self = opened,
        }
        Ok(())
    }
}

impl<C> Source for IncomingBody<C>
where
    C: FnOnce() -> Result<WasiIncomingBody, ()> + Unpin + 'static,
{
    fn next_frame(&mut self) -> NextFrame<'_> {
        Box::pin(async move {
            if let Err(error) = self.open() {
                return Some(Err(error));
            }
            let IncomingBody::Reading { stream, .. } = self else {
                return None;
            };
            let failed = loop {
                match stream.read(READ_SIZE) {
                    Ok(bytes) if bytes.is_empty() => executor::ready(stream.subscribe()).await,
                    Ok(bytes) => return Some(Ok(Frame::data(bytes.into()))),
                    Err(StreamError::Closed) => break None,
                    Err(StreamError::LastOperationFailed(error)) => {
                        break Some(error.to_debug_string());
                    }
                }
            };
            let IncomingBody::Reading { stream, body } =
                std::mem::replace(self, IncomingBody::Ended)
            else {
                return None;
            };
            drop(stream); // before its body
            if let Some(message) = failed {
                return Some(Err(BodyError::new(format!("body failed: {message}"))));
            }
            trailers(WasiIncomingBody::finish(body)).await
        })
    }
}

/// The trailers that end a request body, as its last frame.
async fn trailers(future: FutureTrailers) -> Option<Result<Frame<bytes::Bytes>, BodyError>> {
    executor::ready(future.subscribe()).await;
    match future.get() {
        Some(Ok(Ok(Some(trailers)))) => {
            Some(conv::trailer_map(trailers.entries()).map(Frame::trailers))
        }
        Some(Ok(Ok(None))) => None,
        Some(Ok(Err(code))) => Some(Err(BodyError::new(format!("body failed: {code:?}")))),
        // Ready, so never `None`; taken once, so never `Err`.
        Some(Err(())) | None => None,
    }
}
