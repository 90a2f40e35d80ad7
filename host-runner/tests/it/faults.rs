//! What host-runner promises when a guest misbehaves or it is asked to
//! stop: a busy loop still times out, a trap is a 500 that does not take the
//! server down, work that outlives its requests cannot pin an instance, a
//! graceful shutdown lets in-flight requests finish, and a second signal
//! stops the server even while a guest never yields.

use crate::common::{RunningServer, guest_wasm};
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

/// `faults_never_p3` (one request per instance) with room for two instances
/// and no request timeout: two instances pinned, and every further request
/// would get 503.
fn start_with_two_instances() -> RunningServer {
    RunningServer::start(
        &guest_wasm("faults_never_p3"),
        &[
            "--max-instances=2",
            "--idle-instance-timeout=300ms",
            "--metrics-addr=127.0.0.1:0",
        ],
    )
}

/// Waits for both instances to be dropped for lingering, and checks that
/// the server serves again.
fn assert_both_instances_dropped_for_lingering(server: &RunningServer) {
    let metrics = server.wait_for_metrics(
        "both instances dropped for lingering",
        Duration::from_secs(15),
        |m| m.count("reprise_instances_retired_total{reason=\"lingering\"}") == 2,
    );
    assert_eq!(metrics.count("reprise_instances_live"), 0);
    assert!(
        server
            .wait_for_log("guest work outlived its requests", Duration::from_secs(5))
            .is_some(),
        "{:?}",
        server.logs()
    );
    assert_eq!(server.get("/").status, 200, "instances are free again");
}

#[test]
fn work_left_running_after_the_response_does_not_pin_its_instance() {
    let server = start_with_two_instances();
    for _ in 0..2 {
        let response = server.get("/?linger=1");
        assert_eq!(response.status, 200, "{}", response.text());
    }
    assert_both_instances_dropped_for_lingering(&server);
}

#[test]
fn a_request_whose_client_left_and_that_never_finishes_does_not_pin_its_instance() {
    let server = start_with_two_instances();
    let abandoned: Vec<_> = (0..2)
        .map(|_| {
            let mut connection = server.connect();
            connection
                .send_raw(b"GET /?sleep_ms=600000 HTTP/1.1\r\nHost: test\r\n\r\n")
                .expect("sends");
            connection
        })
        .collect();
    server.wait_for_metrics("both requests in a guest", Duration::from_secs(30), |m| {
        m.count("reprise_instances_created_total") == 2
            && m.count("reprise_requests_in_flight") == 2
    });
    drop(abandoned);
    assert_both_instances_dropped_for_lingering(&server);
}

#[test]
fn a_second_sigterm_stops_a_server_whose_guest_never_yields() {
    // No request timeout: nothing interrupts the loop.
    let mut server =
        RunningServer::start(&guest_wasm("faults_p3"), &["--metrics-addr=127.0.0.1:0"]);
    let mut stuck = server.connect();
    stuck
        .send_raw(b"GET /?busy_ms=forever HTTP/1.1\r\nHost: test\r\n\r\n")
        .expect("sends");
    server.wait_for_metrics("the loop running", Duration::from_secs(30), |m| {
        m.count("reprise_instances_created_total") == 1
            && m.count("reprise_requests_in_flight") == 1
    });
    server.signal("TERM");
    assert!(
        server.wait_exit(Duration::from_millis(500)).is_none(),
        "the first signal waits for the request in flight"
    );
    server.signal("TERM");
    server
        .wait_exit(Duration::from_secs(15))
        .expect("the second signal stops the server");
}
