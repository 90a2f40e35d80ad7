//! The p3 export's call: one request, as a component-model task, inside its
//! scope. The response goes back as soon as the handler returns it; its
//! body is written by a task (`body`) that keeps the scope open.
//! It does not convert heads (`conv`) or move body bytes (`body`).

use super::{P3, body, conv};
use crate::ReusePolicy;
use crate::handler::Serve;
use crate::scope::Scope;
use wasip3::http::types::{ErrorCode, Fields, Request, Response};

/// Handles one request for the handler (made by `make`) that
/// [`export_p3!`](crate::export_p3) exported.
#[doc(hidden)]
pub async fn handle<H: Serve>(
    policy: &'static ReusePolicy,
    make: fn() -> H,
    request: Request,
) -> Result<Response, ErrorCode> {
    let handler = crate::instance::handler(make, policy, || crate::runtime::install(&P3));
    let (request, id) = conv::into_http(request)?;
    let scope = Scope::open(id, handler.deadline(&request));
    let response = scope.respond(handler, request).await;
    respond(response, &scope)
}

/// The response's head for the host, its body written by a task in `scope`.
fn respond(response: crate::Response, scope: &Scope) -> Result<Response, ErrorCode> {
    let (parts, body) = response.into_parts();
    let fields = conv::with_response_fields(&parts.headers, &body, Fields::from_list)
        .map_err(|e| conv::internal_error(format!("response header rejected: {e:?}")))?;
    let (contents, trailers) = body::stream_out(body, Some(scope));
    let (response, _transmitted) = Response::new(fields, contents, trailers);
    // A new response is 200 already; most stay so, and skip the call.
    if parts.status != http::StatusCode::OK {
        response
            .set_status_code(parts.status.as_u16())
            .map_err(|()| conv::internal_error(format!("status {} rejected", parts.status)))?;
    }
    Ok(response)
}
