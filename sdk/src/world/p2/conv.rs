//! HTTP ⇄ WASIp2 heads: the incoming request as `http` has it, methods,
//! schemes, error codes and an outgoing request's address and options. The
//! world-neutral half (fields, statuses, the error table) is in
//! `world/conv.rs`; its helpers are re-exported here so that p2 code has
//! one `conv`. Bodies are `body`'s job. `p2/conv.rs` and `p3/conv.rs` are
//! twins: a `diff` of the two shows exactly where the worlds differ.

use super::body::IncomingBody;
use crate::Body;
use crate::scope::RequestId;
use crate::world::conv::{
    InvalidRequest, build_request, client_error, method_from_wasi, method_to_wasi, request_id,
};
pub(super) use crate::world::conv::{
    Target, announced_size, build_response, fields, invalid_request, nanos, trailer_map,
    with_response_fields,
};
use wasip2::http::types::{
    ErrorCode, IncomingRequest, Method, OutgoingRequest, RequestOptions, Scheme,
};

/// The request as `http` has it, and the id it came with.
pub(super) fn into_http(
    request: IncomingRequest,
) -> Result<(crate::Request, Option<RequestId>), ErrorCode> {
    let method = method(request.method()).map_err(error_code)?;
    let scheme = request.scheme();
    let authority = request.authority();
    let path = request.path_with_query();
    let headers = request.headers().entries();
    let hint = announced_size(&headers);
    let id = request_id(&headers).map(RequestId::new);
    let request = build_request(
        method,
        scheme.as_ref().map(self::scheme),
        authority,
        path,
        headers,
        Body::unread(request.take_handle(), hint, open_body, discard_body),
    )
    .map_err(error_code)?;
    Ok((request, id))
}

/// The body of the incoming request `handle`, as a stream: its first read.
fn open_body(handle: u32, hint: http_body::SizeHint) -> Body {
    // SAFETY: `into_http` took the handle from its owner, and the body
    // opens it once (or discards it), so this is its only owner.
    let request = unsafe { IncomingRequest::from_handle(handle) };
    Body::from_source(IncomingBody::Unread(move || request.consume()), hint)
}

/// Drops the incoming request `handle` whose body was never read.
fn discard_body(handle: u32) {
    // SAFETY: as for `open_body`.
    drop(unsafe { IncomingRequest::from_handle(handle) });
}

fn method(method: Method) -> Result<http::Method, InvalidRequest> {
    method_from_wasi!(Method, method)
}

fn scheme(scheme: &Scheme) -> &str {
    match scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
        Scheme::Other(other) => other,
    }
}

fn error_code(invalid: InvalidRequest) -> ErrorCode {
    match invalid {
        InvalidRequest::Method => ErrorCode::HttpRequestMethodInvalid,
        InvalidRequest::Uri => ErrorCode::HttpRequestUriInvalid,
        InvalidRequest::Header => ErrorCode::HttpProtocolError,
    }
}

pub(super) fn internal_error(message: impl ToString) -> ErrorCode {
    ErrorCode::InternalError(Some(message.to_string()))
}

fn wasi_method(method: &http::Method) -> Method {
    method_to_wasi!(Method, method)
}

fn wasi_scheme(scheme: &http::uri::Scheme) -> Scheme {
    if *scheme == http::uri::Scheme::HTTP {
        Scheme::Http
    } else if *scheme == http::uri::Scheme::HTTPS {
        Scheme::Https
    } else {
        Scheme::Other(scheme.as_str().to_owned())
    }
}

/// Sets where an outgoing request goes and how.
pub(super) fn address(
    request: &OutgoingRequest,
    method: &http::Method,
    target: &Target,
) -> Result<(), crate::client::Error> {
    let rejected = |what| move |()| invalid_request(what, target);
    request
        .set_method(&wasi_method(method))
        .map_err(rejected("method"))?;
    request
        .set_scheme(Some(&wasi_scheme(&target.scheme)))
        .map_err(rejected("scheme"))?;
    request
        .set_authority(Some(&target.authority))
        .map_err(rejected("authority"))?;
    request
        .set_path_with_query(Some(&target.path_with_query))
        .map_err(rejected("path"))
}

/// The request's [`Timeouts`](crate::client::Timeouts) as WASI options.
pub(super) fn options(parts: &http::request::Parts) -> Option<RequestOptions> {
    let timeouts = parts.extensions.get::<crate::client::Timeouts>()?;
    let options = RequestOptions::new();
    // A limit the host does not support is ignored, as documented.
    let _ = options.set_connect_timeout(timeouts.connect.map(nanos));
    let _ = options.set_first_byte_timeout(timeouts.first_byte.map(nanos));
    let _ = options.set_between_bytes_timeout(timeouts.between_bytes.map(nanos));
    Some(options)
}

/// What a failed outgoing call to `target` reports to the app.
pub(super) fn client_error(code: ErrorCode, target: &str) -> crate::client::Error {
    client_error!(ErrorCode, code, target)
}
