//! `host-runner check`, both directions: every deliberately unsafe guest in
//! `test-guests/` is flagged, in the mode that exposes it, and every sample
//! in `guests/` passes (counter-p3, which prints its instance's counters,
//! with those ignored, as docs/src/check.md shows). And the normal way
//! to run it: a session recorded by `serve --record`, replayed by `check
//! --requests`.
//!
//! Each test runs the real binary on a built component, with few requests
//! and rounds so that the whole file takes seconds.

use std::path::Path;
use std::time::Duration;

use crate::common::backend::{Backend, refusing_url};
use crate::common::{
    Finished, RunningServer, assert_no_crash, guest_wasm, run_to_exit, scratch_file, wait_for_lines,
};
use serde_json::Value;

mod hazards;
mod outgoing;
mod record;
mod report;
mod samples;

/// A check of a few requests takes well under a second; this only bounds a
/// broken one.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// counter-p3's instance counters, which differ under reuse by design (they
/// describe the instance).
const INSTANCE_COUNTERS: &str = r"(served|dropped)=\w+";

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
