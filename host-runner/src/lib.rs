//! `host-runner`: serves a WASI HTTP component (p2 or p3) over HTTP/1.1 with
//! wasmtime, reusing instances within explicit limits.
//!
//! The layers, in the order a request meets them; each uses only those
//! below it:
//! - [`serve`]: the front end. `serve/mod.rs` binds, runs the serving
//!   threads and their accept loops, and stops on [`shutdown`];
//!   `serve/listeners.rs` gives each thread a listening socket of its own
//!   (`SO_REUSEPORT`), evens out connections between threads and takes over
//!   the queue of a thread stuck in guest code;
//!   `serve/handle.rs` handles one request (request headers, the
//!   concurrency slot, debug headers); `serve/request_id.rs` gives it its
//!   id; `serve/in_flight.rs` counts it until its response is over;
//!   `serve/request_body.rs` is its body as the guest reads it (size limit,
//!   idle timeout); `serve/failure.rs` is the failure taxonomy (each
//!   failure's status, message and metrics outcome, and the one reading of
//!   an instance's state as a failure);
//!   `serve/response.rs` fails a body that ends short of its
//!   `content-length` or with its instance, so a truncated response never
//!   looks complete; `serve/read_ahead.rs` holds the response's head until
//!   its body starts, so a fault in between still gets a status;
//!   `serve/record.rs` is `--record`;
//! - [`instance`]: the `ProxyHandler` traits, a file each:
//!   `instance/instances.rs` creates instances, `instance/worker.rs`
//!   applies the reuse limits and records why each instance ended,
//!   `instance/expiry.rs` gives instances up from outside the event loop,
//!   `instance/info.rs` is what they and the requests share;
//!   `instance/request.rs`, the ticket a request carries to its instance;
//!   `instance/store.rs`, a fresh store per instance;
//!   [`instance::config`], what the server applies (the guest policy as a
//!   ceiling over the options);
//! - [`component`]: loading, world detection, the engine and its pools,
//!   [`component::policy`] (the guest's `reprise:reuse-policy`);
//! - `host`: what an instance can reach: WASI, `wasi:keyvalue` (one
//!   in-memory store for the whole server), `wasi:config`, guest stdout and
//!   stderr labelled per instance and request;
//! - [`options`]: [`ServeOptions`], the flags of `host-runner serve` and the
//!   library's options in one clap struct; [`options::wasmtime_flags`] reads
//!   `wasmtime serve`'s spellings (`-S`, `-W`, `--header`, `--env NAME`);
//! - [`outbound`]: which hosts a guest may send HTTP requests to;
//! - `exchange`: outgoing calls written into `--record`'s file, and
//!   answered from it by `check`'s replay;
//! - `pool`: keep-alive connections for that outgoing HTTP, per origin;
//! - `hop_by_hop`: the connection's own header fields (RFC 9110 §7.6.1),
//!   removed from what a guest receives and sends;
//! - `metrics`: counters and histograms; `metrics/endpoint.rs` serves them
//!   at `/metrics`, `metrics/threads.rs` holds the per-serving-thread
//!   gauges, `metrics/text.rs` the text format both write;
//! - [`units`]: durations and sizes as flags and messages write them;
//!   [`errors`]: every error on one line;
//!   [`files`]: path options read as regular files with a size cap;
//!   `record_line`: the JSON-lines format `serve --record` writes and
//!   `check --requests` reads;
//! - [`logging`]: host-runner's own log lines (text or JSON);
//!   `watched`: the one body wrapper, whose watches count, copy, time or
//!   check a body as it goes by (the size limit, the idle timers, the
//!   recording's copies, the response checks).
//!
//! Beside them, [`check`] drives instances directly, without the server, to
//! compare fresh and reused instances of a component (`host-runner check`).
//!
//! The binary is a thin layer over this library; tests and benches drive the
//! same types, with one entry point that loads the component for the
//! options it is served with:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use host_runner::{Server, ServeOptions, Shutdown};
//!
//! let options = ServeOptions { addr: "127.0.0.1:0".parse()?, ..ServeOptions::default() };
//! let server = Server::bind("hello_p3.wasm".as_ref(), &options).await?;
//! println!("serving on {}", server.local_addr());
//! let shutdown = Shutdown::new();
//! server.run(shutdown).await
//! # }
//! ```

/// The layers above as data, top first: a module imports only modules of
/// the rows below its own (a row's entries are siblings: neither imports
/// the other). An entry names a module and all inside it, unless a longer
/// entry names the part. `layers.rs` checks the sources against it.
#[cfg(test)]
const LAYERS: &[&[&str]] = &[
    &["serve", "check"],
    &["instance"],
    &["component"],
    &["host", "logging"],
    &["options"],
    &["outbound"],
    &["exchange"],
    &["pool"],
    &["hop_by_hop"],
    &["metrics::endpoint"],
    &["metrics"],
    &["metrics::threads"],
    &["record_line"],
    &["files"],
    &["metrics::text", "units", "errors", "shutdown", "watched"],
];

pub mod check;
pub mod component;
pub mod errors;
mod exchange;
pub mod files;
mod hop_by_hop;
mod host;
pub mod instance;
#[cfg(test)]
mod layers;
pub mod logging;
mod metrics;
pub mod options;
pub mod outbound;
mod pool;
mod record_line;
pub mod serve;
pub mod shutdown;
pub mod units;
mod watched;

pub use component::policy;
pub use component::{Allocator, LoadError, LoadedComponent, World};
pub use host::keyvalue_location;
pub use instance::config::{EffectiveConfig, Origin};
pub use options::{GuestEnv, GuestOptions, LogFormat, RequestHeaders, ServeOptions, WasiOptions};
pub use outbound::{OutboundPolicy, OutboundRule};
pub use serve::{INSTANCE_HEADER, INSTANCE_REQUEST_HEADER, Server};
pub use shutdown::Shutdown;
pub use units::{HumanDuration, HumanSize, parse_duration, parse_size};
