//! `host-runner check`, both directions: every deliberately unsafe guest in
//! `test-guests/` is flagged, in the mode that exposes it, and every sample
//! in `guests/` passes (the ones that print their instance's counters with
//! those counters ignored, as docs/src/check.md shows).
//!
//! Each test runs the real binary on a built component, with few requests
//! and rounds so that the whole file takes seconds.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Finished, assert_no_crash, guest_wasm, run_to_exit, scratch_file};
use serde_json::Value;

/// A check of a few requests takes well under a second; this only bounds a
/// broken one.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// The `key=value` counters `reprise::instance_stats()` prints, which
/// differ under reuse by design (they describe the instance), plus the
/// samples' own instance counters.
const INSTANCE_COUNTERS: &str =
    r"(served|dropped|requests|in_flight|most_in_flight|retiring|memory_bytes)=\w+";

/// Runs `host-runner check <flags> <guest>`.
fn check(guest: &str, flags: &[&str]) -> Finished {
    let wasm = guest_wasm(guest);
    let mut args = vec!["check"];
    args.extend_from_slice(flags);
    args.push(wasm.to_str().expect("target paths are UTF-8"));
    run_to_exit(&args, EXIT_TIMEOUT)
}

/// The JSON report of `check --format json`, with the exit code.
fn check_json(guest: &str, flags: &[&str]) -> (i32, Value) {
    let mut flags = flags.to_vec();
    flags.extend_from_slice(&["--format", "json"]);
    let outcome = check(guest, &flags);
    assert_no_crash_in_report(&outcome);
    let report = serde_json::from_str(&outcome.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON report ({e}):\n{}\nstderr:\n{}",
            outcome.stdout, outcome.stderr
        )
    });
    (outcome.status.code().expect("exited"), report)
}

/// Guest panics are printed on stderr by design (trap tests); the report
/// itself must never carry a host crash.
fn assert_no_crash_in_report(outcome: &Finished) {
    assert!(
        !outcome.stderr.contains("host-runner' panicked") && !outcome.stderr.contains("error:"),
        "host-runner failed:\n{}",
        outcome.stderr
    );
}

/// `(kind, mode, request)` of every finding in a JSON report.
fn findings(report: &Value) -> Vec<(String, String, String)> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            let text = |key: &str| f[key].as_str().unwrap_or_default().to_owned();
            (text("kind"), text("mode"), text("request"))
        })
        .collect()
}

fn modes_with(report: &Value, kind: &str) -> Vec<String> {
    let mut modes: Vec<String> = findings(report)
        .into_iter()
        .filter(|(k, _, _)| k == kind)
        .map(|(_, mode, _)| mode)
        .collect();
    modes.dedup();
    modes
}

fn mode<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["modes"]
        .as_array()
        .expect("modes")
        .iter()
        .find(|m| m["mode"] == name)
        .unwrap_or_else(|| panic!("no mode {name} in {report:#}"))
}

fn assert_passes(guest: &str, flags: &[&str]) {
    let outcome = check(guest, flags);
    assert_eq!(
        outcome.status.code(),
        Some(0),
        "{guest} should pass; report:\n{}\nstderr:\n{}",
        outcome.stdout,
        outcome.stderr
    );
    let verdict = outcome.stdout.lines().last().unwrap_or_default();
    assert!(verdict.starts_with("PASS: "), "verdict: {verdict}");
    assert!(
        !verdict.contains("could not be compared"),
        "verdict: {verdict}"
    );
}

// Leaky guests: each is flagged, in the mode that exposes it.

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
fn requests_that_wait_forever_when_interleaved_are_a_timeout_hazard() {
    let (code, report) = check_json(
        "hang_on_interleave_p3",
        &["--rounds", "1", "--request-timeout", "300ms"],
    );
    assert_eq!(code, 1);
    assert_eq!(modes_with(&report, "timeout"), ["concurrent"]);
}

// Clean samples pass.

