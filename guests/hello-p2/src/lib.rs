//! The classic `wasmtime serve` sample on WASIp2, as one async function.

use reprise::Request;

async fn hello(_request: Request) -> &'static str {
    "Hello, WASI!"
}

reprise::export_p2!(handler = hello);
