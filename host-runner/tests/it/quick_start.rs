//! The guide's quick start, run exactly as written: every ```sh block of
//! docs/src/quick-start.md, in order, in one shell, in an empty directory,
//! from the first build to `check` passing on the session it recorded. If
//! this fails, the page lies to a newcomer.

use std::path::Path;
use std::process::Command;

#[test]
fn quick_start_commands_work_as_written() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let page = std::fs::read_to_string(repo.join("docs/src/quick-start.md")).unwrap();
    let commands: String = page
        .split("```sh\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap_or_default())
        .collect();
    // Not part of the page: stop the background server even if a step fails.
    let script = format!("trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{commands}");
    let empty_dir =
        std::env::temp_dir().join(format!("reprise-quick-start-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&empty_dir);
    std::fs::create_dir_all(&empty_dir).unwrap();

    let mut bash = Command::new("bash");
    bash.args(["-euo", "pipefail", "-c", &script])
        .current_dir(&empty_dir)
        .env("REPRISE", repo)
        // One target dir for the whole workspace's builds: the component's
        // own build must not reuse it, as a newcomer's would not.
        .env_remove("CARGO_TARGET_DIR");
    // A newcomer's shell has none of the variables `cargo test` sets for a
    // test (CARGO_PKG_NAME, CARGO_MANIFEST_DIR, …), and the page's `cargo
    // build` must not see them either: build scripts that watch them (ring's
    // does) would run again, and host-runner with everything above them
    // would be rebuilt, here and again by the next `just build`.
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|name| {
            name == "CARGO" || (name.starts_with("CARGO_") && name != "CARGO_HOME")
        }) {
            bash.env_remove(name);
        }
    }
    let output = bash.output().expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let _ = std::fs::remove_dir_all(&empty_dir);
    assert!(
        output.status.success(),
        "quick start failed:\n{stdout}\n{stderr}"
    );
    // Two answers, the second from the instance that served the first.
    assert_eq!(
        stdout.matches("\r\n\r\nHello, WASI!\n").count(),
        2,
        "unexpected output:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("x-reprise-instance-request: 2\r\n"),
        "the second request did not reuse the instance:\n{stdout}\n{stderr}"
    );
    // The recorded session passes `check` with the page's own flags.
    assert!(
        stdout.contains("PASS: no leak or hazard under reuse in target/wasm32-wasip2/release/hello_reprise.wasm\n"),
        "the quick start's check did not pass:\n{stdout}\n{stderr}"
    );
}
