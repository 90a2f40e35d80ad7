//! The store `-Skeyvalue` keeps by default is a file that outlives
//! host-runner: notes written through `kv-notes-p3` are there after a
//! restart and after `kill -9` in the middle of a burst of writes (every
//! note the client saw acknowledged), and a large store is listed a page
//! at a time while other requests are answered.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{RunningServer, guest_wasm, memory_kib, reset_peak_memory, scratch_dir};

/// A fresh store file for one test.
pub(crate) fn store_path(name: &str) -> PathBuf {
    scratch_dir(name).join("kv.sqlite3")
}

/// `kv-notes-p3` served with its store in the file `path`.
pub(crate) fn serve_notes(path: &Path, flags: &[&str]) -> RunningServer {
    let store = format!("-Skeyvalue-path={}", path.display());
    let mut args = vec!["-Skeyvalue", store.as_str()];
    args.extend(flags);
    RunningServer::start(&guest_wasm("kv_notes_p3"), &args)
}

/// Posts a note and returns the number it was given.
pub(crate) fn post_note(server: &RunningServer, text: &str) -> u64 {
    let response = server
        .connect()
        .request("POST", "/notes", &[], text.as_bytes())
        .expect("a response");
    assert_eq!(response.status, 201, "{}", response.text());
    note_number(&response.text())
}

fn note_number(answer: &str) -> u64 {
    answer
        .trim()
        .strip_prefix("note ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a note number: {answer:?}"))
}

#[test]
fn notes_survive_a_restart_of_host_runner() {
    let path = store_path("kv-restart");
    let mut server = serve_notes(&path, &[]);
    assert_eq!(post_note(&server, "buy milk"), 1);
    assert_eq!(post_note(&server, "call bob"), 2);
    server.signal("TERM");
    assert!(
        server.wait_exit(Duration::from_secs(20)).is_some(),
        "no exit"
    );

    let server = serve_notes(&path, &[]);
    assert_eq!(server.get("/notes").text(), "1: buy milk\n2: call bob\n");
    // The counter survived too: numbers are never handed out twice.
    assert_eq!(post_note(&server, "water plants"), 3);
}

#[test]
fn every_note_acknowledged_before_kill_9_is_there_afterwards() {
    let path = store_path("kv-kill-9");
    let server = serve_notes(&path, &[]);
    let acknowledged = Arc::new(Mutex::new(Vec::<(u64, String)>::new()));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let acknowledged = acknowledged.clone();
            let mut connection = server.connect();
            thread::spawn(move || {
                // Until the server dies under us: a request cut short was
                // never acknowledged, so nothing is owed for it.
                for i in 0.. {
                    let text = format!("writer {writer} note {i}");
                    match connection.request("POST", "/notes", &[], text.as_bytes()) {
                        Ok(response) if response.status == 201 => {
                            let number = note_number(&response.text());
                            acknowledged.lock().unwrap().push((number, text));
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < 200 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    server.signal("KILL");
    for writer in writers {
        writer.join().expect("a writer panicked");
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 200,
        "only {} notes written",
        acknowledged.len()
    );

    let server = serve_notes(&path, &[]);
    let mut connection = server.connect();
    for (number, text) in &acknowledged {
        let read = connection
            .get(&format!("/notes/{number}"))
            .expect("a response");
        assert_eq!(
            (read.status, read.text()),
            (200, text.clone()),
            "note {number}"
        );
    }
}

/// Notes written straight into a store file of `kv-notes-p3`'s (the file
/// is an ordinary SQLite database, documented in the reference), so a large
/// store takes a second to make rather than minutes of requests.
fn fill_with_notes(path: &Path, count: u64) {
    // host-runner creates the table; stop it before writing beside it.
    let mut server = serve_notes(path, &[]);
    server.signal("TERM");
    assert!(
        server.wait_exit(Duration::from_secs(20)).is_some(),
        "no exit"
    );
    let mut db = rusqlite::Connection::open(path).expect("the store file opens");
    let transaction = db.transaction().expect("a transaction");
    {
        let mut insert = transaction
            .prepare("INSERT INTO kv (key, value) VALUES (?1, ?2)")
            .expect("the documented table");
        for n in 1..=count {
            insert
                .execute((format!("note:{n}"), format!("note number {n}").into_bytes()))
                .expect("insert");
        }
        insert
            .execute(("notes:next-id", count.to_string().into_bytes()))
            .expect("insert");
    }
    transaction.commit().expect("commit");
}

#[test]
fn twenty_thousand_notes_are_listed_a_page_at_a_time_while_a_neighbour_is_answered() {
    const NOTES: u64 = 20_000;
    let path = store_path("kv-many");
    fill_with_notes(&path, NOTES);
    let server = serve_notes(&path, &[]);
    let resident_before = memory_kib(server.pid(), "VmRSS");
    reset_peak_memory(server.pid());

    // A neighbour reads one note over and over while the listing runs.
    let listing_done = Arc::new(AtomicBool::new(false));
    let neighbour = {
        let done = listing_done.clone();
        let mut connection = server.connect();
        thread::spawn(move || {
            let mut slowest = Duration::ZERO;
            while !done.load(Ordering::Relaxed) {
                let started = Instant::now();
                let read = connection
                    .get("/notes/1")
                    .expect("the neighbour is answered");
                assert_eq!(read.text(), "note number 1");
                slowest = slowest.max(started.elapsed());
            }
            slowest
        })
    };

    let mut connection = server.connect();
    let (mut path, mut seen, mut pages) = (Some("/notes".to_owned()), 0, 0);
    while let Some(page) = path.take() {
        let response = connection.get(&page).expect("a page");
        assert_eq!(response.status, 200, "{}", response.text());
        let text = response.text();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() <= 1000, "a page of {} notes", lines.len());
        for line in lines {
            seen += 1;
            assert_eq!(
                line,
                format!("{seen}: note number {seen}"),
                "notes out of order"
            );
        }
        pages += 1;
        path = response.header("link").map(|link| {
            let start = link.find('<').expect("a link") + 1;
            let end = link.find('>').expect("a link");
            link[start..end].to_owned()
        });
    }
    listing_done.store(true, Ordering::Relaxed);
    let slowest = neighbour.join().expect("the neighbour panicked");
    // The host lists 1000 keys a page and the store holds the counter
    // too, so 20,001 keys make 21 pages; the counter's page lists no note
    // and names no next page (the SDK's `list` says a page may be empty).
    assert_eq!((seen, pages), (NOTES, (NOTES + 1).div_ceil(1000)));
    // A liveness bound, not a speed claim: the neighbour was never stuck
    // behind the listing.
    assert!(
        slowest < Duration::from_secs(5),
        "the neighbour waited {slowest:?}"
    );
    // Listing copies one page, not the store: the host barely grows.
    let peak = memory_kib(server.pid(), "VmHWM");
    assert!(
        peak < resident_before + 64 * 1024,
        "host-runner grew from {resident_before} KiB to a peak of {peak} KiB while listing"
    );
}
