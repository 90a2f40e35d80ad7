//! The p3 outgoing call behind [`client::send`](crate::client::send):
//! `wasi:http/client@0.3.0`, its body streamed by a task in the caller's
//! scope. Errors and their messages are `conv`'s.
//!
//! The future `Request::new` returns (the request's transmission) lives as
//! long as the response body: `wasmtime serve` 49.0.x ties the connection
//! to it and cuts the response body short once the guest drops it (wasmtime
//! issue 14227, fixed in 50; docs/src/running-elsewhere.md has the
//! reproduction). Holding it costs nothing on other hosts. Its result is
//! not awaited: the response body already reports a cut body.

use super::body::{IncomingBody, stream_out};
use super::conv;
use crate::Body;
use crate::body::{NextFrame, Source};
use crate::scope::Scope;
use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::wit_bindgen::FutureReader;

/// Sends an outgoing request with `wasi:http/client`.
pub(super) async fn send(request: crate::Request) -> Result<crate::Response, crate::client::Error> {
    let (parts, body) = request.into_parts();
    let target = conv::Target::of(&parts.uri);
    let fields = conv::with_response_fields(&parts.headers, &body, Fields::from_list)
        .map_err(|_| conv::invalid_request("headers", &target))?;
    let (contents, trailers) = stream_out(body, Scope::current().as_ref());
    let (request, transmitted) = Request::new(fields, contents, trailers, conv::options(&parts));
    conv::address(&request, &parts.method, &target)?;
    let response = wasip3::http::client::send(request)
        .await
        .map_err(|code| conv::client_error(code, &target.authority))?;
    let status = response.get_status_code();
    let headers = response.get_headers().copy_all();
    let hint = conv::announced_size(&headers);
    let body = ResponseBody {
        body: IncomingBody::Unread(|done| Response::consume_body(response, done)),
        _transmitted: transmitted,
    };
    conv::build_response(
        status,
        headers,
        Body::from_source(body, hint),
        &target.authority,
    )
}

/// A call's response body, and the request's transmission future it keeps
/// until it is dropped (see the module doc).
struct ResponseBody<C> {
    body: IncomingBody<C>,
    _transmitted: FutureReader<Result<(), ErrorCode>>,
}

impl<C> Source for ResponseBody<C>
where
    IncomingBody<C>: Source,
    C: Unpin + 'static,
{
    fn next_frame(&mut self) -> NextFrame<'_> {
        self.body.next_frame()
    }
}
