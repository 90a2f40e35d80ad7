//! A script written for `wasmtime serve` runs host-runner unchanged: the
//! spellings wasmtime's own serve tests use (`--env NAME` unset on the host,
//! `--header NAME: VALUE`, `--header @FILE`, `-S` and `-W` options), and
//! the two lines its harness reads first. Options host-runner does not
//! implement are refused with a line naming them, never ignored.

use std::time::Duration;

use crate::common::{RunningServer, assert_no_crash, guest_wasm, run_to_exit, scratch_file};

const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// `host_inputs_p2` reads the host store and configuration too, so it is
/// served with both, as `wasmtime serve` would need.
const HOST_INPUTS_OPTIONS: &str = "-Skeyvalue,config";

#[test]
fn an_env_name_the_host_does_not_have_is_left_unset_in_the_guest() {
    let server = RunningServer::start_with_env(
        &guest_wasm("host_inputs_p2"),
        &[
            HOST_INPUTS_OPTIONS,
            "--env",
            "REPRISE_TEST_NOT_ON_THE_HOST",
            "--env",
            "REPRISE_TEST_FROM_THE_HOST",
            "--env",
            "REPRISE_TEST_GIVEN=given",
        ],
        &[("REPRISE_TEST_FROM_THE_HOST", "inherited")],
    );
    assert_eq!(server.get("/env/REPRISE_TEST_NOT_ON_THE_HOST").status, 404);
    let inherited = server.get("/env/REPRISE_TEST_FROM_THE_HOST");
    assert_eq!(
        (inherited.status, inherited.text().as_str()),
        (200, "inherited")
    );
    assert_eq!(server.get("/env/REPRISE_TEST_GIVEN").text(), "given");
}

#[test]
fn header_flags_replace_the_clients_values_before_the_guest_sees_them() {
    let file = scratch_file(
        "headers.txt",
        b"x-from-file: three\n\nx-replaced: by the host\n",
    );
    let from_file = format!("@{}", file.display());
    let server = RunningServer::start(
        &guest_wasm("host_inputs_p2"),
        &[
            HOST_INPUTS_OPTIONS,
            "--header",
            "x-from-flag: one",
            "-H",
            "x-from-flag: two",
            "--header",
            &from_file,
        ],
    );
    let mut connection = server.connect();
    let mut header = |name: &str| {
        let client_headers = [("x-replaced", "by the client"), ("x-from-flag", "client")];
        let response = connection
            .request("GET", &format!("/header/{name}"), &client_headers, b"")
            .expect("a response");
        (response.status, response.text())
    };
    // A name given twice keeps both values, in order, and the client's go.
    assert_eq!(header("x-from-flag"), (200, "one\ntwo".to_owned()));
    assert_eq!(header("x-from-file"), (200, "three".to_owned()));
    assert_eq!(header("x-replaced"), (200, "by the host".to_owned()));
}

#[test]
fn the_first_lines_say_where_to_shut_down_and_where_to_connect() {
    let server = RunningServer::start(&guest_wasm("hello_p3"), &["--shutdown-addr", "127.0.0.1:0"]);
    server
        .wait_for_log("max-instance-reuse-count", Duration::from_secs(10))
        .expect("the configuration line");
    let logs = server.logs();
    assert!(
        logs[0].starts_with("Listening for shutdown on tcp://127.0.0.1:")
            && logs[1].starts_with("Serving HTTP on http://127.0.0.1:")
            && logs[2].contains("max-instance-reuse-count"),
        "expected the shutdown line, the serving line, then the configuration:\n{}",
        logs.join("\n")
    );
}

#[test]
fn wasm_timeout_is_the_request_timeout() {
    let server = RunningServer::start(&guest_wasm("faults_p3"), &["-Wtimeout=100ms"]);
    assert_eq!(server.get("/?busy_ms=forever").status, 504);
    assert_eq!(server.get("/").status, 200);
}

#[test]
fn the_same_limit_set_two_ways_to_different_values_is_refused() {
    let outcome = run_to_exit(
        &[
            "serve",
            "--request-timeout=1s",
            "-Wtimeout=2s",
            "whatever.wasm",
        ],
        EXIT_TIMEOUT,
    );
    assert_eq!(outcome.status.code(), Some(2), "{}", outcome.stderr);
    let first = outcome.stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains("--request-timeout") && first.contains("-Wtimeout"),
        "{}",
        outcome.stderr
    );
    assert_no_crash(&outcome);
}

#[test]
fn unsupported_wasmtime_options_are_refused_on_one_line_naming_them() {
    for (flag, named) in [
        ("-Stcp", "`tcp`"),
        ("-Scli,inherit-network", "`inherit-network`"),
        ("-Scli=n", "-Scli=n"),
        ("-Wfuel=1000", "`fuel`"),
    ] {
        let outcome = run_to_exit(&["serve", flag, "whatever.wasm"], EXIT_TIMEOUT);
        assert_eq!(outcome.status.code(), Some(2), "{flag}: {}", outcome.stderr);
        let first = outcome.stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: ") && first.contains(named),
            "{flag}: the first line does not name {named}:\n{}",
            outcome.stderr
        );
        assert_no_crash(&outcome);
    }
}

#[test]
fn supported_wasi_options_are_accepted_as_wasmtime_spells_them() {
    let server = RunningServer::start(
        &guest_wasm("hello_p2"),
        &[
            "-Scli",
            "-Shttp,p3=y",
            "-Shttp-outgoing-body-buffer-chunks=2",
            "-Shttp-outgoing-body-chunk-size=1024",
            "-Wmax-memory-size=67108864",
        ],
    );
    assert_eq!(server.get("/").text(), "Hello, WASI!");
}
