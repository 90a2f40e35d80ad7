//! Keep-alive connections for guests' outgoing HTTP: requests from any
//! instance to one origin share a pooled connection, the allow-list still
//! decides every request, a connection the backend closed is replaced
//! without failing a request, a request the backend may have processed is
//! never sent twice, and idle connections close after
//! `--outbound-idle-timeout`. Connections are counted on the backend's side
//! (a real keep-alive server on 127.0.0.1) and in `/metrics`.

use std::thread;
use std::time::{Duration, Instant};

use crate::common::backend::{Backend, FixedBackend};
use crate::common::{RunningServer, guest_wasm};

const OPENED: &str = "reprise_outbound_connections_opened_total";

/// Serves the `proxy-p3` sample in front of `backend` with `flags`, on one
/// serving thread (connections are pooled per serving thread).
fn proxy(backend: &Backend, flags: &[&str]) -> RunningServer {
    let target = format!("BACKEND={}", backend.url);
    let mut args = vec![
        "--env",
        &target,
        "--metrics-addr=127.0.0.1:0",
        "--threads=1",
    ];
    args.extend_from_slice(flags);
    RunningServer::start(&guest_wasm("proxy_p3"), &args)
}

/// Waits up to `timeout` for `done` (a liveness bound, not a speed claim).
fn wait_until(timeout: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

#[test]
fn fifty_sequential_proxied_requests_from_several_instances_open_one_backend_connection() {
    let backend = Backend::start();
    let server = proxy(&backend, &["--max-instance-reuse-count=5"]);
    for i in 0..50 {
        let response = server.get(&format!("/echo?i={i}"));
        assert_eq!(response.status, 200, "request {i}: {}", response.text());
        assert_eq!(response.header("x-path"), Some(&*format!("/echo?i={i}")));
    }
    assert_eq!(backend.requests(), 50);
    assert_eq!(backend.connections(), 1, "connections the backend accepted");
    let metrics = server.metrics();
    assert_eq!(metrics.count(OPENED), 1);
    // Ten instances at five requests each: the connection outlived them.
    assert!(metrics.count("reprise_instances_created_total") >= 10);
}

#[test]
fn with_an_idle_timeout_of_zero_every_request_opens_its_own_connection() {
    let backend = Backend::start();
    let server = proxy(&backend, &["--outbound-idle-timeout=0"]);
    for i in 0..5 {
        assert_eq!(server.get(&format!("/echo?i={i}")).status, 200);
    }
    assert_eq!(backend.connections(), 5);
    assert_eq!(server.metrics().count(OPENED), 5);
}

#[test]
fn a_denied_destination_is_refused_while_a_pooled_connection_to_an_allowed_one_is_open() {
    let allowed = Backend::start();
    let other = FixedBackend::start("never");
    let allowed_addr = allowed.url.trim_start_matches("http://").to_owned();
    let port = allowed_addr.rsplit_once(':').expect("a port").1.to_owned();
    let server = RunningServer::start(
        &guest_wasm("fetch_p2"),
        &["--allow-outbound", &allowed_addr, "--threads=1"],
    );
    for _ in 0..2 {
        let response = server.get(&format!("/?to={allowed_addr}"));
        assert_eq!(response.text(), "ok 404 no such route\n");
    }
    assert_eq!(
        allowed.connections(),
        1,
        "the allowed calls share one connection"
    );
    // The same backend by another name, and another port: both denied
    // though a connection to the allowed origin is open and idle.
    for denied in [format!("localhost:{port}"), other.addr.to_string()] {
        let response = server.get(&format!("/?to={denied}"));
        assert_eq!(response.status, 502, "{denied}: {}", response.text());
        assert_eq!(
            response.text(),
            "error ErrorCode::HttpRequestDenied",
            "{denied}"
        );
    }
    assert_eq!(
        allowed.requests(),
        2,
        "a denied call reached the allowed backend"
    );
    assert_eq!(other.connections(), 0, "a denied call reached the network");
}

#[test]
fn a_connection_the_backend_closed_while_idle_does_not_fail_the_next_request() {
    let backend = Backend::closing_idle_after(Duration::from_millis(100));
    let server = proxy(&backend, &[]);
    assert_eq!(server.get("/echo?first").status, 200);
    // Let the backend's keep-alive timeout close the pooled connection.
    thread::sleep(Duration::from_millis(500));
    let response = server.get("/echo?second");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(backend.connections(), 2);
    assert_eq!(backend.requests(), 2);
}

#[test]
fn a_request_the_backend_may_have_processed_is_not_sent_again() {
    let backend = Backend::start();
    let server = proxy(&backend, &[]);
    // The first call is answered; the second goes out on the pooled
    // connection, which the backend closes after reading it.
    assert_eq!(server.get("/fails-after?n=1").status, 200);
    let response = server.get("/fails-after?n=1");
    assert_eq!(response.status, 502, "{}", response.text());
    assert_eq!(backend.connections(), 1);
    assert_eq!(
        backend.requests(),
        2,
        "the unanswered request was sent again"
    );
}

#[test]
fn the_idle_timeout_closes_pooled_connections() {
    let backend = Backend::start();
    let server = proxy(&backend, &["--outbound-idle-timeout=200ms"]);
    assert_eq!(server.get("/echo").status, 200);
    assert!(
        wait_until(Duration::from_secs(10), || backend.closed_by_caller() == 1),
        "the idle pooled connection was not closed"
    );
    assert_eq!(server.get("/echo").status, 200);
    assert_eq!(backend.connections(), 2);
    assert_eq!(server.metrics().count(OPENED), 2);
}
