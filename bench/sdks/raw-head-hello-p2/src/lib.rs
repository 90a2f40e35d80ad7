//! `Hello, WASI!` on the raw WASIp2 bindings, after reading the request
//! head the way any SDK must before it can hand a handler a request:
//! method, scheme, authority, path and headers. What an SDK adds on top of
//! this is its own cost; the host calls here are every p2 guest's.

use std::hint::black_box;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Hello;

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        // Kept, so the optimiser cannot drop the reads.
        black_box((
            request.method(),
            request.scheme(),
            request.authority(),
            request.path_with_query(),
            request.headers().entries(),
        ));
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
