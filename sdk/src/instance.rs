//! What one component instance knows about itself: its handler value, how
//! many requests it has taken, and whether it still takes new ones.
//!
//! This is where the reuse policy is enforced at run time. Scopes report
//! request starts and ends; this module raises backpressure when the instance
//! is full (concurrency limit) and raises it for good when the instance must
//! retire (never, request limit, memory limit, [`retire`]). A host that sees
//! an idle instance under permanent backpressure drops it, which is how
//! retirement works on stock `wasmtime serve` too.

use crate::handler::Serve;
use crate::{ReusePolicy, backpressure};
use std::any::Any;
use std::cell::{Cell, RefCell};

thread_local! {
    static HANDLER: Cell<Option<&'static dyn Any>> = const { Cell::new(None) };
    static STATE: RefCell<State> = const {
        RefCell::new(State {
            policy: ReusePolicy::concurrent(),
            in_flight: 0,
            most_in_flight: 0,
            accepted: 0,
            full: false,
            retired: false,
        })
    };
}

struct State {
    policy: ReusePolicy,
    in_flight: u32,
    most_in_flight: u32,
    accepted: u64,
    /// Backpressure raised because `in_flight` reached the concurrency limit.
    full: bool,
    /// Backpressure raised for good.
    retired: bool,
}

/// The instance's handler, made by `make` at the instance's first request
/// and kept for its lifetime. That first request also runs `setup` and
/// adopts `policy`: what an export fixes for the instance is set once, not
/// per request.
pub(crate) fn handler<H: Serve>(
    make: fn() -> H,
    policy: &ReusePolicy,
    setup: impl FnOnce(),
) -> &'static H {
    let handler = HANDLER.get().unwrap_or_else(|| {
        setup();
        STATE.with_borrow_mut(|state| state.policy = *policy);
        // Leaked on purpose: the handler lives exactly as long as the
        // instance, and requests borrow it as `&'static`.
        let handler: &'static dyn Any = Box::leak(Box::new(make()));
        HANDLER.set(Some(handler));
        handler
    });
    handler
        .downcast_ref()
        .expect("a component exports exactly one reprise handler")
}

pub(crate) fn request_started() {
    STATE.with_borrow_mut(|state| {
        let policy = state.policy;
        state.in_flight += 1;
        state.most_in_flight = state.most_in_flight.max(state.in_flight);
        state.accepted += 1;
        if policy
            .request_limit()
            .is_some_and(|limit| state.accepted >= limit)
        {
            state.retire(raise_for_policy);
        }
        if !state.full
            && policy
                .concurrency_limit()
                .is_some_and(|limit| state.in_flight >= limit)
        {
            state.full = true;
            raise_for_policy();
        }
    });
}

pub(crate) fn request_finished() {
    STATE.with_borrow_mut(|state| {
        state.in_flight -= 1;
        if state.full
            && state
                .policy
                .concurrency_limit()
                .is_some_and(|limit| state.in_flight < limit)
        {
            state.full = false;
            lower_for_policy();
        }
        if state
            .policy
            .memory_limit()
            .is_some_and(|limit| linear_memory_bytes() > limit)
        {
            state.retire(raise_for_policy);
        }
    });
}

/// What this instance has seen so far, for logs, metrics and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstanceStats {
    /// Requests this instance has accepted, including the current one.
    pub requests: u64,
    /// Requests in flight now, including the current one.
    pub in_flight: u32,
    /// Most requests ever in flight at once on this instance.
    pub most_in_flight: u32,
    /// Whether the instance takes no new requests ([`retire`] or a limit).
    pub retiring: bool,
    /// Size of linear memory now, in bytes: what
    /// [`ReusePolicy::max_memory`](crate::ReusePolicy::max_memory) compares.
    pub memory_bytes: u64,
}

impl std::fmt::Display for InstanceStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let InstanceStats {
            requests,
            in_flight,
            most_in_flight,
            retiring,
            memory_bytes,
        } = self;
        write!(
            f,
            "requests={requests} in_flight={in_flight} most_in_flight={most_in_flight} \
             retiring={retiring} memory_bytes={memory_bytes}"
        )
    }
}

/// What this instance has seen so far.
///
/// ```no_run
/// let stats = reprise::instance_stats();
/// println!("request {} on this instance", stats.requests);
/// ```
pub fn instance_stats() -> InstanceStats {
    STATE.with_borrow(|state| InstanceStats {
        requests: state.accepted,
        in_flight: state.in_flight,
        most_in_flight: state.most_in_flight,
        retiring: state.retired,
        memory_bytes: linear_memory_bytes(),
    })
}

