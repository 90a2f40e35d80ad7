//! Shared support for host-runner's integration tests, by concern: `process`
//! finds the built binary and components and runs a command to its end;
//! `server` runs `host-runner serve` as a real process; `http` talks
//! HTTP/1.1 to it with a small keep-alive client; `metrics` reads its
//! `/metrics`; `backend` stands up real backends for guests that call other
//! services.
//!
//! Every wait here is bounded, so a broken server fails a test instead of
//! hanging it. This module holds no assertions about behaviour beyond the
//! shape of a refusal; those belong in the tests.

pub(crate) mod backend;
mod http;
mod metrics;
mod process;
mod server;

pub(crate) use http::{CUT_OFF, HttpConnection, HttpResponse, READ_TIMEOUT, split_head};
pub(crate) use metrics::Metrics;
pub(crate) use process::{
    Finished, assert_no_crash, assert_refused, guest_wasm, memory_kib, reset_peak_memory,
    run_to_exit, scratch_dir, scratch_file, wait_for_lines,
};
pub(crate) use server::{RunningServer, fan_out};
