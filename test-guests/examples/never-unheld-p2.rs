//! `ReusePolicy::never()` on WASIp2 as a host that ignores backpressure
//! sees it: `export_p2!`'s export, minus the two things a host could act
//! on, the `reprise:reuse-policy` section and the backpressure built-in.
//!
//! wasmtime's `ProxyHandler` sends nothing to an instance under
//! backpressure, so no host-runner flag makes it reuse one that retired.
//! `jco serve` does (it ignores backpressure and keeps one instance), and
//! this component is how host-runner's tests get that host's behaviour:
//! served with `--max-instance-reuse-count`, it gets its second request on
//! the instance that took the first, and only the SDK's run-time check is
//! left to notice. Not a pattern for apps: they use `export_p2!`.

use reprise::__private::{p2, wasip2};
use reprise::{Handler, IntoResponse, Request, ReusePolicy};

#[derive(Default)]
struct SingleUse;

impl Handler for SingleUse {
    async fn handle(&self, _request: Request) -> impl IntoResponse {
        "Hello from an instance that serves no one else\n"
    }
}

static POLICY: ReusePolicy = ReusePolicy::never();

struct Export;

impl wasip2::exports::http::incoming_handler::Guest for Export {
    fn handle(
        request: wasip2::http::types::IncomingRequest,
        response_out: wasip2::http::types::ResponseOutparam,
    ) {
        // `false`: no backpressure built-in, whatever the policy retires.
        p2::handle::<_, false>(&POLICY, SingleUse::default, request, response_out);
    }
}

wasip2::http::proxy::export!(Export with_types_in wasip2);
