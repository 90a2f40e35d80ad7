//! `GET /?to=127.0.0.1:PORT` sends `GET http://127.0.0.1:PORT/` through
//! `wasi:http/outgoing-handler` and answers `200` with `ok STATUS BODY`, or
//! `502` with `error CODE` (the `wasi:http` error code's debug form, e.g.
//! `error HttpRequestDenied`), so tests can see what the host's outbound
//! policy did. Raw `wasip2` bindings: the SDK has no HTTP client.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

struct Fetch;

impl wasip2::exports::http::incoming_handler::Guest for Fetch {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let query = request.path_with_query().unwrap_or_default();
        let to = query
            .split_once("to=")
            .map(|(_, to)| to.split('&').next().unwrap_or_default().to_owned())
            .unwrap_or_default();
        let (status, text) = match fetch(&to) {
            Ok((status, body)) => (200, format!("ok {status} {body}")),
            Err(code) => (502, format!("error {code}")),
        };
        let response = OutgoingResponse::new(Fields::new());
        let _ = response.set_status_code(status);
        let body = response
            .body()
            .expect("a new response's body is taken once");
        ResponseOutparam::set(response_out, Ok(response));
        let stream = body.write().expect("a new body's stream is taken once");
        let _ = stream.blocking_write_and_flush(text.as_bytes());
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
    }
}

/// The response's status and body text, or the error code's debug form.
fn fetch(authority: &str) -> Result<(u16, String), String> {
    let request = OutgoingRequest::new(Fields::new());
    let _ = request.set_method(&Method::Get);
    let _ = request.set_scheme(Some(&Scheme::Http));
    request
        .set_authority(Some(authority))
        .map_err(|()| format!("invalid authority {authority:?}"))?;
    let _ = request.set_path_with_query(Some("/"));
    let pending = outgoing_handler::handle(request, None).map_err(|code| format!("{code:?}"))?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(format!("{code:?}")),
        _ => return Err("no response".to_owned()),
    };
    let status = response.status();
    let body = response.consume().map_err(|()| "no body".to_owned())?;
    let stream = body.stream().map_err(|()| "no body stream".to_owned())?;
    let mut bytes = Vec::new();
    // Bounded: the test backends answer a few bytes.
    while bytes.len() < 64 << 10 {
        match stream.blocking_read(4096) {
            Ok(chunk) => bytes.extend(chunk),
            Err(_) => break,
        }
    }
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

wasip2::http::proxy::export!(Fetch);
