# Everyday commands for reprise. `just` lists them.

set shell := ["bash", "-euo", "pipefail", "-c"]

guests := "target/wasm32-wasip2/release"
host := "target/release/host-runner"

# List the recipes
default:
    @just --list

# Install what the build needs, if missing (the wasm32-wasip2 target, just)
setup:
    @scripts/install-tools.sh

# Build every sample (guests/) and test component (test-guests/ examples) for wasm32-wasip2 (release)
build-guests: setup
    cargo build --release --target wasm32-wasip2 --workspace --exclude host-runner --exclude reprise-bench --lib --examples

# Build the guests and host-runner (release: the tests and benchmarks share it)
build: build-guests
    cargo build --release -p host-runner

# Serve a sample or a test component, e.g. `just serve sleep-p3 --request-timeout 1s`
serve guest *flags: build
    {{host}} serve --addr 127.0.0.1:8080 {{flags}} "$({{just_executable()}} wasm {{guest}})"

# Check a component under reuse, e.g. `just check leaky-user-p3 --path '/?user=ann'`
check guest *flags: build
    {{host}} check {{flags}} "$({{just_executable()}} wasm {{guest}})"

# Where `guest` is built: a sample from guests/, or else a test component (an example of test-guests)
[private]
wasm guest:
    @file={{guests}}/examples/{{replace(guest, "-", "_")}}.wasm; [ -f "$file" ] || file={{guests}}/{{replace(guest, "-", "_")}}.wasm; echo "$file"

# Build, then serve hello-p3 on 127.0.0.1:8080
demo: build
    @echo "Try: curl http://127.0.0.1:8080/"
    {{host}} serve --addr 127.0.0.1:8080 {{guests}}/hello_p3.wasm

# Run the whole test suite: SDK unit and doc tests (every feature), then end to end over HTTP; then the SDK's promises and the lints
test: build && sdk-checks lint
    cargo test --release -p reprise -p reprise-policy -p host-runner --features reprise/json,reprise/tower

# What the SDK promises beyond its tests: rustdoc without warnings, and the p2-only and p3-only builds
sdk-checks:
    RUSTDOCFLAGS="-D warnings" cargo doc --release -p reprise --features json,tower,kv,config --no-deps --target wasm32-wasip2
    cargo build --release --target wasm32-wasip2 -p reprise --no-default-features --features p2
    cargo build --release --target wasm32-wasip2 -p reprise --no-default-features --features p3

# Build the guide (docs/book) and the SDK's rustdoc; checks links, installs mdBook if missing
docs: setup sdk-checks
    scripts/check-doc-links.py
    command -v mdbook >/dev/null || cargo install --locked mdbook
    mdbook build docs
    @echo "Guide: docs/book/index.html"

# Try `cargo component build` on every sample, if cargo-component is installed (not part of CI)
component-build:
    #!/usr/bin/env bash
    set -uo pipefail
    if ! command -v cargo-component >/dev/null; then
        echo "cargo-component is not installed; try: cargo install --locked cargo-component --version 0.21.1"
        exit 0
    fi
    # cargo-component 0.21 builds for wasm32-wasip1 and adapts the module to a component.
    rustup target add wasm32-wasip1 >/dev/null
    for guest in guests/*/; do
        name=$(basename "$guest")
        if (cd "$guest" && cargo component build --release >/dev/null 2>&1); then
            echo "ok      $name  -> target/wasm32-wasip1/release/${name//-/_}.wasm"
        else
            echo "failed  $name"
        fi
    done

# The long chaos soak (10,000 requests per reuse policy) with its report
soak: build
    SOAK_REQUESTS=10000 cargo test --release -p host-runner --test it -- soak:: --nocapture

# Format check, clippy (host and guests) and the guide's links
lint:
    cargo fmt --all -- --check
    scripts/check-doc-links.py
    cargo clippy --release -p host-runner -p reprise-policy --all-targets -- -D warnings
    cargo clippy --release -p reprise-bench --all-targets -- -D warnings
    cargo clippy --release --target wasm32-wasip2 --workspace --exclude host-runner --exclude reprise-bench --all-targets -- -D warnings

# Serve every sample on the other hosts that install here (wasmtime serve 48/49, jco) and compare with host-runner; `--write-docs` updates docs/src/running-elsewhere.md
portability *flags: build
    scripts/portability.py {{flags}}

# Install wasmtime serve 48.0.8 into target/peer for the bench's peer rows (once, ~15 min)
bench-peer:
    @scripts/bench-peer.sh

# Benchmark host-runner, wasmtime serve (if `just bench-peer` ran) and native hyper; writes docs/benchmarks.md
bench *flags: build
    @scripts/install-bench-tools.sh
    cargo build --release -p reprise-bench
    # The other SDKs' hellos: their own workspace and lock file, our target dir.
    cargo build --release --locked --target wasm32-wasip2 --manifest-path bench/sdks/Cargo.toml --target-dir target
    target/release/reprise-bench run {{flags}}