#[test]
fn hello_samples_pass_in_both_worlds() {
    assert_passes("hello_p3", &[]);
    assert_passes("hello_p2", &[]);
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
fn samples_with_a_reuse_policy_pass_with_their_instance_counters_ignored() {
    let ignore = ["--ignore-body", INSTANCE_COUNTERS];
    for (guest, paths) in [
        ("serial_p3", &[][..]),
        ("backpressure_p3", &["--path", "/?hold_ms=20"][..]),
        ("limits_p3", &[][..]),
        ("retire_p3", &["--path", "/?retire=1"][..]),
        ("single_use_p3", &[][..]),
        ("single_use_p2", &[][..]),
    ] {
        assert_passes(guest, &[&ignore[..], paths].concat());
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
    let (code, report) = check_json("serial_p3", &["--ignore-body", INSTANCE_COUNTERS]);
    assert_eq!(code, 0);
    let concurrent = mode(&report, "concurrent");
    assert_eq!(concurrent["instances"], 1);
    assert_eq!(concurrent["most_in_flight"], 1);
}

// The report and the exit codes.

#[test]
fn the_text_report_is_one_line_per_finding_then_a_verdict() {
    let outcome = check("leaky_counter_p2", &["--seed", "7"]);
    assert_eq!(outcome.status.code(), Some(1));
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    assert!(lines[0].starts_with("check "), "{}", lines[0]);
    assert!(lines[0].contains("seed 7"), "{}", lines[0]);
    let findings = &lines[1..lines.len() - 1];
    assert_eq!(findings.len(), 3, "{}", outcome.stdout);
    for line in findings {
        assert!(line.starts_with("leak     serial     "), "{line}");
        assert!(
            line.contains("body: fresh \"you are visitor 1\\n\", reused"),
            "{line}"
        );
    }
    let verdict = lines[lines.len() - 1];
    assert!(
        verdict.starts_with("FAIL: 3 leaks and 0 hazards"),
        "{verdict}"
    );
    assert!(verdict.ends_with("(rerun with --seed 7)"), "{verdict}");
}

#[test]
fn the_same_seed_gives_the_same_report() {
    let flags = ["--seed", "42", "--path", "/x", "--path", "/y"];
    let (_, first) = check_json("leaky_counter_p3", &flags);
    let (_, second) = check_json("leaky_counter_p3", &flags);
    assert_eq!(first["findings"], second["findings"]);
}

#[test]
fn a_check_that_cannot_run_exits_2_so_ci_tells_it_from_a_finding() {
    let bad_line = scratch_file(
        "check-bad.jsonl",
        b"{\"path\":\"/\"}\n{\"method\":\"GET\"}\n",
    );
    let bad_line = bad_line.to_str().unwrap();
    let hello = guest_wasm("hello_p3");
    let hello = hello.to_str().unwrap();
    let missing = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-such-component.wasm");
    let missing = missing.to_str().unwrap();
    // Bad flags get clap's usage error; the rest one `error:` line.
    for (args, wanted, one_line) in [
        (
            vec!["check", "--requests", bad_line, hello],
            "check-bad.jsonl: line 2: missing field `path`",
            true,
        ),
        (vec!["check", missing], "no such file", true),
        (
            vec!["check", "--path", "nope", hello],
            "must start with `/`",
            false,
        ),
        (
            vec!["check", "--ignore-body", "(", hello],
            "--ignore-body",
            false,
        ),
        (vec!["check", "--rounds", "0", hello], "--rounds", false),
    ] {
        let outcome = run_to_exit(&args, EXIT_TIMEOUT);
        assert_eq!(
            outcome.status.code(),
            Some(2),
            "{args:?}: {}",
            outcome.stderr
        );
        assert!(outcome.stdout.is_empty(), "{args:?} printed a report");
        assert!(
            outcome.stderr.contains(wanted),
            "{args:?}: {}",
            outcome.stderr
        );
        if one_line {
            assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
            assert!(outcome.stderr.starts_with("error: "), "{}", outcome.stderr);
        }
        assert_no_crash(&outcome);
    }
}
