//! Outgoing calls: check makes them for real, and a failure is not a
//! leak.

use super::*;

#[test]
fn an_answer_that_changes_because_the_backend_went_down_is_no_leak_but_a_failed_call() {
    let backend = Backend::start();
    let env = format!("BACKEND={}", backend.url);
    // The backend answers both fresh runs, then goes down for the reused ones.
    let flags = ["--env", &env, "--path", "/fails-after?n=2", "--rounds", "1"];
    let (code, report) = check_json("proxy_p3", &flags);
    assert_eq!(code, 1, "{report:#}");
    let kinds: Vec<String> = findings(&report)
        .into_iter()
        .map(|(kind, ..)| kind)
        .collect();
    assert!(
        !kinds.is_empty() && kinds.iter().all(|kind| kind == "outgoing"),
        "{report:#}"
    );
    let detail = report["findings"][0]["detail"].as_str().unwrap_or_default();
    let call = format!("GET {}/fails-after?n=2", backend.url);
    assert!(
        detail.contains("after a failed outgoing call on the reused instance")
            && detail.contains(&call),
        "{detail}"
    );
    assert!(
        report["hint"]
            .as_str()
            .unwrap_or_default()
            .contains("reachable"),
        "{report:#}"
    );
}

#[test]
fn a_call_that_fails_on_fresh_instances_too_passes_only_with_a_warning_naming_it() {
    let env = format!("BACKEND={}", refusing_url());
    let outcome = check(
        "proxy_p3",
        &["--env", &env, "--path", "/x", "--rounds", "1"],
    );
    assert_eq!(
        outcome.status.code(),
        Some(0),
        "{}\n{}",
        outcome.stdout,
        outcome.stderr
    );
    let warning = outcome
        .stdout
        .lines()
        .find(|line| {
            line.starts_with("warning")
                && line.contains("an outgoing call failed on a fresh instance for GET / and 3 more requests (GET http://127.0.0.1:")
        })
        .unwrap_or_else(|| panic!("no warning naming the failed call:\n{}", outcome.stdout));
    assert_eq!(
        outcome.stdout.matches("outgoing call failed").count(),
        1,
        "one line for all"
    );
    assert!(
        warning.contains("connection refused") || warning.contains("Connection refused"),
        "{warning}"
    );
}

#[test]
fn a_body_over_16_mib_is_compared_whole_instead_of_being_skipped() {
    // 20 000 KiB of `x`s, streamed: over the 16 MiB that used to be skipped.
    // The default probes answer with per-instance counters, left out.
    let flags = [
        "--path",
        "/?body_kib=20000",
        "--rounds",
        "1",
        "--ignore-body",
        r"\w+=\d+",
    ];
    let outcome = check("faults_p3", &flags);
    assert_eq!(
        outcome.status.code(),
        Some(0),
        "{}\n{}",
        outcome.stdout,
        outcome.stderr
    );
    assert!(
        !outcome.stdout.contains("longer than"),
        "{}",
        outcome.stdout
    );
    assert!(!outcome.stdout.contains("fails ("), "{}", outcome.stdout);
}
