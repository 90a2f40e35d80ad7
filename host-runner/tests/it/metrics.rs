//! `--metrics-addr` serves Prometheus text at `/metrics`; after a known
//! sequence of requests every count is exact.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::{HttpResponse, RunningServer, guest_wasm};

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
    // 20 requests one after another (normally all on one instance), then a
    // trap, a timeout on a fresh instance, and one more request.
    let mut connection = server.connect();
    let mut responses: Vec<HttpResponse> = (0..20)
        .map(|_| connection.get("/").expect("GET /"))
        .collect();
    responses.push(connection.get("/?trap=1").expect("GET /?trap=1"));
    responses.push(server.get("/?busy_ms=forever"));
    responses.push(server.get("/"));
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses[..20], [200; 20]);
    assert_eq!(statuses[20..], [500, 504, 200]);

    // Which instance served what: ProxyHandler may start a second instance
    // when a request arrives just as the first is between requests, so the
    // expected counts follow from what the debug headers say.
    let mut per_instance: BTreeMap<u64, u64> = BTreeMap::new();
    for response in &responses {
        let instance = response
            .instance()
            .expect("every request reached an instance");
        *per_instance.entry(instance).or_default() += 1;
    }
    let trapped = responses[20].instance();
    let timed_out = responses[21].instance();
    assert_ne!(trapped, timed_out);
    let created = per_instance.len() as u64;
    let at_most = |bound: u64| per_instance.values().filter(|&&n| n <= bound).count() as u64;

    let metrics = server.wait_for_metrics("every instance retired", Duration::from_secs(30), |m| {
        m.count("reprise_instances_live") == 0
    });
    for (series, expected) in [
        ("reprise_instances_created_total", created),
        ("reprise_instances_live", 0),
        ("reprise_instances_retired_total{reason=\"reuse_limit\"}", 0),
        (
            "reprise_instances_retired_total{reason=\"idle\"}",
            created - 2,
        ),
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
        ("reprise_instance_requests_count", created),
        ("reprise_instance_requests_sum", 23),
        ("reprise_instance_requests_bucket{le=\"1\"}", at_most(1)),
        ("reprise_instance_requests_bucket{le=\"16\"}", at_most(16)),
        ("reprise_instance_requests_bucket{le=\"32\"}", at_most(32)),
        ("reprise_instance_requests_bucket{le=\"+Inf\"}", created),
        ("reprise_request_duration_seconds_count", 23),
        ("reprise_instantiation_duration_seconds_count", created),
    ] {
        assert_eq!(
            metrics.count(series),
            expected,
            "{series} (instances served {per_instance:?})\n{}",
            metrics.0
        );
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
fn the_metrics_address_serves_only_metrics_and_is_announced_after_the_serving_line() {
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
    // `Serving HTTP on` comes first, as `wasmtime serve` prints it.
    assert_eq!((serving_line, metrics_line), (0, 1), "{logs:?}");

    let addr = server.metrics_addr.expect("parsed");
    let elsewhere = crate::common::HttpConnection::open(addr)
        .and_then(|mut c| c.get("/"))
        .expect("GET /");
    assert_eq!(elsewhere.status, 404);
    let scrape = crate::common::HttpConnection::open(addr)
        .and_then(|mut c| c.get("/metrics"))
        .expect("GET /metrics");
    assert_eq!(
        scrape.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
}
