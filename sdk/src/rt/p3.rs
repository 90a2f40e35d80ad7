//! The WASIp3 half: `wasi:http/handler@0.3.0` on wit-bindgen's async runtime.
//!
//! Each request is a component-model task; requests on one instance
//! interleave at every `.await`, which is why the scope travels with futures.
//! The response goes back as soon as the handler returns it, and its body is
//! written by a task that stays in the request's scope. Outgoing calls go
//! through `wasi:http/client@0.3.0`; dropping one cancels its subtask, and
//! the host closes the connection.

use super::{Runtime, world_conversions};
use crate::body::{BodyError, NextFrame, Source};
use crate::handler::Serve;
use crate::scope::Scope;
use crate::{Body, ReusePolicy};
use bytes::Bytes;
use http_body::Frame;
use std::sync::Arc;
use std::time::Duration;
use wasip3::http::types::{Fields, Request, Response, Trailers};
use wasip3::wit_bindgen::{FutureReader, FutureWriter, StreamReader, StreamResult, StreamWriter};
use wasip3::{wit_future, wit_stream};

world_conversions!(wasip3::http::types, Request);

struct P3;

impl Runtime for P3 {
    fn sleep(&self, duration: Duration) -> super::LocalFuture {
        Box::pin(wasip3::clocks::monotonic_clock::wait_for(super::nanos(
            duration,
        )))
    }

    fn spawn(&self, task: super::LocalFuture) {
        wasip3::spawn_local(task);
    }

    fn send(
        &self,
        request: crate::Request,
    ) -> super::LocalFuture<Result<crate::Response, crate::client::Error>> {
        Box::pin(send(request))
    }

    fn policy_backpressure(&self, raise: bool) {
        crate::backpressure::adjust(raise);
    }
}

/// Handles one request for the handler (made by `make`) that
/// [`export_p3!`](crate::export_p3) exported.
#[doc(hidden)]
pub async fn handle<H: Serve>(
    policy: &'static ReusePolicy,
    make: fn() -> H,
    request: Request,
) -> Result<Response, ErrorCode> {
    let handler = crate::instance::handler(make, policy, || super::install(&P3));
    let (request, id) = into_http(request)?;
    let scope = Scope::open(id, handler.deadline(&request));
    let response = scope.respond(handler, request).await;
    from_http(response, &scope)
}

/// The request as `http` has it, and the id it came with.
fn into_http(request: Request) -> Result<(crate::Request, Option<Arc<str>>), ErrorCode> {
    let method = method(request.get_method()).map_err(error_code)?;
    let wasi_scheme = request.get_scheme();
    let authority = request.get_authority();
    let path = request.get_path_with_query();
    let headers = request.get_headers().copy_all();
    let hint = super::announced_size(&headers);
    let id = super::request_id(&headers).map(Arc::from);
    let body = Body::from_source(
        IncomingBody::Unread(|done| Request::consume_body(request, done)),
        hint,
    );
    let request = super::build_request(
        method,
        wasi_scheme.as_ref().map(scheme),
        authority,
        path,
        headers,
        body,
    )
    .map_err(error_code)?;
    Ok((request, id))
}

fn from_http(response: crate::Response, scope: &Scope) -> Result<Response, ErrorCode> {
    let (parts, body) = response.into_parts();
    let fields = Fields::from_list(&super::response_fields(&parts.headers, &body))
        .map_err(|e| internal_error(format!("response header rejected: {e:?}")))?;
    let (contents, trailers) = stream_out(body, Some(scope));
    let (response, _transmitted) = Response::new(fields, contents, trailers);
    // A new response is 200 already; most stay so, and skip the call.
    if parts.status != http::StatusCode::OK {
        response
            .set_status_code(parts.status.as_u16())
            .map_err(|()| internal_error(format!("status {} rejected", parts.status)))?;
    }
    Ok(response)
}

type TrailersResult = Result<Option<Trailers>, ErrorCode>;

/// A body as the stream and trailers WASI takes, written by a task in
/// `scope` (the request's, so the deadline bounds it too).
fn stream_out(
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
                    Ok(map) => Fields::from_list(&super::fields(&map))
                        .map(Some)
                        .map_err(|e| internal_error(format!("trailer rejected: {e:?}"))),
                    Err(_) => continue, // a frame kind http-body may add later
                },
                Err(error) => Err(internal_error(error)),
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
        Err(_) => Err(internal_error(
            "deadline passed while the body was being written",
        )),
    };
    drop(writer);
    let _ = trailers.write(end).await;
}

/// Sends an outgoing request with `wasi:http/client`.
async fn send(request: crate::Request) -> Result<crate::Response, crate::client::Error> {
    let (parts, body) = request.into_parts();
    let target = super::Target::of(&parts.uri);
    let fields = Fields::from_list(&super::response_fields(&parts.headers, &body))
        .map_err(|_| super::invalid_request("headers", &target))?;
    let (contents, trailers) = stream_out(body, Scope::current().as_ref());
    let (request, _transmitted) = Request::new(fields, contents, trailers, options(&parts));
    address(&request, &parts.method, &target)?;
    let response = wasip3::http::client::send(request)
        .await
        .map_err(|code| client_error(code, &target.authority))?;
    let status = response.get_status_code();
    let headers = response.get_headers().copy_all();
    let hint = super::announced_size(&headers);
    let body = Body::from_source(
        IncomingBody::Unread(|done| Response::consume_body(response, done)),
        hint,
    );
    super::build_response(status, headers, body, &target.authority)
}

/// An incoming request's body or an outgoing call's response body, as the
/// host streams it. `C` opens it: `Request::consume_body` or
/// `Response::consume_body`, given the future that reports the guest done.
enum IncomingBody<C> {
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
                    Some(super::trailer_map(trailers.copy_all()).map(Frame::trailers))
                }
                Err(code) => Some(Err(BodyError::new(format!("body failed: {code:?}")))),
            }
        })
    }
}
