//! The world layer: one folder per WASI version, each the same four jobs in
//! files of the same names, so a fix in one world has an obvious twin in
//! the other.
//!
//! - `entry`: the export's call: open the request's scope, run the handler,
//!   hand the response back.
//! - `conv`: HTTP ⇄ WASI for heads (method, scheme, fields, error codes).
//! - `body`: bodies across the boundary, both ways.
//! - `client`: the outgoing call behind [`client::send`](crate::client::send).
//!
//! Each world's `mod.rs` implements the core's [`Runtime`](crate::runtime::Runtime)
//! and `p2` adds its own executor. `conv` here holds what both worlds share.
//! This layer imports the core; the core reaches it only through the
//! `Runtime` an export installs, never by name.

mod conv;
#[cfg(feature = "p2")]
pub mod p2;
#[cfg(feature = "p3")]
pub mod p3;
