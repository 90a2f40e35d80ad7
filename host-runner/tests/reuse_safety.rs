//! The SDK's reuse-safety features, end to end. Each test serves a sample
//! with host-runner flags *looser* than the sample's policy, so that only
//! the guest's own run-time enforcement (backpressure) can make it hold:
//! exactly the situation on stock `wasmtime serve`, which never reads the
//! policy section.

mod common;

use common::{HttpResponse, RunningServer, fan_out, guest_wasm};
use std::collections::{HashMap, HashSet};
use std::thread;
use std::time::Duration;

/// Loose host limits: up to 1000 requests per instance, 64 at once.
const LOOSE: [&str; 3] = [
    "--debug-headers",
    "--max-instance-reuse-count=1000",
    "--max-instance-concurrent-reuse-count=64",
];

fn serve(guest: &str) -> RunningServer {
    RunningServer::start(&guest_wasm(guest), &LOOSE)
}

/// The value of `name=` in a sample's `key=value` response text.
fn field(response: &HttpResponse, name: &str) -> String {
    let text = response.text();
    text.split_whitespace()
        .find_map(|pair| {
            pair.strip_prefix(name)?
                .strip_prefix('=')
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no `{name}=` in {text:?}"))
}

fn number(response: &HttpResponse, name: &str) -> u64 {
    field(response, name).parse().expect("a number")
}

fn instance(response: &HttpResponse) -> u64 {
    response
        .instance()
        .expect("--debug-headers names the instance")
}

#[test]
fn request_scoped_values_never_leak_between_50_interleaved_requests() {
    let server = serve("counter_p3");
    let responses: Vec<(String, HttpResponse)> = thread::scope(|scope| {
        let clients: Vec<_> = (0..50)
            .map(|n| {
                let server = &server;
                scope.spawn(move || {
                    let id = format!("client-{n}");
                    let response = server
                        .connect()
                        .request("GET", "/", &[("x-request-id", &id)], &[])
                        .expect("GET /");
                    (id, response)
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    for (id, response) in &responses {
        assert_eq!(response.status, 200);
        let first_line = response
            .text()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(first_line, format!("request {id} fresh=true seen={id}"));
    }
    let most_at_once = responses
        .iter()
        .map(|(_, r)| number(r, "most_in_flight"))
        .max()
        .unwrap();
    assert!(
        most_at_once > 1,
        "requests must really have interleaved on one instance to prove isolation"
    );
}

#[test]
fn request_scoped_values_are_dropped_when_their_request_ends() {
    let server = serve("counter_p3");
    let mut connection = server.connect();
    for n in 1..=5 {
        let response = connection.get("/").expect("GET /");
        assert_eq!(response.instance(), Some(1), "one instance serves them all");
        assert_eq!(number(&response, "served"), n);
        assert_eq!(
            number(&response, "dropped"),
            n - 1,
            "every earlier request's value is gone"
        );
    }
}

#[test]
fn never_gives_every_request_a_fresh_instance_on_p3_and_p2() {
    for guest in ["single_use_p3", "single_use_p2"] {
        let server = serve(guest);
        let responses = fan_out(&server, 4, 5, "/");
        let instances: HashSet<u64> = responses.iter().map(instance).collect();
        assert_eq!(
            instances.len(),
            responses.len(),
            "{guest}: no instance served twice"
        );
        assert!(
            responses.iter().all(|r| number(r, "requests") == 1),
            "{guest}"
        );
    }
}

#[test]
fn serial_never_runs_two_requests_on_one_instance_but_still_reuses() {
    let server = serve("serial_p3");
    let concurrent = fan_out(&server, 10, 3, "/?ms=30");
    assert!(concurrent.iter().all(|r| number(r, "most_in_flight") == 1));
    assert!(
        concurrent.iter().any(|r| number(r, "requests") > 1),
        "serial still reuses instances one request after another"
    );
}

#[test]
fn max_requests_caps_how_many_requests_an_instance_serves() {
    let server = serve("limits_p3");
    let mut connection = server.connect();
    let mut per_instance: HashMap<u64, u64> = HashMap::new();
    for _ in 0..12 {
        let response = connection.get("/").expect("GET /");
        *per_instance.entry(instance(&response)).or_default() += 1;
    }
    assert_eq!(
        per_instance.len(),
        3,
        "12 requests at 5 per instance: {per_instance:?}"
    );
    assert!(per_instance.values().all(|&n| n <= 5), "{per_instance:?}");
}

#[test]
fn max_memory_replaces_an_instance_that_grew_past_its_limit() {
    let server = serve("limits_p3");
    let leaky = server.get("/?leak_kib=10240");
    // The limit is checked as the request ends, after this response was made.
    assert!(number(&leaky, "memory_bytes") > 8 << 20);
    let next = server.get("/");
    assert_ne!(instance(&next), instance(&leaky));
    assert_eq!(number(&next, "requests"), 1);
}

#[test]
fn retire_lets_in_flight_requests_finish_and_takes_no_new_ones() {
    let server = serve("retire_p3");
    let retiring_instance = instance(&server.get("/"));
    thread::scope(|scope| {
        // A slow request in flight on the instance when it retires...
        let slow = scope.spawn(|| server.get("/?ms=400"));
        thread::sleep(Duration::from_millis(100));
        let retire = server.get("/?retire=1");
        assert_eq!(instance(&retire), retiring_instance);
        assert_eq!(field(&retire, "retiring"), "true");
        // ...new requests go elsewhere while it finishes...
        for response in fan_out(&server, 3, 2, "/") {
            assert_ne!(instance(&response), retiring_instance);
        }
        // ...and it does finish.
        let slow = slow.join().unwrap();
        assert_eq!((slow.status, instance(&slow)), (200, retiring_instance));
    });
    for response in fan_out(&server, 2, 3, "/") {
        assert_ne!(
            instance(&response),
            retiring_instance,
            "a retired instance serves nothing more"
        );
    }
}

#[test]
fn a_held_backpressure_guard_sends_new_requests_to_another_instance() {
    let server = serve("backpressure_p3");
    let quiet_instance = instance(&server.get("/"));
    thread::scope(|scope| {
        let holder = scope.spawn(|| server.get("/?hold_ms=400"));
        thread::sleep(Duration::from_millis(100));
        for response in fan_out(&server, 3, 2, "/") {
            assert_ne!(instance(&response), quiet_instance);
        }
        let holder = holder.join().unwrap();
        assert_eq!((holder.status, instance(&holder)), (200, quiet_instance));
        assert_eq!(
            field(&holder, "retiring"),
            "false",
            "holding is not retiring"
        );
    });
}
