//! host-runner end to end: the real binary serving real components built for
//! wasm32-wasip2, spoken to over loopback HTTP. One test binary, one module
//! per subject; `common` holds the helpers (no assertions about behaviour).
//! `cargo test -p host-runner --test it -- soak::` runs the chaos soak
//! alone (`just soak`, with more requests).

mod common;

mod axum;
mod bad_input;
mod check;
mod faults;
mod hazards;
mod host_store;
mod hostile;
mod integrity;
mod json_api;
mod kv_durable;
mod kv_limits;
mod kv_redis;
mod library_api;
mod limits;
mod logs;
mod metrics;
mod outbound;
mod outgoing;
mod policy;
mod pooling;
mod portability;
mod proxy_framing;
mod quick_start;
mod record;
mod replay;
mod reuse_safety;
mod sdk_errors;
mod serve;
mod soak;
mod statuses;
mod unheld_policy;
mod wasmtime_compat;
