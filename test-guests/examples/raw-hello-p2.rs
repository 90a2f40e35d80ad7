//! `hello-p2` without reprise.

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Hello;

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let response = OutgoingResponse::new(Fields::new());
        let body = response
            .body()
            .expect("a new response's body is taken once");
        ResponseOutparam::set(response_out, Ok(response));
        let stream = body.write().expect("a new body's stream is taken once");
        stream
            .blocking_write_and_flush(b"Hello, WASI!")
            .expect("the host accepts 12 bytes");
        drop(stream);
        OutgoingBody::finish(body, None).expect("the body is complete");
    }
}

wasip2::http::proxy::export!(Hello);
