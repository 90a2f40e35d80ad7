//! The report and the exit codes: one line per finding then a verdict,
//! the JSON report, the warnings and hints a user needs to act on it, the
//! same report for the same seed, and exit 2 for a check that cannot run.

use super::*;

#[test]
fn the_text_report_is_one_line_per_finding_then_a_verdict() {
    let outcome = check("leaky_counter_p2", &["--seed", "7"]);
    assert_eq!(outcome.status.code(), Some(1));
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    assert!(lines[0].starts_with("check "), "{}", lines[0]);
    assert!(lines[0].contains("seed 7"), "{}", lines[0]);
    // Findings, then the warning about the default probes, the hint and
    // the verdict.
    let findings = &lines[1..lines.len() - 3];
    assert_eq!(findings.len(), 3, "{}", outcome.stdout);
    assert!(lines[lines.len() - 3].starts_with("warning  "));
    assert!(lines[lines.len() - 2].starts_with("hint     "));
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
fn a_failing_report_ends_with_a_hint_naming_the_flags_that_mask_a_difference() {
    let outcome = check("leaky_counter_p3", &["--path", "/x"]);
    assert_eq!(outcome.status.code(), Some(1));
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    let hint = lines[lines.len() - 2];
    assert!(hint.starts_with("hint     "), "{}", outcome.stdout);
    for wanted in ["--ignore-body REGEX", "--ignore-header NAME", "check.md"] {
        assert!(hint.contains(wanted), "{hint}");
    }
    let (_, report) = check_json("leaky_counter_p3", &["--path", "/x"]);
    assert_eq!(report["hint"].as_str(), Some(&hint["hint     ".len()..]));
}

#[test]
fn the_json_report_carries_the_whole_bodies_of_a_leak() {
    let (_, report) = check_json("leaky_counter_p3", &["--rounds", "1", "--path", "/x"]);
    let leak = &report["findings"][0];
    assert_eq!(leak["fresh_body"], "you are visitor 1\n");
    assert!(
        leak["reused_body"]
            .as_str()
            .unwrap()
            .starts_with("you are visitor "),
        "{leak:#}"
    );
}

#[test]
fn a_pass_from_the_default_probes_alone_comes_with_a_warning() {
    let outcome = check("hello_p3", &[]);
    assert_eq!(outcome.status.code(), Some(0));
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    let warning = lines[lines.len() - 2];
    assert!(
        warning.starts_with("warning  only the default probes ran"),
        "{}",
        outcome.stdout
    );
    assert!(warning.contains("serve --record FILE"), "{warning}");
    assert!(
        lines[lines.len() - 1].ends_with(", with the warnings above"),
        "{}",
        outcome.stdout
    );
    // Any request of the user's own is more than the defaults.
    let (_, report) = check_json("hello_p3", &["--path", "/x"]);
    assert_eq!(report["warnings"], serde_json::json!([]));
}

#[test]
fn the_same_seed_gives_the_same_report() {
    let flags = ["--seed", "42", "--path", "/x", "--path", "/y"];
    // The seed fixes the orders. How far concurrent requests overlap also
    // depends on where the epoch ticks land in guest code, which a loaded
    // machine moves, so that one number is left out.
    let findings_in_order = |report: Value| {
        let mut findings = report["findings"].clone();
        for finding in findings.as_array_mut().unwrap() {
            finding["first"]
                .as_object_mut()
                .unwrap()
                .remove("in_flight");
        }
        findings
    };
    let (_, first) = check_json("leaky_counter_p3", &flags);
    let (_, second) = check_json("leaky_counter_p3", &flags);
    assert_eq!(findings_in_order(first), findings_in_order(second));
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
