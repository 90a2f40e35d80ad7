//! Hostile and broken clients: malformed HTTP (400), oversized headers (431),
//! slow-loris clients (closed after `--header-read-timeout`), clients that
//! vanish mid-request or mid-body (nothing leaks: instances and in-flight
//! requests return to zero), pipelined requests (answered in order). Each is
//! handled without affecting a well-behaved client served at the same time.

use std::thread;
use std::time::Duration;

use crate::common::{HttpConnection, RunningServer, guest_wasm};

const WAIT: Duration = Duration::from_secs(30);

fn assert_still_serving(server: &RunningServer) {
    let response = server.get("/");
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "Hello, WASI!"),
        "a well-behaved client is still served"
    );
}

#[test]
fn malformed_http_gets_400_and_other_clients_are_unaffected() {
    let server = RunningServer::start(&guest_wasm("hello_p3"), &[]);
    for garbage in [
        &b"this is not HTTP\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length: banana\r\n\r\n",
        b"GET / HTTP/1.1\r\nbad header line\r\n\r\n",
    ] {
        let mut connection = server.connect();
        connection.send_raw(garbage).expect("sends");
        let response = connection.read_next_response().expect("an answer");
        assert_eq!(
            response.status,
            400,
            "{:?}",
            String::from_utf8_lossy(garbage)
        );
        connection
            .wait_closed()
            .expect("then the connection closes");
        assert_still_serving(&server);
    }
}

#[test]
fn oversized_headers_get_431() {
    let server = RunningServer::start(&guest_wasm("hello_p3"), &[]);
    let huge = format!("X-Huge: {}\r\n", "x".repeat(70 << 10));
    let many: String = (0..200).map(|n| format!("X-Many-{n}: {n}\r\n")).collect();
    for headers in [huge, many] {
        let mut connection = server.connect();
        connection
            .send_raw(format!("GET / HTTP/1.1\r\nHost: test\r\n{headers}\r\n").as_bytes())
            .expect("sends");
        let response = connection.read_next_response().expect("an answer");
        assert_eq!(response.status, 431);
        assert_still_serving(&server);
    }
}

#[test]
fn slow_loris_clients_are_closed_after_the_header_read_timeout_while_others_are_served() {
    let server = RunningServer::start(&guest_wasm("hello_p3"), &["--header-read-timeout=1s"]);
    let mut slow: Vec<HttpConnection> = (0..20)
        .map(|_| {
            let mut connection = server.connect();
            connection
                .send_raw(b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow: ")
                .expect("sends half a head");
            connection
        })
        .collect();
    // Meanwhile everyone else is served as usual.
    for response in crate::common::fan_out(&server, 4, 5, "/") {
        assert_eq!(response.status, 200);
    }
    // The read timeout bounds the wait; the server closes first.
    for connection in &mut slow {
        connection.set_read_timeout(WAIT).expect("sets a timeout");
        let rest = connection
            .wait_closed()
            .expect("the server closes the connection");
        assert!(
            rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
            "{:?}",
            String::from_utf8_lossy(&rest)
        );
    }
    assert_still_serving(&server);
}

/// Sends `request` on `clients` connections, waits until the server is
/// handling all of them, then drops every connection: the clients vanish
/// while their requests are in the guest.
fn vanish_mid_request(server: &RunningServer, clients: u64, request: &[u8]) {
    let connections: Vec<HttpConnection> = (0..clients)
        .map(|_| {
            let mut connection = server.connect();
            connection.send_raw(request).expect("sends");
            connection
        })
        .collect();
    server.wait_for_metrics("every request in the guest", WAIT, |m| {
        m.count("reprise_requests_in_flight") == clients
    });
    drop(connections);
}

/// `faults_p3` with metrics, and instances dropped soon after they go idle,
/// so that a leak shows as one still live.
fn start_watching_for_leaks() -> RunningServer {
    RunningServer::start(
        &guest_wasm("faults_p3"),
        &[
            "--metrics-addr=127.0.0.1:0",
            "--idle-instance-timeout=200ms",
        ],
    )
}

fn assert_nothing_left(server: &RunningServer) {
    server.wait_for_metrics("no instance and no request left", WAIT, |m| {
        m.count("reprise_instances_live") == 0 && m.count("reprise_requests_in_flight") == 0
    });
}

#[test]
fn clients_that_vanish_mid_body_or_mid_head_leak_no_instance() {
    let server = start_watching_for_leaks();
    // 10 of the 100,000 bytes announced, then gone: the guest is reading.
    vanish_mid_request(
        &server,
        10,
        b"POST /?read_body=1 HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n0123456789",
    );
    // Half a head, then gone: the request never reaches the guest.
    for _ in 0..10 {
        let mut connection = server.connect();
        connection
            .send_raw(b"POST / HTTP/1.1\r\nHost: te")
            .expect("sends");
    }
    assert_nothing_left(&server);
    let upload = server
        .connect()
        .request("POST", "/?read_body=1", &[], b"still here")
        .expect("POST");
    assert_eq!(
        (upload.status, upload.text().as_str()),
        (200, "read 10 bytes\n")
    );
}

#[test]
fn clients_that_vanish_while_the_guest_works_leak_no_instance() {
    let server = start_watching_for_leaks();
    vanish_mid_request(
        &server,
        10,
        b"GET /?sleep_ms=500 HTTP/1.1\r\nHost: test\r\n\r\n",
    );
    assert_nothing_left(&server);
    assert_eq!(server.get("/").status, 200);
}

#[test]
fn pipelined_requests_are_answered_in_order_beside_other_clients() {
    let server = RunningServer::start(&guest_wasm("faults_p3"), &[]);
    let mut pipelined = Vec::new();
    for size in 1..=5 {
        pipelined.extend_from_slice(
            format!("POST /?read_body=1 HTTP/1.1\r\nHost: test\r\nContent-Length: {size}\r\n\r\n")
                .as_bytes(),
        );
        pipelined.extend(std::iter::repeat_n(b'x', size));
    }
    thread::scope(|scope| {
        let others = scope.spawn(|| {
            (0..10)
                .map(|_| {
                    server
                        .connect()
                        .request("POST", "/?read_body=1", &[], b"abc")
                        .expect("POST")
                })
                .collect::<Vec<_>>()
        });
        let mut connection = server.connect();
        connection.send_raw(&pipelined).expect("sends five at once");
        for size in 1..=5 {
            let response = connection.read_next_response().expect("an answer");
            assert_eq!(
                (response.status, response.text()),
                (200, format!("read {size} bytes\n"))
            );
        }
        for response in others.join().unwrap() {
            assert_eq!(
                (response.status, response.text().as_str()),
                (200, "read 3 bytes\n")
            );
        }
    });
}
