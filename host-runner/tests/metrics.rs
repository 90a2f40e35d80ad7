//! `--metrics-addr` serves Prometheus text at `/metrics`; after a known
//! sequence of requests every count is exact.

mod common;

use std::time::Duration;

use common::{RunningServer, guest_wasm};

#[test]
fn metrics_count_a_known_sequence_of_requests_exactly() {
    let server = RunningServer::start(
        &guest_wasm("faults_p3"),
        &[
            "--metrics-addr=127.0.0.1:0",
            "--request-timeout=1s",
            // Long enough that the sequence below never idles an instance
            // out, even on a loaded machine.
            "--idle-instance-timeout=3s",
            "--debug-headers",
        ],
    );
    let mut connection = server.connect();
    // 20 requests one after another: one instance serves them all...
    for _ in 0..20 {
        let response = connection.get("/").expect("GET /");
        assert_eq!((response.status, response.instance()), (200, Some(1)));
    }
    // ...and the 21st traps it.
    let trapped = connection.get("/?trap=1").expect("GET /?trap=1");
    assert_eq!((trapped.status, trapped.instance()), (500, Some(1)));
    // A fresh instance times out...
    let stuck = server.get("/?busy_ms=forever");
    assert_eq!((stuck.status, stuck.instance()), (504, Some(2)));
    // ...and a third serves one request, then idles out.
    let last = server.get("/");
    assert_eq!((last.status, last.instance()), (200, Some(3)));

    let metrics = server.wait_for_metrics("every instance retired", Duration::from_secs(30), |m| {
        m.count("reprise_instances_live") == 0
    });
    for (series, expected) in [
        ("reprise_instances_created_total", 3),
        ("reprise_instances_live", 0),
        ("reprise_instances_retired_total{reason=\"reuse_limit\"}", 0),
        ("reprise_instances_retired_total{reason=\"idle\"}", 1),
        ("reprise_instances_retired_total{reason=\"trap\"}", 1),
        ("reprise_instances_retired_total{reason=\"timeout\"}", 1),
        ("reprise_instances_retired_total{reason=\"guest\"}", 0),
        ("reprise_requests_total{outcome=\"ok\"}", 21),
        ("reprise_requests_total{outcome=\"timeout\"}", 1),
        ("reprise_requests_total{outcome=\"trap\"}", 1),
        ("reprise_requests_total{outcome=\"overload\"}", 0),
        ("reprise_requests_total{outcome=\"instantiation\"}", 0),
        ("reprise_requests_total{outcome=\"too_large\"}", 0),
        ("reprise_requests_total{outcome=\"error\"}", 0),
        ("reprise_requests_in_flight", 0),
        // Instances served 21, 1 and 1 requests.
        ("reprise_instance_requests_count", 3),
        ("reprise_instance_requests_sum", 23),
        ("reprise_instance_requests_bucket{le=\"1\"}", 2),
        ("reprise_instance_requests_bucket{le=\"16\"}", 2),
        ("reprise_instance_requests_bucket{le=\"32\"}", 3),
        ("reprise_instance_requests_bucket{le=\"+Inf\"}", 3),
        ("reprise_request_duration_seconds_count", 23),
        ("reprise_instantiation_duration_seconds_count", 3),
    ] {
        assert_eq!(metrics.count(series), expected, "{series}\n{}", metrics.0);
    }
    for kind in [
        "# TYPE reprise_instances_created_total counter",
        "# TYPE reprise_instances_live gauge",
        "# TYPE reprise_requests_in_flight gauge",
        "# TYPE reprise_request_duration_seconds histogram",
        "# TYPE reprise_instantiation_duration_seconds histogram",
    ] {
        assert!(metrics.0.lines().any(|l| l == kind), "{kind}");
    }
}

#[test]
fn the_metrics_address_serves_only_metrics_and_is_announced_before_serving() {
    let server = RunningServer::start(&guest_wasm("hello_p3"), &["--metrics-addr=127.0.0.1:0"]);
    let logs = server.logs();
    let metrics_line = logs
        .iter()
        .position(|l| l.starts_with("Metrics on http://127.0.0.1:"))
        .expect("the metrics address is printed");
    let serving_line = logs
        .iter()
        .position(|l| l.starts_with("Serving HTTP on"))
        .expect("serving");
    assert!(metrics_line < serving_line, "{logs:?}");
    assert_eq!(serving_line, logs.len() - 1, "`Serving HTTP on` stays last");

    let addr = server.metrics_addr.expect("parsed");
    let elsewhere = common::HttpConnection::open(addr)
        .and_then(|mut c| c.get("/"))
        .expect("GET /");
    assert_eq!(elsewhere.status, 404);
    let scrape = common::HttpConnection::open(addr)
        .and_then(|mut c| c.get("/metrics"))
        .expect("GET /metrics");
    assert_eq!(
        scrape.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
}
