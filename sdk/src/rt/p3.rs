//! The WASIp3 half: `wasi:http/handler@0.3.0` on wit-bindgen's async runtime.
//!
//! Each request is a component-model task; requests on one instance
//! interleave at every `.await`, which is why the scope travels with futures.
//! The response goes back as soon as the handler returns it, and its body is
//! written by a task that stays in the request's scope.

use super::{Runtime, world_conversions};
use crate::body::{BodyError, NextFrame, Source};
use crate::handler::Serve;
use crate::scope::Scope;
use crate::{Body, ReusePolicy};
use bytes::Bytes;
use http_body::Frame;
use std::time::Duration;
use wasip3::http::types::{Fields, Request, Response, Trailers};
use wasip3::wit_bindgen::{FutureReader, FutureWriter, StreamReader, StreamResult, StreamWriter};
use wasip3::{wit_future, wit_stream};

world_conversions!(wasip3::http::types);

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
    super::install(&P3);
    let handler = crate::instance::handler(make);
    let request = into_http(request)?;
    let scope = Scope::open(policy, super::request_id_header(request.headers()));
    let response = scope.enter(handler.serve(request)).await;
    from_http(response, &scope)
}

fn into_http(request: Request) -> Result<crate::Request, ErrorCode> {
    let method = method(request.get_method()).map_err(error_code)?;
    let wasi_scheme = request.get_scheme();
    let authority = request.get_authority();
    let path = request.get_path_with_query();
    let headers = request.get_headers().copy_all();
    let hint = super::announced_size(&headers);
    let body = Body::from_source(IncomingBody::Unread(request), hint);
    super::build_request(
        method,
        wasi_scheme.as_ref().map(scheme),
        authority,
        path,
        headers,
        body,
    )
    .map_err(error_code)
}

fn from_http(response: crate::Response, scope: &Scope) -> Result<Response, ErrorCode> {
    let (parts, body) = response.into_parts();
    let fields = Fields::from_list(&super::response_fields(&parts.headers, &body))
        .map_err(|e| internal_error(format!("response header rejected: {e:?}")))?;
    let (trailers_writer, trailers) = wit_future::new(|| Ok(None));
    let contents = if body.as_full().is_some_and(Bytes::is_empty) {
        None
    } else {
        let (writer, reader) = wit_stream::new();
        wasip3::spawn_local(scope.enter(send_body(body, writer, trailers_writer)));
        Some(reader)
    };
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

async fn send_body(
    mut body: Body,
    mut writer: StreamWriter<u8>,
    trailers: FutureWriter<TrailersResult>,
) {
    while let Some(frame) = body.frame().await {
        let end = match frame.map(Frame::into_data) {
            Ok(Ok(bytes)) => {
                if !writer.write_all(bytes.into()).await.is_empty() {
                    return; // the host stopped reading: the client is gone
                }
                continue;
            }
            Ok(Err(frame)) => match frame.into_trailers() {
                Ok(map) => Fields::from_list(&super::fields(&map))
                    .map(Some)
                    .map_err(|e| internal_error(format!("response trailer rejected: {e:?}"))),
                Err(_) => continue, // a frame kind http-body may add later
            },
            Err(error) => Err(internal_error(error)),
        };
        drop(writer);
        let _ = trailers.write(end).await;
        return;
    }
    // Dropping the writers ends the body with the default: no trailers.
}

/// A request body as the host streams it.
enum IncomingBody {
    /// Not read yet. Opening the body stream costs host calls (and host
    /// work) that a handler which never reads the body should not pay.
    Unread(Request),
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

impl IncomingBody {
    /// Opens the body stream, on the first read.
    fn open(&mut self) {
        match std::mem::replace(self, IncomingBody::Ended) {
            IncomingBody::Unread(request) => {
                let (done, done_reader) = wit_future::new(|| Ok(()));
                let (stream, trailers) = Request::consume_body(request, done_reader);
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

impl Source for IncomingBody {
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
                Err(code) => Some(Err(BodyError::new(format!(
                    "request body failed: {code:?}"
                )))),
            }
        })
    }
}
