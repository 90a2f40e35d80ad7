//! `host-runner`: serves a WASI HTTP component (p2 or p3) over HTTP/1.1 with
//! wasmtime, reusing instances within explicit limits.
//!
//! The pieces, in the order a request meets them:
//! - [`shutdown`]: when to stop (signals, a shutdown address, a call);
//! - [`server`]: hyper front end, its serving threads, error responses,
//!   debug headers;
//! - `listeners`: a listening socket per serving thread (`SO_REUSEPORT`),
//!   and taking over the queue of a thread stuck in guest code;
//! - `request`: request ids, in-flight accounting, the body-size limit;
//! - `record`: `--record`, each request served appended to a file that
//!   `check --requests` replays;
//! - `worker`: the `ProxyHandler` traits: instance creation, reuse
//!   limits, timeouts, why each instance was dropped;
//! - `host`: per-instance WASI state, the memory limit, the linker, and the
//!   services every instance shares;
//! - `keyvalue`: `wasi:keyvalue`, one in-memory store for the whole server;
//! - [`outbound`]: which hosts a guest may send HTTP requests to;
//! - `guest_output`: guest stdout/stderr, labelled per instance and request;
//! - `response`: a response body may not end short of its
//!   `content-length` or with its instance: it fails instead, so a
//!   truncated response never looks complete;
//! - `read_ahead`: the response's head waits for the start of its body, so
//!   that a fault in between still gets a status and a short body goes out
//!   in one write;
//! - `metrics`: counters and histograms, served at `/metrics`;
//!   `thread_metrics`: the per-serving-thread gauges among them;
//! - [`component`]: loading, world detection, the policy section;
//! - [`policy`]: the guest's `reprise:reuse-policy`;
//! - `engine`: wasmtime engine, allocator and its pools, epoch ticker;
//! - [`config`]: options as given and as applied (the policy as a ceiling);
//! - [`wasmtime_flags`]: `wasmtime serve`'s spellings (`-S`, `-W`,
//!   `--header`, `--env NAME`) read into those options;
//! - [`logging`]: host-runner's own log lines (text or JSON).
//!
//! Beside them, [`check`] drives instances directly, without the server, to
//! compare fresh and reused instances of a component (`host-runner check`).
//!
//! The binary is a thin layer over this library; tests and benches drive the
//! same types:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use host_runner::{LoadedComponent, Server, ServeOptions, Shutdown};
//!
//! let options = ServeOptions { addr: "127.0.0.1:0".parse()?, ..ServeOptions::default() };
//! let component = LoadedComponent::load("hello_p3.wasm".as_ref(), options.request_timeout.is_some())?;
//! let server = Server::bind(component, &options).await?;
//! println!("serving on {}", server.local_addr());
//! let shutdown = Shutdown::new();
//! server.run(shutdown).await
//! # }
//! ```

pub mod check;
pub mod component;
pub mod config;
mod engine;
mod guest_output;
mod host;
mod keyvalue;
mod listeners;
pub mod logging;
mod metrics;
pub mod outbound;
pub mod policy;
mod read_ahead;
mod record;
mod request;
mod response;
pub mod server;
pub mod shutdown;
mod thread_metrics;
pub mod wasmtime_flags;
mod worker;

pub use component::{LoadError, LoadedComponent, World};
pub use config::{
    EffectiveConfig, HumanDuration, HumanSize, LogFormat, Origin, RequestHeaders, ServeOptions,
    WasiOptions, parse_duration, parse_size,
};
pub use engine::Allocator;
pub use outbound::{OutboundPolicy, OutboundRule};
pub use server::{INSTANCE_HEADER, INSTANCE_REQUEST_HEADER, Server};
pub use shutdown::Shutdown;