/// Retires this instance: it takes no new requests, the requests in flight
/// finish normally, and then the host drops it.
///
/// Use it when the instance's state can no longer be trusted (a poisoned
/// cache, a failed invariant) or is too big to keep. Calling it again does
/// nothing more.
///
/// ```no_run
/// # fn cache_is_corrupt() -> bool { true }
/// if cache_is_corrupt() {
///     reprise::retire(); // this request still completes; the next gets a fresh instance
/// }
/// ```
pub fn retire() {
    // Straight to the built-in: an app that retires needs it linked, even on
    // p2 where policy-driven backpressure may be compiled out.
    STATE.with_borrow_mut(|state| state.retire(backpressure::inc));
}

impl State {
    /// Raises backpressure for good, once, with `raise`.
    fn retire(&mut self, raise: fn()) {
        if !self.retired {
            self.retired = true;
            raise();
        }
    }
}

fn raise_for_policy() {
    crate::runtime::policy_backpressure(true);
}

fn lower_for_policy() {
    crate::runtime::policy_backpressure(false);
}

fn linear_memory_bytes() -> u64 {
    #[cfg(target_arch = "wasm32")]
    return core::arch::wasm32::memory_size::<0>() as u64 * 65536;
    #[cfg(not(target_arch = "wasm32"))]
    return 0;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::native;
    use crate::scope::Scope;

    #[derive(Default)]
    struct App;

    impl crate::Handler for App {
        async fn handle(&self, _: crate::Request) -> impl crate::IntoResponse {
            ""
        }
    }

    /// This test thread's instance, exported with `policy`: what its first
    /// request does.
    fn instance(policy: ReusePolicy) {
        handler(App::default, &policy, native::install);
    }

    fn request() -> Scope {
        Scope::open(None, None)
    }

    #[test]
    fn serial_policy_holds_backpressure_exactly_while_a_request_is_in_flight() {
        instance(ReusePolicy::serial());
        for _ in 0..3 {
            let running = request();
            assert_eq!(native::backpressure(), 1);
            drop(running);
            assert_eq!(native::backpressure(), 0);
        }
        assert!(!instance_stats().retiring);
    }

    #[test]
    fn max_concurrency_raises_backpressure_at_the_limit_and_lowers_it_below() {
        instance(ReusePolicy::concurrent().max_concurrency(2));
        let first = request();
        assert_eq!(native::backpressure(), 0);
        let second = request();
        assert_eq!(native::backpressure(), 1);
        drop(first);
        assert_eq!(native::backpressure(), 0);
        let third = request();
        assert_eq!(native::backpressure(), 1);
        drop((second, third));
        assert_eq!(native::backpressure(), 0);
        assert_eq!(instance_stats().most_in_flight, 2);
    }

    #[test]
    fn max_requests_retires_the_instance_for_good_at_its_last_request() {
        instance(ReusePolicy::concurrent().max_requests(2));
        drop(request());
        assert_eq!(native::backpressure(), 0);
        let last = request();
        assert_eq!(native::backpressure(), 1);
        assert!(instance_stats().retiring);
        drop(last);
        assert_eq!(native::backpressure(), 1, "a retired instance stays closed");
    }

    #[test]
    fn never_closes_the_instance_after_its_one_request() {
        instance(ReusePolicy::never());
        drop(request());
        assert_eq!(native::backpressure(), 1);
        assert_eq!(instance_stats().requests, 1);
        assert!(instance_stats().retiring);
    }

    #[test]
    fn the_first_request_fixes_the_instance_policy_later_ones_do_not_reinstall_it() {
        instance(ReusePolicy::serial());
        instance(ReusePolicy::concurrent());
        let _running = request();
        assert_eq!(native::backpressure(), 1, "still serial");
    }

    #[test]
    fn stats_count_accepted_and_in_flight_requests() {
        instance(ReusePolicy::concurrent());
        let first = request();
        let second = request();
        drop(first);
        let stats = instance_stats();
        assert_eq!(
            (stats.requests, stats.in_flight, stats.most_in_flight),
            (2, 1, 2)
        );
        drop(second);
        assert_eq!(instance_stats().in_flight, 0);
    }
}
