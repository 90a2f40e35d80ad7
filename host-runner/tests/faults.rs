//! What the spine promises when a guest misbehaves or the server is asked to
//! stop: a busy loop still times out, a trap is a 500 that does not take the
//! server down, and a graceful shutdown lets in-flight requests finish.

mod common;

use common::{RunningServer, guest_wasm};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

#[test]
fn a_busy_loop_past_the_timeout_gets_504_and_the_server_keeps_serving() {
    let server = RunningServer::start(&guest_wasm("faults_p3"), &["--request-timeout=200ms"]);
    let stuck = server.get("/?busy_ms=forever");
    assert_eq!(
        (stuck.status, stuck.text()),
        (504, "request timed out after 200ms\n".into())
    );
    assert_eq!(
        server.get("/").status,
        200,
        "a fresh instance serves the next request"
    );
}

#[test]
fn a_trap_gets_500_without_guest_internals_and_the_next_request_is_served() {
    let server = RunningServer::start(&guest_wasm("faults_p3"), &["--debug-headers"]);
    let trapped = server.get("/?trap=1");
    assert_eq!(trapped.status, 500);
    let body = trapped.text();
    assert_eq!(body.lines().count(), 1, "one line: {body:?}");
    assert!(
        !body.contains("trap requested"),
        "the guest's panic message stays in the logs"
    );
    let next = server.get("/");
    assert_eq!(next.status, 200);
    assert_eq!(
        next.instance_request(),
        Some(1),
        "the trapped instance is not reused"
    );
}

/// Starts a slow request, asks the server to stop, and checks that new
/// connections are refused at once while the request still completes, and
/// that the server then exits 0.
fn assert_graceful_shutdown(extra_flags: &[&str], stop: impl FnOnce(&RunningServer)) {
    let mut server = RunningServer::start(&guest_wasm("sleep_p3"), extra_flags);
    thread::scope(|scope| {
        let in_flight = scope.spawn(|| server.get("/?ms=1000"));
        thread::sleep(Duration::from_millis(150));
        stop(&server);
        thread::sleep(Duration::from_millis(200));
        assert!(
            TcpStream::connect(server.addr).is_err(),
            "a stopping server refuses new connections"
        );
        let response = in_flight.join().unwrap();
        assert_eq!(
            (response.status, response.text()),
            (200, "slept 1000 ms\n".into())
        );
    });
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("the server exits after its last request");
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits_0() {
    assert_graceful_shutdown(&[], |server| server.signal("TERM"));
}

#[test]
fn ctrl_c_lets_in_flight_requests_finish_then_exits_0() {
    assert_graceful_shutdown(&[], |server| server.signal("INT"));
}

#[test]
fn a_connection_to_the_shutdown_address_stops_the_server_gracefully() {
    assert_graceful_shutdown(&["--shutdown-addr=127.0.0.1:0"], |server| {
        let addr = server.shutdown_addr.expect("shutdown address printed");
        TcpStream::connect(addr).expect("connects to the shutdown address");
    });
}
