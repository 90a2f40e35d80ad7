//! p3 bodies across the boundary: a response's or an outgoing request's
//! [`Body`] as the stream and trailers future WASI takes, written by a task
//! in the request's scope, and an incoming request's or a call's response
//! body read as a [`Source`]. Heads are `conv`'s.

use super::conv;
use crate::Body;
use crate::BodyError;
use crate::body::{NextFrame, Source};
use crate::scope::Scope;
use bytes::Bytes;
use http_body::Frame;
use wasip3::http::types::{ErrorCode, Fields, Trailers};
use wasip3::wit_bindgen::{FutureReader, FutureWriter, StreamReader, StreamResult, StreamWriter};
use wasip3::{wit_future, wit_stream};

type TrailersResult = Result<Option<Trailers>, ErrorCode>;

/// A body as the stream and trailers WASI takes, written by a task in
/// `scope` (the request's, so the deadline bounds it too).
pub(super) fn stream_out(
    body: Body,
    scope: Option<&Scope>,
) -> (Option<StreamReader<u8>>, FutureReader<TrailersResult>) {
    let (trailers_writer, trailers) = wit_future::new(|| Ok(None));
    if body.as_full().is_some_and(Bytes::is_empty) {
        return (None, trailers);
    }
    let (writer, reader) = wit_stream::new();
    // The deadline bounds the app's work. A whole body needs none (and the
    // SDK's own 504 is written after the deadline).
    let deadline = scope
        .and_then(Scope::deadline)
        .filter(|_| body.as_full().is_none());
    let task = send_body(body, writer, trailers_writer, deadline);
    match scope {
        Some(scope) => wasip3::spawn_local(scope.enter(task)),
        None => wasip3::spawn_local(task),
    }
    (Some(reader), trailers)
}

async fn send_body(
    mut body: Body,
    mut writer: StreamWriter<u8>,
    trailers: FutureWriter<TrailersResult>,
    deadline: Option<std::time::Instant>,
) {
    let copy = async {
        while let Some(frame) = body.frame().await {
            let end = match frame.map(Frame::into_data) {
                Ok(Ok(bytes)) => {
                    if !writer.write_all(bytes.into()).await.is_empty() {
                        return None; // the host stopped reading: the other side is gone
                    }
                    continue;
                }
                Ok(Err(frame)) => match frame.into_trailers() {
                    Ok(map) => Fields::from_list(&conv::fields(&map))
                        .map(Some)
                        .map_err(|e| conv::internal_error(format!("trailer rejected: {e:?}"))),
                    Err(_) => continue, // a frame kind http-body may add later
                },
                Err(error) => Err(conv::internal_error(error)),
            };
            return Some(end);
        }
        None // dropping the writers ends the body with the default: no trailers
    };
    let end = match crate::deadline::within(deadline, copy).await {
        Ok(None) => return,
        Ok(Some(end)) => end,
        // An error in place of the trailers tells the host the body is cut
        // off, so the other side never takes it for complete.
        Err(_) => Err(conv::internal_error(
            "deadline passed while the body was being written",
        )),
    };
    drop(writer);
    let _ = trailers.write(end).await;
}

/// An incoming request's body or an outgoing call's response body, as the
/// host streams it. `C` opens it: `Request::consume_body` or
/// `Response::consume_body`, given the future that reports the guest done.
pub(super) enum IncomingBody<C> {
    /// Not read yet. Opening the body stream costs host calls (and host
    /// work) that a handler which never reads the body should not pay.
    Unread(C),
    Reading {
        stream: StreamReader<u8>,
        /// Says whether the upload completed, once the stream ends.
        trailers: FutureReader<TrailersResult>,
        /// Dropped with the body: tells the host the guest is done with it.
        _done: FutureWriter<Result<(), ErrorCode>>,
    },
    /// The end was reported: stay ended.
    Ended,
}

const READ_SIZE: usize = 16 * 1024;

impl<C> IncomingBody<C>
where
    C: FnOnce(
        FutureReader<Result<(), ErrorCode>>,
    ) -> (StreamReader<u8>, FutureReader<TrailersResult>),
{
    /// Opens the body stream, on the first read.
    fn open(&mut self) {
        match std::mem::replace(self, IncomingBody::Ended) {
            IncomingBody::Unread(consume) => {
                let (done, done_reader) = wit_future::new(|| Ok(()));
                let (stream, trailers) = consume(done_reader);
                *self = IncomingBody::Reading {
                    stream,
                    trailers,
                    _done: done,
                };
            }
            opened => *self = opened,
        }
    }
}

impl<C> Source for IncomingBody<C>
where
    C: FnOnce(
            FutureReader<Result<(), ErrorCode>>,
        ) -> (StreamReader<u8>, FutureReader<TrailersResult>)
        + Unpin
        + 'static,
{
    fn next_frame(&mut self) -> NextFrame<'_> {
        Box::pin(async move {
            self.open();
            let IncomingBody::Reading { stream, .. } = self else {
                return None;
            };
            loop {
                let (result, bytes) = stream.read(Vec::with_capacity(READ_SIZE)).await;
                match result {
                    StreamResult::Complete(_) if bytes.is_empty() => continue,
                    StreamResult::Complete(_) => return Some(Ok(Frame::data(bytes.into()))),
                    StreamResult::Dropped | StreamResult::Cancelled => break,
                }
            }
            let IncomingBody::Reading { trailers, .. } =
                std::mem::replace(self, IncomingBody::Ended)
            else {
                return None;
            };
            match trailers.await {
                Ok(None) => None,
                Ok(Some(trailers)) => {
                    Some(conv::trailer_map(trailers.copy_all()).map(Frame::trailers))
                }
                Err(code) => Some(Err(BodyError::new(format!("body failed: {code:?}")))),
            }
        })
    }
}
