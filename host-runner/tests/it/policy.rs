//! host-runner reads the `reprise:reuse-policy` section before instantiating
//! and applies it as a ceiling over its flags: flags may tighten a policy,
//! never loosen it. Start-up says where each limit came from, and a section
//! it cannot read stops start-up with one line naming the component.

use std::path::Path;
use std::time::Duration;

use crate::common::{RunningServer, assert_refused, guest_wasm, run_to_exit, scratch_file};
use host_runner::policy::{self, ReusePolicy};

fn declared(guest: &str) -> Option<ReusePolicy> {
    let wasm = std::fs::read(guest_wasm(guest)).expect("the built guest is readable");
    policy::read(&wasm).unwrap_or_else(|e| panic!("{guest}: {e}"))
}

#[test]
fn every_sample_carries_the_policy_it_declares() {
    let concurrent = ReusePolicy::concurrent();
    let serial = ReusePolicy::serial();
    let never = ReusePolicy::never();
    let expected = [
        ("hello_p3", concurrent),
        // The SDK's p2 default: a p2 handler cannot interleave anyway.
        ("hello_p2", serial),
        ("counter_p3", concurrent),
        ("serial_p3", serial),
        ("single_use_p3", never),
        ("single_use_p2", never),
        (
            "limits_p3",
            ReusePolicy::concurrent()
                .max_requests(5)
                .max_memory(8 << 20),
        ),
    ];
    for (guest, policy) in expected {
        assert_eq!(declared(guest), Some(policy), "{guest}");
    }

    // And every sample has one, whichever it is.
    let guests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guests");
    for entry in std::fs::read_dir(&guests).expect("guests/ is listable") {
        let entry = entry.expect("a directory entry");
        // A library the samples share (proxy-common) is not a component.
        let manifest = std::fs::read_to_string(entry.path().join("Cargo.toml")).unwrap_or_default();
        if !manifest.contains("cdylib") {
            continue;
        }
        let name = entry.file_name();
        let guest = name.to_string_lossy().replace('-', "_");
        assert!(declared(&guest).is_some(), "{guest} has no policy section");
    }
}

/// The start-up line that describes the limits.
fn config_line(server: &RunningServer) -> String {
    server
        .wait_for_log("max-instance-reuse-count", Duration::from_secs(1))
        .expect("start-up describes the limits")
}

#[test]
fn never_caps_reuse_at_one_whatever_the_flag_says_and_start_up_says_why() {
    let server = RunningServer::start(
        &guest_wasm("single_use_p3"),
        &[
            "--max-instance-reuse-count=128",
            "--metrics-addr=127.0.0.1:0",
        ],
    );
    let line = config_line(&server);
    assert!(
        line.contains("max-instance-reuse-count 1 (guest policy: never; flag said 128)"),
        "{line}"
    );
    let metrics = three_requests_on_three_instances(&server);
    // The host retired each instance at its own reuse limit, before the
    // guest's backpressure had to.
    assert_eq!(
        metrics.count("reprise_instances_retired_total{reason=\"reuse_limit\"}"),
        3
    );
    assert_eq!(
        metrics.count("reprise_instances_retired_total{reason=\"guest\"}"),
        0
    );
}

#[test]
fn ignoring_the_policy_leaves_it_to_the_guest_own_backpressure() {
    let server = RunningServer::start(
        &guest_wasm("single_use_p3"),
        &[
            "--max-instance-reuse-count=128",
            "--metrics-addr=127.0.0.1:0",
            "--ignore-guest-policy",
        ],
    );
    let line = config_line(&server);
    assert!(
        line.contains("guest policy never ignored (--ignore-guest-policy)")
            && line.contains("max-instance-reuse-count 128 (flag)"),
        "{line}"
    );
    let metrics = three_requests_on_three_instances(&server);
    assert_eq!(
        metrics.count("reprise_instances_retired_total{reason=\"guest\"}"),
        3
    );
}

#[test]
fn serial_caps_concurrency_at_one_over_a_looser_flag() {
    let server = RunningServer::start(
        &guest_wasm("serial_p3"),
        &["--max-instance-concurrent-reuse-count=16"],
    );
    let line = config_line(&server);
    assert!(
        line.contains("max-instance-concurrent-reuse-count 1 (guest policy: serial; flag said 16)"),
        "{line}"
    );
    for response in crate::common::fan_out(&server, 8, 2, "/?ms=30") {
        assert_eq!(response.status, 200);
        // Two requests at once would write into each other's report.
        assert_eq!(response.text(), "report for /?ms=30\nend of report\n");
    }
}

#[test]
fn max_requests_caps_reuse_and_a_tighter_flag_wins() {
    let server = RunningServer::start(&guest_wasm("limits_p3"), &[]);
    let line = config_line(&server);
    assert!(
        line.contains("guest policy concurrent, max_requests 5, max_memory 8MiB")
            && line
                .contains("max-instance-reuse-count 5 (guest policy: max_requests 5; default 128)"),
        "{line}"
    );
    drop(server);
    let server = RunningServer::start(&guest_wasm("limits_p3"), &["--max-instance-reuse-count=2"]);
    let line = config_line(&server);
    assert!(line.contains("max-instance-reuse-count 2 (flag)"), "{line}");
}

/// Serves a component that is nothing but a core module holding `section`
/// as its policy: the section is read before anything else is checked.
fn serve_with_policy_section(
    name: &str,
    section: &str,
) -> (std::path::PathBuf, crate::common::Finished) {
    let wasm = wat::parse_str(format!(
        r#"(component (core module (@custom "reprise:reuse-policy" {section:?})))"#
    ))
    .expect("valid WAT");
    let path = scratch_file(name, &wasm);
    let outcome = run_to_exit(
        &[
            "serve",
            "--addr",
            "127.0.0.1:0",
            path.to_str().expect("scratch paths are UTF-8"),
        ],
        Duration::from_secs(60),
    );
    (path, outcome)
}

#[test]
fn a_malformed_policy_section_stops_start_up_naming_the_component_and_the_problem() {
    let (path, outcome) = serve_with_policy_section("bad-policy.wasm", "{reuse: never");
    assert_refused(
        &outcome,
        &path,
        "invalid `reprise:reuse-policy` section: not JSON",
    );
}

#[test]
fn an_unknown_policy_schema_version_stops_start_up() {
    let (path, outcome) =
        serve_with_policy_section("future-policy.wasm", r#"{"version":2,"reuse":"never"}"#);
    assert_refused(&outcome, &path, "schema version 2 is unknown");
}

/// Sends three requests on one connection to a single-use component, waits
/// until every instance is gone, and checks that each request had its own.
fn three_requests_on_three_instances(server: &RunningServer) -> crate::common::Metrics {
    let mut connection = server.connect();
    for _ in 0..3 {
        assert_eq!(connection.get("/").expect("GET /").status, 200);
    }
    let metrics = server.wait_for_metrics("3 retired instances", Duration::from_secs(30), |m| {
        m.count("reprise_instances_live") == 0
    });
    assert_eq!(metrics.count("reprise_instances_created_total"), 3);
    metrics
}
