//! `serve --record` is safe to keep and `check` runs real apps: secrets are
//! redacted and the file is private, path options refuse what is not a
//! regular file in one line, and `check -Skeyvalue` passes kv-notes-p3 on
//! its recorded traffic while it fails kv-cache-p3, which answers from a
//! stale copy of kv data.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use crate::common::{RunningServer, guest_wasm, run_to_exit, scratch_file, wait_for_lines};

const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// A fresh scratch file for `serve --record`, which appends.
pub(crate) fn fresh_file(name: &str) -> String {
    let path = scratch_file(name, b"");
    path.to_str().expect("target paths are UTF-8").to_owned()
}

#[test]
fn a_recording_redacts_credentials_the_operators_headers_and_password_fields_and_is_private() {
    let file = fresh_file("redacted.jsonl");
    let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644));
    let server = RunningServer::start(
        &guest_wasm("faults_p3"),
        &[
            "--record",
            &file,
            "-H",
            "X-Api-Key: op-secret",
            "--record-redact",
            "x-session",
        ],
    );
    let mut connection = server.connect();
    let headers = [
        ("authorization", "Bearer tok-1"),
        ("cookie", "sid=cookie-2"),
        ("x-session", "sess-3"),
        ("content-type", "application/x-www-form-urlencoded"),
    ];
    let response = connection
        .request(
            "POST",
            "/?read_body=1&token=q-4&page=2",
            &headers,
            b"user=ann&password=hunter2",
        )
        .unwrap();
    assert_eq!(response.status, 200);
    let recorded = wait_for_lines(Path::new(&file), 1);
    for secret in ["tok-1", "cookie-2", "sess-3", "op-secret", "hunter2", "q-4"] {
        assert!(!recorded.contains(secret), "{secret} in {recorded}");
    }
    assert!(
        recorded.contains("\"authorization\":\"REDACTED\""),
        "{recorded}"
    );
    assert!(
        recorded.contains("user=ann&password=REDACTED"),
        "{recorded}"
    );
    assert!(recorded.contains("page=2"), "{recorded}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_fifo_a_device_or_a_directory_is_refused_by_every_path_option_in_one_line() {
    // A scratch file first, for the directory; a FIFO left by an earlier
    // run would block the write, so it gets a name of its own each time.
    let fifo = scratch_file("sink.dir-probe", b"")
        .with_file_name(format!("sink-{}.fifo", std::process::id()));
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let fifo = fifo.to_str().unwrap().to_owned();
    let hello = guest_wasm("hello_p3");
    let hello = hello.to_str().unwrap();
    let header_at = |path: &str| format!("@{path}");
    for path in [fifo.as_str(), "/dev/zero", "/tmp"] {
        let runs: [Vec<String>; 4] = [
            vec![
                "serve".into(),
                "--addr".into(),
                "127.0.0.1:0".into(),
                "--record".into(),
                path.into(),
                hello.into(),
            ],
            vec![
                "serve".into(),
                "--addr".into(),
                "127.0.0.1:0".into(),
                "-H".into(),
                header_at(path),
                hello.into(),
            ],
            vec![
                "check".into(),
                "--requests".into(),
                path.into(),
                hello.into(),
            ],
            vec!["check".into(), path.into()],
        ];
        for args in runs {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            // Bounded: a FIFO opened blindly would block forever.
            let outcome = run_to_exit(&args, EXIT_TIMEOUT);
            assert_ne!(outcome.status.code(), Some(0), "{args:?}");
            let lines: Vec<&str> = outcome.stderr.lines().collect();
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("is not a regular file") && l.contains(path)),
                "{args:?}: {}",
                outcome.stderr
            );
        }
    }
}

/// Records `requests` (method, path, body) on `guest` served with
/// -Skeyvalue, then checks the recording with -Skeyvalue and expects exit
/// code `code`; returns the report.
fn record_and_check(guest: &str, requests: &[(&str, &str, &str)], code: i32) -> String {
    let file = fresh_file(&format!("{guest}.jsonl"));
    let server = RunningServer::start(&guest_wasm(guest), &["-Skeyvalue", "--record", &file]);
    let mut connection = server.connect();
    for (method, path, body) in requests {
        let response = connection
            .request(method, path, &[], body.as_bytes())
            .unwrap();
        assert!(
            response.status < 500,
            "{method} {path}: {}",
            response.status
        );
    }
    wait_for_lines(Path::new(&file), requests.len());
    drop(server);
    let wasm = guest_wasm(guest);
    let outcome = run_to_exit(
        &[
            "check",
            "-Skeyvalue",
            "--requests",
            &file,
            wasm.to_str().unwrap(),
        ],
        EXIT_TIMEOUT,
    );
    assert_eq!(
        outcome.status.code(),
        Some(code),
        "{}{}",
        outcome.stdout,
        outcome.stderr
    );
    outcome.stdout
}

#[test]
fn check_with_keyvalue_passes_kv_notes_on_its_recorded_traffic() {
    let report = record_and_check(
        "kv_notes_p3",
        &[
            ("POST", "/notes", "buy milk"),
            ("POST", "/notes", "call bob"),
            ("GET", "/notes", ""),
            ("GET", "/notes/1", ""),
            ("DELETE", "/notes/2", ""),
            ("GET", "/notes", ""),
        ],
        0,
    );
    assert!(report.contains("PASS: "), "{report}");
}

#[test]
fn check_with_keyvalue_fails_an_instance_that_answers_from_a_stale_copy_of_kv_data() {
    let report = record_and_check(
        "kv_cache_p3",
        &[
            ("PUT", "/items/a", "one"),
            ("GET", "/items/a", ""),
            ("PUT", "/items/a", "two"),
            ("GET", "/items/a", ""),
        ],
        1,
    );
    assert!(
        report.contains("body: fresh \"two\", reused \"one\""),
        "{report}"
    );
}
