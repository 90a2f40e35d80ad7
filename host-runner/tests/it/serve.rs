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

#[test]
fn connections_spread_over_every_serving_thread() {
    // Each thread has a listener of its own on the port, so the kernel
    // deals connections out by address hash: no thread can take a whole
    // burst just by waking first.
    let server = RunningServer::start(
        &guest_wasm("hello_p3"),
        &["--threads=2", "--metrics-addr=127.0.0.1:0"],
    );
    let mut connections: Vec<_> = (0..64).map(|_| server.connect()).collect();
    for connection in &mut connections {
        assert_eq!(connection.get("/").unwrap().text(), "Hello, WASI!");
    }
    let metrics = server.metrics();
    let open = |thread: usize| {
        metrics.count(&format!(
            "reprise_thread_connections_open{{thread=\"{thread}\"}}"
        ))
    };
    let requests = |thread: usize| {
        metrics.count(&format!(
            "reprise_thread_requests_total{{thread=\"{thread}\"}}"
        ))
    };
    assert_eq!(open(0) + open(1), 64, "{}", metrics.0);
    assert_eq!(requests(0) + requests(1), 64, "{}", metrics.0);
    // An even hash leaves fewer than 16 of 64 on one side about once in
    // 30,000 runs.
    assert!(open(0).min(open(1)) >= 16, "{}", metrics.0);
    drop(connections);
    server.wait_for_metrics("connections closed", Duration::from_secs(10), |m| {
        m.count("reprise_thread_connections_open{thread=\"0\"}")
            + m.count("reprise_thread_connections_open{thread=\"1\"}")
            == 0
    });
}

#[test]
fn a_thread_stuck_in_guest_code_does_not_strand_new_connections() {
    // No request timeout: the busy loop holds its thread for good. The
    // connections the kernel queues for that thread are taken over by the
    // other one, so every new client is answered.
    let server = RunningServer::start(
        &guest_wasm("faults_p3"),
        &["--threads=2", "--metrics-addr=127.0.0.1:0"],
    );
    let mut stuck = server.connect();
    stuck
        .send_raw(b"GET /?busy_ms=forever HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    server.wait_for_metrics("the busy loop to start", Duration::from_secs(10), |m| {
        m.count("reprise_requests_in_flight") == 1
    });
    for n in 0..16 {
        let mut connection = server.connect();
        connection.set_read_timeout(Duration::from_secs(5)).unwrap();
        let response = connection
            .get("/")
            .unwrap_or_else(|e| panic!("connection {n} was not served: {e}"));
        assert_eq!(response.status, 200);
    }
}
