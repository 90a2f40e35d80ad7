//! The classic `wasmtime serve` sample on WASIp3: the response goes back at
//! once, and a spawned task streams its body afterwards.

use reprise::{Body, Request, Response};

async fn hello(_request: Request) -> Response {
    let (mut writer, body) = Body::channel();
    reprise::spawn(async move {
        // An error only means the client left; there is no one to tell.
        let _ = writer.write("Hello, WASI!").await;
    });
    Response::new(body)
}

reprise::export_p3!(handler = hello);
