//! `host-runner serve` refuses what it cannot serve with one clear line on
//! stderr and a non-zero exit, never a panic or a backtrace; bad flags get
//! clap's usage error and exit code 2.

use std::path::Path;
use std::time::Duration;

use crate::common::{Finished, assert_no_crash, assert_refused, run_to_exit, scratch_file};

/// Loading fails before any socket is opened, so this is generous.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

fn serve(component: &Path) -> Finished {
    let component = component.to_str().expect("scratch paths are UTF-8");
    run_to_exit(&["serve", "--addr", "127.0.0.1:0", component], EXIT_TIMEOUT)
}

/// Serves a scratch file `name` holding `contents`, and expects one line
/// on stderr that names the file and says `reason`.
fn assert_file_refused(name: &str, contents: &[u8], reason: &str) {
    let path = scratch_file(name, contents);
    assert_refused(&serve(&path), &path, reason);
}

/// A component written in WAT, as bytes.
fn component(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).expect("valid WAT")
}

/// Runs `host-runner` with `args`, and expects clap's usage error: exit
/// code 2 and a message naming every one of `named`, without a crash.
fn assert_usage_error(args: &[&str], named: &[&str]) {
    let outcome = run_to_exit(args, EXIT_TIMEOUT);
    assert_eq!(
        outcome.status.code(),
        Some(2),
        "stderr:\n{}",
        outcome.stderr
    );
    for wanted in named {
        assert!(
            outcome.stderr.contains(wanted),
            "the message does not say {wanted:?}:\n{}",
            outcome.stderr
        );
    }
    assert_no_crash(&outcome);
}

#[test]
fn missing_file_is_refused_naming_the_path() {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-such-component.wasm");
    let outcome = serve(&path);
    assert_refused(&outcome, &path, "no such file");
}

#[test]
fn text_file_is_refused_as_not_webassembly() {
    assert_file_refused(
        "notes.txt",
        b"this is not wasm\n",
        "not a WebAssembly binary",
    );
}

#[test]
fn a_device_is_refused_as_not_a_regular_file() {
    // Read blindly, /dev/zero would grow memory until the process died.
    let path = Path::new("/dev/zero");
    assert_refused(&serve(path), path, "is not a regular file");
}

#[test]
fn a_fifo_is_refused_as_not_a_regular_file_without_waiting_for_a_writer() {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("component.fifo");
    let _ = std::fs::remove_file(&path);
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("cannot run mkfifo");
    assert!(made.success(), "mkfifo failed");
    assert_refused(&serve(&path), &path, "is not a regular file");
}

#[test]
fn a_huge_file_is_refused_from_its_first_bytes_or_its_size_without_being_read() {
    // Sparse files: large on paper, nothing on disk.
    let huge = |name: &str, preamble: &[u8], size: u64| {
        let path = scratch_file(name, preamble);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_len(size))
            .expect("cannot grow a scratch file");
        path
    };
    let zeros = huge("zeros.wasm", b"", 1 << 30);
    assert_refused(&serve(&zeros), &zeros, "is not a WebAssembly binary");
    let oversized = huge("oversized.wasm", b"\0asm\x0d\0\x01\0", 600 << 20);
    assert_refused(
        &serve(&oversized),
        &oversized,
        "is 600MiB, more than the 512MiB a component file may be",
    );
}

#[test]
fn core_module_is_refused_as_not_a_component() {
    assert_file_refused(
        "core-module.wasm",
        b"\0asm\x01\0\0\0",
        "core WebAssembly module, not a component",
    );
}

#[test]
fn empty_component_is_refused_for_exporting_no_http_handler() {
    assert_file_refused(
        "empty-component.wasm",
        b"\0asm\x0d\0\x01\0",
        "exports no HTTP handler",
    );
}

#[test]
fn component_exporting_something_else_is_refused_for_exporting_no_http_handler() {
    let wasm = component(
        r#"(component
            (core module $m (func (export "run")))
            (core instance $i (instantiate $m))
            (func $run (canon lift (core func $i "run")))
            (export "run" (func $run)))"#,
    );
    assert_file_refused("not-http.wasm", &wasm, "exports no HTTP handler");
}

#[test]
fn component_importing_what_the_host_lacks_is_refused_naming_the_import() {
    let wasm = component(
        r#"(component
            (import "example:missing/api" (instance (export "ping" (func))))
            (instance $handler)
            (export "wasi:http/incoming-handler@0.2.0" (instance $handler)))"#,
    );
    assert_file_refused("missing-import.wasm", &wasm, "example:missing/api");
}

#[test]
fn http_handler_export_without_a_handle_function_is_refused() {
    let wasm = component(
        r#"(component
            (instance $handler)
            (export "wasi:http/incoming-handler@0.2.0" (instance $handler)))"#,
    );
    assert_file_refused(
        "hollow-handler.wasm",
        &wasm,
        "HTTP handler host-runner cannot call",
    );
}

#[test]
fn malformed_duration_flag_exits_2_naming_the_flag_the_value_and_the_notation() {
    assert_usage_error(
        &["serve", "--request-timeout=banana", "whatever.wasm"],
        &["--request-timeout", "banana", "100us, 250ms or 5s"],
    );
}

#[test]
fn unknown_flag_exits_2_naming_it() {
    assert_usage_error(
        &["serve", "--no-such-flag", "whatever.wasm"],
        &["--no-such-flag"],
    );
}
