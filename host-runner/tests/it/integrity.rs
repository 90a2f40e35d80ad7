//! A response arrives whole or visibly broken: never a truncated body that
//! looks complete, never bytes a keep-alive client would read as part of the
//! next response. A body short of its `content-length` gets a 500 while its
//! head can still be replaced, and closes the connection mid-body once it
//! cannot; a trap or a request timeout mid-body closes the connection
//! without the chunked terminator. Each counts as a failed request and a
//! response cut off, never as `ok`. The tests read the raw bytes the server
//! wrote.

use std::time::Duration;

use crate::common::{Metrics, RunningServer, guest_wasm, split_head};

const WAIT: Duration = Duration::from_secs(30);

fn start(guest: &str, flags: &[&str]) -> RunningServer {
    let mut flags = flags.to_vec();
    flags.push("--metrics-addr=127.0.0.1:0");
    RunningServer::start(&guest_wasm(guest), &flags)
}

/// Sends a `GET` for each of `paths`, pipelined on one connection (the last
/// with `Connection: close`), and returns every byte the server wrote until
/// it closed the connection.
fn raw_exchange(server: &RunningServer, paths: &[&str]) -> Vec<u8> {
    let mut requests = String::new();
    for (n, path) in paths.iter().enumerate() {
        let close = match n + 1 == paths.len() {
            true => "Connection: close\r\n",
            false => "",
        };
        requests.push_str(&format!("GET {path} HTTP/1.1\r\nHost: test\r\n{close}\r\n"));
    }
    let mut connection = server.connect();
    connection.send_raw(requests.as_bytes()).expect("sends");
    connection
        .wait_closed()
        .expect("the server closes the connection")
}

/// The metrics once every request is over, checked against `outcome` counts
/// and the number of responses cut off.
fn assert_counted(server: &RunningServer, outcomes: &[(&str, u64)], cut_off: u64) -> Metrics {
    let metrics = server.wait_for_metrics("every request over", WAIT, |m| {
        m.count("reprise_requests_in_flight") == 0
    });
    for (outcome, count) in outcomes {
        assert_eq!(
            metrics.count(&format!("reprise_requests_total{{outcome=\"{outcome}\"}}")),
            *count,
            "outcome {outcome}:\n{}",
            metrics.0
        );
    }
    assert_eq!(metrics.count("reprise_responses_cut_off_total"), cut_off);
    metrics
}

/// The raw bytes of a failure (`status_line`, then the one-line `message`)
/// followed by the next response, `xxx`, intact: nothing of the failed
/// guest body anywhere.
fn assert_failure_then_intact_response(raw: Vec<u8>, status_line: &str, message: &str) {
    let text = String::from_utf8(raw).expect("the responses are text");
    let next = text
        .find("HTTP/1.1 200 OK\r\n")
        .unwrap_or_else(|| panic!("no second response in {text:?}"));
    let (failure, next) = text.split_at(next);
    assert!(failure.starts_with(status_line), "{failure:?}");
    assert!(
        failure.ends_with(&format!("\r\n\r\n{message}\n")),
        "nothing follows the failure's own body: {failure:?}"
    );
    assert!(next.ends_with("\r\n\r\nxxx"), "{next:?}");
}

/// The head of a response cut off mid-body, and the body bytes before the
/// cut: a 200 that announced `framing`, whose body holds nothing but the
/// guest's bytes (and chunk sizes), with no end and no other response after.
fn assert_cut_off<'a>(raw: &'a [u8], framing: &str) -> &'a [u8] {
    let (head, body) = split_head(raw);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains(framing), "{framing} not in {head}");
    assert!(
        !body.ends_with(b"0\r\n\r\n"),
        "a chunked terminator makes the body look complete"
    );
    assert!(
        !body.windows(9).any(|window| window == b"HTTP/1.1 "),
        "the next request was answered on the same connection"
    );
    body
}

#[test]
fn a_body_short_of_its_content_length_gets_500_and_the_next_response_is_intact() {
    let server = start("faults_p3", &[]);
    let raw = raw_exchange(&server, &["/?length=100&body_bytes=5", "/?body_bytes=3"]);
    assert_failure_then_intact_response(
        raw,
        "HTTP/1.1 500 Internal Server Error\r\n",
        "the component's response body did not match its content-length",
    );
    assert_counted(&server, &[("error", 1), ("ok", 1)], 0);
}

#[test]
fn a_body_short_of_its_content_length_after_its_head_went_out_closes_the_connection() {
    let server = start("faults_p3", &[]);
    // 100 KiB declared, 80 KiB written: more than a head waits for.
    let raw = raw_exchange(&server, &["/?length=102400&body_kib=80", "/"]);
    let body = assert_cut_off(&raw, "content-length: 102400");
    assert!(body.len() <= 80 * 1024, "{} body bytes", body.len());
    assert!(
        body.iter().all(|&byte| byte == b'x'),
        "only the guest's bytes"
    );
    assert_counted(&server, &[("error", 1), ("ok", 0)], 1);
}

#[test]
fn a_trap_mid_body_closes_the_connection_without_a_chunked_terminator() {
    let server = start("faults_p3", &[]);
    // 70 KiB: past what the head waits for, so the head is out.
    let raw = raw_exchange(&server, &["/?body_kib=256&trap_after_kib=70", "/"]);
    assert_cut_off(&raw, "transfer-encoding: chunked");
    let metrics = assert_counted(&server, &[("trap", 1), ("ok", 0)], 1);
    assert_eq!(
        metrics.count("reprise_instances_retired_total{reason=\"trap\"}"),
        1
    );
    assert!(
        server
            .wait_for_log(
                "response cut off after its head went out: the component trapped",
                WAIT
            )
            .is_some(),
        "{:?}",
        server.logs()
    );
}

#[test]
fn a_trap_mid_body_in_a_p2_handler_closes_the_connection_too() {
    let server = start("faults_p2", &[]);
    let raw = raw_exchange(&server, &["/?body_kib=256&trap_after_kib=70", "/"]);
    // A p2 handler writes its body inside its call, so the trap can come
    // before hyper flushed anything: then the connection closes on nothing.
    if !raw.is_empty() {
        assert_cut_off(&raw, "transfer-encoding: chunked");
    }
    assert_counted(&server, &[("trap", 1), ("ok", 0)], 1);
}

#[test]
fn a_request_timeout_mid_body_closes_the_connection_without_a_chunked_terminator() {
    let server = start("faults_p3", &["--request-timeout=500ms"]);
    let raw = raw_exchange(&server, &["/?body_kib=256&stall_after_kib=80", "/"]);
    assert_cut_off(&raw, "transfer-encoding: chunked");
    assert_counted(&server, &[("timeout", 1), ("ok", 0)], 1);
}

#[test]
fn a_request_timeout_before_the_first_byte_of_a_promised_body_gets_504() {
    let server = start("faults_p3", &["--request-timeout=500ms"]);
    let raw = raw_exchange(
        &server,
        &["/?length=10&stall_after_kib=0", "/?body_bytes=3"],
    );
    assert_failure_then_intact_response(
        raw,
        "HTTP/1.1 504 Gateway Timeout\r\n",
        "request timed out after 500ms",
    );
    assert_counted(&server, &[("timeout", 1), ("ok", 1)], 0);
}
