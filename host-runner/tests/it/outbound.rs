//! Which hosts a guest may call: any by default (as with `wasmtime serve`),
//! only those given with `--allow-outbound`, none with `--deny-outbound`. A
//! refused call fails in the guest with `HTTP-request-denied` and never
//! reaches the network; the start-up line says which policy applies. Every
//! backend here is a real server on 127.0.0.1.

use std::time::Duration;

use crate::common::backend::FixedBackend;
use crate::common::{RunningServer, guest_wasm};

fn start(flags: &[&str]) -> RunningServer {
    RunningServer::start(&guest_wasm("fetch_p2"), flags)
}

fn fetch(server: &RunningServer, backend: &FixedBackend) -> (u16, String) {
    let response = server.get(&format!("/?to={}", backend.addr));
    (response.status, response.text())
}

fn policy_line(server: &RunningServer) -> String {
    server
        .wait_for_log("max-instance-reuse-count", Duration::from_secs(10))
        .expect("the configuration line")
}

#[test]
fn a_guest_reaches_any_host_by_default() {
    let backend = FixedBackend::start("from the backend");
    let server = start(&[]);
    assert_eq!(
        fetch(&server, &backend),
        (200, "ok 200 from the backend".to_owned())
    );
    assert!(policy_line(&server).contains("outbound HTTP to any host"));
}

#[test]
fn a_host_on_the_allow_list_is_reached_and_others_are_denied() {
    let allowed = FixedBackend::start("allowed");
    let other = FixedBackend::start("never");
    let rule = allowed.addr.to_string();
    let server = start(&["--allow-outbound", &rule]);
    assert_eq!(fetch(&server, &allowed), (200, "ok 200 allowed".to_owned()));
    // Same host, another port: not on the list.
    let (status, text) = fetch(&server, &other);
    assert_eq!(status, 502, "{text}");
    assert!(text.contains("HttpRequestDenied"), "{text}");
    assert_eq!(other.connections(), 0, "a denied call reached the network");
    let line = policy_line(&server);
    assert!(
        line.contains(&format!("outbound HTTP only to {rule}")),
        "{line}"
    );
}

#[test]
fn a_host_rule_without_a_port_allows_every_port_of_that_host() {
    let backend = FixedBackend::start("any port");
    let server = start(&["--allow-outbound", "127.0.0.1"]);
    assert_eq!(
        fetch(&server, &backend),
        (200, "ok 200 any port".to_owned())
    );
    let by_name = server.get(&format!("/?to=localhost:{}", backend.addr.port()));
    assert!(
        by_name.text().contains("HttpRequestDenied"),
        "{}",
        by_name.text()
    );
}

#[test]
fn deny_outbound_refuses_every_call_before_it_leaves() {
    let backend = FixedBackend::start("never");
    let server = start(&["--deny-outbound"]);
    let (status, text) = fetch(&server, &backend);
    assert_eq!(status, 502, "{text}");
    assert!(text.contains("HttpRequestDenied"), "{text}");
    assert_eq!(backend.connections(), 0);
    assert!(policy_line(&server).contains("no outbound HTTP (--deny-outbound)"));
}
