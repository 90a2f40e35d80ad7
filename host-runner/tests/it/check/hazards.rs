//! Leaky guests: each deliberately unsafe guest in `test-guests/` is
//! flagged, in the mode that exposes it.

use super::*;

#[test]
fn a_global_counter_in_the_response_is_a_leak_in_both_reused_modes() {
    let (code, report) = check_json("leaky_counter_p3", &[]);
    assert_eq!(code, 1);
    assert_eq!(report["verdict"], "fail");
    assert_eq!(modes_with(&report, "leak"), ["serial", "concurrent"]);
    let first = &report["findings"][0];
    assert_eq!(first["differences"][0]["part"], "body");
    assert_eq!(first["differences"][0]["fresh"], r#""you are visitor 1\n""#);
}

#[test]
fn a_global_counter_on_p2_is_a_leak_under_serial_reuse() {
    let (code, report) = check_json("leaky_counter_p2", &[]);
    assert_eq!(code, 1);
    assert_eq!(modes_with(&report, "leak"), ["serial"]);
    assert!(mode(&report, "concurrent")["skipped"].is_string());
}

#[test]
fn a_user_cached_in_a_static_is_served_to_later_requests() {
    let (code, report) = check_json(
        "leaky_user_p3",
        &["--path", "/?user=ann", "--path", "/?user=bob"],
    );
    assert_eq!(code, 1);
    let bob = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["request"] == "GET /?user=bob" && f["mode"] == "serial")
        .expect("bob is served as someone else");
    assert_eq!(bob["differences"][0]["fresh"], r#""hello bob\n""#);
    assert_eq!(bob["differences"][0]["reused"], r#""hello ann\n""#);
    assert_eq!(bob["first"]["after"], "GET /?user=ann");
}

#[test]
fn a_buffer_that_grows_with_every_request_is_a_memory_hazard() {
    let (code, report) = check_json("leaky_buffer_p3", &["--rounds", "2"]);
    assert_eq!(code, 1);
    assert_eq!(
        findings(&report),
        [("memory".into(), "serial".into(), String::new())],
        "responses are right; only memory shows the leak"
    );
    let bytes: Vec<u64> = report["memory"][0]["bytes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap())
        .collect();
    assert!(bytes.windows(2).all(|w| w[1] > w[0]), "{bytes:?}");
}

#[test]
fn state_mixed_between_interleaved_requests_shows_only_under_concurrency() {
    let (code, report) = check_json("leaky_interleave_p3", &["--path", "/one", "--path", "/two"]);
    assert_eq!(code, 1);
    assert_eq!(modes_with(&report, "leak"), ["concurrent"]);
    // The interleaving really happened on one instance.
    let concurrent = mode(&report, "concurrent");
    assert_eq!(concurrent["instances"], 1);
    assert!(concurrent["most_in_flight"].as_u64().unwrap() >= 2);
}

#[test]
fn a_handler_that_traps_on_its_second_request_is_a_trap_hazard() {
    let (code, report) = check_json("trap_on_reuse_p3", &["--rounds", "1"]);
    assert_eq!(code, 1);
    assert_eq!(modes_with(&report, "trap"), ["serial", "concurrent"]);
    assert_eq!(modes_with(&report, "leak"), Vec::<String>::new());
}

#[test]
fn a_panic_under_concurrency_is_named_in_its_trap_finding() {
    let (code, report) = check_json("borrow_across_await_p3", &["--rounds", "1"]);
    assert_eq!(code, 1);
    assert_eq!(modes_with(&report, "trap"), ["concurrent"]);
    // The request whose borrow failed names the panic; the others in flight
    // say they were lost with the instance.
    let reused: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "trap")
        .map(|f| f["differences"][0]["reused"].as_str().unwrap())
        .collect();
    assert!(
        reused.iter().any(|r| r.starts_with(
            "panic \"RefCell already borrowed\" at test-guests/examples/borrow-across-await-p3.rs:"
        )),
        "a finding names the guest's panic: {reused:#?}"
    );
    assert!(
        report["hint"]
            .as_str()
            .unwrap()
            .contains("hazards/traps.md")
    );
}

#[test]
fn requests_that_wait_forever_when_interleaved_are_a_timeout_hazard() {
    let (code, report) = check_json(
        "hang_on_interleave_p3",
        &["--rounds", "1", "--request-timeout", "300ms"],
    );
    assert_eq!(code, 1);
    assert_eq!(modes_with(&report, "timeout"), ["concurrent"]);
}
