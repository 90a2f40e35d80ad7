//! Record and replay: a session recorded by `serve --record` replayed by
//! `check --requests`, bodies kept up to their cap.

use super::*;

use crate::record::fresh_file;

#[test]
fn a_recorded_session_is_replayed_by_check() {
    let file = fresh_file("session.jsonl");
    let server = RunningServer::start(&guest_wasm("leaky_user_p3"), &["--record", &file]);
    let mut connection = server.connect();
    let host = server.addr.to_string();
    for (path, id) in [
        ("/?user=ann", Some("ann-1")),
        ("/?user=bob", None),
        ("/", None),
    ] {
        let headers: Vec<(&str, &str)> = id.map(|id| ("x-request-id", id)).into_iter().collect();
        let response = connection.request("GET", path, &headers, b"").unwrap();
        assert_eq!(response.status, 200);
    }
    // Each request is queued before its response goes out, and written
    // off the serving path right after.
    let recorded = wait_for_lines(Path::new(&file), 3);
    let lines: Vec<Value> = recorded
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{recorded}");
    assert_eq!(
        lines[0],
        serde_json::json!({"method": "GET", "path": "/?user=ann", "headers": {"host": host, "x-request-id": "ann-1"}})
    );
    let generated = lines[1]["headers"]["x-request-id"].as_str().unwrap();
    assert!(
        generated.len() == 16 && generated.chars().all(|c| c.is_ascii_hexdigit()),
        "host-runner's own id is recorded too: {generated}"
    );
    drop(server);

    let outcome = check("leaky_user_p3", &["--requests", &file]);
    assert_eq!(outcome.status.code(), Some(1), "{}", outcome.stdout);
    assert!(
        outcome.stdout.contains("leak     serial     GET /?user=bob: body: fresh \"hello bob\\n\", reused \"hello ann\\n\""),
        "{}",
        outcome.stdout
    );
    assert!(outcome.stdout.contains("\nhint     "), "{}", outcome.stdout);
    assert!(!outcome.stdout.contains("warning"), "{}", outcome.stdout);

    let outcome = check("hello_p3", &["--requests", &file]);
    assert_eq!(outcome.status.code(), Some(0), "{}", outcome.stdout);
    assert!(
        outcome.stdout.ends_with(&format!(
            "PASS: no leak or hazard under reuse in {}\n",
            guest_wasm("hello_p3").display()
        )),
        "{}",
        outcome.stdout
    );
}

#[test]
fn recorded_bodies_are_kept_up_to_64_kib_and_non_text_is_left_out_with_a_comment() {
    let file = fresh_file("bodies.jsonl");
    let server = RunningServer::start(&guest_wasm("faults_p3"), &["--record", &file]);
    let mut connection = server.connect();
    let large = vec![b'a'; 70 << 10];
    for body in [&b"hello"[..], &large, &[0xff, 0xfe, 0x00][..]] {
        let response = connection
            .request("POST", "/?read_body=1", &[("x-request-id", "r")], body)
            .unwrap();
        assert_eq!(response.text(), format!("read {} bytes\n", body.len()));
    }
    let recorded = wait_for_lines(Path::new(&file), 5);
    drop(server);
    let lines: Vec<&str> = recorded.lines().collect();
    assert_eq!(lines.len(), 5, "{recorded}");
    let line = |index: usize| serde_json::from_str::<Value>(lines[index]).unwrap();
    assert_eq!(line(0)["body"], "hello");
    assert_eq!(
        lines[1],
        "# the next request's body was longer than 64 KiB and was cut there"
    );
    assert_eq!(line(2)["body"].as_str().unwrap().len(), 64 << 10);
    assert_eq!(
        lines[3],
        "# the next request's body (3 bytes) is not UTF-8 text and was left out"
    );
    assert!(line(4).get("body").is_none(), "{}", lines[4]);

    // check reads the file as written, comments skipped.
    let (_, report) = check_json("faults_p3", &["--requests", &file]);
    assert_eq!(report["requests"].as_array().unwrap().len(), 3);
}
