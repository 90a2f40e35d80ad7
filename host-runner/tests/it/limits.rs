//! Limits that keep one guest or one client from taking the host down:
//! linear memory per instance (`--max-memory-size`) and for all instances
//! together (`--max-total-memory`), and request bodies
//! (`--max-request-body-size`, 413). The instance limit (`--max-instances`)
//! is in statuses.rs, the header read timeout in hostile.rs.

use std::thread;
use std::time::Duration;

use crate::common::{RunningServer, guest_wasm};

/// `faults_p3` served with `--LIMIT=SIZE` and metrics, once start-up has
/// said `LIMIT SIZE`.
fn serve_with_limit(limit: &str, size: &str) -> RunningServer {
    let server = RunningServer::start(
        &guest_wasm("faults_p3"),
        &[&format!("--{limit}={size}"), "--metrics-addr=127.0.0.1:0"],
    );
    let line = server
        .wait_for_log(limit, Duration::from_secs(1))
        .expect("start-up describes the limits");
    assert!(line.contains(&format!("{limit} {size}")), "{line}");
    server
}

#[test]
fn a_guest_growing_past_max_memory_size_fails_alone_and_the_next_request_is_served() {
    let server = serve_with_limit("max-memory-size", "16MiB");
    assert_eq!(server.get("/?leak_kib=1024").status, 200, "1 MiB fits");
    let grown = server.get("/?leak_kib=32768");
    assert_eq!(
        (grown.status, grown.text().as_str()),
        (500, "the component trapped while handling the request\n"),
        "a 32 MiB allocation fails inside the guest"
    );
    assert_eq!(server.get("/").status, 200, "a fresh instance serves");
    let metrics = server.metrics();
    assert_eq!(
        metrics.count("reprise_instances_retired_total{reason=\"trap\"}"),
        1
    );
}

#[test]
fn an_instance_growing_past_max_total_memory_fails_alone_and_the_others_answer() {
    const MIB: u64 = 1 << 20;
    let server = serve_with_limit("max-total-memory", "64MiB");

    let (first, second) = thread::scope(|scope| {
        // 40 MiB, then held with backpressure so the next request needs an
        // instance of its own.
        let first = scope.spawn(|| server.get("/?leak_kib=40960&hold_ms=3000"));
        server.wait_for_metrics("the first 40 MiB", Duration::from_secs(30), |m| {
            m.count("reprise_linear_memory_bytes") >= 40 * MIB
        });
        let second = server.get("/?leak_kib=40960");
        (first.join().unwrap(), second)
    });
    assert_eq!(
        (second.status, second.text().as_str()),
        (500, "the component trapped while handling the request\n"),
        "a second 40 MiB would pass 64 MiB in all: its allocation fails in the guest"
    );
    assert_eq!(first.status, 200, "the first instance kept its memory");
    assert_eq!(server.get("/").status, 200, "the server still serves");

    let metrics = server.metrics();
    // The guest's allocator may ask again for less before it gives up.
    assert!(metrics.count("reprise_memory_growths_refused_total") >= 1);
    assert!(metrics.count("reprise_linear_memory_bytes") <= 64 * MIB);
    // Dropped instances give their memory back.
    server.wait_for_metrics("every instance gone", Duration::from_secs(30), |m| {
        m.count("reprise_instances_live") == 0 && m.count("reprise_linear_memory_bytes") == 0
    });
}

