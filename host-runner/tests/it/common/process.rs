//! Running the `host-runner` binary as a user would: where it and the built
//! components are, a run that must end on its own (with its output), and
//! the shape every refusal to serve shares. Servers that keep running are
//! `server`'s.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The `host-runner` binary cargo built for these tests.
pub(super) fn host_runner_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_host-runner"))
}

/// The workspace's target directory (honours `CARGO_TARGET_DIR`).
pub(super) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("host-runner lives inside the workspace")
            .join("target"),
    }
}

/// The built component `name` (e.g. `hello_p3`): a sample from `guests/`
/// (target/wasm32-wasip2/release/) or a test component from `test-guests/`
/// (its `examples/` beside them); panics with what to do when neither has
/// been built.
pub(crate) fn guest_wasm(name: &str) -> PathBuf {
    let release = target_dir().join("wasm32-wasip2").join("release");
    let file = format!("{name}.wasm");
    let sample = release.join(&file);
    let fixture = release.join("examples").join(&file);
    // Test components first: a build from before they became examples may
    // have left a stale copy under the same name beside the samples.
    [fixture, sample.clone()]
        .into_iter()
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "component `{name}` is not built ({} is missing); run `just build` first",
                sample.display()
            )
        })
}

/// Writes `bytes` to a file named `name` in the tests' scratch directory and
/// returns its path.
pub(crate) fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scratch");
    std::fs::create_dir_all(&dir).expect("cannot create the scratch directory");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("cannot write a scratch file");
    path
}

/// The text of `path` once it holds at least `lines` lines (a recording
/// is written off the serving path, shortly after each response); panics
/// after a few seconds with what it holds.
pub(crate) fn wait_for_lines(path: &Path, lines: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= lines {
            return text;
        }
        if Instant::now() >= deadline {
            panic!(
                "{} holds {} lines, not {lines}:\n{text}",
                path.display(),
                text.lines().count()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// An empty directory named `name` in the tests' scratch directory (emptied
/// if a previous run left it), e.g. for a key-value store's file.
pub(crate) fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("scratch")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("cannot create a scratch directory");
    dir
}

/// Output of a `host-runner` run that was expected to end on its own.
#[derive(Debug)]
pub(crate) struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `host-runner <args>` to completion (killed after `timeout`), with
/// `RUST_BACKTRACE` unset so that output is what a user sees by default.
pub(crate) fn run_to_exit(args: &[&str], timeout: Duration) -> Finished {
    let mut child = Command::new(host_runner_bin())
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start host-runner");
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_with_timeout(&mut child, timeout).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("host-runner {args:?} did not exit within {timeout:?}")
    });
    Finished {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// The common shape of every refusal to serve: exit code 1, exactly one line
/// on stderr that starts with `error:`, names the file and contains
/// `wanted`; nothing that looks like a crash, nothing served.
pub(crate) fn assert_refused(outcome: &Finished, path: &Path, wanted: &str) {
    assert_eq!(
        outcome.status.code(),
        Some(1),
        "expected exit code 1, got {:?}; stderr:\n{}",
        outcome.status,
        outcome.stderr
    );
    let lines: Vec<&str> = outcome.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one line on stderr, got:\n{}",
        outcome.stderr
    );
    let line = lines[0];
    assert!(line.starts_with("error: "), "unexpected line: {line}");
    assert!(
        line.contains(&path.display().to_string()),
        "the error does not name the file: {line}"
    );
    assert!(line.contains(wanted), "expected {wanted:?} in: {line}");
    assert_no_crash(outcome);
    assert!(
        !outcome.stderr.contains("Serving HTTP"),
        "it started serving: {line}"
    );
    assert!(
        outcome.stdout.is_empty(),
        "unexpected stdout: {}",
        outcome.stdout
    );
}

/// Nothing in the output looks like a panic or a backtrace.
pub(crate) fn assert_no_crash(outcome: &Finished) {
    let everything = format!("{}{}", outcome.stdout, outcome.stderr).to_lowercase();
    for sign in ["panicked", "backtrace", "caused by"] {
        assert!(
            !everything.contains(sign),
            "output contains {sign:?}:\n{}",
            outcome.stderr
        );
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

pub(crate) fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A memory figure of process `pid` in KiB, from `/proc/PID/status`:
/// `VmRSS` (resident now) or `VmHWM` (the most it was resident); 0 when
/// the process is gone.
pub(crate) fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Starts `VmHWM` of process `pid` over from what it has now (`clear_refs`
/// 5), so a later peak measures one phase of a test, not start-up.
pub(crate) fn reset_peak_memory(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .unwrap_or_else(|e| panic!("cannot reset the peak memory of {pid}: {e}"));
}
