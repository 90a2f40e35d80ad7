//! A p2 reuse policy that the host does not let hold is not silent: when a
//! host hands a retired instance another request, the SDK refuses it with
//! `503`, without running the handler, and says why on stderr.
//!
//! wasmtime's `ProxyHandler` never sends work to an instance under
//! backpressure, so host-runner cannot be made to break a policy the guest
//! enforces. The `never-unheld-p2` test component stands in for a host that
//! ignores backpressure (as `jco serve` does by default): it carries
//! `never` but no backpressure built-in and no policy section, so
//! `--max-instance-reuse-count` reuses its instance as such a host would.
//! Fewer moving parts than running jco here, and it needs nothing but the
//! built components.

use std::time::Duration;

use crate::common::{RunningServer, guest_wasm};

const HELLO: &str = "Hello from an instance that serves no one else\n";

#[test]
fn a_p2_never_instance_that_its_host_reuses_refuses_later_requests_and_warns_on_stderr() {
    let server = RunningServer::start(
        &guest_wasm("never_unheld_p2"),
        &["--max-instance-reuse-count=8", "--debug-headers"],
    );

    let mut refusals = 0;
    for _ in 0..6 {
        // A pause lets the previous worker become idle, so the host hands
        // this request to it rather than start another (it may start one
        // anyway: the assertions hold for either).
        std::thread::sleep(Duration::from_millis(100));
        let response = server.get("/");
        if response.instance_request() == Some(1) {
            assert_eq!((response.status, response.text().as_str()), (200, HELLO));
            continue;
        }
        // The host reused the instance: that is what the SDK saw.
        refusals += 1;
        assert_eq!(response.status, 503, "{}", response.text());
        assert!(
            response.text().contains("retired under its reuse policy"),
            "{}",
            response.text()
        );
    }
    assert!(refusals > 0, "the host never reused an instance");

    // Guest stderr reaches host-runner's own through a pipe: give the last
    // line a moment (a liveness bound, not a speed claim).
    let warnings = || -> Vec<String> {
        let logs = server.logs().into_iter();
        logs.filter(|line| line.contains("reprise: warning"))
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while warnings().len() < refusals && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let warnings = warnings();
    assert_eq!(
        warnings.len(),
        refusals,
        "one line per refusal: {warnings:?}"
    );
    assert!(
        warnings.iter().all(|line| line
            .contains("the host sent a request to an instance retired by reuse policy `never`")
            && line.contains("regardless of their backpressure")
            && line.contains("Answered 503 without running the handler")),
        "{warnings:?}"
    );
}

#[test]
fn a_p2_never_instance_on_a_host_that_honours_backpressure_is_never_reused_nor_warned() {
    // The same policy through `export_p2!`, the section ignored: the
    // guest's backpressure alone keeps every request on a fresh instance.
    let server = RunningServer::start(
        &guest_wasm("single_use_p2"),
        &[
            "--max-instance-reuse-count=8",
            "--ignore-guest-policy",
            "--debug-headers",
        ],
    );
    let instances: Vec<_> = (0..3)
        .map(|_| {
            let response = server.get("/");
            assert_eq!((response.status, response.text().as_str()), (200, HELLO));
            assert_eq!(response.instance_request(), Some(1));
            response.instance()
        })
        .collect();
    assert_eq!(instances, [Some(1), Some(2), Some(3)]);
    assert!(
        !server
            .logs()
            .iter()
            .any(|line| line.contains("reprise: warning")),
        "{:?}",
        server.logs()
    );
}
