//! The host's remaining hazards, each over real HTTP: instances spread
//! over serving threads, stalled request bodies, and limits that must hold
//! whatever a request does.

use std::time::{Duration, Instant};

use crate::common::{HttpResponse, RunningServer, guest_wasm};

#[test]
fn one_instance_on_two_threads_answers_every_sequential_request() {
    let server = RunningServer::start(
        &guest_wasm("hello_p3"),
        &[
            "--max-instances=1",
            "--threads=2",
            "--metrics-addr=127.0.0.1:0",
        ],
    );
    // A fresh connection each time, so the kernel spreads them over both
    // threads; the one instance is idle, or finishing, between requests.
    let statuses: Vec<u16> = (0..40).map(|_| server.get("/").status).collect();
    assert!(
        statuses.iter().all(|status| *status == 200),
        "with the only instance idle, a request got {statuses:?}"
    );
    let metrics = server.metrics();
    for thread in ["0", "1"] {
        assert!(
            metrics.count(&format!(
                "reprise_thread_requests_total{{thread=\"{thread}\"}}"
            )) > 0,
            "every request landed on one thread: nothing was tested"
        );
    }
}

/// A request that announces 100 body bytes and sends 10, then nothing.
const STALLED_UPLOAD: &[u8] =
    b"POST /?read_body=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n0123456789";

/// Sends [`STALLED_UPLOAD`], then returns the response and how long after
/// the request the server had answered it and closed the connection.
fn stall_upload(server: &RunningServer) -> (HttpResponse, Duration) {
    let mut connection = server.connect();
    connection.send_raw(STALLED_UPLOAD).unwrap();
    let sent = Instant::now();
    let response = connection.read_next_response().unwrap();
    connection.wait_closed().unwrap();
    (response, sent.elapsed())
}

#[test]
fn a_stalled_body_under_a_request_timeout_is_answered_and_closed_at_the_timeout() {
    for guest in ["faults_p3", "faults_p2"] {
        let server = RunningServer::start(&guest_wasm(guest), &["--request-timeout=2s"]);
        let (response, took) = stall_upload(&server);
        assert_eq!(response.status, 504, "{guest}: {}", response.text());
        // A correctness bound, not a speed test: the exchange used to end
        // at twice the timeout (4 s), when the timed-out instance went.
        assert!(
            took < Duration::from_millis(3500),
            "{guest}: the 504 and the close took {took:?} under --request-timeout 2s"
        );
    }
}

#[test]
fn a_request_body_that_stops_arriving_gets_408_and_its_connection_closed() {
    let server = RunningServer::start(
        &guest_wasm("faults_p3"),
        &[
            "--request-body-idle-timeout=1s",
            "--metrics-addr=127.0.0.1:0",
        ],
    );
    let (response, took) = stall_upload(&server);
    assert_eq!(response.status, 408, "{}", response.text());
    assert_eq!(
        response.text(),
        "request body stalled: nothing arrived for 1s\n"
    );
    assert_eq!(response.header("connection"), Some("close"));
    // A liveness bound (no request timeout is set): the idle timeout, not
    // anything later, ended the exchange.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    server.wait_for_metrics("the 408 counted", Duration::from_secs(5), |m| {
        m.count("reprise_requests_total{outcome=\"body_idle\"}") == 1
    });

    // A body that keeps arriving, however slowly, is not idle.
    let mut slow = server.connect();
    slow.send_raw(b"POST /?read_body=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\n")
        .unwrap();
    for byte in [b"a", b"b", b"c", b"d", b"e"] {
        std::thread::sleep(Duration::from_millis(400));
        slow.send_raw(byte).unwrap();
    }
    let response = slow.read_next_response().unwrap();
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "read 5 bytes\n")
    );
}

#[test]
fn a_p3_guest_sees_the_authority_of_an_origin_form_request_from_its_host_header() {
    let server = RunningServer::start(&guest_wasm("borrow_across_await_p3"), &[]);
    let mut connection = server.connect();
    connection
        .send_raw(b"GET /where?q=1 HTTP/1.1\r\nHost: example.test:8080\r\n\r\n")
        .unwrap();
    let response = connection.read_next_response().unwrap();
    // The guest echoes the URI it was given, as p2 guests see it too.
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "noted http://example.test:8080/where?q=1\n")
    );
}
