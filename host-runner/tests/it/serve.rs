//! Serving, end to end: sample components built with reprise, served by
//! host-runner, spoken to over HTTP/1.1 on 127.0.0.1. The matrix follows
//! `wasmtime serve`'s own tests: 1 connection x 1 request and 20 keep-alive
//! connections x 5 requests, with and without instance reuse.

use crate::common::{RunningServer, fan_out, guest_wasm};
use std::collections::HashSet;
use std::time::Duration;

fn assert_hello_matrix(guest: &str, flags: &[&str]) {
    let server = RunningServer::start(&guest_wasm(guest), flags);
    for (connections, per_connection) in [(1, 1), (20, 5)] {
        let responses = fan_out(&server, connections, per_connection, "/");
        assert_eq!(responses.len(), connections * per_connection);
        for response in responses {
            assert_eq!(
                (response.status, response.text().as_str()),
                (200, "Hello, WASI!"),
                "{guest} {flags:?} {connections}x{per_connection}"
            );
        }
    }
}

#[test]
fn hello_p3_answers_every_request_with_default_reuse() {
    assert_hello_matrix("hello_p3", &[]);
}

#[test]
fn hello_p3_answers_every_request_without_reuse() {
    assert_hello_matrix("hello_p3", &["--max-instance-reuse-count=1"]);
}

#[test]
fn hello_p3_answers_every_request_without_concurrent_reuse() {
    assert_hello_matrix("hello_p3", &["--max-instance-concurrent-reuse-count=1"]);
}

#[test]
fn hello_p2_answers_every_request_by_default() {
    assert_hello_matrix("hello_p2", &[]);
}

#[test]
fn hello_p2_answers_every_request_with_serial_reuse() {
    assert_hello_matrix("hello_p2", &["--max-instance-reuse-count=128"]);
}

/// Every request sleeps forever and must come back as a 504 naming the
/// timeout, promptly; the server must still answer afterwards.
fn assert_every_sleep_times_out(guest: &str) {
    let server = RunningServer::start(&guest_wasm(guest), &["--request-timeout=100us"]);
    for (connections, per_connection) in [(1, 1), (20, 5)] {
        for response in fan_out(&server, connections, per_connection, "/") {
            assert_eq!(
                response.status, 504,
                "{guest} {connections}x{per_connection}"
            );
            assert_eq!(response.text(), "request timed out after 100us\n");
        }
    }
    // A request that does not sleep may even beat 100us; either way it is answered.
    let after = server.get("/?ms=0");
    assert!(
        matches!(after.status, 200 | 504),
        "still answering afterwards: {after:?}"
    );
}

#[test]
fn async_sleep_past_the_timeout_gets_504_and_the_server_keeps_serving() {
    assert_every_sleep_times_out("sleep_p3");
}

#[test]
fn blocking_sleep_past_the_timeout_gets_504_and_the_server_keeps_serving() {
    assert_every_sleep_times_out("sleep_p2");
}

/// Requests that sleep forever time out while short ones beside them, on
/// the same instances, still succeed.
fn assert_timeouts_spare_other_requests(guest: &str, flags: &[&str]) {
    let mut flags = flags.to_vec();
    flags.push("--request-timeout=2s");
    let server = RunningServer::start(&guest_wasm(guest), &flags);
    let (stuck, quick) = std::thread::scope(|scope| {
        let stuck = scope.spawn(|| fan_out(&server, 3, 1, "/"));
        let quick = scope.spawn(|| fan_out(&server, 10, 3, "/?ms=10"));
        (stuck.join().unwrap(), quick.join().unwrap())
    });
    assert!(
        stuck.iter().all(|r| r.status == 504),
        "stuck requests time out"
    );
    assert!(
        quick.iter().all(|r| r.status == 200),
        "quick requests succeed"
    );
}

#[test]
fn a_timed_out_p3_request_does_not_fail_requests_beside_it() {
    assert_timeouts_spare_other_requests("sleep_p3", &[]);
}

#[test]
fn a_timed_out_p2_request_does_not_fail_requests_beside_it() {
    assert_timeouts_spare_other_requests("sleep_p2", &["--max-instance-reuse-count=128"]);
}

/// Sends 10 requests one after another on one connection and returns the
/// distinct instances that served them.
fn instances_for_ten_sequential_requests(guest: &str, flags: &[&str]) -> HashSet<u64> {
    let mut flags = flags.to_vec();
    flags.push("--debug-headers");
    let server = RunningServer::start(&guest_wasm(guest), &flags);
    let mut connection = server.connect();
    (0..10)
        .map(|_| {
            let response = connection.get("/").expect("GET /");
            assert_eq!(response.status, 200);
            response
                .instance()
                .expect("--debug-headers names the instance")
        })
        .collect()
}

#[test]
fn instances_are_reused_when_allowed_and_never_with_reuse_count_1() {
    // Reuse is allowed, not promised: a request may arrive while the last
    // one's instance is still finishing its body, and get a new instance.
    // Ten requests on ten instances would mean no reuse at all.
    assert!(instances_for_ten_sequential_requests("hello_p3", &[]).len() < 10);
    assert_eq!(
        instances_for_ten_sequential_requests("hello_p3", &["--max-instance-reuse-count=1"]).len(),
        10
    );
    assert_eq!(
        instances_for_ten_sequential_requests("hello_p2", &[]).len(),
        10
    );
    assert!(
        instances_for_ten_sequential_requests("hello_p2", &["--max-instance-reuse-count=128"])
            .len()
            < 10
    );
}

#[test]
fn threads_share_instance_numbers_but_not_instances() {
    // Four threads, one request per instance: 40 requests over 8
    // concurrent connections spread over the threads, and still every
    // instance has a number of its own.
    let server = RunningServer::start(
        &guest_wasm("hello_p3"),
        &[
            "--threads=4",
            "--max-instance-reuse-count=1",
            "--debug-headers",
            "--metrics-addr=127.0.0.1:0",
        ],
    );
    let responses = fan_out(&server, 8, 5, "/");
    let instances: HashSet<u64> = responses.iter().filter_map(|r| r.instance()).collect();
    assert_eq!(instances.len(), 40, "one instance, one number, per request");
    let metrics = server.wait_for_metrics("40 instances retired", Duration::from_secs(30), |m| {
        m.count("reprise_instances_live") == 0
    });
    assert_eq!(metrics.count("reprise_instances_created_total"), 40);

    // One thread: every connection is in reach of the one instance that
    // sequential requests leave idle.
    let server = RunningServer::start(&guest_wasm("hello_p3"), &["--threads=1", "--debug-headers"]);
    let instances: HashSet<u64> = (0..6)
        .map(|_| server.get("/").instance().expect("--debug-headers"))
        .collect();
    assert!(
        instances.len() < 6,
        "reused across connections: {instances:?}"
    );
}
