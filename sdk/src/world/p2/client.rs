//! The p2 outgoing call behind [`client::send`](crate::client::send):
//! `wasi:http/outgoing-handler`, its body streamed out beside the wait for
//! the response. Errors and their messages are `conv`'s.

use super::body::{IncomingBody, stream_out};
use super::{conv, executor};
use crate::Body;
use crate::scope::Scope;
use wasip2::http::types::{Fields, OutgoingRequest};

/// Sends an outgoing request with `wasi:http/outgoing-handler`.
pub(super) async fn send(request: crate::Request) -> Result<crate::Response, crate::client::Error> {
    let (parts, body) = request.into_parts();
    let target = conv::Target::of(&parts.uri);
    let fields = conv::with_response_fields(&parts.headers, &body, Fields::from_list)
        .map_err(|_| conv::invalid_request("headers", &target))?;
    let request = OutgoingRequest::new(fields);
    conv::address(&request, &parts.method, &target)?;
    let outgoing = request.body().expect("a new request's body is taken once");
    let pending = wasip2::http::outgoing_handler::handle(request, conv::options(&parts))
        .map_err(|code| conv::client_error(code, &target.authority))?;
    // The body goes out while the response is awaited: a backend may answer
    // only once it has read the whole upload.
    spawn_scoped(stream_out(outgoing, body));
    let response = loop {
        if let Some(response) = pending.get() {
            break response;
        }
        executor::ready(pending.subscribe()).await;
    };
    let response = response
        .expect("a future-incoming-response is read once")
        .map_err(|code| conv::client_error(code, &target.authority))?;
    let status = response.status();
    let headers = response.headers().entries();
    let hint = conv::announced_size(&headers);
    let body = Body::from_source(IncomingBody::Unread(move || response.consume()), hint);
    conv::build_response(status, headers, body, &target.authority)
}

/// Runs `task` beside the current one, in the current request's scope when
/// there is one (the scope then lasts until the task ends).
fn spawn_scoped(task: impl Future<Output = ()> + 'static) {
    match Scope::current() {
        Some(scope) => executor::spawn(Box::pin(scope.enter(task))),
        None => executor::spawn(Box::pin(task)),
    }
}
