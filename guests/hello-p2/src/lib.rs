//! The classic `wasmtime serve` sample on WASIp2.

use reprise::{Handler, IntoResponse, Request};

#[derive(Default)]
struct Hello;

impl Handler for Hello {
    async fn handle(&self, _request: Request) -> impl IntoResponse {
        "Hello, WASI!"
    }
}

reprise::export_p2!(Hello);
