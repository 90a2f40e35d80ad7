//! The p2 export's call: one request, run to the end of everything it
//! started (handler, body, spawned tasks) on the executor, inside its scope.
//! It does not convert heads (`conv`) or move body bytes (`body`).

use super::{P2, body, conv, executor};
use crate::ReusePolicy;
use crate::handler::Serve;
use crate::scope::Scope;
use wasip2::http::types::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};

/// Handles one request for the handler (made by `make`) that
/// [`export_p2!`](crate::export_p2) exported.
#[doc(hidden)]
pub fn handle<H: Serve, const RETIRES: bool>(
    policy: &'static ReusePolicy,
    make: fn() -> H,
    request: IncomingRequest,
    out: ResponseOutparam,
) {
    let handler =
        crate::instance::handler(make, policy, || crate::runtime::install(&P2::<RETIRES>));
    executor::run(move || async move {
        let (request, id) = match conv::into_http(request) {
            Ok(converted) => converted,
            Err(code) => return ResponseOutparam::set(out, Err(code)),
        };
        let scope = Scope::open(id, handler.deadline(&request));
        let response = scope.respond(handler, request).await;
        scope.enter(respond(response, out)).await;
    });
}

/// Hands the response's head to the host, then writes its body.
async fn respond(response: crate::Response, out: ResponseOutparam) {
    let (parts, body) = response.into_parts();
    let fields = match conv::with_response_fields(&parts.headers, &body, Fields::from_list) {
        Ok(fields) => fields,
        Err(e) => {
            let message = format!("response header rejected: {e:?}");
            return ResponseOutparam::set(out, Err(conv::internal_error(message)));
        }
    };
    let response = OutgoingResponse::new(fields);
    // A new response is 200 already; most stay so, and skip the call.
    if parts.status != http::StatusCode::OK
        && response.set_status_code(parts.status.as_u16()).is_err()
    {
        let message = format!("status {} rejected", parts.status);
        return ResponseOutparam::set(out, Err(conv::internal_error(message)));
    }
    let outgoing = response
        .body()
        .expect("a new response's body is taken once");
    ResponseOutparam::set(out, Ok(response));
    body::stream_out(outgoing, body).await;
}
