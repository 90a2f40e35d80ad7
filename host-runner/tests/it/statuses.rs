//! Every way host-runner can fail a request has its own status and a
//! one-line plain-text body naming the cause (never guest internals):
//! 503 with `Retry-After` when overloaded or out of instances, 503 when an
//! instance cannot be created, 500 for every request on an instance that
//! traps (p3 and p2), none left hanging, even when the guest had already
//! handed back its response and trapped before the body. (504 and the
//! single trap are in faults.rs, 413 in limits.rs.)

use std::thread;
use std::time::Duration;

use crate::common::{HttpResponse, Metrics, RunningServer, guest_wasm};

/// Long enough that a request still in flight at the end of a test was
/// clearly never going to finish on its own; the server is killed first.
const FOREVER: &str = "/?sleep_ms=600000";

fn assert_one_line(response: &HttpResponse, status: u16, body: &str) {
    assert_eq!(
        (response.status, response.text().as_str()),
        (status, body),
        "{response:?}"
    );
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
}

/// Starts `FOREVER` on its own connection and waits until it runs in an
/// instance; returns the connection so the request stays open.
fn occupy_one_instance(server: &RunningServer) -> crate::common::HttpConnection {
    let mut connection = server.connect();
    connection
        .send_raw(format!("GET {FOREVER} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .expect("sends the request");
    server.wait_for_metrics("an instance serving", Duration::from_secs(30), |m| {
        m.count("reprise_instances_created_total") == 1
            && m.count("reprise_requests_in_flight") == 1
    });
    connection
}

/// Serves faults-p3 with `flags` and one request held in its one
/// instance, then expects the next request refused: a one-line 503 saying
/// `body`, with `Retry-After: 1`, counted under `outcome`. Returns the
/// metrics after it.
fn assert_busy_server_answers_503(flags: &[&str], body: &str, outcome: &str) -> Metrics {
    let flags = [flags, &["--metrics-addr=127.0.0.1:0"]].concat();
    let server = RunningServer::start(&guest_wasm("faults_p3"), &flags);
    let _busy = occupy_one_instance(&server);
    let refused = server.get("/");
    assert_one_line(&refused, 503, body);
    assert_eq!(refused.header("retry-after"), Some("1"));
    let metrics = server.metrics();
    assert_eq!(
        metrics.count(&format!("reprise_requests_total{{outcome=\"{outcome}\"}}")),
        1
    );
    metrics
}

#[test]
fn over_max_concurrent_requests_gets_503_with_retry_after_after_a_short_wait() {
    assert_busy_server_answers_503(
        &[
            "--max-concurrent-requests=1",
            "--request-queue-timeout=50ms",
        ],
        "server overloaded: all 1 request slots are in use; retry later\n",
        "overload",
    );
}

#[test]
fn a_request_that_needs_an_instance_beyond_max_instances_gets_503_with_retry_after() {
    let metrics = assert_busy_server_answers_503(
        &[
            "--max-instances=1",
            "--max-instance-concurrent-reuse-count=1",
        ],
        "no component instance available: all instances are busy; retry later\n",
        "instantiation",
    );
    assert_eq!(metrics.count("reprise_instances_created_total"), 1);
}

#[test]
fn a_component_that_cannot_be_instantiated_gets_503_and_a_warning_at_start_up() {
    // hello_p3 starts with about 1 MiB of linear memory.
    let server = RunningServer::start(
        &guest_wasm("hello_p3"),
        &["--max-memory-size=64KiB", "--metrics-addr=127.0.0.1:0"],
    );
    assert!(
        server
            .wait_for_log("every instantiation will fail", Duration::from_secs(1))
            .is_some(),
        "start-up warns: {:?}",
        server.logs()
    );
    for _ in 0..2 {
        let refused = server.get("/");
        assert_one_line(
            &refused,
            503,
            "no component instance available: instantiation failed\n",
        );
        assert_eq!(
            refused.header("retry-after"),
            None,
            "retrying will not help"
        );
    }
    let metrics = server.metrics();
    assert_eq!(
        metrics.count("reprise_requests_total{outcome=\"instantiation\"}"),
        2
    );
    assert_eq!(metrics.count("reprise_instances_created_total"), 0);
    assert_eq!(
        metrics.count("reprise_instantiation_duration_seconds_count"),
        2
    );
}

/// `GET path`, sent again while the answer is the 503 for "all instances
/// busy": what `Retry-After` invites, and how a test waits for the one
/// instance allowed to take another request.
fn get_retrying_while_busy(server: &RunningServer, path: &str) -> HttpResponse {
    for _ in 0..100 {
        let response = server.get(path);
        if response.status != 503 {
            return response;
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("GET {path}: still 503 after 100 tries");
}

#[test]
fn every_request_on_an_instance_that_traps_gets_500_and_none_is_left_hanging() {
    // One instance only, so that every request shares it.
    let server = RunningServer::start(
        &guest_wasm("faults_p3"),
        &["--max-instances=1", "--metrics-addr=127.0.0.1:0"],
    );
    let mut first = occupy_one_instance(&server);
    let responses = thread::scope(|scope| {
        let waiting: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| get_retrying_while_busy(&server, FOREVER)))
            .collect();
        // Four requests in the guest: a request refused with 503 leaves at
        // once, so a count that holds across two scrapes is four accepted.
        loop {
            server.wait_for_metrics("4 requests in flight", Duration::from_secs(30), |m| {
                m.count("reprise_requests_in_flight") == 4
            });
            thread::sleep(Duration::from_millis(200));
            if server.metrics().count("reprise_requests_in_flight") == 4 {
                break;
            }
        }
        let trap = get_retrying_while_busy(&server, "/?trap=1");
        let mut all: Vec<HttpResponse> = waiting.into_iter().map(|w| w.join().unwrap()).collect();
        all.push(
            first
                .read_next_response()
                .expect("the first request is answered"),
        );
        all.push(trap);
        all
    });
    for response in &responses {
        assert_one_line(
            response,
            500,
            "the component trapped while handling the request\n",
        );
    }
    let metrics = server.wait_for_metrics("the instance gone", Duration::from_secs(30), |m| {
        m.count("reprise_instances_live") == 0
    });
    assert_eq!(
        metrics.count("reprise_instances_retired_total{reason=\"trap\"}"),
        1
    );
    assert_eq!(server.get("/").status, 200, "a fresh instance serves");
}

#[test]
fn a_trap_after_the_response_but_before_its_body_still_gets_500() {
    // The guest hands back a response promising 5 bytes, then traps. Had
    // its head gone out at once, the client would see a 200 cut off.
    let server = RunningServer::start(&guest_wasm("faults_p3"), &[]);
    assert_one_line(
        &server.get("/?trap_in_body=1"),
        500,
        "the component trapped while handling the request\n",
    );
    assert_eq!(server.get("/").status, 200, "a fresh instance serves");
}

#[test]
fn a_trap_in_a_p2_handler_gets_500_and_its_reused_instance_is_replaced() {
    let server = RunningServer::start(
        &guest_wasm("faults_p2"),
        &[
            "--max-instance-reuse-count=128",
            "--debug-headers",
            "--metrics-addr=127.0.0.1:0",
        ],
    );
    let mut connection = server.connect();
    assert_eq!(connection.get("/").expect("GET /").status, 200);
    let trapped = connection.get("/?trap=1").expect("GET /?trap=1");
    assert_one_line(
        &trapped,
        500,
        "the component trapped while handling the request\n",
    );
    let next = connection.get("/").expect("GET /");
    assert_eq!(next.status, 200);
    assert_ne!(
        next.instance(),
        trapped.instance(),
        "the trapped instance serves nothing more"
    );
    let metrics = server.metrics();
    assert_eq!(metrics.count("reprise_requests_total{outcome=\"trap\"}"), 1);
    assert_eq!(
        metrics.count("reprise_instances_retired_total{reason=\"trap\"}"),
        1
    );
}
