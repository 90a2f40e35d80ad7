//! Hermetic replay of outgoing calls: `serve --record` writes the calls a
//! component makes, with their answers, beside its requests, and `check`
//! answers the component's calls from them, so the proxy sample passes with
//! its backend down; checked live against a backend that slows down, a
//! call the proxy's own timeout cancels is an `outgoing` finding, not a
//! leak.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use base64::Engine as _;

use crate::common::backend::{Backend, pattern};
use crate::common::{RunningServer, guest_wasm, run_to_exit, scratch_file, wait_for_lines};

const EXIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `host-runner check` on proxy-p3 with `flags`; the exit code and
/// the JSON report.
fn check_proxy(flags: &[&str]) -> (i32, Value, String) {
    let wasm = guest_wasm("proxy_p3");
    let mut args = vec!["check", "--format", "json"];
    args.extend_from_slice(flags);
    args.push(wasm.to_str().expect("target paths are UTF-8"));
    let outcome = run_to_exit(&args, EXIT_TIMEOUT);
    let report = serde_json::from_str(&outcome.stdout).unwrap_or(Value::Null);
    (outcome.status.code().unwrap_or(-1), report, outcome.stderr)
}

fn kinds(report: &Value) -> Vec<String> {
    let findings = report["findings"].as_array().cloned().unwrap_or_default();
    (findings.iter())
        .map(|f| f["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn warnings(report: &Value) -> String {
    report["warnings"].to_string()
}

#[test]
fn a_proxy_recorded_against_a_real_backend_passes_check_with_the_backend_down() {
    let backend = Backend::start();
    let file = scratch_file("proxy-replay.jsonl", b"");
    let file = file.to_str().expect("target paths are UTF-8").to_owned();
    let env = format!("BACKEND={}", backend.url);
    let server = RunningServer::start(
        &guest_wasm("proxy_p3"),
        &["--env", &env, "--env", "TIMEOUT_MS=300", "--record", &file],
    );
    let mut connection = server.connect();
    let requests: [(&str, &str, &[u8]); 4] = [
        ("GET", "/echo?item=1", b""),
        ("POST", "/echo", b"a body the backend echoes"),
        ("GET", "/stream?bytes=100000", b""),
        ("GET", "/head", b""),
    ];
    for (method, path, body) in requests {
        let response = connection.request(method, path, &[], body).unwrap();
        assert_eq!(response.status, 200, "{method} {path}");
    }
    // Each request, and the call it made.
    let text = wait_for_lines(Path::new(&file), 2 * requests.len());
    drop(server);
    drop(backend);

    let calls: Vec<Value> = (text.lines())
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|line| line.get("outgoing").cloned())
        .collect();
    assert_eq!(calls.len(), requests.len(), "{text}");
    let echo = &calls[1];
    assert_eq!(echo["method"], "POST", "{echo}");
    assert_eq!(echo["body"], "a body the backend echoes", "{echo}");
    assert!(
        echo["body_sha256"]
            .as_str()
            .unwrap_or_default()
            .starts_with("sha256:")
    );
    let stream = calls
        .iter()
        .find(|c| c["url"].as_str().unwrap_or_default().contains("/stream"));
    let stream = stream.expect("the /stream call");
    // The backend's bytes are not UTF-8: kept in base64, cut at 64 KiB.
    let kept = base64::engine::general_purpose::STANDARD
        .decode(stream["body_base64"].as_str().unwrap_or_default())
        .expect("base64");
    assert!(kept == pattern(64 << 10), "{} bytes kept", kept.len());
    assert_eq!(stream["body_cut"], true);

    let requests_file = [
        "--env",
        &env,
        "--env",
        "TIMEOUT_MS=300",
        "--requests",
        &file,
    ];
    let (code, report, stderr) = check_proxy(&requests_file);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    assert!(kinds(&report).is_empty(), "{report:#}");
    assert!(
        !warnings(&report).contains("outgoing call failed"),
        "{report:#}"
    );

    // The same check with live calls meets the backend that is down.
    let mut live = requests_file.to_vec();
    live.push("--live-outgoing");
    let (_, report, stderr) = check_proxy(&live);
    assert!(
        warnings(&report).contains("outgoing call failed"),
        "{report:#}\n{stderr}"
    );
}

#[test]
fn a_call_missing_from_the_recording_is_an_outgoing_failure_not_an_answer() {
    let file = scratch_file(
        "proxy-replay-missing.jsonl",
        b"{\"path\":\"/echo\"}\n{\"outgoing\":{\"method\":\"GET\",\"url\":\"http://127.0.0.1:9/other\",\"body_sha256\":\"sha256:0\",\"status\":200}}\n",
    );
    let flags = [
        "--env",
        "BACKEND=http://127.0.0.1:9",
        "--requests",
        file.to_str().expect("target paths are UTF-8"),
    ];
    let (code, report, stderr) = check_proxy(&flags);
    assert_eq!(code, 0, "{report:#}\n{stderr}");
    let warnings = warnings(&report);
    assert!(
        warnings.contains("GET http://127.0.0.1:9/echo")
            && warnings.contains("no answer to this call in the recording"),
        "{report:#}"
    );
}

#[test]
fn a_backend_that_slows_down_checked_live_gives_an_outgoing_finding_not_a_leak() {
    let backend = Backend::start();
    let env = format!("BACKEND={}", backend.url);
    // Both fresh runs are answered at once; every later call takes longer
    // than the proxy's 300 ms timeout, which cancels it and answers 504.
    let flags = [
        "--env",
        &env,
        "--env",
        "TIMEOUT_MS=300",
        "--path",
        "/slow-after?n=2&ms=2000",
        "--rounds",
        "1",
    ];
    let (code, report, stderr) = check_proxy(&flags);
    assert_eq!(code, 1, "{report:#}\n{stderr}");
    let kinds = kinds(&report);
    assert!(
        !kinds.is_empty() && kinds.iter().all(|kind| kind == "outgoing"),
        "{report:#}"
    );
    let detail = report["findings"][0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("/slow-after?n=2&ms=2000: cancelled before its answer came"),
        "{detail}"
    );
}
