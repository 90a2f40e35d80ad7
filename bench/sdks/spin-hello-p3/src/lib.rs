//! `Hello, WASI!` with spin-sdk's WASIp3 handler, as its guide writes one.

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

#[http_service]
async fn handle(_request: Request) -> impl IntoResponse {
    "Hello, WASI!"
}
