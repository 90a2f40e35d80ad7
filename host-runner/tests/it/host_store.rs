//! Data that must outlive an instance lives in the host: `-Skeyvalue` gives
//! every instance of the server one shared `wasi:keyvalue` store (a file by
//! default, see kv_durable.rs; in memory and seeded with
//! `-Skeyvalue-in-memory-data`), and `-Sconfig` answers `wasi:config` from
//! `-Sconfig-var`, for p3 and p2 components alike. Without the option, a
//! component that imports them is refused at start-up in one line.

use std::time::Duration;

use crate::common::{RunningServer, assert_refused, guest_wasm, run_to_exit};

#[test]
fn notes_outlive_the_instance_that_wrote_them() {
    let server = RunningServer::start(
        &guest_wasm("kv_notes_p3"),
        &[
            "-Skeyvalue",
            "--max-instance-reuse-count=1",
            "--debug-headers",
            "--metrics-addr=127.0.0.1:0",
        ],
    );
    let mut connection = server.connect();
    let created = connection
        .request("POST", "/notes", &[], b"buy milk")
        .expect("a response");
    assert_eq!((created.status, created.text().as_str()), (201, "note 1\n"));
    let writer = created.instance().expect("--debug-headers");
    // The writer took its one request and is gone before the note is read.
    server.wait_for_metrics("the writer's retirement", Duration::from_secs(10), |m| {
        m.count("reprise_instances_retired_total{reason=\"reuse_limit\"}") >= 1
    });
    let read = server.get("/notes/1");
    assert_eq!((read.status, read.text().as_str()), (200, "buy milk"));
    assert_ne!(
        read.instance(),
        Some(writer),
        "read on the writer's instance"
    );

    let second = server.connect().request("POST", "/notes", &[], b"call bob");
    assert_eq!(second.expect("a response").text(), "note 2\n");
    assert_eq!(server.get("/notes").text(), "1: buy milk\n2: call bob\n");
    let deleted = server.connect().request("DELETE", "/notes/1", &[], b"");
    assert_eq!(deleted.expect("a response").status, 204);
    assert_eq!(server.get("/notes/1").status, 404);
}

#[test]
fn seeded_data_and_configuration_reach_a_p2_component() {
    let server = RunningServer::start(
        &guest_wasm("host_inputs_p2"),
        &[
            "-Skeyvalue",
            "-Skeyvalue-in-memory-data=greeting=hello",
            "-Sconfig,config-var=region=eu-west",
        ],
    );
    assert_eq!(server.get("/kv/greeting").text(), "hello");
    let region = server.get("/config/region");
    assert_eq!((region.status, region.text().as_str()), (200, "eu-west"));
    assert_eq!(server.get("/config/missing").status, 404);
    assert_eq!(server.get("/kv/missing").status, 404);

    // p2 instances serve one request each by default: the write and the
    // read below run on two instances.
    let put = server
        .connect()
        .request("PUT", "/kv/written", &[], b"by p2")
        .expect("a response");
    assert_eq!(put.status, 204, "{}", put.text());
    assert_eq!(server.get("/kv/written").text(), "by p2");
}

#[test]
fn the_start_up_line_says_what_the_guest_can_reach() {
    let server = RunningServer::start(
        &guest_wasm("host_inputs_p2"),
        &[
            "-Skeyvalue,keyvalue-in-memory-data=a=1",
            "-Sconfig",
            "--header=x-a: b",
        ],
    );
    let line = server
        .wait_for_log("max-instance-reuse-count", Duration::from_secs(10))
        .expect("the configuration line");
    for part in [
        "outbound HTTP to any host",
        "wasi:keyvalue in memory, fresh on every start, shared by all instances",
        "wasi:config (0 variables)",
        "1 request headers replaced (--header)",
    ] {
        assert!(line.contains(part), "{part:?} missing from: {line}");
    }
}

/// Serves `guest` with `flags` and asserts it is refused in one line that
/// names `import` and tells to add `option`.
fn assert_refused_without(guest: &str, flags: &[&str], import: &str, option: &str) {
    let wasm = guest_wasm(guest);
    let mut args = vec!["serve", "--addr", "127.0.0.1:0"];
    args.extend(flags);
    args.push(wasm.to_str().expect("UTF-8 path"));
    let outcome = run_to_exit(&args, Duration::from_secs(60));
    assert_refused(&outcome, &wasm, import);
    let advice = format!("serve it with {option}");
    assert!(outcome.stderr.contains(&advice), "{}", outcome.stderr);
}

#[test]
fn the_start_up_line_names_the_store_file() {
    let server = RunningServer::start(&guest_wasm("kv_notes_p3"), &["-Skeyvalue"]);
    let line = server
        .wait_for_log("max-instance-reuse-count", Duration::from_secs(10))
        .expect("the configuration line");
    let part = "wasi:keyvalue in the file .host-runner/keyvalue.sqlite3 (SQLite, each write on disk before it returns)";
    assert!(line.contains(part), "{part:?} missing from: {line}");
}

#[test]
fn store_options_that_cannot_go_together_are_refused_in_one_line() {
    let wasm = guest_wasm("kv_notes_p3");
    let outcome = run_to_exit(
        &[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "-Skeyvalue,keyvalue-path=kv.sqlite3,keyvalue-in-memory-data=a=1",
            wasm.to_str().expect("UTF-8 path"),
        ],
        Duration::from_secs(60),
    );
    assert!(!outcome.status.success());
    let last = outcome.stderr.lines().last().unwrap_or_default();
    assert!(last.contains("cannot go together"), "{}", outcome.stderr);
}

#[test]
fn a_component_importing_keyvalue_is_refused_without_the_option() {
    assert_refused_without("kv_notes_p3", &[], "wasi:keyvalue/", "-Skeyvalue");
}

#[test]
fn a_component_importing_config_is_refused_without_the_option() {
    assert_refused_without(
        "host_inputs_p2",
        &["-Skeyvalue"],
        "wasi:config/store",
        "-Sconfig",
    );
}
