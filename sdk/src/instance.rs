//! Controls for the component instance a request runs on: what it has seen
//! ([`stats`]), taking no new requests for good ([`retire`]) or for a while
//! ([`hold`]). It does not choose a reuse policy (that is
//! [`ReusePolicy`], given to the export macro) or talk
//! to the host beyond component-model backpressure.
//
// Inside, this module is what one instance knows about itself: its handler
// value, how many requests it has taken, and whether it still takes new ones.
//
// This is where the reuse policy is enforced at run time. Scopes report
// request starts and ends; this module raises backpressure when the instance
// is full (concurrency limit) and raises it for good when the instance must
// retire (never, request limit, memory limit, [`retire`]). A host that sees
// an idle instance under permanent backpressure drops it, which is how
// retirement works on stock `wasmtime serve` too.
//
// A host that ignores backpressure (`jco serve` by default, any p2 host
// without component-model async) can still hand a retired instance another
// request. That request is refused, not served: the policy is the author's
// claim that the instance must not take it (state that leaks, memory that
// grows), so the SDK answers `503 Service Unavailable` without running the
// handler and writes one warning line on stderr naming the policy and what
// the host did. The instance stays retired; nothing here can make the host
// drop it.

use crate::ReusePolicy;
use crate::handler::Serve;
use crate::hold as backpressure;

pub use crate::hold::{Hold, hold};
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
            retired: None,
            refused: 0,
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
    /// Backpressure raised for good, and why.
    retired: Option<Retirement>,
    /// Requests the host sent after retirement, all refused.
    refused: u64,
}

/// Why an instance retired: what the warning names when a host sends it
/// more work anyway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Retirement {
    /// `never`, or `max_requests` reached.
    RequestLimit(u64),
    /// `max_memory` passed.
    MemoryLimit { limit: u64, size: u64 },
    /// The app called [`retire`].
    App,
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

/// Reports a request's start. `false` means the instance had retired
/// before it: the request must be refused (see the module doc), and has
/// been warned about.
pub(crate) fn request_started() -> bool {
    STATE.with_borrow_mut(|state| {
        let policy = state.policy;
        // Counted even when refused: the scope reports the end either way.
        state.in_flight += 1;
        if let Some(why) = state.retired {
            state.refused += 1;
            eprintln!("{}", unheld_policy_warning(&policy, why, state.refused));
            return false;
        }
        state.most_in_flight = state.most_in_flight.max(state.in_flight);
        state.accepted += 1;
        if let Some(limit) = policy
            .request_limit()
            .filter(|&limit| state.accepted >= limit)
        {
            state.retire(Retirement::RequestLimit(limit), raise_for_policy);
        }
        if !state.full
            && policy
                .concurrency_limit()
                .is_some_and(|limit| state.in_flight >= limit)
        {
            state.full = true;
            raise_for_policy();
        }
        true
    })
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
        if let Some(limit) = state.policy.memory_limit() {
            let size = linear_memory_bytes();
            if size > limit {
                state.retire(Retirement::MemoryLimit { limit, size }, raise_for_policy);
            }
        }
    });
}

/// What this instance has seen so far, for logs, metrics and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
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

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Stats {
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
/// let stats = reprise::instance::stats();
/// println!("request {} on this instance", stats.requests);
/// ```
pub fn stats() -> Stats {
    STATE.with_borrow(|state| Stats {
        requests: state.accepted,
        in_flight: state.in_flight,
        most_in_flight: state.most_in_flight,
        retiring: state.retired.is_some(),
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
///     reprise::instance::retire(); // this request still completes; the next gets a fresh instance
/// }
/// ```
pub fn retire() {
    // Straight to the built-in: an app that retires needs it linked, even on
    // p2 where policy-driven backpressure may be compiled out.
    STATE.with_borrow_mut(|state| state.retire(Retirement::App, backpressure::inc));
}

impl State {
    /// Raises backpressure for good, once, with `raise`; the first reason
    /// is the one kept.
    fn retire(&mut self, why: Retirement, raise: fn()) {
        if self.retired.is_none() {
            self.retired = Some(why);
            raise();
        }
    }
}

/// The answer to a request the host sent to a retired instance.
pub(crate) fn refused() -> crate::Response {
    let message = "this instance retired under its reuse policy and the host sent it \
                   another request; see the host's stderr";
    crate::error::respond(http::StatusCode::SERVICE_UNAVAILABLE, message)
}

/// The stderr line for the `nth` request refused after retiring for `why`.
fn unheld_policy_warning(policy: &ReusePolicy, why: Retirement, nth: u64) -> String {
    let why = match why {
        Retirement::RequestLimit(1) if policy.reuse() == reprise_policy::Reuse::Never => {
            "reuse policy `never` (one request per instance)".to_owned()
        }
        Retirement::RequestLimit(n) => {
            format!("reuse policy `max_requests({n})` ({n} requests taken)")
        }
        Retirement::MemoryLimit { limit, size } => {
            format!("reuse policy `max_memory({limit})`, with linear memory at {size} bytes")
        }
        Retirement::App => "`reprise::retire()`".to_owned(),
    };
    format!(
        "reprise: warning: the host sent a request to an instance retired by {why}; \
         it reuses instances regardless of their backpressure, so the policy cannot hold \
         there. Answered 503 without running the handler (refusal {nth} on this instance). Serve \
         with a fresh instance per request instead (jco serve: --isolate-requests instance)"
    )
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
        assert!(!stats().retiring);
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
        assert_eq!(stats().most_in_flight, 2);
    }

    #[test]
    fn max_requests_retires_the_instance_for_good_at_its_last_request() {
        instance(ReusePolicy::concurrent().max_requests(2));
        drop(request());
        assert_eq!(native::backpressure(), 0);
        let last = request();
        assert_eq!(native::backpressure(), 1);
        assert!(stats().retiring);
        drop(last);
        assert_eq!(native::backpressure(), 1, "a retired instance stays closed");
    }

    #[test]
    fn never_closes_the_instance_after_its_one_request() {
        instance(ReusePolicy::never());
        drop(request());
        assert_eq!(native::backpressure(), 1);
        assert_eq!(stats().requests, 1);
        assert!(stats().retiring);
    }

    #[test]
    fn a_request_sent_to_a_retired_instance_is_refused_and_not_counted() {
        instance(ReusePolicy::never());
        drop(request());
        assert!(!request_started(), "a second request on `never` is refused");
        request_finished();
        let stats = stats();
        assert_eq!((stats.requests, stats.in_flight), (1, 0));
        assert_eq!(native::backpressure(), 1, "still retired");
    }

    #[test]
    fn the_refusal_warning_names_the_policy_and_the_host_behaviour() {
        let never = unheld_policy_warning(&ReusePolicy::never(), Retirement::RequestLimit(1), 1);
        assert!(never.contains("reuse policy `never`"), "{never}");
        assert!(
            never.contains("regardless of their backpressure"),
            "{never}"
        );
        assert!(never.contains("503"), "{never}");
        assert!(!never.contains('\n'), "one line: {never}");
        let limit = ReusePolicy::serial().max_requests(3);
        let limited = unheld_policy_warning(&limit, Retirement::RequestLimit(3), 2);
        assert!(limited.contains("`max_requests(3)`"), "{limited}");
        assert!(limited.contains("refusal 2"), "{limited}");
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
        let stats = stats();
        assert_eq!(
            (stats.requests, stats.in_flight, stats.most_in_flight),
            (2, 1, 2)
        );
        drop(second);
        assert_eq!(super::stats().in_flight, 0);
    }
}
