//! host-runner's log lines name the request and the instance they are about,
//! in text and in JSON (`--log-format json`), guest output included; the
//! guest sees the same request id; the lines scripts parse stay plain.

use std::time::Duration;

use crate::common::{RunningServer, guest_wasm};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// `request_id` and `instance` of a JSON log line, from its own fields or
/// from the request span it was emitted in.
fn labels(line: &Value) -> (Option<String>, Option<u64>) {
    let field = |name: &str| {
        [&line["fields"][name], &line["span"][name]]
            .into_iter()
            .find(|v| !v.is_null())
            .cloned()
    };
    (
        field("request_id").and_then(|v| v.as_str().map(str::to_owned)),
        field("instance").and_then(|v| v.as_u64()),
    )
}

#[test]
fn json_log_lines_about_a_request_name_its_id_and_instance_guest_output_included() {
    let server = RunningServer::start(&guest_wasm("faults_p3"), &["--log-format=json"]);
    let trapped = server
        .connect()
        .request("GET", "/?trap=1", &[("x-request-id", "trap-42")], &[])
        .expect("GET /?trap=1");
    assert_eq!(trapped.status, 500);
    // The guest's panic message, the instance's end and the 500.
    for needle in ["trap requested", "instance dropped", "-> 500"] {
        server
            .wait_for_log(needle, WAIT)
            .unwrap_or_else(|| panic!("no {needle:?} line: {:?}", server.logs()));
    }

    let mut about_the_request = 0;
    for line in server.logs() {
        if line.starts_with("Serving HTTP on") {
            continue;
        }
        let json: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        if line.contains("trap-42") {
            about_the_request += 1;
            assert_eq!(
                labels(&json),
                (Some("trap-42".to_owned()), Some(1)),
                "{line}"
            );
        }
    }
    assert!(about_the_request >= 3, "{:?}", server.logs());
    let guest_line = server
        .wait_for_log("trap requested", WAIT)
        .expect("seen above");
    let guest: Value = serde_json::from_str(&guest_line).expect("JSON");
    assert_eq!(guest["target"], "guest");
    assert_eq!(guest["fields"]["stream"], "stderr");
}

#[test]
fn the_guest_sees_the_generated_request_id_that_the_logs_show() {
    let server = RunningServer::start_with_env(
        &guest_wasm("counter_p3"),
        &[],
        &[("RUST_LOG", "host_runner=debug")],
    );
    let response = server.get("/");
    assert_eq!(response.status, 200);
    // `request <id> fresh=true seen=<id>`
    let text = response.text();
    let id = text
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no id in {text:?}"))
        .to_owned();
    let line = server
        .wait_for_log(&format!("request_id={id}"), WAIT)
        .unwrap_or_else(|| panic!("no log line names {id}: {:?}", server.logs()));
    assert!(
        line.contains("instance=1") && line.contains("GET / -> 200"),
        "{line}"
    );
}

#[test]
fn guest_output_is_prefixed_with_the_instance_and_the_request() {
    let server = RunningServer::start(&guest_wasm("faults_p3"), &[]);
    let trapped = server
        .connect()
        .request("GET", "/?trap=1", &[("x-request-id", "trap-7")], &[])
        .expect("GET /?trap=1");
    assert_eq!(trapped.status, 500);
    let line = server
        .wait_for_log("trap requested", WAIT)
        .expect("the guest's panic message");
    assert_eq!(line, "stderr [instance 1 request trap-7] :: trap requested");
}
