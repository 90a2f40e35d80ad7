//! The instance lifecycle, as seen by `wasmtime_wasi_http`'s
//! [`ProxyHandler`](wasmtime_wasi_http::handler::ProxyHandler): how instances
//! are created ([`Instances`]), how many requests each accepts
//! ([`InstanceWorker`]), and when each is given up on ([`InstanceExpiry`]).
//!
//! Timeouts are enforced twice, as `handler.rs` asks: a per-request timer
//! inside the store's event loop (precise, but starved while the guest runs a
//! busy loop or a blocking host call), and [`InstanceExpiry`], polled from
//! outside the event loop, which drops the whole instance once its most
//! recent request is past the timeout. The epoch yields set up by the host
//! module are what give the outside check a chance to run.
//!
//! It also keeps the instance-side books: `--max-instances` (checked before
//! each instantiation, whichever allocator is in use), the instance metrics,
//! and why each instance was dropped. `ProxyHandler` only reports whether a
//! worker ended in error, so each instance records the first of its timers
//! that ends it (a request expired, the idle timer fired, guest work
//! outlived its requests); an instance that ends with none recorded either
//! trapped, used up its reuse count, or its guest stopped taking requests
//! itself (backpressure: its policy or `retire()`).
//!
//! Work that outlives its requests gets a grace rather than a life: once
//! every response of an instance is over (each
//! [`RequestTicket`](request::RequestTicket) says when its own is), the
//! instance has the idle timeout (or the request timeout) to finish what
//! its guest left running, and a request whose client left has the same
//! grace to finish; then the instance is dropped. Without that, a task
//! that never ends would pin its instance forever.
//!
//! The files follow those jobs: `instances.rs` creates, `worker.rs`
//! accepts and accounts, `expiry.rs` gives up, `info.rs` keeps what the
//! three and the requests share; `request.rs` is the ticket a request
//! carries to its instance, `store.rs` a fresh store per instance,
//! `slots.rs` `--max-instances` across threads, [`config`] what the server
//! applies.
//!
//! This module does not speak HTTP (`serve/` turns outcomes into
//! responses) and does not decide what an instance can import (`host/`
//! does).

pub mod config;
mod expiry;
mod info;
mod instances;
pub(crate) mod request;
mod slots;
pub(crate) mod store;
mod worker;

pub use expiry::InstanceExpiry;
pub use info::InstanceInfo;
pub use instances::Instances;
pub(crate) use slots::InstanceLimitError;
pub use worker::InstanceWorker;
