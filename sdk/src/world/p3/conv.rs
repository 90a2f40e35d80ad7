//! HTTP ⇄ WASIp3 heads: the incoming request as `http` has it, methods,
//! schemes, error codes and an outgoing request's address and options. The
//! world-neutral half (fields, statuses, the error table) is in
//! `world/conv.rs`; its helpers are re-exported here so that p3 code has
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
use wasip3::http::types::{ErrorCode, Method, Request, RequestOptions, Scheme};

/// The request as `http` has it, and the id it came with.
pub(super) fn into_http(
    request: Request,
) -> Result<(crate::Request, Option<RequestId>), ErrorCode> {
    let method = method(request.get_method()).map_err(error_code)?;
    let scheme = request.get_scheme();
    let authority = request.get_authority();
    let path = request.get_path_with_query();
    let headers = request.get_headers().copy_all();
    let hint = announced_size(&headers);
    let id = request_id(&headers).map(RequestId::new);
    let request = build_request(
        method,
        scheme.as_ref().map(self::scheme),
        authority,
        path,
        headers,
        Body::from_source(
            IncomingBody::Unread(|done| Request::consume_body(request, done)),
            hint,
        ),
    )
    .map_err(error_code)?;
    Ok((request, id))
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
    request: &Request,
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