#[test]
fn a_new_instance_that_does_not_fit_in_max_total_memory_gets_503_with_retry_after() {
    // One faults_p3 instance starts with about 1.06 MiB of linear memory:
    // a second one does not fit in 2 MiB. One serving thread, so that the
    // last request finds the first instance idle on its own thread (an
    // idle instance on another thread keeps its memory until its idle
    // timeout: the reference says so).
    let server = RunningServer::start(
        &guest_wasm("faults_p3"),
        &[
            "--max-total-memory=2MiB",
            "--threads=1",
            "--metrics-addr=127.0.0.1:0",
        ],
    );
    let (held, refused) = thread::scope(|scope| {
        // Held with backpressure, so the next request needs an instance of
        // its own.
        let held = scope.spawn(|| server.get("/?hold_ms=2000"));
        server.wait_for_metrics("the first instance", Duration::from_secs(30), |m| {
            m.count("reprise_instances_live") == 1 && m.count("reprise_requests_in_flight") == 1
        });
        let refused = server.get("/");
        (held.join().unwrap(), refused)
    });
    assert_eq!(
        (refused.status, refused.text().as_str()),
        (
            503,
            "no component instance available: the instances together hold \
             --max-total-memory 2MiB; retry later\n"
        )
    );
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(held.status, 200, "the instance that fits is not disturbed");
    assert_eq!(server.get("/").status, 200, "once it is free, it serves");
    let metrics = server.metrics();
    assert!(metrics.count("reprise_memory_growths_refused_total") >= 1);
    assert_eq!(
        metrics.count("reprise_requests_total{outcome=\"instantiation\"}"),
        1
    );
}

/// A POST whose body is sent with chunked encoding, so no length is known
/// up front: only reading it can find it too large. (Requests in these
/// tests stay under 8 KiB, which the server reads in one go: a server that
/// closes with unread bytes would reset the connection, and the client
/// could lose the response.)
fn chunked_post(path: &str, body_len: usize) -> Vec<u8> {
    let mut request =
        format!("POST {path} HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    for chunk in vec![b'x'; body_len].chunks(512) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    request
}

#[test]
fn a_body_over_max_request_body_size_gets_413_whether_its_length_is_declared_or_streamed() {
    assert_body_limit("faults_p3", "/?read_body=1");
}

#[test]
fn a_p2_guest_reads_bodies_up_to_the_limit_too() {
    assert_body_limit("faults_p2", "/?read_body=1");
}

/// POSTs to `path` bodies over and at a 1 KiB limit, with a declared length
/// and chunked; the guest answers `read N bytes`.
fn assert_body_limit(guest: &str, path: &str) {
    let server = RunningServer::start(
        &guest_wasm(guest),
        &["--max-request-body-size=1KiB", "--metrics-addr=127.0.0.1:0"],
    );
    let too_large = "request body too large: the limit is 1KiB\n";

    // Declared: refused before the guest is involved.
    let declared = server
        .connect()
        .request("POST", path, &[], &[b'x'; 2048])
        .expect("POST with a length");
    assert_eq!(
        (declared.status, declared.text().as_str()),
        (413, too_large)
    );
    assert_eq!(declared.header("connection"), Some("close"));

    // Streamed: the guest reads until the host cuts it off.
    let mut connection = server.connect();
    connection
        .send_raw(&chunked_post(path, 2048))
        .expect("sends");
    let streamed = connection.read_next_response().expect("an answer");
    assert_eq!(
        (streamed.status, streamed.text().as_str()),
        (413, too_large)
    );

    // At the limit, both ways get through.
    let at_limit = server
        .connect()
        .request("POST", path, &[], &[b'x'; 1024])
        .expect("POST");
    assert_eq!(
        (at_limit.status, at_limit.text().as_str()),
        (200, "read 1024 bytes\n")
    );
    let mut connection = server.connect();
    connection
        .send_raw(&chunked_post(path, 1024))
        .expect("sends");
    let streamed = connection.read_next_response().expect("an answer");
    assert_eq!(
        (streamed.status, streamed.text().as_str()),
        (200, "read 1024 bytes\n")
    );

    let metrics = server.metrics();
    assert_eq!(
        metrics.count("reprise_requests_total{outcome=\"too_large\"}"),
        2
    );
    assert_eq!(metrics.count("reprise_requests_total{outcome=\"ok\"}"), 2);
}
