//! # reprise: WASI HTTP handlers that stay correct under instance reuse
//!
//! Hosts such as `wasmtime serve` now hand one component instance many
//! requests: one after another, and (WASIp3) several at once, interleaved at
//! every `.await`. reprise makes the safe way the easy way:
//!
//! - **Instance state is explicit.** Your [`Handler`] value is created once per
//!   instance and shared by `&` between requests; anything it mutates needs
//!   visible interior mutability.
//! - **Request state is scoped.** [`request_local!`] values are fresh for each
//!   request, invisible to requests that interleave with it, and dropped when
//!   the request (including work it [`spawn`]ed) ends.
//! - **Reuse is a declared policy.** [`ReusePolicy`] (never, serial, concurrent
//!   with limits) is written into the component for hosts to read, and enforced
//!   at run time through component-model backpressure, so it holds on any host.
//!
//! The shortest component is one async function:
//!
//! ```no_run
//! use reprise::Request;
//!
//! async fn hello(_request: Request) -> &'static str {
//!     "Hello, WASI!\n"
//! }
//!
//! reprise::export_p3!(handler = hello);
//! ```
//!
//! and state an instance keeps between requests is a [`Handler`] type:
//!
//! ```no_run
//! use reprise::{Handler, IntoResponse, Request};
//! use std::cell::Cell;
//!
//! #[derive(Default)]
//! struct Counter {
//!     served: Cell<u64>,
//! }
//!
//! impl Handler for Counter {
//!     async fn handle(&self, _request: Request) -> impl IntoResponse {
//!         self.served.set(self.served.get() + 1);
//!         format!("this instance has served {}\n", self.served.get())
//!     }
//! }
//!
//! reprise::export_p3!(Counter);
//! ```
//!
//! The same handler exports to WASIp2 with [`export_p2!`]; reprise then drives
//! it on a small executor over `wasi:io` pollables, so [`sleep`], [`spawn`] and
//! streaming bodies work in both worlds.
//!
//! [`Body`] is an [`http_body::Body`] and, like reprise's futures, `Send`, so
//! the Rust web ecosystem fits on top: with the `tower` feature,
//! `export_p3!(service = app)` exports an axum `Router` (or any tower
//! `Service`) under the same reuse policy, and with `json`, `Json` reads
//! and writes JSON.
//!
//! State that must outlive a request or an instance belongs to the host:
//! the `kv` module (feature `kv`) wraps its key-value store, and `config`
//! (feature `config`) its configuration.
//!
//! Features: `p3` (for [`export_p3!`]) and `p2` (for [`export_p2!`]), both on
//! by default. A component may turn the other world off
//! (`default-features = false, features = ["p2"]`) to keep its bindings out
//! of the build. `json` adds `Json`; `tower` adds `service = …` to the
//! export macros. `kv` and `config` add `reprise::kv` and
//! `reprise::config`, and imports (`wasi:keyvalue`, `wasi:config`) that a
//! host must be asked to provide (`-Skeyvalue`, `-Sconfig`).
//!
//! Handlers call other services with [`client::send`], bounded by
//! [`timeout`] and by the request's [deadline](Handler::deadline); a call
//! belongs to its request and is cancelled with it.
//!
//! Every error reprise returns is an [`IntoResponse`] with the right status
//! and a one-line message (JSON when the request prefers it), so `?` is all
//! the error handling a handler needs; [`Error`] takes any of them.
//! [`instance`] holds the controls for the instance a request runs on.
//!
//! What reprise deliberately does not do: routing, connection pools or
//! retries. It is the layer between the host and your code; use any router
//! on top.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod deadline;
mod error;
mod export;
mod handler;
mod hold;
#[cfg(feature = "json")]
mod json;
mod local;
mod request_local;
mod runtime;
mod scope;
#[cfg(feature = "tower")]
mod service;
mod sync;
// The world layer: everything that names a binding. The modules above are
// the core; they reach this layer only through `runtime::Runtime`.
mod world;

pub mod client;
#[cfg(feature = "config")]
#[cfg_attr(docsrs, doc(cfg(feature = "config")))]
pub mod config;
pub mod instance;
#[cfg(feature = "kv")]
#[cfg_attr(docsrs, doc(cfg(feature = "kv")))]
pub mod kv;

pub use body::{Body, BodyWriter};
pub use bytes;
pub use deadline::timeout;
#[cfg(any(feature = "kv", feature = "config"))]
pub use error::StoreError;
pub use error::{BodyError, Elapsed, Error};
pub use handler::{Handler, IntoResponse, Request, Response, query_param};
pub use http;
pub use http_body;
#[cfg(feature = "json")]
#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
pub use json::Json;
pub use reprise_policy::{Reuse, ReusePolicy};
pub use request_local::RequestLocal;
pub use runtime::sleep;
pub use scope::{RequestContext, spawn};
pub use sync::{Mutex, MutexGuard};

/// Moved to [`instance::stats`]; kept for one release.
#[deprecated(since = "0.2.0", note = "use reprise::instance::stats")]
pub fn instance_stats() -> instance::Stats {
    instance::stats()
}

/// Moved to [`instance::Stats`]; kept for one release.
#[deprecated(since = "0.2.0", note = "use reprise::instance::Stats")]
pub type InstanceStats = instance::Stats;

/// Moved to [`instance::retire`]; kept for one release.
#[deprecated(since = "0.2.0", note = "use reprise::instance::retire")]
pub fn retire() {
    instance::retire();
}

/// Moved to [`instance`]: `instance::hold()` and its guard `instance::Hold`;
/// kept for one release.
#[deprecated(since = "0.2.0", note = "use reprise::instance::hold")]
pub mod backpressure {
    pub use crate::instance::{Hold as Backpressure, hold};
}

/// Items the export macros expand to. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::handler::FnHandler;
    #[cfg(feature = "tower")]
    pub use crate::service::ServiceHandler;
    #[cfg(feature = "p2")]
    pub use crate::world::p2;
    #[cfg(feature = "p3")]
    pub use crate::world::p3;
    pub use reprise_policy::SECTION_LEN;
    #[cfg(feature = "p2")]
    pub use wasip2;
    #[cfg(feature = "p3")]
    pub use wasip3;
}

#[cfg(test)]
mod tests {
    #[test]
    #[allow(deprecated)]
    fn the_moved_names_still_work_for_one_release() {
        let stats: crate::InstanceStats = crate::instance_stats();
        assert_eq!(stats, crate::instance::stats());
        let _hold: fn() -> crate::backpressure::Backpressure = crate::backpressure::hold;
        let _retire: fn() = crate::retire;
    }
}
