//! Clean samples pass: every guest in `guests/` as it is, counter-p3 once
//! its instance counters are ignored.

use super::*;

#[test]
fn hello_samples_pass_in_both_worlds() {
    assert_passes("hello_p3", &[]);
    assert_passes("hello_p2", &[]);
}

#[test]
fn generated_request_ids_in_a_body_are_no_leak() {
    // counter-p3 prints the SDK's request id twice; without an
    // `x-request-id` the SDK makes one up, which must vary by itself and
    // say nothing about how many requests the instance served.
    let (code, report) = check_json("counter_p3", &["--ignore-body", INSTANCE_COUNTERS]);
    assert_eq!(code, 0, "{report:#}");
    for entry in report["nondeterministic"].as_array().unwrap() {
        assert_eq!(entry["parts"], serde_json::json!(["body (2 tokens)"]));
    }
}

#[test]
fn counter_p3_counts_per_instance_and_passes_once_its_counters_are_ignored() {
    // Request ids from the client make the SDK's request id deterministic;
    // the instance counters differ under reuse by design.
    let requests = scratch_file(
        "check-counter.jsonl",
        br#"{"path":"/","headers":{"x-request-id":"probe-1"}}
{"path":"/?a=1","headers":{"x-request-id":"probe-2"}}
{"method":"POST","path":"/","headers":{"x-request-id":"probe-3"},"body":"hi"}
"#,
    );
    let requests = requests.to_str().unwrap();
    let (code, report) = check_json("counter_p3", &["--requests", requests]);
    assert_eq!(code, 1, "the instance counters differ under reuse");
    assert_eq!(modes_with(&report, "leak"), ["serial", "concurrent"]);
    assert_passes(
        "counter_p3",
        &["--requests", requests, "--ignore-body", INSTANCE_COUNTERS],
    );
}

#[test]
fn samples_with_a_reuse_policy_pass_as_they_are() {
    for (guest, paths) in [
        ("serial_p3", &[][..]),
        ("backpressure_p3", &["--path", "/?hold_ms=20"][..]),
        ("limits_p3", &[][..]),
        ("retire_p3", &["--path", "/?retire=1"][..]),
        ("single_use_p3", &[][..]),
        ("single_use_p2", &[][..]),
    ] {
        assert_passes(guest, paths);
    }
}

#[test]
fn sleep_samples_pass_with_requests_that_end() {
    let requests = scratch_file(
        "check-sleep.jsonl",
        b"# sleep-p2/p3 sleep forever without ?ms\n{\"path\":\"/?ms=3\"}\n{\"path\":\"/?ms=1\"}\n",
    );
    let requests = requests.to_str().unwrap();
    assert_passes("sleep_p3", &["--requests", requests]);
    assert_passes("sleep_p2", &["--requests", requests]);
}

#[test]
fn serial_policy_keeps_the_concurrent_mode_to_one_request_at_a_time() {
    let (code, report) = check_json("serial_p3", &[]);
    assert_eq!(code, 0);
    let concurrent = mode(&report, "concurrent");
    assert_eq!(concurrent["instances"], 1);
    assert_eq!(concurrent["most_in_flight"], 1);
}
