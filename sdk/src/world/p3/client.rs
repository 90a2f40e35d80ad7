//! The p3 outgoing call behind [`client::send`](crate::client::send):
//! `wasi:http/client@0.3.0`, its body streamed by a task in the caller's
//! scope. Errors and their messages are `conv`'s.

use super::body::{IncomingBody, stream_out};
use super::conv;
use crate::Body;
use crate::scope::Scope;
use wasip3::http::types::{Fields, Request, Response};

/// Sends an outgoing request with `wasi:http/client`.
pub(super) async fn send(request: crate::Request) -> Result<crate::Response, crate::client::Error> {
    let (parts, body) = request.into_parts();
    let target = conv::Target::of(&parts.uri);
    let fields = Fields::from_list(&conv::response_fields(&parts.headers, &body))
        .map_err(|_| conv::invalid_request("headers", &target))?;
    let (contents, trailers) = stream_out(body, Scope::current().as_ref());
    let (request, _transmitted) = Request::new(fields, contents, trailers, conv::options(&parts));
    conv::address(&request, &parts.method, &target)?;
    let response = wasip3::http::client::send(request)
        .await
        .map_err(|code| conv::client_error(code, &target.authority))?;
    let status = response.get_status_code();
    let headers = response.get_headers().copy_all();
    let hint = conv::announced_size(&headers);
    let body = Body::from_source(
        IncomingBody::Unread(|done| Response::consume_body(response, done)),
        hint,
    );
    conv::build_response(status, headers, body, &target.authority)
}
