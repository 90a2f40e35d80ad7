//! Telling the host to send this instance no new requests for a while.
//!
//! Component-model backpressure is a counter on the instance: while it is
//! above zero the host starts no new calls into the instance, and sends new
//! requests to another instance instead. Requests already running carry on.
//! reprise uses it for its reuse policy; [`hold`] offers it to handlers, for
//! a step that must not share the instance with new requests.
//!
//! Only a guard can raise it here, so every increment is paired with exactly
//! one decrement (`backpressure.dec` below zero traps the instance).

use std::marker::PhantomData;

/// Raises backpressure until the returned guard is dropped.
///
/// Hold it across awaits; drop it (or let it go out of scope) when the
/// instance may take new requests again.
///
/// ```no_run
/// # async fn rebuild_cache() {}
/// # async fn handler() {
/// let _quiet = reprise::instance::hold();
/// rebuild_cache().await; // no new request starts on this instance meanwhile
/// # }
/// ```
#[must_use = "backpressure is lowered again as soon as the guard is dropped"]
pub fn hold() -> Hold {
    inc();
    Hold {
        _instance_bound: PhantomData,
    }
}

/// Backpressure raised by [`hold`]; dropping it lowers it again.
#[derive(Debug)]
pub struct Hold {
    /// Backpressure belongs to this instance: keep the guard off other threads.
    _instance_bound: PhantomData<*const ()>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        dec();
    }
}

pub(crate) fn adjust(raise: bool) {
    if raise { inc() } else { dec() }
}

pub(crate) fn inc() {
    wit_bindgen::backpressure_inc();
}

pub(crate) fn dec() {
    wit_bindgen::backpressure_dec();
}
