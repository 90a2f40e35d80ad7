//! The SDK's reuse-safety features, end to end. Each test serves a sample
//! with host-runner flags *looser* than the sample's policy, so that only
//! the guest's own run-time enforcement (backpressure) can make it hold:
//! exactly the situation on stock `wasmtime serve`, which never reads the
//! policy section.

use crate::common::{HttpResponse, RunningServer, fan_out, guest_wasm};
use std::collections::{HashMap, HashSet};
use std::thread;
use std::time::Duration;

/// Loose host limits: up to 1000 requests per instance, 64 at once, and the
/// guest's policy section ignored, as a host that never reads it would. One
/// thread, so that concurrent requests meet in one pool of instances
/// instead of spreading over one pool per thread and never interleaving.
const LOOSE: [&str; 5] = [
    "--ignore-guest-policy",
    "--debug-headers",
    "--max-instance-reuse-count=1000",
    "--max-instance-concurrent-reuse-count=64",
    "--threads=1",
];

fn serve(guest: &str) -> RunningServer {
    RunningServer::start(&guest_wasm(guest), &LOOSE)
}

/// The value of `name=` in counter-p3's `key=value` response text.
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
    // A warm instance first: a burst on a cold server starts an instance
    // per request, and then nothing interleaves.
    assert_eq!(server.get("/").status, 200);
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
    // A request that finds its instance has served more requests than its
    // own number there shared the instance with a later one while it ran.
    assert!(
        responses.iter().any(|(_, r)| number(r, "served")
            > r.instance_request()
                .expect("--debug-headers numbers requests")),
        "requests must really have interleaved on one instance to prove isolation"
    );
}

#[test]
fn request_scoped_values_are_dropped_when_their_request_ends() {
    let server = serve("counter_p3");
    let mut connection = server.connect();
    let mut reused = false;
    for _ in 0..8 {
        let response = connection.get("/").expect("GET /");
        let (served, dropped) = (number(&response, "served"), number(&response, "dropped"));
        // Every earlier request's value is gone, except perhaps the one just
        // before, whose body may still be finishing on this instance.
        assert!(
            dropped < served && dropped + 2 >= served,
            "served={served} dropped={dropped}"
        );
        reused |= served >= 3;
    }
    assert!(
        reused,
        "an instance must have served several requests to show anything"
    );
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
            responses.iter().all(|r| r.instance_request() == Some(1)),
            "{guest}: every request is its instance's first"
        );
    }
}

#[test]
fn serial_never_runs_two_requests_on_one_instance_but_still_reuses() {
    let server = serve("serial_p3");
    let concurrent = fan_out(&server, 10, 3, "/?ms=30");
    // Two requests at once on an instance would write into each other's
    // report, which serial-p3 keeps in one buffer per instance.
    for response in &concurrent {
        assert_eq!(
            response.text(),
            "report for /?ms=30\nend of report\n",
            "a report written while another request ran on its instance"
        );
    }
    assert!(
        concurrent.iter().any(|r| r.instance_request() > Some(1)),
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
    assert_eq!(
        (leaky.text().as_str(), leaky.instance_request()),
        ("leaked 10240 KiB\n", Some(1)),
        "the first request, far from max_requests, leaks past max_memory"
    );
    let next = server.get("/");
    assert_ne!(instance(&next), instance(&leaky));
    assert_eq!(next.instance_request(), Some(1));
}

/// Sends `path`, and while it is in flight (from half a second in) six
/// more requests, three at a time; returns its response and theirs.
fn meanwhile(server: &RunningServer, path: &str) -> (HttpResponse, Vec<HttpResponse>) {
    thread::scope(|scope| {
        let first = scope.spawn(|| server.get(path));
        thread::sleep(Duration::from_millis(500));
        let others = fan_out(server, 3, 2, "/");
        (first.join().unwrap(), others)
    })
}

/// Asserts that none of `responses` came from instance `busy`.
fn assert_none_served_by<'a>(
    responses: impl IntoIterator<Item = &'a HttpResponse>,
    busy: u64,
    why: &str,
) {
    for response in responses {
        assert_ne!(instance(response), busy, "{why}");
    }
}

#[test]
fn retire_lets_in_flight_requests_finish_and_takes_no_new_ones() {
    let server = serve("retire_p3");
    // A request that retires its instance, then stays in flight a while,
    // while new requests arrive.
    let (retired, others) = meanwhile(&server, "/?retire=1&ms=1500");
    assert_eq!(
        (retired.status, retired.text().as_str()),
        (200, "done; this instance takes no new requests\n")
    );
    assert_none_served_by(
        others.iter().chain(&fan_out(&server, 2, 3, "/")),
        instance(&retired),
        "a retired instance takes no new request",
    );
}

#[test]
fn a_held_backpressure_guard_sends_new_requests_to_another_instance() {
    let server = serve("backpressure_p3");
    let (holder, during) = meanwhile(&server, "/?hold_ms=1500");
    assert_eq!(
        (holder.status, holder.text().as_str()),
        (200, "held the instance for 1500 ms\n")
    );
    assert_none_served_by(
        &during,
        instance(&holder),
        "no new request on a quiet instance",
    );
}
